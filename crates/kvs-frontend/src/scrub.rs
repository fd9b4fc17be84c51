//! Scrubbing: finding an active server whose pairs differ from the
//! committed state, and readmitting it so a catch-up rebuilds it.
//!
//! Every `--scrub-interval-ms`, and on demand (`scrub()`), each active
//! server's digests by key range ([`kvs_proto::digest`]) are compared with
//! the committed state's. Writes in flight make some ranges differ for a
//! moment, so a differing range is looked at key by key: the server's pairs
//! in it (with versions) are fetched, then the log's pending writes to those
//! keys, then the committed state — in that order, so a write the server
//! held is either still pending in the first read or committed in the
//! second. For each key, with `c` the committed version:
//!
//! - the server's version `v ≥ c`: it must hold the newest write at or
//!   below `v` — the pending one if it is newer than `c`, else the
//!   committed value. Anything else diverged (an altered value, a key never
//!   written).
//! - `v < c` and a value other than the committed one, or the key is
//!   missing: the commit may have come after the server was read, so it is
//!   a *suspect* (holding the committed value, it agrees: `c` may be only
//!   an upper bound, see [`Committed`]); still the same in the next pass
//!   (same committed version, same member), the server lacks a committed
//!   write and diverged.
//!
//! A diverged server fails (it leaves the active set at once, and the
//! membership record is updated), and the failure detector readmits it
//! with a fresh catch-up, which empties it and sends it the committed state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kvs_proto::digest::range_bounds;
use kvs_proto::{Entry, Key, RpcError, ServerId, Value};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

use crate::committed::Committed;
use crate::replication::ReplicationLog;
use crate::transport::Replica;

/// Pairs fetched per `dumpState` call while looking at a range.
const DUMP_PAGE: i32 = 65_536;

/// What one pass found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScrubReport {
    pub servers: usize,
    pub ranges_differing: usize,
    pub diverged: Vec<ServerId>,
    pub unreachable: Vec<ServerId>,
}

impl fmt::Display for ScrubReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {} servers; {} ranges differed; diverged: {:?}; unreachable: {:?}",
            self.servers, self.ranges_differing, self.diverged, self.unreachable
        )
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ScrubCounts {
    pub passes: Counter,
    pub ranges_differing: Counter,
    pub diverged: Counter,
}

/// The scrubber and what it remembers between passes.
pub struct Scrub {
    log: Arc<ReplicationLog>,
    committed: Arc<Committed>,
    /// (server, incarnation, key) → committed version it lacked last pass.
    suspects: Mutex<HashMap<(ServerId, u64, Key), u64>>,
    /// One pass at a time.
    running: tokio::sync::Mutex<()>,
    pub counts: ScrubCounts,
}

/// How one key compares.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Agrees,
    /// The server may only be behind: look again next pass.
    Suspect(u64),
    Diverged,
}

impl Scrub {
    pub fn new(log: Arc<ReplicationLog>, committed: Arc<Committed>) -> Self {
        Scrub {
            log,
            committed,
            suspects: Mutex::new(HashMap::new()),
            running: tokio::sync::Mutex::new(()),
            counts: ScrubCounts::default(),
        }
    }

