"""A watch (synchronous): an iterator of lock events that survives its member.

A watch asked "from now" first reads the member's revision (``Status``, when it is
created) and watches from the one after it, so that it always knows where to resume: if the stream fails with a
retryable status (the member stopped, or is being replaced), it is reopened on the next
member after the last event it delivered, as ``lockmgr watch`` does, within the client's
retry budget. A compaction notice ends it with :class:`WatchCompacted`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from lockmgr import _policy as policy
from lockmgr.errors import Answer, WatchCompacted, unavailable
from lockmgr.types import Event
from lockmgr.v1 import lockmgr_pb2 as pb

if TYPE_CHECKING:
    from lockmgr.client import Client


class Watch:
    """Iterate it for :class:`Event` s; ``cancel()`` (or the end of a ``with`` block)
    ends the iteration."""

    def __init__(self, client: Client, path: str, *, prefix: bool, start_revision: int) -> None:
        self._client = client
        self._path = path
        self._prefix = prefix
        # The revision the next (re)opened stream starts from; 0 until first opened.
        self.next_revision = start_revision
        self._call: Any = None
        self._pending: collections.deque[Event] = collections.deque()
        self._cancelled = False
        if self.next_revision == 0:
            # "From now" is from this call: the member's revision now, plus one.
            self.next_revision = client.status().header.revision + 1

    def __iter__(self) -> Iterator[Event]:
        return self

    def __enter__(self) -> Watch:
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

    def _open(self) -> None:
        client = self._client
        request = pb.WatchRequest(
            path=self._path, prefix=self._prefix, start_revision=self.next_revision
        )
        self._call = client.stubs(client.preferred).watch.Watch(request)

    def __next__(self) -> Event:
        deadline: float | None = None
        pause = policy.PAUSE_MIN_S
        while not self._pending:
            if self._cancelled:
                raise StopIteration
            if self._call is None:
                self._open()
            address = self._client.preferred
            try:
                response = next(self._call)
            except StopIteration:
                failure = Answer(grpc.StatusCode.UNAVAILABLE, None, "the watch stream ended")
            except grpc.RpcError as error:
                if self._cancelled:
                    raise StopIteration from None
                failure = Answer.of(error)
                if not policy.retryable(failure):
                    raise failure.error() from None
            else:
                self._take(response)
                deadline, pause = None, policy.PAUSE_MIN_S
                continue
            # The stream failed: reopen on the next member, after the last event.
            self._call = None
            now = time.monotonic()
            deadline = deadline or now + self._client.config.retry_budget_s
            if now + pause >= deadline:
                raise unavailable(address, failure)
            self._client.prefer(policy.next_member(self._client.config.endpoints, address, failure))
            time.sleep(pause)
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
