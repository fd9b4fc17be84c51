//! What the dispatch targets share: turning fuzz input into HTTP requests,
//! sending them through a process's router as `serve_until` serves it, and
//! checking every response is well formed.
//!
//! Input layout: one *setup* byte (read by the target: e.g. whether a
//! cluster secret is configured), then up to [`MAX_REQUESTS`] requests
//! separated by `0xFF` (a byte that never occurs in UTF-8, so it never cuts
//! a body that could be valid). Each request is one *shape* byte and the body:
//!
//! | bits | meaning |
//! |------|---------|
//! | 0–1  | path: 0 `/RPC2`, 1 `/`, 2 `/RPC2`, 3 another path (bits 5–7 pick it) |
//! | 2–3  | `Content-Length`: 0 exact, 1 absent, 2 one too many, 3 not a length |
//! | 4    | `GET` instead of `POST` |
//! | 5–6  | `Authorization`: 0 none, 1 `Basic` with the secret, 2 `Bearer` with it, 3 a wrong one |
//! | 7    | no `Content-Type` |
//!
//! so a shape byte of 0 is a plain POST to `/RPC2`, as Python sends it.
//!
//! Besides checking each response on its own, [`serve_all`] sends every
//! request to a *twin* router too (a second, identical process, or the same
//! one where a process keeps no state between calls), with one change: a
//! body that `kvs_proto::fast_path::parse_call` accepts gets an XML comment
//! after `<methodCall>`, which sends it down dxr's path instead. The twin
//! must answer the same: the fast path and dxr's path agree end to end.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{Method, Request, StatusCode};
use dxr::{FaultResponse, MethodResponse, Value};
use kvs_process::limits::{self, Limits};
use kvs_proto::serve::{MAX_BODY_BYTES, MAX_FAULT_CHARS, RPC_PATHS};
use kvs_proto::{ClusterSecret, fast_path};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Requests read from one input at most.
pub const MAX_REQUESTS: usize = 8;
/// The secret a target configures when its setup byte asks for one.
pub const SECRET: &str = "fuzz-secret";
/// Separates requests in an input.
pub const SEPARATOR: u8 = 0xFF;

/// Paths picked by a shape whose path bits are 3.
const OTHER_PATHS: [&str; 8] = [
    "/health", "/livez", "/readyz", "/metrics", "/RPC3", "//", "/RPC2/x", "/?a=1",
];

/// The runtime every input runs on: one thread, as a server runs by default.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// The cluster secret the fuzz targets configure.
pub fn secret() -> ClusterSecret {
    ClusterSecret::new(SECRET).expect("a valid secret")
}

/// The setup byte and the rest of an input.
pub fn split_setup(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((setup, rest)) => (*setup, rest),
        None => (0, &[]),
    }
}

/// One request of an input.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: Method,
    pub path: &'static str,
    pub content_length: Option<String>,
    pub authorization: Option<String>,
    pub content_type: bool,
    pub body: Vec<u8>,
}

impl Sent {
    /// Reads a request from one chunk of input (see the module doc).
    pub fn read(chunk: &[u8], secret: &ClusterSecret) -> Option<Sent> {
        let (&shape, body) = chunk.split_first()?;
        let path = match shape & 0b11 {
            0 | 2 => "/RPC2",
            1 => "/",
            _ => OTHER_PATHS[usize::from(shape >> 5)],
        };
        let method = if shape & 0b1_0000 != 0 {
            Method::GET
        } else {
            Method::POST
        };
        let content_length = match (shape >> 2) & 0b11 {
            0 => Some(body.len().to_string()),
            1 => None,
            2 => Some((body.len() + 1).to_string()),
            _ => Some(["12abc", "-1", " 5 ", "99999999999999999999", ""][body.len() % 5].to_owned()),
        };
        let authorization = match (shape >> 5) & 0b11 {
            0 => None,
            1 => Some(secret.header_value().to_owned()),
            2 => Some(format!("Bearer {SECRET}")),
            _ => Some("Basic a3ZzOndyb25n".to_owned()),
        };
        Some(Sent {
            method,
            path,
            content_length,
            authorization,
            content_type: shape & 0b1000_0000 == 0,
            body: body.to_vec(),
        })
    }

    /// The HTTP request.
    pub fn request(&self) -> Request<Body> {
        let mut builder = Request::builder().method(self.method.clone()).uri(self.path);
        if let Some(length) = &self.content_length {
            builder = builder.header(CONTENT_LENGTH, length);
        }
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        if self.content_type {
            builder = builder.header(CONTENT_TYPE, "text/xml");
        }
        builder
            .body(Body::from(self.body.clone()))
            .expect("the request's parts are valid")
    }

