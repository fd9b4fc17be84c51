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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use thiserror::Error;

use crate::history::{Call, History, Key, Operation, Outcome, Value};

/// How many search steps any key may take before it is declared too complex...
pub const SEARCH_STEPS_PER_KEY: u64 = 5_000_000;

/// ...plus this many per operation on the key. A valid history takes a few
/// dozen steps per operation even with 16 clients on one key.
pub const SEARCH_STEPS_PER_OPERATION: u64 = 100;

/// How many search steps shrinking one violation may take in all.
pub const SHRINK_STEPS_PER_VIOLATION: u64 = 50_000_000;

/// How many search steps one shrinking attempt may take at least, and per
/// operation it keeps. An attempt that runs out is treated as not failing,
/// so the operations it tried to drop stay.
const SHRINK_STEPS_PER_ATTEMPT: u64 = 1_000_000;
const SHRINK_STEPS_PER_ATTEMPT_PER_OPERATION: u64 = 4_000;

/// How many consecutive operations the windows slid along a failed key's
/// history span, tried smallest first.
const WINDOW_WIDTHS: [usize; 4] = [256, 1_024, 4_096, 16_384];

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
        Verdict::Linearizable => Ok(()),
        verdict => Err(explain_failure(first.key, &relevant, verdict, operations.len())),
    }
}

/// The error for a key whose search found no linearization of its `relevant`
/// operations (out of `operations` in all): a small violation if one is found.
fn explain_failure(key: Key, relevant: &[Operation], verdict: Verdict, operations: usize) -> CheckError {
    let mut shrinker = Shrinker::new(relevant);
    let failing = match (shrinker.failing_window(), verdict) {
        (Some(window), _) => window,
        (None, Verdict::NotLinearizable) => (0..relevant.len()).collect(),
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

/// What the register holds, as far as gets can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Register {
    /// Never written: a get answers "not found".
    Empty,
    /// A value that some get of the key reads.
    Holds(Value),
    /// A value that no get of the key reads. Which one makes no difference to
    /// what can happen next, so the search treats them all as one state.
    HoldsUnread,
}

/// What an operation does to, or demands of, the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Write(Register),
    Read(Register),
}