    /// Runs a pass every `interval` (never if zero), until the frontend's
    /// tasks stop.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let report = self.pass().await;
            tracing::debug!(%report, "scrub pass");
        }
    }

    /// Compares every active server with the committed state once.
    pub async fn pass(&self) -> ScrubReport {
        let _one_at_a_time = self.running.lock().await;
        let mut report = ScrubReport::default();
        if self.log.is_superseded() {
            return report;
        }
        let ours = self.committed.digests();
        let mut suspects = HashMap::new();
        for (id, incarnation, client) in self.log.active_members() {
            report.servers += 1;
            match self.check(id, incarnation, client.as_ref(), &ours, &mut suspects).await {
                Ok((ranges, diverged)) => {
                    report.ranges_differing += ranges;
                    if let Some(reason) = diverged {
                        self.log.distrust(id);
                        self.log.fail(id, incarnation, &format!("scrub: {reason}"));
                        report.diverged.push(id);
                    }
                }
                Err(error) => {
                    tracing::debug!(server = id, %error, "scrub could not read the server");
                    report.unreachable.push(id);
                }
            }
        }
        *self.suspects.lock() = suspects;
        self.counts.passes.inc();
        self.counts.ranges_differing.inc_by(report.ranges_differing as u64);
        self.counts.diverged.inc_by(report.diverged.len() as u64);
        if !report.diverged.is_empty() {
            tracing::warn!(%report, "scrub found diverged servers; they are readmitted");
        }
        report
    }

    /// How many ranges of server `id` differ, and why it diverged, if it did.
    async fn check(
        &self,
        id: ServerId,
        incarnation: u64,
        client: &dyn Replica,
        ours: &kvs_proto::digest::Digests,
        suspects: &mut HashMap<(ServerId, u64, Key), u64>,
    ) -> Result<(usize, Option<String>), RpcError> {
        let theirs = client.digest().await?;
        let ranges = ours.differing(&theirs);
        for range in &ranges {
            let (first, last) = range_bounds(*range);
            let held: BTreeMap<Key, (Value, u64)> = client
                .dump_range(first, last, DUMP_PAGE)
                .await?
                .into_iter()
                .map(|entry| (entry.key, (entry.value, entry.version)))
                .collect();
            // The log, then the committed state, both read after the server:
            // every write it held was sent before, and one that commits
            // between the two reads is found in the second.
            let upto: HashMap<Key, u64> = held.iter().map(|(key, pair)| (*key, pair.1)).collect();
            let pending = self.log.latest_pending(&upto);
            let committed = self.committed.range(first, last);
            let keys: BTreeSet<Key> = held.keys().chain(committed.keys()).copied().collect();
            for key in keys {
                let server = held.get(&key).copied();
                match judge(server, committed.get(&key).copied(), pending.get(&key)) {
                    Verdict::Agrees => {}
                    Verdict::Suspect(version) => {
                        let seen_before = self.suspects.lock().get(&(id, incarnation, key)) == Some(&version);
                        if seen_before {
                            return Ok((
                                ranges.len(),
                                Some(format!("key {key} lacks committed version {version:#x}")),
                            ));
                        }
                        suspects.insert((id, incarnation, key), version);
                    }
                    Verdict::Diverged => {
                        let value = held.get(&key).map(|pair| pair.0);
                        let expected = committed.get(&key).map(|pair| pair.0);
                        return Ok((
                            ranges.len(),
                            Some(format!("key {key} holds {value:?}, committed {expected:?}")),
                        ));
                    }
                }
            }
        }
        Ok((ranges.len(), None))
    }
}

/// One key: the server's (value, version) against the committed one and
/// the newest write to it pending in the log at or below the server's
/// version (read before the committed state).
fn judge(server: Option<(Value, u64)>, committed: Option<(Value, u64)>, pending: Option<&Entry>) -> Verdict {
    let committed_version = committed.map_or(0, |pair| pair.1);
    let Some((value, version)) = server else {
        return match committed {
            Some((_, version)) => Verdict::Suspect(version),
            None => Verdict::Agrees,
        };
    };
    if version < committed_version {
        // A settled committed pair's version is only an upper bound (see
        // `Committed`): holding its value, the server lacks nothing.
        if committed.is_some_and(|pair| pair.0 == value) {
            return Verdict::Agrees;
        }
        return Verdict::Suspect(committed_version);
    }
    let expected = match pending {
        Some(entry) if entry.version > committed_version => Some(entry.value),
        _ => committed.map(|pair| pair.0),
    };
    if expected == Some(value) {
        Verdict::Agrees
    } else {
        Verdict::Diverged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: Key, value: Value, version: u64) -> Entry {
        Entry { key, value, version }
    }

    #[test]
    fn a_server_ahead_of_the_commit_agrees_with_the_pending_write() {
        let pending = write(1, 20, 20);
        assert_eq!(judge(Some((20, 20)), Some((10, 10)), Some(&pending)), Verdict::Agrees);
        // The write committed between the two reads: the committed state has it.
        assert_eq!(judge(Some((20, 20)), Some((20, 20)), Some(&pending)), Verdict::Agrees);
        assert_eq!(judge(Some((20, 20)), Some((20, 20)), None), Verdict::Agrees);
        // A settled pair reports the stable point, above its own version.
        assert_eq!(judge(Some((10, 50)), Some((10, 10)), None), Verdict::Agrees);
    }

    #[test]
    fn a_server_behind_the_commit_is_only_suspect() {
        assert_eq!(judge(Some((10, 10)), Some((20, 20)), None), Verdict::Suspect(20));
        assert_eq!(judge(None, Some((20, 20)), None), Verdict::Suspect(20));
        assert_eq!(judge(None, None, None), Verdict::Agrees);
    }

    #[test]
    fn an_altered_or_invented_value_diverged() {
        assert_eq!(judge(Some((666, 10)), Some((10, 10)), None), Verdict::Diverged);
        assert_eq!(judge(Some((1, 0)), None, None), Verdict::Diverged);
        let pending = write(1, 20, 20);
        assert_eq!(
            judge(Some((666, 20)), Some((10, 10)), Some(&pending)),
            Verdict::Diverged
        );
    }
}
