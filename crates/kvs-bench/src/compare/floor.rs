//! The floor: the cheapest XML-RPC server possible over HTTP/1.1 here.
//!
//! It answers every POST on `/` and `/RPC2` with one constant, valid
//! XML-RPC `methodResponse` (the string `0:0`), reading the request body but
//! never parsing it. Whatever a real server does on top costs throughput
//! relative to this, so "kvs at x% of the floor" is a fair yardstick on a
//! given machine. Sockets get `TCP_NODELAY`, as kvs's do.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use kvs_process::limits::Limits;
use kvs_process::{self as process, ProcessError};

/// The one reply: a `get` answer as kvs would give it, for the key and value 0.
pub const RESPONSE: &str = "<?xml version=\"1.0\"?><methodResponse><params><param><value><string>0:0</string></value></param></params></methodResponse>";

async fn constant(_body: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/xml")], RESPONSE)
}

/// `/` and `/RPC2` answer every POST with [`RESPONSE`]; `/health` answers GET.
pub fn router() -> Router {
    Router::new()
        .route("/", post(constant))
        .route("/RPC2", post(constant))
        .route("/health", get(|| async { "ok" }))
}

/// Serves the floor on `bind:port` until SIGTERM or SIGINT.
pub async fn serve(bind: IpAddr, port: u16) -> Result<(), ProcessError> {
    let listener = process::listen(SocketAddr::new(bind, port)).await?;
    process::serve_until(listener, router(), &Limits::default(), process::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_is_a_get_answer() {
        assert!(RESPONSE.starts_with("<?xml"));
        assert!(RESPONSE.contains("<methodResponse><params><param><value><string>0:0</string>"));
        assert!(RESPONSE.ends_with("</methodResponse>"));
    }
}
