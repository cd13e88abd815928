from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_PATH: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_TTL: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_WAIT_TIMEOUT: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_HOLDER_ID: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_MODE: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_ARGUMENT: _ClassVar[ErrorReason]
    ERROR_REASON_MALFORMED_REQUEST: _ClassVar[ErrorReason]
    ERROR_REASON_REQUEST_ID_REUSED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_PERMITS: _ClassVar[ErrorReason]
    ERROR_REASON_LEASE_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_LOCK_NOT_HELD: _ClassVar[ErrorReason]
    ERROR_REASON_MEMBER_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_STALE_TOKEN: _ClassVar[ErrorReason]
    ERROR_REASON_MEMBER_NOT_CAUGHT_UP: _ClassVar[ErrorReason]
    ERROR_REASON_MODE_CONFLICT: _ClassVar[ErrorReason]
    ERROR_REASON_REQUEST_ID_TOO_OLD: _ClassVar[ErrorReason]
    ERROR_REASON_COMPACTED: _ClassVar[ErrorReason]
    ERROR_REASON_PERMITS_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_WAIT_TIMEOUT: _ClassVar[ErrorReason]
    ERROR_REASON_DEADLINE_EXCEEDED: _ClassVar[ErrorReason]
    ERROR_REASON_LEASE_LOST: _ClassVar[ErrorReason]
    ERROR_REASON_WAIT_ABANDONED: _ClassVar[ErrorReason]
    ERROR_REASON_TOO_MANY_LOCKS: _ClassVar[ErrorReason]
    ERROR_REASON_TOO_MANY_WAITERS: _ClassVar[ErrorReason]
    ERROR_REASON_TOO_MANY_LEASES: _ClassVar[ErrorReason]
    ERROR_REASON_TOO_MANY_LOCKS_PER_LEASE: _ClassVar[ErrorReason]
    ERROR_REASON_TOO_MANY_WATCHERS: _ClassVar[ErrorReason]
    ERROR_REASON_MESSAGE_TOO_LARGE: _ClassVar[ErrorReason]
    ERROR_REASON_NO_LEADER: _ClassVar[ErrorReason]
    ERROR_REASON_NOT_LEADER: _ClassVar[ErrorReason]
    ERROR_REASON_SHUTTING_DOWN: _ClassVar[ErrorReason]
    ERROR_REASON_MEMBER_REMOVED: _ClassVar[ErrorReason]
    ERROR_REASON_INTERNAL: _ClassVar[ErrorReason]
    ERROR_REASON_UNIMPLEMENTED: _ClassVar[ErrorReason]

class LockMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCK_MODE_UNSPECIFIED: _ClassVar[LockMode]
    LOCK_MODE_EXCLUSIVE: _ClassVar[LockMode]
    LOCK_MODE_SHARED: _ClassVar[LockMode]
    LOCK_MODE_SEMAPHORE: _ClassVar[LockMode]

class ReadConsistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    READ_CONSISTENCY_LINEARIZABLE: _ClassVar[ReadConsistency]
    READ_CONSISTENCY_SERIALIZABLE: _ClassVar[ReadConsistency]

class AcquisitionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACQUISITION_STATE_UNSPECIFIED: _ClassVar[AcquisitionState]
    ACQUISITION_STATE_QUEUED: _ClassVar[AcquisitionState]
    ACQUISITION_STATE_ACQUIRED: _ClassVar[AcquisitionState]
    ACQUISITION_STATE_JEOPARDY: _ClassVar[AcquisitionState]
    ACQUISITION_STATE_LOST: _ClassVar[AcquisitionState]
    ACQUISITION_STATE_BUSY: _ClassVar[AcquisitionState]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_ACQUIRED: _ClassVar[EventKind]
    EVENT_KIND_RELEASED: _ClassVar[EventKind]
    EVENT_KIND_QUEUED: _ClassVar[EventKind]
    EVENT_KIND_DEQUEUED: _ClassVar[EventKind]
    EVENT_KIND_PROCLAIMED: _ClassVar[EventKind]

class ReleaseReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELEASE_REASON_UNSPECIFIED: _ClassVar[ReleaseReason]
    RELEASE_REASON_RELEASED: _ClassVar[ReleaseReason]
    RELEASE_REASON_REVOKED: _ClassVar[ReleaseReason]
    RELEASE_REASON_EXPIRED: _ClassVar[ReleaseReason]
    RELEASE_REASON_WAIT_TIMEOUT: _ClassVar[ReleaseReason]
    RELEASE_REASON_CANCELLED: _ClassVar[ReleaseReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_INVALID_PATH: ErrorReason
ERROR_REASON_INVALID_TTL: ErrorReason
ERROR_REASON_INVALID_WAIT_TIMEOUT: ErrorReason
ERROR_REASON_INVALID_HOLDER_ID: ErrorReason
ERROR_REASON_INVALID_MODE: ErrorReason
ERROR_REASON_INVALID_ARGUMENT: ErrorReason
ERROR_REASON_MALFORMED_REQUEST: ErrorReason
ERROR_REASON_REQUEST_ID_REUSED: ErrorReason
ERROR_REASON_INVALID_PERMITS: ErrorReason
ERROR_REASON_LEASE_NOT_FOUND: ErrorReason
ERROR_REASON_LOCK_NOT_HELD: ErrorReason
ERROR_REASON_MEMBER_NOT_FOUND: ErrorReason
ERROR_REASON_STALE_TOKEN: ErrorReason
ERROR_REASON_MEMBER_NOT_CAUGHT_UP: ErrorReason
ERROR_REASON_MODE_CONFLICT: ErrorReason
ERROR_REASON_REQUEST_ID_TOO_OLD: ErrorReason
ERROR_REASON_COMPACTED: ErrorReason
ERROR_REASON_PERMITS_MISMATCH: ErrorReason
ERROR_REASON_WAIT_TIMEOUT: ErrorReason
ERROR_REASON_DEADLINE_EXCEEDED: ErrorReason
ERROR_REASON_LEASE_LOST: ErrorReason
ERROR_REASON_WAIT_ABANDONED: ErrorReason
ERROR_REASON_TOO_MANY_LOCKS: ErrorReason
ERROR_REASON_TOO_MANY_WAITERS: ErrorReason
ERROR_REASON_TOO_MANY_LEASES: ErrorReason
ERROR_REASON_TOO_MANY_LOCKS_PER_LEASE: ErrorReason
ERROR_REASON_TOO_MANY_WATCHERS: ErrorReason
ERROR_REASON_MESSAGE_TOO_LARGE: ErrorReason
ERROR_REASON_NO_LEADER: ErrorReason
ERROR_REASON_NOT_LEADER: ErrorReason
ERROR_REASON_SHUTTING_DOWN: ErrorReason
ERROR_REASON_MEMBER_REMOVED: ErrorReason
ERROR_REASON_INTERNAL: ErrorReason
ERROR_REASON_UNIMPLEMENTED: ErrorReason
LOCK_MODE_UNSPECIFIED: LockMode
LOCK_MODE_EXCLUSIVE: LockMode
LOCK_MODE_SHARED: LockMode
LOCK_MODE_SEMAPHORE: LockMode
READ_CONSISTENCY_LINEARIZABLE: ReadConsistency
READ_CONSISTENCY_SERIALIZABLE: ReadConsistency
ACQUISITION_STATE_UNSPECIFIED: AcquisitionState
ACQUISITION_STATE_QUEUED: AcquisitionState
ACQUISITION_STATE_ACQUIRED: AcquisitionState
ACQUISITION_STATE_JEOPARDY: AcquisitionState
ACQUISITION_STATE_LOST: AcquisitionState
ACQUISITION_STATE_BUSY: AcquisitionState
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_ACQUIRED: EventKind
EVENT_KIND_RELEASED: EventKind
EVENT_KIND_QUEUED: EventKind
EVENT_KIND_DEQUEUED: EventKind
EVENT_KIND_PROCLAIMED: EventKind
RELEASE_REASON_UNSPECIFIED: ReleaseReason
RELEASE_REASON_RELEASED: ReleaseReason
RELEASE_REASON_REVOKED: ReleaseReason
RELEASE_REASON_EXPIRED: ReleaseReason
RELEASE_REASON_WAIT_TIMEOUT: ReleaseReason
RELEASE_REASON_CANCELLED: ReleaseReason

class ResponseHeader(_message.Message):
    __slots__ = ("cluster_id", "node_id", "revision", "raft_term")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    RAFT_TERM_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    node_id: int
    revision: int
    raft_term: int
    def __init__(self, cluster_id: _Optional[int] = ..., node_id: _Optional[int] = ..., revision: _Optional[int] = ..., raft_term: _Optional[int] = ...) -> None: ...

class ErrorDetail(_message.Message):
    __slots__ = ("reason", "leader_address", "leader_id", "limit")
    REASON_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    reason: ErrorReason
    leader_address: str
    leader_id: int
    limit: int
    def __init__(self, reason: _Optional[_Union[ErrorReason, str]] = ..., leader_address: _Optional[str] = ..., leader_id: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class LockStreamResponse(_message.Message):
    __slots__ = ("header", "state", "position", "ahead", "fencing_token", "remaining_ttl_ms", "reason", "holders")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    AHEAD_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REMAINING_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    state: AcquisitionState
    position: int
    ahead: int
    fencing_token: int
    remaining_ttl_ms: int
    reason: ReleaseReason
    holders: _containers.RepeatedCompositeFieldContainer[Holder]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., state: _Optional[_Union[AcquisitionState, str]] = ..., position: _Optional[int] = ..., ahead: _Optional[int] = ..., fencing_token: _Optional[int] = ..., remaining_ttl_ms: _Optional[int] = ..., reason: _Optional[_Union[ReleaseReason, str]] = ..., holders: _Optional[_Iterable[_Union[Holder, _Mapping]]] = ...) -> None: ...

class LockRequest(_message.Message):
    __slots__ = ("path", "lease_id", "mode", "wait_timeout_ms", "holder_id", "request_id", "permits")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PERMITS_FIELD_NUMBER: _ClassVar[int]
    path: str
    lease_id: int
    mode: LockMode
    wait_timeout_ms: int
    holder_id: str
    request_id: int
    permits: int
    def __init__(self, path: _Optional[str] = ..., lease_id: _Optional[int] = ..., mode: _Optional[_Union[LockMode, str]] = ..., wait_timeout_ms: _Optional[int] = ..., holder_id: _Optional[str] = ..., request_id: _Optional[int] = ..., permits: _Optional[int] = ...) -> None: ...

class LockResponse(_message.Message):
    __slots__ = ("header", "acquired", "fencing_token", "mode", "holders", "lock_delay", "wait_time_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    LOCK_DELAY_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    acquired: bool
    fencing_token: int
    mode: LockMode
    holders: _containers.RepeatedCompositeFieldContainer[Holder]
    lock_delay: bool
    wait_time_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., acquired: _Optional[bool] = ..., fencing_token: _Optional[int] = ..., mode: _Optional[_Union[LockMode, str]] = ..., holders: _Optional[_Iterable[_Union[Holder, _Mapping]]] = ..., lock_delay: _Optional[bool] = ..., wait_time_ms: _Optional[int] = ...) -> None: ...

class UnlockRequest(_message.Message):
    __slots__ = ("path", "lease_id", "fencing_token", "request_id")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    path: str
    lease_id: int
    fencing_token: int
    request_id: int
    def __init__(self, path: _Optional[str] = ..., lease_id: _Optional[int] = ..., fencing_token: _Optional[int] = ..., request_id: _Optional[int] = ...) -> None: ...

class UnlockResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class GetLockRequest(_message.Message):
    __slots__ = ("path", "consistency")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    path: str
    consistency: ReadConsistency
    def __init__(self, path: _Optional[str] = ..., consistency: _Optional[_Union[ReadConsistency, str]] = ...) -> None: ...

class Holder(_message.Message):
    __slots__ = ("lease_id", "holder_id", "fencing_token", "mode", "held_ms", "permits")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HELD_MS_FIELD_NUMBER: _ClassVar[int]
    PERMITS_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    holder_id: str
    fencing_token: int
    mode: LockMode
    held_ms: int
    permits: int
    def __init__(self, lease_id: _Optional[int] = ..., holder_id: _Optional[str] = ..., fencing_token: _Optional[int] = ..., mode: _Optional[_Union[LockMode, str]] = ..., held_ms: _Optional[int] = ..., permits: _Optional[int] = ...) -> None: ...

class Waiter(_message.Message):
    __slots__ = ("lease_id", "holder_id", "mode", "wait_timeout_ms", "queued_revision", "waited_ms", "permits")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_REVISION_FIELD_NUMBER: _ClassVar[int]
    WAITED_MS_FIELD_NUMBER: _ClassVar[int]
    PERMITS_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    holder_id: str
    mode: LockMode
    wait_timeout_ms: int
    queued_revision: int
    waited_ms: int
    permits: int
    def __init__(self, lease_id: _Optional[int] = ..., holder_id: _Optional[str] = ..., mode: _Optional[_Union[LockMode, str]] = ..., wait_timeout_ms: _Optional[int] = ..., queued_revision: _Optional[int] = ..., waited_ms: _Optional[int] = ..., permits: _Optional[int] = ...) -> None: ...

class LockInfo(_message.Message):
    __slots__ = ("path", "holders", "waiters", "lock_delay")
    PATH_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    LOCK_DELAY_FIELD_NUMBER: _ClassVar[int]
    path: str
    holders: _containers.RepeatedCompositeFieldContainer[Holder]
    waiters: _containers.RepeatedCompositeFieldContainer[Waiter]
    lock_delay: bool
    def __init__(self, path: _Optional[str] = ..., holders: _Optional[_Iterable[_Union[Holder, _Mapping]]] = ..., waiters: _Optional[_Iterable[_Union[Waiter, _Mapping]]] = ..., lock_delay: _Optional[bool] = ...) -> None: ...

class GetLockResponse(_message.Message):
    __slots__ = ("header", "lock")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    lock: LockInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., lock: _Optional[_Union[LockInfo, _Mapping]] = ...) -> None: ...

