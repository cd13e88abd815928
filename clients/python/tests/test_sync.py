"""The synchronous client against a real single-node server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from conftest import eventually

import lockmgr
from lockmgr.v1 import lockmgr_pb2 as pb

# Waits are long enough for a loaded machine; nothing asserts how long anything took.
WAIT_S = 60.0


@pytest.fixture()
def client(endpoint: str) -> Any:
    with lockmgr.Client([endpoint]) as client:
        yield client


def in_thread(function: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Runs ``function`` in a thread; its result (or exception) lands in the list."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(function())
        except BaseException as error:  # handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def waiters(client: lockmgr.Client, path: str) -> list[int]:
    info = client.get_lock(path)
    return [w.lease_id for w in info.waiters] if info else []


def test_lock_and_unlock(client: lockmgr.Client, path: str) -> None:
    with client.session(ttl=10) as session:
        with session.lock(path) as lock:
            assert lock.path == path
            assert lock.lease_id == session.lease_id
            assert lock.fencing_token > 0
            info = client.get_lock(path)
            assert info is not None
            assert [(h.lease_id, h.fencing_token) for h in info.holders] == [
                (session.lease_id, lock.fencing_token)
            ]
            assert info.holders[0].mode is lockmgr.LockMode.EXCLUSIVE
            assert client.validate_fence(path, lock.fencing_token).valid
            assert path in session.time_to_live().held_paths
        assert client.get_lock(path) is None
        assert not client.validate_fence(path, lock.fencing_token)


def test_fencing_tokens_increase(client: lockmgr.Client, path: str) -> None:
    tokens = []
    for _ in range(3):
        with client.session(ttl=10) as session, session.lock(path) as lock:
            tokens.append(lock.fencing_token)
    assert tokens == sorted(tokens) and len(set(tokens)) == 3, tokens


def test_try_lock_is_none_when_busy(client: lockmgr.Client, path: str) -> None:
    with client.session() as holder, client.session() as other:
        with holder.lock(path):
            assert other.try_lock(path) is None
            with pytest.raises(lockmgr.LockBusy):
                other.lock(path, wait=0)
        lock = other.try_lock(path)
        assert lock is not None
        lock.unlock()


def test_a_blocking_lock_waits_and_gets_the_lock_when_released(
    client: lockmgr.Client, path: str
) -> None:
    with client.session() as holder, client.session() as waiter:
        first = holder.lock(path)
        thread, outcome = in_thread(lambda: waiter.lock(path, wait=WAIT_S))
        eventually(lambda: waiter.lease_id in waiters(client, path), what="the waiter queued")
        assert not outcome, "granted while held"
        first.unlock()
        thread.join(WAIT_S)
        (second,) = outcome
        assert isinstance(second, lockmgr.Lock), second
        assert second.fencing_token > first.fencing_token
        second.unlock()


def test_a_wait_that_times_out_raises_wait_timeout(client: lockmgr.Client, path: str) -> None:
    with client.session() as holder, client.session() as waiter, holder.lock(path):
        with pytest.raises(lockmgr.WaitTimeout) as raised:
            waiter.lock(path, wait=0.2)
        assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert raised.value.reason == "WAIT_TIMEOUT"
        assert isinstance(raised.value, lockmgr.LockBusy)


def test_shared_locks(client: lockmgr.Client, path: str) -> None:
    with client.session() as a, client.session() as b, client.session() as c:
        first = a.lock(path, mode="shared")
        second = b.lock(path, mode=lockmgr.LockMode.SHARED)
        assert first.mode is second.mode is lockmgr.LockMode.SHARED
        assert c.try_lock(path) is None, "an exclusive lock while shared ones are held"
        info = client.get_lock(path)
        assert info is not None
        assert {h.lease_id for h in info.holders} == {a.lease_id, b.lease_id}
        tokens = client.validate_fence(path, first.fencing_token).current_tokens
        assert set(tokens) == {first.fencing_token, second.fencing_token}
        with pytest.raises(lockmgr.ModeConflict) as raised:
            a.try_lock(path)  # the lease holds it shared
        assert raised.value.reason == "MODE_CONFLICT"
        first.unlock()
        second.unlock()
        exclusive = c.try_lock(path)
        assert exclusive is not None
        exclusive.unlock()


def test_a_revoked_lease_sets_lost(client: lockmgr.Client, path: str) -> None:
    with client.session(ttl=10) as session:
        lock = session.lock(path)
        client.revoke_lease(session.lease_id)  # out from under the session
        assert session.lost.wait(WAIT_S), "the session never noticed"
        assert session.is_lost
        with pytest.raises(lockmgr.SessionLost):
            session.lock(f"{path}/other")
        with pytest.raises(lockmgr.SessionLost):
            with lock:
                pass  # its unlock finds the lease gone
        assert client.get_lock(path) is None


def test_errors_carry_the_servers_reason(client: lockmgr.Client, path: str) -> None:
    with pytest.raises(lockmgr.InvalidArgument) as bad_path:
        client.get_lock("no-leading-slash")
    assert bad_path.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_path.value.reason == "INVALID_PATH"
    assert "no-leading-slash" in bad_path.value.message

    with pytest.raises(lockmgr.LeaseNotFound) as no_lease:
        client.revoke_lease(987_654_321)
    assert (no_lease.value.code, no_lease.value.reason) == (
        grpc.StatusCode.NOT_FOUND,
        "LEASE_NOT_FOUND",
    )
    assert isinstance(no_lease.value, lockmgr.NotFound)

    with client.session() as session, session.lock(path) as lock:
        with pytest.raises(lockmgr.StaleToken) as stale:
            session.release(path, lock.fencing_token + 1000)
        assert stale.value.reason == "STALE_TOKEN"
        assert stale.value.code == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(lockmgr.LockNotHeld):
            session.release(f"{path}/never-locked", 1)
    assert str(stale.value).startswith("FAILED_PRECONDITION/STALE_TOKEN: ")


def test_the_cluster_clamps_the_ttl(client: lockmgr.Client) -> None:
    with client.session(ttl=0.001) as session:
        assert session.ttl >= 1.0, "below the cluster's minimum"
        assert session.time_to_live().granted_ttl_ms == int(session.ttl * 1000)


def test_watch_sees_the_events(client: lockmgr.Client, path: str) -> None:
    with client.watch(path) as watch, client.session() as a, client.session() as b:
        with a.lock(path) as first:
            thread, outcome = in_thread(lambda: b.lock(f"{path}/child", wait=WAIT_S))
            thread.join(WAIT_S)
            outcome[0].unlock()
        seen = []
        for event in watch:
            seen.append((event.kind, event.path, event.lease_id))
            if len(seen) == 4:
                break
    assert seen == [
        (lockmgr.EventKind.ACQUIRED, path, a.lease_id),
        (lockmgr.EventKind.ACQUIRED, f"{path}/child", b.lease_id),
        (lockmgr.EventKind.RELEASED, f"{path}/child", b.lease_id),
        (lockmgr.EventKind.RELEASED, path, a.lease_id),
    ]
    with client.watch(path, exact=True, start_revision=first.fencing_token) as replay:
        event = next(replay)
    assert (event.kind, event.revision, event.fencing_token) == (
        lockmgr.EventKind.ACQUIRED,
        first.fencing_token,
        first.fencing_token,
    )


def test_list_locks_and_leases(client: lockmgr.Client, path: str) -> None:
    with client.session() as session:
        locks = [session.lock(f"{path}/{name}") for name in ("b", "a", "c")]
        listed = client.list_locks(path)
        assert [info.path for info in listed] == [f"{path}/{n}" for n in ("a", "b", "c")]
        leases = {lease.lease_id: lease for lease in client.leases()}
        assert leases[session.lease_id].held_locks == 3
        for lock in locks:
            lock.unlock()
    assert client.list_locks(path) == []


class FirstLockCut(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Gives the first ``Lock`` attempt a deadline too short for its wait, as a lost
    answer would end it, and records every Lock request sent."""

    def __init__(self) -> None:
        self.sent: list[pb.LockRequest] = []

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method.endswith("/Lock"):
            self.sent.append(request)
            if len(self.sent) == 1:
                details = details._replace(timeout=1.0)
        return continuation(details, request)


