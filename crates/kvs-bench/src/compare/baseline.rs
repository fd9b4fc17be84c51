//! The Python seed design (`../shared/baseline/frontend.py` and `server.py`)
//! as local processes, started exactly as the course starts them:
//! `python3 frontend.py` (localhost:8001), `python3 server.py -i ID`
//! (localhost:9000+ID), then `addServer(ID)` through the frontend.
//!
//! It only listens on localhost, so only one can run at a time, on the
//! course's fixed ports: [`PythonBaseline::start`] refuses to start if any of
//! them is busy. Every process is killed when the value is stopped or dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kvs_proto::addr::{FRONTEND_PORT, SERVER_PORT_BASE, port_for};
use kvs_proto::{FrontendClient, RpcError, ServerId};
use thiserror::Error;
use tokio::process::Command;

use kvs_cluster::process::{Process, StartError, ensure_free};

/// Where the seed design listens.
pub const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The scripts that must be in the baseline folder.
const SCRIPTS: [&str; 2] = ["frontend.py", "server.py"];

/// Why the baseline could not run.
#[derive(Debug, Error)]
pub enum BaselineError {
    #[error(
        "Python baseline not found (looked in {0}); set KVS_BASELINE_DIR to the folder of frontend.py and server.py"
    )]
    NotFound(String),
    #[error(transparent)]
    Process(#[from] StartError),
    #[error("addServer({id}) on the baseline failed: {source}")]
    AddServer { id: ServerId, source: RpcError },
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("server id {0} has no port")]
    BadId(ServerId),
}

/// The baseline folder: `$KVS_BASELINE_DIR`, else `<repo>/../shared/baseline`
/// (the repository found from this crate's source, then from the working
/// directory).
pub fn locate_dir() -> Result<PathBuf, BaselineError> {
    let candidates: Vec<PathBuf> = match std::env::var_os("KVS_BASELINE_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            vec![repo.join("../shared/baseline"), PathBuf::from("../shared/baseline")]
        }
    };
    candidates
        .iter()
        .find(|dir| SCRIPTS.iter().all(|script| dir.join(script).is_file()))
        .map(|dir| dir.canonicalize().unwrap_or_else(|_| dir.clone()))
        .ok_or_else(|| {
            let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
            BaselineError::NotFound(looked.join(", "))
        })
}

/// A running seed design: its frontend and servers.
#[derive(Debug)]
pub struct PythonBaseline {
    frontend: Option<Process>,
    servers: Vec<Process>,
}

impl PythonBaseline {
    /// Starts the frontend and `servers` servers from `dir`, adding each
    /// server through the frontend.
    pub async fn start(dir: &Path, servers: usize) -> Result<Self, BaselineError> {
        let ids: Vec<ServerId> = (0..servers).filter_map(|i| ServerId::try_from(i).ok()).collect();
        ensure_free(addr(FRONTEND_PORT))?;
        for id in &ids {
            ensure_free(addr(server_port(*id)?))?;
        }
        let frontend = spawn(dir, "frontend.py", &[], "baseline frontend", FRONTEND_PORT).await?;
        let mut baseline = PythonBaseline {
            frontend: Some(frontend),
            servers: Vec::with_capacity(ids.len()),
        };
        let client = FrontendClient::new(&baseline.frontend_url(), Some(Duration::from_secs(30)))?;
        for id in ids {
            let what = format!("baseline server {id}");
            let server = spawn(dir, "server.py", &["-i", &id.to_string()], &what, server_port(id)?).await?;
            baseline.servers.push(server);
            client
                .add_server(id)
                .await
                .map_err(|source| BaselineError::AddServer { id, source })?;
        }
        Ok(baseline)
    }

    /// The frontend's URL (by address, so no IPv6-first lookup of `localhost`).
    pub fn frontend_url(&self) -> String {
        format!("http://{HOST}:{FRONTEND_PORT}")
    }

    /// The process ids of the frontend and servers.
    pub fn pids(&self) -> Vec<u32> {
        self.frontend
            .iter()
            .chain(&self.servers)
            .filter_map(Process::id)
            .collect()
    }

    /// Kills every process and reaps it.
    pub async fn stop(mut self) {
        for mut server in self.servers.drain(..) {
            let _ = server.kill().await;
        }
        if let Some(mut frontend) = self.frontend.take() {
            let _ = frontend.kill().await;
        }
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(HOST), port)
}

fn server_port(id: ServerId) -> Result<u16, BaselineError> {
    port_for(SERVER_PORT_BASE, id).ok_or(BaselineError::BadId(id))
}

async fn spawn(dir: &Path, script: &str, args: &[&str], what: &str, port: u16) -> Result<Process, BaselineError> {
    let mut command = Command::new("python3");
    command.current_dir(dir).arg(script).args(args);
    Ok(Process::spawn_listening(command, what, addr(port)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_is_found_beside_the_repository_or_named() {
        // In this workspace the shared folder sits beside the repository; a
        // checkout without it must fail with a message that names the variable.
        match locate_dir() {
            Ok(dir) => assert!(dir.join("frontend.py").is_file()),
            Err(error) => assert!(error.to_string().contains("KVS_BASELINE_DIR")),
        }
    }
}
