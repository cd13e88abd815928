"""A watch for asyncio: an async iterator of lock events that survives its member (see
:mod:`lockmgr.watch` for how it resumes)."""

from __future__ import annotations

import asyncio
import collections
from types import TracebackType
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from lockmgr import _policy as policy
from lockmgr.errors import Answer, WatchCompacted, unavailable
from lockmgr.types import Event
from lockmgr.v1 import lockmgr_pb2 as pb

if TYPE_CHECKING:
    from lockmgr.aio.client import Client


class Watch:
    """``async for event in watch``; ``cancel()`` or the end of ``async with`` ends it."""

    def __init__(self, client: Client, path: str, *, prefix: bool, start_revision: int) -> None:
        self._client = client
        self._path = path
        self._prefix = prefix
        self.next_revision = start_revision
        self._call: grpc.aio.UnaryStreamCall[pb.WatchRequest, pb.WatchResponse] | None = None
        self._pending: collections.deque[Event] = collections.deque()
        self._cancelled = False

    def __aiter__(self) -> Watch:
        return self

    async def __aenter__(self) -> Watch:
        await self.start()
        return self

    async def start(self) -> None:
        """Fixes where "from now" starts (the member's revision plus one): entering
        ``async with`` does it, else the first iteration."""
        if self.next_revision == 0:
            self.next_revision = (await self._client.status()).header.revision + 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    def cancel(self) -> None:
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    async def _open(self) -> grpc.aio.UnaryStreamCall[pb.WatchRequest, pb.WatchResponse]:
        client = self._client
        await self.start()
        request = pb.WatchRequest(
            path=self._path, prefix=self._prefix, start_revision=self.next_revision
        )
        self._call = client.stubs(client.preferred).watch.Watch(request)
        return self._call

    async def __anext__(self) -> Event:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        pause = policy.PAUSE_MIN_S
        while not self._pending:
            if self._cancelled:
                raise StopAsyncIteration
            call = self._call if self._call is not None else await self._open()
            address = self._client.preferred
            try:
                response = await call.read()
            except asyncio.CancelledError:
                if self._cancelled:
                    raise StopAsyncIteration from None
                raise
            except grpc.RpcError as error:
                if self._cancelled:
                    raise StopAsyncIteration from None
                failure = Answer.of(error)
                if not policy.retryable(failure):
                    raise failure.error() from None
            else:
                if response is not grpc.aio.EOF:
                    assert isinstance(response, pb.WatchResponse)
                    self._take(response)
                    deadline, pause = None, policy.PAUSE_MIN_S
                    continue
                if self._cancelled:
                    raise StopAsyncIteration
                failure = Answer(grpc.StatusCode.UNAVAILABLE, None, "the watch stream ended")
            self._call = None
            now = loop.time()
            deadline = deadline or now + self._client.config.retry_budget_s
            if now + pause >= deadline:
                raise unavailable(address, failure)
            self._client.prefer(policy.next_member(self._client.config.endpoints, address, failure))
            await asyncio.sleep(pause)
            pause = policy.next_pause(pause)
        return self._pending.popleft()

    def _take(self, response: pb.WatchResponse) -> None:
        if response.compacted:
            self.cancel()
            raise WatchCompacted(
                f"the watch of {self._path} missed events: watch again from revision "
                f"{response.compact_revision} after re-reading the state",
                compact_revision=response.compact_revision,
            )
        for event in response.events:
            self._pending.append(Event.from_wire(event))
            self.next_revision = max(self.next_revision, event.revision + 1)
