"""The asyncio client: the same routing and retry rule as :mod:`lockmgr.client` (the
rules are in ``lockmgr._policy``), on ``grpc.aio`` channels. Use it from one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import grpc
import grpc.aio

from lockmgr import _policy as policy
from lockmgr.errors import Answer, LockmgrError, unavailable
from lockmgr.types import FenceCheck, Leader, LeaseStatus, LeaseTimeToLive, LockInfo
from lockmgr.v1 import lockmgr_pb2 as pb
from lockmgr.v1 import lockmgr_pb2_grpc as pb_grpc

T = TypeVar("T")


class _AsyncClosing(Protocol):
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


C = TypeVar("C", bound=_AsyncClosing)


class Opening(Generic[C]):
    """What ``client.session()`` and ``session.lock()`` return: await it for the value,
    or use it as ``async with`` (then the value is closed at the end of the block)."""

    def __init__(self, opening: Coroutine[Any, Any, C]) -> None:
        self._opening = opening
        self._value: C | None = None

    def __await__(self) -> Generator[Any, None, C]:
        return self._opening.__await__()

    async def __aenter__(self) -> C:
        self._value = await self._opening
        return self._value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._value is not None, "entered"
        await self._value.__aexit__(exc_type, exc, tb)


class Stubs:
    """The generated stubs of one member's channel (typed as mypy-protobuf's asyncio
    stubs, which exist only for the type checker)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.lock: pb_grpc.LockServiceAsyncStub = pb_grpc.LockServiceStub(channel)
        self.lease: pb_grpc.LeaseServiceAsyncStub = pb_grpc.LeaseServiceStub(channel)
        self.watch: pb_grpc.WatchServiceAsyncStub = pb_grpc.WatchServiceStub(channel)
        self.cluster: pb_grpc.ClusterServiceAsyncStub = pb_grpc.ClusterServiceStub(channel)
        self.election: pb_grpc.ElectionServiceAsyncStub = pb_grpc.ElectionServiceStub(channel)


