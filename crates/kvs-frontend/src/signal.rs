//! A number that tasks wait on to grow: the last appended sequence number
//! and the commit point, which the replicators wait on.
//!
//! Like tokio's `watch`, but every waiter is woken in the order it began
//! waiting. (`watch` spreads its waiters over several notifiers picked at
//! random, so the order its waiters run in changes from run to run, and a
//! simulation could not replay a seed exactly.)

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// A number that only grows, and the tasks waiting for it to.
#[derive(Debug, Default)]
pub struct Signal {
    value: AtomicU64,
    grew: Notify,
}

impl Signal {
    pub fn new(value: u64) -> Self {
        Signal {
            value: AtomicU64::new(value),
            grew: Notify::new(),
        }
    }

    /// The number now.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }

    /// Raises the number to `value` if that is higher, and then wakes every
    /// waiter.
    pub fn raise(&self, value: u64) {
        if self.value.fetch_max(value, Ordering::AcqRel) < value {
            self.grew.notify_waiters();
        }
    }

    /// A waiter that has seen the number as it is now.
    pub fn watch(&self) -> Watcher<'_> {
        Watcher {
            signal: self,
            seen: self.get(),
        }
    }
}

/// One task's view of a [`Signal`]: the value it last saw.
#[derive(Debug)]
pub struct Watcher<'a> {
    signal: &'a Signal,
    seen: u64,
}

impl Watcher<'_> {
    /// Takes the number as it is now as seen.
    pub fn mark_seen(&mut self) {
        self.seen = self.signal.get();
    }

    /// Waits until the number differs from the one last seen, and takes
    /// the new one as seen.
    pub async fn changed(&mut self) {
        loop {
            let grew = self.signal.grew.notified();
            tokio::pin!(grew);
            // Registered before the look below, so a raise in between still wakes it.
            grew.as_mut().enable();
            let now = self.signal.get();
            if now != self.seen {
                self.seen = now;
                return;
            }
            grew.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_in_the_order_they_began_waiting() {
        let signal = Arc::new(Signal::new(0));
        let woken = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for waiter in 0..5 {
            let (signal, woken) = (Arc::clone(&signal), Arc::clone(&woken));
            tasks.push(tokio::spawn(async move {
                signal.watch().changed().await;
                woken.lock().push(waiter);
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        signal.raise(0);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(woken.lock().is_empty(), "no growth, no wake-up");
        signal.raise(7);
        for task in tasks {
            task.await.ok();
        }
        assert_eq!(*woken.lock(), vec![0, 1, 2, 3, 4]);
        signal.raise(3);
        assert_eq!(signal.get(), 7, "it never shrinks");
    }

    #[tokio::test(start_paused = true)]
    async fn a_raise_before_the_wait_is_not_missed() {
        let signal = Signal::new(1);
        let mut watcher = signal.watch();
        signal.raise(2);
        tokio::time::timeout(Duration::from_secs(1), watcher.changed())
            .await
            .expect("saw the raise");
        watcher.mark_seen();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), watcher.changed())
                .await
                .is_err(),
            "nothing new"
        );
    }
}
