"""Lock streams (a lock request's states as they change) against a real server."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import eventually
from test_sync import WAIT_S, in_thread, waiters

import lockmgr
from lockmgr import AcquisitionState as State


@pytest.fixture()
def client(endpoint: str) -> Any:
    with lockmgr.Client([endpoint]) as client:
        yield client


def test_queued_then_acquired_then_lost_when_the_lease_is_revoked(
    client: lockmgr.Client, path: str
) -> None:
    with client.session() as holder, client.session() as waiter:
        held = holder.lock(path)
        with pytest.raises(lockmgr.SessionLost):  # leaving the block: the lease went
            with waiter.lock_stream(path, wait=WAIT_S) as states:
                queued = next(states)
                assert (queued.state, queued.position, queued.ahead) == (State.QUEUED, 0, 1), queued
                assert states.lock is None
                held.unlock()
                acquired = next(states)
                assert acquired.state is State.ACQUIRED, acquired
                assert acquired.fencing_token > held.fencing_token
                assert states.lock is not None
                assert states.lock.fencing_token == acquired.fencing_token
                assert client.validate_fence(path, acquired.fencing_token).valid
                client.revoke_lease(waiter.lease_id)
                lost = next(states)
                assert (lost.state, lost.reason) == (State.LOST, "revoked"), lost
                assert lost.fencing_token == acquired.fencing_token
                assert lost.ended
                assert list(states) == [], "the stream ends after LOST"


def test_queued_moves_up_and_an_unlock_ends_the_stream(client: lockmgr.Client, path: str) -> None:
    with client.session() as holder, client.session() as first, client.session() as second:
        held = holder.lock(path)
        thread, outcome = in_thread(lambda: first.lock(path, wait=WAIT_S))
        eventually(lambda: first.lease_id in waiters(client, path), what="the first queued")
        with second.lock_stream(path, wait=WAIT_S) as states:
            behind = next(states)
            # One waiter before it; the holder and that waiter ahead of it.
            assert (behind.state, behind.position, behind.ahead) == (State.QUEUED, 1, 2), behind
            held.unlock()
            thread.join(WAIT_S)
            (granted,) = outcome
            assert isinstance(granted, lockmgr.Lock), granted
            moved_up = next(states)
            assert (moved_up.state, moved_up.position, moved_up.ahead) == (State.QUEUED, 0, 1)
            granted.unlock()
            acquired = next(states)
            assert acquired.state is State.ACQUIRED
            assert states.lock is not None
            states.lock.unlock()
            lost = next(states)
            assert (lost.state, lost.reason) == (State.LOST, "released"), lost
            with pytest.raises(StopIteration):
                next(states)
        assert client.get_lock(path) is None


def test_a_try_on_a_busy_path_is_one_busy(client: lockmgr.Client, path: str) -> None:
    with client.session() as holder, client.session() as other, holder.lock(path) as held:
        with other.lock_stream(path, wait=0) as states:
            seen = list(states)
        assert [s.state for s in seen] == [State.BUSY]
        assert [(h.lease_id, h.fencing_token) for h in seen[0].holders] == [
            (holder.lease_id, held.fencing_token)
        ]
        assert states.lock is None
        assert waiters(client, path) == [], "a try does not queue"


def test_a_semaphore_stream_and_leaving_the_block_unlocks(
    client: lockmgr.Client, path: str
) -> None:
    with client.session() as session:
        with session.lock_stream(path, permits=2) as states:
            acquired = next(states)
            assert acquired.state is State.ACQUIRED
            assert states.lock is not None and states.lock.permits == 2
            info = client.get_lock(path)
            assert info is not None and info.holders[0].mode is lockmgr.LockMode.SEMAPHORE
        assert client.get_lock(path) is None, "unlocked at the end of the block"


def test_closing_a_queued_stream_gives_up_its_wait(client: lockmgr.Client, path: str) -> None:
    with client.session() as holder, client.session() as waiter, holder.lock(path):
        with waiter.lock_stream(path, wait=WAIT_S) as states:
            assert next(states).state is State.QUEUED
        eventually(lambda: waiters(client, path) == [], what="the wait was given up")


def test_jeopardy_while_the_lease_is_not_renewed(client: lockmgr.Client, path: str) -> None:
    with client.session(ttl=3) as session:
        with pytest.raises(lockmgr.SessionLost):
            with session.lock_stream(path) as states:
                assert next(states).state is State.ACQUIRED
                session._stop.set()  # the keepalive stops: nobody renews the lease
                jeopardy = next(states)
                assert jeopardy.state is State.JEOPARDY, jeopardy
                assert 0 < jeopardy.remaining_ttl_ms <= 3000
                client.renew_lease(session.lease_id)
                assert next(states).state is State.ACQUIRED, "renewed: acquired again"
                following = [s.state for s in states]  # jeopardy again, then expiry
                assert following[-1] is State.LOST, following
                assert states.state is not None and states.state.reason == "expired"
