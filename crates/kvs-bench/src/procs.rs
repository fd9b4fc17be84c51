//! Child processes of a benchmark: started with `kill_on_drop`, waited for
//! until they accept connections (bounded), and killed and reaped at the end.

use std::net::{SocketAddr, TcpListener};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a process may take to start accepting connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a killed process may take to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a child process could not be started.
#[derive(Debug, Error)]
pub enum ProcError {
    #[error("cannot start {what}: {source}")]
    Spawn { what: String, source: std::io::Error },
    #[error("{what} did not accept connections on {addr} within {START_TIMEOUT:?}")]
    NotReady { what: String, addr: SocketAddr },
    #[error("{what} exited during start-up with {status}")]
    ExitedEarly { what: String, status: ExitStatus },
    #[error("{addr} is busy (is another frontend or baseline running?): {source}")]
    PortBusy { addr: SocketAddr, source: std::io::Error },
}

/// A child process with a name for messages.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Spawns `command` (stdin closed, output discarded unless `KVS_TEST_LOGS`
    /// is set) and waits until it accepts connections on `addr`.
    pub async fn spawn_listening(command: Command, what: &str, addr: SocketAddr) -> Result<Proc, ProcError> {
        let child = spawn_child(command, what, addr).await?;
        Ok(Proc {
            name: what.to_owned(),
            child,
        })
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, then reap (bounded).
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(REAP_TIMEOUT, self.child.wait()).await;
    }
}

/// Spawns `command` (stdin closed, output discarded unless `KVS_TEST_LOGS`
/// is set, killed when dropped) and waits until it accepts connections on `addr`.
pub(crate) async fn spawn_child(mut command: Command, what: &str, addr: SocketAddr) -> Result<Child, ProcError> {
    let logs = std::env::var_os("KVS_TEST_LOGS").is_some();
    let output = || if logs { Stdio::inherit() } else { Stdio::null() };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ProcError::Spawn {
            what: what.to_owned(),
            source,
        })?;
    wait_until_listening(&mut child, what, addr).await?;
    Ok(child)
}

/// Fails if something already listens on `addr` (or it cannot be bound).
pub fn ensure_free(addr: SocketAddr) -> Result<(), ProcError> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| ProcError::PortBusy { addr, source })
}

/// Waits (at most [`START_TIMEOUT`]) until `child` accepts connections on `addr`.
async fn wait_until_listening(child: &mut Child, what: &str, addr: SocketAddr) -> Result<(), ProcError> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ProcError::ExitedEarly {
                what: what.to_owned(),
                status,
            });
        }
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProcError::NotReady {
                what: what.to_owned(),
                addr,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
