//! A lean XML-RPC client for the load generator: one TCP connection,
//! requests written as Python's `xmlrpc.client` writes them, replies read
//! by `Content-Length` and checked only for a fault.
//!
//! [`kvs_proto::FrontendClient`] (dxr over reqwest) is what kvs's own
//! processes use, and the generator's default; it costs this 2-core
//! machine's generator about 2.5× the CPU per call of this client, CPU that
//! the server under test then lacks. This client measures the servers with
//! less of the generator in the way. It reconnects when the peer closes
//! (Python's HTTP/1.0 servers close after every reply).

use std::time::Duration;

use kvs_proto::Rpc;
use kvs_proto::api::frontend::{Get, Put};
use kvs_proto::serve::RPC_PATHS;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Replies larger than this are refused (kvs's are tens of bytes).
const MAX_REPLY: usize = 1 << 20;

/// Why a call did not return a reply.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RawError {
    #[error("fault {0}")]
    Fault(i32),
    #[error("invalid URL {0:?} (expected http://host:port[/path])")]
    InvalidUrl(String),
    #[error("cannot reach {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("bad reply from {addr}: {reason}")]
    BadReply { addr: String, reason: String },
}

/// A client of one XML-RPC endpoint over one connection.
#[derive(Debug)]
pub struct RawClient {
    addr: String,
    path: String,
    timeout: Duration,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl RawClient {
    /// A client for `url` (`http://host:port[/path]`, path `/RPC2` if none);
    /// connects on the first call.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RawError> {
        let (addr, path) = split_url(url).ok_or_else(|| RawError::InvalidUrl(url.to_owned()))?;
        Ok(RawClient {
            addr,
            path,
            timeout,
            stream: None,
            buf: Vec::with_capacity(1024),
        })
    }

    /// `put(key, value)`.
    pub async fn put(&mut self, key: i32, value: i32) -> Result<(), RawError> {
        self.call(&call_body(Put::METHOD, &[key, value])).await
    }

    /// `get(key)`.
    pub async fn get(&mut self, key: i32) -> Result<(), RawError> {
        self.call(&call_body(Get::METHOD, &[key])).await
    }

    async fn call(&mut self, body: &str) -> Result<(), RawError> {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kvs-bench\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            self.path,
            self.addr,
            body.len()
        );
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.exchange(request.as_bytes())).await {
            Ok(result) => result,
            Err(_) => {
                self.stream = None;
                Err(RawError::Timeout(limit))
            }
        }
    }

    /// Sends on the open connection (retrying once on a fresh one if the
    /// peer had closed it) or on a new one, and reads the reply.
    async fn exchange(&mut self, request: &[u8]) -> Result<(), RawError> {
        let reused = self.stream.is_some();
        match self.send_and_read(request).await {
            Err(RawError::Unreachable { .. }) if reused => {
                self.stream = None;
                self.send_and_read(request).await
            }
            other => other,
        }
    }

    async fn send_and_read(&mut self, request: &[u8]) -> Result<(), RawError> {
        let addr = self.addr.clone();
        let unreachable = |e: std::io::Error| RawError::Unreachable {
            addr: addr.clone(),
            reason: e.to_string(),
        };
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr).await.map_err(unreachable)?;
            stream.set_nodelay(true).map_err(unreachable)?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(unreachable(std::io::Error::other("no connection")));
        };
        if let Err(error) = stream.write_all(request).await {
            self.stream = None;
            return Err(unreachable(error));
        }
        self.buf.clear();
        let reply = read_reply(stream, &mut self.buf, &self.addr).await;
        if !matches!(reply, Ok(Reply { keep_alive: true, .. })) {
            self.stream = None;
        }
        let reply = reply?;
        match reply.fault {
            Some(code) => Err(RawError::Fault(code)),
            None => Ok(()),
        }
    }
}

/// What a reply said, as far as the generator cares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    keep_alive: bool,
    fault: Option<i32>,
}

