"""A lock request followed as a stream of states (synchronous): QUEUED (again each time
it moves up the queue), ACQUIRED, JEOPARDY while the lease is not being renewed, ACQUIRED
again once it is, and LOST when the grant ends; a try that finds the path busy gets one
BUSY. LOST and BUSY end it.

The request has one request id, sent again when the stream is reopened on another member
after a failure: a queued request rejoins its wait, a granted one gets its grant back
(that repeated state is not delivered twice). Closing the stream gives up a wait still
queued, never a grant: the lock is unlocked at the end of the ``with`` block, or with
``stream.lock.unlock()``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from lockmgr._stream import Resuming, StreamCall
from lockmgr.session import Lock
from lockmgr.types import AcquisitionState, LockMode, LockState
from lockmgr.v1 import lockmgr_pb2 as pb

if TYPE_CHECKING:
    from lockmgr.client import Stubs
    from lockmgr.session import Session


class LockStream(Resuming[pb.LockStreamResponse, LockState]):
    """Iterate it for :class:`LockState` s. Once ACQUIRED, :attr:`lock` is the held
    :class:`Lock`. Leaving a ``with`` block closes the stream and unlocks the lock if it
    was granted (as leaving ``with session.lock(...)`` does)."""

    def __init__(self, session: Session, request: pb.LockRequest, mode: LockMode) -> None:
        super().__init__(session.client)
        self.session = session
        self.request = request
        self.mode = mode
        self.lock: Lock | None = None
        # The last state delivered (a reopened stream starts with it again).
        self.state: LockState | None = None

    @property
    def path(self) -> str:
        return self.request.path

    def __repr__(self) -> str:
        state = self.state.state.value if self.state is not None else None
        return f"LockStream(path={self.path!r}, state={state}, lock={self.lock!r})"

    def _open_call(self, stubs: Stubs) -> StreamCall[pb.LockStreamResponse]:
        # No deadline: the stream lasts as long as the grant.
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()
        if self.lock is not None:
            self.lock.__exit__(exc_type, exc, tb)
