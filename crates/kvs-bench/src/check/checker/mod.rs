//! A linearizability checker for recorded histories ([`crate::check::history`]) of a
//! key-value store, where every key is a read/write register that starts out
//! "never written".
//!
//! # Why a checker of our own
//!
//! The Rust crates that come close do not fit recorded runs:
//! `todc-utils`' `WGLChecker` takes an ordered list of call/response actions
//! rather than timestamps, has no notion of an operation that may or may not
//! have taken effect, no search budget, and answers only yes or no;
//! `stateright`'s `LinearizabilityTester` (and its extraction
//! `consistency_model`) is fed invocations and returns one by one while model
//! checking small systems, enumerates interleavings without memoisation,
//! likewise has no indeterminate operations and answers only yes or no. We
//! need real-time timestamps, puts whose fate is unknown, a bounded search,
//! and the operations that are at fault, so this module is a small,
//! self-contained implementation of the usual algorithm.
//!
//! # Method
//!
//! - **Per key.** Linearizability is compositional, so each key's operations
//!   are checked on their own, as one register.
//! - **Search.** Per key, the Wing & Gong search with Lowe's memoisation, as
//!   in Porcupine: the calls and returns of the key's operations form one
//!   time-ordered list; the search linearizes the earliest pending call the
//!   register accepts, removes the operation from the list and starts over
//!   from the front; reaching a return whose operation is still pending means
//!   the choices so far cannot work, so it undoes the latest one and tries the
//!   next call after it. A set of (operations linearized, register value)
//!   states already reached prunes repeated work.
//! - **Real time.** Operation A happened before operation B exactly when A
//!   completed strictly before B was invoked. Operations that touch at the
//!   same nanosecond are concurrent: at equal times calls sort before returns.
//! - **Unknown puts.** A put that failed or timed out completes at +∞ and is
//!   optional: it has no return event, so the search is never forced to place
//!   it, and succeeds as soon as every other operation is placed. It is only
//!   placed while a get that reads its value could be placed right after it
//!   (if it took effect at all, it may as well have done so just before its
//!   first reader), and one whose value no get reads is dropped beforehand.
//! - **Register rules.** Three more rules keep the search close to linear on
//!   real runs without losing any linearization: a pending get that reads
//!   what the register holds and could be placed now is placed at once, with
//!   no alternative tried (a read changes nothing, so placing it later never
//!   helps); no put is placed while a pending get still needs what the
//!   register holds and no put left could write that again; and all values
//!   that no get reads are one register state.
//! - **Budget.** Each key's search may take [`SEARCH_STEPS_PER_KEY`] steps
//!   plus [`SEARCH_STEPS_PER_OPERATION`] per operation; a key that needs more
//!   is [`CheckError::TooComplex`], unless a violation is found as below.
//! - **Violations.** Refuting a long history at once can take far longer
//!   than refuting the stretch around its violation, so a key that failed or
//!   ran out of steps is then checked in windows of consecutive operations
//!   slid along it. The first window that fails (or else the whole key) is
//!   cut down greedily, in halving chunks, to a small sub-history that still
//!   fails. Every sub-history checked keeps each put whose value one of its
//!   gets reads, so whatever fails does so on its own merits: any
//!   linearization of the whole key's history, restricted to those
//!   operations, would linearize them too.

use std::collections::HashSet;
use std::fmt;

use thiserror::Error;

use crate::check::history::{Call, History, Key, Operation, Outcome, Value};

mod register;
mod search;
mod shrink;

use register::register_ops;
use search::{SearchEnd, search};
use shrink::Shrinker;

/// How many search steps any key may take before it is declared too complex...
pub const SEARCH_STEPS_PER_KEY: u64 = 5_000_000;

/// ...plus this many per operation on the key. A valid history takes a few
/// dozen steps per operation even with 16 clients on one key.
pub const SEARCH_STEPS_PER_OPERATION: u64 = 100;

/// How many search steps shrinking one violation may take in all.
pub const SHRINK_STEPS_PER_VIOLATION: u64 = 50_000_000;

/// What a successful check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckReport {
    pub operations: usize,
    pub keys: usize,
}

