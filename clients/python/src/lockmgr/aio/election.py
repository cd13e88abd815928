"""Elections for asyncio: as :mod:`lockmgr.election`, awaited. The request id rule is the
same: a new id per ``Campaign``, ``Proclaim`` and ``Resign``, reused only by its retries.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING

from lockmgr import _held
from lockmgr.aio._stream import Resuming, StreamCall
from lockmgr.election import observed_change
from lockmgr.errors import LockmgrError, WatchCompacted
from lockmgr.types import Leader, LeaderChange
from lockmgr.v1 import lockmgr_pb2 as pb

if TYPE_CHECKING:
    from lockmgr.aio.client import Client, Stubs
    from lockmgr.aio.session import Session

log = logging.getLogger("lockmgr")


class Leadership:
    """The leadership of an election, won by :meth:`Session.campaign` (see
    :class:`lockmgr.Leadership`). ``async with`` resigns at the end of the block;
    ``lost`` is an :class:`asyncio.Event` set once the session is lost, the election
    names another leader or none (a task follows it), or it resigned."""

    def __init__(self, session: Session, key: pb.LeaderKey, value: str) -> None:
        self.session = session
        self.key = key
        self.value = value
        self.resigned = False
        self.lost = asyncio.Event()
        session.when_lost(self.lost.set)
        self._follower = asyncio.create_task(
            _follow(self), name=f"lockmgr-leadership-{key.name}"
        )

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
        return Leader.from_wire(self.key, self.value)

    def __repr__(self) -> str:
        return (
            f"Leadership(name={self.name!r}, value={self.value!r}, "
            f"fencing_token={self.fencing_token}, lease_id={self.lease_id})"
        )

    async def proclaim(self, value: str) -> None:
        """Changes the leader's value without giving up leadership."""
        self.session._check_alive()
        if self.resigned:
            raise LockmgrError(f"the leadership of {self.name} was resigned")
        request = pb.ProclaimRequest(
            leader=self.key, value=value, request_id=self.session.next_request_id()
        )
        await self.session.client.proclaim_request(request)
        self.value = value

    async def resign(self) -> None:
        """Gives up leadership (``lost`` is set): the next candidate, if any, leads."""
        if self.resigned:
            return
        self.resigned = True
        self.lost.set()
        self._follower.cancel()
        request = pb.ResignRequest(leader=self.key, request_id=self.session.next_request_id())
        await self.session.client.resign_request(request)

    async def __aenter__(self) -> Leadership:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.resign()
        except LockmgrError as error:
            _held.end_failed(error, exc, self.lease_id, f"leading {self.name}", f"resigning {self.name} failed; its lease will end it", log)


# A follow of a leadership that failed (no member answered) is tried again after this.
_REOBSERVE_PAUSE_S = 0.2


async def _follow(leadership: Leadership) -> None:
    """Follows the election until it names another leader (or none), then sets the
    leadership's ``lost`` (from its grant's revision, as :mod:`lockmgr.election` does)."""
    session = leadership.session
    start = leadership.fencing_token
    while not (leadership.is_lost or session._closed or session.client.closed):
        observation = session.client.observe(leadership.name, start_revision=start)
        try:
            async with observation:
                async for change in observation:
                    if not leadership.is_key(change.leader):
                        log.info("leadership of %s ended: %s", leadership.name, change)
                        leadership.lost.set()
                        return
        except WatchCompacted:
            start = 0
        except LockmgrError as error:
            log.info("following the election %s: %s", leadership.name, error)
            start = observation.next_revision or start
            await asyncio.sleep(_REOBSERVE_PAUSE_S)


class Observation(Resuming[pb.ObserveResponse, LeaderChange]):
    """``async for change in observation``: the leader now (or from ``start_revision``),
    then each change, resumed on another member after a failure (see
    :class:`lockmgr.Observation`)."""

    def __init__(self, client: Client, name: str, *, start_revision: int) -> None:
        super().__init__(client)
        self.name = name
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
