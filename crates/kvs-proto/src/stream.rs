//! The replication stream: `applyBatch` without HTTP or XML, for the
//! frontend's busiest call.
//!
//! Every write the frontend acknowledges is first shipped to every server
//! with `applyBatch`. Over XML-RPC each such call is an HTTP request through
//! a pooled client on one side and a router on the other; on a small
//! machine running many servers their per-call cost (system calls, task
//! hand-offs, parsing) bounds the cluster's put rate. The stream carries the
//! same call on a long-lived TCP connection, framed in binary, and the
//! server runs the very same `applyBatch` handler on it (fence check, whole
//! batch checked before any of it is applied, logged before it is
//! acknowledged). All other calls, and the course's methods, stay XML-RPC.
//!
//! It shares the server's port: a connection whose first byte is
//! [`PREAMBLE`] (0x00, which no HTTP request starts with) speaks the stream;
//! any other goes to the HTTP router. Little-endian throughout:
//!
//! - **hello** (caller, once): `PREAMBLE`, [`VERSION`], then the caller's
//!   fence and its `Authorization` value (empty without a secret), each as a
//!   `u16` length and UTF-8 bytes. The server answers with a reply: `ok 0`,
//!   or a fault (wrong secret: [`crate::fault::UNAUTHORIZED`]) and it closes.
//! - **call**: a `u32` length (at most [`MAX_BODY_BYTES`]) and an
//!   `applyBatch` payload ([`crate::batch::encode_batch`]).
//! - **reply**: `0u8` and the `i32` entry count, or `1u8`, the `i32` fault
//!   code, and the message as a `u16` length and UTF-8 bytes.
//!
//! One call is in flight per connection; a caller with several at once
//! opens several connections ([`BatchStream`] keeps the idle ones). A server
//! closes a connection that sends no hello within its header timeout, that
//! idles longer, or that is slower than its body timeout to send a call.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dxr::Fault;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::api::server::ApplyBatch;
use crate::auth::ClusterSecret;
use crate::batch::{self, Entry};
use crate::client::RpcError;
use crate::metrics::metrics;
use crate::rpc::Rpc;
use crate::serve::{MAX_BODY_BYTES, MAX_FAULT_CHARS};

/// The first byte of a stream connection.
pub const PREAMBLE: u8 = 0;
/// The stream's version, sent in the hello.
pub const VERSION: u8 = 1;
/// An idle connection older than this is not reused (well under a server's
/// default idle limit of 10 s, so it is not reused just as it is closed).
const REUSE_WITHIN: Duration = Duration::from_secs(5);
/// Longest fence or credential a hello may carry.
const MAX_HELLO_FIELD: usize = 1024;
/// Bytes a server reads from a stream at once.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What a server does with the stream's calls: its `applyBatch` handler.
pub trait BatchSink: Send + Sync + 'static {
    /// Handles `applyBatch(fence, payload)`, as the XML-RPC method would.
    fn apply(&self, fence: &str, payload: Vec<u8>) -> impl Future<Output = Result<i32, Fault>> + Send;
}

/// How long a server waits on a stream's caller.
#[derive(Debug, Clone, Copy)]
pub struct StreamBounds {
    /// For the hello, and between calls.
    pub idle: Duration,
    /// For the rest of a call once its length has arrived.
    pub call: Duration,
}

/// Serves one stream connection (its first byte, [`PREAMBLE`], not yet
/// read) until the caller closes it or breaks a bound. Calls need `secret`
/// if one is set.
pub async fn serve<S, Io>(io: Io, sink: Arc<S>, secret: Option<Arc<ClusterSecret>>, bounds: StreamBounds)
where
    S: BatchSink,
    Io: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = BufReader::with_capacity(READ_BUFFER_BYTES, io);
    if let Err(error) = serve_calls(&mut io, sink.as_ref(), secret.as_deref(), bounds).await {
        tracing::debug!(%error, "replication stream ended");
    }
}

