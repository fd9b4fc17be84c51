//! Bounds on what one client can hold of a process: time, connections and
//! memory. Every bound is an option (and an environment variable) with a
//! default, and hitting one gives a clear answer, never a hang:
//!
//! - a client has `--header-timeout-ms` to send a request's headers, and an
//!   idle keep-alive connection is closed after as long (hyper's header read
//!   timer also runs while a connection waits for its next request);
//! - it has `--body-timeout-ms` to send the whole body: then HTTP 408;
//! - a body whose `Content-Length` is over [`MAX_BODY_BYTES`] is refused with
//!   HTTP 413 before a byte of it is read;
//! - at most `--max-connections` connections are served at once; the next
//!   one gets HTTP 503 and is closed;
//! - large bodies (over [`SMALL_BODY_BYTES`]) being read at once may hold at
//!   most `--max-body-bytes-in-flight` bytes (by `Content-Length`, or the
//!   largest body for a chunked one); a request that would pass it gets
//!   HTTP 503 at once. Small bodies — every ordinary call — never wait on
//!   this budget, so clients sending large bodies cannot starve them.
//!
//! The file limit is raised to the hard limit at start, so the connection
//! cap, not the file limit, is what a flood meets.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use kvs_proto::metrics::metrics;
use kvs_proto::serve::MAX_BODY_BYTES;

/// Bodies up to this size do not draw on the byte budget (an ordinary call
/// is a few hundred bytes; a replication batch of 1024 writes about 22 KiB).
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// The bounds, as command-line options; flattened into each binary's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Time a client has to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, default_value_t = 10_000, value_name = "MS", env = "KVS_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body (else HTTP 408).
    #[arg(long, default_value_t = 10_000, value_name = "MS", env = "KVS_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: u64,
    /// Most connections served at once; one more gets HTTP 503 and is closed.
    #[arg(long, default_value_t = 16_384, env = "KVS_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Most bytes of request bodies read at once; a request that would pass
    /// it gets HTTP 503.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES", env = "KVS_MAX_BODY_BYTES_IN_FLIGHT")]
    pub max_body_bytes_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            max_connections: 16_384,
            max_body_bytes_in_flight: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms.max(1))
    }

    /// A connection cap that fits under the file limit `files` (a few
    /// descriptors stay for the process's own use).
    pub fn connections_within(&self, files: u64) -> usize {
        const RESERVED: u64 = 64;
        let room = usize::try_from(files.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
        self.max_connections.min(room).max(1)
    }

    /// The body guard of a router: see the module doc.
    pub fn body_guard(&self) -> BodyGuard {
        BodyGuard {
            timeout: self.body_timeout(),
            budget: Arc::new(Semaphore::new(self.max_body_bytes_in_flight.max(MAX_BODY_BYTES))),
        }
    }
}

/// What the body middleware needs: the read deadline and the byte budget.
#[derive(Debug, Clone)]
pub struct BodyGuard {
    timeout: Duration,
    budget: Arc<Semaphore>,
}

/// Raises the soft file limit to the hard one where the system allows it;
/// returns the soft limit in force.
pub fn raise_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// A refusal in plain text that closes the connection.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = (status, format!("{message}\n")).into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Middleware: checks the declared length, takes the body's bytes from the
/// budget, reads the body under the deadline, then hands the request on.
pub async fn guard_body(State(guard): State<BodyGuard>, request: Request, next: Next) -> Response {
    let declared = match request.headers().get(CONTENT_LENGTH) {
        None => None,
        Some(value) => match value.to_str().ok().and_then(|text| text.trim().parse::<u64>().ok()) {
            Some(length) => Some(length),
            None => {
                metrics().refused("bad_content_length");
                return refusal(StatusCode::BAD_REQUEST, "invalid Content-Length");
            }
        },
    };
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        metrics().refused("body_too_large");
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body over {MAX_BODY_BYTES} bytes"),
        );
    }
    // Without a length (chunked), count the largest body allowed.
    let reserve = declared.map_or(MAX_BODY_BYTES, |length| length as usize);
    if reserve == 0 && declared.is_some() {
        return next.run(request).await;
    }
    let _permit = if reserve > SMALL_BODY_BYTES {
        let permits = u32::try_from(reserve).unwrap_or(u32::MAX);
        match Arc::clone(&guard.budget).try_acquire_many_owned(permits) {
            Ok(permit) => Some(permit),
            Err(_) => {
                metrics().refused("body_budget");
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server busy: too many large request bodies being read; retry",
                );
            }
        }
    } else {
        None
    };
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match tokio::time::timeout(guard.timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            metrics().refused("body_too_large");
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {MAX_BODY_BYTES} bytes, or cut short"),
            );
        }
        Err(_) => {
            metrics().refused("body_timeout");
            return refusal(
                StatusCode::REQUEST_TIMEOUT,
                &format!("request body not received within {:?}", guard.timeout),
            );
        }
    };
    // The permit is held until the reply is written: the body lives until then.
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_fits_the_file_limit() {
        let limits = Limits::default();
        assert_eq!(limits.connections_within(1_000_000), 16_384);
        assert_eq!(limits.connections_within(1024), 960);
        assert_eq!(limits.connections_within(10), 1);
    }
}
