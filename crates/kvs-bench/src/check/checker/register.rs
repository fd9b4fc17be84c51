//! The register one key is: what a put does to it and what a get demands
//! of it, as the search sees each operation.

use std::collections::HashSet;

use crate::check::history::{Call, Operation, Outcome, Value};

use super::read_values;

/// What the register holds, as far as gets can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Register {
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
pub(super) enum Effect {
    Write(Register),
    Read(Register),
}

impl Effect {
    /// The register after this operation, or `None` if it cannot happen now.
    pub(super) fn apply(self, register: Register) -> Option<Register> {
        match self {
            Self::Write(after) => Some(after),
            Self::Read(seen) => (seen == register).then_some(register),
        }
    }
}

/// By when an operation must have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deadline {
    /// Before it completed, at this time.
    At(u64),
    /// At some point: it has an outcome but no recorded completion time.
    Eventually,
    /// Never: it may take effect at any time after its invocation, or not at all.
    Optional,
}

/// An operation reduced to what the search needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RegisterOp {
    pub(super) effect: Effect,
    pub(super) invoked_ns: u64,
    pub(super) deadline: Deadline,
}

impl RegisterOp {
    /// `operation` as the search sees it, given the values the key's gets read.
    pub(super) fn new(operation: &Operation, read_values: &HashSet<Value>) -> Self {
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

    pub(super) fn is_read(&self) -> bool {
        matches!(self.effect, Effect::Read(_))
    }
}

/// The operations of one key as the search sees them.
pub(super) fn register_ops(operations: &[&Operation]) -> Vec<RegisterOp> {
    let read = read_values(operations.iter().copied());
    operations
        .iter()
        .map(|operation| RegisterOp::new(operation, &read))
        .collect()
}
