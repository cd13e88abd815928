"""Semaphores (up to N holders of a path, a token each) against a real server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from conftest import eventually
from test_sync import WAIT_S, in_thread, waiters

import lockmgr


@pytest.fixture()
def client(endpoint: str) -> Any:
    with lockmgr.Client([endpoint]) as client:
        yield client


def test_a_semaphore_admits_its_permits_then_queues_the_next_until_a_release(
    client: lockmgr.Client, path: str
) -> None:
    with (
        client.session() as a,
        client.session() as b,
        client.session() as c,
        client.session() as d,
    ):
        held = [s.acquire_permit(path, 3) for s in (a, b, c)]
        tokens = [permit.fencing_token for permit in held]
        assert tokens == sorted(tokens) and len(set(tokens)) == 3, "a token each"
        assert all(p.mode is lockmgr.LockMode.SEMAPHORE and p.permits == 3 for p in held)
        info = client.get_lock(path)
        assert info is not None
        assert {h.lease_id for h in info.holders} == {a.lease_id, b.lease_id, c.lease_id}
        assert {(h.mode, h.permits) for h in info.holders} == {(lockmgr.LockMode.SEMAPHORE, 3)}
        assert d.try_acquire_permit(path, 3) is None, "a fourth holder of 3 permits"
        with pytest.raises(lockmgr.LockBusy):
            d.acquire_permit(path, 3, wait=0)

        thread, outcome = in_thread(lambda: d.acquire_permit(path, 3, wait=WAIT_S))
        eventually(lambda: d.lease_id in waiters(client, path), what="the fourth queued")
        info = client.get_lock(path)
        assert info is not None and info.waiters[0].permits == 3
        assert not outcome, "granted while the permits were taken"
        held[1].unlock()
        thread.join(WAIT_S)
        (fourth,) = outcome
        assert isinstance(fourth, lockmgr.Lock), fourth
        assert fourth.fencing_token > max(tokens)
        assert client.validate_fence(path, fourth.fencing_token).valid
        assert client.validate_fence(path, tokens[0]).valid, "the others still hold theirs"
        assert not client.validate_fence(path, tokens[1]).valid
        with fourth:
            pass
        held[0].unlock()
        held[2].unlock()
    assert client.get_lock(path) is None


def test_a_semaphore_permit_as_a_context_manager(client: lockmgr.Client, path: str) -> None:
    with client.session() as session:
        with session.acquire_permit(path, 2) as permit:
            assert permit.fencing_token > 0
            assert "permits=2" in repr(permit)
            assert path in session.time_to_live().held_paths
        assert client.get_lock(path) is None


def test_other_permits_or_a_lock_on_a_semaphore_is_permits_mismatch(
    client: lockmgr.Client, path: str
) -> None:
    with client.session() as a, client.session() as b, a.acquire_permit(path, 2):
        with pytest.raises(lockmgr.PermitsMismatch) as other_permits:
            b.acquire_permit(path, 3, wait=1)
        assert other_permits.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert other_permits.value.reason == "PERMITS_MISMATCH"
        assert isinstance(other_permits.value, lockmgr.FailedPrecondition)
        with pytest.raises(lockmgr.PermitsMismatch):
            b.try_lock(path)  # a lock on a semaphore
        with b.lock(f"{path}/plain"):
            with pytest.raises(lockmgr.PermitsMismatch):
                a.try_acquire_permit(f"{path}/plain", 2)  # a semaphore on a lock


def test_zero_permits_is_invalid_permits(client: lockmgr.Client, path: str) -> None:
    with client.session() as session:
        with pytest.raises(lockmgr.InvalidPermits) as zero:
            session.acquire_permit(path, 0)
        assert (zero.value.code, zero.value.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PERMITS",
        )
        assert isinstance(zero.value, lockmgr.InvalidArgument)
        with pytest.raises(lockmgr.InvalidPermits):
            session.acquire_permit(path, 2**31)  # above any semaphore_permits_max
        with pytest.raises(lockmgr.InvalidPermits):
            session.acquire_permit(path, -1)  # refused before sending


def test_watch_events_carry_the_permits(client: lockmgr.Client, path: str) -> None:
    with client.watch(path, exact=True) as watch, client.session() as session:
        with session.acquire_permit(path, 4) as permit:
            pass
        event = next(watch)
    assert (event.kind, event.mode, event.permits, event.fencing_token) == (
        lockmgr.EventKind.ACQUIRED,
        lockmgr.LockMode.SEMAPHORE,
        4,
        permit.fencing_token,
    )
