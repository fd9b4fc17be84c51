//! What a restarted frontend answers while it recovers (see
//! [`crate::recovery`]): the probes — live, and not ready with what it
//! waits for — and, for every method, fault
//! [`NOT_RECOVERED`](kvs_proto::fault::NOT_RECOVERED) with the same words;
//! except `acceptDataLoss`, which tells it to stop waiting.

use std::sync::Arc;

use axum::Router;
use dxr::Fault;
use kvs_proto::api::frontend::AcceptDataLoss;
use kvs_proto::rpc::Rpc;
use kvs_proto::serve::{Handle, Methods, Probes, Readiness};
use kvs_proto::{ClusterSecret, fault};

use crate::recovery::RecoveryWait;
use crate::service;

/// Refuses every data and membership method while recovery waits.
struct NotRecovered(Arc<RecoveryWait>);

impl<C: Rpc> Handle<C> for NotRecovered {
    async fn handle(&self, _call: C) -> Result<C::Reply, Fault> {
        Err(Fault::new(fault::NOT_RECOVERED, self.0.status()))
    }
}

impl Handle<AcceptDataLoss> for RecoveryWait {
    async fn handle(&self, _call: AcceptDataLoss) -> Result<String, Fault> {
        tracing::warn!("acceptDataLoss called: recovery stops waiting for the acknowledged writes");
        self.accept();
        Ok(
            "accepted: the frontend serves what the servers hold now; writes no reachable server held are lost"
                .to_owned(),
        )
    }
}

impl Readiness for RecoveryWait {
    async fn ready(&self) -> Result<(), String> {
        Err(self.status())
    }
}

/// The router a recovering frontend serves; `acceptDataLoss` needs `secret`, if set.
pub fn router(wait: &Arc<RecoveryWait>, secret: Option<ClusterSecret>) -> Router {
    let refuse = Arc::new(NotRecovered(Arc::clone(wait)));
    service::every_method(Methods::with_secret(secret), &refuse)
        .method::<AcceptDataLoss, _>(wait)
        .into_router_with(Probes::default().readiness(wait))
}