async fn serve_calls<S: BatchSink>(
    tcp: &mut BufReader<impl AsyncRead + AsyncWrite + Unpin>,
    sink: &S,
    secret: Option<&ClusterSecret>,
    bounds: StreamBounds,
) -> io::Result<()> {
    let hello = match tokio::time::timeout(bounds.idle, read_hello(tcp)).await {
        Ok(hello) => hello?,
        Err(_) => {
            metrics().refused("header_timeout");
            return Ok(());
        }
    };
    if let Err(fault) = hello.check(secret) {
        tcp.get_mut().write_all(&encode_reply(&Err(fault))).await?;
        return Ok(());
    }
    tcp.get_mut().write_all(&encode_reply(&Ok(0))).await?;
    loop {
        let mut length = [0u8; 4];
        match tokio::time::timeout(bounds.idle, tcp.read_exact(&mut length)).await {
            Err(_) => return Ok(()),
            Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(read) => read?,
        };
        let length = u32::from_le_bytes(length) as usize;
        if length > MAX_BODY_BYTES {
            metrics().refused("body_too_large");
            let fault = invalid(format!("a call of {length} bytes is over {MAX_BODY_BYTES}"));
            tcp.get_mut().write_all(&encode_reply(&Err(fault))).await?;
            return Ok(());
        }
        // Sized for an ordinary call; a larger one grows as its bytes
        // arrive, so a claimed length alone reserves nothing.
        let mut payload = Vec::with_capacity(length.min(READ_BUFFER_BYTES));
        let mut body = (&mut *tcp).take(length as u64);
        match tokio::time::timeout(bounds.call, body.read_to_end(&mut payload)).await {
            Err(_) => {
                metrics().refused("body_timeout");
                return Ok(());
            }
            Ok(read) => read?,
        };
        if payload.len() < length {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let started = Instant::now();
        let reply = sink.apply(&hello.fence, payload).await;
        metrics().request(ApplyBatch::METHOD, reply.is_ok(), started.elapsed());
        tcp.get_mut().write_all(&encode_reply(&reply)).await?;
    }
}

/// A caller's hello, as a server read it.
struct Hello {
    version: u8,
    fence: String,
    credentials: String,
}

impl Hello {
    /// Whether the server takes calls from this caller.
    fn check(&self, secret: Option<&ClusterSecret>) -> Result<(), Fault> {
        if self.version != VERSION {
            return Err(invalid(format!(
                "replication stream version {} is not {VERSION}",
                self.version
            )));
        }
        if let Some(secret) = secret
            && !secret.admits_credentials(&self.credentials)
        {
            tracing::warn!("refused a replication stream that did not show the cluster secret");
            metrics().refused("unauthorized");
            return Err(Fault::new(
                crate::fault::UNAUTHORIZED,
                format!(
                    "{} changes data: show the cluster secret in the stream's hello",
                    ApplyBatch::METHOD
                ),
            ));
        }
        Ok(())
    }
}

async fn read_hello(tcp: &mut (impl AsyncRead + Unpin)) -> io::Result<Hello> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await?;
    if head[0] != PREAMBLE {
        return Err(malformed("a stream starts with its preamble"));
    }
    let fence = read_text(tcp).await?;
    let credentials = read_text(tcp).await?;
    Ok(Hello {
        version: head[1],
        fence,
        credentials,
    })
}

/// A `u16` length and that many bytes of UTF-8.
async fn read_text(tcp: &mut (impl AsyncRead + Unpin)) -> io::Result<String> {
    let length = usize::from(tcp.read_u16_le().await?);
    if length > MAX_HELLO_FIELD {
        return Err(malformed("a hello field is too long"));
    }
    let mut bytes = vec![0u8; length];
    tcp.read_exact(&mut bytes).await?;
    String::from_utf8(bytes).map_err(|_| malformed("a hello field is not UTF-8"))
}

fn put_text(text: &str, bytes: &mut Vec<u8>) {
    let text = truncate(text, usize::from(u16::MAX));
    bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
}

/// `text` cut to at most `limit` bytes, on a character boundary.
fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn hello_bytes(fence: &str, credentials: Option<&str>) -> Vec<u8> {
    let mut bytes = vec![PREAMBLE, VERSION];
    put_text(fence, &mut bytes);
    put_text(credentials.unwrap_or(""), &mut bytes);
    bytes
}

fn call_bytes(stable: u64, entries: &[Entry]) -> Vec<u8> {
    let length = batch::batch_len(entries.len());
    let mut bytes = Vec::with_capacity(4 + length);
    bytes.extend_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_le_bytes());
    batch::append_batch(stable, entries, &mut bytes);
    bytes
}

