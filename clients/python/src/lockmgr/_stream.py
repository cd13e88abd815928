"""A server stream that survives its member (synchronous): on a retryable failure (the
member stopped, is not the leader, the stream ended early) it is reopened on the next
member, or the leader the failure names, within the client's retry budget, with a
request the subclass says how to resume. An election's ``observe`` and a session's
``lock_stream`` are built on it (a :class:`lockmgr.Watch` has its own loop).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import grpc

from lockmgr import _policy as policy
from lockmgr.errors import Answer, unavailable

if TYPE_CHECKING:
    from lockmgr.client import Client, Stubs

R = TypeVar("R")
Item = TypeVar("Item")
R_co = TypeVar("R_co", covariant=True)
S = TypeVar("S", bound="Resuming[Any, Any]")


class StreamCall(Protocol[R_co]):
    """What grpcio's unary-stream call is to us: an iterator that can be cancelled."""

    def __next__(self) -> R_co: ...

    def cancel(self) -> bool: ...


class Resuming(Generic[R, Item]):
    """Iterate it for the items the subclass makes of the responses; ``cancel()`` or the
    end of a ``with`` block ends it."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._call: StreamCall[R] | None = None
        self._address = ""
        self._pending: collections.deque[Item] = collections.deque()
        self._cancelled = False
        # The server ended the stream as it should (the subclass says when).
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

    def __iter__(self) -> Iterator[Item]:
        return self

    def __enter__(self: S) -> S:
        return self

    def __exit__(
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

    def __next__(self) -> Item:
        deadline: float | None = None
        pause = policy.PAUSE_MIN_S
        while not self._pending:
            if self._cancelled or self._finished:
                raise StopIteration
            failure = self._read()
            if failure is None:
                deadline, pause = None, policy.PAUSE_MIN_S
                continue
            # The stream failed: reopen on the next member, resuming.
            self._call = None
            now = time.monotonic()
            deadline = deadline or now + self._client.config.retry_budget_s
            if now + pause >= deadline:
                raise unavailable(self._address, failure)
            endpoints = self._client.config.endpoints
            self._client.prefer(policy.next_member(endpoints, self._address, failure))
            time.sleep(pause)
            pause = policy.next_pause(pause)
        return self._pending.popleft()

    def _read(self) -> Answer | None:
        """One response taken, or the normal end (``None``); else the retryable failure.
        A failure that is not retryable is raised."""
        if self._call is None:
            self._address = self._client.preferred
            self._call = self._open_call(self._client.stubs(self._address))
        try:
            response = next(self._call)
        except StopIteration:
            if self._complete():
                self._finished = True
                return None
            return Answer(grpc.StatusCode.UNAVAILABLE, None, "the stream ended early")
        except grpc.RpcError as error:
            if self._cancelled:
                self._finished = True
                return None
            failure = Answer.of(error)
            if not policy.retryable(failure):
                self._finished = True
                raise failure.error() from None
            return failure
        try:
            self._take(response)
        except BaseException:  # the stream's end (a compaction): nothing more to read
            self.cancel()
            raise
        return None
