"""A 3-node cluster: leader hints followed, members that do not answer skipped, and a
session that survives its leader's death."""

from __future__ import annotations

import time
from typing import Any

import grpc
import grpc.aio
import pytest
from conftest import Cluster

import lockmgr
import lockmgr.aio

WAIT_S = 60.0


class ForwardedMark(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Marks requests as already forwarded (``lockmgr-forwarded: 1``), so that a follower
    answers ``UNAVAILABLE`` / ``NOT_LEADER`` naming the leader instead of forwarding
    them; records each method and where the client sent it."""

    def __init__(self) -> None:
        self.answers: list[grpc.StatusCode] = []

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = list(details.metadata or []) + [("lockmgr-forwarded", "1")]
        outcome = continuation(details._replace(metadata=metadata), request)
        self.answers.append(outcome.code())
        return outcome


def leader_and_follower(cluster: Cluster) -> tuple[str, str]:
    leader_id = cluster.wait_for_leader()
    leader = cluster.member(leader_id).client_address
    follower = next(m.client_address for m in cluster.members if m.node_id != leader_id)
    return leader, follower


def test_a_not_leader_answer_is_followed_to_the_leader(cluster: Cluster, path: str) -> None:
    leader, follower = leader_and_follower(cluster)
    mark = ForwardedMark()
    # Only the follower is configured: the leader is learnt from the hint.
    with lockmgr.Client([follower], interceptors=[mark]) as client:
        lease = client.grant_lease(10)
        assert client.preferred == leader
        assert mark.answers == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK]
        client.revoke_lease(lease.lease_id)


def test_the_hint_is_in_the_error(cluster: Cluster) -> None:
    leader, follower = leader_and_follower(cluster)
    with lockmgr.Client([follower], interceptors=[ForwardedMark()], retry_budget=0.01) as c:
        with pytest.raises(lockmgr.Unavailable) as raised:
            c.grant_lease(10)
    assert raised.value.reason == "NOT_LEADER"
    assert raised.value.leader_address == leader


def test_a_member_that_does_not_answer_is_skipped(cluster: Cluster, path: str) -> None:
    from conftest import free_port

    dead = f"127.0.0.1:{free_port()}"
    with lockmgr.Client([dead, *cluster.endpoints]) as client:
        with client.session() as session, session.lock(path) as lock:
            assert lock.fencing_token > 0
        assert client.preferred != dead


async def test_asyncio_follows_the_hint_too(cluster: Cluster) -> None:
    leader, follower = leader_and_follower(cluster)

    class Mark(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            metadata = grpc.aio.Metadata(*(details.metadata or ()), ("lockmgr-forwarded", "1"))
            return await continuation(details._replace(metadata=metadata), request)

    async with lockmgr.aio.Client([follower], interceptors=[Mark()]) as client:
        async with client.session() as session:
            assert client.preferred == leader
            assert (await session.time_to_live()).granted_ttl_ms > 0


def test_a_session_survives_the_leaders_death(cluster: Cluster, path: str) -> None:
    """Last in this module: it kills the leader."""
    leader_id = cluster.wait_for_leader()
    with lockmgr.Client(cluster.endpoints) as client:
        client.follow_leader()
        with client.session(ttl=6) as session:
            lock = session.lock(path)
            cluster.member(leader_id).kill()
            cluster.wait_for_leader(other_than=leader_id)
            # Two TTLs later the lease is still there: the keepalive moved on and renews
            # on the new leader (which gave every lease a full TTL when it took over).
            time.sleep(2 * session.ttl)
            ttl = session.time_to_live()
            assert ttl.remaining_ttl_ms > 0 and path in ttl.held_paths
            assert not session.is_lost, "a 6 s session lost over one election"
            assert client.validate_fence(path, lock.fencing_token).valid
            with session.lock(f"{path}/after") as after:
                assert after.fencing_token > lock.fencing_token
            lock.unlock()