class ListLocksRequest(_message.Message):
    __slots__ = ("prefix", "limit", "page_token", "consistency")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    limit: int
    page_token: str
    consistency: ReadConsistency
    def __init__(self, prefix: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ..., consistency: _Optional[_Union[ReadConsistency, str]] = ...) -> None: ...

class ListLocksResponse(_message.Message):
    __slots__ = ("header", "locks", "next_page_token")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    locks: _containers.RepeatedCompositeFieldContainer[LockInfo]
    next_page_token: str
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., locks: _Optional[_Iterable[_Union[LockInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ValidateFenceRequest(_message.Message):
    __slots__ = ("path", "fencing_token", "consistency")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    path: str
    fencing_token: int
    consistency: ReadConsistency
    def __init__(self, path: _Optional[str] = ..., fencing_token: _Optional[int] = ..., consistency: _Optional[_Union[ReadConsistency, str]] = ...) -> None: ...

class ValidateFenceResponse(_message.Message):
    __slots__ = ("header", "valid", "current_tokens")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    valid: bool
    current_tokens: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., valid: _Optional[bool] = ..., current_tokens: _Optional[_Iterable[int]] = ...) -> None: ...

class LeaseGrantRequest(_message.Message):
    __slots__ = ("ttl_ms",)
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    ttl_ms: int
    def __init__(self, ttl_ms: _Optional[int] = ...) -> None: ...

class LeaseGrantResponse(_message.Message):
    __slots__ = ("header", "lease_id", "ttl_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    lease_id: int
    ttl_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., lease_id: _Optional[int] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class LeaseKeepAliveRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    def __init__(self, lease_id: _Optional[int] = ...) -> None: ...

class LeaseKeepAliveResponse(_message.Message):
    __slots__ = ("header", "lease_id", "ttl_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    lease_id: int
    ttl_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., lease_id: _Optional[int] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class LeaseRevokeRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    def __init__(self, lease_id: _Optional[int] = ...) -> None: ...

class LeaseRevokeResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class LeaseTimeToLiveRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    def __init__(self, lease_id: _Optional[int] = ...) -> None: ...

class LeaseTimeToLiveResponse(_message.Message):
    __slots__ = ("header", "lease_id", "granted_ttl_ms", "remaining_ttl_ms", "held_paths", "waiting_paths")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTED_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    HELD_PATHS_FIELD_NUMBER: _ClassVar[int]
    WAITING_PATHS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    lease_id: int
    granted_ttl_ms: int
    remaining_ttl_ms: int
    held_paths: _containers.RepeatedScalarFieldContainer[str]
    waiting_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., lease_id: _Optional[int] = ..., granted_ttl_ms: _Optional[int] = ..., remaining_ttl_ms: _Optional[int] = ..., held_paths: _Optional[_Iterable[str]] = ..., waiting_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class LeaseListRequest(_message.Message):
    __slots__ = ("limit", "after_lease_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    after_lease_id: int
    def __init__(self, limit: _Optional[int] = ..., after_lease_id: _Optional[int] = ...) -> None: ...

class LeaseStatus(_message.Message):
    __slots__ = ("lease_id", "granted_ttl_ms", "held_locks", "waiting")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTED_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    HELD_LOCKS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    granted_ttl_ms: int
    held_locks: int
    waiting: int
    def __init__(self, lease_id: _Optional[int] = ..., granted_ttl_ms: _Optional[int] = ..., held_locks: _Optional[int] = ..., waiting: _Optional[int] = ...) -> None: ...

class LeaseListResponse(_message.Message):
    __slots__ = ("header", "leases", "next_after_lease_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    leases: _containers.RepeatedCompositeFieldContainer[LeaseStatus]
    next_after_lease_id: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., leases: _Optional[_Iterable[_Union[LeaseStatus, _Mapping]]] = ..., next_after_lease_id: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("path", "prefix", "start_revision")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    path: str
    prefix: bool
    start_revision: int
    def __init__(self, path: _Optional[str] = ..., prefix: _Optional[bool] = ..., start_revision: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("revision", "kind", "path", "lease_id", "holder_id", "mode", "fencing_token", "reason", "permits")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PERMITS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    kind: EventKind
    path: str
    lease_id: int
    holder_id: str
    mode: LockMode
    fencing_token: int
    reason: ReleaseReason
    permits: int
    def __init__(self, revision: _Optional[int] = ..., kind: _Optional[_Union[EventKind, str]] = ..., path: _Optional[str] = ..., lease_id: _Optional[int] = ..., holder_id: _Optional[str] = ..., mode: _Optional[_Union[LockMode, str]] = ..., fencing_token: _Optional[int] = ..., reason: _Optional[_Union[ReleaseReason, str]] = ..., permits: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("header", "events", "compacted", "compact_revision")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    COMPACTED_FIELD_NUMBER: _ClassVar[int]
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    events: _containers.RepeatedCompositeFieldContainer[Event]
    compacted: bool
    compact_revision: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., compacted: _Optional[bool] = ..., compact_revision: _Optional[int] = ...) -> None: ...

class LeaderKey(_message.Message):
    __slots__ = ("name", "lease_id", "fencing_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    lease_id: int
    fencing_token: int
    def __init__(self, name: _Optional[str] = ..., lease_id: _Optional[int] = ..., fencing_token: _Optional[int] = ...) -> None: ...

class CampaignRequest(_message.Message):
    __slots__ = ("name", "lease_id", "value", "wait_timeout_ms", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    lease_id: int
    value: str
    wait_timeout_ms: int
    request_id: int
    def __init__(self, name: _Optional[str] = ..., lease_id: _Optional[int] = ..., value: _Optional[str] = ..., wait_timeout_ms: _Optional[int] = ..., request_id: _Optional[int] = ...) -> None: ...

class CampaignResponse(_message.Message):
    __slots__ = ("header", "leader", "wait_time_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    leader: LeaderKey
    wait_time_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., leader: _Optional[_Union[LeaderKey, _Mapping]] = ..., wait_time_ms: _Optional[int] = ...) -> None: ...

class ProclaimRequest(_message.Message):
    __slots__ = ("leader", "value", "request_id")
    LEADER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    leader: LeaderKey
    value: str
    request_id: int
    def __init__(self, leader: _Optional[_Union[LeaderKey, _Mapping]] = ..., value: _Optional[str] = ..., request_id: _Optional[int] = ...) -> None: ...

class ProclaimResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class LeaderRequest(_message.Message):
    __slots__ = ("name", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    consistency: ReadConsistency
    def __init__(self, name: _Optional[str] = ..., consistency: _Optional[_Union[ReadConsistency, str]] = ...) -> None: ...

class LeaderResponse(_message.Message):
    __slots__ = ("header", "leader", "value")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    leader: LeaderKey
    value: str
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., leader: _Optional[_Union[LeaderKey, _Mapping]] = ..., value: _Optional[str] = ...) -> None: ...

class ObserveRequest(_message.Message):
    __slots__ = ("name", "start_revision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    start_revision: int
    def __init__(self, name: _Optional[str] = ..., start_revision: _Optional[int] = ...) -> None: ...

class ObserveResponse(_message.Message):
    __slots__ = ("header", "leader", "value", "revision", "compacted", "compact_revision")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    COMPACTED_FIELD_NUMBER: _ClassVar[int]
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    leader: LeaderKey
    value: str
    revision: int
    compacted: bool
    compact_revision: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., leader: _Optional[_Union[LeaderKey, _Mapping]] = ..., value: _Optional[str] = ..., revision: _Optional[int] = ..., compacted: _Optional[bool] = ..., compact_revision: _Optional[int] = ...) -> None: ...

class ResignRequest(_message.Message):
    __slots__ = ("leader", "request_id")
    LEADER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    leader: LeaderKey
    request_id: int
    def __init__(self, leader: _Optional[_Union[LeaderKey, _Mapping]] = ..., request_id: _Optional[int] = ...) -> None: ...

class ResignResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("header", "leader_id", "version", "committed_index", "applied_index", "snapshot_index", "locks", "leases", "is_learner", "removed")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    IS_LEARNER_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    leader_id: int
    version: str
    committed_index: int
    applied_index: int
    snapshot_index: int
    locks: int
    leases: int
    is_learner: bool
    removed: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., leader_id: _Optional[int] = ..., version: _Optional[str] = ..., committed_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., snapshot_index: _Optional[int] = ..., locks: _Optional[int] = ..., leases: _Optional[int] = ..., is_learner: _Optional[bool] = ..., removed: _Optional[bool] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("node_id", "peer_address", "client_address", "is_learner", "is_leader")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IS_LEARNER_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    peer_address: str
    client_address: str
    is_learner: bool
    is_leader: bool
    def __init__(self, node_id: _Optional[int] = ..., peer_address: _Optional[str] = ..., client_address: _Optional[str] = ..., is_learner: _Optional[bool] = ..., is_leader: _Optional[bool] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("header", "members")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("node_id", "peer_address", "client_address", "learner_only")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEARNER_ONLY_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    peer_address: str
    client_address: str
    learner_only: bool
    def __init__(self, node_id: _Optional[int] = ..., peer_address: _Optional[str] = ..., client_address: _Optional[str] = ..., learner_only: _Optional[bool] = ...) -> None: ...

class AddMemberResponse(_message.Message):
    __slots__ = ("header", "members", "warnings")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[Member]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ("header", "members", "warnings")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[Member]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class TransferLeaderRequest(_message.Message):
    __slots__ = ("target_node_id",)
    TARGET_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    target_node_id: int
    def __init__(self, target_node_id: _Optional[int] = ...) -> None: ...

class TransferLeaderResponse(_message.Message):
    __slots__ = ("header", "leader_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    leader_id: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., leader_id: _Optional[int] = ...) -> None: ...

class SaveSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SaveSnapshotResponse(_message.Message):
    __slots__ = ("header", "chunk", "remaining_bytes")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    REMAINING_BYTES_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    chunk: bytes
    remaining_bytes: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., remaining_bytes: _Optional[int] = ...) -> None: ...
