//! The simulated disk: lockmgr's [`Disk`] in memory, with the faults a real one has.
//!
//! A commit (or a sync) is durable when it returns, as the contract says, so a kill
//! between tasks loses nothing synced. Writes not synced yet (the log's appends before
//! the log writer's fsync, the committed index) are visible at once and survive a crash
//! as a prefix, in order, as a journal's do: the crash keeps a random number of them. The
//! faults are what happens *during* a sync: power lost mid-sync (a prefix of the pending
//! batches is kept, the next one lost or torn, a torn batch failing its checksum at reopen
//! and being discarded, as fjall's journal does), and fsync errors. Either one
//! takes the disk down: every later commit fails, so the node stops (a failed fsync is
//! fatal) until the harness restarts it on the reopened disk. A read may come back
//! corrupted: the checksum (fjall checks one on every block it reads) catches it, so the
//! read fails with `InvalidData` instead of returning bad bytes; the disk itself stays up
//! (the next read is fine), and what the node does with the error is the server's
//! business (openraft stops on a failed log read; the harness restarts it). The planted bug
//! `AckBeforeFsync` acknowledges commits that only reach a volatile cache, lost at a
//! crash.

use std::{
    io,
    sync::{Mutex, MutexGuard},
};

use lockmgr_core::planted::{PlantedBug, planted};
use lockmgr_io::{Disk, KeyValue, MemSpaces, Op, Space};
use rand::{RngExt, SeedableRng, rngs::SmallRng};

/// Per-commit fault rates, drawn per seed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DiskFaults {
    /// Chance that power is lost during a commit.
    pub power_loss_per_commit: f64,
    /// Chance that a commit's fsync fails.
    pub fsync_error_per_commit: f64,
    /// Chance that a read returns corrupted bytes (caught by the checksum).
    pub read_corruption_per_read: f64,
}

/// What the disk went through, for the run's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub commits: u64,
    pub lost: u64,
    pub kept: u64,
    pub torn: u64,
    pub fsync_errors: u64,
    /// Reads whose checksum failed.
    pub corrupt_reads: u64,
    pub crashes: u64,
    /// Acknowledged batches a crash dropped (only with `AckBeforeFsync` planted).
    pub unsynced_dropped: u64,
}

impl std::iter::Sum for DiskStats {
    fn sum<I: Iterator<Item = DiskStats>>(stats: I) -> DiskStats {
        stats.fold(DiskStats::default(), |sum, s| DiskStats {
            commits: sum.commits + s.commits,
            lost: sum.lost + s.lost,
            kept: sum.kept + s.kept,
            torn: sum.torn + s.torn,
            fsync_errors: sum.fsync_errors + s.fsync_errors,
            corrupt_reads: sum.corrupt_reads + s.corrupt_reads,
            crashes: sum.crashes + s.crashes,
            unsynced_dropped: sum.unsynced_dropped + s.unsynced_dropped,
        })
    }
}

#[derive(Debug)]
struct State {
    /// What survives a crash.
    durable: MemSpaces,
    /// What reads see: `durable` plus the batches written but not synced yet.
    cache: MemSpaces,
    unsynced: Vec<Vec<Op>>,
    down: bool,
    faults: DiskFaults,
    rng: SmallRng,
    stats: DiskStats,
}

impl State {
    /// Writes not synced when the node stopped: a random prefix of them reached the
    /// platter, the rest is gone.
    fn settle_unsynced(&mut self) {
        let kept = self.rng.random_range(0..=self.unsynced.len());
        self.stats.unsynced_dropped += (self.unsynced.len() - kept) as u64;
        for batch in self.unsynced.drain(..).take(kept) {
            self.durable.apply(&batch);
        }
        self.unsynced.clear();
    }
}

#[derive(Debug)]
pub struct SimDisk {
    state: Mutex<State>,
}

