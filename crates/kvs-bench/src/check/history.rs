//! Recorded histories of key-value operations, the input of the
//! linearizability checker ([`crate::check::checker`]).
//!
//! Clients share one [`HistoryRecorder`]: each takes a timestamp with
//! [`HistoryRecorder::now_ns`] before invoking an operation and after it completes,
//! then appends the [`Operation`] with [`HistoryRecorder::record`]. Once the clients
//! are done, [`HistoryRecorder::into_history`] hands back the [`History`].
//!
//! Timestamps are nanoseconds since the recorder was created, read from one
//! monotonic clock, so they order operations across clients in real time. A
//! put whose fate is unknown (it failed or timed out) has no completion time:
//! it may take effect at any point after its invocation, or never.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// The key of the register an operation acts on.
pub type Key = i32;

/// The value a put writes or a get reads.
pub type Value = i32;

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Put(Value),
    Get,
}

/// What a client learned about its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A put that was acknowledged.
    Written,
    /// A get's answer: Some(value), or None for "key not found" (never written).
    Read(Option<Value>),
    /// A put that failed or timed out: it may or may not have taken effect, at any time after its invocation.
    Unknown,
}

/// One call on one key by one client, with when it was invoked and completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub client: usize,
    pub key: Key,
    pub call: Call,
    pub outcome: Outcome,
    /// Nanoseconds since the run started.
    pub invoked_ns: u64,
    /// None for Outcome::Unknown (treated as never completing).
    pub completed_ns: Option<u64>,
}

impl Operation {
    /// Whether this operation's effect is unknown: it may have taken effect at
    /// any time after its invocation, or never.
    pub fn is_indeterminate(&self) -> bool {
        self.outcome == Outcome::Unknown
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = format!("{} {}", CallOnKey(self.call, self.key), OutcomeText(self.outcome));
        let completed = match self.completed_ns {
            Some(ns) if !self.is_indeterminate() => Millis(ns).to_string(),
            _ => "∞".to_owned(),
        };
        write!(
            f,
            "client {:<3} {action:<32} [{} .. {completed}]",
            self.client,
            Millis(self.invoked_ns)
        )
    }
}

/// Renders a call with its key, e.g. `put(k=5, 12)` or `get(k=5)`.
struct CallOnKey(Call, Key);

impl fmt::Display for CallOnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Call::Put(value) => write!(f, "put(k={}, {value})", self.1),
            Call::Get => write!(f, "get(k={})", self.1),
        }
    }
}

/// Renders an outcome, e.g. `ok`, `-> 12`, `-> not found` or `unknown`.
struct OutcomeText(Outcome);

impl fmt::Display for OutcomeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Outcome::Written => f.write_str("ok"),
            Outcome::Read(Some(value)) => write!(f, "-> {value}"),
            Outcome::Read(None) => f.write_str("-> not found"),
            Outcome::Unknown => f.write_str("unknown"),
        }
    }
}

/// Renders nanoseconds as milliseconds with microsecond precision, e.g. `1.203 ms`.
struct Millis(u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03} ms", self.0 / 1_000_000, self.0 % 1_000_000 / 1_000)
    }
}

/// A thread-safe log that clients append their operations to.
#[derive(Debug)]
pub struct HistoryRecorder {
    started: Instant,
    operations: Mutex<Vec<Operation>>,
}

