//! The deterministic simulator: the real server under madsim with fault injection and
//! invariant checkers. Empty until the simulator issue.
