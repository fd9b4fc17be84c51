//! One child process of a cluster or a benchmark: started with
//! `kill_on_drop`, waited for until it accepts connections (bounded), sent
//! signals by name, and killed and reaped (bounded) at the end.

use std::io;
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
pub enum StartError {
    /// The program could not be run at all.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The process's name in messages.
        what: String,
        /// What spawning it gave.
        source: io::Error,
    },
    /// It ran but did not listen in time.
    #[error("{what} did not accept connections on {addr} within {START_TIMEOUT:?}")]
    NotReady {
        /// The process's name in messages.
        what: String,
        /// Where it should have listened.
        addr: SocketAddr,
    },
    /// It exited before it listened.
    #[error("{what} exited during start-up with {status}")]
    ExitedEarly {
        /// The process's name in messages.
        what: String,
        /// How it exited.
        status: ExitStatus,
    },
    /// Something else already listens where it should.
    #[error("{addr} is busy (is another frontend or baseline running?): {source}")]
    PortBusy {
        /// The address asked for.
        addr: SocketAddr,
        /// What binding it gave.
        source: io::Error,
    },
}

/// A running child process with a name for messages.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Spawns `command` (stdin closed, output discarded unless `KVS_TEST_LOGS`
    /// is set, killed when dropped) and waits until it accepts connections
    /// on `addr`.
    pub async fn spawn_listening(mut command: Command, what: &str, addr: SocketAddr) -> Result<Process, StartError> {
        let logs = std::env::var_os("KVS_TEST_LOGS").is_some();
        let output = || if logs { Stdio::inherit() } else { Stdio::null() };
        let child = command
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| StartError::Spawn {
                what: what.to_owned(),
                source,
            })?;
        let mut process = Process {
            name: what.to_owned(),
            child,
        };
        process.wait_until_listening(addr).await?;
        Ok(process)
    }

    /// The name given at start (`"server 2"`, `"frontend"`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, then reap (at most a few seconds).
    pub async fn kill(&mut self) -> io::Result<()> {
        self.child.start_kill()?;
        let _ = tokio::time::timeout(REAP_TIMEOUT, self.child.wait()).await;
        Ok(())
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, …) with the system's
    /// `kill`, so no libc binding is needed.
    pub fn signal(&self, signal: &str) -> io::Result<()> {
        let pid = self
            .id()
            .ok_or_else(|| io::Error::other(format!("{} has exited", self.name)))?;
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -{signal} {pid}: {status}")))
        }
    }

    /// Waits at most `limit` for the process to exit; its status if it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait()).await.ok()?.ok()
    }

    /// Waits (at most [`START_TIMEOUT`]) until the process accepts
    /// connections on `addr`.
    async fn wait_until_listening(&mut self, addr: SocketAddr) -> Result<(), StartError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StartError::ExitedEarly {
                    what: self.name.clone(),
                    status,
                });
            }
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StartError::NotReady {
                    what: self.name.clone(),
                    addr,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Fails if something already listens on `addr` (or it cannot be bound).
pub fn ensure_free(addr: SocketAddr) -> Result<(), StartError> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| StartError::PortBusy { addr, source })
}
