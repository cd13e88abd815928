"""The client's errors: what the cluster answered (a gRPC status with the server's
machine-readable reason), or that no member answered at all.

Every error the server sends carries an ``ErrorDetail`` (``docs/wire-contract.md``,
section 1), packed in the ``google.rpc.Status`` of the ``grpc-status-details-bin``
trailer as gRPC's convention has it (``grpc_status.rpc_status.from_call`` reads it too).

The classes form a hierarchy: catch :class:`LockmgrError` for everything, a family
(:class:`NotFound`, :class:`FailedPrecondition`, ...) by the gRPC code, or one rule
(:class:`StaleToken`, :class:`WaitTimeout`, ...) by the reason.
"""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from google.rpc import status_pb2

from lockmgr.v1 import lockmgr_pb2 as pb

DETAILS_METADATA_KEY = "grpc-status-details-bin"
_REASON_PREFIX = "ERROR_REASON_"


class LockmgrError(Exception):
    """Any error of this library.

    ``code`` is the gRPC status code the cluster answered (``None`` when the error was
    raised by the client itself, e.g. a lost session); ``reason`` the server's
    ``ErrorReason`` name without its prefix (``"STALE_TOKEN"``), ``None`` when the status
    carried no ``ErrorDetail`` (a transport failure: connection refused or reset);
    ``message`` the server's words.
    """

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        leader_address: str = "",
        leader_id: int = 0,
        limit: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        # Set with UNAVAILABLE when the answering member knew who leads.
        self.leader_address = leader_address
        self.leader_id = leader_id
        # Set with RESOURCE_EXHAUSTED: the configured limit that was hit.
        self.limit = limit

    def __str__(self) -> str:
        parts = [self.code.name if self.code is not None else None, self.reason]
        label = "/".join(p for p in parts if p)
        return f"{label}: {self.message}" if label else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code}, reason={self.reason!r})"


E = TypeVar("E", bound=LockmgrError)


class InvalidArgument(LockmgrError):
    """The request breaks a rule (a bad path, TTL, wait time-out, mode, ...)."""


class RequestIdReused(InvalidArgument):
    """A request id the lease used for another request (``REQUEST_ID_REUSED``)."""


class InvalidPermits(InvalidArgument):
    """A semaphore of 0 permits, or of more than the server's ``semaphore_permits_max``
    (``INVALID_PERMITS``)."""


class NotFound(LockmgrError):
    """``NOT_FOUND``: something named does not exist."""


class LeaseNotFound(NotFound):
    """The lease does not exist: never granted, revoked, or expired."""


class LockNotHeld(NotFound):
    """An unlock of a path the lease does not hold."""


class FailedPrecondition(LockmgrError):
    """``FAILED_PRECONDITION``: the request is valid but the state refuses it."""


class StaleToken(FailedPrecondition):
    """An unlock with another grant's fencing token."""


class ModeConflict(FailedPrecondition):
    """The lease holds or waits for the path in the other mode."""


class RequestIdTooOld(FailedPrecondition):
    """The request id is below the lease's remembered window."""


class PermitsMismatch(FailedPrecondition):
    """The path is held or awaited as a semaphore of other permits, or as a lock while
    the request asks for a semaphore (or the reverse): every holder and waiter of a path
    names the same permits (``PERMITS_MISMATCH``)."""


class LockBusy(LockmgrError):
    """The lock could not be had within the time allowed.

    Raised by ``lock(path, wait=0)`` that found the path busy (``try_lock`` returns
    ``None`` instead), and, as :class:`WaitTimeout`, when a wait timed out.
    """


class WaitTimeout(LockBusy):
    """``DEADLINE_EXCEEDED`` / ``WAIT_TIMEOUT``: the wait ended without a grant."""


class WaitAbandoned(LockmgrError):
    """``ABORTED`` / ``WAIT_ABANDONED``: nobody was attached to the wait for a while, so
    the server cancelled it; send a new request."""


class SessionLost(LockmgrError):
    """The session's lease may be gone: stop writing under its locks.

    Raised by a session's calls once it is lost, and for ``ABORTED`` / ``LEASE_LOST``
    (the lease ended while a lock request waited).
    """


class ResourceExhausted(LockmgrError):
    """``RESOURCE_EXHAUSTED``: a configured limit was hit (in ``limit``)."""


class DeadlineExceeded(LockmgrError):
    """``DEADLINE_EXCEEDED``: the call's deadline passed."""