async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>, addr: &str) -> Result<Reply, RawError> {
    let bad = |reason: &str| RawError::BadReply {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    };
    loop {
        if let Some(head) = parse_head(buf).map_err(bad)?
            && buf.len() >= head.body_start + head.length
        {
            let body = std::str::from_utf8(&buf[head.body_start..head.body_start + head.length])
                .map_err(|_| bad("reply is not UTF-8"))?;
            if head.status != 200 {
                return Err(bad(&format!("HTTP status {}", head.status)));
            }
            return Ok(Reply {
                keep_alive: head.keep_alive,
                fault: fault_code(body),
            });
        }
        if buf.len() > MAX_REPLY {
            return Err(bad("reply too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.map_err(|e| RawError::Unreachable {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
        if n == 0 {
            return Err(RawError::Unreachable {
                addr: addr.to_owned(),
                reason: "connection closed".to_owned(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A parsed status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    status: u16,
    length: usize,
    body_start: usize,
    keep_alive: bool,
}

/// The head of a reply, once all of it has arrived (`Ok(None)` before).
fn parse_head(buf: &[u8]) -> Result<Option<Head>, &'static str> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or("empty head")?;
    let mut parts = status_line.split(' ');
    let version = parts.next().ok_or("no HTTP version")?;
    let status = parts.next().and_then(|s| s.parse().ok()).ok_or("no status code")?;
    let mut length = None;
    let mut keep_alive = version == "HTTP/1.1";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| "bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = value.eq_ignore_ascii_case("keep-alive");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked replies are not supported");
        }
    }
    Ok(Some(Head {
        status,
        length: length.ok_or("no Content-Length")?,
        body_start: end + 4,
        keep_alive,
    }))
}

/// The fault code of a `methodResponse`, if it is a fault.
fn fault_code(body: &str) -> Option<i32> {
    if !body.contains("<fault>") {
        return None;
    }
    let after = &body[body.find("faultCode")?..];
    let start = ["<int>", "<i4>"]
        .iter()
        .filter_map(|tag| after.find(tag).map(|at| at + tag.len()))
        .min()?;
    let digits = &after[start..];
    let end = digits.find('<')?;
    // A fault without a readable code is still a fault.
    Some(digits[..end].trim().parse().unwrap_or(i32::MIN))
}

/// The path Python's `ServerProxy` posts to when the URL names none.
const PYTHON_PATH: &str = RPC_PATHS[1];

/// A call body as Python's `xmlrpc.client` writes it.
fn call_body(method: &str, args: &[i32]) -> String {
    let params: String = args
        .iter()
        .map(|a| format!("<param>\n<value><int>{a}</int></value>\n</param>\n"))
        .collect();
    format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n{params}</params>\n</methodCall>\n"
    )
}

/// `http://host:port/path` as (`host:port`, `/path`); port 80 and path `/RPC2` by default.
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return None;
    }
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let path = if path.is_empty() || path == "/" {
        PYTHON_PATH
    } else {
        path
    };
    Some((addr, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://127.0.0.1:8001"),
            Some(("127.0.0.1:8001".into(), "/RPC2".into()))
        );
        assert_eq!(split_url("http://h:9/x"), Some(("h:9".into(), "/x".into())));
        assert_eq!(split_url("http://h"), Some(("h:80".into(), "/RPC2".into())));
        assert_eq!(split_url("https://h:1"), None);
        assert_eq!(split_url("http:///"), None);
    }

    #[test]
    fn heads_parse() {
        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: 5\r\n\r\nhello";
        let head = parse_head(reply).ok().flatten();
        assert_eq!(
            head,
            Some(Head {
                status: 200,
                length: 5,
                body_start: reply.len() - 5,
                keep_alive: true
            })
        );
        let python = b"HTTP/1.0 200 OK\r\nServer: BaseHTTP/0.6\r\nContent-length: 3\r\n\r\nabc";
        assert_eq!(parse_head(python).ok().flatten().map(|h| h.keep_alive), Some(false));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn faults_are_recognised() {
        let python = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>1</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>&lt;class 'KeyError'&gt;</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n";
        assert_eq!(fault_code(python), Some(1));
        let dxr = "<methodResponse><fault><value><struct><member><name>faultCode</name><value><i4>3</i4></value></member><member><name>faultString</name><value><string>x</string></value></member></struct></value></fault></methodResponse>";
        assert_eq!(fault_code(dxr), Some(3));
        let reply = kvs_proto::fast_path::write_response(&dxr::Value::String("0:0".into())).expect("plain");
        assert_eq!(fault_code(&reply), None);
    }

    #[test]
    fn bodies_look_like_pythons() {
        assert_eq!(
            call_body(Get::METHOD, &[7]),
            "<?xml version='1.0'?>\n<methodCall>\n<methodName>get</methodName>\n<params>\n<param>\n<value><int>7</int></value>\n</param>\n</params>\n</methodCall>\n"
        );
    }

    /// The bodies this client writes by hand are exactly what the servers'
    /// fast path reads, as the calls the method types declare (so a change
    /// of a method's name or parameters fails here, not in a benchmark).
    #[test]
    fn the_fast_path_accepts_every_body_written() {
        for (key, value) in [(0, 0), (7, -3), (i32::MAX, i32::MIN)] {
            let put = call_body(Put::METHOD, &[key, value]);
            let (method, params) = kvs_proto::fast_path::parse_call(&put).expect("plain put");
            assert_eq!(method, Put::METHOD);
            assert_eq!(
                Put::from_params(&params).expect("a put's parameters"),
                Put { key, value }
            );
            let get = call_body(Get::METHOD, &[key]);
            let (method, params) = kvs_proto::fast_path::parse_call(&get).expect("plain get");
            assert_eq!(method, Get::METHOD);
            assert_eq!(Get::from_params(&params).expect("a get's parameters"), Get { key });
        }
    }
}
