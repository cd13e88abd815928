"""What the end of a ``with`` block does when giving up what it held (a lock, a
leadership) failed, the same for the synchronous and the asyncio client: a lease that
ended while the block ran is ``SessionLost`` (what the block did may not have been
exclusive); another failure is raised as it is; over the block's own exception nothing
is raised (the lease's end gives up what it held), and a failure other than the lease's
end is logged.
"""

from __future__ import annotations

import logging

from lockmgr.errors import LeaseNotFound, LockmgrError, LockNotHeld, SessionLost


def end_failed(
    error: LockmgrError,
    block_error: BaseException | None,
    lease_id: int,
    held: str,
    failed: str,
    log: logging.Logger,
) -> None:
    """Called in the ``except`` of the block's end with what giving up raised: ``held``
    says what the block held ("/x was held", "leading /e"), ``failed`` what to log."""
    if isinstance(error, (LeaseNotFound, LockNotHeld)):
        if block_error is None:
            raise SessionLost(
                f"lease {lease_id} was lost while {held}: {error}",
                code=error.code,
                reason=error.reason,
            ) from error
        return
    if block_error is None:
        raise error
    log.warning("%s", failed, exc_info=True)
