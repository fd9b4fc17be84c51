//! A linearizability checker for recorded histories ([`crate::history`]) of a
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
//!   it, may place it anywhere after its invocation, and succeeds as soon as
//!   every other operation is placed. An unknown put whose value no get of
//!   the key reads is dropped before the search: it cannot explain any read,
//!   so "never took effect" is always an option for it.
//! - **Budget.** Each key's search may take at most [`SEARCH_STEPS_PER_KEY`]
//!   steps; a key that needs more is reported as [`CheckError::TooComplex`].
//! - **Shrinking.** A failing key's operations are cut down greedily, in
//!   halving chunks, to a small sub-history that still fails. Only cuts that
//!   keep every put whose value a remaining get reads are tried, so whatever
//!   remains fails on its own merits: any linearization of the whole key's
//!   history would, restricted to those operations, linearize them too.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use thiserror::Error;

use crate::history::{Call, History, Key, Operation, Outcome, Value};

/// How many search steps one key may take before it is declared too complex.
pub const SEARCH_STEPS_PER_KEY: u64 = 5_000_000;

/// How many search steps shrinking one violation may take in all.
pub const SHRINK_STEPS_PER_VIOLATION: u64 = 20_000_000;

/// How many search steps one shrinking attempt may take; an attempt that runs
/// out is treated as not failing, so the operations it tried to drop stay.
const SHRINK_STEPS_PER_ATTEMPT: u64 = 1_000_000;

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
    /// the smallest offending sub-history found, in invocation order
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
    check_key_within(operations, SEARCH_STEPS_PER_KEY)
}

fn check_key_within(operations: &[Operation], search_steps: u64) -> Result<(), CheckError> {
    let Some(first) = operations.first() else {
        return Ok(());
    };
    let key = first.key;
    for operation in operations {
        validate(key, operation)?;
    }
    let relevant = relevant_operations(operations);
    let register_ops: Vec<RegisterOp> = relevant.iter().map(RegisterOp::from).collect();
    let r = search(&register_ops, 2_000_000_000);
    eprintln!(
        "key {key}: {} ops {:?} {} steps",
        register_ops.len(),
        r.verdict,
        r.steps
    );
    match search(&register_ops, search_steps).verdict {
        Verdict::Linearizable => Ok(()),
        Verdict::OutOfSteps => Err(CheckError::TooComplex {
            key,
            operations: operations.len(),
        }),
        Verdict::NotLinearizable => {
            let offending = Shrinker::new(&relevant, SHRINK_STEPS_PER_VIOLATION).shrink();
            let operations = offending.into_iter().map(|index| relevant[index].clone()).collect();
            Err(CheckError::NotLinearizable(Box::new(Violation { key, operations })))
        }
    }
}

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
    let read_values: HashSet<Value> = operations
        .iter()
        .filter_map(|operation| match operation.outcome {
            Outcome::Read(Some(value)) => Some(value),
            _ => None,
        })
        .collect();
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

/// The register's value: `None` until the first write.
type RegisterState = Option<Value>;

/// What an operation does to, or demands of, the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Write(Value),
    Read(RegisterState),
}

impl Effect {
    /// The register after this operation, or `None` if it cannot happen now.
    fn apply(self, register: RegisterState) -> Option<RegisterState> {
        match self {
            Self::Write(value) => Some(Some(value)),
            Self::Read(seen) => (seen == register).then_some(register),
        }
    }
}

/// By when an operation must have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// Before it completed, at this time.
    At(u64),
    /// At some point: it has an outcome but no recorded completion time.
    Eventually,
    /// Never: it may take effect at any time after its invocation, or not at all.
    Optional,
}

/// An operation reduced to what the search needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RegisterOp {
    effect: Effect,
    invoked_ns: u64,
    deadline: Deadline,
}