impl Effect {
    /// The register after this operation, or `None` if it cannot happen now.
    fn apply(self, register: Register) -> Option<Register> {
        match self {
            Self::Write(after) => Some(after),
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

impl RegisterOp {
    /// `operation` as the search sees it, given the values the key's gets read.
    fn new(operation: &Operation, read_values: &HashSet<Value>) -> Self {
        let effect = match (operation.call, operation.outcome) {
            (Call::Put(value), _) if read_values.contains(&value) => Effect::Write(Register::Holds(value)),
            (Call::Put(_), _) => Effect::Write(Register::HoldsUnread),
            (Call::Get, Outcome::Read(Some(value))) => Effect::Read(Register::Holds(value)),
            (Call::Get, _) => Effect::Read(Register::Empty),
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

    fn is_read(&self) -> bool {
        matches!(self.effect, Effect::Read(_))
    }
}

/// The operations of one key as the search sees them.
fn register_ops(operations: &[&Operation]) -> Vec<RegisterOp> {
    let read = read_values(operations.iter().copied());
    operations
        .iter()
        .map(|operation| RegisterOp::new(operation, &read))
        .collect()
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
            prev: (0..count).map(|node| node.checked_sub(1).unwrap_or(END)).collect(),
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

    /// The operations whose calls come before every return left: those that
    /// could be placed now, in time order.
    fn callable(&self) -> impl Iterator<Item = usize> + '_ {
        let mut node = self.first();
        std::iter::from_fn(move || match self.event(node) {
            Some(Event::Call(op)) => {
                node = self.after(node);
                Some(op)
            }
            _ => None,
        })
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

/// A verdict and what it took.
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

/// How many operations of each kind are not placed yet, to see when a write
/// would make a get impossible.
struct UnplacedCounts {
    /// Gets of each register state (`Empty`, or one value).
    reads: HashMap<Register, usize>,
    /// Puts of each value.
    writes: HashMap<Register, usize>,
}

impl UnplacedCounts {
    fn new(ops: &[RegisterOp]) -> Self {
        let mut counts = Self {
            reads: HashMap::new(),
            writes: HashMap::new(),
        };
        for op in ops {
            counts.unplace(op.effect);
        }
        counts
    }

    fn place(&mut self, effect: Effect) {
        let (counts, register) = self.counts_for(effect);
        if let Some(count) = counts.get_mut(&register) {
            *count = count.saturating_sub(1);
        }
    }

    fn unplace(&mut self, effect: Effect) {
        let (counts, register) = self.counts_for(effect);
        *counts.entry(register).or_default() += 1;
    }

    /// The counts `effect` belongs to, and its entry there.
    fn counts_for(&mut self, effect: Effect) -> (&mut HashMap<Register, usize>, Register) {
        match effect {
            Effect::Read(seen) => (&mut self.reads, seen),
            Effect::Write(written) => (&mut self.writes, written),
        }
    }

    /// Whether overwriting `register` now would leave a get that reads it
    /// unplaceable for good: no put that could write it again is left.
    fn strands_a_read(&self, register: Register) -> bool {
        let count = |counts: &HashMap<Register, usize>| counts.get(&register).copied().unwrap_or(0);
        count(&self.reads) > 0 && count(&self.writes) == 0
    }
}

/// A choice the search made and can undo.
#[derive(Debug, Clone, Copy)]
struct Placed {
    op: usize,
    register_before: Register,
    /// Whether this was the only move tried from the state before it (see [`Search::placeable_read`]).
    forced: bool,
}

/// Where the search goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Look at the timeline from the front, after a new placement.
    FromFront,
    /// Look at this node of the timeline.
    Node(usize),
}

/// One key's Wing & Gong search in progress.
struct Search<'a> {
    ops: &'a [RegisterOp],
    timeline: Timeline,
    linearized: LinearizedSet,
    /// States already reached, each explored or being explored.
    reached: HashSet<(LinearizedSnapshot, Register)>,
    placed: Vec<Placed>,
    register: Register,
    /// What the gets that could be placed now read, once looked up.
    callable_reads: Option<HashSet<Register>>,
    /// How many gets of each register state, and puts of each value, are not placed yet.
    unplaced: UnplacedCounts,
    /// Operations that must still be linearized (all but optional ones).
    required_left: usize,
    steps_left: u64,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [RegisterOp], max_steps: u64) -> Self {
        let timeline = Timeline::new(ops);
        Self {
            ops,
            timeline,
            linearized: LinearizedSet::new(ops.len()),
            reached: HashSet::new(),
            placed: Vec::new(),
            register: Register::Empty,
            callable_reads: None,
            unplaced: UnplacedCounts::new(ops),
            required_left: ops.iter().filter(|op| op.deadline != Deadline::Optional).count(),
            steps_left: max_steps,
        }
    }

    fn run(&mut self) -> Verdict {
        let mut next = Next::FromFront;
        loop {
            if self.required_left == 0 {
                return Verdict::Linearizable;
            }
            if self.steps_left == 0 {
                return Verdict::OutOfSteps;
            }
            self.steps_left -= 1;
            let after = match next {
                Next::FromFront => self.start_from_front(),
                Next::Node(node) => self.visit(node),
            };
            match after {
                Some(after) => next = after,
                None => return Verdict::NotLinearizable,
            }
        }
    }

    /// Places a read that is safe to place now, if there is one; otherwise
    /// starts walking the timeline from the front.
    fn start_from_front(&mut self) -> Option<Next> {
        match self.placeable_read() {
            Some(read) if self.try_place(read, true) => Some(Next::FromFront),
            Some(_) => self.backtrack(),
            None => Some(Next::Node(self.timeline.first())),
        }
    }

    /// Tries to place the operation called at `node`; `None` once every choice failed.
    fn visit(&mut self, node: usize) -> Option<Next> {
        match self.timeline.event(node) {
            Some(Event::Call(op)) if self.try_place(op, false) => Some(Next::FromFront),
            Some(Event::Call(_) | Event::Head) => Some(Next::Node(self.timeline.after(node))),
            // A pending operation's return: it should have been placed by now.
            Some(Event::Return(_)) | None => self.backtrack(),
        }
    }

    /// A pending get that could be placed now and reads what the register
    /// holds. Placing it now is as good as any other move: whatever
    /// linearization places it later can place it here instead, as reads do
    /// not change the register and nothing that must precede it is pending.
    fn placeable_read(&mut self) -> Option<usize> {
        let register = self.register;
        let mut scanned = 0;
        let read = self.timeline.callable().find(|&op| {
            scanned += 1;
            self.ops[op].effect == Effect::Read(register)
        });
        self.steps_left = self.steps_left.saturating_sub(scanned);
        read
    }

    /// Linearizes `op` next, if the register allows it and the resulting
    /// state was never reached before. An optional put is only placed while a
    /// get that reads its value could be placed right after it: if it takes
    /// effect at all, it may as well take effect just before its first reader.
    fn try_place(&mut self, op: usize, forced: bool) -> bool {
        if self.ops[op].deadline == Deadline::Optional && !self.has_placeable_reader(op) {
            return false;
        }
        if !self.ops[op].is_read() && self.unplaced.strands_a_read(self.register) {
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
            forced,
        });
        self.register = register_after;
        self.timeline.lift(op);
        self.callable_reads = None;
        self.unplaced.place(self.ops[op].effect);
        if self.ops[op].deadline != Deadline::Optional {
            self.required_left -= 1;
        }
        true
    }

    /// Whether a get that reads what optional put `op` writes could be placed now.
    fn has_placeable_reader(&mut self, op: usize) -> bool {
        let Effect::Write(written) = self.ops[op].effect else {
            return false;
        };
        let (timeline, ops) = (&self.timeline, self.ops);
        self.callable_reads
            .get_or_insert_with(|| {
                timeline
                    .callable()
                    .filter_map(|op| match ops[op].effect {
                        Effect::Read(seen) => Some(seen),
                        Effect::Write(_) => None,
                    })
                    .collect()
            })
            .contains(&written)
    }

    /// Undoes placements up to and including the latest one that was a
    /// choice, and continues with the next call after it; `None` if no choice is left.
    fn backtrack(&mut self) -> Option<Next> {
        loop {
            let Placed {
                op,
                register_before,
                forced,
            } = self.placed.pop()?;
            self.timeline.unlift(op);
            self.callable_reads = None;
            self.unplaced.unplace(self.ops[op].effect);
            self.linearized.remove(op);
            self.register = register_before;
            if self.ops[op].deadline != Deadline::Optional {
                self.required_left += 1;
            }
            if !forced {
                return Some(Next::Node(self.timeline.after_call(op)));
            }
        }
    }
}

/// Cuts a failing key's operations down to a small sub-history that still
/// fails, dropping only sets of operations that keep it read-closed (every
/// put whose value a kept get reads stays).
struct Shrinker<'a> {
    operations: &'a [Operation],
    /// The puts of each value.
    puts_of: HashMap<Value, Vec<usize>>,
    steps_left: u64,
}

/// A set of operations (indices) dropped or kept together.
type Unit = Vec<usize>;

impl<'a> Shrinker<'a> {
    /// A shrinker for `operations`, in invocation order.
    fn new(operations: &'a [Operation]) -> Self {
        let mut puts_of: HashMap<Value, Vec<usize>> = HashMap::new();
        for (index, operation) in operations.iter().enumerate() {
            if let Call::Put(value) = operation.call {
                puts_of.entry(value).or_default().push(index);
            }
        }
        Self {
            operations,
            puts_of,
            steps_left: SHRINK_STEPS_PER_VIOLATION,
        }
    }

