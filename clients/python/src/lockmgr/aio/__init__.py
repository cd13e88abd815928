"""The asyncio client of lockmgr: the API of :mod:`lockmgr`, awaited.

    import lockmgr.aio

    async with lockmgr.aio.Client(["10.0.0.1:7070"]) as client:
        async with client.session(ttl=10) as session:
            async with session.lock("/db/users/schema-migration", wait=30) as lock:
                await run_migration(lock.fencing_token)

The errors are :mod:`lockmgr`'s. A client, its sessions and watches belong to the event
loop they were first used on.
"""

from lockmgr.aio.client import Client, Opening
from lockmgr.aio.session import Lock, Session
from lockmgr.aio.watch import Watch

__all__ = ["Client", "Lock", "Opening", "Session", "Watch"]
