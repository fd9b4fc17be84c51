//! The fast-path parser against dxr: whatever `fast_path::parse_call` (or
//! `parse_response`) accepts, dxr reads to the same call (or value), and
//! what the fast path read it writes back exactly as dxr does.

#![no_main]

use dxr::{MethodCall, MethodResponse};
use kvs_proto::fast_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Bodies reach the parser as text (axum refuses invalid UTF-8 before).
    let text = String::from_utf8_lossy(data);
    check_call(&text);
    check_response(&text);
});

fn check_call(body: &str) {
    let Some((name, params)) = fast_path::parse_call(body) else {
        return;
    };
    let call = MethodCall::from_xml(body)
        .unwrap_or_else(|e| panic!("the fast path accepts a call dxr refuses ({e}): {body:?}"));
    assert_eq!(call.name, name, "method name differs from dxr's: {body:?}");
    assert_eq!(call.params, params, "parameters differ from dxr's: {body:?}");
    let written = fast_path::write_call(name, &params).expect("what the fast path reads, it writes");
    let by_dxr = dxr_client::utils::request_to_body(&call).expect("dxr writes what it read");
    assert_eq!(written, by_dxr, "written unlike dxr's client: {body:?}");
    assert_eq!(
        fast_path::parse_call(&written),
        Some((name, params)),
        "no round trip: {body:?}"
    );
}

fn check_response(body: &str) {
    let Some(value) = fast_path::parse_response(body) else {
        return;
    };
    let response = MethodResponse::from_xml(body)
        .unwrap_or_else(|e| panic!("the fast path accepts a reply dxr refuses ({e}): {body:?}"));
    assert_eq!(response.value, value, "reply value differs from dxr's: {body:?}");
    let written = fast_path::write_response(&value).expect("what the fast path reads, it writes");
    let by_dxr = MethodResponse { value: value.clone() }
        .to_xml()
        .expect("dxr writes what it read");
    assert_eq!(written, by_dxr, "reply written unlike dxr: {body:?}");
    assert_eq!(
        fast_path::parse_response(&written),
        Some(value),
        "no round trip: {body:?}"
    );
}
