//! The node's monotonic clock in milliseconds, the only time the leader's lessor and
//! timers see. Under the simulator, tokio's clock is madsim's simulated clock.

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock { start: Instant::now() }
    }

    pub fn now_ms(self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The instant at which `now_ms()` reaches `at_ms`.
    pub fn instant_at(self, at_ms: u64) -> Instant {
        self.start + std::time::Duration::from_millis(at_ms)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
