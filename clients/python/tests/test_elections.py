"""Elections (campaign, proclaim, resign, leader, observe) against a real server. An
election named NAME is an exclusive lock on the path NAME, so the ``path`` fixture names
one no other test uses."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from conftest import eventually
from test_sync import WAIT_S, in_thread, waiters

import lockmgr
from lockmgr.v1 import lockmgr_pb2 as pb


@pytest.fixture()
def client(endpoint: str) -> Any:
    with lockmgr.Client([endpoint]) as client:
        yield client


def leader_value(client: lockmgr.Client, name: str) -> str | None:
    leader = client.leader(name)
    return leader.value if leader is not None else None


def test_the_second_candidate_leads_once_the_first_resigns(
    client: lockmgr.Client, path: str
) -> None:
    with client.session() as a, client.session() as b:
        first = a.campaign(path, "node-a")
        assert (first.name, first.value, first.lease_id) == (path, "node-a", a.lease_id)
        assert first.fencing_token > 0
        expected = lockmgr.Leader(path, a.lease_id, first.fencing_token, "node-a")
        assert client.leader(path) == expected
        assert client.leader(path) == first.leader
        assert client.validate_fence(path, first.fencing_token).valid

        thread, outcome = in_thread(lambda: b.campaign(path, "node-b", wait=WAIT_S))
        eventually(lambda: b.lease_id in waiters(client, path), what="the second candidate queued")
        assert not outcome, "elected while the first leads"
        assert leader_value(client, path) == "node-a"
        first.resign()
        thread.join(WAIT_S)
        (second,) = outcome
        assert isinstance(second, lockmgr.Leadership), second
        assert second.fencing_token > first.fencing_token
        assert client.leader(path) == lockmgr.Leader(
            path, b.lease_id, second.fencing_token, "node-b"
        )
        with second:
            pass  # resigns
    assert client.leader(path) is None


def test_the_second_candidate_leads_once_the_first_session_ends(
    client: lockmgr.Client, path: str
) -> None:
    with client.session() as b:
        a = client.session()
        first = a.campaign(path, "node-a")
        thread, outcome = in_thread(lambda: b.campaign(path, "node-b", wait=WAIT_S))
        eventually(lambda: b.lease_id in waiters(client, path), what="the second candidate queued")
        a.close()  # revokes the lease: leadership goes with it
        thread.join(WAIT_S)
        (second,) = outcome
        assert isinstance(second, lockmgr.Leadership), second
        assert second.fencing_token > first.fencing_token
        assert leader_value(client, path) == "node-b"
        second.resign()


def test_a_revoked_lease_ends_leadership_and_sets_lost(client: lockmgr.Client, path: str) -> None:
    with client.session() as session:
        leadership = session.campaign(path, "me")
        assert not leadership.is_lost
        client.revoke_lease(session.lease_id)
        assert leadership.lost.wait(WAIT_S), "the leadership never noticed"
        assert client.leader(path) is None
        assert session.lost.wait(WAIT_S), "the session never noticed"
        with pytest.raises(lockmgr.SessionLost):
            leadership.proclaim("still me?")


def test_leadership_lost_when_someone_else_leads(client: lockmgr.Client, path: str) -> None:
    with client.session() as a, client.session() as b:
        leadership = a.campaign(path, "a")
        leadership.proclaim("a-2")  # a new value is no loss
        thread, outcome = in_thread(lambda: b.campaign(path, "b", wait=WAIT_S))
        eventually(lambda: b.lease_id in waiters(client, path), what="b queued")
        assert not leadership.is_lost
        # Someone resigns the leadership from under it (its key is no secret): b leads.
        resign = pb.ResignRequest(leader=leadership.key, request_id=a.next_request_id())
        client.resign_request(resign)
        assert leadership.lost.wait(WAIT_S), "the leadership never noticed"
        assert not a.is_lost, "the session is fine: only the leadership ended"
        thread.join(WAIT_S)
        (second,) = outcome
        assert isinstance(second, lockmgr.Leadership), second
        with pytest.raises(lockmgr.LockNotHeld):  # the server: the key is not the grant
            leadership.proclaim("a-3")
        second.resign()
        assert second.is_lost, "resigned"


def test_a_campaign_that_times_out_raises_wait_timeout(client: lockmgr.Client, path: str) -> None:
    with client.session() as a, client.session() as b, a.campaign(path, "a"):
        with pytest.raises(lockmgr.WaitTimeout) as raised:
            b.campaign(path, "b", wait=0.2)
        assert (raised.value.code, raised.value.reason) == (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "WAIT_TIMEOUT",
        )
        with pytest.raises(lockmgr.InvalidArgument):
            b.campaign(path, "b", wait=0)  # a campaign has no try
        assert leader_value(client, path) == "a"


def test_a_campaign_whose_lease_ends_while_waiting_raises_session_lost(
    client: lockmgr.Client, path: str
) -> None:
    with client.session() as a, client.session() as b, a.campaign(path, "a"):
        thread, outcome = in_thread(lambda: b.campaign(path, "b", wait=WAIT_S))
        eventually(lambda: b.lease_id in waiters(client, path), what="b queued")
        client.revoke_lease(b.lease_id)
        thread.join(WAIT_S)
        (raised,) = outcome
        assert isinstance(raised, lockmgr.SessionLost), raised
        assert (raised.code, raised.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
        assert leader_value(client, path) == "a"


def test_proclaim_changes_what_leader_answers(client: lockmgr.Client, path: str) -> None:
    with client.session() as session, session.campaign(path, "v1") as leadership:
        leadership.proclaim("v2")
        assert leadership.value == "v2"
        leader = client.leader(path)
        assert leader is not None
        assert (leader.value, leader.fencing_token) == ("v2", leadership.fencing_token)
        info = client.get_lock(path)
        assert info is not None and [h.holder_id for h in info.holders] == ["v2"]
        with client.watch(path, exact=True, start_revision=leadership.fencing_token) as watch:
            kinds = [next(watch).kind, next(watch).kind]
        assert kinds == [lockmgr.EventKind.ACQUIRED, lockmgr.EventKind.PROCLAIMED]
    assert client.leader(path) is None


def test_observe_sees_each_leadership_change(client: lockmgr.Client, path: str) -> None:
    with client.session() as a, client.session() as b:
        first = a.campaign(path, "a-1")
        with client.observe(path) as changes:
            now = next(changes)
            assert now.leader == lockmgr.Leader(path, a.lease_id, first.fencing_token, "a-1")
            first.proclaim("a-2")
            thread, outcome = in_thread(lambda: b.campaign(path, "b", wait=WAIT_S))
            eventually(lambda: b.lease_id in waiters(client, path), what="b queued")
            first.resign()
            seen = []
            for change in changes:
                seen.append(change)
                if change.leader is not None and change.leader.lease_id == b.lease_id:
                    break
            thread.join(WAIT_S)
            (second,) = outcome
            second.resign()
            gone = next(changes)
        leaders = [(c.leader.value, c.leader.fencing_token) for c in seen if c.leader]
        assert leaders == [("a-2", first.fencing_token), ("b", second.fencing_token)], seen
        revisions = [now.revision] + [c.revision for c in seen] + [gone.revision]
        assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
        assert gone.leader is None


def test_observe_from_a_revision_replays(client: lockmgr.Client, path: str) -> None:
    with client.session() as session:
        with session.campaign(path, "x") as leadership:
            leadership.proclaim("y")
        with client.observe(path, start_revision=leadership.fencing_token) as changes:
            replayed = [next(changes), next(changes), next(changes)]
    assert [c.leader.value if c.leader else None for c in replayed] == ["x", "y", None]
    assert replayed[0].revision == leadership.fencing_token


class FirstCampaignCut(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Gives the first ``Campaign`` attempt a deadline too short for its wait, as a lost
    answer would end it, and records every Campaign request sent."""

    def __init__(self) -> None:
        self.sent: list[pb.CampaignRequest] = []

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method.endswith("/Campaign"):
            self.sent.append(request)
            if len(self.sent) == 1:
                details = details._replace(timeout=1.0)
        return continuation(details, request)


def test_a_retried_campaign_reuses_its_request_id_and_queues_once(
    endpoint: str, path: str
) -> None:
    cut = FirstCampaignCut()
    with lockmgr.Client([endpoint]) as admin, lockmgr.Client([endpoint], interceptors=[cut]) as c:
        with admin.session() as holder, c.session() as candidate:
            first = holder.campaign(path, "first")
            thread, outcome = in_thread(lambda: candidate.campaign(path, "second", wait=WAIT_S))
            eventually(lambda: len(cut.sent) >= 2, what="the cut attempt was retried")
            eventually(lambda: candidate.lease_id in waiters(admin, path), what="the wait")
            assert waiters(admin, path) == [candidate.lease_id], "queued once, not twice"
            first.resign()
            thread.join(WAIT_S)
            (second,) = outcome
            assert isinstance(second, lockmgr.Leadership), second
            assert len({r.request_id for r in cut.sent}) == 1, cut.sent
            leader = admin.leader(path)
            assert leader is not None and leader.fencing_token == second.fencing_token
            second.resign()
