"""The synchronous client: one lazily connected channel per member, a preferred member
(the last known leader), and a retry loop that follows the leader hint of an
``UNAVAILABLE`` answer or moves on to the next member, within a time budget, as the Rust
client does (``_policy`` holds the rules). Safe to share between threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeVar

import grpc

from lockmgr import _policy as policy
from lockmgr.errors import Answer, LockmgrError, unavailable
from lockmgr.types import FenceCheck, Leader, LeaseStatus, LeaseTimeToLive, LockInfo
from lockmgr.v1 import lockmgr_pb2 as pb
from lockmgr.v1 import lockmgr_pb2_grpc as pb_grpc

T = TypeVar("T")


class Stubs:
    """The generated stubs of one member's channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.lock = pb_grpc.LockServiceStub(channel)
        self.lease = pb_grpc.LeaseServiceStub(channel)
        self.watch = pb_grpc.WatchServiceStub(channel)
        self.cluster = pb_grpc.ClusterServiceStub(channel)
        self.election = pb_grpc.ElectionServiceStub(channel)


class Client:
    """A handle on the cluster.

    ``endpoints`` are the client addresses of some members (one is enough), written
    ``host:port`` or ``http://host:port``, as a list or one comma-separated string. No
    connection is made until the first call. Use it as a context manager, or ``close()``.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        attempt_timeout: float = 1.0,
        retry_budget: float = 15.0,
        holder_id: str | None = None,
        interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
    ) -> None:
        self.config = policy.Config(
            endpoints=policy.endpoint_addresses(endpoints),
            attempt_timeout_s=attempt_timeout,
            retry_budget_s=retry_budget,
            holder_id=holder_id if holder_id is not None else policy.default_holder_id(),
        )
        self._interceptors = tuple(interceptors)
        self._guard = threading.Lock()
        self._channels: dict[str, tuple[grpc.Channel, Stubs]] = {}
        self._preferred = self.config.endpoints[0]
        self._closed = False

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes every channel; sessions opened on this client stop working."""
        with self._guard:
            self._closed = True
            channels, self._channels = self._channels, {}
        for channel, _ in channels.values():
            channel.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # --- routing ---

    @property
    def preferred(self) -> str:
        """The member requests go to first (the leader, once known)."""
        with self._guard:
            return self._preferred

    def prefer(self, address: str) -> None:
        with self._guard:
            self._preferred = address

    def skip(self, address: str) -> None:
        """Moves on from ``address``, which did not answer in time."""
        with self._guard:
            if self._preferred == address:
                self._preferred = policy.next_after(self.config.endpoints, address)

    def stubs(self, address: str) -> Stubs:
        with self._guard:
            if self._closed:
                raise LockmgrError("the client is closed")
            entry = self._channels.get(address)
            if entry is None:
                channel = grpc.insecure_channel(address, options=list(policy.CHANNEL_OPTIONS))
                if self._interceptors:
                    channel = grpc.intercept_channel(channel, *self._interceptors)
                entry = (channel, Stubs(channel))
                self._channels[address] = entry
            return entry[1]

    def retrying(self, call: Callable[[Stubs, float], T], patience: float | None = None) -> T:
        """Runs ``call(stubs, timeout)`` against the preferred member, following leader
        hints and moving on from members that do not answer, until it succeeds, fails for
        good, or the retry budget is spent. ``call`` must be safe to repeat: it sends the
        same request (same request id) every time."""
        patience = patience if patience is not None else self.config.attempt_timeout_s
        deadline = time.monotonic() + self.config.retry_budget_s
        pause = policy.PAUSE_MIN_S
        while True:
            address = self.preferred
            try:
                return call(self.stubs(address), patience)
            except grpc.RpcError as error:
                answer = Answer.of(error)
            if not policy.retryable(answer):
                raise answer.error()
            self.prefer(policy.next_member(self.config.endpoints, address, answer))
            if time.monotonic() + pause >= deadline:
                raise unavailable(address, answer)
            time.sleep(pause)
            pause = policy.next_pause(pause)

    def follow_leader(self) -> None:
        """Asks the cluster who leads and sends to that member from now on (leader hints
        in errors keep it current after a leader change)."""
        for member in self.members().members:
            if member.is_leader:
                self.prefer(member.client_address)

    # --- sessions ---

    def session(self, ttl: float = 10.0) -> Session:
        """Opens a session: a lease of ``ttl`` seconds (clamped by the cluster), kept
        alive by a background thread, revoked by ``close()`` or at the end of a ``with``
        block."""
        return Session.open(self, ttl)

    # --- leases ---

    def grant_lease(self, ttl: float) -> pb.LeaseGrantResponse:
        """A bare lease (not kept alive). A retry after a lost answer may grant a second
        one, which expires after its TTL: ``Grant`` has no request id."""
        request = pb.LeaseGrantRequest(ttl_ms=policy.ttl_ms(ttl))
        return self.retrying(lambda s, t: s.lease.Grant(request, timeout=t))

    def revoke_lease(self, lease_id: int) -> None:
        """Revokes a lease: every lock it holds is released, every wait dropped."""
        request = pb.LeaseRevokeRequest(lease_id=lease_id)
        self.retrying(lambda s, t: s.lease.Revoke(request, timeout=t))

    def time_to_live(self, lease_id: int) -> LeaseTimeToLive:
        request = pb.LeaseTimeToLiveRequest(lease_id=lease_id)
        return LeaseTimeToLive.from_wire(
            self.retrying(lambda s, t: s.lease.TimeToLive(request, timeout=t))
        )

    def leases(self) -> list[LeaseStatus]:
        """Every lease, in id order (all pages)."""
        leases: list[LeaseStatus] = []
        after = 0
        for _ in range(policy.PAGES_MAX):
            request = pb.LeaseListRequest(after_lease_id=after)
            page = self.retrying(lambda s, t: s.lease.List(request, timeout=t))
            leases.extend(LeaseStatus.from_wire(s) for s in page.leases)
            if page.next_after_lease_id == 0:
                break
            after = page.next_after_lease_id
        return leases

    def renew_lease(self, lease_id: int) -> int:
        """Renews a lease once (a keepalive stream of one ping): its TTL in ms from now,
        0 if the lease is gone. A :class:`Session` keeps its own lease alive."""
        request = pb.LeaseKeepAliveRequest(lease_id=lease_id)

        def ping(stubs: Stubs, timeout: float) -> int:
            for answer in stubs.lease.KeepAlive(iter([request]), timeout=timeout):
                return int(answer.ttl_ms)
            raise _stream_closed()

        return self.retrying(ping)

    # --- locks ---

    def lock_request(self, request: pb.LockRequest) -> pb.LockResponse:
        """One ``Lock`` call, retried as is (same request id) until answered. Sessions
        use it; it is public for callers that manage their own leases and ids."""
        patience = policy.lock_patience(self.config, request.wait_timeout_ms / 1000)
        return self.retrying(lambda s, t: s.lock.Lock(request, timeout=t), patience)

    def unlock_request(self, request: pb.UnlockRequest) -> pb.UnlockResponse:
        """One ``Unlock`` call, retried as is (same request id) until answered."""
        return self.retrying(lambda s, t: s.lock.Unlock(request, timeout=t))

    def get_lock(self, path: str, *, serializable: bool = False) -> LockInfo | None:
        """The path's holders and waiters; ``None`` if it has no state."""
        request = pb.GetLockRequest(path=path, consistency=_consistency(serializable))
        response = self.retrying(lambda s, t: s.lock.GetLock(request, timeout=t))
        return LockInfo.from_wire(response.lock) if response.HasField("lock") else None

    def list_locks(self, prefix: str = "/", *, serializable: bool = False) -> list[LockInfo]:
        """Every path at or below ``prefix`` (by segment) that has state, in path order
        (all pages)."""
        locks: list[LockInfo] = []
        page_token = ""
        for _ in range(policy.PAGES_MAX):
            request = pb.ListLocksRequest(
                prefix=prefix, page_token=page_token, consistency=_consistency(serializable)
            )
            page = self.retrying(lambda s, t: s.lock.ListLocks(request, timeout=t))
            locks.extend(LockInfo.from_wire(info) for info in page.locks)
            if not page.next_page_token:
                break
            page_token = page.next_page_token
        return locks

    def validate_fence(
        self, path: str, fencing_token: int, *, serializable: bool = False
    ) -> FenceCheck:
        """Is ``fencing_token`` a current holder's token for ``path``? (Never base a
        fencing decision on a serializable answer: it may be stale.)"""
        request = pb.ValidateFenceRequest(
            path=path, fencing_token=fencing_token, consistency=_consistency(serializable)
        )
        response = self.retrying(lambda s, t: s.lock.ValidateFence(request, timeout=t))
        return FenceCheck(response.valid, tuple(response.current_tokens))

    # --- watches ---

    def watch(
        self, path: str = "/", *, exact: bool = False, start_revision: int = 0
    ) -> Watch:
        """The lock events of every path under ``path`` (by segment; ``exact``: of that
        path only), from ``start_revision`` (0: from now). Iterate it; ``cancel()`` or
        leaving a ``with`` block ends it. If its member fails, it resumes on another
        after the last event it delivered."""
        return Watch(self, path, prefix=not exact, start_revision=start_revision)

    # --- elections ---

    def campaign_request(self, request: pb.CampaignRequest) -> pb.CampaignResponse:
        """One ``Campaign`` call, retried as is (same request id) until answered
        (:meth:`Session.campaign` uses it)."""
        patience = policy.campaign_patience(self.config, request.wait_timeout_ms)
        return self.retrying(lambda s, t: s.election.Campaign(request, timeout=t), patience)

    def proclaim_request(self, request: pb.ProclaimRequest) -> pb.ProclaimResponse:
        """One ``Proclaim`` call, retried as is (same request id) until answered."""
        return self.retrying(lambda s, t: s.election.Proclaim(request, timeout=t))

    def resign_request(self, request: pb.ResignRequest) -> pb.ResignResponse:
        """One ``Resign`` call, retried as is (same request id) until answered."""
        return self.retrying(lambda s, t: s.election.Resign(request, timeout=t))

    def leader(self, name: str, *, serializable: bool = False) -> Leader | None:
        """Who leads the election ``name`` (its value, lease and token); ``None`` if
        nobody does."""
        request = pb.LeaderRequest(name=name, consistency=_consistency(serializable))
        response = self.retrying(lambda s, t: s.election.Leader(request, timeout=t))
        if not response.HasField("leader"):
            return None
        return Leader.from_wire(response.leader, response.value)

    def observe(self, name: str, *, start_revision: int = 0) -> Observation:
        """The leader of the election ``name`` now (or from ``start_revision``), then each
        change (a new leader, a new value, nobody), as :class:`LeaderChange` s. Iterate
        it; ``cancel()`` or leaving a ``with`` block ends it. If its member fails, it
        resumes on another after the last change it delivered."""
        return Observation(self, name, start_revision=start_revision)

    # --- the cluster ---

    def status(self) -> pb.StatusResponse:
        """The preferred member's status (its leader, indexes, counts)."""
        return self.retrying(lambda s, t: s.cluster.Status(pb.StatusRequest(), timeout=t))

    def members(self) -> pb.ListMembersResponse:
        return self.retrying(
            lambda s, t: s.cluster.ListMembers(pb.ListMembersRequest(), timeout=t)
        )


def _consistency(serializable: bool) -> pb.ReadConsistency:
    return pb.READ_CONSISTENCY_SERIALIZABLE if serializable else pb.READ_CONSISTENCY_LINEARIZABLE


class _StreamClosed(grpc.RpcError):
    """A stream that ended before its answer: retried like a broken connection."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "the stream closed unanswered"


def _stream_closed() -> grpc.RpcError:
    return _StreamClosed()


# Imported last: the session module builds on the client.
from lockmgr.election import Observation  # noqa: E402
from lockmgr.session import Session  # noqa: E402
from lockmgr.watch import Watch  # noqa: E402

__all__ = ["Client", "Observation", "Session", "Stubs", "Watch"]
