//! The Wing & Gong search with Lowe's memoisation over one key's
//! operations: the time-ordered event list, the set of operations
//! linearized so far, and the search itself (see the module above for the
//! method).

use std::collections::{HashMap, HashSet};

use super::register::{Deadline, Effect, Register, RegisterOp};

/// An entry of the time-ordered event list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// The list's fixed first node, before every event.
    Head,
    Call(usize),
    Return(usize),
}

/// Marks the end of the event list.
pub(super) const END: usize = usize::MAX;

/// The calls and returns of operations as a doubly linked list in time order,
/// from which an operation's events can be lifted and put back in LIFO order.
pub(super) struct Timeline {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    call_node: Vec<usize>,
    return_node: Vec<Option<usize>>,
}

impl Timeline {
    pub(super) fn new(ops: &[RegisterOp]) -> Self {
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

    pub(super) fn op_of(event: Event) -> usize {
        match event {
            Event::Head => 0,
            Event::Call(op) | Event::Return(op) => op,
        }
    }

    pub(super) fn index_nodes(&mut self) {
        for (node, event) in self.events.iter().enumerate() {
            match *event {
                Event::Head => {}
                Event::Call(op) => self.call_node[op] = node,
                Event::Return(op) => self.return_node[op] = Some(node),
            }
        }
    }

    pub(super) fn first(&self) -> usize {
        self.next[0]
    }

    /// The operations whose calls come before every return left: those that
    /// could be placed now, in time order.
    pub(super) fn callable(&self) -> impl Iterator<Item = usize> + '_ {
        let mut node = self.first();
        std::iter::from_fn(move || match self.event(node) {
            Some(Event::Call(op)) => {
                node = self.after(node);
                Some(op)
            }
            _ => None,
        })
    }

    pub(super) fn after(&self, node: usize) -> usize {
        self.next[node]
    }

    /// The node after `op`'s call, once `op` is back in the list.
    pub(super) fn after_call(&self, op: usize) -> usize {
        self.next[self.call_node[op]]
    }

    /// The event at `node`, or `None` past the end.
    pub(super) fn event(&self, node: usize) -> Option<Event> {
        self.events.get(node).copied()
    }

    /// Takes `op`'s call and return out of the list.
    pub(super) fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        if let Some(node) = self.return_node[op] {
            self.unlink(node);
        }
    }

    /// Puts back the operation lifted last.
    pub(super) fn unlift(&mut self, op: usize) {
        if let Some(node) = self.return_node[op] {
            self.relink(node);
        }
        self.relink(self.call_node[op]);
    }

    pub(super) fn unlink(&mut self, node: usize) {
        let (before, after) = (self.prev[node], self.next[node]);
        self.next[before] = after;
        if after != END {
            self.prev[after] = before;
        }
    }

    pub(super) fn relink(&mut self, node: usize) {
        let (before, after) = (self.prev[node], self.next[node]);
        self.next[before] = node;
        if after != END {
            self.prev[after] = node;
        }
    }
}

/// The set of operations linearized so far, as a bitset.
pub(super) struct LinearizedSet {
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
pub(super) struct LinearizedSnapshot {
    full_words: usize,
    partial_words: Box<[u64]>,
}

impl LinearizedSet {
    pub(super) fn new(operations: usize) -> Self {
        Self {
            words: vec![0; operations.div_ceil(64)],
            full_words: 0,
            used_words: 0,
        }
    }

    pub(super) fn insert(&mut self, op: usize) {
        self.words[op / 64] |= 1 << (op % 64);
        self.used_words = self.used_words.max(op / 64 + 1);
    }

    pub(super) fn remove(&mut self, op: usize) {
        self.words[op / 64] &= !(1 << (op % 64));
        self.full_words = self.full_words.min(op / 64);
    }

