//! Serving a set of XML-RPC methods over HTTP, the way Python callers expect.
//!
//! Methods are registered by type ([`Methods::method`]) against a service that
//! implements [`Handle`] for that method; arity and argument types are
//! checked by the method type before the service sees the call. The router
//! answers on both `/` and `/RPC2` (Python's `ServerProxy` posts to `/RPC2`),
//! plus the operators' probes: `GET /health` and `GET /livez` (200 while the
//! process serves), `GET /readyz` (200 when the process's own [`Readiness`]
//! check passes, else 503 with the reason) and `GET /metrics` (see
//! [`crate::metrics`]; every call is counted and timed there). A guarded method (see [`crate::auth`]) served by
//! [`Methods::with_secret`] is refused with fault
//! [`crate::fault::UNAUTHORIZED`] unless the call shows the secret. Bodies over [`MAX_BODY_BYTES`] get HTTP
//! 413; fault messages are capped at [`MAX_FAULT_CHARS`] (dxr's parse-error
//! fault would otherwise echo the whole request back).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use dxr::{Fault, FaultResponse, MethodResponse, TryToValue, Value};
use dxr_server::{Handler, HandlerMap, HandlerResult};

use crate::auth::ClusterSecret;
use crate::fast_path;
use crate::rpc::Rpc;

/// Largest request body accepted; larger ones get HTTP 413.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Longest fault message sent back.
pub const MAX_FAULT_CHARS: usize = 256;
/// The paths the XML-RPC endpoint answers on.
pub const RPC_PATHS: [&str; 2] = ["/", "/RPC2"];
/// The health-check path (kept for existing callers; the same as [`LIVEZ_PATH`]).
pub const HEALTH_PATH: &str = "/health";
/// The liveness probe: 200 while the process serves requests.
pub const LIVEZ_PATH: &str = "/livez";
/// The readiness probe: 200 when the process should get traffic, else 503.
pub const READYZ_PATH: &str = "/readyz";
/// The metrics path (Prometheus text format), where a process has metrics.
pub const METRICS_PATH: &str = "/metrics";

/// A service's answer to one method.
pub trait Handle<C: Rpc>: Send + Sync + 'static {
    /// Carries out `call`; a fault is sent back to the caller as is.
    fn handle(&self, call: C) -> impl Future<Output = Result<C::Reply, Fault>> + Send;
}

