//! A kvs cluster of Docker containers, for `kvs-bench check --backend docker`:
//! the images `docker/build.sh` makes, one container per role on a network
//! of its own, where a crash is a SIGKILL of the container, a freeze is
//! `docker pause` and a partition is `docker network disconnect`.
//!
//! Servers are found by the frontend through their network alias
//! (`server-{id}`, in the address template); the frontend keeps its data
//! folder on a volume, so a restarted frontend container recovers. The host
//! talks to the cluster only through ports published on a loopback address
//! of its own (`127.x.y.1`), never to a container's address. Every
//! container, the network and the volume carry the label `kvs.check=<tag>`
//! and are removed by id when the [`ContainerCluster`] is dropped.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use kvs_proto::ServerId;
use kvs_proto::addr::{FRONTEND_PORT, SERVER_PORT_BASE, port_for};
use kvs_proto::client::probe;
use kvs_proto::serve::LIVEZ_PATH;
use tokio::process::Command;

use crate::check::faults::FaultTarget;
use kvs_cluster::local::{ClusterError, unique_loopback};

/// The images' tag: the workspace version, as `docker/build.sh` tags them.
pub const IMAGE_TAG: &str = env!("CARGO_PKG_VERSION");
/// How long a container may take to answer `/livez` after it starts (a
/// restarted frontend recovers from the servers before it listens).
const START_TIMEOUT: Duration = Duration::from_secs(40);
/// How long one `docker` command may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);

/// One server container and whether it is running.
struct Server {
    container: String,
    running: bool,
}

/// A frontend and its servers as containers on a network of their own.
pub struct ContainerCluster {
    tag: String,
    host: Ipv4Addr,
    network: String,
    volume: String,
    frontend: Option<String>,
    frontend_running: bool,
    servers: BTreeMap<ServerId, Server>,
    next_server: ServerId,
}

impl ContainerCluster {
    /// Creates the network and the frontend's volume (nothing runs yet);
    /// fails if the images are not built.
    pub async fn create() -> Result<Self, ClusterError> {
        for role in ["frontend", "server"] {
            let image = image(role);
            if docker(&["image", "inspect", "--format", "{{.Id}}", &image])
                .await
                .is_err()
            {
                return Err(ClusterError::Docker(format!(
                    "image {image} is missing: build the images with docker/build.sh"
                )));
            }
        }
        let tag = format!("kvs-check-{}-{}", std::process::id(), unique_loopback().octets()[2]);
        let label = format!("kvs.check={tag}");
        let network = docker(&["network", "create", "--label", &label, &tag]).await?;
        let mut cluster = ContainerCluster {
            tag: tag.clone(),
            host: unique_loopback(),
            network,
            volume: String::new(),
            frontend: None,
            frontend_running: false,
            servers: BTreeMap::new(),
            next_server: 0,
        };
        cluster.volume = docker(&["volume", "create", "--label", &label, &format!("{tag}-data")]).await?;
        Ok(cluster)
    }

    fn frontend_base(&self) -> String {
        format!("http://{}:{FRONTEND_PORT}", self.host)
    }

    fn server_port(id: ServerId) -> Result<u16, ClusterError> {
        port_for(SERVER_PORT_BASE, id).ok_or(ClusterError::BadId(id))
    }

    fn server(&self, id: ServerId) -> Result<&Server, ClusterError> {
        self.servers
            .get(&id)
            .ok_or_else(|| ClusterError::NoSuchProcess(format!("server container {id}")))
    }

