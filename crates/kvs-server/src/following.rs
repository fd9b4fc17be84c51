//! Which frontend this server follows (see [`kvs_proto::fence`]).
//!
//! A fresh server follows the first frontend that calls it. From then on it
//! accepts calls from that frontend's cluster and epoch; a newer epoch of
//! the same cluster takes over once the current one's lease has run out
//! ([`LEASE_HOLD`] after the last call the server accepted from it), or at
//! once if its fence says the current one has ended ([`Fence::ended`]); an
//! older epoch, or another cluster, is refused — unless the call forces it
//! (an operator's `adoptServer`). Time is read from tokio's clock.

use std::time::Duration;

use kvs_proto::Fence;
use kvs_proto::fence::LEASE_HOLD;
use parking_lot::Mutex;
use thiserror::Error;
use tokio::time::Instant;

/// Why a call's fence was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("this server follows epoch {current} of the cluster; epoch {caller} has been superseded")]
    Superseded { current: u64, caller: u64 },
    #[error(
        "this server follows another cluster's frontend ({current:016x}, not {caller:016x}); \
         adoptServer takes it over, dropping its data"
    )]
    OtherCluster { current: u64, caller: u64 },
    #[error("epoch {current} holds a lease on this server for {remaining:?} more; retry then")]
    LeaseHeld { current: u64, remaining: Duration },
    #[error("call {serial} comes after call {last} of this frontend: a late or repeated delivery, not run")]
    StaleCall { serial: i32, last: i32 },
}

/// The last `resetStore` or `rejoin` a server ran: its frontend's cluster
/// and epoch, and the call's serial. A later one must come after it: a
/// reset delivered late (the frontend gave up waiting for it and began
/// again) or twice would otherwise empty the server again in the middle of
/// — or after — the catch-up that followed it.
#[derive(Debug, Default, Clone, Copy)]
pub struct LastReset(Option<(u64, u64, i32)>);

impl LastReset {
    /// Takes call `serial` of the frontend that sent `fence` as the last
    /// one, or says why it must not run: it is not above the last one of
    /// the same frontend, or it comes from an older epoch. `force` (an
    /// operator's adoption) runs it whatever came before.
    pub fn advance(&mut self, fence: Fence, serial: i32, force: bool) -> Result<(), Refusal> {
        if let Some((cluster, epoch, last)) = self.0
            && !force
            && cluster == fence.cluster
            && (fence.epoch, serial) <= (epoch, last)
        {
            return Err(Refusal::StaleCall { serial, last });
        }
        self.0 = Some((fence.cluster, fence.epoch, serial));
        Ok(())
    }
}

/// The frontend a server follows, and when it last accepted a call from it.
#[derive(Debug, Default)]
pub struct Following {
    leader: Mutex<Option<(Fence, Instant)>>,
}