    /// What the twin is sent: a call the fast path would take gets an XML
    /// comment after `<methodCall>`, which only dxr reads; anything else is
    /// sent as is.
    pub fn for_twin(&self) -> Sent {
        let exact_length = self.content_length.as_deref() == Some(self.body.len().to_string().as_str());
        let plain = std::str::from_utf8(&self.body)
            .ok()
            .filter(|body| exact_length && self.is_rpc_post() && fast_path::parse_call(body).is_some());
        let Some(body) = plain else {
            return self.clone();
        };
        let body = body.replacen("<methodCall>", "<methodCall><!-- dxr's path -->", 1);
        assert_eq!(
            fast_path::parse_call(&body),
            None,
            "a comment sends a call down dxr's path"
        );
        Sent {
            content_length: Some(body.len().to_string()),
            body: body.into_bytes(),
            ..self.clone()
        }
    }

    /// Whether this request reaches the XML-RPC endpoint.
    fn is_rpc_post(&self) -> bool {
        self.method == Method::POST && RPC_PATHS.contains(&self.path)
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Received {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Sends `sent` through `router` and reads the whole response.
pub async fn send(router: &Router, sent: &Sent) -> Received {
    let response = router
        .clone()
        .oneshot(sent.request())
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|value| value.to_str().expect("an ASCII Content-Type").to_owned());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the response body can be read whole")
        .to_vec();
    Received {
        status,
        content_type,
        body,
    }
}

/// `router` as `kvs_process::serve_until` serves it: behind the body
/// guard of the default [`Limits`].
pub fn as_served(router: Router) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Limits::default().body_guard(),
        limits::guard_body,
    ))
}

/// Sends every request of `requests` (the input after the setup byte)
/// through `router` in turn, and its twin's form through `twin` (see the
/// module doc); checks each response, and that the two agree.
pub async fn serve_all(router: &Router, twin: &Router, requests: &[u8], secret: &ClusterSecret) {
    for chunk in requests.split(|byte| *byte == SEPARATOR).take(MAX_REQUESTS) {
        let Some(sent) = Sent::read(chunk, secret) else {
            continue;
        };
        let received = send(router, &sent).await;
        check_response(&sent, &received);
        let twin_sent = sent.for_twin();
        let twin_received = send(twin, &twin_sent).await;
        check_response(&twin_sent, &twin_received);
        if !sent.is_rpc_post() {
            // A probe's body may tell the time or the metrics so far.
            assert_eq!(received.status, twin_received.status, "{sent:?}");
            continue;
        }
        assert_eq!(
            outcome(&received),
            outcome(&twin_received),
            "the fast path and dxr's path answer {sent:?} differently: {:?} and {:?}",
            String::from_utf8_lossy(&received.body),
            String::from_utf8_lossy(&twin_received.body)
        );
    }
}

/// What a response says, leaving out what may differ between two runs of
/// one call: a fault's message (it may tell a remaining time) and a
/// server's boot id (`alive BOOT`, see `kvs_proto::reply::alive`).
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Value(Value),
    Fault(i32),
    Http(StatusCode, Vec<u8>),
}

pub fn outcome(received: &Received) -> Outcome {
    let xml = std::str::from_utf8(&received.body).ok();
    let is_xml = received.status == StatusCode::OK && received.content_type.as_deref() == Some("text/xml");
    if let Some(xml) = xml.filter(|_| is_xml) {
        if let Ok(response) = FaultResponse::from_xml(xml) {
            return Outcome::Fault(response.fault.code());
        }
        if let Ok(response) = MethodResponse::from_xml(xml) {
            return Outcome::Value(match response.value {
                Value::String(text) if text.starts_with("alive ") => Value::String("alive".into()),
                value => value,
            });
        }
    }
    Outcome::Http(received.status, received.body.clone())
}

