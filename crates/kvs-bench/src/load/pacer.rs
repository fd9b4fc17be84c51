//! Open-loop pacing: operation `i` is due at `start + i / rate`.
//!
//! A thread does the timing (OS timers are finer than tokio's 1 ms wheel).
//! It wakes at the next due time — or after [`MIN_TICK`], when operations
//! are due more often than that — and releases every operation due by then
//! as a semaphore permit. A connection takes a permit, then the next
//! operation index, and measures latency from that index's *intended*
//! start, so a release delay, a busy connection or a slow target is always
//! charged to the target, never hidden. Releasing in ticks rather than one
//! wake-up per operation keeps the generator's own CPU low at high rates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// The shortest sleep between two releases.
pub const MIN_TICK: Duration = Duration::from_micros(200);

/// The schedule the connections draw from.
pub struct Pacer {
    start: Instant,
    rate: f64,
    released: Semaphore,
    next_index: AtomicU64,
    /// How many operations the run has, once the pacing thread knows.
    total: AtomicU64,
}

impl Pacer {
    /// When operation `index` is due.
    pub fn intended(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.rate)
    }

    /// Waits for the next released operation and returns its intended
    /// start; `None` once every operation of the run has been taken.
    pub async fn next(&self) -> Option<Instant> {
        self.released.acquire().await.ok()?.forget();
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        (index < self.total.load(Ordering::Acquire)).then(|| self.intended(index))
    }
}

/// Starts pacing `rate` operations per second for `connections`
/// connections; `admit(intended)` says whether the run has an operation at
/// that time (false ends the run).
pub fn spawn(
    rate: f64,
    connections: usize,
    admit: impl Fn(Instant) -> bool + Send + 'static,
) -> (Arc<Pacer>, JoinHandle<()>) {
    let pacer = Arc::new(Pacer {
        start: Instant::now(),
        rate,
        released: Semaphore::new(0),
        next_index: AtomicU64::new(0),
        total: AtomicU64::new(u64::MAX),
    });
    let timing = Arc::clone(&pacer);
    let thread = std::thread::spawn(move || {
        let mut released = 0u64;
        loop {
            let now = Instant::now();
            let before = released;
            let mut over = false;
            while timing.intended(released) <= now {
                if !admit(timing.intended(released)) {
                    over = true;
                    break;
                }
                released += 1;
            }
            timing
                .released
                .add_permits(usize::try_from(released - before).unwrap_or(usize::MAX));
            if over {
                // One more permit per connection, each past the end: it stops it.
                timing.total.store(released, Ordering::Release);
                timing.released.add_permits(connections);
                return;
            }
            let until_due = timing.intended(released).saturating_duration_since(Instant::now());
            std::thread::sleep(until_due.max(MIN_TICK));
        }
    });
    (pacer, thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_operation_is_released_once_then_every_connection_stops() {
        let limit = 200;
        let (pacer, thread) = spawn(20_000.0, 3, {
            let start = Instant::now();
            let end = start + Duration::from_secs(60);
            let taken = AtomicU64::new(0);
            move |intended| intended < end && taken.fetch_add(1, Ordering::Relaxed) < limit
        });
        let mut times = Vec::new();
        while let Some(intended) = pacer.next().await {
            assert!(intended <= Instant::now(), "released before it was due");
            times.push(intended);
        }
        assert_eq!(times.len(), limit as usize);
        assert!(times.windows(2).all(|w| w[0] < w[1]), "in schedule order");
        assert_eq!(pacer.next().await, None);
        assert_eq!(pacer.next().await, None);
        thread.join().expect("pacing thread");
    }
}
