//! The plain XML-RPC forms that make up nearly all traffic, read and written
//! without a general XML parser.
//!
//! Python's `xmlrpc.client` and kvs's own clients send calls in one simple
//! shape: an optional `<?xml …?>` declaration, `<methodCall>`, a
//! `<methodName>`, and parameters that are `<int>`/`<i4>`, `<string>` or
//! `<base64>` scalars, with only whitespace between tags. [`parse_call`]
//! reads exactly that shape and gives up (returns `None`) on anything else —
//! comments, attributes, CDATA, other types, untyped values, unknown
//! entities, whitespace inside a number or a base64 run — so the caller falls
//! back to dxr's full parser, which then accepts or rejects the request as
//! it always did. Where both succeed they agree (see the tests).
//! [`write_response`] likewise writes scalar replies byte for byte as dxr
//! would.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dxr::Value;

/// The method name and parameters of a call in the plain form, or `None`
/// if the body is anything else.
pub fn parse_call(body: &str) -> Option<(&str, Vec<Value>)> {
    let mut rest = skip_declaration(body.trim_start())?;
    rest = expect(rest, "<methodCall>")?;
    rest = expect(rest, "<methodName>")?;
    let end = rest.find('<')?;
    let name = &rest[..end];
    if name.is_empty() || !name.bytes().all(is_name_byte) {
        return None;
    }
    rest = expect(&rest[end..], "</methodName>")?;
    let mut params = Vec::new();
    if let Some(after) = expect(rest, "<params/>") {
        rest = after;
    } else if let Some(after) = expect(rest, "<params>") {
        rest = after;
        while let Some(after) = expect(rest, "<param>") {
            let (value, after) = parse_value(after)?;
            params.push(value);
            rest = expect(after, "</param>")?;
        }
        rest = expect(rest, "</params>")?;
    }
    rest = expect(rest, "</methodCall>")?;
    rest.trim_start().is_empty().then_some((name, params))
}

/// The value of a successful reply in the plain form, or `None` if the body
/// is anything else (a fault among them).
pub fn parse_response(body: &str) -> Option<Value> {
    let mut rest = skip_declaration(body.trim_start())?;
    rest = expect(rest, "<methodResponse>")?;
    rest = expect(rest, "<params>")?;
    rest = expect(rest, "<param>")?;
    let (value, after) = parse_value(rest)?;
    rest = expect(after, "</param>")?;
    rest = expect(rest, "</params>")?;
    rest = expect(rest, "</methodResponse>")?;
    rest.trim_start().is_empty().then_some(value)
}

/// A call in the plain form, exactly as dxr's client writes it; `None` if a
/// parameter is not a plain scalar or the name is not a plain method name.
pub fn write_call(method: &str, params: &[Value]) -> Option<String> {
    if method.is_empty() || !method.bytes().all(is_name_byte) {
        return None;
    }
    let mut xml = String::with_capacity(128 + method.len());
    xml.push_str("<?xml version=\"1.0\"?>\n<methodCall><methodName>");
    xml.push_str(method);
    xml.push_str("</methodName>");
    if !params.is_empty() {
        xml.push_str("<params>");
        for param in params {
            xml.push_str("<param><value>");
            write_scalar(param, &mut xml)?;
            xml.push_str("</value></param>");
        }
        xml.push_str("</params>");
    }
    xml.push_str("</methodCall>\n");
    Some(xml)
}

/// A successful reply carrying `value`, exactly as dxr writes it, for the
/// scalar types the plain form covers; `None` for any other value.
pub fn write_response(value: &Value) -> Option<String> {
    const HEAD: &str = "<methodResponse><params><param><value>";
    const TAIL: &str = "</value></param></params></methodResponse>";
    let mut xml = String::with_capacity(HEAD.len() + TAIL.len() + 32);
    xml.push_str(HEAD);
    write_scalar(value, &mut xml)?;
    xml.push_str(TAIL);
    Some(xml)
}