fn encode_reply(reply: &Result<i32, Fault>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8);
    match reply {
        Ok(count) => {
            bytes.push(0);
            bytes.extend_from_slice(&count.to_le_bytes());
        }
        Err(fault) => {
            bytes.push(1);
            bytes.extend_from_slice(&fault.code().to_le_bytes());
            put_text(truncate(fault.string(), MAX_FAULT_CHARS * 4), &mut bytes);
        }
    }
    bytes
}

async fn read_reply(tcp: &mut (impl AsyncRead + Unpin)) -> io::Result<Result<i32, Fault>> {
    let mut head = [0u8; 5];
    tcp.read_exact(&mut head).await?;
    let [tag, number @ ..] = head;
    let number = i32::from_le_bytes(number);
    match tag {
        0 => Ok(Ok(number)),
        1 => {
            let message = read_text(tcp).await?;
            Ok(Err(Fault::new(number, message)))
        }
        _ => Err(malformed("a reply is neither a count nor a fault")),
    }
}

fn invalid(message: String) -> Fault {
    Fault::new(crate::fault::INVALID_REQUEST, message)
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// A server's replication stream, as the frontend calls it: `applyBatch`
/// on one of its idle connections, or on a new one. A connection speaks
/// for the fence and credentials of the call that opened it: callers keep
/// them fixed (see [`BatchStream::unconnected`]).
#[derive(Debug)]
pub struct BatchStream {
    url: String,
    /// The server's host name or IP address (an IPv6 one without brackets).
    host: String,
    port: u16,
    timeout: Option<Duration>,
    /// Connections with no call on them, and since when.
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

impl BatchStream {
    /// The stream of the server whose XML-RPC endpoint is `url`; each call
    /// gives up after `timeout` if one is set.
    pub fn new(url: &str, timeout: Option<Duration>) -> Result<Self, RpcError> {
        let invalid = |reason: &str| RpcError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        let host = parsed.host_str().ok_or_else(|| invalid("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = parsed.port_or_known_default().ok_or_else(|| invalid("no port"))?;
        Ok(BatchStream {
            url: url.to_owned(),
            host,
            port,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The same server's stream without this one's connections, which
    /// said who the caller is in their hello: for a caller that changed
    /// its fence or credentials.
    pub fn unconnected(self) -> Self {
        BatchStream {
            idle: Mutex::new(Vec::new()),
            ..self
        }
    }

    /// `applyBatch(fence, stable ‖ entries)`, showing `credentials` (an
    /// `Authorization` value) if the connection is new.
    pub async fn apply_batch(
        &self,
        fence: &str,
        credentials: Option<&str>,
        stable: u64,
        entries: &[Entry],
    ) -> Result<i32, RpcError> {
        let call = call_bytes(stable, entries);
        let exchange = async {
            if let Some(mut tcp) = self.take_idle() {
                // The server may have closed it meanwhile; the call is
                // idempotent (versions), so it is safe to make again.
                if let Ok(reply) = exchange(&mut tcp, &call).await {
                    self.give_back(tcp);
                    return reply.map_err(RpcError::Fault);
                }
            }
            let mut tcp = self.connect(fence, credentials).await?;
            let reply = exchange(&mut tcp, &call).await.map_err(|e| self.unreachable(&e))?;
            self.give_back(tcp);
            reply.map_err(RpcError::Fault)
        };
        match self.timeout {
            None => exchange.await,
            Some(timeout) => tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or_else(|_| Err(self.unreachable(&io::ErrorKind::TimedOut.into()))),
        }
    }

    async fn connect(&self, fence: &str, credentials: Option<&str>) -> Result<TcpStream, RpcError> {
        let unreachable = |error: io::Error| self.unreachable(&error);
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        tcp.write_all(&hello_bytes(fence, credentials))
            .await
            .map_err(unreachable)?;
        read_reply(&mut tcp).await.map_err(unreachable)??;
        Ok(tcp)
    }

    fn take_idle(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock();
        idle.retain(|(_, since)| since.elapsed() < REUSE_WITHIN);
        idle.pop().map(|(tcp, _)| tcp)
    }

    fn give_back(&self, tcp: TcpStream) {
        self.idle.lock().push((tcp, Instant::now()));
    }

    fn unreachable(&self, error: &io::Error) -> RpcError {
        let reason = match error.kind() {
            io::ErrorKind::TimedOut => "timed out".to_owned(),
            io::ErrorKind::ConnectionRefused => "connection refused or failed".to_owned(),
            io::ErrorKind::UnexpectedEof => "the server closed the replication stream".to_owned(),
            _ => error.to_string(),
        };
        RpcError::Unreachable {
            url: self.url.clone(),
            reason,
        }
    }
}

/// Sends one call and reads its reply.
async fn exchange(tcp: &mut TcpStream, call: &[u8]) -> io::Result<Result<i32, Fault>> {
    tcp.write_all(call).await?;
    read_reply(tcp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_read_back_as_written() {
        for reply in [Ok(7), Ok(-1), Err(Fault::new(12, "superseded: ünïcode".into()))] {
            let bytes = encode_reply(&reply);
            let read = read_reply(&mut bytes.as_slice()).await.expect("a whole reply");
            assert_eq!(read, reply);
        }
    }

    #[tokio::test]
    async fn a_hello_reads_back_and_is_checked() {
        let secret = ClusterSecret::new("s3cret-value").expect("a valid secret");
        let bytes = hello_bytes("7:3", Some(secret.header_value()));
        let hello = read_hello(&mut bytes.as_slice()).await.expect("a whole hello");
        assert_eq!(hello.fence, "7:3");
        assert!(hello.check(Some(&secret)).is_ok());
        let bytes = hello_bytes("7:3", None);
        let hello = read_hello(&mut bytes.as_slice()).await.expect("a whole hello");
        let refused = hello.check(Some(&secret)).expect_err("no secret shown");
        assert_eq!(refused.code(), crate::fault::UNAUTHORIZED);
        assert!(hello.check(None).is_ok());
    }

    #[tokio::test]
    async fn malformed_hellos_and_replies_are_errors() {
        let mut too_long = vec![PREAMBLE, VERSION];
        too_long.extend_from_slice(&u16::MAX.to_le_bytes());
        assert!(read_hello(&mut too_long.as_slice()).await.is_err());
        assert!(read_hello(&mut [b'P', b'O'].as_slice()).await.is_err());
        let mut cut = hello_bytes("1:1", None);
        cut.pop();
        assert!(read_hello(&mut cut.as_slice()).await.is_err());
        assert!(read_reply(&mut [2u8, 0, 0, 0, 0].as_slice()).await.is_err());
        assert!(read_reply(&mut [0u8, 0].as_slice()).await.is_err());
    }

    #[test]
    fn a_call_is_its_length_and_the_batch() {
        let entries = [Entry {
            key: 1,
            value: 2,
            version: 3,
        }];
        let bytes = call_bytes(9, &entries);
        let (length, payload) = bytes.split_at(4);
        assert_eq!(
            u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize,
            payload.len()
        );
        let decoded = batch::decode_batch(payload).expect("a batch");
        assert_eq!((decoded.stable, decoded.entries.as_slice()), (9, &entries[..]));
    }

    /// A sink that records the calls it is given and answers each with
    /// its entry count, or refuses a fence other than `7:3`.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, Vec<u8>)>>);

    impl BatchSink for Recorder {
        async fn apply(&self, fence: &str, payload: Vec<u8>) -> Result<i32, Fault> {
            let decoded = batch::decode_batch(&payload).map_err(|e| invalid(e.to_string()))?;
            if fence != "7:3" {
                return Err(Fault::new(crate::fault::SUPERSEDED, "not the followed fence".into()));
            }
            self.0.lock().push((fence.to_owned(), payload));
            Ok(decoded.entries.len() as i32)
        }
    }

    const BOUNDS: StreamBounds = StreamBounds {
        idle: Duration::from_secs(10),
        call: Duration::from_secs(10),
    };

    /// A server session over an in-memory pipe; the caller's end.
    fn session(secret: Option<&str>) -> (tokio::io::DuplexStream, Arc<Recorder>, tokio::task::JoinHandle<()>) {
        let (caller, server) = tokio::io::duplex(1 << 16);
        let sink = Arc::new(Recorder::default());
        let secret = secret.map(|secret| Arc::new(ClusterSecret::new(secret).expect("a valid secret")));
        let served = tokio::spawn(serve(server, Arc::clone(&sink), secret, BOUNDS));
        (caller, sink, served)
    }

    fn entries(count: i32) -> Vec<Entry> {
        (0..count)
            .map(|key| Entry {
                key,
                value: key * 2,
                version: key as u64 + 1,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_session_applies_each_call_and_replies_in_order() {
        let (mut caller, sink, served) = session(None);
        caller.write_all(&hello_bytes("7:3", None)).await.expect("sent");
        assert_eq!(read_reply(&mut caller).await.expect("a reply"), Ok(0));
        for count in [3, 0, 1000] {
            caller.write_all(&call_bytes(5, &entries(count))).await.expect("sent");
            assert_eq!(read_reply(&mut caller).await.expect("a reply"), Ok(count));
        }
        // A call the sink refuses leaves the session usable.
        caller.write_all(&5u32.to_le_bytes()).await.expect("sent");
        caller.write_all(b"short").await.expect("sent");
        let refused = read_reply(&mut caller).await.expect("a reply").expect_err("a fault");
        assert_eq!(refused.code(), crate::fault::INVALID_REQUEST);
        caller.write_all(&call_bytes(5, &entries(2))).await.expect("sent");
        assert_eq!(read_reply(&mut caller).await.expect("a reply"), Ok(2));
        drop(caller);
        served.await.expect("the session ends when the caller closes");
        assert_eq!(sink.0.lock().len(), 4);
    }

    #[tokio::test]
    async fn without_the_secret_nothing_is_applied() {
        let (mut caller, sink, served) = session(Some("the-secret"));
        caller
            .write_all(&hello_bytes("7:3", Some("Bearer wrong")))
            .await
            .expect("sent");
        let refused = read_reply(&mut caller).await.expect("a reply").expect_err("a fault");
        assert_eq!(refused.code(), crate::fault::UNAUTHORIZED);
        // The server closed: a call sent anyway is never read.
        let _ = caller.write_all(&call_bytes(5, &entries(3))).await;
        served.await.expect("the session ended");
        assert!(sink.0.lock().is_empty());

        let (mut caller, sink, _served) = session(Some("the-secret"));
        caller
            .write_all(&hello_bytes("7:3", Some("Bearer the-secret")))
            .await
            .expect("sent");
        assert_eq!(read_reply(&mut caller).await.expect("a reply"), Ok(0));
        caller.write_all(&call_bytes(5, &entries(3))).await.expect("sent");
        assert_eq!(read_reply(&mut caller).await.expect("a reply"), Ok(3));
        assert_eq!(sink.0.lock().len(), 1);
    }

    #[tokio::test]
    async fn an_oversized_call_is_refused_and_the_session_closed() {
        let (mut caller, sink, served) = session(None);
        caller.write_all(&hello_bytes("7:3", None)).await.expect("sent");
        assert_eq!(read_reply(&mut caller).await.expect("a reply"), Ok(0));
        let over = u32::try_from(MAX_BODY_BYTES + 1).expect("fits");
        caller.write_all(&over.to_le_bytes()).await.expect("sent");
        let refused = read_reply(&mut caller).await.expect("a reply").expect_err("a fault");
        assert_eq!(refused.code(), crate::fault::INVALID_REQUEST);
        served.await.expect("the session ended");
        assert!(sink.0.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_or_slow_caller_is_cut_off() {
        // No hello.
        let (_caller, _sink, served) = session(None);
        tokio::time::timeout(BOUNDS.idle * 2, served)
            .await
            .expect("cut off after the idle bound")
            .expect("ended");
        // A hello, then half a call.
        let (mut caller, sink, served) = session(None);
        caller.write_all(&hello_bytes("7:3", None)).await.expect("sent");
        assert_eq!(read_reply(&mut caller).await.expect("a reply"), Ok(0));
        let call = call_bytes(5, &entries(4));
        caller.write_all(&call[..call.len() / 2]).await.expect("sent");
        tokio::time::timeout(BOUNDS.call * 2, served)
            .await
            .expect("cut off after the call bound")
            .expect("ended");
        assert!(sink.0.lock().is_empty());
    }

    #[tokio::test]
    async fn a_call_under_another_fence_is_refused() {
        let (mut caller, sink, _served) = session(None);
        caller.write_all(&hello_bytes("7:2", None)).await.expect("sent");
        assert_eq!(read_reply(&mut caller).await.expect("a reply"), Ok(0));
        caller.write_all(&call_bytes(5, &entries(1))).await.expect("sent");
        let refused = read_reply(&mut caller).await.expect("a reply").expect_err("a fault");
        assert_eq!(refused.code(), crate::fault::SUPERSEDED);
        assert!(sink.0.lock().is_empty());
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
