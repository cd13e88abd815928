"""The values the client returns, read from the wire messages (``lockmgr.v1``).

Durations keep the wire's names and units (``held_ms``, ``remaining_ttl_ms``); the
client's arguments are seconds (``ttl=10``, ``wait=30``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lockmgr.v1 import lockmgr_pb2 as pb


class LockMode(enum.Enum):
    EXCLUSIVE = "exclusive"
    SHARED = "shared"

    @property
    def wire(self) -> pb.LockMode:
        return pb.LOCK_MODE_SHARED if self is LockMode.SHARED else pb.LOCK_MODE_EXCLUSIVE

    @classmethod
    def of(cls, mode: LockMode | str) -> LockMode:
        """``LockMode.SHARED`` also written ``"shared"``."""
        return mode if isinstance(mode, LockMode) else cls(mode.lower())

    @classmethod
    def from_wire(cls, mode: int) -> LockMode:
        # On the wire, UNSPECIFIED (0) means exclusive.
        return cls.SHARED if mode == pb.LOCK_MODE_SHARED else cls.EXCLUSIVE


class EventKind(enum.Enum):
    ACQUIRED = "acquired"
    RELEASED = "released"
    QUEUED = "queued"
    DEQUEUED = "dequeued"
    UNSPECIFIED = "unspecified"


_EVENT_KINDS = {
    pb.EVENT_KIND_ACQUIRED: EventKind.ACQUIRED,
    pb.EVENT_KIND_RELEASED: EventKind.RELEASED,
    pb.EVENT_KIND_QUEUED: EventKind.QUEUED,
    pb.EVENT_KIND_DEQUEUED: EventKind.DEQUEUED,
}


@dataclass(frozen=True)
class Holder:
    lease_id: int
    holder_id: str
    fencing_token: int
    mode: LockMode
    # Since the grant, on the answering member's clock (0 if unknown).
    held_ms: int

    @classmethod
    def from_wire(cls, h: pb.Holder) -> Holder:
        return cls(h.lease_id, h.holder_id, h.fencing_token, LockMode.from_wire(h.mode), h.held_ms)


@dataclass(frozen=True)
class Waiter:
    lease_id: int
    holder_id: str
    mode: LockMode
    wait_timeout_ms: int
    queued_revision: int
    waited_ms: int

    @classmethod
    def from_wire(cls, w: pb.Waiter) -> Waiter:
        return cls(
            w.lease_id,
            w.holder_id,
            LockMode.from_wire(w.mode),
            w.wait_timeout_ms,
            w.queued_revision,
            w.waited_ms,
        )


@dataclass(frozen=True)
class LockInfo:
    """A path's holders, its waiters in queue order, and whether a lock-delay is on."""

    path: str
    holders: tuple[Holder, ...]
    waiters: tuple[Waiter, ...]
    lock_delay: bool

    @classmethod
    def from_wire(cls, info: pb.LockInfo) -> LockInfo:
        return cls(
            info.path,
            tuple(Holder.from_wire(h) for h in info.holders),
            tuple(Waiter.from_wire(w) for w in info.waiters),
            info.lock_delay,
        )


@dataclass(frozen=True)
class FenceCheck:
    """``valid``: a current holder of the path holds exactly the token asked about."""

    valid: bool
    # The current holders' tokens, the highest first; empty if the path is free.
    current_tokens: tuple[int, ...]

    def __bool__(self) -> bool:
        return self.valid


@dataclass(frozen=True)
class LeaseTimeToLive:
    lease_id: int
    granted_ttl_ms: int
    # On the leader's clock, less the drift allowance; 0 once expiring.
    remaining_ttl_ms: int
    held_paths: tuple[str, ...]
    waiting_paths: tuple[str, ...]

    @classmethod
    def from_wire(cls, r: pb.LeaseTimeToLiveResponse) -> LeaseTimeToLive:
        return cls(
            r.lease_id,
            r.granted_ttl_ms,
            r.remaining_ttl_ms,
            tuple(r.held_paths),
            tuple(r.waiting_paths),
        )


@dataclass(frozen=True)
class LeaseStatus:
    lease_id: int
    granted_ttl_ms: int
    held_locks: int
    waiting: int

    @classmethod
    def from_wire(cls, s: pb.LeaseStatus) -> LeaseStatus:
        return cls(s.lease_id, s.granted_ttl_ms, s.held_locks, s.waiting)


@dataclass(frozen=True)
class Event:
    """A lock event; for ``ACQUIRED`` the fencing token is the event's revision."""

    revision: int
    kind: EventKind
    path: str
    lease_id: int
    holder_id: str
    mode: LockMode
    # For ACQUIRED and RELEASED: the grant's token (else 0).
    fencing_token: int
    # For RELEASED ("released", "revoked", "expired") and DEQUEUED ("wait_timeout",
    # "cancelled", "revoked", "expired"); None otherwise.
    reason: str | None

    @classmethod
    def from_wire(cls, e: pb.Event) -> Event:
        reason = None
        if e.reason != pb.RELEASE_REASON_UNSPECIFIED:
            try:
                name = pb.ReleaseReason.Name(e.reason)
            except ValueError:
                name = str(e.reason)
            reason = name.removeprefix("RELEASE_REASON_").lower()
        return cls(
            e.revision,
            _EVENT_KINDS.get(e.kind, EventKind.UNSPECIFIED),
            e.path,
            e.lease_id,
            e.holder_id,
            LockMode.from_wire(e.mode),
            e.fencing_token,
            reason,
        )