impl From<&Operation> for RegisterOp {
    fn from(operation: &Operation) -> Self {
        let effect = match (operation.call, operation.outcome) {
            (Call::Put(value), _) => Effect::Write(value),
            (Call::Get, Outcome::Read(seen)) => Effect::Read(seen),
            (Call::Get, _) => Effect::Read(None),
        };
        let deadline = match (operation.outcome, operation.completed_ns) {
            (Outcome::Unknown, _) => Deadline::Optional,
            (_, Some(completed)) => Deadline::At(completed),
            (_, None) => Deadline::Eventually,
        };
        Self {
            effect,
            invoked_ns: operation.invoked_ns,
            deadline,
        }
    }
}

/// An entry of the time-ordered event list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// The list's fixed first node, before every event.
    Head,
    Call(usize),
    Return(usize),
}

/// Marks the end of the event list.
const END: usize = usize::MAX;

/// The calls and returns of operations as a doubly linked list in time order,
/// from which an operation's events can be lifted and put back in LIFO order.
struct Timeline {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    call_node: Vec<usize>,
    return_node: Vec<Option<usize>>,
}

impl Timeline {
    fn new(ops: &[RegisterOp]) -> Self {
        // (time, calls before returns at equal times, event)
        let mut timed: Vec<(u64, u8, Event)> = Vec::with_capacity(2 * ops.len());
        for (index, op) in ops.iter().enumerate() {
            timed.push((op.invoked_ns, 0, Event::Call(index)));
            match op.deadline {
                Deadline::At(completed) => timed.push((completed, 1, Event::Return(index))),
                Deadline::Eventually => timed.push((u64::MAX, 1, Event::Return(index))),
                Deadline::Optional => {}
            }
        }
        timed.sort_by_key(|&(time, order, event)| (time, order, Self::op_of(event)));
        let events: Vec<Event> = std::iter::once(Event::Head)
            .chain(timed.into_iter().map(|(_, _, e)| e))
            .collect();
        let count = events.len();
        let mut timeline = Self {
            next: (1..=count).map(|node| if node == count { END } else { node }).collect(),
            prev: (0..count).map(|node| node.wrapping_sub(1)).collect(),
            call_node: vec![0; ops.len()],
            return_node: vec![None; ops.len()],
            events,
        };
        timeline.index_nodes();
        timeline
    }

    fn op_of(event: Event) -> usize {
        match event {
            Event::Head => 0,
            Event::Call(op) | Event::Return(op) => op,
        }
    }

    fn index_nodes(&mut self) {
        for (node, event) in self.events.iter().enumerate() {
            match *event {
                Event::Head => {}
                Event::Call(op) => self.call_node[op] = node,
                Event::Return(op) => self.return_node[op] = Some(node),
            }
        }
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    /// The node of the first return event left, or [`END`]. Nodes are
    /// numbered in time order, so an event before it has a smaller node.
    fn first_return(&self) -> usize {
        let mut node = self.first();
        while let Some(Event::Call(_) | Event::Head) = self.event(node) {
            node = self.after(node);
        }
        node
    }

    fn after(&self, node: usize) -> usize {
        self.next[node]
    }

    /// The node after `op`'s call, once `op` is back in the list.
    fn after_call(&self, op: usize) -> usize {
        self.next[self.call_node[op]]
    }

    /// The event at `node`, or `None` past the end.
    fn event(&self, node: usize) -> Option<Event> {
        self.events.get(node).copied()
    }

    /// Takes `op`'s call and return out of the list.
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        if let Some(node) = self.return_node[op] {
            self.unlink(node);
        }
    }

    /// Puts back the operation lifted last.
    fn unlift(&mut self, op: usize) {
        if let Some(node) = self.return_node[op] {
            self.relink(node);
        }
        self.relink(self.call_node[op]);
    }

    fn unlink(&mut self, node: usize) {
        let (before, after) = (self.prev[node], self.next[node]);
        self.next[before] = after;
        if after != END {
            self.prev[after] = before;
        }
    }

    fn relink(&mut self, node: usize) {
        let (before, after) = (self.prev[node], self.next[node]);
        self.next[before] = node;
        if after != END {
            self.prev[after] = node;
        }
    }
}

/// The set of operations linearized so far, as a bitset.
struct LinearizedSet {
    words: Vec<u64>,
    /// Every word before this one is full.
    full_words: usize,
    /// Every word from this one on is empty.
    used_words: usize,
}