/// Operations on one key that no linearization can explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: Key,
    /// The smallest offending sub-history found, in invocation order.
    pub operations: Vec<Operation>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {}: {} operations that cannot be linearized",
            self.key,
            self.operations.len()
        )?;
        for operation in &self.operations {
            writeln!(f, "  {operation}")?;
        }
        write!(
            f,
            "no order of these operations that respects their real-time order is consistent with a register \
             that starts empty (and no other operation writes a value they read)"
        )
    }
}

/// Why an operation cannot be checked at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformation {
    #[error("a put cannot answer with a read value")]
    PutAnsweredWithRead,
    #[error("a get cannot be acknowledged as a write")]
    GetAcknowledgedAsWrite,
    #[error("it completed before it was invoked")]
    CompletedBeforeInvoked,
    #[error("it is on key {actual}, not on key {expected} being checked")]
    OnOtherKey { expected: Key, actual: Key },
}

/// Why a history did not pass the check.
#[derive(Debug, Error)]
pub enum CheckError {
    #[error("not linearizable: {0}")]
    NotLinearizable(Box<Violation>),
    #[error("key {key}: the search budget ran out on its {operations} operations before a verdict")]
    TooComplex { key: Key, operations: usize },
    #[error("malformed operation ({problem}): {operation}")]
    Malformed {
        operation: Box<Operation>,
        problem: Malformation,
    },
}

/// Checks every key of `history` and reports the first violation, by key;
/// failing that, the first key that was too complex to decide.
pub fn check(history: &History) -> Result<CheckReport, CheckError> {
    for operation in &history.operations {
        validate(operation.key, operation)?;
    }
    let mut too_complex = None;
    for operations in history.by_key().values() {
        match check_key(operations) {
            Ok(()) => {}
            Err(error @ CheckError::TooComplex { .. }) => {
                too_complex.get_or_insert(error);
            }
            Err(error) => return Err(error),
        }
    }
    match too_complex {
        Some(error) => Err(error),
        None => Ok(CheckReport {
            operations: history.len(),
            keys: history.keys(),
        }),
    }
}

/// Checks the operations of one key (all of `operations` must be on the same key).
pub fn check_key(operations: &[Operation]) -> Result<(), CheckError> {
    check_key_within(operations, search_steps_for(operations.len()))
}

fn check_key_within(operations: &[Operation], search_steps: u64) -> Result<(), CheckError> {
    let Some(first) = operations.first() else {
        return Ok(());
    };
    for operation in operations {
        validate(first.key, operation)?;
    }
    let relevant = relevant_operations(operations);
    match search(&register_ops(&relevant.iter().collect::<Vec<_>>()), search_steps).verdict {
        SearchEnd::Linearizable => Ok(()),
        verdict => Err(explain_failure(first.key, &relevant, verdict, operations.len())),
    }
}

/// The error for a key whose search found no linearization of its `relevant`
/// operations (out of `operations` in all): a small violation if one is found.
fn explain_failure(key: Key, relevant: &[Operation], verdict: SearchEnd, operations: usize) -> CheckError {
    let mut shrinker = Shrinker::new(relevant);
    let failing = match (shrinker.failing_window(), verdict) {
        (Some(window), _) => window,
        (None, SearchEnd::NotLinearizable) => (0..relevant.len()).collect(),
        (None, _) => return CheckError::TooComplex { key, operations },
    };
    let operations = shrinker
        .shrink(failing)
        .into_iter()
        .map(|index| relevant[index].clone())
        .collect();
    CheckError::NotLinearizable(Box::new(Violation { key, operations }))
}

/// The search budget for a key with `operations` operations.
fn search_steps_for(operations: usize) -> u64 {
    let operations = u64::try_from(operations).unwrap_or(u64::MAX);
    SEARCH_STEPS_PER_KEY.saturating_add(SEARCH_STEPS_PER_OPERATION.saturating_mul(operations))
}

