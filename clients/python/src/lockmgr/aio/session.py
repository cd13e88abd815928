"""Sessions and locks for asyncio: as :mod:`lockmgr.session`, with the keepalive as a
task on the session's event loop and ``lost`` an :class:`asyncio.Event`. The request id
rule is the same: a new id per ``Lock``, ``Unlock``, ``Campaign``, ``Proclaim`` and
``Resign`` (and per ``lock_stream``), reused only by its retries.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from lockmgr import _held
from lockmgr import _policy as policy
from lockmgr.errors import (
    Answer,
    LeaseNotFound,
    LockBusy,
    LockmgrError,
    SessionLost,
)
from lockmgr.types import LeaseTimeToLive, LockMode
from lockmgr.v1 import lockmgr_pb2 as pb

if TYPE_CHECKING:
    from lockmgr.aio.client import Client, Opening

log = logging.getLogger("lockmgr")


class Session:
    """A lease kept alive by a task. ``lost`` is an :class:`asyncio.Event` set as soon as
    the lease may no longer be counted on; ``is_lost`` the same as a property."""

    def __init__(self, client: Client, lease_id: int, ttl_ms: int, safe_until: float) -> None:
        self.client = client
        self.lease_id = lease_id
        self.ttl = ttl_ms / 1000
        self.lost = asyncio.Event()
        self._lost_callbacks: list[Callable[[], None]] = []
        self._stop = asyncio.Event()
        self._ids = itertools.count(1)
        self._keepalive = _KeepAlive(self, safe_until)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, client: Client, ttl: float) -> Session:
        asked_at = asyncio.get_running_loop().time()
        granted = await client.grant_lease(ttl)
        ttl_s = max(granted.ttl_ms, 0) / 1000
        session = cls(client, granted.lease_id, granted.ttl_ms, policy.safe_until(asked_at, ttl_s))
        session._task = asyncio.create_task(
            session._keepalive.run(), name=f"lockmgr-keepalive-{granted.lease_id}"
        )
        return session

    def __repr__(self) -> str:
        return f"Session(lease_id={self.lease_id}, ttl={self.ttl}, lost={self.is_lost})"

    @property
    def is_lost(self) -> bool:
        return self.lost.is_set()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.close()
        except LockmgrError:
            if exc is None:
                raise
            log.warning("revoking lease %s failed", self.lease_id, exc_info=True)

    async def close(self) -> None:
        """Stops the keepalive and revokes the lease (already gone: not an error)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=5.0)
        try:
            await self.client.revoke_lease(self.lease_id)
        except LeaseNotFound:
            pass

    def when_lost(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` once the session is lost (at once if it already is)."""
        if self.is_lost:
            callback()
        else:
            self._lost_callbacks.append(callback)

    def _set_lost(self) -> None:
        self.lost.set()
        callbacks, self._lost_callbacks = self._lost_callbacks, []
        for callback in callbacks:
            callback()

    def next_request_id(self) -> int:
        return next(self._ids)

    # --- locks ---

    def lock(
        self, path: str, wait: float = 30.0, *, mode: LockMode | str = LockMode.EXCLUSIVE
    ) -> Opening[Lock]:
        """Waits up to ``wait`` seconds for a lock on ``path``: ``async with
        session.lock(path) as lock:`` (unlocked after the block) or ``await``."""
        from lockmgr.aio.client import Opening

        return Opening(self._lock(path, wait, mode))

    async def _lock(self, path: str, wait: float, mode: LockMode | str) -> Lock:
        lock = await self.acquire(path, mode=mode, wait=wait)
        if lock is None:
            raise LockBusy(f"{path} was busy and the request did not wait")
        return lock

    async def try_lock(
        self, path: str, *, mode: LockMode | str = LockMode.EXCLUSIVE
    ) -> Lock | None:
        """The lock on ``path`` if it is free now, else ``None``."""
        return await self.acquire(path, mode=mode, wait=0)

    async def acquire(
        self, path: str, *, mode: LockMode | str, wait: float, permits: int = 0
    ) -> Lock | None:
        """A lock in ``mode`` (a semaphore's permit with ``permits``), waiting up to
        ``wait`` seconds (0: a try, ``None`` if busy)."""
        self._check_alive()
        lock_mode = LockMode.of(mode)
        request = self.new_lock_request(path, lock_mode, wait, permits)
        response = await self.client.lock_request(request)
        if not response.acquired:
            return None
        return Lock(self, path, response.fencing_token, lock_mode, request.permits)

    def new_lock_request(
        self, path: str, mode: LockMode, wait: float, permits: int = 0
    ) -> pb.LockRequest:
        """A ``Lock`` request of this session's lease, with a new request id."""
        return pb.LockRequest(
            path=path,
            lease_id=self.lease_id,
            mode=mode.wire,
            wait_timeout_ms=policy.wait_ms(wait),
            holder_id=self.client.config.holder_id,
            request_id=self.next_request_id(),
            permits=policy.permits_count(permits),
        )

    # --- semaphores ---

    def acquire_permit(self, path: str, permits: int, wait: float = 30.0) -> Opening[Lock]:
        """Waits up to ``wait`` seconds for a permit of the semaphore ``path`` (see
        :meth:`lockmgr.Session.acquire_permit`): ``async with`` or ``await``."""
        from lockmgr.aio.client import Opening

        return Opening(self._acquire_permit(path, permits, wait))

    async def _acquire_permit(self, path: str, permits: int, wait: float) -> Lock:
        lock = await self.acquire(path, mode=LockMode.SEMAPHORE, wait=wait, permits=permits)
        if lock is None:
            raise LockBusy(f"{path}: its {permits} permits were taken and the request did not wait")
        return lock

    async def try_acquire_permit(self, path: str, permits: int) -> Lock | None:
        """A permit of the semaphore ``path`` if one is free now, else ``None``."""
        return await self.acquire(path, mode=LockMode.SEMAPHORE, wait=0, permits=permits)

    # --- lock streams ---

    def lock_stream(
        self,
        path: str,
        wait: float = 30.0,
        *,
        mode: LockMode | str | None = None,
        permits: int = 0,
    ) -> LockStream:
        """A lock request followed as it goes (see :meth:`lockmgr.Session.lock_stream`):
        ``async with session.lock_stream(path) as states: async for state in states``."""
        self._check_alive()
        lock_mode = LockMode.of_request(mode, permits)
        return LockStream(self, self.new_lock_request(path, lock_mode, wait, permits), lock_mode)

    # --- elections ---

    def campaign(self, name: str, value: str, wait: float | None = None) -> Opening[Leadership]:
        """Waits up to ``wait`` seconds (``None``: as long as the server allows) until this
        session leads the election ``name`` with ``value`` (see
        :meth:`lockmgr.Session.campaign`): ``async with`` (resigns after the block) or
        ``await``."""
        from lockmgr.aio.client import Opening

        return Opening(self._campaign(name, value, wait))

    async def _campaign(self, name: str, value: str, wait: float | None) -> Leadership:
        self._check_alive()
        request = pb.CampaignRequest(
            name=name,
            lease_id=self.lease_id,
            value=value,
            wait_timeout_ms=policy.campaign_wait_ms(wait),
            request_id=self.next_request_id(),
        )
        response = await self.client.campaign_request(request)
        return Leadership(self, response.leader, value)

    async def release(self, path: str, fencing_token: int) -> None:
        request = pb.UnlockRequest(
            path=path,
            lease_id=self.lease_id,
            fencing_token=fencing_token,
            request_id=self.next_request_id(),
        )
        await self.client.unlock_request(request)

    async def time_to_live(self) -> LeaseTimeToLive:
        return await self.client.time_to_live(self.lease_id)

    def _check_alive(self) -> None:
        if self.is_lost:
            raise SessionLost(f"session lost: lease {self.lease_id} may be gone")
        if self._closed:
            raise SessionLost(f"session closed: lease {self.lease_id} was revoked")


class Lock:
    """A held lock, or a semaphore's permit (``permits`` > 0). Give :attr:`fencing_token`
    to every resource written under it."""

    def __init__(
        self, session: Session, path: str, fencing_token: int, mode: LockMode, permits: int = 0
    ) -> None:
        self.session = session
        self.path = path
        self.fencing_token = fencing_token
        self.mode = mode
        # Mode SEMAPHORE: the semaphore's permits (0 for a lock).
        self.permits = permits
        self.released = False

    @property
    def lease_id(self) -> int:
        return self.session.lease_id

    def __repr__(self) -> str:
        permits = f", permits={self.permits}" if self.permits else ""
        return (
            f"Lock(path={self.path!r}, fencing_token={self.fencing_token}, "
            f"lease_id={self.lease_id}, mode={self.mode.value}{permits})"
        )

    async def unlock(self) -> None:
        if self.released:
            return
        self.released = True
        await self.session.release(self.path, self.fencing_token)

    async def __aenter__(self) -> Lock:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.unlock()
        except LockmgrError as error:
            _held.end_failed(error, exc, self.lease_id, f"{self.path} was held", f"unlocking {self.path} failed; its lease will release it", log)


class _PingFailed(Exception):
    pass


_Stream = tuple[grpc.aio.StreamStreamCall[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse], str]


class _KeepAlive:
    """The keepalive loop (``lockmgr.session`` explains its timing)."""

    def __init__(self, session: Session, safe_until: float) -> None:
        self.session = session
        self.client = session.client
        self.ttl = session.ttl
        self.safe_until = safe_until
        self.stream: _Stream | None = None

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._drop_stream()

    async def _run(self) -> None:
        session, loop = self.session, asyncio.get_running_loop()
        interval = policy.keepalive_interval(self.ttl)
        while not session._stop.is_set():
            if loop.time() >= self.safe_until:
                log.warning("session lost: lease %s could not be renewed in time", session.lease_id)
                session._set_lost()
                return
            try:
                if not await self._ping():
                    log.warning("session lost: lease %s is gone", session.lease_id)
                    session._set_lost()
                    return
            except (_PingFailed, LockmgrError) as error:
                log.info("lease %s: renew failed: %s", session.lease_id, error)
                self._drop_stream()
            pause = interval if self.stream is not None else policy.KEEPALIVE_REOPEN_PAUSE_S
            wake = min(loop.time() + pause, self.safe_until)
            try:
                await asyncio.wait_for(session._stop.wait(), max(0.0, wake - loop.time()))
            except asyncio.TimeoutError:
                pass

    def _drop_stream(self) -> None:
        if self.stream is not None:
            self.stream[0].cancel()
            self.stream = None

    async def _ping(self) -> bool:
        loop = asyncio.get_running_loop()
        if self.stream is None:
            address = self.client.preferred
            self.stream = (self.client.stubs(address).lease.KeepAlive(), address)
        call, address = self.stream
        sent_at = loop.time()
        silence = policy.silence(self.ttl)
        left = self.safe_until - loop.time()
        try:
            answer = await asyncio.wait_for(
                _exchange(call, self.session.lease_id), max(0.0, min(left, silence))
            )
        except asyncio.TimeoutError:
            if left > silence:
                self.client.skip(address)
                raise _PingFailed(f"no keepalive answer from {address} within {silence} s") from None
            raise _PingFailed("no keepalive answer in time") from None
        except grpc.RpcError as error:
            failure = Answer.of(error)
            hint = failure.leader_address
            self.client.prefer(hint or policy.next_after(self.client.config.endpoints, address))
            raise _PingFailed(f"{address}: {failure.error()}") from None
        if answer is None:
            raise _PingFailed("keepalive stream closed")
        if answer.ttl_ms > 0:
            self.safe_until = policy.safe_until(sent_at, answer.ttl_ms / 1000)
            return True
        return False


async def _exchange(
    call: grpc.aio.StreamStreamCall[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse],
    lease_id: int,
) -> pb.LeaseKeepAliveResponse | None:
    """One ping and its answer; ``None`` if the stream ended."""
    await call.write(pb.LeaseKeepAliveRequest(lease_id=lease_id))
    answer = await call.read()
    if answer is grpc.aio.EOF:
        return None
    assert isinstance(answer, pb.LeaseKeepAliveResponse)
    return answer


# Imported last: they build on the session's classes.
from lockmgr.aio.election import Leadership  # noqa: E402
from lockmgr.aio.lock_stream import LockStream  # noqa: E402