/// A compact, canonical copy of a [`LinearizedSet`]: the count of leading full
/// words and the words from there to the last non-empty one. Operations are
/// numbered in invocation order, so this stays short while the search moves
/// forward through a long history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LinearizedSnapshot {
    full_words: usize,
    partial_words: Box<[u64]>,
}

impl LinearizedSet {
    fn new(operations: usize) -> Self {
        Self {
            words: vec![0; operations.div_ceil(64)],
            full_words: 0,
            used_words: 0,
        }
    }

    fn insert(&mut self, op: usize) {
        self.words[op / 64] |= 1 << (op % 64);
        self.used_words = self.used_words.max(op / 64 + 1);
    }

    fn contains(&self, op: usize) -> bool {
        self.words[op / 64] & (1 << (op % 64)) != 0
    }

    fn remove(&mut self, op: usize) {
        self.words[op / 64] &= !(1 << (op % 64));
        self.full_words = self.full_words.min(op / 64);
    }

    fn snapshot(&mut self) -> LinearizedSnapshot {
        while self.words.get(self.full_words) == Some(&u64::MAX) {
            self.full_words += 1;
        }
        while self.used_words > 0 && self.words[self.used_words - 1] == 0 {
            self.used_words -= 1;
        }
        let partial = self.full_words..self.used_words.max(self.full_words);
        LinearizedSnapshot {
            full_words: self.full_words,
            partial_words: self.words[partial].into(),
        }
    }
}

/// The end of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Linearizable,
    NotLinearizable,
    OutOfSteps,
}

/// A verdict and the steps it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SearchResult {
    verdict: Verdict,
    steps: u64,
}

/// Searches for a linearization of `ops` in at most `max_steps` steps.
fn search(ops: &[RegisterOp], max_steps: u64) -> SearchResult {
    let mut search = Search::new(ops, max_steps);
    let verdict = search.run();
    SearchResult {
        verdict,
        steps: max_steps - search.steps_left,
    }
}

/// For each optional put, the gets that read its value, ordered by their call's place in `timeline`.
fn readers_of_optional_puts(ops: &[RegisterOp], timeline: &Timeline) -> Vec<Vec<usize>> {
    let mut readers_of_value: HashMap<Value, Vec<usize>> = HashMap::new();
    for (index, op) in ops.iter().enumerate() {
        if let Effect::Read(Some(value)) = op.effect {
            readers_of_value.entry(value).or_default().push(index);
        }
    }
    for readers in readers_of_value.values_mut() {
        readers.sort_by_key(|&reader| timeline.call_node[reader]);
    }
    ops.iter()
        .map(|op| match (op.deadline, op.effect) {
            (Deadline::Optional, Effect::Write(value)) => readers_of_value.get(&value).cloned().unwrap_or_default(),
            _ => Vec::new(),
        })
        .collect()
}

/// A choice the search made and can undo.
#[derive(Debug, Clone, Copy)]
struct Placed {
    op: usize,
    register_before: RegisterState,
}

