//! What the frontend's port answers: every method goes through the
//! [`Gate`]. While a restarted frontend recovers (see [`crate::recovery`])
//! the gate is shut: every method answers fault
//! [`NOT_RECOVERED`](kvs_proto::fault::NOT_RECOVERED) with what recovery
//! waits for, `/readyz` says the same, and `acceptDataLoss` tells recovery
//! to stop waiting. Once the frontend is up the gate opens for good and
//! every call goes to it. One router serves both, so a client's connection
//! carries on across the opening. A call that finds the gate shut waits up
//! to [`OPENING_GRACE`] for it first: a starting frontend with nothing to
//! wait for opens within milliseconds of listening, and a harness that
//! calls as soon as the port answers should not see a refusal then.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use dxr::Fault;
use kvs_proto::api::frontend::AcceptDataLoss;
use kvs_proto::rpc::Rpc;
use kvs_proto::serve::{Handle, Methods, Probes, Readiness};
use kvs_proto::{ClusterSecret, fault};
use tokio::sync::Notify;

use crate::recovery::RecoveryWait;
use crate::service::{self, Frontend};

/// How long a call waits for a shut gate to open before it is refused.
pub const OPENING_GRACE: Duration = Duration::from_secs(1);

/// The frontend once it is up; until then, what it waits for.
#[derive(Default)]
pub struct Gate {
    wait: Arc<RecoveryWait>,
    frontend: OnceLock<Arc<Frontend>>,
    opened: Notify,
}

impl Gate {
    /// A shut gate.
    pub fn new() -> Arc<Self> {
        Arc::new(Gate::default())
    }

    /// What recovery reports to, and learns the operator's word from.
    pub fn wait(&self) -> &RecoveryWait {
        &self.wait
    }

    /// Opens the gate: from now on every call goes to `frontend`.
    pub fn open(&self, frontend: Arc<Frontend>) {
        self.wait.recovered();
        let _ = self.frontend.set(frontend);
        self.opened.notify_waiters();
    }

    /// The frontend, waiting up to [`OPENING_GRACE`] for the gate to open.
    async fn frontend_soon(&self) -> Option<&Arc<Frontend>> {
        if let Some(frontend) = self.frontend.get() {
            return Some(frontend);
        }
        let opened = self.opened.notified();
        if self.frontend.get().is_none() {
            let _ = tokio::time::timeout(OPENING_GRACE, opened).await;
        }
        self.frontend.get()
    }

    /// The frontend, once the gate is open.
    pub fn frontend(&self) -> Option<&Arc<Frontend>> {
        self.frontend.get()
    }

    /// Every method, the probes and the metrics; the guarded methods need
    /// `secret`, if set.
    pub fn router(self: &Arc<Self>, secret: Option<ClusterSecret>) -> Router {
        let metrics = {
            let gate = Arc::clone(self);
            move || {
                if let Some(frontend) = gate.frontend() {
                    frontend.refresh_metrics();
                }
            }
        };
        service::every_method(Methods::with_secret(secret), self)
            .method::<AcceptDataLoss, _>(&self.wait)
            .into_router_with(Probes::default().metrics(metrics).readiness(self))
    }
}

impl<C: Rpc> Handle<C> for Gate
where
    Frontend: Handle<C>,
{
    async fn handle(&self, call: C) -> Result<C::Reply, Fault> {
        match self.frontend_soon().await {
            Some(frontend) => frontend.handle(call).await,
            None => Err(Fault::new(fault::NOT_RECOVERED, self.wait.status())),
        }
    }
}

impl Readiness for Gate {
    async fn ready(&self) -> Result<(), String> {
        match self.frontend.get() {
            Some(frontend) => frontend.ready().await,
            None => Err(self.wait.status()),
        }
    }
}

impl Handle<AcceptDataLoss> for RecoveryWait {
    async fn handle(&self, _call: AcceptDataLoss) -> Result<String, Fault> {
        if self.is_recovered() {
            return Ok("nothing to accept: this frontend has every acknowledged write".to_owned());
        }
        tracing::warn!("acceptDataLoss called: recovery stops waiting for the acknowledged writes");
        self.accept();
        Ok(
            "accepted: the frontend serves what the servers hold now; writes no reachable server held are lost"
                .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use kvs_proto::Fence;
    use kvs_proto::api::frontend::ListServer;

    use super::*;
    use crate::committed::Committed;
    use crate::config::Config;

    fn frontend() -> Arc<Frontend> {
        let config =
            Config::try_parse_from(["kvs-frontend", "--server-url", "http://no server/{id}"]).expect("options");
        let connector = Arc::new(config.connector());
        let fence = Fence::new(1, 0);
        Arc::new(Frontend::new(
            config,
            connector,
            fence,
            Arc::new(Committed::default()),
            None,
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waits_briefly_for_the_gate_to_open_then_is_refused() {
        let gate = Gate::new();
        let early = {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.handle(ListServer {}).await })
        };
        tokio::time::sleep(OPENING_GRACE / 2).await;
        gate.open(frontend());
        assert!(
            early.await.expect("answered").is_ok(),
            "a call made just before the opening is served"
        );

        let shut = Gate::new();
        let started = tokio::time::Instant::now();
        let refused = shut.handle(ListServer {}).await.map_err(|fault| fault.code());
        assert_eq!(refused, Err(fault::NOT_RECOVERED));
        assert_eq!(started.elapsed(), OPENING_GRACE, "refused once the grace is over");
        assert!(shut.wait().status().starts_with("recovering"));
    }
}
