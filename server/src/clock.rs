//! The node's monotonic clock in milliseconds, the only time the leader's lessor and
//! timers see. Under the simulator, tokio's clock is madsim's simulated clock.

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    /// How much faster (or, negative, slower) than real time it runs, in parts per million.
    drift_ppm: i64,
}

impl Clock {
    pub fn new() -> Clock {
        Clock::drifting(0)
    }

    /// A clock running `drift_ppm` parts per million fast (or slow, if negative), as a
    /// real machine's may; the simulator gives each node one.
    pub fn drifting(drift_ppm: i64) -> Clock {
        assert!(drift_ppm.abs() < 1_000_000, "a clock runs forwards");
        Clock { start: Instant::now(), drift_ppm }
    }

    pub fn now_ms(self) -> u64 {
        let rate = (1_000_000 + self.drift_ppm) as u128;
        (self.start.elapsed().as_micros() * rate / 1_000_000_000) as u64
    }

    /// The instant at which `now_ms()` reaches `at_ms`.
    pub fn instant_at(self, at_ms: u64) -> Instant {
        let rate = (1_000_000 + self.drift_ppm) as u128;
        let real_us = (u128::from(at_ms) * 1_000_000_000).div_ceil(rate);
        self.start + std::time::Duration::from_micros(real_us as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