impl Following {
    /// Accepts a call carrying `fence` (following it if it takes over), or
    /// says why not. `force` follows it whatever came before.
    pub fn admit(&self, fence: Fence, force: bool) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut leader = self.leader.lock();
        if let Some((current, granted)) = *leader
            && !force
        {
            if current.cluster != fence.cluster {
                return Err(Refusal::OtherCluster {
                    current: current.cluster,
                    caller: fence.cluster,
                });
            }
            if fence.epoch < current.epoch {
                return Err(Refusal::Superseded {
                    current: current.epoch,
                    caller: fence.epoch,
                });
            }
            let held_until = granted + LEASE_HOLD;
            let ended = fence.ended == Some(current.epoch);
            if fence.epoch > current.epoch && now < held_until && !ended {
                return Err(Refusal::LeaseHeld {
                    current: current.epoch,
                    remaining: held_until - now,
                });
            }
            if fence.epoch > current.epoch {
                tracing::info!(from = %current, to = %fence, ended, "a newer frontend takes over");
            }
        } else if leader.is_some_and(|(current, _)| current != fence.identity()) {
            tracing::warn!(from = ?leader.map(|(current, _)| current), to = %fence, "forced to follow another frontend");
        }
        *leader = Some((fence.identity(), now));
        Ok(())
    }

    /// The fence followed now, if any.
    #[cfg(test)]
    pub fn leader(&self) -> Option<Fence> {
        self.leader.lock().map(|(fence, _)| fence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Fence = Fence::new(1, 5);

    #[tokio::test(start_paused = true)]
    async fn follows_the_first_caller_then_refuses_older_and_other() {
        let following = Following::default();
        assert_eq!(following.admit(A, false), Ok(()));
        assert_eq!(following.leader(), Some(A));
        let older = Fence { epoch: 4, ..A };
        assert!(matches!(following.admit(older, false), Err(Refusal::Superseded { .. })));
        let other = Fence::new(2, 9);
        assert!(matches!(
            following.admit(other, false),
            Err(Refusal::OtherCluster { .. })
        ));
        assert_eq!(following.leader(), Some(A));
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_epoch_waits_for_the_lease() {
        let following = Following::default();
        following.admit(A, false).expect("first");
        let newer = Fence { epoch: 6, ..A };
        tokio::time::advance(LEASE_HOLD / 2).await;
        following.admit(A, false).expect("renewed");
        tokio::time::advance(LEASE_HOLD - Duration::from_millis(1)).await;
        assert!(matches!(following.admit(newer, false), Err(Refusal::LeaseHeld { .. })));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(following.admit(newer, false), Ok(()));
        assert!(matches!(following.admit(A, false), Err(Refusal::Superseded { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_successor_of_an_ended_epoch_takes_over_at_once_but_not_of_another() {
        let following = Following::default();
        following.admit(A, false).expect("first");
        let after_older = Fence::parse("1:7:6").expect("a fence");
        assert!(
            matches!(following.admit(after_older, false), Err(Refusal::LeaseHeld { .. })),
            "epoch 6 ended says nothing of epoch 5's lease"
        );
        let successor = Fence::parse("1:6:5").expect("a fence");
        assert_eq!(following.admit(successor, false), Ok(()));
        assert_eq!(following.leader(), Some(Fence::new(1, 6)), "followed by its identity");
        assert!(matches!(following.admit(A, false), Err(Refusal::Superseded { .. })));
        // Its own successor, which cannot say epoch 6 ended, waits.
        let next = Fence::new(1, 7);
        assert!(matches!(following.admit(next, false), Err(Refusal::LeaseHeld { .. })));
        assert_eq!(following.admit(successor, false), Ok(()), "epoch 6 goes on");
    }

    #[test]
    fn a_reset_runs_only_after_the_last_one_of_its_frontend() {
        let mut last = LastReset::default();
        assert_eq!(last.advance(A, 3, false), Ok(()));
        assert!(matches!(
            last.advance(A, 3, false),
            Err(Refusal::StaleCall { serial: 3, last: 3 })
        ));
        assert!(matches!(last.advance(A, 2, false), Err(Refusal::StaleCall { .. })));
        assert_eq!(last.advance(A, 4, false), Ok(()));
        let newer = Fence::new(1, 6);
        assert_eq!(last.advance(newer, 1, false), Ok(()), "a newer epoch starts over");
        assert!(matches!(last.advance(A, 9, false), Err(Refusal::StaleCall { .. })));
        let other = Fence::new(2, 1);
        assert_eq!(last.advance(other, 1, true), Ok(()), "an adoption runs");
        assert!(matches!(last.advance(other, 1, false), Err(Refusal::StaleCall { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn force_takes_over_at_once() {
        let following = Following::default();
        following.admit(A, false).expect("first");
        let other = Fence::new(2, 1);
        assert_eq!(following.admit(other, true), Ok(()));
        assert_eq!(following.leader(), Some(other));
        assert!(matches!(following.admit(A, false), Err(Refusal::OtherCluster { .. })));
    }
}
