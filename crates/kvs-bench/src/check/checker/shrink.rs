//! Cutting a failing key's history down to a small sub-history that still
//! fails, keeping it read-closed.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use crate::check::history::{Call, Operation, Value};

use super::register::register_ops;
use super::search::{SearchEnd, search};
use super::{SHRINK_STEPS_PER_VIOLATION, read_values, value_of};

/// How many search steps one shrinking attempt may take at least, and per
/// operation it keeps. An attempt that runs out is treated as not failing,
/// so the operations it tried to drop stay.
const SHRINK_STEPS_PER_ATTEMPT: u64 = 1_000_000;
const SHRINK_STEPS_PER_ATTEMPT_PER_OPERATION: u64 = 4_000;

/// How many consecutive operations the windows slid along a failed key's
/// history span, tried smallest first.
const WINDOW_WIDTHS: [usize; 4] = [256, 1_024, 4_096, 16_384];

/// Cuts a failing key's operations down to a small sub-history that still
/// fails, dropping only sets of operations that keep it read-closed (every
/// put whose value a kept get reads stays).
pub(super) struct Shrinker<'a> {
    operations: &'a [Operation],
    /// The puts of each value.
    puts_of: HashMap<Value, Vec<usize>>,
    steps_left: u64,
}

/// A set of operations (indices) dropped or kept together.
pub(super) type Unit = Vec<usize>;

impl<'a> Shrinker<'a> {
    /// A shrinker for `operations`, in invocation order.
    pub(super) fn new(operations: &'a [Operation]) -> Self {
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
    pub(super) fn failing_window(&mut self) -> Option<Vec<usize>> {
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
    pub(super) fn with_puts_read(&self, range: Range<usize>) -> Vec<usize> {
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
    pub(super) fn shrink(&mut self, failing: Vec<usize>) -> Vec<usize> {
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

    pub(super) fn is_get(&self, index: usize) -> bool {
        self.operations[index].call == Call::Get
    }

    /// Units of every put of a value together with every get reading it; a
    /// get that read "not found" is a unit of its own.
    pub(super) fn value_groups(&self, indices: &[usize]) -> Vec<Unit> {
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
    pub(super) fn partition_unread_puts(&self, kept: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let read = read_values(kept.iter().map(|&index| &self.operations[index]));
        kept.iter().partition(|&&index| match self.operations[index].call {
            Call::Put(value) => !read.contains(&value),
            Call::Get => false,
        })
    }

    /// Drops chunks of `units` (halving the chunk size down to single units)
    /// as long as `fixed` and the units left still fail; returns what is kept.
    pub(super) fn drop_units(&mut self, fixed: &[usize], mut units: Vec<Unit>) -> Vec<usize> {
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

    pub(super) fn still_fails(&mut self, indices: &[usize]) -> bool {
        let operations: Vec<&Operation> = indices.iter().map(|&index| &self.operations[index]).collect();
        let ops = register_ops(&operations);
        let attempt_steps = SHRINK_STEPS_PER_ATTEMPT
            .max(SHRINK_STEPS_PER_ATTEMPT_PER_OPERATION.saturating_mul(u64::try_from(ops.len()).unwrap_or(u64::MAX)));
        let result = search(&ops, self.steps_left.min(attempt_steps));
        self.steps_left = self.steps_left.saturating_sub(result.steps);
        result.verdict == SearchEnd::NotLinearizable
    }

    pub(super) fn exhausted(&self) -> bool {
        self.steps_left == 0
    }
}

/// `fixed` and all of `units`, sorted.
pub(super) fn merge(fixed: &[usize], units: &[Unit]) -> Vec<usize> {
    let mut indices: Vec<usize> = fixed.iter().chain(units.iter().flatten()).copied().collect();
    indices.sort_unstable();
    indices
}