/// What every response must be, whatever was sent.
pub fn check_response(sent: &Sent, received: &Received) {
    let Received {
        status,
        content_type,
        body,
    } = received;
    let (status, content_type) = (*status, content_type.as_deref());
    assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR,
        "HTTP 500 for {sent:?}: {}",
        String::from_utf8_lossy(body)
    );
    if !sent.is_rpc_post() {
        return;
    }
    let declared = sent.content_length.as_deref().map(|text| text.trim().parse::<u64>());
    match declared {
        Some(Err(_)) => {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{sent:?}");
            return;
        }
        Some(Ok(length)) if length > MAX_BODY_BYTES as u64 => {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{sent:?}");
            return;
        }
        _ => {}
    }
    if std::str::from_utf8(&sent.body).is_err() {
        // axum's String extractor refuses the body before any XML is read.
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sent:?}");
        return;
    }
    // Everything else is an XML-RPC reply: a value or a fault, HTTP 200.
    assert_eq!(status, StatusCode::OK, "{sent:?}: {}", String::from_utf8_lossy(body));
    assert_eq!(content_type, Some("text/xml"), "{sent:?}");
    let xml = std::str::from_utf8(body).expect("an XML-RPC reply is UTF-8");
    check_reply(xml, sent);
}

/// An XML-RPC reply: XML 1.0 characters only, and dxr reads it as a
/// value or as a fault whose message is capped.
pub fn check_reply(xml: &str, sent: &Sent) {
    if let Some(bad) = xml.chars().find(|c| !is_xml_char(*c)) {
        panic!("the reply holds {bad:?}, not an XML 1.0 character, for {sent:?}: {xml:?}");
    }
    if xml.contains("<fault>") {
        let response =
            FaultResponse::from_xml(xml).unwrap_or_else(|e| panic!("unreadable fault ({e}) for {sent:?}: {xml:?}"));
        let fault = response.fault;
        let chars = fault.string().chars().count();
        assert!(
            chars <= MAX_FAULT_CHARS + "… (truncated)".len(),
            "a fault message of {chars} characters for {sent:?}"
        );
        let code = fault.code();
        assert!(
            (1..100).contains(&code) || [400, 404, 411].contains(&code),
            "fault code {code} for {sent:?}: {}",
            fault.string()
        );
    } else {
        MethodResponse::from_xml(xml).unwrap_or_else(|e| panic!("unreadable reply ({e}) for {sent:?}: {xml:?}"));
    }
}

/// The characters XML 1.0 allows in a document.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_calls_reach_the_twin_down_dxrs_path() {
        let secret = secret();
        let body = "<?xml version='1.0'?>\n<methodCall>\n<methodName>get</methodName>\n<params>\n<param>\n<value><int>3</int></value>\n</param>\n</params>\n</methodCall>\n";
        let mut chunk = vec![0];
        chunk.extend_from_slice(body.as_bytes());
        let sent = Sent::read(&chunk, &secret).expect("a request");
        assert!(fast_path::parse_call(body).is_some());
        let twin = sent.for_twin();
        let twin_body = std::str::from_utf8(&twin.body).expect("text");
        assert_eq!(fast_path::parse_call(twin_body), None);
        let call = dxr::MethodCall::from_xml(twin_body).expect("dxr reads it");
        assert_eq!(call.params, vec![Value::Integer(3)]);
        assert_eq!(twin.content_length, Some(twin.body.len().to_string()));
        // Anything the fast path would not take goes to the twin as is.
        chunk[0] = 0b0100; // no Content-Length
        assert_eq!(
            Sent::read(&chunk, &secret).expect("a request").for_twin().body,
            chunk[1..]
        );
    }

    /// Answers `get` with a fixed value.
    struct Fixed(i32);

    impl kvs_proto::serve::Handle<kvs_proto::api::proxy::Get> for Fixed {
        async fn handle(&self, call: kvs_proto::api::proxy::Get) -> Result<String, dxr::Fault> {
            Ok(kvs_proto::reply::pair(call.key, self.0))
        }
    }

    fn fixed(value: i32) -> Router {
        let service = std::sync::Arc::new(Fixed(value));
        as_served(
            kvs_proto::serve::Methods::new()
                .method::<kvs_proto::api::proxy::Get, _>(&service)
                .into_router(),
        )
    }

    fn get_request() -> Vec<u8> {
        let mut input = vec![0];
        input.extend_from_slice(b"<methodCall><methodName>get</methodName><params><param><value><i4>7</i4></value></param></params></methodCall>");
        input
    }

    #[test]
    fn twins_that_agree_pass() {
        runtime().block_on(serve_all(&fixed(1), &fixed(1), &get_request(), &secret()));
    }

    #[test]
    #[should_panic(expected = "answer")]
    fn twins_that_differ_are_caught() {
        runtime().block_on(serve_all(&fixed(1), &fixed(2), &get_request(), &secret()));
    }
}