def test_a_retried_lock_reuses_its_request_id_and_is_granted_once(
    endpoint: str, path: str
) -> None:
    cut = FirstLockCut()
    with lockmgr.Client([endpoint]) as admin, lockmgr.Client([endpoint], interceptors=[cut]) as c:
        with admin.session() as holder, c.session() as waiter:
            held = holder.lock(path)
            start = held.fencing_token + 1
            thread, outcome = in_thread(lambda: waiter.lock(path, wait=WAIT_S))
            eventually(lambda: len(cut.sent) >= 2, what="the cut attempt was retried")
            eventually(lambda: waiter.lease_id in waiters(admin, path), what="the wait")
            assert waiters(admin, path) == [waiter.lease_id], "queued once, not twice"
            held.unlock()
            thread.join(WAIT_S)
            (lock,) = outcome
            assert isinstance(lock, lockmgr.Lock), lock
            ids = {request.request_id for request in cut.sent}
            assert len(ids) == 1, f"the retry sent another request id: {ids}"
            info = admin.get_lock(path)
            assert info is not None
            assert [h.fencing_token for h in info.holders] == [lock.fencing_token]
            # One QUEUED and one ACQUIRED for the waiter, however many attempts it took.
            kinds = []
            with admin.watch(path, exact=True, start_revision=start) as watch:
                for event in watch:
                    if event.lease_id == waiter.lease_id:
                        kinds.append(event.kind)
                    if event.kind is lockmgr.EventKind.ACQUIRED:
                        break
            assert kinds == [lockmgr.EventKind.QUEUED, lockmgr.EventKind.ACQUIRED]
            # The next request gets a new id.
            lock.unlock()
            waiter.lock(f"{path}/next").unlock()
            assert cut.sent[-1].request_id > cut.sent[0].request_id