    /// A short stretch of consecutive operations that fails on its own (with
    /// the puts its gets read), found by sliding windows along the history.
    fn failing_window(&mut self) -> Option<Vec<usize>> {
        let count = self.operations.len();
        for width in WINDOW_WIDTHS.into_iter().take_while(|&width| width < count) {
            for start in (0..count).step_by(width / 2) {
                if self.exhausted() {
                    return None;
                }
                let window = self.with_puts_read(start..(start + width).min(count));
                if self.still_fails(&window) {
                    return Some(window);
                }
            }
        }
        None
    }

    /// The operations in `range`, and every put elsewhere whose value they
    /// read, so that a failure of theirs is one of the whole history.
    fn with_puts_read(&self, range: Range<usize>) -> Vec<usize> {
        let read = read_values(self.operations[range.clone()].iter());
        let puts_read = read
            .iter()
            .flat_map(|value| self.puts_of.get(value).into_iter().flatten().copied());
        let mut indices: Vec<usize> = range
            .clone()
            .chain(puts_read.filter(|index| !range.contains(index)))
            .collect();
        indices.sort_unstable();
        indices
    }

    /// Indices of a small sub-history of `failing` that still fails, in invocation order.
    fn shrink(&mut self, failing: Vec<usize>) -> Vec<usize> {
        let mut kept = self.drop_units(&[], self.value_groups(&failing));
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
            match value_of(&self.operations[index]) {
                Some(value) => by_value.entry(value).or_default().push(index),
                None => units.push(vec![index]),
            }
        }
        units.extend(by_value.into_values());
        // Units in time order, so that a chunk is a stretch of the history.
        units.sort_by_key(|unit| unit.first().copied());
        units
    }

    /// Splits `kept` into the puts whose value no kept get reads, and the rest.
    fn partition_unread_puts(&self, kept: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let read = read_values(kept.iter().map(|&index| &self.operations[index]));
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
        let operations: Vec<&Operation> = indices.iter().map(|&index| &self.operations[index]).collect();
        let ops = register_ops(&operations);
        let attempt_steps = SHRINK_STEPS_PER_ATTEMPT
            .max(SHRINK_STEPS_PER_ATTEMPT_PER_OPERATION.saturating_mul(u64::try_from(ops.len()).unwrap_or(u64::MAX)));
        let result = search(&ops, self.steps_left.min(attempt_steps));
        self.steps_left = self.steps_left.saturating_sub(result.steps);
        result.verdict == Verdict::NotLinearizable
    }

    fn exhausted(&self) -> bool {
        self.steps_left == 0
    }
}

/// The value an operation writes or reads, if any.
fn value_of(operation: &Operation) -> Option<Value> {
    match (operation.call, operation.outcome) {
        (Call::Put(value), _) | (Call::Get, Outcome::Read(Some(value))) => Some(value),
        _ => None,
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
