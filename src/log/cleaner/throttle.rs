//! The cleaner's I/O rate limit (Kafka's `log.cleaner.io.max.bytes.per.second`): after
//! each chunk of work the cleaner sleeps long enough that its bytes read and written stay
//! under the rate, measured from the start of the cleaning.

use std::time::{Duration, Instant};

/// Paces the bytes of one cleaning.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    /// No limit with `None`.
    pub fn new(bytes_per_second: Option<u64>) -> Throttle {
        Throttle {
            bytes_per_second,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` of I/O and sleeps if the rate is ahead of the limit.
    pub fn account(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        let Some(rate) = self.bytes_per_second else {
            return;
        };
        let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_kept() {
        let mut t = Throttle::new(Some(1_000_000));
        let start = Instant::now();
        for _ in 0..10 {
            t.account(10_000);
        }
        assert!(start.elapsed() >= Duration::from_millis(95));
        let mut free = Throttle::new(None);
        free.account(usize::MAX / 2);
    }
}
