"""The rules shared by the synchronous and the asyncio client, with no I/O: how an
endpoint is written, which failed attempts are retried and where, how long an attempt
waits, and the session's timing. They are those of the Rust client
(``client/src/client.rs``, ``client/src/session.rs``); ``docs/wire-contract.md``,
section 1, and ``docs/semantics.md``, "Failover", explain them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from lockmgr.errors import Answer, InvalidArgument, InvalidPermits

# Pauses between attempts: 25 ms doubling to 500 ms.
PAUSE_MIN_S = 0.025
PAUSE_MAX_S = 0.5
# A blocking lock's attempt waits its wait time-out plus this (the server answers by the
# wait time-out plus a grace); past a day the deadline only guards a silent connection.
LOCK_PATIENCE_EXTRA_S = 10.0
LOCK_PATIENCE_WAIT_MAX_S = 24 * 3600.0
# The server's `limits.wait_timeout_ms_max`: a longer wait is refused before asking.
WAIT_MAX_S = 3600.0
# A keepalive stream that failed is reopened after this.
KEEPALIVE_REOPEN_PAUSE_S = 0.1
# ListLocks and lease List pages are fetched until the last, at most this many.
PAGES_MAX = 10_000

# grpcio waits up to 2 minutes before reconnecting to a member it could not reach; a
# failover needs it to try again within a second.
CHANNEL_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


@dataclass(frozen=True)
class Config:
    """How a client talks to the cluster (the Rust ``ClientConfig``'s knobs)."""

    endpoints: tuple[str, ...]
    # How long one attempt waits for its answer before the request is sent to another
    # member with the same request id. A blocking lock waits its wait time-out + 10 s.
    attempt_timeout_s: float = 1.0
    # How long a request keeps retrying on other members before giving up.
    retry_budget_s: float = 15.0
    # Shown to operators as the holder of this client's locks.
    holder_id: str = ""


def default_holder_id() -> str:
    """``HOSTNAME-PID``, as the Rust client and the CLI name a holder."""
    host = os.environ.get("HOSTNAME") or socket.gethostname() or "localhost"
    return f"{host}-{os.getpid()}"


def endpoint_address(endpoint: str) -> str:
    """``host:port`` from an endpoint written ``host:port`` or ``http://host:port[/]``."""
    if endpoint.startswith("https://"):
        raise InvalidArgument(
            f"endpoint {endpoint!r}: lockmgr serves plain gRPC (no TLS); use http:// or host:port"
        )
    address = endpoint.removeprefix("http://").rstrip("/")
    if not address or "/" in address or ":" not in address:
        raise InvalidArgument(f"endpoint {endpoint!r} is not host:port")
    return address


def endpoint_addresses(endpoints: str | Sequence[str]) -> tuple[str, ...]:
    """The normalized endpoints; one string may list several, comma separated."""
    if isinstance(endpoints, str):
        endpoints = [e for e in endpoints.split(",") if e.strip()]
    addresses = tuple(endpoint_address(e.strip()) for e in endpoints)
    if not addresses:
        raise InvalidArgument("no endpoints given")
    return addresses


def next_after(endpoints: Sequence[str], address: str) -> str:
    """The member after ``address`` in the configured list (the first if not in it)."""
    try:
        at = endpoints.index(address)
    except ValueError:
        return endpoints[0]
    return endpoints[(at + 1) % len(endpoints)]


def attempt_timed_out(answer: Answer) -> bool:
    """The attempt's own deadline passed: grpcio's local ``DEADLINE_EXCEEDED`` (no
    detail), or the server's layer saying our ``grpc-timeout`` passed. The Rust client
    counts this as ``UNAVAILABLE`` from that member and asks the next one."""
    return answer.code == grpc.StatusCode.DEADLINE_EXCEEDED and answer.reason in (
        None,
        "DEADLINE_EXCEEDED",
    )


def retryable(answer: Answer) -> bool:
    """Worth asking again, maybe elsewhere, with the same request: the member is down,
    not the leader, busy electing, or did not answer in time."""
    if answer.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN):
        return True
    if answer.code == grpc.StatusCode.CANCELLED and answer.detail is None:
        return True
    return attempt_timed_out(answer)


def next_member(endpoints: Sequence[str], address: str, answer: Answer) -> str:
    """Where to send the retry: the leader the answer names, else the next member."""
    hint = answer.leader_address
    if hint and hint != address:
        return hint
    return next_after(endpoints, address)


def next_pause(pause_s: float) -> float:
    return min(pause_s * 2, PAUSE_MAX_S)


def lock_patience(config: Config, wait_s: float) -> float:
    """How long one attempt of a ``Lock`` waits for its answer."""
    if wait_s <= 0:
        return config.attempt_timeout_s
    return min(wait_s, LOCK_PATIENCE_WAIT_MAX_S) + LOCK_PATIENCE_EXTRA_S


def wait_ms(wait_s: float) -> int:
    if wait_s < 0 or wait_s > WAIT_MAX_S:
        raise InvalidArgument(f"wait {wait_s} s: it must be 0 (try once) to {WAIT_MAX_S:.0f} s")
    return int(round(wait_s * 1000))


def campaign_wait_ms(wait_s: float | None) -> int:
    """A campaign's ``wait_timeout_ms``: 0 (``None``) is as long as the server allows.
    A campaign has no try: a wait must be positive."""
    if wait_s is None:
        return 0
    if wait_s <= 0:
        raise InvalidArgument(
            f"campaign wait {wait_s} s: it must be positive, or None (as long as the server allows)"
        )
    return max(1, wait_ms(wait_s))


def campaign_patience(config: Config, wait_timeout_ms: int) -> float:
    """How long one attempt of a ``Campaign`` waits for its answer (0: the server's
    longest wait)."""
    wait_s = wait_timeout_ms / 1000 if wait_timeout_ms > 0 else WAIT_MAX_S
    return lock_patience(config, wait_s)


def permits_count(permits: int) -> int:
    """A semaphore's permits as sent: the server judges 0 and its maximum (``INVALID_PERMITS``);
    a negative count cannot be sent."""
    if permits < 0:
        raise InvalidPermits(f"permits {permits}: a semaphore needs at least 1")
    return permits


def ttl_ms(ttl_s: float) -> int:
    if ttl_s <= 0:
        raise InvalidArgument(f"ttl {ttl_s} s: it must be positive (the cluster clamps it)")
    return int(round(ttl_s * 1000))


# --- the session's timing (client/src/session.rs) ---


def keepalive_interval(ttl_s: float) -> float:
    """A session renews every quarter of its TTL."""
    return ttl_s / 4


def margin(ttl_s: float) -> float:
    """How much earlier than the server could expire the lease the session gives up:
    ``clamp(ttl / 10, 200 ms, ttl / 2)``."""
    return min(max(ttl_s / 10, 0.2), ttl_s / 2)


def silence(ttl_s: float) -> float:
    """How long a ping may go unanswered before the stream is given up for another
    member: ``clamp(ttl / 8, 250 ms, 1 s)``."""
    return min(max(ttl_s / 8, 0.25), 1.0)


def safe_until(sent_at: float, ttl_s: float) -> float:
    """Until when a lease renewed by a ping sent at ``sent_at`` is certainly alive: the
    leader never expires it earlier than TTL after receiving the ping, which is after
    the send."""
    return sent_at + ttl_s - margin(ttl_s)