/// A process's readiness check, answered on [`READYZ_PATH`]: `Ok` is 200,
/// `Err(reason)` is 503 with the reason as the body.
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` when the process can serve; else why not.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a router serves besides the XML-RPC methods: readiness, and what
/// to refresh in the metrics before a scrape.
#[derive(Default)]
pub struct Probes {
    refresh: Option<RefreshFn>,
    readiness: Option<ReadinessFn>,
}

type RefreshFn = Arc<dyn Fn() + Send + Sync>;
type ReadyFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type ReadinessFn = Arc<dyn Fn() -> ReadyFuture + Send + Sync>;

impl Probes {
    /// Runs `refresh` before each `GET /metrics`, to update the values a
    /// process reads rather than counts (see [`crate::metrics`]).
    pub fn metrics(mut self, refresh: impl Fn() + Send + Sync + 'static) -> Self {
        self.refresh = Some(Arc::new(refresh));
        self
    }

    /// `GET /readyz` answered by `check` (without one, ready while serving).
    pub fn readiness<R: Readiness>(mut self, check: &Arc<R>) -> Self {
        let check = Arc::clone(check);
        self.readiness = Some(Arc::new(move || {
            let check = Arc::clone(&check);
            Box::pin(async move { check.ready().await })
        }));
        self
    }

    fn add_to(self, mut router: Router) -> Router {
        let live = || async { "ok\n" };
        router = router.route(HEALTH_PATH, get(live)).route(LIVEZ_PATH, get(live));
        let refresh = self.refresh;
        router = router.route(
            METRICS_PATH,
            get(move || {
                if let Some(refresh) = &refresh {
                    refresh();
                }
                std::future::ready(crate::metrics::metrics().encode())
            }),
        );
        let readiness = self.readiness;
        router.route(
            READYZ_PATH,
            get(move || {
                let check = readiness.as_ref().map(|check| check());
                async move {
                    match check {
                        None => (StatusCode::OK, "ok\n".to_owned()),
                        Some(check) => match check.await {
                            Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
                            Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
                        },
                    }
                }
            }),
        )
    }
}

/// Adapts a typed service method to dxr's untyped handler.
struct Endpoint<C, S> {
    service: Arc<S>,
    /// The secret a call must show, for a guarded method when one is set.
    secret: Option<Arc<ClusterSecret>>,
    _method: PhantomData<fn() -> C>,
}

#[async_trait::async_trait]
impl<C: Rpc, S: Handle<C>> Handler for Endpoint<C, S> {
    async fn handle(&self, params: &[Value], headers: HeaderMap) -> HandlerResult {
        if let Some(secret) = &self.secret
            && !secret.admits(&headers)
        {
            tracing::warn!(method = C::METHOD, "refused: the call did not show the cluster secret");
            crate::metrics::metrics().refused("unauthorized");
            return Err(Fault::new(
                crate::fault::UNAUTHORIZED,
                format!(
                    "{} changes data or membership: show the cluster secret (Authorization header)",
                    C::METHOD
                ),
            ));
        }
        let started = std::time::Instant::now();
        let call = C::from_params(params)
            .map_err(|e| Fault::new(crate::fault::INVALID_PARAMS, format!("{}: {e}", C::METHOD)))?;
        let reply = self.service.handle(call).await;
        crate::metrics::metrics().request(C::METHOD, reply.is_ok(), started.elapsed());
        reply?.try_to_value().map_err(Fault::from)
    }
}

/// The methods one process serves.
#[derive(Default)]
pub struct Methods {
    handlers: HashMap<&'static str, Box<dyn Handler>>,
    secret: Option<Arc<ClusterSecret>>,
}

impl Methods {
    /// Methods that are all open to every caller.
    pub fn new() -> Self {
        Self::default()
    }

    /// Methods whose guarded ones ([`Rpc::GUARDED`]) need `secret`, if set.
    pub fn with_secret(secret: Option<ClusterSecret>) -> Self {
        Methods {
            handlers: HashMap::new(),
            secret: secret.map(Arc::new),
        }
    }

    /// Serves method `C` with `service`.
    pub fn method<C: Rpc, S: Handle<C>>(mut self, service: &Arc<S>) -> Self {
        let endpoint = Endpoint::<C, S> {
            service: Arc::clone(service),
            secret: self.secret.clone().filter(|_| C::GUARDED),
            _method: PhantomData,
        };
        self.handlers.insert(C::METHOD, Box::new(endpoint));
        self
    }

    /// The axum router: XML-RPC on `/` and `/RPC2`, `/health`, `/livez`,
    /// and `/readyz` always ready.
    pub fn into_router(self) -> Router {
        self.into_router_with(Probes::default())
    }

    /// The axum router with `probes`' metrics and readiness check.
    pub fn into_router_with(self, probes: Probes) -> Router {
        let handlers: HandlerMap = Arc::new(self.handlers);
        let rpc = post(move |RequestHeaders(headers): RequestHeaders, body: String| {
            let handlers = Arc::clone(&handlers);
            async move { respond(handlers, headers, body).await }
        });
        let mut router = Router::new();
        for path in RPC_PATHS {
            router = router.route(path, rpc.clone());
        }
        probes.add_to(router).layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    }
}

/// The request's headers, moved out of the request rather than cloned
/// (axum's `HeaderMap` extractor clones them, on every call).
struct RequestHeaders(HeaderMap);

impl<S: Send + Sync> FromRequestParts<S> for RequestHeaders {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestHeaders(std::mem::take(&mut parts.headers)))
    }
}

async fn respond(handlers: HandlerMap, headers: HeaderMap, body: String) -> (StatusCode, HeaderMap, String) {
    let headers = match respond_plain(&handlers, headers, &body).await {
        Ok(reply) => return reply,
        Err(headers) => headers,
    };
    let (status, headers, reply) = dxr_server::server(handlers, &body, headers).await;
    // Successful replies pass untouched; only faults are looked at.
    if !reply.contains("<fault>") {
        return (status, headers, reply);
    }
    match FaultResponse::from_xml(&reply) {
        Ok(response) => (status, headers, tidy_fault(&response.fault)),
        Err(_) => (status, headers, reply),
    }
}

/// Answers a plain call (see [`crate::fast_path`]) to a known method without
/// dxr's parser; `Err` hands the headers back to send the request down
/// dxr's path instead, which also reports every error the plain path does
/// not handle (a missing `Content-Length`, an unknown method, a malformed
/// body).
async fn respond_plain(
    handlers: &HandlerMap,
    headers: HeaderMap,
    body: &str,
) -> Result<(StatusCode, HeaderMap, String), HeaderMap> {
    if !headers.contains_key(CONTENT_LENGTH) {
        return Err(headers);
    }
    let Some((name, params)) = fast_path::parse_call(body) else {
        return Err(headers);
    };
    let Some(handler) = handlers.get(name) else {
        return Err(headers);
    };
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    // The handler reads the headers only for the cluster secret.
    let reply = match handler.handle(&params, headers).await {
        Ok(value) => fast_path::write_response(&value).unwrap_or_else(|| {
            MethodResponse { value }
                .to_xml()
                .unwrap_or_else(|e| tidy_fault(&Fault::new(crate::fault::INTERNAL_ERROR, e.to_string())))
        }),
        Err(fault) => tidy_fault(&fault),
    };
    Ok((StatusCode::OK, reply_headers, reply))
}

/// dxr's parse-error fault echoes the request (twice prefixed): give it its
/// own code and a short message; cap every fault message at
/// [`MAX_FAULT_CHARS`].
fn tidy_fault(fault: &Fault) -> String {
    const PARSE_PREFIX: &str = "Failed to parse XML data: ";
    const PARSE_ECHO_CHARS: usize = 64;
    let (code, message) = match fault.string().strip_prefix(PARSE_PREFIX) {
        Some(detail) => {
            // dxr's detail is the request itself: show only its start.
            let start: String = detail
                .trim_start_matches(PARSE_PREFIX)
                .chars()
                .take(PARSE_ECHO_CHARS)
                .collect();
            let message = format!("malformed XML-RPC request, starting {start:?}");
            (crate::fault::PARSE_ERROR, message)
        }
        None => (fault.code(), fault.string().to_owned()),
    };
    let message = if message.chars().count() > MAX_FAULT_CHARS {
        let cut: String = message.chars().take(MAX_FAULT_CHARS).collect();
        format!("{cut}… (truncated)")
    } else {
        message
    };
    FaultResponse {
        fault: Fault::new(code, message),
    }
    .to_xml()
    .unwrap_or_else(|_| String::from("<?xml version=\"1.0\"?><methodResponse/>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_get_their_own_code_and_no_echo() {
        let echo = format!(
            "Failed to parse XML data: Failed to parse XML data: {}",
            "<junk/>".repeat(100)
        );
        let xml = tidy_fault(&Fault::new(crate::fault::INVALID_PARAMS, echo));
        let response = FaultResponse::from_xml(&xml).expect("valid fault");
        assert_eq!(response.fault.code(), crate::fault::PARSE_ERROR);
        assert!(
            response
                .fault
                .string()
                .starts_with("malformed XML-RPC request, starting \"<junk/>")
        );
        assert!(response.fault.string().chars().count() < MAX_FAULT_CHARS + 20);
    }

    #[test]
    fn long_fault_is_capped() {
        let long = "x".repeat(10_000);
        let xml = tidy_fault(&Fault::new(crate::fault::INVALID_PARAMS, long));
        let response = FaultResponse::from_xml(&xml).expect("valid fault");
        assert_eq!(response.fault.code(), crate::fault::INVALID_PARAMS);
        assert!(response.fault.string().chars().count() < MAX_FAULT_CHARS + 20);
    }
}
