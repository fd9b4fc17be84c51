//! Fencing: which frontend a server follows, and for how long it promises to.
//!
//! Every replication call (`applyBatch`, `heartbeat`, `resetStore`,
//! `dumpState`) carries the caller's [`Fence`]: the id of its cluster (drawn
//! at random when a data folder is first used, or per process without one)
//! and its epoch (bumped at every start from that folder). A server follows
//! one frontend at a time and refuses calls
//!
//! - from another cluster ([`crate::fault::OTHER_CLUSTER`]) unless an
//!   operator forces it (the frontend's `adoptServer`);
//! - from an older epoch of its cluster ([`crate::fault::SUPERSEDED`]): that
//!   frontend has been replaced, and stops serving when it hears so;
//! - from a newer epoch while the current one's lease runs
//!   ([`crate::fault::LEASE_HELD`]; the newcomer retries).
//!
//! The lease is what makes reads safe without a round trip: a frontend
//! answers reads only while every active server has accepted one of its
//! calls sent less than [`READ_LEASE`] ago, and a server that accepted a call
//! accepts no newer epoch for [`LEASE_HOLD`] (longer) after it. So by the
//! time a successor can commit a write, its predecessor has stopped
//! answering reads.
//!
//! Unless the successor knows its predecessor has ended: a frontend that
//! holds the data folder its predecessor held, on the same running kernel
//! (see `kvs_frontend::durable`), knows that process is gone — a folder's
//! lock is released only when its holder ends — and says so in its fence
//! ([`Fence::ended`]). A server still following exactly that epoch then
//! lets the successor take over at once: a process that has ended answers
//! no read. Any older epoch is still waited out.
//!
//! Versions are `epoch << EPOCH_SHIFT | sequence number`, so a batch whose
//! versions or stable point belong to a later epoch than its sender's could
//! not have come from that sender, and is refused.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// Versions are `epoch << EPOCH_SHIFT | sequence number`.
pub const EPOCH_SHIFT: u32 = 40;
/// How long after sending a call a frontend relies on its acceptance to
/// answer reads (see the module doc).
pub const READ_LEASE: Duration = Duration::from_millis(2000);
/// How long after accepting a call a server refuses a newer epoch; longer
/// than [`READ_LEASE`], so clock rates may differ a little.
pub const LEASE_HOLD: Duration = Duration::from_millis(3000);

/// A frontend's identity on the wire: its cluster and its epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The cluster, drawn at random when a frontend first starts (0: a tool's call).
    pub cluster: u64,
    /// Raised at every start of a frontend with a data folder.
    pub epoch: u64,
    /// The epoch before this one, when this frontend knows that frontend's
    /// process has ended (see the module doc); below `epoch`.
    pub ended: Option<u64>,
}

/// A fence that does not parse.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{0:?} is not a fence (CLUSTER:EPOCH or CLUSTER:EPOCH:ENDED, the cluster in hex, ENDED below EPOCH)")]
pub struct FenceError(pub String);

impl Fence {
    /// Epoch `epoch` of cluster `cluster`, saying nothing of its predecessor.
    pub const fn new(cluster: u64, epoch: u64) -> Self {
        Fence {
            cluster,
            epoch,
            ended: None,
        }
    }

    /// The fence's identity: the same without what it says of its predecessor.
    pub fn identity(&self) -> Self {
        Fence::new(self.cluster, self.epoch)
    }

    /// The epoch of a version.
    pub fn epoch_of(version: u64) -> u64 {
        version >> EPOCH_SHIFT
    }

    /// The first version of this epoch (no write has it: sequence numbers start at 1).
    pub fn base_version(&self) -> u64 {
        self.epoch << EPOCH_SHIFT
    }

    /// Whether this frontend could have produced `version` (its own epoch
    /// or an earlier one).
    pub fn could_produce(&self, version: u64) -> bool {
        Self::epoch_of(version) <= self.epoch
    }

    /// The wire form, `CLUSTER:EPOCH` with the cluster in hex, then
    /// `:ENDED` if the predecessor is known to have ended.
    pub fn to_wire(&self) -> String {
        self.to_string()
    }

    /// Reads the wire form.
    pub fn parse(text: &str) -> Result<Self, FenceError> {
        let error = || FenceError(text.chars().take(64).collect());
        let mut parts = text.split(':');
        let (Some(cluster), Some(epoch), ended, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(error());
        };
        let fence = Fence {
            cluster: u64::from_str_radix(cluster, 16).map_err(|_| error())?,
            epoch: epoch.parse().map_err(|_| error())?,
            ended: ended.map(str::parse).transpose().map_err(|_| error())?,
        };
        if fence.ended.is_some_and(|ended| ended >= fence.epoch) {
            return Err(error());
        }
        Ok(fence)
    }
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.cluster, self.epoch)?;
        match self.ended {
            Some(ended) => write!(f, ":{ended}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_bad_input() {
        let fence = Fence::new(0xdead_beef, 7);
        assert_eq!(fence.to_wire(), "00000000deadbeef:7");
        assert_eq!(Fence::parse(&fence.to_wire()), Ok(fence));
        let successor = Fence {
            ended: Some(6),
            ..fence
        };
        assert_eq!(successor.to_wire(), "00000000deadbeef:7:6");
        assert_eq!(Fence::parse(&successor.to_wire()), Ok(successor));
        assert_eq!(successor.identity(), fence);
        for bad in [
            "", "7", "xyz:1", "ab:", ":1", "ab:-1", "ab:1:2", "ab:2:2", "ab:2:", "ab:3:1:0", "ab:2:x",
        ] {
            assert!(Fence::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_of_later_epochs_could_not_be_produced() {
        let fence = Fence::new(1, 3);
        assert!(fence.could_produce(fence.base_version() + 5));
        assert!(fence.could_produce((2 << EPOCH_SHIFT) + 9));
        assert!(fence.could_produce(0));
        assert!(!fence.could_produce(4 << EPOCH_SHIFT));
        assert!(!fence.could_produce(u64::MAX));
        assert!(READ_LEASE < LEASE_HOLD);
    }
}
