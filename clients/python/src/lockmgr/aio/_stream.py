"""A server stream that survives its member, for asyncio (see :mod:`lockmgr._stream`:
the same rule, on ``grpc.aio`` calls). An election's ``observe`` and a session's
``lock_stream`` are built on it.
"""

from __future__ import annotations

import asyncio
import collections
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import grpc
import grpc.aio

from lockmgr import _policy as policy
from lockmgr.errors import Answer, unavailable

if TYPE_CHECKING:
    from lockmgr.aio.client import Client, Stubs

R = TypeVar("R")
Item = TypeVar("Item")
S = TypeVar("S", bound="Resuming[Any, Any]")

StreamCall = grpc.aio.UnaryStreamCall[Any, R]


class Resuming(Generic[R, Item]):
    """``async for item in stream``; ``cancel()`` or the end of ``async with`` ends it."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._call: StreamCall[R] | None = None
        self._address = ""
        self._pending: collections.deque[Item] = collections.deque()
        self._cancelled = False
        self._finished = False

    # --- what a subclass says ---

    def _open_call(self, stubs: Stubs) -> StreamCall[R]:
        """Opens the stream (again: resuming after what was delivered)."""
        raise NotImplementedError

    def _take(self, response: R) -> None:
        """Turns a response into items (``self._pending``), or raises."""
        raise NotImplementedError

    def _complete(self) -> bool:
        """The stream's end is its normal end (else it is reopened)."""
        return False

    # --- the iteration ---

    def __aiter__(self: S) -> S:
        return self

    async def __aenter__(self: S) -> S:
        return self

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

    async def __anext__(self) -> Item:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        pause = policy.PAUSE_MIN_S
        while not self._pending:
            if self._cancelled or self._finished:
                raise StopAsyncIteration
            failure = await self._read()
            if failure is None:
                deadline, pause = None, policy.PAUSE_MIN_S
                continue
            self._call = None
            now = loop.time()
            deadline = deadline or now + self._client.config.retry_budget_s
            if now + pause >= deadline:
                raise unavailable(self._address, failure)
            endpoints = self._client.config.endpoints
            self._client.prefer(policy.next_member(endpoints, self._address, failure))
            await asyncio.sleep(pause)
            pause = policy.next_pause(pause)
        return self._pending.popleft()

    async def _read(self) -> Answer | None:
        """One response taken, or the normal end (``None``); else the retryable failure.
        A failure that is not retryable is raised."""
        if self._call is None:
            self._address = self._client.preferred
            self._call = self._open_call(self._client.stubs(self._address))
        try:
            response = await self._call.read()
        except asyncio.CancelledError:
            if not self._cancelled:
                raise
            self._finished = True
            return None
        except grpc.RpcError as error:
            if self._cancelled:
                self._finished = True
                return None
            failure = Answer.of(error)
            if not policy.retryable(failure):
                self._finished = True
                raise failure.error() from None
            return failure
        if response is grpc.aio.EOF:
            if self._cancelled or self._complete():
                self._finished = True
                return None
            return Answer(grpc.StatusCode.UNAVAILABLE, None, "the stream ended early")
        try:
            self._take(cast(R, response))
        except BaseException:  # the stream's end (a compaction): nothing more to read
            self.cancel()
            raise
        return None
