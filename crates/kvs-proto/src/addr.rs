//! Default ports and how processes find each other.
//!
//! The course harness fixes the ports: the frontend on 8001, server `i` on
//! `9000 + i`, client proxy `i` on `7000 + i`, everything on `localhost`.
//! kvs keeps those defaults and lets every address be overridden, so the same
//! binaries run in containers and behind Kubernetes DNS names.

use crate::ServerId;

/// Port of the frontend.
pub const FRONTEND_PORT: u16 = 8001;
/// Server `i` listens on `SERVER_PORT_BASE + i`.
pub const SERVER_PORT_BASE: u16 = 9000;
/// Client proxy `i` listens on `CLIENT_PORT_BASE + i`.
pub const CLIENT_PORT_BASE: u16 = 7000;
/// Where a client proxy finds the frontend unless told otherwise.
pub const DEFAULT_FRONTEND_URL: &str = "http://localhost:8001";
/// How the frontend addresses server `{id}` unless told otherwise.
pub const DEFAULT_SERVER_URL_TEMPLATE: &str = "http://localhost:{port}";

/// A port derived from a base and an id, if it fits in 16 bits.
pub fn port_for(base: u16, id: i32) -> Option<u16> {
    u16::try_from(i32::from(base).checked_add(id)?).ok()
}

/// Expands an address template: `{id}` becomes the server id and `{port}`
/// the server's port (`port_base + id`).
///
/// ```
/// use kvs_proto::addr::server_url;
/// assert_eq!(server_url("http://localhost:{port}", 9000, 2).as_deref(), Some("http://localhost:9002"));
/// assert_eq!(server_url("http://kvs-server-{id}:9000", 9000, 3).as_deref(), Some("http://kvs-server-3:9000"));
/// ```
pub fn server_url(template: &str, port_base: u16, id: ServerId) -> Option<String> {
    let port = port_for(port_base, id)?;
    Some(
        template
            .replace("{id}", &id.to_string())
            .replace("{port}", &port.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_course_layout() {
        assert_eq!(port_for(SERVER_PORT_BASE, 0), Some(9000));
        assert_eq!(port_for(CLIENT_PORT_BASE, 5), Some(7005));
        assert_eq!(port_for(SERVER_PORT_BASE, -9001), None);
        assert_eq!(port_for(SERVER_PORT_BASE, 60_000), None);
    }

    #[test]
    fn template_without_placeholders_is_kept() {
        assert_eq!(server_url("http://x:1", 9000, 1).as_deref(), Some("http://x:1"));
    }
}
