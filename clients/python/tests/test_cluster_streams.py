"""A 3-node cluster: an election's observe and a lock stream survive the member they
were reading from (each test kills a follower, so each has a cluster of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cluster, Member, eventually
from test_sync import WAIT_S, in_thread, waiters

import lockmgr
from lockmgr import AcquisitionState as State


@pytest.fixture()
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("cluster")), 3)
    try:
        cluster.wait_for_leader()
        yield cluster
    finally:
        cluster.stop()


def a_follower_first(cluster: Cluster) -> tuple[Member, list[str]]:
    """A follower, and the endpoints with it first (where a client sends first)."""
    leader_id = cluster.wait_for_leader()
    follower = next(m for m in cluster.members if m.node_id != leader_id)
    others = [m.client_address for m in cluster.members if m is not follower]
    return follower, [follower.client_address, *others]


def test_observe_resumes_on_another_member(cluster: Cluster, path: str) -> None:
    follower, endpoints = a_follower_first(cluster)
    with lockmgr.Client(cluster.endpoints) as admin, lockmgr.Client(endpoints) as reader:
        admin.follow_leader()
        with admin.session() as session:
            leadership = session.campaign(path, "v1")
            with reader.observe(path) as changes:
                # A follower answers "the leader now" from its own state, which may not
                # have the campaign yet: it follows as a change.
                now = next(changes)
                while now.leader is None:
                    now = next(changes)
                assert now.leader.value == "v1"
                follower.kill()
                leadership.proclaim("v2")
                after = next(changes)
                assert reader.preferred != follower.client_address
                assert after.leader is not None and after.leader.value == "v2", after
                assert after.revision > now.revision
                leadership.resign()
                assert next(changes).leader is None


def test_a_lock_stream_rejoins_its_wait_on_another_member(cluster: Cluster, path: str) -> None:
    follower, endpoints = a_follower_first(cluster)
    with lockmgr.Client(cluster.endpoints) as admin, lockmgr.Client(endpoints) as client:
        admin.follow_leader()
        with admin.session() as holder, client.session() as waiter:
            held = holder.lock(path)
            with waiter.lock_stream(path, wait=WAIT_S) as states:
                assert next(states).state is State.QUEUED
                thread, outcome = in_thread(lambda: next(states))
                follower.kill()
                # The stream is reopened elsewhere with the same request id: one wait.
                eventually(lambda: client.preferred != follower.client_address, what="moved on")
                assert waiters(admin, path) == [waiter.lease_id]
                assert not outcome, outcome
                held.unlock()
                thread.join(WAIT_S)
                (acquired,) = outcome
                assert isinstance(acquired, lockmgr.LockState), acquired
                assert acquired.state is State.ACQUIRED, acquired
                assert acquired.fencing_token > held.fencing_token
                info = admin.get_lock(path)
                assert info is not None
                assert [h.lease_id for h in info.holders] == [waiter.lease_id]
            assert admin.get_lock(path) is None, "unlocked at the end of the block"
