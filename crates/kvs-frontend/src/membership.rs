//! Who replicates: the servers the frontend ships writes to, and how far
//! each has acknowledged.
//!
//! A server is `Joining` from `addServer` until it has the snapshot and has
//! acknowledged every committed write; only then is it `Active` and counted
//! for commits. A server that fails a call or a heartbeat leaves the
//! membership at once and is remembered as *lost*: the failure detector keeps
//! probing it and readmits it (by a fresh catch-up) when it answers again. A
//! server that is shut down is forgotten. The [`crate::replication`] log keeps
//! this under its lock, so membership changes and commits are ordered with
//! each other.

use std::collections::BTreeMap;
use std::sync::Arc;

use kvs_proto::ServerId;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::transport::ReplicaHandle;

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
    pub client: ReplicaHandle,
    /// Tells this member's replicator apart from one of an earlier member
    /// with the same id.
    pub incarnation: u64,
    /// The boot id of the server process this member was admitted as (see
    /// `kvs_proto::reply::alive`); `None` until the first heartbeat tells it.
    /// A different one means the process restarted and lost its state.
    pub boot: Option<String>,
    /// Highest sequence number the server has acknowledged (all below it too).
    pub acked: u64,
    /// When the newest call the server accepted was sent: reads may rely on
    /// it until [`kvs_proto::fence::READ_LEASE`] after that.
    pub lease_from: Option<Instant>,
    pub phase: Phase,
    /// Wakes the member's replicator to look again: the member was
    /// removed, or its snapshot is in.
    pub changed: Arc<Notify>,
}

impl Member {
    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active)
    }

    /// Active, or joining with its snapshot fully sent: from here on the
    /// server is sent every write in order.
    pub fn has_snapshot(&self) -> bool {
        matches!(
            self.phase,
            Phase::Active
                | Phase::Joining {
                    snapshot_done: true,
                    ..
                }
        )
    }
}

/// The member servers, by id, and the lost ones.
#[derive(Debug, Default)]
pub struct Membership {
    members: BTreeMap<ServerId, Member>,
    lost: BTreeMap<ServerId, ReplicaHandle>,
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

    /// Whether server `id` is known at all: a member, or lost (probed, and
    /// readmitted when it answers). A removed server is neither.
    pub fn knows(&self, id: ServerId) -> bool {
        self.contains(id) || self.lost.contains_key(&id)
    }

    pub fn get(&self, id: ServerId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// The member `id` if it is still the given incarnation.
    pub fn get_mut(&mut self, id: ServerId, incarnation: u64) -> Option<&mut Member> {
        self.members.get_mut(&id).filter(|m| m.incarnation == incarnation)
    }

    /// Takes member `id` out (only if it is still `incarnation`, when
    /// given), wakes its replicator so it stops, and remembers it as lost.
    pub fn lose(&mut self, id: ServerId, incarnation: Option<u64>) -> bool {
        let matches = self
            .members
            .get(&id)
            .is_some_and(|m| incarnation.is_none_or(|inc| m.incarnation == inc));
        let Some(member) = matches.then(|| self.members.remove(&id)).flatten() else {
            return false;
        };
        member.changed.notify_one();
        self.lost.insert(id, member.client);
        true
    }

    /// Takes every joining member out, as lost (when no active server is left).
    pub fn lose_joining(&mut self) {
        let joining: Vec<ServerId> = self
            .members
            .iter()
            .filter(|(_, m)| !m.is_active())
            .map(|(id, _)| *id)
            .collect();
        for id in joining {
            self.lose(id, None);
        }
    }

    /// Forgets server `id`, member or lost; returns its client.
    pub fn forget(&mut self, id: ServerId) -> Option<ReplicaHandle> {
        if let Some(member) = self.members.remove(&id) {
            member.changed.notify_one();
            return Some(member.client);
        }
        self.lost.remove(&id)
    }

    /// Remembers a server as lost without it having been a member (a
    /// restarted frontend that cannot reach it yet).
    pub fn add_lost(&mut self, id: ServerId, client: ReplicaHandle) {
        if !self.members.contains_key(&id) {
            self.lost.insert(id, client);
        }
    }

    /// Stops remembering `id` as lost (it is joining again).
    pub fn found(&mut self, id: ServerId) {
        self.lost.remove(&id);
    }

    /// The client of server `id`, member or lost.
    pub fn client_of(&self, id: ServerId) -> Option<&ReplicaHandle> {
        self.members.get(&id).map(|m| &m.client).or_else(|| self.lost.get(&id))
    }

    /// The lost servers, for the failure detector to probe.
    pub fn lost(&self) -> impl Iterator<Item = (ServerId, &ReplicaHandle)> + '_ {
        self.lost.iter().map(|(id, client)| (*id, client))
    }