class Client:
    """A handle on the cluster, for asyncio (see :class:`lockmgr.Client`)."""

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        attempt_timeout: float = 1.0,
        retry_budget: float = 15.0,
        holder_id: str | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        self.config = policy.Config(
            endpoints=policy.endpoint_addresses(endpoints),
            attempt_timeout_s=attempt_timeout,
            retry_budget_s=retry_budget,
            holder_id=holder_id if holder_id is not None else policy.default_holder_id(),
        )
        self._interceptors = list(interceptors)
        self._channels: dict[str, tuple[grpc.aio.Channel, Stubs]] = {}
        self.preferred = self.config.endpoints[0]
        self._closed = False

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        channels, self._channels = self._channels, {}
        for channel, _ in channels.values():
            await channel.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # --- routing ---

    def prefer(self, address: str) -> None:
        self.preferred = address

    def skip(self, address: str) -> None:
        """Moves on from ``address``, which did not answer in time."""
        if self.preferred == address:
            self.preferred = policy.next_after(self.config.endpoints, address)

    def stubs(self, address: str) -> Stubs:
        if self._closed:
            raise LockmgrError("the client is closed")
        entry = self._channels.get(address)
        if entry is None:
            channel = grpc.aio.insecure_channel(
                address,
                options=list(policy.CHANNEL_OPTIONS),
                interceptors=self._interceptors or None,
            )
            entry = (channel, Stubs(channel))
            self._channels[address] = entry
        return entry[1]

    async def retrying(
        self, call: Callable[[Stubs, float], Awaitable[T]], patience: float | None = None
    ) -> T:
        """As :meth:`lockmgr.Client.retrying`: the same request until answered."""
        patience = patience if patience is not None else self.config.attempt_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.retry_budget_s
        pause = policy.PAUSE_MIN_S
        while True:
            address = self.preferred
            try:
                return await call(self.stubs(address), patience)
            except grpc.RpcError as error:
                answer = Answer.of(error)
            if not policy.retryable(answer):
                raise answer.error()
            self.prefer(policy.next_member(self.config.endpoints, address, answer))
            if loop.time() + pause >= deadline:
                raise unavailable(address, answer)
            await asyncio.sleep(pause)
            pause = policy.next_pause(pause)

    async def follow_leader(self) -> None:
        for member in (await self.members()).members:
            if member.is_leader:
                self.prefer(member.client_address)

    # --- sessions ---

    def session(self, ttl: float = 10.0) -> Opening[Session]:
        """Opens a session (a lease kept alive by a task): ``async with
        client.session(ttl=10) as session:`` or ``session = await client.session()``."""
        return Opening(Session.open(self, ttl))

    # --- leases ---

    async def grant_lease(self, ttl: float) -> pb.LeaseGrantResponse:
        request = pb.LeaseGrantRequest(ttl_ms=policy.ttl_ms(ttl))
        return await self.retrying(lambda s, t: s.lease.Grant(request, timeout=t))

    async def revoke_lease(self, lease_id: int) -> None:
        request = pb.LeaseRevokeRequest(lease_id=lease_id)
        await self.retrying(lambda s, t: s.lease.Revoke(request, timeout=t))

    async def time_to_live(self, lease_id: int) -> LeaseTimeToLive:
        request = pb.LeaseTimeToLiveRequest(lease_id=lease_id)
        response = await self.retrying(lambda s, t: s.lease.TimeToLive(request, timeout=t))
        return LeaseTimeToLive.from_wire(response)

    async def leases(self) -> list[LeaseStatus]:
        leases: list[LeaseStatus] = []
        after = 0
        for _ in range(policy.PAGES_MAX):
            request = pb.LeaseListRequest(after_lease_id=after)
            page = await self.retrying(lambda s, t: s.lease.List(request, timeout=t))
            leases.extend(LeaseStatus.from_wire(s) for s in page.leases)
            if page.next_after_lease_id == 0:
                break
            after = page.next_after_lease_id
        return leases

    async def renew_lease(self, lease_id: int) -> int:
        request = pb.LeaseKeepAliveRequest(lease_id=lease_id)

        async def ping(stubs: Stubs, timeout: float) -> int:
            call = stubs.lease.KeepAlive(iter([request]), timeout=timeout)
            async for answer in call:
                call.cancel()
                return int(answer.ttl_ms)
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details="the keepalive stream closed unanswered",
            )

        return await self.retrying(ping)

    # --- locks ---

    async def lock_request(self, request: pb.LockRequest) -> pb.LockResponse:
        """One ``Lock`` call, retried as is (same request id) until answered."""
        patience = policy.lock_patience(self.config, request.wait_timeout_ms / 1000)
        return await self.retrying(lambda s, t: s.lock.Lock(request, timeout=t), patience)

    async def unlock_request(self, request: pb.UnlockRequest) -> pb.UnlockResponse:
        return await self.retrying(lambda s, t: s.lock.Unlock(request, timeout=t))

    async def get_lock(self, path: str, *, serializable: bool = False) -> LockInfo | None:
        request = pb.GetLockRequest(path=path, consistency=_consistency(serializable))
        response = await self.retrying(lambda s, t: s.lock.GetLock(request, timeout=t))
        return LockInfo.from_wire(response.lock) if response.HasField("lock") else None

    async def list_locks(self, prefix: str = "/", *, serializable: bool = False) -> list[LockInfo]:
        locks: list[LockInfo] = []
        page_token = ""
        for _ in range(policy.PAGES_MAX):
            request = pb.ListLocksRequest(
                prefix=prefix, page_token=page_token, consistency=_consistency(serializable)
            )
            page = await self.retrying(lambda s, t: s.lock.ListLocks(request, timeout=t))
            locks.extend(LockInfo.from_wire(info) for info in page.locks)
            if not page.next_page_token:
                break
            page_token = page.next_page_token
        return locks

    async def validate_fence(
        self, path: str, fencing_token: int, *, serializable: bool = False
    ) -> FenceCheck:
        request = pb.ValidateFenceRequest(
            path=path, fencing_token=fencing_token, consistency=_consistency(serializable)
        )
        response = await self.retrying(lambda s, t: s.lock.ValidateFence(request, timeout=t))
        return FenceCheck(response.valid, tuple(response.current_tokens))

    # --- watches ---

    def watch(self, path: str = "/", *, exact: bool = False, start_revision: int = 0) -> Watch:
        """An async iterator of the lock events under ``path`` (see
        :meth:`lockmgr.Client.watch`). "From now" (``start_revision=0``) is from entering
        its ``async with`` block (or ``await watch.start()``, else its first iteration);
        the end of the block or ``cancel()`` ends it."""
        return Watch(self, path, prefix=not exact, start_revision=start_revision)

    # --- elections ---

    async def campaign_request(self, request: pb.CampaignRequest) -> pb.CampaignResponse:
        """One ``Campaign`` call, retried as is (same request id) until answered."""
        patience = policy.campaign_patience(self.config, request.wait_timeout_ms)
        return await self.retrying(lambda s, t: s.election.Campaign(request, timeout=t), patience)

    async def proclaim_request(self, request: pb.ProclaimRequest) -> pb.ProclaimResponse:
        return await self.retrying(lambda s, t: s.election.Proclaim(request, timeout=t))

    async def resign_request(self, request: pb.ResignRequest) -> pb.ResignResponse:
        return await self.retrying(lambda s, t: s.election.Resign(request, timeout=t))

    async def leader(self, name: str, *, serializable: bool = False) -> Leader | None:
        """Who leads the election ``name``; ``None`` if nobody does."""
        request = pb.LeaderRequest(name=name, consistency=_consistency(serializable))
        response = await self.retrying(lambda s, t: s.election.Leader(request, timeout=t))
        if not response.HasField("leader"):
            return None
        return Leader.from_wire(response.leader, response.value)

    def observe(self, name: str, *, start_revision: int = 0) -> Observation:
        """An async iterator of the leader of ``name`` now (or from ``start_revision``),
        then each change (see :meth:`lockmgr.Client.observe`)."""
        return Observation(self, name, start_revision=start_revision)

    # --- the cluster ---

    async def status(self) -> pb.StatusResponse:
        return await self.retrying(lambda s, t: s.cluster.Status(pb.StatusRequest(), timeout=t))

    async def members(self) -> pb.ListMembersResponse:
        return await self.retrying(
            lambda s, t: s.cluster.ListMembers(pb.ListMembersRequest(), timeout=t)
        )


def _consistency(serializable: bool) -> pb.ReadConsistency:
    return pb.READ_CONSISTENCY_SERIALIZABLE if serializable else pb.READ_CONSISTENCY_LINEARIZABLE


from lockmgr.aio.election import Observation  # noqa: E402
from lockmgr.aio.session import Session  # noqa: E402
from lockmgr.aio.watch import Watch  # noqa: E402
