"""Sessions and locks (synchronous). A session is a lease kept alive by a background
thread that pings the leader on a KeepAlive stream every quarter of the TTL. It declares
the session lost once its lease may have run out: the leader never expires a lease
earlier than TTL after the ping it acknowledged was *sent*, so the thread counts from the
send and gives up a margin before that, while the lease is still certainly held. A ping
not answered within a short silence (an eighth of the TTL, 250 ms to 1 s) is given up and
the stream reopened on another member, so a dead or paused leader costs the session one
election, not its lease (``docs/semantics.md``, failover).

Request ids: a session counts them from 1. Every ``Lock`` and ``Unlock`` gets a new one;
only a retry of that same request (after a time-out, a lost connection, a member that is
not the leader) sends it again, so a retried lock that had queued joins its wait, and one
that was granted gets the same grant back, never a second one. ``Campaign``, ``Proclaim``
and ``Resign`` follow the same rule, as does a ``lock_stream`` reopened on another member.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

import grpc

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
    from lockmgr.client import Client

log = logging.getLogger("lockmgr")

# How long close() waits for the keepalive thread to notice it should stop.
_JOIN_TIMEOUT_S = 5.0


class Session:
    """A lease kept alive in the background. Open one with :meth:`Client.session`.

    ``lost`` is a :class:`threading.Event` set as soon as the lease may no longer be
    counted on, before the cluster could hand its locks to anyone else: stop writing
    under its locks then. ``is_lost`` says the same as a property.
    """

    def __init__(self, client: Client, lease_id: int, ttl_ms: int, safe_until: float) -> None:
        self.client = client
        self.lease_id = lease_id
        # The TTL the cluster granted (it clamps the one asked for).
        self.ttl = ttl_ms / 1000
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        self._ids_guard = threading.Lock()
        self._lost_guard = threading.Lock()
        self._lost_callbacks: list[Callable[[], None]] = []
        self._keepalive = _KeepAlive(self, safe_until)
        self._closed = False

    @classmethod
    def open(cls, client: Client, ttl: float) -> Session:
        asked_at = time.monotonic()
        granted = client.grant_lease(ttl)
        ttl_s = max(granted.ttl_ms, 0) / 1000
        session = cls(client, granted.lease_id, granted.ttl_ms, policy.safe_until(asked_at, ttl_s))
        session._keepalive.start()
        return session

    def __repr__(self) -> str:
        return f"Session(lease_id={self.lease_id}, ttl={self.ttl}, lost={self.is_lost})"

    @property
    def is_lost(self) -> bool:
        return self.lost.is_set()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except LockmgrError:
            if exc is None:
                raise
            log.warning("revoking lease %s failed", self.lease_id, exc_info=True)

    def close(self) -> None:
        """Stops the keepalive and revokes the lease: every lock it holds is released.
        A lease already gone (expired, revoked) is not an error here."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._keepalive.join(_JOIN_TIMEOUT_S)
        try:
            self.client.revoke_lease(self.lease_id)
        except LeaseNotFound:
            pass

    def when_lost(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` once the session is lost (from the keepalive thread; at once
        if it already is). A :class:`Leadership` sets its ``lost`` so."""
        with self._lost_guard:
            if not self.is_lost:
                self._lost_callbacks.append(callback)
                return
        callback()

    def _set_lost(self) -> None:
        with self._lost_guard:
            self.lost.set()
            callbacks, self._lost_callbacks = self._lost_callbacks, []
        for callback in callbacks:
            callback()

    def next_request_id(self) -> int:
        """A request id not used before in this session (they start at 1)."""
        with self._ids_guard:
            return next(self._ids)

    # --- locks ---

    def lock(
        self, path: str, wait: float = 30.0, *, mode: LockMode | str = LockMode.EXCLUSIVE
    ) -> Lock:
        """Waits up to ``wait`` seconds for a lock on ``path``; use the result as a
        context manager (unlocked at the end of the block) or call ``unlock()``.

        Raises :class:`WaitTimeout` (a :class:`LockBusy`) if the wait ended without it,
        :class:`LockBusy` if ``wait`` is 0 and the path is busy, :class:`SessionLost`."""
        lock = self.acquire(path, mode=mode, wait=wait)
        if lock is None:
            raise LockBusy(f"{path} was busy and the request did not wait")
        return lock

    def try_lock(self, path: str, *, mode: LockMode | str = LockMode.EXCLUSIVE) -> Lock | None:
        """The lock on ``path`` if it is free now, else ``None``."""
        return self.acquire(path, mode=mode, wait=0)

    def acquire(
        self, path: str, *, mode: LockMode | str, wait: float, permits: int = 0
    ) -> Lock | None:
        """A lock in ``mode`` (a semaphore's permit with ``permits``), waiting up to
        ``wait`` seconds (0: a try, ``None`` if busy)."""
        self._check_alive()
        lock_mode = LockMode.of(mode)
        request = self.new_lock_request(path, lock_mode, wait, permits)
        response = self.client.lock_request(request)
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

    def acquire_permit(self, path: str, permits: int, wait: float = 30.0) -> Lock:
        """Waits up to ``wait`` seconds for one of the ``permits`` places of the semaphore
        ``path`` (up to ``permits`` holders at once, each with its own fencing token). Every
        holder and waiter of the path names the same ``permits``. Use the result as
        :meth:`lock`'s.

        Raises :class:`WaitTimeout`, :class:`LockBusy` (``wait`` 0 and no place free),
        :class:`PermitsMismatch` (the path is a lock, or a semaphore of other permits),
        :class:`InvalidPermits`, :class:`SessionLost`."""
        lock = self.acquire(path, mode=LockMode.SEMAPHORE, wait=wait, permits=permits)
        if lock is None:
            raise LockBusy(f"{path}: its {permits} permits were taken and the request did not wait")
        return lock

    def try_acquire_permit(self, path: str, permits: int) -> Lock | None:
        """A permit of the semaphore ``path`` if one is free now, else ``None``."""
        return self.acquire(path, mode=LockMode.SEMAPHORE, wait=0, permits=permits)

    # --- lock streams ---

    def lock_stream(
        self,
        path: str,
        wait: float = 30.0,
        *,
        mode: LockMode | str | None = None,
        permits: int = 0,
    ) -> LockStream:
        """A lock request (a semaphore's with ``permits``; ``wait`` 0: a try) followed as
        it goes: iterate the result for :class:`LockState` s (QUEUED, ACQUIRED,
        JEOPARDY, LOST, BUSY); ``stream.lock`` is the :class:`Lock` once ACQUIRED. Leaving
        its ``with`` block ends the stream and unlocks. Errors are :meth:`lock`'s, raised
        by the iteration."""
        self._check_alive()
        lock_mode = LockMode.of_request(mode, permits)
        return LockStream(self, self.new_lock_request(path, lock_mode, wait, permits), lock_mode)

    # --- elections ---

    def campaign(self, name: str, value: str, wait: float | None = None) -> Leadership:
        """Waits up to ``wait`` seconds (``None``: as long as the server allows) until this
        session leads the election ``name``, with ``value`` as the leader's value
        (what :meth:`Client.leader` answers). Use the result as a context manager (it
        resigns at the end of the block) or call ``resign()``.

        Raises :class:`WaitTimeout` (a :class:`LockBusy`) if the wait ended first,
        :class:`SessionLost` if the lease ended while waiting."""
        self._check_alive()
        request = pb.CampaignRequest(
            name=name,
            lease_id=self.lease_id,
            value=value,
            wait_timeout_ms=policy.campaign_wait_ms(wait),
            request_id=self.next_request_id(),
        )
        response = self.client.campaign_request(request)
        return Leadership(self, response.leader, value)

    def release(self, path: str, fencing_token: int) -> None:
        """Unlocks one grant (what :meth:`Lock.unlock` does)."""
        request = pb.UnlockRequest(
            path=path,
            lease_id=self.lease_id,
            fencing_token=fencing_token,
            request_id=self.next_request_id(),
        )
        self.client.unlock_request(request)

    def time_to_live(self) -> LeaseTimeToLive:
        """The lease's remaining TTL and paths, as the leader sees them."""
        return self.client.time_to_live(self.lease_id)

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

    def unlock(self) -> None:
        """Releases the lock (the path goes to its next waiters at once)."""
        if self.released:
            return
        self.released = True
        self.session.release(self.path, self.fencing_token)

    def __enter__(self) -> Lock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.unlock()
        except LockmgrError as error:
            _held.end_failed(error, exc, self.lease_id, f"{self.path} was held", f"unlocking {self.path} failed; its lease will release it", log)


# --- the keepalive thread ---

_Item = pb.LeaseKeepAliveResponse | grpc.RpcError | None


class _PingStream:
    """An open KeepAlive stream: pings go in through a queue, answers come out through
    another (a reader thread drains the call, so the keepalive can wait with a time-out)."""

    def __init__(self, client: Client, address: str) -> None:
        self.address = address
        self._pings: queue.Queue[pb.LeaseKeepAliveRequest | None] = queue.Queue()
        self.answers: queue.Queue[_Item] = queue.Queue()
        self._call = client.stubs(address).lease.KeepAlive(self._outgoing())
        self._reader = threading.Thread(target=self._read, name="lockmgr-keepalive-reader")
        self._reader.daemon = True
        self._reader.start()

    def _outgoing(self) -> Iterator[pb.LeaseKeepAliveRequest]:
        while True:
            ping = self._pings.get()
            if ping is None:
                return
            yield ping

    def _read(self) -> None:
        try:
            for answer in self._call:
                self.answers.put(answer)
            self.answers.put(None)
        except grpc.RpcError as error:
            self.answers.put(error)

    def send(self, lease_id: int) -> None:
        self._pings.put(pb.LeaseKeepAliveRequest(lease_id=lease_id))

    def close(self) -> None:
        self._pings.put(None)
        self._call.cancel()


class _PingFailed(Exception):
    pass


class _KeepAlive(threading.Thread):
    def __init__(self, session: Session, safe_until: float) -> None:
        super().__init__(name=f"lockmgr-keepalive-{session.lease_id}", daemon=True)
        self.session = session
        self.client = session.client
        self.ttl = session.ttl
        # Until when the lease is certainly alive (monotonic clock).
        self.safe_until = safe_until
        self.stream: _PingStream | None = None

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self.stream is not None:
                self.stream.close()

    def _run(self) -> None:
        session, interval = self.session, policy.keepalive_interval(self.ttl)
        while not session._stop.is_set():
            if time.monotonic() >= self.safe_until:
                log.warning("session lost: lease %s could not be renewed in time", session.lease_id)
                session._set_lost()
                return
            try:
                if not self._ping():
                    log.warning("session lost: lease %s is gone", session.lease_id)
                    session._set_lost()
                    return
            except _PingFailed as error:
                log.info("lease %s: renew failed: %s", session.lease_id, error)
                self._drop_stream()
            except LockmgrError as error:  # the client was closed
                log.info("lease %s: keepalive stopped: %s", session.lease_id, error)
                self._drop_stream()
            pause = interval if self.stream is not None else policy.KEEPALIVE_REOPEN_PAUSE_S
            wake = min(time.monotonic() + pause, self.safe_until)
            session._stop.wait(max(0.0, wake - time.monotonic()))

    def _drop_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def _ping(self) -> bool:
        """One ping; ``False`` if the lease is gone."""
        if self.stream is None:
            self.stream = _PingStream(self.client, self.client.preferred)
        stream = self.stream
        sent_at = time.monotonic()
        stream.send(self.session.lease_id)
        left = self.safe_until - time.monotonic()
        silence = policy.silence(self.ttl)
        try:
            answer = stream.answers.get(timeout=max(0.0, min(left, silence)))
        except queue.Empty:
            if left > silence:
                self.client.skip(stream.address)
                raise _PingFailed(
                    f"no keepalive answer from {stream.address} within {silence} s"
                ) from None
            raise _PingFailed("no keepalive answer in time") from None
        if answer is None:
            raise _PingFailed("keepalive stream closed")
        if isinstance(answer, grpc.RpcError):
            failure = Answer.of(answer)
            # As the Rust client on opening: the leader it names, else the next member.
            hint = failure.leader_address
            self.client.prefer(
                hint or policy.next_after(self.client.config.endpoints, stream.address)
            )
            raise _PingFailed(f"{stream.address}: {failure.error()}")
        if answer.ttl_ms > 0:
            self.safe_until = policy.safe_until(sent_at, answer.ttl_ms / 1000)
            return True
        return False


# Imported last: they build on the session's classes.
from lockmgr.election import Leadership  # noqa: E402
from lockmgr.lock_stream import LockStream  # noqa: E402
