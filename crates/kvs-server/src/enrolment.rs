//! Self-enrolment: how a server started with `--join URL` (env `KVS_JOIN`)
//! becomes a member without a human, and leaves again.
//!
//! This is what lets a Kubernetes StatefulSet scale the cluster: a new pod
//! asks the frontend to admit it (`addServer(own id)`) as soon as it
//! listens, retrying until the frontend answers; on SIGTERM (a scale-down, a
//! drain, a rolling update) it asks the frontend to remove it
//! (`shutdownServer(own id)`) before it exits, so the commit point never
//! waits on a server that is going away. A crash (SIGKILL, a lost node) is
//! not a leave: the frontend's heartbeat finds it, and readmits it by
//! catch-up once it answers again.
//!
//! Readiness follows from it: a joining server is ready once the frontend
//! lists it as active, i.e. once it holds every acknowledged write.

use std::time::Duration;

use kvs_proto::serve::Readiness;
use kvs_proto::{ClusterSecret, FrontendClient, RpcError, ServerId, fault, reply};

/// How long one `addServer` call may take: it returns once the catch-up is
/// done, which for a large state takes a while.
const JOIN_CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long leaving, or one readiness question, may take.
const SHORT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest pause between two join attempts.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A server's own requests to the frontend at `--join`.
pub struct Enrolment {
    id: ServerId,
    url: String,
    join: FrontendClient,
    short: FrontendClient,
}

impl Enrolment {
    /// Enrolment of server `id` with the frontend at `url`, showing
    /// `secret` (`addServer` and `shutdownServer` are guarded).
    pub fn new(id: ServerId, url: &str, secret: Option<&ClusterSecret>) -> Result<Self, RpcError> {
        Ok(Enrolment {
            id,
            url: url.to_owned(),
            join: FrontendClient::new(url, Some(JOIN_CALL_TIMEOUT))?.with_secret(secret),
            short: FrontendClient::new(url, Some(SHORT_CALL_TIMEOUT))?.with_secret(secret),
        })
    }

    /// Asks the frontend to admit this server until it has (or says it is
    /// already a member: a restarted server the frontend will readmit by
    /// itself). Runs until then; the caller aborts it on shutdown.
    pub async fn join(&self) {
        let mut pause = RETRY_FIRST;
        loop {
            match self.join.add_server(self.id).await {
                Ok(_) => {
                    tracing::info!(id = self.id, frontend = %self.url, "admitted to the cluster");
                    return;
                }
                Err(RpcError::Fault(f)) if f.code() == fault::ALREADY_MEMBER => {
                    tracing::info!(id = self.id, frontend = %self.url, "already a member; the frontend readmits it");
                    return;
                }
                Err(error) => {
                    tracing::warn!(id = self.id, frontend = %self.url, %error, retry_in = ?pause, "join failed");
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Asks the frontend to remove this server (bounded). The frontend then
    /// calls this server's `shutdownServer`, which it answers while it
    /// still serves.
    pub async fn leave(&self) {
        match self.short.shutdown_server(self.id).await {
            Ok(_) => tracing::info!(id = self.id, "left the cluster"),
            Err(RpcError::Fault(f)) if f.code() == fault::UNKNOWN_SERVER => {
                tracing::info!(id = self.id, "not a member; nothing to leave");
            }
            Err(error) => {
                tracing::warn!(id = self.id, %error, "could not leave the cluster; the frontend will find it gone")
            }
        }
    }
}

/// Ready once the frontend lists this server as active.
impl Readiness for Enrolment {
    async fn ready(&self) -> Result<(), String> {
        let status = self
            .short
            .cluster_status()
            .await
            .map_err(|e| format!("frontend {} does not answer: {e}", self.url))?;
        match reply::parse_cluster_status(&status) {
            Some([active, _, _]) if active.contains(&self.id) => Ok(()),
            Some(_) => Err(format!("not active yet (frontend: {status})")),
            None => Err(format!("unexpected clusterStatus reply {status:?}")),
        }
    }
}