/// Writes a plain scalar as dxr does; `None` for any other value.
fn write_scalar(value: &Value, xml: &mut String) -> Option<()> {
    match value {
        Value::Integer(number) => {
            xml.push_str("<i4>");
            xml.push_str(&number.to_string());
            xml.push_str("</i4>");
        }
        Value::String(text) => {
            xml.push_str("<string>");
            escape_into(text, xml);
            xml.push_str("</string>");
        }
        Value::Base64(bytes) => {
            xml.push_str("<base64>");
            STANDARD.encode_string(bytes, xml);
            xml.push_str("</base64>");
        }
        _ => return None,
    }
    Some(())
}

/// Skips an `<?xml … ?>` declaration if there is one.
fn skip_declaration(body: &str) -> Option<&str> {
    match body.strip_prefix("<?xml") {
        Some(declaration) => {
            let end = declaration.find("?>")?;
            if declaration[..end].contains('<') {
                return None;
            }
            Some(&declaration[end + 2..])
        }
        None => Some(body),
    }
}

/// `rest` after optional whitespace and then `tag`.
fn expect<'a>(rest: &'a str, tag: &str) -> Option<&'a str> {
    rest.trim_start_matches(is_xml_space).strip_prefix(tag)
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b':' | b'/')
}

/// One `<value>…</value>`, and what follows it.
fn parse_value(rest: &str) -> Option<(Value, &str)> {
    let rest = expect(rest, "<value>")?;
    let rest = rest.trim_start_matches(is_xml_space);
    let (value, rest) = if let Some(after) = rest.strip_prefix("<string/>") {
        (Value::String(String::new()), after)
    } else {
        let open_end = rest.strip_prefix('<')?.find('>')? + 1;
        let tag = &rest[1..open_end];
        let body_start = open_end + 1;
        let body_len = rest[body_start..].find('<')?;
        let text = &rest[body_start..body_start + body_len];
        let after = rest[body_start + body_len..]
            .strip_prefix("</")?
            .strip_prefix(tag)?
            .strip_prefix('>')?;
        let value = match tag {
            "int" | "i4" => Value::Integer(parse_int(text)?),
            "string" => Value::String(unescape(text)?),
            "base64" => Value::Base64(STANDARD.decode(text).ok()?),
            _ => return None,
        };
        (value, after)
    };
    Some((value, expect(rest, "</value>")?))
}

