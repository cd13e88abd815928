//! What a seed decides before the run starts, swarm-style: each seed draws its own mix of
//! faults and their rates, its disk's failure rates, its snapshot pressure and its
//! workload's shape, so a sweep covers many different runs rather than one run many times.

use lockmgr_core::planted::PlantedBug;
use rand::{RngExt, SeedableRng, rngs::SmallRng, seq::IndexedRandom};

use crate::disk::DiskFaults;

/// The options one run is started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    pub seed: u64,
    pub nodes: usize,
    /// Simulated seconds of workload under faults (healing and checks come after).
    pub duration_s: u64,
    pub verbose: bool,
    pub bug: Option<PlantedBug>,
}

/// A kind of fault the nemesis injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The nodes split into two random groups that cannot talk.
    PartitionHalves,
    /// The leader is cut off from everyone.
    IsolateLeader,
    /// Each node talks only to its ring neighbours: every node sees a majority, no two
    /// see the same one.
    MajoritiesRing,
    /// One direction of one link is cut.
    OneWay,
    PacketLoss,
    LatencySpike,
    /// `kill -9` and restart later, with the disk's crash semantics.
    KillRestart,
    /// The node is frozen longer than a lease's TTL, then resumed (a GC pause).
    Pause,
    TransferLeader,
    /// A follower is removed from the cluster, its machine replaced (empty disk, new node
    /// id, same address) and the new node added: membership changes under load.
    Replace,
    /// `AddMember` of a node nobody runs (an address with no machine): it must stay a
    /// learner, never a voter, and be removable; healing removes it.
    AddUnreachable,
}

impl Fault {
    pub const ALL: [Fault; 11] = [
        Fault::PartitionHalves,
        Fault::IsolateLeader,
        Fault::MajoritiesRing,
        Fault::OneWay,
        Fault::PacketLoss,
        Fault::LatencySpike,
        Fault::KillRestart,
        Fault::Pause,
        Fault::TransferLeader,
        Fault::Replace,
        Fault::AddUnreachable,
    ];
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub options: RunOptions,
    pub faults: Vec<Fault>,
    /// Quiet time between faults, and how long one lasts, in milliseconds.
    pub fault_gap_ms: (u64, u64),
    pub fault_length_ms: (u64, u64),
    pub disk: DiskFaults,
    pub snapshot_interval_entries: u64,
    pub log_entries_kept_after_snapshot: u64,
    pub clients: usize,
    pub paths: usize,
    pub lease_ttl_ms: (u64, u64),
    /// Chance that a client lets its lease lapse instead of revoking it.
    pub lapse_chance: f64,
    /// Chance that a holder stalls past its lease before writing to the resource.
    pub stall_chance: f64,
    pub stale_unlock_chance: f64,
    /// Each node life's clock runs up to this many parts per million fast or slow (the
    /// servers are configured to absorb exactly this much).
    pub clock_drift_ppm: u64,
    /// The servers' lock-delay after an expiry (0: none, the default).
    pub lock_delay_ms: u64,
}

impl Plan {
    pub fn draw(options: RunOptions) -> Plan {
        let mut rng = SmallRng::seed_from_u64(options.seed ^ 0x5eed_91a7);
        let mut faults: Vec<Fault> =
            Fault::ALL.into_iter().filter(|_| rng.random_bool(0.5)).collect();
        if faults.is_empty() {
            faults.push(*Fault::ALL.choose(&mut rng).expect("faults exist"));
        }
        let disk = DiskFaults {
            power_loss_per_commit: *[0.0, 0.0, 2e-4, 1e-3].choose(&mut rng).expect("rates"),
            fsync_error_per_commit: *[0.0, 0.0, 0.0, 2e-4].choose(&mut rng).expect("rates"),
            read_corruption_per_read: 0.0,
        };
        let pressure = rng.random_bool(0.5);
        let mut plan = Plan {
            options,
            faults,
            fault_gap_ms: (200, rng.random_range(1_000..5_000)),
            fault_length_ms: (500, rng.random_range(2_000..10_000)),
            disk,
            snapshot_interval_entries: if pressure { rng.random_range(20..500) } else { 10_000 },
            log_entries_kept_after_snapshot: if pressure { rng.random_range(0..50) } else { 1_000 },
            clients: rng.random_range(100..=150),
            paths: rng.random_range(24..=56),
            lease_ttl_ms: (2_000, rng.random_range(2_500..6_000)),
            lapse_chance: rng.random_range(0.0..0.3),
            stall_chance: rng.random_range(0.0..0.1),
            stale_unlock_chance: rng.random_range(0.0..0.2),
            clock_drift_ppm: *[0, 1_000, 10_000, 50_000].choose(&mut rng).expect("bounds"),
            lock_delay_ms: 0,
        };
        // Drawn last, so that adding it left every other draw of a seed as it was.
        plan.disk.read_corruption_per_read =
            *[0.0, 0.0, 1e-5, 1e-4].choose(&mut rng).expect("rates");
        plan.lock_delay_ms = *[0, 0, 300, 1_500].choose(&mut rng).expect("delays");
        plan
    }

    /// What the plan's clients do.
    pub fn shape(&self) -> lockmgr_verify::workload::Shape {
        lockmgr_verify::workload::Shape {
            seed: self.options.seed,
            paths: self.paths,
            lease_ttl_ms: self.lease_ttl_ms,
            lapse_chance: self.lapse_chance,
            stall_chance: self.stall_chance,
            stale_unlock_chance: self.stale_unlock_chance,
        }
    }

    pub fn summary(&self) -> String {
        let faults: Vec<String> = self.faults.iter().map(|f| format!("{f:?}")).collect();
        format!(
            "{} nodes, {} clients on {} paths, faults [{}], power loss/commit {}, fsync errors/commit {}, corrupt reads/read {}, snapshot every {} entries, clock drift up to {} ppm, lock-delay {} ms",
            self.options.nodes,
            self.clients,
            self.paths,
            faults.join(" "),
            self.disk.power_loss_per_commit,
            self.disk.fsync_error_per_commit,
            self.disk.read_corruption_per_read,
            self.snapshot_interval_entries,
            self.clock_drift_ppm,
            self.lock_delay_ms
        )
    }
}