/// Rejects an operation on another key than `key`, or one that makes no sense.
fn validate(key: Key, operation: &Operation) -> Result<(), CheckError> {
    let problem = match (operation.call, operation.outcome, operation.completed_ns) {
        _ if operation.key != key => Malformation::OnOtherKey {
            expected: key,
            actual: operation.key,
        },
        (Call::Put(_), Outcome::Read(_), _) => Malformation::PutAnsweredWithRead,
        (Call::Get, Outcome::Written, _) => Malformation::GetAcknowledgedAsWrite,
        (_, outcome, Some(completed)) if outcome != Outcome::Unknown && completed < operation.invoked_ns => {
            Malformation::CompletedBeforeInvoked
        }
        _ => return Ok(()),
    };
    Err(CheckError::Malformed {
        operation: Box::new(operation.clone()),
        problem,
    })
}

/// The operations the search needs, in invocation order: gets without an
/// answer constrain nothing, and unknown puts nobody read may never have
/// taken effect.
fn relevant_operations(operations: &[Operation]) -> Vec<Operation> {
    let read_values = read_values(operations.iter());
    let mut relevant: Vec<Operation> = operations
        .iter()
        .filter(|operation| match (operation.call, operation.outcome) {
            (Call::Get, Outcome::Unknown) => false,
            (Call::Put(value), Outcome::Unknown) => read_values.contains(&value),
            _ => true,
        })
        .cloned()
        .collect();
    relevant.sort_by_key(|operation| operation.invoked_ns);
    relevant
}

/// The values that gets among `operations` read.
fn read_values<'o>(operations: impl Iterator<Item = &'o Operation>) -> HashSet<Value> {
    operations
        .filter_map(|operation| match operation.outcome {
            Outcome::Read(Some(value)) => Some(value),
            _ => None,
        })
        .collect()
}

