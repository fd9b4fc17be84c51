//! Serving a set of XML-RPC methods over HTTP, the way Python callers expect.
//!
//! Methods are registered by type ([`Methods::method`]) against a service that
//! implements [`Handle`] for that method; arity and argument types are
//! checked by the method type before the service sees the call. The router
//! answers on both `/` and `/RPC2` (Python's `ServerProxy` posts to `/RPC2`),
//! plus `GET /health` for operators. Bodies over [`MAX_BODY_BYTES`] get HTTP
//! 413; fault messages are capped at [`MAX_FAULT_CHARS`] (dxr's parse-error
//! fault would otherwise echo the whole request back).

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use dxr::{Fault, FaultResponse, TryToValue, Value};
use dxr_server::{Handler, HandlerMap, HandlerResult};

use crate::rpc::Rpc;

/// Largest request body accepted; larger ones get HTTP 413.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Longest fault message sent back.
pub const MAX_FAULT_CHARS: usize = 256;
/// The paths the XML-RPC endpoint answers on.
pub const RPC_PATHS: [&str; 2] = ["/", "/RPC2"];
/// The health-check path.
pub const HEALTH_PATH: &str = "/health";

/// A service's answer to one method.
pub trait Handle<C: Rpc>: Send + Sync + 'static {
    /// Carries out `call`; a fault is sent back to the caller as is.
    fn handle(&self, call: C) -> impl Future<Output = Result<C::Reply, Fault>> + Send;
}

/// Adapts a typed service method to dxr's untyped handler.
struct Endpoint<C, S> {
    service: Arc<S>,
    _method: PhantomData<fn() -> C>,
}

#[async_trait::async_trait]
impl<C: Rpc, S: Handle<C>> Handler for Endpoint<C, S> {
    async fn handle(&self, params: &[Value], _headers: HeaderMap) -> HandlerResult {
        let call =
            C::from_params(params).map_err(|e| Fault::new(400, format!("{}: {e}", C::METHOD)))?;
        let reply = self.service.handle(call).await?;
        reply.try_to_value().map_err(Fault::from)
    }
}

/// The methods one process serves.
#[derive(Default)]
pub struct Methods {
    handlers: HashMap<&'static str, Box<dyn Handler>>,
}

impl Methods {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves method `C` with `service`.
    pub fn method<C: Rpc, S: Handle<C>>(mut self, service: &Arc<S>) -> Self {
        let endpoint = Endpoint::<C, S> {
            service: Arc::clone(service),
            _method: PhantomData,
        };
        self.handlers.insert(C::METHOD, Box::new(endpoint));
        self
    }

    /// The axum router: XML-RPC on `/` and `/RPC2`, health on `/health`.
    pub fn into_router(self) -> Router {
        let handlers: HandlerMap = Arc::new(self.handlers);
        let rpc = post(move |headers: HeaderMap, body: String| {
            let handlers = Arc::clone(&handlers);
            async move { respond(handlers, headers, body).await }
        });
        let mut router = Router::new();
        for path in RPC_PATHS {
            router = router.route(path, rpc.clone());
        }
        router
            .route(HEALTH_PATH, get(|| async { "ok\n" }))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    }
}

async fn respond(
    handlers: HandlerMap,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap, String) {
    let (status, headers, reply) = dxr_server::server(handlers, &body, headers).await;
    if reply.len() <= MAX_FAULT_CHARS * 2 {
        return (status, headers, reply);
    }
    match FaultResponse::from_xml(&reply) {
        Ok(response) => (status, headers, capped_fault(&response.fault)),
        Err(_) => (status, headers, reply),
    }
}

/// Re-encodes a fault with its message cut to [`MAX_FAULT_CHARS`].
fn capped_fault(fault: &Fault) -> String {
    let message: String = fault.string().chars().take(MAX_FAULT_CHARS).collect();
    let fault = Fault::new(fault.code(), format!("{message}… (truncated)"));
    FaultResponse { fault }
        .to_xml()
        .unwrap_or_else(|_| String::from("<?xml version=\"1.0\"?><methodResponse/>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fault_is_capped() {
        let long = "x".repeat(10_000);
        let xml = capped_fault(&Fault::new(400, long));
        let response = FaultResponse::from_xml(&xml).expect("valid fault");
        assert_eq!(response.fault.code(), 400);
        assert!(response.fault.string().chars().count() < MAX_FAULT_CHARS + 20);
    }
}
