//! Who replicates: the servers the frontend ships writes to, and how far
//! each has acknowledged.
//!
//! A server is `Joining` from `addServer` until it has the snapshot and has
//! acknowledged every committed write; only then is it `Active` and counted
//! for commits. A server that fails a call, or is shut down, leaves the
//! membership at once. The [`crate::replication`] log keeps this under its
//! lock, so membership changes and commits are ordered with each other.

use std::collections::BTreeMap;
use std::sync::Arc;

use kvs_proto::{ServerClient, ServerId};
use tokio::sync::{Notify, oneshot};

/// Where a member stands.
#[derive(Debug)]
pub enum Phase {
    /// Receiving the snapshot and the writes since; not counted for commits.
    Joining {
        snapshot_done: bool,
        /// Told when the server becomes active.
        promoted: Option<oneshot::Sender<()>>,
    },
    /// Counted for commits: holds every committed write.
    Active,
}

/// One member server.
#[derive(Debug)]
pub struct Member {
    pub client: Arc<ServerClient>,
    /// Tells this member's replicator apart from one of an earlier member
    /// with the same id.
    pub incarnation: u64,
    /// Highest sequence number the server has acknowledged (all below it too).
    pub acked: u64,
    pub phase: Phase,
    /// Wakes the member's replicator when the member is removed.
    pub removed: Arc<Notify>,
}

impl Member {
    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active)
    }
}

/// The member servers, by id.
#[derive(Debug, Default)]
pub struct Membership {
    members: BTreeMap<ServerId, Member>,
    next_incarnation: u64,
}

impl Membership {
    /// A fresh incarnation number for a new member.
    pub fn next_incarnation(&mut self) -> u64 {
        self.next_incarnation += 1;
        self.next_incarnation
    }

    pub fn insert(&mut self, id: ServerId, member: Member) {
        self.members.insert(id, member);
    }

    pub fn contains(&self, id: ServerId) -> bool {
        self.members.contains_key(&id)
    }

    pub fn get(&self, id: ServerId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// The member `id` if it is still the given incarnation.
    pub fn get_mut(&mut self, id: ServerId, incarnation: u64) -> Option<&mut Member> {
        self.members.get_mut(&id).filter(|m| m.incarnation == incarnation)
    }

    /// Removes member `id` (any incarnation, or only `incarnation` if given)
    /// and wakes its replicator so it stops.
    pub fn remove(&mut self, id: ServerId, incarnation: Option<u64>) -> Option<Member> {
        let matches = self
            .members
            .get(&id)
            .is_some_and(|m| incarnation.is_none_or(|inc| m.incarnation == inc));
        let member = if matches { self.members.remove(&id) } else { None }?;
        member.removed.notify_one();
        Some(member)
    }

    /// Removes every joining member (when no active server is left).
    pub fn remove_joining(&mut self) {
        let joining: Vec<ServerId> = self
            .members
            .iter()
            .filter(|(_, m)| !m.is_active())
            .map(|(id, _)| *id)
            .collect();
        for id in joining {
            self.remove(id, None);
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.members.keys().copied()
    }

    pub fn active_count(&self) -> usize {
        self.members.values().filter(|m| m.is_active()).count()
    }

    /// The highest sequence number every active member has acknowledged,
    /// or `None` when no member is active.
    pub fn commit_point(&self) -> Option<u64> {
        self.members.values().filter(|m| m.is_active()).map(|m| m.acked).min()
    }

    /// The lowest acknowledgement of any member: the log must keep every
    /// entry above it.
    pub fn lowest_acked(&self) -> Option<u64> {
        self.members.values().map(|m| m.acked).min()
    }
}