/// The value an operation writes or reads, if any.
fn value_of(operation: &Operation) -> Option<Value> {
    match (operation.call, operation.outcome) {
        (Call::Put(value), _) | (Call::Get, Outcome::Read(Some(value))) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ops::Range;
    use std::time::{Duration, Instant};

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const KEY: Key = 5;

    fn put(client: usize, value: Value, invoked_ns: u64, completed_ns: u64) -> Operation {
        let call = Call::Put(value);
        Operation {
            client,
            key: KEY,
            call,
            outcome: Outcome::Written,
            invoked_ns,
            completed_ns: Some(completed_ns),
        }
    }

    fn unknown_put(client: usize, value: Value, invoked_ns: u64) -> Operation {
        Operation {
            client,
            key: KEY,
            call: Call::Put(value),
            outcome: Outcome::Unknown,
            invoked_ns,
            completed_ns: None,
        }
    }

    fn get(client: usize, seen: Option<Value>, invoked_ns: u64, completed_ns: u64) -> Operation {
        let outcome = Outcome::Read(seen);
        Operation {
            client,
            key: KEY,
            call: Call::Get,
            outcome,
            invoked_ns,
            completed_ns: Some(completed_ns),
        }
    }

    fn violation_in(operations: Vec<Operation>) -> Violation {
        match check(&History::from(operations)) {
            Err(CheckError::NotLinearizable(violation)) => *violation,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn assert_linearizable(operations: Vec<Operation>) {
        let history = History::from(operations);
        match check(&history) {
            Ok(report) => assert_eq!(
                report,
                CheckReport {
                    operations: history.len(),
                    keys: history.keys()
                }
            ),
            Err(error) => panic!("expected linearizable, got {error}"),
        }
    }

    #[test]
    fn rejects_a_stale_read_after_an_acknowledged_put() {
        let operations = vec![put(0, 1, 0, 10), put(1, 2, 20, 30), get(2, Some(1), 40, 50)];
        let violation = violation_in(operations.clone());
        assert_eq!(violation.key, KEY);
        assert_eq!(violation.operations, operations);
    }

    #[test]
    fn rejects_a_lost_write() {
        let operations = vec![put(0, 1, 0, 10), get(1, None, 20, 30)];
        assert_eq!(violation_in(operations.clone()).operations, operations);
    }

    #[test]
    fn rejects_readers_disagreeing_on_the_order_of_two_writes() {
        // Both puts run over the whole window, so real time alone orders nothing between them.
        // Reader A sees 1 (during 10..20) and then 2 (during 30..60): put(1) took effect before
        // A's first read, put(2) between A's reads; as each put happens once, put(1) < put(2).
        // Reader B sees 2 (during 15..25) and then 1 (during 35..65, overlapping A's second
        // read): by the same argument put(2) < put(1). Both orders cannot hold.
        let operations = vec![
            put(0, 1, 0, 100),
            put(1, 2, 0, 100),
            get(2, Some(1), 10, 20),
            get(3, Some(2), 15, 25),
            get(2, Some(2), 30, 60),
            get(3, Some(1), 35, 65),
        ];
        let violation = violation_in(operations);
        assert!(violation.operations.len() <= 6);
    }

    #[test]
    fn rejects_a_read_of_a_value_never_written() {
        let operations = vec![put(0, 1, 0, 10), get(1, Some(99), 20, 30), get(1, Some(1), 40, 50)];
        assert_eq!(violation_in(operations).operations, vec![get(1, Some(99), 20, 30)]);
    }

    #[test]
    fn rejects_an_older_value_after_an_unknown_put_became_visible() {
        // Once a read saw 2, the unknown put has taken effect, and nothing writes 1 again.
        let operations = vec![
            put(0, 1, 0, 10),
            unknown_put(1, 2, 20),
            get(2, Some(2), 30, 40),
            get(2, Some(1), 50, 60),
        ];
        assert_eq!(violation_in(operations.clone()).operations, operations);
    }

    #[test]
    fn accepts_a_get_concurrent_with_a_put_seeing_either_value() {
        for seen in [1, 2] {
            assert_linearizable(vec![put(0, 1, 0, 10), put(1, 2, 20, 40), get(2, Some(seen), 25, 35)]);
            assert_linearizable(vec![put(0, 1, 0, 10), get(2, Some(seen), 15, 45), put(1, 2, 20, 40)]);
        }
    }

    #[test]
    fn accepts_an_unknown_put_that_never_shows_up() {
        assert_linearizable(vec![
            put(0, 1, 0, 10),
            unknown_put(1, 2, 20),
            get(2, Some(1), 30, 40),
            get(3, Some(1), 1_000, 1_010),
        ]);
    }

    #[test]
    fn accepts_an_unknown_put_that_shows_up_long_after_its_invocation() {
        assert_linearizable(vec![
            put(0, 1, 0, 10),
            unknown_put(1, 2, 20),
            get(2, Some(1), 30, 40),
            get(2, Some(1), 1_000_000, 1_000_010),
            get(3, Some(2), 5_000_000, 5_000_010),
            get(2, Some(2), 6_000_000, 6_000_010),
        ]);
    }

    #[test]
    fn accepts_not_found_before_any_write() {
        assert_linearizable(vec![get(0, None, 0, 10), put(1, 1, 20, 30), get(0, Some(1), 40, 50)]);
        assert_linearizable(vec![put(1, 1, 20, 30), get(0, None, 25, 35)]);
    }

    #[test]
    fn treats_operations_touching_at_the_same_instant_as_concurrent() {
        // put(2) returned at 30, the get was invoked at 30: neither happened before the other.
        assert_linearizable(vec![put(0, 1, 0, 10), put(1, 2, 20, 30), get(2, Some(1), 30, 40)]);
        assert!(
            check(&History::from(vec![
                put(0, 1, 0, 10),
                put(1, 2, 20, 30),
                get(2, Some(1), 31, 40)
            ]))
            .is_err()
        );
    }

    #[test]
    fn ignores_gets_without_an_answer() {
        let unanswered = Operation {
            outcome: Outcome::Unknown,
            ..get(1, None, 20, 30)
        };
        assert_linearizable(vec![put(0, 1, 0, 10), unanswered]);
    }

    #[test]
    fn rejects_malformed_operations() {
        let put_with_read = Operation {
            outcome: Outcome::Read(Some(1)),
            ..put(0, 1, 0, 10)
        };
        let backwards = get(1, None, 30, 20);
        for (operation, expected) in [
            (put_with_read, Malformation::PutAnsweredWithRead),
            (backwards, Malformation::CompletedBeforeInvoked),
        ] {
            match check(&History::from(vec![operation])) {
                Err(CheckError::Malformed { problem, .. }) => assert_eq!(problem, expected),
                other => panic!("expected {expected:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn reports_too_complex_when_the_budget_runs_out() {
        let operations: Vec<Operation> = (0..20).map(|client| put(client, 1, 0, 100)).collect();
        match check_key_within(&operations, 10) {
            Err(CheckError::TooComplex { key, operations }) => assert_eq!((key, operations), (KEY, 20)),
            other => panic!("expected TooComplex, got {other:?}"),
        }
    }

    #[test]
    fn shrinks_a_stale_read_hidden_among_valid_operations() {
        let mut operations = simulate(&Simulation {
            operations: 150,
            keys: 0..KEY,
            ..Simulation::new(7)
        });
        let same_key_noise = simulate(&Simulation {
            operations: 50,
            keys: KEY..KEY + 1,
            ..Simulation::new(8)
        });
        let quiet_from = same_key_noise
            .iter()
            .filter_map(|operation| operation.completed_ns)
            .max()
            .unwrap_or(0);
        let stale_read = [
            put(20, 1, quiet_from + 10, quiet_from + 20),
            put(21, 2, quiet_from + 30, quiet_from + 40),
            get(22, Some(1), quiet_from + 50, quiet_from + 60),
        ];
        let latest_other_key = operations.iter().filter_map(|operation| operation.completed_ns).max();
        assert!(
            latest_other_key > Some(quiet_from + 60),
            "other keys' operations surround the stale read"
        );
        operations.extend(same_key_noise);
        operations.extend(stale_read.iter().cloned());

        let violation = violation_in(operations);
        assert_eq!(violation.key, KEY);
        assert!(violation.operations.len() <= 4, "{violation}");
        assert!(violation.operations.contains(&stale_read[2]), "{violation}");
    }

    #[test]
    fn violation_display_names_the_key_and_each_operation() {
        let violation = violation_in(vec![put(0, 1, 0, 10), get(1, None, 20, 30)]);
        let text = violation.to_string();
        assert!(text.starts_with("key 5:"), "{text}");
        assert!(text.contains("put(k=5, 1) ok"), "{text}");
        assert!(text.contains("get(k=5) -> not found"), "{text}");
        assert!(text.contains("consistent with a register that starts empty"), "{text}");
        let error = CheckError::NotLinearizable(Box::new(violation));
        assert!(error.to_string().contains("key 5"), "{error}");
    }

    #[test]
    fn accepts_many_random_interleavings() {
        for seed in 0..300 {
            let distinct_values = seed % 2 == 0;
            let simulation = Simulation {
                operations: 40,
                clients: 6,
                distinct_values,
                ..Simulation::new(seed)
            };
            let history = History::from(simulate(&simulation));
            if let Err(error) = check(&history) {
                panic!("seed {seed}: {error}");
            }
        }
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let mut rng = SmallRng::seed_from_u64(42);
        let (mut linearizable, mut not_linearizable) = (0, 0);
        for _ in 0..3_000 {
            let operations = random_small_history(&mut rng);
            match check_key(&operations) {
                Ok(()) => {
                    assert!(
                        brute_force_linearizable(&operations),
                        "accepted wrongly: {operations:#?}"
                    );
                    linearizable += 1;
                }
                Err(CheckError::NotLinearizable(violation)) => {
                    assert!(
                        !brute_force_linearizable(&operations),
                        "rejected wrongly: {operations:#?}"
                    );
                    assert!(
                        !brute_force_linearizable(&violation.operations),
                        "shrunk to a valid part: {violation}"
                    );
                    not_linearizable += 1;
                }
                Err(error) => panic!("{error}"),
            }
        }
        assert!(
            linearizable > 300 && not_linearizable > 300,
            "{linearizable} vs {not_linearizable}"
        );
    }

    #[test]
    fn checks_a_long_valid_history_quickly() {
        let simulation = Simulation {
            operations: 20_000,
            clients: 16,
            keys: 0..8,
            ..Simulation::new(1)
        };
        let history = History::from(simulate(&simulation));
        let started = Instant::now();
        let report = check(&history);
        let elapsed = started.elapsed();
        println!(
            "checked {} operations on {} keys in {elapsed:?}",
            history.len(),
            history.keys()
        );
        assert_eq!(
            report.ok(),
            Some(CheckReport {
                operations: 20_000,
                keys: 8
            })
        );
        assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    }

    #[test]
    fn finds_a_stale_read_planted_in_a_long_history() {
        let simulation = Simulation {
            operations: 20_000,
            clients: 16,
            keys: 0..8,
            ..Simulation::new(3)
        };
        let mut operations = simulate(&simulation);
        let stale_read = plant_stale_read(&mut operations, 10_000);
        let started = Instant::now();
        let violation = violation_in(operations);
        println!(
            "found a planted stale read among 20000 operations in {:?}",
            started.elapsed()
        );
        assert_eq!(violation.key, 0);
        assert!(violation.operations.len() <= 4, "{violation}");
        assert!(violation.operations.contains(&stale_read), "{violation}");
    }

    /// Run with `cargo test -p kvs-bench --release -- --ignored --nocapture` for timings at full scale.
    #[test]
    #[ignore = "timings at full scale, meant for release builds"]
    fn checks_a_hundred_thousand_operations() {
        for (keys, unknown_percent) in [(50, 5), (10, 5), (10, 30), (1, 5)] {
            let simulation = Simulation {
                operations: 100_000,
                clients: 16,
                keys: 0..keys,
                unknown_percent,
                ..Simulation::new(2)
            };
            let history = History::from(simulate(&simulation));
            let started = Instant::now();
            let report = check(&history);
            let elapsed = started.elapsed();
            println!("valid, {keys} keys, {unknown_percent}% unknown puts: checked in {elapsed:?}");
            assert!(report.is_ok(), "{report:?}");

            let mut operations = history.operations;
            let stale_read = plant_stale_read(&mut operations, 50_000);
            let started = Instant::now();
            let violation = violation_in(operations);
            let elapsed = started.elapsed();
            println!(
                "stale read planted, {keys} keys: found {} operations in {elapsed:?}",
                violation.operations.len()
            );
            assert!(violation.operations.contains(&stale_read), "{violation}");
        }
    }

    /// Makes the first get on key 0 from operation `from` on return the value
    /// that a get about 3000 operations earlier read, and returns it.
    fn plant_stale_read(operations: &mut [Operation], from: usize) -> Operation {
        let is_get_on_key_0 = |operation: &Operation| operation.call == Call::Get && operation.key == 0;
        let target = (from..operations.len())
            .find(|&index| is_get_on_key_0(&operations[index]))
            .expect("a get");
        let old_read = (0..target - 3_000)
            .rev()
            .find(|&index| is_get_on_key_0(&operations[index]) && operations[index].outcome != Outcome::Read(None))
            .expect("an older read of a value");
        operations[target].outcome = operations[old_read].outcome;
        operations[target].clone()
    }

    /// Parameters of a simulated run against a linearizable register per key.
    struct Simulation {
        seed: u64,
        operations: usize,
        clients: usize,
        keys: Range<Key>,
        /// Whether every put writes a value of its own (as the real runs do), or one of a few.
        distinct_values: bool,
        /// Percentage of puts whose outcome is unknown.
        unknown_percent: u32,
    }

    impl Simulation {
        fn new(seed: u64) -> Self {
            Self {
                seed,
                operations: 1_000,
                clients: 16,
                keys: 0..4,
                distinct_values: true,
                unknown_percent: 5,
            }
        }
    }

    /// A history from clients working back to back on registers that really
    /// are linearizable: each operation takes effect at a random instant
    /// between its invocation and completion, and reads see what the register
    /// holds then. Some puts are unknown: they take effect soon, much later, or never.
    fn simulate(simulation: &Simulation) -> Vec<Operation> {
        let mut rng = SmallRng::seed_from_u64(simulation.seed);
        let mut free_at = vec![0_u64; simulation.clients];
        let mut planned: Vec<(Option<u64>, Operation)> = Vec::with_capacity(simulation.operations);
        for (serial, client) in (0..simulation.operations).zip((0..simulation.clients).cycle()) {
            let invoked_ns = free_at[client] + rng.random_range(0..50);
            let effect_ns = invoked_ns + rng.random_range(0..200);
            let completed_ns = effect_ns + rng.random_range(0..200);
            let key = rng.random_range(simulation.keys.clone());
            let mut operation = Operation {
                client,
                key,
                call: Call::Get,
                outcome: Outcome::Written,
                invoked_ns,
                completed_ns: Some(completed_ns),
            };
            let mut effect = Some(effect_ns);
            if rng.random_bool(0.5) {
                let distinct = Value::try_from(serial).unwrap_or(Value::MAX).saturating_add(1000);
                operation.call = Call::Put(if simulation.distinct_values {
                    distinct
                } else {
                    rng.random_range(1..4)
                });
                if rng.random_ratio(simulation.unknown_percent, 100) {
                    (operation.outcome, operation.completed_ns) = (Outcome::Unknown, None);
                    effect =
                        [None, Some(effect_ns), Some(invoked_ns + rng.random_range(0..20_000))][rng.random_range(0..3)];
                }
            }
            free_at[client] = operation.completed_ns.unwrap_or(invoked_ns + 400);
            planned.push((effect, operation));
        }
        apply_in_effect_order(&mut planned);
        planned.into_iter().map(|(_, operation)| operation).collect()
    }

    /// Fills in what each get read, applying operations at their effect instants.
    fn apply_in_effect_order(planned: &mut [(Option<u64>, Operation)]) {
        let mut order: Vec<usize> = (0..planned.len()).filter(|&index| planned[index].0.is_some()).collect();
        order.sort_by_key(|&index| (planned[index].0, index));
        let mut registers: HashMap<Key, Value> = HashMap::new();
        for index in order {
            let operation = &mut planned[index].1;
            match operation.call {
                Call::Put(value) => {
                    registers.insert(operation.key, value);
                }
                Call::Get => operation.outcome = Outcome::Read(registers.get(&operation.key).copied()),
            }
        }
    }

    /// Up to six operations on one key with random, often overlapping spans
    /// and random answers, about half of them linearizable.
    fn random_small_history(rng: &mut SmallRng) -> Vec<Operation> {
        (0..rng.random_range(1..=6))
            .map(|client| {
                let invoked_ns = rng.random_range(0..12);
                let completed_ns = invoked_ns + rng.random_range(0..6);
                match rng.random_range(0..10) {
                    0..=2 => put(client, rng.random_range(1..=2), invoked_ns, completed_ns),
                    3 => unknown_put(client, rng.random_range(1..=2), invoked_ns),
                    4 => get(client, None, invoked_ns, completed_ns),
                    _ => get(client, Some(rng.random_range(1..=3)), invoked_ns, completed_ns),
                }
            })
            .collect()
    }

    /// Tries every order of every subset that holds all operations but unknown puts.
    fn brute_force_linearizable(operations: &[Operation]) -> bool {
        fn extend(operations: &[Operation], placed: &mut [bool], register: Option<Value>) -> bool {
            if operations
                .iter()
                .zip(placed.iter())
                .all(|(operation, &done)| done || operation.is_indeterminate())
            {
                return true;
            }
            for next in 0..operations.len() {
                let waits = (0..operations.len()).any(|other| {
                    !placed[other]
                        && !operations[other].is_indeterminate()
                        && operations[other]
                            .completed_ns
                            .is_some_and(|done| done < operations[next].invoked_ns)
                });
                let after = match (operations[next].call, operations[next].outcome) {
                    (Call::Put(value), _) => Some(Some(value)),
                    (Call::Get, Outcome::Read(seen)) if seen == register => Some(register),
                    _ => None,
                };
                let Some(after) = after.filter(|_| !placed[next] && !waits) else {
                    continue;
                };
                placed[next] = true;
                if extend(operations, placed, after) {
                    return true;
                }
                placed[next] = false;
            }
            false
        }
        extend(operations, &mut vec![false; operations.len()], None)
    }
}
