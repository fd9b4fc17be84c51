//! Whole-cluster tests of what an orchestrator relies on: `addServer` of a
//! server that is still starting, servers that enrol themselves with
//! `--join` and leave on SIGTERM, and the `/livez` and `/readyz` probes.
//! Real binaries on their own loopback address, real signals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::time::Duration;

use kvs_cluster::local::{Binaries, LocalCluster};
use kvs_proto::addr::FRONTEND_PORT;
use kvs_proto::client::probe;
use kvs_proto::fault;
use kvs_proto::serve::{LIVEZ_PATH, READYZ_PATH};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

async fn frontend_only(args: &[&str]) -> Result<LocalCluster, Box<dyn std::error::Error>> {
    let mut cluster = LocalCluster::new(Binaries::locate()).with_frontend_args(args);
    cluster.start_frontend().await?;
    Ok(cluster)
}

/// The status of `path` on the process at `base`.
async fn status(base: &str, path: &str) -> Result<u16, Box<dyn std::error::Error>> {
    Ok(probe(base, path, PROBE_TIMEOUT).await?.0)
}

/// Waits (bounded) until `path` on `base` answers `want`.
async fn wait_status(base: &str, path: &str, want: u16) -> TestResult {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (got, body) = probe(base, path, PROBE_TIMEOUT).await?;
        if got == want {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{base}{path} stayed {got} ({body:?}), wanted {want}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn add_server_waits_for_a_server_that_is_still_starting() -> TestResult {
    let mut cluster = frontend_only(&[]).await?;
    let frontend = cluster.frontend()?;
    let adding = tokio::spawn(async move { frontend.add_server(0).await });
    // The course calls addServer as soon as the pod runs, before it listens.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!adding.is_finished(), "addServer must wait for the server");
    cluster.start_server_id(0).await?;
    assert_eq!(adding.await??, "Success");
    let frontend = cluster.frontend()?;
    assert_eq!(frontend.list_server().await?, "0");
    frontend.put(1, 1).await?;
    assert_eq!(frontend.get(1).await?, "1:1");
    Ok(())
}

#[tokio::test]
async fn add_server_of_a_server_that_never_answers_fails_after_the_wait() -> TestResult {
    let cluster = frontend_only(&["--add-server-wait-ms", "600"]).await?;
    let frontend = cluster.frontend()?;
    let started = std::time::Instant::now();
    let result = frontend.add_server(7).await;
    let code = result.err().and_then(|e| e.fault().map(|f| f.code()));
    assert_eq!(code, Some(fault::SERVER_UNREACHABLE));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    assert_eq!(frontend.list_server().await?, "");
    Ok(())
}

#[tokio::test]
async fn frontend_is_ready_only_with_an_active_server() -> TestResult {
    let mut cluster = frontend_only(&["--heartbeat-timeout-ms", "500"]).await?;
    let base = cluster.frontend_url();
    assert_eq!(status(&base, LIVEZ_PATH).await?, 200);
    let (code, body) = probe(&base, READYZ_PATH, PROBE_TIMEOUT).await?;
    assert_eq!(code, 503);
    assert!(body.contains("no active server"), "{body}");

    let id = cluster.add_server().await?;
    assert_eq!(status(&base, READYZ_PATH).await?, 200);
    cluster.kill_server(id).await?;
    wait_status(&base, READYZ_PATH, 503).await?;
    assert_eq!(status(&base, LIVEZ_PATH).await?, 200);
    Ok(())
}

#[tokio::test]
async fn servers_with_join_enrol_and_leave_by_themselves() -> TestResult {
    let mut cluster = frontend_only(&[]).await?;
    let join = cluster.frontend_url();
    let frontend = cluster.frontend()?;
    for id in 0..2 {
        cluster.start_server_with(id, &["--join", &join]).await?;
    }
    for id in 0..2 {
        cluster.wait_active(id, Duration::from_secs(15)).await?;
    }
    for key in 0..200 {
        frontend.put(key, key + 1).await?;
    }
    // A third joins while the state is there: it catches up by itself.
    cluster.start_server_with(2, &["--join", &join]).await?;
    cluster.wait_active(2, Duration::from_secs(15)).await?;
    assert_eq!(frontend.list_server().await?, "0, 1, 2");
    let server_base = |id: i32| cluster.server_url(id);
    for id in 0..3 {
        wait_status(&server_base(id)?, READYZ_PATH, 200).await?;
    }
    let pairs = kvs_proto::ServerClient::new(&server_base(2)?, Some(PROBE_TIMEOUT))?
        .print_kv_pairs()
        .await?;
    assert_eq!(pairs.lines().count(), 200);

    // SIGTERM (a scale-down): the server leaves the membership, then exits.
    let exited = cluster.terminate_server(1).await?;
    assert!(exited.is_some_and(|status| status.success()), "server 1: {exited:?}");
    assert_eq!(frontend.list_server().await?, "0, 2");
    // Left, not lost: a crashed server would stay listed as lost and probed.
    let status = frontend.cluster_status().await?;
    assert_eq!(
        kvs_proto::reply::parse_cluster_status(&status),
        Some([vec![0, 2], vec![], vec![]]),
        "{status}"
    );
    frontend.put(0, 1000).await?;
    assert_eq!(frontend.get(0).await?, "0:1000");
    assert_eq!(frontend.get(199).await?, "199:200");
    Ok(())
}

#[tokio::test]
async fn server_with_join_is_not_ready_until_the_frontend_admits_it() -> TestResult {
    let mut cluster = LocalCluster::new(Binaries::locate());
    // No frontend yet: the server keeps asking, and is not ready.
    let join = format!("http://{}:{FRONTEND_PORT}", cluster.host());
    cluster.start_server_with(0, &["--join", &join]).await?;
    let server = cluster.server_url(0)?;
    assert_eq!(status(&server, LIVEZ_PATH).await?, 200);
    assert_eq!(status(&server, READYZ_PATH).await?, 503);
    cluster.start_frontend().await?;
    cluster.wait_active(0, Duration::from_secs(20)).await?;
    wait_status(&server, READYZ_PATH, 200).await?;
    Ok(())
}
