"""The asyncio client of lockmgr: the API of :mod:`lockmgr`, awaited.

    import lockmgr.aio

    async with lockmgr.aio.Client(["10.0.0.1:7070"]) as client:
        async with client.session(ttl=10) as session:
            async with session.lock("/db/users/schema-migration", wait=30) as lock:
                await run_migration(lock.fencing_token)

Semaphores (``session.acquire_permit``), elections (``session.campaign``,
``client.leader``, ``client.observe``) and lock streams (``session.lock_stream``) are
there too. The errors and value types are :mod:`lockmgr`'s. A client, its sessions and
watches belong to the event loop they were first used on.
"""

from lockmgr.aio.client import Client, Opening
from lockmgr.aio.election import Leadership, Observation
from lockmgr.aio.lock_stream import LockStream
from lockmgr.aio.session import Lock, Session
from lockmgr.aio.watch import Watch

__all__ = [
    "Client",
    "Leadership",
    "Lock",
    "LockStream",
    "Observation",
    "Opening",
    "Session",
    "Watch",
]