class Unavailable(LockmgrError):
    """No member answered, or none had a leader, within the retry budget.

    ``code`` and ``reason`` are those of the last attempt.
    """


_BY_REASON: dict[str, type[LockmgrError]] = {
    "REQUEST_ID_REUSED": RequestIdReused,
    "INVALID_PERMITS": InvalidPermits,
    "LEASE_NOT_FOUND": LeaseNotFound,
    "LOCK_NOT_HELD": LockNotHeld,
    "STALE_TOKEN": StaleToken,
    "MODE_CONFLICT": ModeConflict,
    "REQUEST_ID_TOO_OLD": RequestIdTooOld,
    "PERMITS_MISMATCH": PermitsMismatch,
    "WAIT_TIMEOUT": WaitTimeout,
    "WAIT_ABANDONED": WaitAbandoned,
    "LEASE_LOST": SessionLost,
}

_BY_CODE: dict[grpc.StatusCode, type[LockmgrError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def error_detail(metadata: Any) -> pb.ErrorDetail | None:
    """The ``ErrorDetail`` in a call's trailing metadata, if any (and if it decodes).

    The trailer is a ``google.rpc.Status`` (the gRPC convention, which
    ``grpc_status.rpc_status.from_call`` also reads) whose details hold the
    ``ErrorDetail`` packed in a ``google.protobuf.Any``.
    """
    for key, value in metadata or ():
        if key == DETAILS_METADATA_KEY and isinstance(value, bytes) and value:
            try:
                status = status_pb2.Status.FromString(value)
            except Exception:  # not a google.rpc.Status: no detail we can read
                return None
            for packed in status.details:
                if packed.Is(pb.ErrorDetail.DESCRIPTOR):
                    detail = pb.ErrorDetail()
                    packed.Unpack(detail)
                    return detail
            return None
    return None


def reason_name(detail: pb.ErrorDetail | None) -> str | None:
    """``"STALE_TOKEN"`` for ``ERROR_REASON_STALE_TOKEN``; ``None`` without a detail."""
    if detail is None:
        return None
    try:
        name = pb.ErrorReason.Name(detail.reason)
    except ValueError:  # a reason newer than these stubs
        return str(detail.reason)
    return name.removeprefix(_REASON_PREFIX)


class Answer:
    """A failed attempt as the retry rule sees it: code, detail and message."""

    __slots__ = ("code", "detail", "message")

    def __init__(self, code: grpc.StatusCode, detail: pb.ErrorDetail | None, message: str) -> None:
        self.code = code
        self.detail = detail
        self.message = message

    @classmethod
    def of(cls, error: grpc.RpcError) -> Answer:
        """Reads a grpcio error (sync or asyncio: both are ``grpc.Call``-like)."""
        code = _call(error, "code") or grpc.StatusCode.UNKNOWN
        message = _call(error, "details") or ""
        detail = error_detail(_call(error, "trailing_metadata"))
        return cls(code, detail, str(message))

    @property
    def reason(self) -> str | None:
        return reason_name(self.detail)

    @property
    def leader_address(self) -> str:
        return self.detail.leader_address if self.detail is not None else ""

    def error(self) -> LockmgrError:
        """This answer as the exception of its reason, else of its code."""
        cls = _BY_REASON.get(self.reason or "") or _BY_CODE.get(self.code) or LockmgrError
        return self.error_as(cls)

    def error_as(self, cls: type[E]) -> E:
        """This answer as a ``cls``."""
        detail = self.detail
        return cls(
            self.message,
            code=self.code,
            reason=self.reason,
            leader_address=detail.leader_address if detail is not None else "",
            leader_id=detail.leader_id if detail is not None else 0,
            limit=detail.limit if detail is not None else 0,
        )


def _call(error: grpc.RpcError, method: str) -> Any:
    function = getattr(error, method, None)
    if function is None:
        return None
    try:
        return function()
    except Exception:  # a grpcio error without that part
        return None


class WatchCompacted(LockmgrError):
    """The watch (or an election's ``observe``) fell behind what its member keeps (or
    started before it): re-read the state (``get_lock`` / ``list_locks`` / ``leader``)
    and watch again from ``compact_revision``."""

    def __init__(self, message: str, *, compact_revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


def unavailable(address: str, answer: Answer) -> Unavailable:
    """The retry budget is spent; ``answer`` is the last attempt's."""
    error = answer.error_as(Unavailable)
    error.message = f"no lockmgr member answered ({address}: {error})"
    error.args = (error.message,)
    return error