/// One key's Wing & Gong search in progress.
struct Search<'a> {
    ops: &'a [RegisterOp],
    timeline: Timeline,
    linearized: LinearizedSet,
    /// States already reached, each explored or being explored.
    reached: HashSet<(LinearizedSnapshot, RegisterState)>,
    placed: Vec<Placed>,
    register: RegisterState,
    /// For each optional put, the gets that read its value, in time order
    /// (empty for every other operation).
    readers: Vec<Vec<usize>>,
    /// The first return event left in the timeline, once looked up.
    first_return: Option<usize>,
    /// Operations that must still be linearized (all but optional ones).
    required_left: usize,
    steps_left: u64,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [RegisterOp], max_steps: u64) -> Self {
        let timeline = Timeline::new(ops);
        Self {
            ops,
            readers: readers_of_optional_puts(ops, &timeline),
            timeline,
            linearized: LinearizedSet::new(ops.len()),
            reached: HashSet::new(),
            placed: Vec::new(),
            register: None,
            first_return: None,
            required_left: ops.iter().filter(|op| op.deadline != Deadline::Optional).count(),
            steps_left: max_steps,
        }
    }

    fn run(&mut self) -> Verdict {
        let mut node = self.timeline.first();
        loop {
            if self.required_left == 0 {
                return Verdict::Linearizable;
            }
            if self.steps_left == 0 {
                return Verdict::OutOfSteps;
            }
            self.steps_left -= 1;
            node = match self.timeline.event(node) {
                Some(Event::Call(op)) => match self.try_place(op) {
                    true => self.timeline.first(),
                    false => self.timeline.after(node),
                },
                Some(Event::Head) => self.timeline.after(node),
                // A pending operation's return: it should have been placed by now.
                Some(Event::Return(_)) | None => match self.undo_latest() {
                    Some(op) => self.timeline.after_call(op),
                    None => return Verdict::NotLinearizable,
                },
            };
        }
    }

    /// Linearizes `op` next, if the register allows it and the resulting
    /// state was never reached before. An optional put is only placed while a
    /// get that reads its value could be placed right after it: if it takes
    /// effect at all, it may as well take effect just before its first reader.
    fn try_place(&mut self, op: usize) -> bool {
        if self.ops[op].deadline == Deadline::Optional && !self.has_placeable_reader(op) {
            return false;
        }
        let Some(register_after) = self.ops[op].effect.apply(self.register) else {
            return false;
        };
        self.linearized.insert(op);
        if !self.reached.insert((self.linearized.snapshot(), register_after)) {
            self.linearized.remove(op);
            return false;
        }
        self.placed.push(Placed {
            op,
            register_before: self.register,
        });
        self.register = register_after;
        self.timeline.lift(op);
        self.first_return = None;
        if self.ops[op].deadline != Deadline::Optional {
            self.required_left -= 1;
        }
        true
    }

    /// Whether a get reading optional put `op`'s value is pending and could be
    /// placed now: its call comes before every return left in the timeline.
    fn has_placeable_reader(&mut self, op: usize) -> bool {
        let first_return = *self.first_return.get_or_insert_with(|| self.timeline.first_return());
        self.readers[op]
            .iter()
            .take_while(|&&reader| self.timeline.call_node[reader] < first_return)
            .any(|&reader| !self.linearized.contains(reader))
    }

    /// Takes back the latest placement and returns its operation, if any.
    fn undo_latest(&mut self) -> Option<usize> {
        let Placed { op, register_before } = self.placed.pop()?;
        self.timeline.unlift(op);
        self.first_return = None;
        self.linearized.remove(op);
        self.register = register_before;
        if self.ops[op].deadline != Deadline::Optional {
            self.required_left += 1;
        }
        Some(op)
    }
}

/// Cuts a failing key's operations down to a small sub-history that still
/// fails, dropping only sets of operations that keep it read-closed (every
/// put whose value a kept get reads stays).
struct Shrinker<'a> {
    operations: &'a [Operation],
    steps_left: u64,
}

/// A set of operations (indices) dropped or kept together.
type Unit = Vec<usize>;

impl<'a> Shrinker<'a> {
    fn new(operations: &'a [Operation], max_steps: u64) -> Self {
        Self {
            operations,
            steps_left: max_steps,
        }
    }

    /// Indices of a failing sub-history, in invocation order.
    fn shrink(mut self) -> Vec<usize> {
        let everything: Vec<usize> = (0..self.operations.len()).collect();
        let mut kept = self.drop_units(&[], self.value_groups(&everything));
        while !self.exhausted() {
            let before = kept.len();
            let (gets, puts): (Vec<usize>, Vec<usize>) = kept.iter().partition(|&&index| self.is_get(index));
            kept = self.drop_units(&puts, gets.into_iter().map(|index| vec![index]).collect());
            let (unread, read): (Vec<usize>, Vec<usize>) = self.partition_unread_puts(&kept);
            kept = self.drop_units(&read, unread.into_iter().map(|index| vec![index]).collect());
            if kept.len() == before {
                break;
            }
        }
        kept
    }

