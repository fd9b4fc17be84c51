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
use kvs_proto::serve::{HEALTH_PATH, RPC_PATHS};
use kvs_proto::{fast_path, reply};

/// The one reply: a `get` answer as kvs writes it, for the key and value 0.
pub fn response() -> String {
    let value = dxr::Value::String(reply::pair(0, 0));
    fast_path::write_response(&value).unwrap_or_default()
}

/// Every XML-RPC path answers every POST with [`response`]; the health path answers GET.
pub fn router() -> Router {
    let body = Bytes::from(response());
    let constant = move |_request: Bytes| {
        let body = body.clone();
        async move { ([(header::CONTENT_TYPE, "text/xml")], body).into_response() }
    };
    RPC_PATHS
        .iter()
        .fold(Router::new(), |router, path| router.route(path, post(constant.clone())))
        .route(HEALTH_PATH, get(|| async { "ok" }))
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
    fn the_reply_is_a_get_answer_both_parsers_read() {
        let body = response();
        let expected = dxr::Value::String(reply::pair(0, 0));
        assert_eq!(fast_path::parse_response(&body), Some(expected.clone()));
        let dxr_read = dxr::MethodResponse::from_xml(&body).expect("dxr reads the floor's reply");
        assert_eq!(dxr_read.value, expected);
    }
}