impl HistoryRecorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// A recorder whose clock started at `started`.
    pub fn starting_at(started: Instant) -> Self {
        Self {
            started,
            operations: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the recorder's clock started (saturating at `u64::MAX`, after 584 years).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Appends one operation. A client that panicked while recording cannot
    /// have left the log half-written, so a poisoned lock is simply taken over.
    pub fn record(&self, operation: Operation) {
        self.operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(operation);
    }

    /// Everything recorded, in the order it was recorded.
    pub fn into_history(self) -> History {
        History {
            operations: self.operations.into_inner().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

impl Default for HistoryRecorder {
    fn default() -> Self {
        Self::new()
    }
}

/// A recorded run: every operation of every client, on every key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub operations: Vec<Operation>,
}

impl History {
    /// The operations of each key, each list in invocation order.
    pub fn by_key(&self) -> BTreeMap<Key, Vec<Operation>> {
        let mut by_key: BTreeMap<Key, Vec<Operation>> = BTreeMap::new();
        for operation in &self.operations {
            by_key.entry(operation.key).or_default().push(operation.clone());
        }
        for operations in by_key.values_mut() {
            operations.sort_by_key(|operation| operation.invoked_ns);
        }
        by_key
    }

    /// How many distinct keys the history touches.
    pub fn keys(&self) -> usize {
        self.operations
            .iter()
            .map(|operation| operation.key)
            .collect::<BTreeSet<Key>>()
            .len()
    }

    /// How many operations the history holds.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether the history holds no operation at all.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

impl From<Vec<Operation>> for History {
    fn from(operations: Vec<Operation>) -> Self {
        Self { operations }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    fn operation(client: usize, key: Key, call: Call, outcome: Outcome, span: (u64, Option<u64>)) -> Operation {
        Operation {
            client,
            key,
            call,
            outcome,
            invoked_ns: span.0,
            completed_ns: span.1,
        }
    }

    #[test]
    fn displays_an_acknowledged_put() {
        let put = operation(3, 5, Call::Put(12), Outcome::Written, (1_203_000, Some(1_950_400)));
        let text = put.to_string();
        assert!(text.starts_with("client 3   put(k=5, 12) ok"), "{text}");
        assert!(text.ends_with("[1.203 ms .. 1.950 ms]"), "{text}");
    }

    #[test]
    fn displays_reads_of_a_value_and_of_nothing() {
        let found = operation(0, 5, Call::Get, Outcome::Read(Some(12)), (0, Some(1)));
        let missing = operation(0, 5, Call::Get, Outcome::Read(None), (0, Some(1)));
        assert!(found.to_string().contains("get(k=5) -> 12"), "{found}");
        assert!(missing.to_string().contains("get(k=5) -> not found"), "{missing}");
    }

    #[test]
    fn displays_an_unknown_put_as_never_completing() {
        let put = operation(1, 7, Call::Put(4), Outcome::Unknown, (2_000_000, None));
        let text = put.to_string();
        assert!(text.contains("put(k=7, 4) unknown"), "{text}");
        assert!(text.ends_with("[2.000 ms .. ∞]"), "{text}");
    }

    #[test]
    fn groups_operations_by_key_in_invocation_order() {
        let history = History::from(vec![
            operation(0, 2, Call::Get, Outcome::Read(None), (30, Some(40))),
            operation(1, 1, Call::Put(1), Outcome::Written, (20, Some(25))),
            operation(2, 2, Call::Put(9), Outcome::Written, (10, Some(50))),
        ]);
        let by_key = history.by_key();
        assert_eq!(history.len(), 3);
        assert_eq!(history.keys(), 2);
        assert_eq!(by_key.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        let key_two_starts: Vec<u64> = by_key[&2].iter().map(|operation| operation.invoked_ns).collect();
        assert_eq!(key_two_starts, vec![10, 30]);
    }

    #[test]
    fn records_from_many_threads() {
        let recorder = Arc::new(HistoryRecorder::new());
        let workers: Vec<_> = (0..4)
            .map(|client| {
                let recorder = Arc::clone(&recorder);
                thread::spawn(move || {
                    for value in 0..25 {
                        let invoked_ns = recorder.now_ns();
                        let completed_ns = Some(recorder.now_ns());
                        let call = Call::Put(value);
                        recorder.record(Operation {
                            client,
                            key: 0,
                            call,
                            outcome: Outcome::Written,
                            invoked_ns,
                            completed_ns,
                        });
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker thread panicked");
        }
        let history = Arc::try_unwrap(recorder).expect("all workers are done").into_history();
        assert_eq!(history.len(), 100);
        assert!(
            history
                .operations
                .iter()
                .all(|op| op.completed_ns >= Some(op.invoked_ns))
        );
    }
}
