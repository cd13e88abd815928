"""The values the client returns, read from the wire messages (``lockmgr.v1``).

Durations keep the wire's names and units (``held_ms``, ``remaining_ttl_ms``); the
client's arguments are seconds (``ttl=10``, ``wait=30``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from lockmgr.v1 import lockmgr_pb2 as pb


class LockMode(enum.Enum):
    EXCLUSIVE = "exclusive"
    SHARED = "shared"
    # A counting semaphore: up to its permits holders at once, each with its own token.
    SEMAPHORE = "semaphore"

    @property
    def wire(self) -> pb.LockMode:
        return _WIRE_MODES[self]

    @classmethod
    def of(cls, mode: LockMode | str) -> LockMode:
        """``LockMode.SHARED`` also written ``"shared"``."""
        return mode if isinstance(mode, LockMode) else cls(mode.lower())

    @classmethod
    def of_request(cls, mode: LockMode | str | None, permits: int) -> LockMode:
        """The mode given, else a semaphore if ``permits`` are, else exclusive."""
        if mode is not None:
            return cls.of(mode)
        return cls.SEMAPHORE if permits else cls.EXCLUSIVE

    @classmethod
    def from_wire(cls, mode: int) -> LockMode:
        # On the wire, UNSPECIFIED (0) means exclusive.
        return _MODES_BY_WIRE.get(mode, cls.EXCLUSIVE)


_WIRE_MODES = {
    LockMode.EXCLUSIVE: pb.LOCK_MODE_EXCLUSIVE,
    LockMode.SHARED: pb.LOCK_MODE_SHARED,
    LockMode.SEMAPHORE: pb.LOCK_MODE_SEMAPHORE,
}
_MODES_BY_WIRE: dict[int, LockMode] = {int(wire): mode for mode, wire in _WIRE_MODES.items()}


class EventKind(enum.Enum):
    ACQUIRED = "acquired"
    RELEASED = "released"
    QUEUED = "queued"
    DEQUEUED = "dequeued"
    # The holder changed its holder_id: an election's new value (``Leadership.proclaim``).
    PROCLAIMED = "proclaimed"
    UNSPECIFIED = "unspecified"


_EVENT_KINDS = {
    pb.EVENT_KIND_ACQUIRED: EventKind.ACQUIRED,
    pb.EVENT_KIND_RELEASED: EventKind.RELEASED,
    pb.EVENT_KIND_QUEUED: EventKind.QUEUED,
    pb.EVENT_KIND_DEQUEUED: EventKind.DEQUEUED,
    pb.EVENT_KIND_PROCLAIMED: EventKind.PROCLAIMED,
}


def release_reason(reason: int) -> str | None:
    """``"revoked"`` for ``RELEASE_REASON_REVOKED``; ``None`` for UNSPECIFIED."""
    if reason == pb.RELEASE_REASON_UNSPECIFIED:
        return None
    try:
        name = pb.ReleaseReason.Name(reason)
    except ValueError:  # a reason newer than these stubs
        return str(reason)
    return name.removeprefix("RELEASE_REASON_").lower()


@dataclass(frozen=True)
class Holder:
    lease_id: int
    holder_id: str
    fencing_token: int
    mode: LockMode
    # Since the grant, on the answering member's clock (0 if unknown).
    held_ms: int
    # Mode SEMAPHORE: the semaphore's permits (0 for a lock).
    permits: int = 0

    @classmethod
    def from_wire(cls, h: pb.Holder) -> Holder:
        return cls(
            h.lease_id,
            h.holder_id,
            h.fencing_token,
            LockMode.from_wire(h.mode),
            h.held_ms,
            h.permits,
        )


@dataclass(frozen=True)
class Waiter:
    lease_id: int
    holder_id: str
    mode: LockMode
    wait_timeout_ms: int
    queued_revision: int
    waited_ms: int
    # Mode SEMAPHORE: the semaphore's permits (0 for a lock).
    permits: int = 0

    @classmethod
    def from_wire(cls, w: pb.Waiter) -> Waiter:
        return cls(
            w.lease_id,
            w.holder_id,
            LockMode.from_wire(w.mode),
            w.wait_timeout_ms,
            w.queued_revision,
            w.waited_ms,
            w.permits,
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
    # Mode SEMAPHORE: the semaphore's permits (0 for a lock).
    permits: int = 0

    @classmethod
    def from_wire(cls, e: pb.Event) -> Event:
        return cls(
            e.revision,
            _EVENT_KINDS.get(e.kind, EventKind.UNSPECIFIED),
            e.path,
            e.lease_id,
            e.holder_id,
            LockMode.from_wire(e.mode),
            e.fencing_token,
            release_reason(e.reason),
            e.permits,
        )


# --- elections ---


@dataclass(frozen=True)
class Leader:
    """Who leads an election: its lease, the fencing token of its grant, its value."""

    name: str
    lease_id: int
    fencing_token: int
    value: str

    @classmethod
    def from_wire(cls, key: pb.LeaderKey, value: str) -> Leader:
        return cls(key.name, key.lease_id, key.fencing_token, value)


@dataclass(frozen=True)
class LeaderChange:
    """What ``observe`` yields: the leader from ``revision`` on (``None``: nobody)."""

    revision: int
    leader: Leader | None

    @classmethod
    def from_wire(cls, r: pb.ObserveResponse) -> LeaderChange:
        leader = Leader.from_wire(r.leader, r.value) if r.HasField("leader") else None
        return cls(r.revision, leader)


# --- lock streams ---


class AcquisitionState(enum.Enum):
    """Where a ``lock_stream`` request stands."""

    # In the queue (again each time it moves up): ``position`` and ``ahead`` say where.
    QUEUED = "queued"
    # Granted (again after a JEOPARDY, once the lease is renewed): ``fencing_token``.
    ACQUIRED = "acquired"
    # The leader heard no keepalive for a third of the TTL: ``remaining_ttl_ms`` left.
    JEOPARDY = "jeopardy"
    # The grant ended (``reason``); the stream ends.
    LOST = "lost"
    # A try (``wait=0``) found the path busy: ``holders`` refused it; the stream ends.
    BUSY = "busy"
    UNSPECIFIED = "unspecified"


_ACQUISITION_STATES = {
    pb.ACQUISITION_STATE_QUEUED: AcquisitionState.QUEUED,
    pb.ACQUISITION_STATE_ACQUIRED: AcquisitionState.ACQUIRED,
    pb.ACQUISITION_STATE_JEOPARDY: AcquisitionState.JEOPARDY,
    pb.ACQUISITION_STATE_LOST: AcquisitionState.LOST,
    pb.ACQUISITION_STATE_BUSY: AcquisitionState.BUSY,
}


@dataclass(frozen=True)
class LockState:
    """One state of a ``lock_stream`` request; the fields its state does not use are 0
    (``reason`` ``None``, ``holders`` empty)."""

    state: AcquisitionState
    # QUEUED: the request's place among the waiters (0: next) and how many holders and
    # waiters are ahead of it.
    position: int
    ahead: int
    # ACQUIRED, JEOPARDY, LOST: the grant's fencing token.
    fencing_token: int
    # JEOPARDY: how long the lease has left on the leader's clock.
    remaining_ttl_ms: int
    # LOST: "released", "revoked", "expired".
    reason: str | None
    # BUSY: the holders that refused the try.
    holders: tuple[Holder, ...]
    # The revision of the answering member when it sent the state (not compared).
    revision: int = field(default=0, compare=False)

    @property
    def ended(self) -> bool:
        """LOST or BUSY: the server ends the stream after it."""
        return self.state in (AcquisitionState.LOST, AcquisitionState.BUSY)

    @classmethod
    def from_wire(cls, r: pb.LockStreamResponse) -> LockState:
        return cls(
            _ACQUISITION_STATES.get(r.state, AcquisitionState.UNSPECIFIED),
            r.position,
            r.ahead,
            r.fencing_token,
            r.remaining_ttl_ms,
            release_reason(r.reason),
            tuple(Holder.from_wire(h) for h in r.holders),
            r.header.revision,
        )