impl SimDisk {
    pub fn new(seed: u64, faults: DiskFaults) -> SimDisk {
        SimDisk {
            state: Mutex::new(State {
                durable: MemSpaces::default(),
                cache: MemSpaces::default(),
                unsynced: Vec::new(),
                down: false,
                faults,
                rng: SmallRng::seed_from_u64(seed),
                stats: DiskStats::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state to read from, unless this read comes back corrupted.
    fn read(&self) -> io::Result<MutexGuard<'_, State>> {
        let mut state = self.state();
        let chance = state.faults.read_corruption_per_read;
        if chance > 0.0 && state.rng.random_bool(chance) {
            state.stats.corrupt_reads += 1;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "simulated read corruption: block checksum mismatch",
            ));
        }
        Ok(state)
    }

    /// The machine lost power: what was not durable is gone, but for a prefix of the
    /// writes that were not synced yet (they may have reached the platter anyway).
    pub fn crash(&self) {
        let mut state = self.state();
        let state = &mut *state;
        state.stats.crashes += 1;
        state.settle_unsynced();
        state.cache = state.durable.clone();
    }

    /// The node comes back on this disk (after a crash or a failed write).
    pub fn reopen(&self) {
        let mut state = self.state();
        state.settle_unsynced();
        state.down = false;
        state.cache = state.durable.clone();
    }

    /// The disk is replaced by an empty one (a node replaced by a new machine).
    pub fn wipe(&self) {
        let mut state = self.state();
        state.durable = MemSpaces::default();
        state.cache = MemSpaces::default();
        state.unsynced.clear();
        state.down = false;
    }

    /// Faults stop (the healing phase).
    pub fn heal(&self) {
        self.state().faults = DiskFaults::default();
    }

    pub fn is_down(&self) -> bool {
        self.state().down
    }

    pub fn stats(&self) -> DiskStats {
        self.state().stats
    }
}

impl Disk for SimDisk {
    fn get(&self, space: Space, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.read()?.cache.get(space, key))
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> io::Result<Vec<KeyValue>> {
        Ok(self.read()?.cache.scan(space, start, end, limit))
    }

    fn last(&self, space: Space) -> io::Result<Option<KeyValue>> {
        Ok(self.read()?.cache.last(space))
    }

    fn commit(&self, ops: Vec<Op>) -> io::Result<()> {
        self.write(ops)?;
        self.sync()
    }

    fn write(&self, ops: Vec<Op>) -> io::Result<()> {
        let mut state = self.state();
        if state.down {
            return Err(io::Error::other("the disk is down"));
        }
        state.cache.apply(&ops);
        state.unsynced.push(ops);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.state();
        let state = &mut *state;
        if state.down {
            return Err(io::Error::other("the disk is down"));
        }
        state.stats.commits += 1;
        if state.rng.random_bool(state.faults.power_loss_per_commit) {
            state.down = true;
            // A prefix of the pending batches made it; the next one was lost, kept or
            // torn (its checksum fails at reopen, so it is discarded); none after it.
            let pending = std::mem::take(&mut state.unsynced);
            let kept = state.rng.random_range(0..pending.len().max(1));
            let mut pending = pending.into_iter();
            for batch in pending.by_ref().take(kept) {
                state.durable.apply(&batch);
            }
            if let Some(batch) = pending.next() {
                match state.rng.random_range(0..3) {
                    0 => state.stats.lost += 1,
                    1 => {
                        state.stats.kept += 1;
                        state.durable.apply(&batch);
                    }
                    _ => state.stats.torn += 1,
                }
            }
            return Err(io::Error::other("simulated power loss during a write"));
        }
        if state.rng.random_bool(state.faults.fsync_error_per_commit) {
            state.down = true;
            state.stats.fsync_errors += 1;
            return Err(io::Error::other("simulated fsync failure"));
        }
        if planted(PlantedBug::AckBeforeFsync) {
            // The bug: acknowledged now, durable only at the next periodic flush.
            if state.unsynced.len() >= 64 {
                for batch in std::mem::take(&mut state.unsynced) {
                    state.durable.apply(&batch);
                }
            }
        } else {
            for batch in std::mem::take(&mut state.unsynced) {
                state.durable.apply(&batch);
            }
        }
        Ok(())
    }
}