def test_the_same_request_id_gets_the_first_answer(client: lockmgr.Client, path: str) -> None:
    with client.session() as session:
        request = pb.LockRequest(
            path=path, lease_id=session.lease_id, request_id=session.next_request_id()
        )
        first = client.lock_request(request)
        again = client.lock_request(request)
        assert first.acquired and again.acquired
        assert again.fencing_token == first.fencing_token
        info = client.get_lock(path)
        assert info is not None and len(info.holders) == 1
        other = pb.LockRequest(
            path=f"{path}/other", lease_id=session.lease_id, request_id=request.request_id
        )
        with pytest.raises(lockmgr.RequestIdReused) as reused:
            client.lock_request(other)
        assert reused.value.reason == "REQUEST_ID_REUSED"


def test_endpoints_are_host_port_or_http_urls(endpoint: str) -> None:
    with lockmgr.Client(f"http://{endpoint}/") as client:
        assert client.config.endpoints == (endpoint,)
        assert client.status().leader_id != 0
    with pytest.raises(lockmgr.InvalidArgument):
        lockmgr.Client(["https://127.0.0.1:7070"])
    with pytest.raises(lockmgr.InvalidArgument):
        lockmgr.Client([])


def test_no_member_answering_is_unavailable() -> None:
    from conftest import free_port

    dead = f"127.0.0.1:{free_port()}"
    with lockmgr.Client([dead], retry_budget=1.0) as client:
        started = time.monotonic()
        with pytest.raises(lockmgr.Unavailable) as raised:
            client.status()
        assert time.monotonic() - started < 60
    assert raised.value.reason is None, "nobody answered: no ErrorDetail"
    assert dead in raised.value.message


def test_standard_grpc_status_helpers_read_the_error_detail(endpoint: str) -> None:
    """A client in any language reads the reason with its gRPC library's rich-error
    helper: the trailer is a ``google.rpc.Status`` with the ``ErrorDetail`` packed in."""
    from grpc_status import rpc_status

    from lockmgr.v1 import lockmgr_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        stub = lockmgr_pb2_grpc.LeaseServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.Revoke(pb.LeaseRevokeRequest(lease_id=987_654_321), timeout=10)
        status = rpc_status.from_call(failure.value)  # type: ignore[arg-type]
    assert status is not None
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    detail = pb.ErrorDetail()
    assert status.details[0].Unpack(detail)
    assert detail.reason == pb.ERROR_REASON_LEASE_NOT_FOUND