    fn is_get(&self, index: usize) -> bool {
        self.operations[index].call == Call::Get
    }

    /// Units of every put of a value together with every get reading it; a
    /// get that read "not found" is a unit of its own.
    fn value_groups(&self, indices: &[usize]) -> Vec<Unit> {
        let mut by_value: BTreeMap<Value, Unit> = BTreeMap::new();
        let mut units = Vec::new();
        for &index in indices {
            match self.operations[index] {
                Operation {
                    call: Call::Put(value), ..
                }
                | Operation {
                    outcome: Outcome::Read(Some(value)),
                    ..
                } => {
                    by_value.entry(value).or_default().push(index);
                }
                _ => units.push(vec![index]),
            }
        }
        units.extend(by_value.into_values());
        // Units in time order, so that a chunk is a stretch of the history.
        units.sort_by_key(|unit| unit.first().copied());
        units
    }

    /// Splits `kept` into the puts whose value no kept get reads, and the rest.
    fn partition_unread_puts(&self, kept: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let read: BTreeSet<Value> = kept
            .iter()
            .filter_map(|&index| match self.operations[index].outcome {
                Outcome::Read(Some(value)) => Some(value),
                _ => None,
            })
            .collect();
        kept.iter().partition(|&&index| match self.operations[index].call {
            Call::Put(value) => !read.contains(&value),
            Call::Get => false,
        })
    }

    /// Drops chunks of `units` (halving the chunk size down to single units)
    /// as long as `fixed` and the units left still fail; returns what is kept.
    fn drop_units(&mut self, fixed: &[usize], mut units: Vec<Unit>) -> Vec<usize> {
        let mut chunk = units.len().div_ceil(2).max(1);
        loop {
            let mut start = 0;
            while start < units.len() && !self.exhausted() {
                let end = (start + chunk).min(units.len());
                let remaining: Vec<Unit> = units[..start].iter().chain(&units[end..]).cloned().collect();
                if self.still_fails(&merge(fixed, &remaining)) {
                    units = remaining;
                } else {
                    start = end;
                }
            }
            if chunk == 1 || self.exhausted() {
                return merge(fixed, &units);
            }
            chunk = chunk.div_ceil(2);
        }
    }

    fn still_fails(&mut self, indices: &[usize]) -> bool {
        let ops: Vec<RegisterOp> = indices
            .iter()
            .map(|&index| RegisterOp::from(&self.operations[index]))
            .collect();
        let result = search(&ops, self.steps_left.min(SHRINK_STEPS_PER_ATTEMPT));
        self.steps_left = self.steps_left.saturating_sub(result.steps);
        result.verdict == Verdict::NotLinearizable
    }

    fn exhausted(&self) -> bool {
        self.steps_left == 0
    }
}

/// `fixed` and all of `units`, sorted.
fn merge(fixed: &[usize], units: &[Unit]) -> Vec<usize> {
    let mut indices: Vec<usize> = fixed.iter().chain(units.iter().flatten()).copied().collect();
    indices.sort_unstable();
    indices
}

#[cfg(test)]
mod tests {
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

    /// Run with `cargo test -p kvs-bench --release -- --ignored --nocapture` for a timing at full scale.
    #[test]
    #[ignore = "a timing at full scale, meant for release builds"]
    fn checks_a_hundred_thousand_operations() {
        for (keys, unknown_percent, distinct_values) in [
            (10, 5, true),
            (50, 5, true),
            (1, 5, true),
            (1, 30, true),
            (1, 5, false),
            (10, 30, false),
            (4, 50, true),
        ] {
            let simulation = Simulation {
                operations: 100_000,
                clients: 16,
                keys: 0..keys,
                unknown_percent,
                distinct_values,
                ..Simulation::new(2)
            };
            let history = History::from(simulate(&simulation));
            let started = Instant::now();
            let report = check(&history);
            println!(
                "checked {} operations on {keys} keys ({unknown_percent}% unknown, distinct {distinct_values}) in {:?}: {:?}",
                history.len(),
                started.elapsed(),
                report.as_ref().err()
            );
        }
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
