"""The Python client of lockmgr, a distributed lock manager.

    import lockmgr

    with lockmgr.Client(["10.0.0.1:7070", "10.0.0.2:7070"]) as client:
        with client.session(ttl=10) as session:          # a lease, kept alive
            with session.lock("/db/users/schema-migration", wait=30) as lock:
                run_migration(lock.fencing_token)        # pass the token on

A :class:`Client` talks to any member and follows the leader. A :class:`Session` is a
lease kept alive by a background thread; its ``lost`` event is set as soon as the lease
may no longer be counted on, before the cluster could hand its locks to anyone else. A
:class:`Lock` carries the grant's fencing token (a semaphore's permit is one too:
``session.acquire_permit``). ``session.campaign`` wins an election (a
:class:`Leadership`); ``client.leader`` and ``client.observe`` read and follow one.
``session.lock_stream`` follows a lock request's states. ``lockmgr.aio`` has the same API
for asyncio. Errors are :class:`LockmgrError` and its subclasses, carrying the gRPC code
and the server's reason.
"""

from lockmgr.client import Client
from lockmgr.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    InvalidPermits,
    LeaseNotFound,
    LockBusy,
    LockmgrError,
    LockNotHeld,
    ModeConflict,
    NotFound,
    PermitsMismatch,
    RequestIdReused,
    RequestIdTooOld,
    ResourceExhausted,
    SessionLost,
    StaleToken,
    Unavailable,
    WaitAbandoned,
    WaitTimeout,
    WatchCompacted,
)
from lockmgr.election import Leadership, Observation
from lockmgr.lock_stream import LockStream
from lockmgr.session import Lock, Session
from lockmgr.types import (
    AcquisitionState,
    Event,
    EventKind,
    FenceCheck,
    Holder,
    Leader,
    LeaderChange,
    LeaseStatus,
    LeaseTimeToLive,
    LockInfo,
    LockMode,
    LockState,
    Waiter,
)
from lockmgr.watch import Watch

__version__ = "0.1.0"

__all__ = [
    "AcquisitionState",
    "Client",
    "DeadlineExceeded",
    "Event",
    "EventKind",
    "FailedPrecondition",
    "FenceCheck",
    "Holder",
    "InvalidArgument",
    "InvalidPermits",
    "Leader",
    "LeaderChange",
    "Leadership",
    "LeaseNotFound",
    "LeaseStatus",
    "LeaseTimeToLive",
    "Lock",
    "LockBusy",
    "LockInfo",
    "LockMode",
    "LockNotHeld",
    "LockState",
    "LockStream",
    "LockmgrError",
    "ModeConflict",
    "NotFound",
    "Observation",
    "PermitsMismatch",
    "RequestIdReused",
    "RequestIdTooOld",
    "ResourceExhausted",
    "Session",
    "SessionLost",
    "StaleToken",
    "Unavailable",
    "WaitAbandoned",
    "WaitTimeout",
    "Waiter",
    "Watch",
    "WatchCompacted",
]
