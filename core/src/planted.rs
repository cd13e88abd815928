//! Known bugs the simulator plants, one at a time, to prove that its checkers catch them
//! (a harness that catches nothing proves nothing). Compiled in only with the
//! `planted-bugs` feature, which only the simulator's build enables; without it
//! [`planted`] is a constant `false` and every hook folds away.

/// A bug the simulator's self-test can plant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PlantedBug {
    /// `Unlock` releases the lease's grant whatever token it is given.
    UnlockIgnoresToken = 1,
    /// A lease's waits survive its expiry and can be granted afterwards.
    GrantExpiredWaiter,
    /// The lessor gives keepalives half the TTL they promise.
    ExpireEarly,
    /// A snapshot restores the revision one lower, so a token is issued twice.
    TokenReuseAfterRestart,
    /// The disk acknowledges a write before it is durable (the simulated disk's bug).
    AckBeforeFsync,
    /// The lessor trusts its clock: it holds leases exactly their TTL on its own clock,
    /// ignoring the configured drift allowance, so a fast leader clock frees locks early.
    IgnoreClockDrift,
    /// De-duplication looks a request id up without the request it named: a reused id
    /// gets another request's remembered answer.
    RequestIdIgnoresRequest,
    /// `ValidateFence` calls a token valid if it is not above the current one: a stale
    /// holder's token passes.
    FenceAcceptsStale,
    /// The read view of a path shows only its first holder: shared co-holders vanish.
    ViewDropsCoHolders,
    /// A semaphore admits one holder more than its permits.
    SemaphoreAdmitsExtra,
    /// `Proclaim` hands the path to the next candidate while its leader still leads: an
    /// election with two leaders.
    ElectionTwoLeaders,
    /// The log writer acknowledges appends before its fsync (`io/src/log_store.rs`).
    LogAckBeforeFsync,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 12] = [
        PlantedBug::UnlockIgnoresToken,
        PlantedBug::GrantExpiredWaiter,
        PlantedBug::ExpireEarly,
        PlantedBug::TokenReuseAfterRestart,
        PlantedBug::AckBeforeFsync,
        PlantedBug::IgnoreClockDrift,
        PlantedBug::RequestIdIgnoresRequest,
        PlantedBug::FenceAcceptsStale,
        PlantedBug::ViewDropsCoHolders,
        PlantedBug::SemaphoreAdmitsExtra,
        PlantedBug::ElectionTwoLeaders,
        PlantedBug::LogAckBeforeFsync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::UnlockIgnoresToken => "unlock-ignores-token",
            PlantedBug::GrantExpiredWaiter => "grant-expired-waiter",
            PlantedBug::ExpireEarly => "expire-early",
            PlantedBug::TokenReuseAfterRestart => "token-reuse-after-restart",
            PlantedBug::AckBeforeFsync => "ack-before-fsync",
            PlantedBug::IgnoreClockDrift => "ignore-clock-drift",
            PlantedBug::RequestIdIgnoresRequest => "request-id-ignores-request",
            PlantedBug::FenceAcceptsStale => "fence-accepts-stale",
            PlantedBug::ViewDropsCoHolders => "view-drops-co-holders",
            PlantedBug::SemaphoreAdmitsExtra => "semaphore-admits-extra",
            PlantedBug::ElectionTwoLeaders => "election-two-leaders",
            PlantedBug::LogAckBeforeFsync => "log-ack-before-fsync",
        }
    }
}

#[cfg(feature = "planted-bugs")]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Plants `bug` (or none) for everything that runs from now on in this process.
#[cfg(feature = "planted-bugs")]
pub fn plant(bug: Option<PlantedBug>) {
    ACTIVE.store(bug.map_or(0, |bug| bug as u8), std::sync::atomic::Ordering::SeqCst);
}

/// Whether `bug` is planted.
#[cfg(feature = "planted-bugs")]
pub fn planted(bug: PlantedBug) -> bool {
    ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == bug as u8
}

/// Whether `bug` is planted: never, in this build.
#[cfg(not(feature = "planted-bugs"))]
#[inline]
pub fn planted(_bug: PlantedBug) -> bool {
    false
}