    /// `docker run -d` of `role`'s image, hardened as in production.
    async fn run(&self, role: &str, name: &str, extra: &[String]) -> Result<String, ClusterError> {
        let label = format!("kvs.check={}", self.tag);
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            name,
            "--label",
            &label,
            "--network",
            &self.network,
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "-e",
            "RUST_LOG=warn",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(extra.iter().cloned());
        args.push(image(role));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args).await
    }

    /// Waits until the process behind a published port answers `/livez`.
    async fn wait_live(&self, base: &str, what: &str, container: &str) -> Result<(), ClusterError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok((200, _)) = probe(base, LIVEZ_PATH, Duration::from_secs(1)).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let logs = docker(&["logs", "--tail", "20", container]).await.unwrap_or_default();
                return Err(ClusterError::Docker(format!(
                    "{what} did not answer on {base} within {START_TIMEOUT:?}; its log:\n{logs}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn start_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        let port = Self::server_port(id)?;
        let container = match self.servers.get(&id) {
            Some(server) => {
                docker(&["start", &server.container]).await?;
                server.container.clone()
            }
            None => {
                let extra = vec![
                    "--network-alias".to_owned(),
                    format!("server-{id}"),
                    "-p".to_owned(),
                    format!("{}:{port}:{port}", self.host),
                    "-e".to_owned(),
                    format!("SERVER_ID={id}"),
                ];
                self.run("server", &format!("{}-server-{id}", self.tag), &extra).await?
            }
        };
        self.servers.insert(
            id,
            Server {
                container: container.clone(),
                running: true,
            },
        );
        self.next_server = self.next_server.max(id + 1);
        let base = format!("http://{}:{port}", self.host);
        self.wait_live(&base, &format!("server {id}"), &container).await
    }
}

impl FaultTarget for ContainerCluster {
    fn frontend_url(&self) -> String {
        self.frontend_base()
    }

    fn running_servers(&self) -> Vec<ServerId> {
        self.servers
            .iter()
            .filter(|(_, server)| server.running)
            .map(|(id, _)| *id)
            .collect()
    }

    fn can_partition(&self) -> bool {
        true
    }

    async fn start_frontend(&mut self) -> Result<(), ClusterError> {
        let container = match &self.frontend {
            Some(container) => {
                docker(&["start", container]).await?;
                container.clone()
            }
            None => {
                let extra = vec![
                    "--network-alias".to_owned(),
                    "frontend".to_owned(),
                    "-p".to_owned(),
                    format!("{}:{FRONTEND_PORT}:{FRONTEND_PORT}", self.host),
                    "-v".to_owned(),
                    format!("{}:/data", self.volume),
                    "-e".to_owned(),
                    "KVS_DATA_DIR=/data".to_owned(),
                    "-e".to_owned(),
                    "KVS_SERVER_URL=http://server-{id}:{port}".to_owned(),
                ];
                let container = self.run("frontend", &format!("{}-frontend", self.tag), &extra).await?;
                self.frontend = Some(container.clone());
                container
            }
        };
        self.frontend_running = true;
        self.wait_live(&self.frontend_base(), "the frontend", &container)
            .await?;
        // A restarted frontend listens while it recovers.
        kvs_cluster::local::wait_recovered(&self.frontend()?, kvs_cluster::local::RECOVERY_WAIT).await
    }

    async fn kill_frontend(&mut self) -> Result<(), ClusterError> {
        let container = self
            .frontend
            .clone()
            .ok_or_else(|| ClusterError::NoSuchProcess("frontend container".into()))?;
        docker(&["kill", "--signal", "KILL", &container]).await?;
        self.frontend_running = false;
        Ok(())
    }

    async fn add_server(&mut self) -> Result<ServerId, ClusterError> {
        let id = self.next_server;
        self.start_server(id).await?;
        self.frontend()?.add_server(id).await?;
        Ok(id)
    }

    async fn restart_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        self.start_server(id).await
    }

    async fn kill_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        let container = self.server(id)?.container.clone();
        docker(&["kill", "--signal", "KILL", &container]).await?;
        if let Some(server) = self.servers.get_mut(&id) {
            server.running = false;
        }
        Ok(())
    }

    async fn wait_server_exit(&mut self, id: ServerId, limit: Duration) -> Result<bool, ClusterError> {
        let container = self.server(id)?.container.clone();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let running = docker(&["inspect", "--format", "{{.State.Running}}", &container]).await?;
            if running == "false" {
                // Shut down for good: never restarted, so forget it.
                self.servers.remove(&id);
                docker(&["rm", "-f", &container]).await?;
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn pause_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        docker(&["pause", &self.server(id)?.container]).await.map(|_| ())
    }

    async fn resume_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        docker(&["unpause", &self.server(id)?.container]).await.map(|_| ())
    }

    async fn partition_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        let container = self.server(id)?.container.clone();
        docker(&["network", "disconnect", &self.network, &container])
            .await
            .map(|_| ())
    }

    async fn heal_server(&mut self, id: ServerId) -> Result<(), ClusterError> {
        let container = self.server(id)?.container.clone();
        let alias = format!("server-{id}");
        docker(&["network", "connect", "--alias", &alias, &self.network, &container])
            .await
            .map(|_| ())
    }
}

impl Drop for ContainerCluster {
    /// Removes every container, then the network and the volume, by id.
    fn drop(&mut self) {
        let mut containers: Vec<String> = self.servers.values().map(|s| s.container.clone()).collect();
        containers.extend(self.frontend.iter().cloned());
        let mut removals: Vec<Vec<String>> = Vec::new();
        if !containers.is_empty() {
            let mut rm = vec!["rm".to_owned(), "-f".to_owned()];
            rm.extend(containers);
            removals.push(rm);
        }
        removals.push(vec!["network".into(), "rm".into(), self.network.clone()]);
        if !self.volume.is_empty() {
            removals.push(vec!["volume".into(), "rm".into(), "-f".into(), self.volume.clone()]);
        }
        for args in removals {
            let status = std::process::Command::new("docker")
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if !status.is_ok_and(|s| s.success()) {
                tracing::warn!(?args, "docker clean-up failed");
            }
        }
    }
}

/// The image of `role` (`frontend`, `server`, `client`) at [`IMAGE_TAG`].
pub fn image(role: &str) -> String {
    format!("kvs-{role}:{IMAGE_TAG}")
}

/// Runs `docker args…` (bounded); its trimmed standard output, or the error
/// with its standard error.
async fn docker(args: &[&str]) -> Result<String, ClusterError> {
    let run = Command::new("docker").args(args).kill_on_drop(true).output();
    let output = match tokio::time::timeout(DOCKER_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(ClusterError::Docker(format!("docker {}: {error}", args.join(" ")))),
        Err(_) => {
            return Err(ClusterError::Docker(format!(
                "docker {} took over {DOCKER_TIMEOUT:?}",
                args.join(" ")
            )));
        }
    };
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(ClusterError::Docker(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
