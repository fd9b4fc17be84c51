//! The plain XML-RPC forms that make up nearly all traffic, read and written
//! without a general XML parser.
//!
//! Python's `xmlrpc.client` and kvs's own clients send calls in one simple
//! shape: an optional `<?xml version="1.0" …?>` declaration, `<methodCall>`,
//! a `<methodName>`, and parameters that are `<int>`/`<i4>`, `<string>` or
//! `<base64>` scalars, with only XML whitespace between tags. [`parse_call`]
//! reads exactly that shape and gives up (returns `None`) on anything else —
//! comments, attributes, CDATA, other types, untyped values, unknown
//! entities, whitespace inside a number or a base64 run, a carriage return
//! in a string, any other declaration — so the caller falls back to dxr's
//! full parser, which then accepts or rejects the request as it always did.
//! Whatever the fast path accepts, dxr reads the same (see the tests, the
//! property test `tests/fast_path_props.rs` and the fuzz target
//! `fuzz/fuzz_targets/parse_call.rs`).
//! [`write_response`] likewise writes scalar replies byte for byte as dxr
//! would.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dxr::Value;

/// The method name and parameters of a call in the plain form, or `None`
/// if the body is anything else.
pub fn parse_call(body: &str) -> Option<(&str, Vec<Value>)> {
    let mut rest = skip_declaration(body.trim_start_matches(is_xml_space))?;
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
    rest.trim_start_matches(is_xml_space)
        .is_empty()
        .then_some((name, params))
}

/// The value of a successful reply in the plain form, or `None` if the body
/// is anything else (a fault among them).
pub fn parse_response(body: &str) -> Option<Value> {
    let mut rest = skip_declaration(body.trim_start_matches(is_xml_space))?;
    rest = expect(rest, "<methodResponse>")?;
    rest = expect(rest, "<params>")?;
    rest = expect(rest, "<param>")?;
    let (value, after) = parse_value(rest)?;
    rest = expect(after, "</param>")?;
    rest = expect(rest, "</params>")?;
    rest = expect(rest, "</methodResponse>")?;
    rest.trim_start_matches(is_xml_space).is_empty().then_some(value)
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

/// Skips an XML declaration if there is one, of the form Python and dxr
/// write: version 1.0, then optionally an encoding and `standalone`. Any
/// other declaration is `None`: dxr accepts some (`<?xmlfoo?>`) and refuses
/// others (`<?xml?>`, `<?xml version=1.0?>`) that a looser skip would take.
fn skip_declaration(body: &str) -> Option<&str> {
    let Some(mut rest) = body.strip_prefix("<?xml") else {
        return Some(body);
    };
    rest = pseudo_attribute(rest, "version", |version| version == "1.0")?;
    if let Some(after) = pseudo_attribute(rest, "encoding", is_encoding_name) {
        rest = after;
    }
    if let Some(after) = pseudo_attribute(rest, "standalone", |value| matches!(value, "yes" | "no")) {
        rest = after;
    }
    rest.trim_start_matches(is_xml_space).strip_prefix("?>")
}

/// Whitespace, `name`, `=` (whitespace around it allowed) and a quoted
/// value that `valid` accepts, and what follows; `None` otherwise.
fn pseudo_attribute<'a>(rest: &'a str, name: &str, valid: impl Fn(&str) -> bool) -> Option<&'a str> {
    let spaced = rest.trim_start_matches(is_xml_space);
    if spaced.len() == rest.len() {
        return None;
    }
    let rest = spaced
        .strip_prefix(name)?
        .trim_start_matches(is_xml_space)
        .strip_prefix('=')?
        .trim_start_matches(is_xml_space);
    let quote = rest.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    let rest = &rest[1..];
    let end = rest.find(quote)?;
    valid(&rest[..end]).then_some(&rest[end + 1..])
}

/// An XML encoding name: a letter, then letters, digits, `.`, `_` or `-`.
fn is_encoding_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_alphabetic())
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
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

/// Text with the five predefined entities and `&#13;` resolved; `None` for
/// any other entity or character reference, and for a raw carriage return
/// (XML reads `\r\n` and a lone `\r` as `\n`, and so does dxr).
fn unescape(text: &str) -> Option<String> {
    if text.contains('\r') {
        return None;
    }
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
            // As dxr (and [`escape_into`]) writes a carriage return.
            "#13" => '\r',
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
            // Written raw, XML would read it as a line feed.
            '\r' => xml.push_str("&#13;"),
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

    /// Found by fuzzing (`fuzz/`): inputs the fast path once accepted that
    /// dxr refuses or reads differently. Each now falls back to dxr.
    #[test]
    fn fuzz_finds_fall_back_to_dxr() {
        const CALL: &str = "<methodCall><methodName>get</methodName><params><param><value><int>4</int></value></param></params></methodCall>";
        const REPLY: &str =
            "<methodResponse><params><param><value><int>4</int></value></param></params></methodResponse>";
        let declarations = [
            "<?xml ion='1.0'?>",
            "<?xml?>",
            "<?xml version=1.0?>",
            "<?xml version=\"2.0\"?>",
            "<?xml version='1.0\"?>",
            "<?xml encoding=\"x\" version=\"1.0\"?>",
            "<?xmlfoo?>",
            "<?xml version='1.0' foo='bar'?>",
            "\u{a0}",
            "\u{2003}<?xml version='1.0'?>",
        ];
        for declaration in declarations {
            let call = format!("{declaration}{CALL}");
            assert_eq!(parse_call(&call), None, "{call:?}");
            let reply = format!("{declaration}{REPLY}");
            assert_eq!(parse_response(&reply), None, "{reply:?}");
        }
        // XML reads a carriage return as a line feed; dxr does too.
        for text in ["\r\n", "a\rb"] {
            let call = format!(
                "<methodCall><methodName>m</methodName><params><param><value><string>{text}</string></value></param></params></methodCall>"
            );
            assert_eq!(parse_call(&call), None, "{call:?}");
            assert_ne!(
                MethodCall::from_xml(&call).map(|call| call.params),
                Ok(vec![Value::String(text.into())])
            );
        }
    }

    /// Found by the property test (`tests/fast_path_props.rs`): dxr writes a
    /// carriage return as `&#13;` (raw, XML would read it as a line feed).
    #[test]
    fn carriage_returns_are_written_and_read_as_dxr_does() {
        let value = Value::String("a\r\nb\rc".into());
        let expected = MethodResponse { value: value.clone() }
            .to_xml()
            .expect("dxr writes replies");
        let written = write_response(&value).expect("plain");
        assert_eq!(written, expected);
        assert_eq!(parse_response(&written), Some(value.clone()));
        let call = MethodCall {
            name: "m".into(),
            params: vec![value.clone()],
        };
        let expected = dxr_client::utils::request_to_body(&call).expect("dxr writes calls");
        let written = write_call("m", std::slice::from_ref(&value)).expect("plain");
        assert_eq!(written, expected);
        assert!(agrees_with_dxr(&written));
    }

    #[test]
    fn the_declarations_clients_write_take_the_plain_path() {
        const CALL: &str = "<methodCall><methodName>get</methodName><params><param><value><int>4</int></value></param></params></methodCall>";
        let declarations = [
            "<?xml version='1.0'?>\n",
            "<?xml version=\"1.0\"?>",
            " \r\n\t<?xml version = '1.0' ?>",
            "<?xml version='1.0' encoding='UTF-8'?>",
            "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"no\"?>",
            "<?xml version='1.0' standalone='yes'?>",
        ];
        for declaration in declarations {
            assert!(agrees_with_dxr(&format!("{declaration}{CALL}")), "{declaration:?}");
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
