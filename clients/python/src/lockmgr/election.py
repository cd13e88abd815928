"""Elections (synchronous). An election named ``name`` is an exclusive lock on the path
``name`` whose holder_id is the leader's value: its leader holds a fencing token, and
loses leadership exactly when its lease ends (or it resigns). Candidates queue in FIFO
order. :meth:`Session.campaign` wins one, :meth:`Client.leader` reads one,
:meth:`Client.observe` follows one.

Request ids: ``Campaign``, ``Proclaim`` and ``Resign`` each take a new id of the
session's; only the retries of that call send it again, so a retried campaign joins its
wait and is elected once.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from lockmgr import _held
from lockmgr._stream import Resuming, StreamCall
from lockmgr.errors import LockmgrError, WatchCompacted
from lockmgr.types import Leader, LeaderChange
from lockmgr.v1 import lockmgr_pb2 as pb

if TYPE_CHECKING:
    from lockmgr.client import Client, Stubs
    from lockmgr.session import Session

log = logging.getLogger("lockmgr")


class Leadership:
    """The leadership of an election, won by :meth:`Session.campaign`. Give
    :attr:`fencing_token` to every resource written as the leader.

    Use it as a context manager (it resigns at the end of the block) or call
    :meth:`resign`. ``lost`` is a :class:`threading.Event` set as soon as this leadership
    may have ended: the session is lost, or the election names another leader or none
    (a thread follows it, as the Rust client's ``Leadership::lost`` does), or it resigned.
    Stop acting as the leader then.
    """

    def __init__(self, session: Session, key: pb.LeaderKey, value: str) -> None:
        self.session = session
        # The leader key the server answered (name, lease, token): sent back by
        # proclaim and resign.
        self.key = key
        self.value = value
        self.resigned = False
        self.lost = threading.Event()
        self._follower = _Superseded(self)
        session.when_lost(self.lost.set)
        self._follower.start()

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def fencing_token(self) -> int:
        return self.key.fencing_token

    @property
    def lease_id(self) -> int:
        return self.key.lease_id

    @property
    def is_lost(self) -> bool:
        return self.lost.is_set()

    def is_key(self, leader: Leader | None) -> bool:
        """``leader`` is this leadership (with any value)."""
        key = self.key
        return leader is not None and (leader.name, leader.lease_id, leader.fencing_token) == (
            key.name,
            key.lease_id,
            key.fencing_token,
        )

    @property
    def leader(self) -> Leader:
        """This leadership as :meth:`Client.leader` would answer it."""
        return Leader.from_wire(self.key, self.value)

    def __repr__(self) -> str:
        return (
            f"Leadership(name={self.name!r}, value={self.value!r}, "
            f"fencing_token={self.fencing_token}, lease_id={self.lease_id})"
        )

    def proclaim(self, value: str) -> None:
        """Changes the leader's value without giving up leadership (observers see it)."""
        self._check_leading()
        request = pb.ProclaimRequest(
            leader=self.key, value=value, request_id=self.session.next_request_id()
        )
        self.session.client.proclaim_request(request)
        self.value = value

    def resign(self) -> None:
        """Gives up leadership (``lost`` is set): the next candidate, if any, leads."""
        if self.resigned:
            return
        self.resigned = True
        self.lost.set()
        self._follower.stop()
        request = pb.ResignRequest(leader=self.key, request_id=self.session.next_request_id())
        self.session.client.resign_request(request)

    def _check_leading(self) -> None:
        self.session._check_alive()
        if self.resigned:
            raise LockmgrError(f"the leadership of {self.name} was resigned")

    def __enter__(self) -> Leadership:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.resign()
        except LockmgrError as error:
            _held.end_failed(error, exc, self.lease_id, f"leading {self.name}", f"resigning {self.name} failed; its lease will end it", log)


class _Superseded(threading.Thread):
    """Follows the election until it names another leader (or none), then sets the
    leadership's ``lost``. It observes from the leadership's grant (whose revision is its
    fencing token), so a member behind the leader does not answer "nobody" for a state
    before it; after a compaction, from now."""

    def __init__(self, leadership: Leadership) -> None:
        super().__init__(name=f"lockmgr-leadership-{leadership.name}", daemon=True)
        self.leadership = leadership
        self._stopped = threading.Event()
        self._guard = threading.Lock()
        self._observation: Observation | None = None

    def stop(self) -> None:
        with self._guard:
            self._stopped.set()
            if self._observation is not None:
                self._observation.cancel()

    def _done(self) -> bool:
        leadership = self.leadership
        session = leadership.session
        return (
            self._stopped.is_set()
            or leadership.is_lost
            or session._closed
            or session.client.closed
        )

    def run(self) -> None:
        leadership = self.leadership
        start = leadership.fencing_token
        while not self._done():
            observation = leadership.session.client.observe(leadership.name, start_revision=start)
            with self._guard:
                if self._stopped.is_set():
                    return
                self._observation = observation
            try:
                for change in observation:
                    if not leadership.is_key(change.leader):
                        log.info("leadership of %s ended: %s", leadership.name, change)
                        leadership.lost.set()
                        return
            except WatchCompacted:
                start = 0
            except LockmgrError as error:
                log.info("following the election %s: %s", leadership.name, error)
                start = observation.next_revision or start
                self._stopped.wait(_REOBSERVE_PAUSE_S)


# A follow of a leadership that failed (no member answered) is tried again after this.
_REOBSERVE_PAUSE_S = 0.2


class Observation(Resuming[pb.ObserveResponse, LeaderChange]):
    """Iterate it for :class:`LeaderChange` s: the leader now (or from
    ``start_revision``), then each change. If its member fails, it resumes on another
    after the last change it delivered; ``cancel()`` or the end of a ``with`` block
    ends it."""

    def __init__(self, client: Client, name: str, *, start_revision: int) -> None:
        super().__init__(client)
        self.name = name
        # Where a reopened stream starts; 0 until the first answer (then: "from now").
        self.next_revision = start_revision
        self._last: LeaderChange | None = None

    def _open_call(self, stubs: Stubs) -> StreamCall[pb.ObserveResponse]:
        request = pb.ObserveRequest(name=self.name, start_revision=self.next_revision)
        return stubs.election.Observe(request)

    def _take(self, response: pb.ObserveResponse) -> None:
        change = observed_change(self.name, response, self._last)
        self.next_revision = max(self.next_revision, response.revision + 1)
        if change is not None:
            self._last = change
            self._pending.append(change)


def observed_change(
    name: str, response: pb.ObserveResponse, last: LeaderChange | None
) -> LeaderChange | None:
    """The change an ``Observe`` answer reports; ``None`` if it only repeats the last
    one delivered (a reopened stream starts with the leader as it stands). A compaction
    notice raises :class:`WatchCompacted`."""
    if response.compacted:
        raise WatchCompacted(
            f"the observation of {name} missed changes: read the leader and observe again "
            f"from revision {response.compact_revision}",
            compact_revision=response.compact_revision,
        )
    change = LeaderChange.from_wire(response)
    if last is not None and change.leader == last.leader:
        return None
    return change