/// A decimal `i32` with an optional sign and nothing else.
fn parse_int(text: &str) -> Option<i32> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Text with the five predefined entities resolved; `None` for any other
/// entity or character reference.
fn unescape(text: &str) -> Option<String> {
    if !text.contains('&') {
        return Some(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let entity_end = rest[at..].find(';')?;
        let replacement = match &rest[at + 1..at + entity_end] {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => return None,
        };
        out.push(replacement);
        rest = &rest[at + entity_end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Escapes text the way dxr's serializer does.
fn escape_into(text: &str, xml: &mut String) {
    for c in text.chars() {
        match c {
            '&' => xml.push_str("&amp;"),
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '"' => xml.push_str("&quot;"),
            '\'' => xml.push_str("&apos;"),
            _ => xml.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dxr::{MethodCall, MethodResponse};

    const PYTHON_PUT: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>put</methodName>\n<params>\n<param>\n<value><int>12</int></value>\n</param>\n<param>\n<value><int>-7</int></value>\n</param>\n</params>\n</methodCall>\n";

    /// Whatever the plain parser accepts, dxr parses to the same call.
    fn agrees_with_dxr(body: &str) -> bool {
        let Some((name, params)) = parse_call(body) else {
            return false;
        };
        let call = MethodCall::from_xml(body).expect("dxr parses what the plain parser accepts");
        assert_eq!(call.name, name, "{body}");
        assert_eq!(call.params, params, "{body}");
        true
    }

    #[test]
    fn python_and_dxr_calls_take_the_plain_path() {
        assert!(agrees_with_dxr(PYTHON_PUT));
        let dxr_call = MethodCall {
            name: "applyBatch".into(),
            params: vec![Value::Base64(vec![0, 1, 2, 255]), Value::String("a<&>'\"b".into())],
        }
        .to_xml()
        .expect("dxr writes calls");
        assert!(agrees_with_dxr(&dxr_call));
        assert!(agrees_with_dxr(
            "<methodCall><methodName>listServer</methodName><params/></methodCall>"
        ));
        assert!(agrees_with_dxr(
            "<methodCall><methodName>listServer</methodName></methodCall>"
        ));
        assert!(agrees_with_dxr(
            "<methodCall><methodName>get</methodName><params><param><value><i4>+3</i4></value></param></params></methodCall>"
        ));
        assert!(agrees_with_dxr(
            "<methodCall><methodName>s</methodName><params><param><value><string/></value></param></params></methodCall>"
        ));
    }

    #[test]
    fn anything_unusual_falls_back_to_dxr() {
        let unusual = [
            "",
            "<methodCall><methodName>get</methodName><params><param><value>3</value></param></params></methodCall>",
            "<methodCall><methodName>get</methodName><params><param><value><int> 3</int></value></param></params></methodCall>",
            "<methodCall><methodName>get</methodName><params><param><value><int>99999999999</int></value></param></params></methodCall>",
            "<methodCall><methodName>get</methodName><params><param><value><double>1.5</double></value></param></params></methodCall>",
            "<methodCall><methodName>get</methodName><params><param><value><string>&#65;</string></value></param></params></methodCall>",
            "<methodCall><methodName>get</methodName><params><param><value><int>1</i4></value></param></params></methodCall>",
            "<methodCall><!-- c --><methodName>get</methodName></methodCall>",
            "<methodCall a='1'><methodName>get</methodName></methodCall>",
            "<methodCall><methodName>get</methodName></methodCall><extra/>",
            "<methodCall><methodName>get</methodName><params><param><value><base64>AA\nAA</base64></value></param></params></methodCall>",
            "<methodCall><methodName>get</methodName><params><param><value><int>1</int></value></param>",
            "<methodCall><methodName>g et</methodName></methodCall>",
        ];
        for body in unusual {
            assert_eq!(parse_call(body), None, "{body}");
        }
    }

    #[test]
    fn entities_are_resolved() {
        let body = "<methodCall><methodName>m</methodName><params><param><value><string>a&amp;b&lt;&gt;&quot;&apos;</string></value></param></params></methodCall>";
        assert!(agrees_with_dxr(body));
        assert_eq!(
            parse_call(body).map(|(_, params)| params),
            Some(vec![Value::String("a&b<>\"'".into())])
        );
    }

    #[test]
    fn replies_are_written_as_dxr_writes_them() {
        let values = [
            Value::Integer(0),
            Value::Integer(i32::MIN),
            Value::String("1:2".into()),
            Value::String(String::new()),
            Value::String("a&b<c>\"d'\ne".into()),
            Value::Base64(vec![1, 2, 3, 250]),
            Value::Base64(Vec::new()),
        ];
        for value in values {
            let expected = MethodResponse { value: value.clone() }
                .to_xml()
                .expect("dxr writes replies");
            assert_eq!(write_response(&value).as_deref(), Some(expected.as_str()));
        }
        assert_eq!(write_response(&Value::Boolean(true)), None);
    }

    #[test]
    fn calls_are_written_as_dxr_client_writes_them() {
        let params = vec![
            Value::Integer(-5),
            Value::String("x&y".into()),
            Value::Base64(vec![9; 20]),
        ];
        for params in [Vec::new(), params] {
            let call = MethodCall {
                name: "applyBatch".into(),
                params: params.clone(),
            };
            let expected = dxr_client::utils::request_to_body(&call).expect("dxr writes calls");
            assert_eq!(write_call("applyBatch", &params).as_deref(), Some(expected.as_str()));
        }
        assert_eq!(write_call("a b", &[]), None);
        assert_eq!(write_call("m", &[Value::Double(1.0)]), None);
    }

    #[test]
    fn plain_replies_are_read_and_faults_are_not() {
        let python = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>1:2</string></value>\n</param>\n</params>\n</methodResponse>\n";
        assert_eq!(parse_response(python), Some(Value::String("1:2".into())));
        let dxr_reply = write_response(&Value::Integer(4)).expect("plain");
        assert_eq!(parse_response(&dxr_reply), Some(Value::Integer(4)));
        let fault = dxr::FaultResponse {
            fault: dxr::Fault::new(1, "no".into()),
        }
        .to_xml()
        .expect("dxr writes faults");
        assert_eq!(parse_response(&fault), None);
    }
}
