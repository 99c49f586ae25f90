//! Debug-level timing of a build's (or a create's) phases, for finding where the time goes:
//! `xm -vv create` or `RUST_LOG=domain_builder=debug,xm_rs=debug` prints one line per phase.

use std::time::Instant;

/// Times consecutive phases; each [`lap`](PhaseClock::lap) logs the phase just finished.
#[derive(Debug, Clone, Copy)]
pub struct PhaseClock {
    started: Instant,
    last: Instant,
}

impl Default for PhaseClock {
    fn default() -> Self {
        PhaseClock::start()
    }
}

impl PhaseClock {
    /// Starts timing now.
    pub fn start() -> PhaseClock {
        let now = Instant::now();
        PhaseClock {
            started: now,
            last: now,
        }
    }

    /// Logs (at debug) how long `phase` took since the previous lap, and the total so far.
    pub fn lap(&mut self, phase: &'static str) {
        let now = Instant::now();
        let micros = |from: Instant| now.duration_since(from).as_micros() as u64;
        tracing::debug!(
            phase,
            us = micros(self.last),
            total_us = micros(self.started),
            "phase done"
        );
        self.last = now;
    }

    /// Milliseconds since [`start`](PhaseClock::start).
    pub fn total_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}