    pub(super) fn snapshot(&mut self) -> LinearizedSnapshot {
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
pub(super) enum SearchEnd {
    Linearizable,
    NotLinearizable,
    OutOfSteps,
}

/// A verdict and what it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SearchResult {
    pub(super) verdict: SearchEnd,
    pub(super) steps: u64,
}

/// Searches for a linearization of `ops` in at most `max_steps` steps.
pub(super) fn search(ops: &[RegisterOp], max_steps: u64) -> SearchResult {
    let mut search = Search::new(ops, max_steps);
    let verdict = search.run();
    SearchResult {
        verdict,
        steps: max_steps - search.steps_left,
    }
}

/// How many operations of each kind are not placed yet, to see when a write
/// would make a get impossible.
pub(super) struct UnplacedCounts {
    /// Gets of each register state (`Empty`, or one value).
    reads: HashMap<Register, usize>,
    /// Puts of each value.
    writes: HashMap<Register, usize>,
}

impl UnplacedCounts {
    pub(super) fn new(ops: &[RegisterOp]) -> Self {
        let mut counts = Self {
            reads: HashMap::new(),
            writes: HashMap::new(),
        };
        for op in ops {
            counts.unplace(op.effect);
        }
        counts
    }

    pub(super) fn place(&mut self, effect: Effect) {
        let (counts, register) = self.counts_for(effect);
        if let Some(count) = counts.get_mut(&register) {
            *count = count.saturating_sub(1);
        }
    }

    pub(super) fn unplace(&mut self, effect: Effect) {
        let (counts, register) = self.counts_for(effect);
        *counts.entry(register).or_default() += 1;
    }

    /// The counts `effect` belongs to, and its entry there.
    pub(super) fn counts_for(&mut self, effect: Effect) -> (&mut HashMap<Register, usize>, Register) {
        match effect {
            Effect::Read(seen) => (&mut self.reads, seen),
            Effect::Write(written) => (&mut self.writes, written),
        }
    }

    /// Whether overwriting `register` now would leave a get that reads it
    /// unplaceable for good: no put that could write it again is left.
    pub(super) fn strands_a_read(&self, register: Register) -> bool {
        let count = |counts: &HashMap<Register, usize>| counts.get(&register).copied().unwrap_or(0);
        count(&self.reads) > 0 && count(&self.writes) == 0
    }
}

/// A choice the search made and can undo.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    op: usize,
    register_before: Register,
    /// Whether this was the only move tried from the state before it (see [`Search::placeable_read`]).
    forced: bool,
}

/// Where the search goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Look at the timeline from the front, after a new placement.
    FromFront,
    /// Look at this node of the timeline.
    Node(usize),
}

/// One key's Wing & Gong search in progress.
pub(super) struct Search<'a> {
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
    pub(super) fn new(ops: &'a [RegisterOp], max_steps: u64) -> Self {
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

    pub(super) fn run(&mut self) -> SearchEnd {
        let mut next = Next::FromFront;
        loop {
            if self.required_left == 0 {
                return SearchEnd::Linearizable;
            }
            if self.steps_left == 0 {
                return SearchEnd::OutOfSteps;
            }
            self.steps_left -= 1;
            let after = match next {
                Next::FromFront => self.start_from_front(),
                Next::Node(node) => self.visit(node),
            };
            match after {
                Some(after) => next = after,
                None => return SearchEnd::NotLinearizable,
            }
        }
    }

    /// Places a read that is safe to place now, if there is one; otherwise
    /// starts walking the timeline from the front.
    pub(super) fn start_from_front(&mut self) -> Option<Next> {
        match self.placeable_read() {
            Some(read) if self.try_place(read, true) => Some(Next::FromFront),
            Some(_) => self.backtrack(),
            None => Some(Next::Node(self.timeline.first())),
        }
    }

    /// Tries to place the operation called at `node`; `None` once every choice failed.
    pub(super) fn visit(&mut self, node: usize) -> Option<Next> {
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
    pub(super) fn placeable_read(&mut self) -> Option<usize> {
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
    pub(super) fn try_place(&mut self, op: usize, forced: bool) -> bool {
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
    pub(super) fn has_placeable_reader(&mut self, op: usize) -> bool {
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
    pub(super) fn backtrack(&mut self) -> Option<Next> {
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
