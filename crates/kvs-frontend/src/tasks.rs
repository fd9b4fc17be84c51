//! The frontend's background tasks, owned: each replicator, probe,
//! catch-up and loop is spawned through [`Tasks`], and [`Tasks::shutdown`]
//! stops them all and waits until they are gone, so nothing outlives the
//! frontend that started it.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every background task of one frontend.
#[derive(Debug, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    /// Runs `task` in the background until it ends or the frontend stops.
    /// After [`Tasks::shutdown`] nothing new is started.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if self.stop.is_cancelled() {
            return;
        }
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                biased;
                () = stop.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Resolves once the frontend is stopping.
    pub async fn stopping(&self) {
        self.stop.cancelled().await;
    }

    /// Stops every task and waits until each has ended.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// How many tasks are running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether no task is running.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_every_task_and_starts_no_more() {
        let tasks = Tasks::default();
        let dropped = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Flag(Arc::clone(&dropped));
        tasks.spawn(async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        tasks.spawn(std::future::pending());
        tokio::task::yield_now().await;
        assert_eq!(tasks.len(), 2);
        tasks.shutdown().await;
        assert!(tasks.is_empty());
        assert!(dropped.load(Ordering::SeqCst), "the sleeping task was dropped");
        tasks.spawn(std::future::pending());
        assert!(tasks.is_empty(), "nothing starts after shutdown");
    }
}
