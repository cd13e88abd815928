"""A lock request followed as a stream of states, for asyncio (see
:mod:`lockmgr.lock_stream`: the same states, request id and end)."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from lockmgr.aio._stream import Resuming, StreamCall
from lockmgr.aio.session import Lock
from lockmgr.types import AcquisitionState, LockMode, LockState
from lockmgr.v1 import lockmgr_pb2 as pb

if TYPE_CHECKING:
    from lockmgr.aio.client import Stubs
    from lockmgr.aio.session import Session


class LockStream(Resuming[pb.LockStreamResponse, LockState]):
    """``async for state in stream``; once ACQUIRED, :attr:`lock` is the held
    :class:`Lock`. Leaving ``async with`` closes the stream and unlocks the lock if it
    was granted."""

    def __init__(self, session: Session, request: pb.LockRequest, mode: LockMode) -> None:
        super().__init__(session.client)
        self.session = session
        self.request = request
        self.mode = mode
        self.lock: Lock | None = None
        self.state: LockState | None = None

    @property
    def path(self) -> str:
        return self.request.path

    def __repr__(self) -> str:
        state = self.state.state.value if self.state is not None else None
        return f"LockStream(path={self.path!r}, state={state}, lock={self.lock!r})"

    def _open_call(self, stubs: Stubs) -> StreamCall[pb.LockStreamResponse]:
        return stubs.lock.LockStream(self.request)

    def _take(self, response: pb.LockStreamResponse) -> None:
        state = LockState.from_wire(response)
        if state == self.state:
            return
        self.state = state
        if state.state is AcquisitionState.ACQUIRED and self.lock is None:
            self.lock = Lock(
                self.session, self.path, state.fencing_token, self.mode, self.request.permits
            )
        self._pending.append(state)

    def _complete(self) -> bool:
        return self.state is not None and self.state.ended

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()
        if self.lock is not None:
            await self.lock.__aexit__(exc_type, exc, tb)
