//! Reply strings the course harness parses.
//!
//! The harness splits `get`'s reply on `:` and `listServer`'s on `,`, and
//! prints the rest as is, so these formats are part of the contract.

use crate::{Key, ServerId, Value};

/// The reply of `addServer`, and of a `put` once every active server holds it.
pub const SUCCESS: &str = "Success";
/// The start of `heartbeat`'s reply.
pub const ALIVE: &str = "alive";

/// `heartbeat`'s reply: `"alive BOOT"`, where `BOOT` tells this run of the
/// server process apart from any earlier one under the same id, so the
/// frontend notices a server that restarted (empty) between two probes.
pub fn alive(boot: &str) -> String {
    format!("{ALIVE} {boot}")
}

/// The boot id in a `heartbeat` reply (`None` from a server that sends none).
pub fn boot_of(reply: &str) -> Option<&str> {
    reply
        .strip_prefix(ALIVE)?
        .strip_prefix(' ')
        .filter(|boot| !boot.is_empty())
}

/// A server's reply to its own (local) `put`, as the course's server gives it:
/// `"[Server ID] put KEY:VALUE"`.
pub fn server_put(id: ServerId, key: Key, value: Value) -> String {
    format!("[Server {id}] put {key}:{value}")
}

/// A server's reply to `shutdownServer`, as the course's server gives it:
/// `"[Server ID] shutting down"`.
pub fn server_shutting_down(id: ServerId) -> String {
    format!("[Server {id}] shutting down")
}

/// `get`'s reply: `"KEY:VALUE"`, no spaces.
pub fn pair(key: Key, value: Value) -> String {
    format!("{key}:{value}")
}

/// Parses a `"KEY:VALUE"` reply.
pub fn parse_pair(reply: &str) -> Option<(Key, Value)> {
    let (key, value) = reply.split_once(':')?;
    Some((key.trim().parse().ok()?, value.trim().parse().ok()?))
}

/// `listServer`'s reply: ids joined by `", "`, e.g. `"0, 1, 2"`.
pub fn member_list(ids: impl IntoIterator<Item = ServerId>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    ids.join(", ")
}

/// `clusterStatus`'s reply: `"active: 0, 1; joining: 2; lost: 3"`.
pub fn cluster_status(active: &[ServerId], joining: &[ServerId], lost: &[ServerId]) -> String {
    format!(
        "active: {}; joining: {}; lost: {}",
        member_list(active.iter().copied()),
        member_list(joining.iter().copied()),
        member_list(lost.iter().copied())
    )
}

/// Parses a `clusterStatus` reply into (active, joining, lost).
pub fn parse_cluster_status(reply: &str) -> Option<[Vec<ServerId>; 3]> {
    let mut parts = reply.split("; ");
    let mut ids = |label: &str| -> Option<Vec<ServerId>> {
        let list = parts.next()?.strip_prefix(label)?.strip_prefix(": ")?;
        list.split(", ")
            .filter(|id| !id.is_empty())
            .map(|id| id.parse().ok())
            .collect()
    };
    Some([ids("active")?, ids("joining")?, ids("lost")?])
}

/// `printKVPairs`'s reply: one `key:value` line per pair, in the given order.
pub fn pair_lines(pairs: impl IntoIterator<Item = (Key, Value)>) -> String {
    let lines: Vec<String> = pairs.into_iter().map(|(k, v)| pair(k, v)).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_is_split_by_the_harness() {
        assert_eq!(pair(12, -3), "12:-3");
        assert_eq!(parse_pair("12:-3"), Some((12, -3)));
        assert_eq!(parse_pair("12"), None);
    }

    #[test]
    fn member_list_matches_the_course() {
        assert_eq!(member_list([0, 1, 2]), "0, 1, 2");
        assert_eq!(member_list([]), "");
    }

    #[test]
    fn cluster_status_round_trips() {
        let status = cluster_status(&[0, 1], &[], &[3]);
        assert_eq!(status, "active: 0, 1; joining: ; lost: 3");
        assert_eq!(parse_cluster_status(&status), Some([vec![0, 1], vec![], vec![3]]));
        assert_eq!(parse_cluster_status("nonsense"), None);
    }

    #[test]
    fn heartbeat_carries_the_boot_id() {
        assert_eq!(boot_of(&alive("00ff")), Some("00ff"));
        assert_eq!(boot_of("alive"), None);
        assert_eq!(boot_of("alive "), None);
        assert_eq!(boot_of("dead 00ff"), None);
    }

    #[test]
    fn pair_lines_one_per_line() {
        assert_eq!(pair_lines([(1, 2), (3, 4)]), "1:2\n3:4");
    }
}