    /// Every member with its incarnation, for the failure detector to probe.
    pub fn members(&self) -> impl Iterator<Item = (ServerId, &Member)> + '_ {
        self.members.iter().map(|(id, member)| (*id, member))
    }

    /// Active, joining and lost ids, for `clusterStatus`.
    pub fn status_ids(&self) -> [Vec<ServerId>; 3] {
        let ids_where = |active: bool| {
            self.members
                .iter()
                .filter(move |(_, m)| m.is_active() == active)
                .map(|(id, _)| *id)
        };
        [
            ids_where(true).collect(),
            ids_where(false).collect(),
            self.lost.keys().copied().collect(),
        ]
    }

    /// Active member ids and lost-or-joining ids, for the durable record.
    pub fn record_ids(&self) -> (Vec<ServerId>, Vec<ServerId>) {
        let [active, mut others, lost] = self.status_ids();
        others.extend(lost);
        others.sort_unstable();
        (active, others)
    }

    /// The boot ids of the active members that have told theirs.
    pub fn active_boots(&self) -> BTreeMap<ServerId, String> {
        self.members
            .iter()
            .filter(|(_, m)| m.is_active())
            .filter_map(|(id, m)| Some((*id, m.boot.clone()?)))
            .collect()
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

    /// The oldest lease among active members (see [`Member::lease_from`]):
    /// `Some(None)` if one has none yet, `None` if no member is active.
    pub fn oldest_active_lease(&self) -> Option<Option<Instant>> {
        self.members
            .values()
            .filter(|m| m.is_active())
            .map(|m| m.lease_from)
            .reduce(|a, b| match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            })
    }

    /// The lowest acknowledgement of any member: the log must keep every
    /// entry above it.
    pub fn lowest_acked(&self) -> Option<u64> {
        self.members.values().map(|m| m.acked).min()
    }
}

#[cfg(test)]
mod tests {
    use kvs_proto::ServerClient;

    use super::*;

    /// A member that is `active` or joining, having acknowledged `acked`.
    /// Its client is never called here.
    fn member(membership: &mut Membership, active: bool, acked: u64) -> Member {
        let client: ReplicaHandle = Arc::new(ServerClient::new("http://127.0.0.1:1", None).expect("a valid URL"));
        Member {
            client,
            incarnation: membership.next_incarnation(),
            boot: Some("boot".to_owned()),
            acked,
            lease_from: None,
            phase: if active {
                Phase::Active
            } else {
                Phase::Joining {
                    snapshot_done: false,
                    promoted: None,
                }
            },
            changed: Arc::new(Notify::new()),
        }
    }

    fn cluster(members: &[(ServerId, bool, u64)]) -> Membership {
        let mut membership = Membership::default();
        for &(id, active, acked) in members {
            let member = member(&mut membership, active, acked);
            membership.insert(id, member);
        }
        membership
    }

    #[test]
    fn commit_is_the_lowest_acknowledgement_of_the_active_members_only() {
        assert_eq!(Membership::default().commit_point(), None);
        let membership = cluster(&[(0, true, 9), (1, true, 7), (2, false, 3)]);
        assert_eq!(
            membership.commit_point(),
            Some(7),
            "the joining member does not hold it back"
        );
        assert_eq!(membership.lowest_acked(), Some(3), "but the log keeps what it lacks");
        assert_eq!(
            cluster(&[(2, false, 3)]).commit_point(),
            None,
            "joining alone commits nothing"
        );
    }

    #[test]
    fn fail_a_member_remembers_it_as_lost_and_an_old_incarnation_cannot() {
        let mut membership = cluster(&[(0, true, 5), (1, true, 5)]);
        let stale = membership.get(1).map(|m| m.incarnation).expect("member 1") + 100;
        assert!(
            !membership.lose(1, Some(stale)),
            "a report about an earlier member changes nothing"
        );
        assert!(membership.lose(1, None));
        assert_eq!(membership.status_ids(), [vec![0], vec![], vec![1]]);
        assert!(!membership.contains(1) && membership.client_of(1).is_some());
        assert_eq!(membership.record_ids(), (vec![0], vec![1]));
        membership.found(1);
        assert_eq!(membership.status_ids(), [vec![0], vec![], vec![]]);
    }

    #[test]
    fn with_no_active_member_left_the_joining_ones_are_lost_too() {
        let mut membership = cluster(&[(0, true, 5), (1, false, 2), (2, false, 4)]);
        assert!(membership.lose(0, None));
        membership.lose_joining();
        assert_eq!(membership.status_ids(), [vec![], vec![], vec![0, 1, 2]]);
        assert_eq!(membership.active_count(), 0);
        assert!(membership.forget(1).is_some(), "a lost server can be forgotten");
        assert_eq!(membership.status_ids(), [vec![], vec![], vec![0, 2]]);
    }

    #[test]
    fn the_record_keeps_the_boots_of_active_members() {
        let membership = cluster(&[(0, true, 1), (3, false, 0)]);
        assert_eq!(
            membership.active_boots(),
            BTreeMap::from([(0, "boot".to_owned())]),
            "a joining member's boot is not recorded as holding the writes"
        );
    }
}
