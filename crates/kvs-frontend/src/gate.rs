//! What the frontend's port answers: every method goes through the
//! [`Gate`]. While a restarted frontend recovers (see [`crate::recovery`])
//! the gate is shut: every method answers fault
//! [`NOT_RECOVERED`](kvs_proto::fault::NOT_RECOVERED) with what recovery
//! waits for, `/readyz` says the same, and `acceptDataLoss` tells recovery
//! to stop waiting. Once the frontend is up the gate opens for good and
//! every call goes to it. One router serves both, so a client's connection
//! carries on across the opening.

use std::sync::{Arc, OnceLock};

use axum::Router;
use dxr::Fault;
use kvs_proto::api::frontend::AcceptDataLoss;
use kvs_proto::rpc::Rpc;
use kvs_proto::serve::{Handle, Methods, Probes, Readiness};
use kvs_proto::{ClusterSecret, fault};

use crate::recovery::RecoveryWait;
use crate::service::{self, Frontend};

/// The frontend once it is up; until then, what it waits for.
#[derive(Default)]
pub struct Gate {
    wait: Arc<RecoveryWait>,
    frontend: OnceLock<Arc<Frontend>>,
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
        match self.frontend.get() {
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
