//! Hostile callers against real processes: out-of-band calls without the
//! cluster secret, an insider's forged batches, a second frontend and a
//! stale (paused, then resumed) frontend. Each checks that no acknowledged
//! write is lost or contradicted; the frontend cases run clients against
//! both frontends and put the history through the linearizability checker.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kvs_bench::check::checker;
use kvs_bench::check::history::{Call, History, Outcome};
use kvs_bench::check::{CheckCounters, CheckSpec, ClientFleet};
use kvs_cluster::Process;
use kvs_cluster::{Binaries, ClusterError, LocalCluster};
use kvs_proto::batch::Entry;
use kvs_proto::fence::EPOCH_SHIFT;
use kvs_proto::replica::Replica;
use kvs_proto::{ClusterSecret, Fence, FrontendClient, RpcError, ServerClient, fault};
use tokio::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SECRET: &str = "correct horse battery staple";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn code<T: std::fmt::Debug>(result: Result<T, RpcError>) -> Option<i32> {
    match result {
        Err(error) => error.fault().map(|f| f.code()),
        Ok(reply) => panic!("expected a fault, got {reply:?}"),
    }
}

/// A fresh scratch folder for a frontend's data.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kvs-security-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A cluster whose frontend keeps its record in `data`.
async fn start(data: &Path, servers: usize, secret: Option<&str>) -> Result<LocalCluster, ClusterError> {
    let data = data.to_string_lossy().into_owned();
    let mut cluster = LocalCluster::new(Binaries::locate()).with_frontend_args(&[
        "--data-dir",
        &data,
        "--heartbeat-interval-ms",
        "100",
        "--heartbeat-timeout-ms",
        "500",
        "--rpc-timeout-ms",
        "500",
    ]);
    if let Some(secret) = secret {
        cluster = cluster.with_secret(secret)?;
    }
    cluster.start_frontend().await?;
    for _ in 0..servers {
        cluster.add_server().await?;
    }
    Ok(cluster)
}

/// The fence a frontend recorded in its data folder (what an insider could read).
fn recorded_fence(data: &Path) -> Result<Fence, Box<dyn std::error::Error>> {
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(data.join("cluster.json"))?)?;
    let field = |name: &str| record[name].as_u64().ok_or(format!("no {name} in the record"));
    Ok(Fence::new(field("cluster")?, field("epoch")?))
}

async fn expect_pairs(cluster: &LocalCluster, servers: &[i32], expected: &str) -> TestResult {
    for id in servers {
        let server = ServerClient::new(&cluster.server_url(*id)?, Some(CALL_TIMEOUT))?;
        assert_eq!(
            server.print_kv_pairs().await?.trim_end(),
            expected.trim_end(),
            "server {id}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn with_a_secret_out_of_band_calls_are_refused_and_nothing_is_lost() -> TestResult {
    let data = scratch("secret");
    let mut cluster = start(&data, 3, Some(SECRET)).await?;
    let frontend = cluster.frontend()?;
    let mut expected = String::new();
    for key in 0..20 {
        frontend.put(key, key * 10).await?;
        expected.push_str(&format!("{key}:{}\n", key * 10));
    }

    // Anyone who reaches a server's port, without the secret.
    for id in 0..3 {
        let server = ServerClient::new(&cluster.server_url(id)?, Some(CALL_TIMEOUT))?;
        let forged = Entry {
            key: 1,
            value: 666,
            version: u64::MAX,
        };
        assert_eq!(code(server.apply_batch(0, &[forged]).await), Some(fault::UNAUTHORIZED));
        assert_eq!(code(server.apply_batch(u64::MAX, &[]).await), Some(fault::UNAUTHORIZED));
        // Nor over the replication stream on the same port.
        let streamed = ServerClient::new(&cluster.server_url(id)?, Some(CALL_TIMEOUT))?.with_batch_stream()?;
        assert_eq!(
            code(streamed.apply_batch(0, &[forged]).await),
            Some(fault::UNAUTHORIZED)
        );
        assert_eq!(code(server.reset_store(false, 1).await), Some(fault::UNAUTHORIZED));
        assert_eq!(code(server.reset_store(true, 1).await), Some(fault::UNAUTHORIZED));
        assert_eq!(code(server.put(1, 666).await), Some(fault::UNAUTHORIZED));
        assert_eq!(code(server.dump_state(100).await), Some(fault::UNAUTHORIZED));
        assert_eq!(code(server.rejoin(1).await), Some(fault::UNAUTHORIZED));
        assert_eq!(code(server.digest().await), Some(fault::UNAUTHORIZED));
        assert_eq!(code(server.shutdown().await), Some(fault::UNAUTHORIZED));
        // Nor can a heartbeat claiming a newer epoch whose predecessor
        // ended take the server over (that would fence out its frontend).
        let fence = recorded_fence(&data)?;
        let successor = ServerClient::new(&cluster.server_url(id)?, Some(CALL_TIMEOUT))?.with_fence(Fence {
            epoch: fence.epoch + 1,
            ended: Some(fence.epoch),
            ..fence
        });
        assert_eq!(code(successor.heartbeat().await), Some(fault::UNAUTHORIZED));
        // A wrong secret is no better.
        let wrong = ClusterSecret::new("wrong")?;
        let server = ServerClient::new(&cluster.server_url(id)?, Some(CALL_TIMEOUT))?.with_secret(Some(&wrong));
        assert_eq!(code(server.reset_store(false, 1).await), Some(fault::UNAUTHORIZED));
        let streamed = server.with_batch_stream()?;
        assert_eq!(
            code(streamed.apply_batch(0, &[forged]).await),
            Some(fault::UNAUTHORIZED)
        );
    }
    // Anyone who reaches the frontend: data calls are open, membership is not.
    let anonymous = FrontendClient::new(&cluster.frontend_url(), Some(CALL_TIMEOUT))?;
    assert_eq!(code(anonymous.add_server(7).await), Some(fault::UNAUTHORIZED));
    assert_eq!(code(anonymous.adopt_server(0).await), Some(fault::UNAUTHORIZED));
    assert_eq!(code(anonymous.shutdown_server(0).await), Some(fault::UNAUTHORIZED));
    assert_eq!(anonymous.put(20, 200).await?, "Success");
    expected.push_str("20:200\n");
    assert_eq!(anonymous.list_server().await?, "0, 1, 2");

    // An insider with the secret but not the frontend's fence, or forging
    // versions its epoch could not have produced, is refused as well.
    let secret = ClusterSecret::new(SECRET)?;
    let fence = recorded_fence(&data)?;
    let insider = ServerClient::new(&cluster.server_url(0)?, Some(CALL_TIMEOUT))?.with_secret(Some(&secret));
    assert_eq!(code(insider.reset_store(false, 1).await), Some(fault::OTHER_CLUSTER));
    let later_epoch = Entry {
        key: 1,
        value: 666,
        version: (fence.epoch + 1) << EPOCH_SHIFT,
    };
    for streamed in [false, true] {
        let url = cluster.server_url(0)?;
        let insider = ServerClient::new(&url, Some(CALL_TIMEOUT))?.with_secret(Some(&secret));
        let insider = if streamed {
            insider.with_batch_stream()?
        } else {
            insider
        };
        let insider = insider.with_fence(fence);
        assert_eq!(
            code(insider.apply_batch(0, &[later_epoch]).await),
            Some(fault::INVALID_REQUEST)
        );
        assert_eq!(
            code(insider.apply_batch(u64::MAX, &[]).await),
            Some(fault::INVALID_REQUEST)
        );
        let older = insider.with_fence(Fence {
            epoch: fence.epoch - 1,
            ..fence
        });
        assert_eq!(code(older.apply_batch(0, &[]).await), Some(fault::SUPERSEDED));
    }

    // Every acknowledged write is where it should be, and later writes still work.
    for key in 0..=20 {
        assert_eq!(frontend.get(key).await?, format!("{key}:{}", key * 10));
    }
    expect_pairs(&cluster, &[0, 1, 2], &expected).await?;
    frontend.put(1, 11).await?;
    assert_eq!(frontend.get(1).await?, "1:11");
    expected = expected.replace("1:10\n", "1:11\n");

    // And across a frontend crash and recovery.
    cluster.kill_frontend().await?;
    cluster.start_frontend().await?;
    let frontend = cluster.frontend()?;
    for key in 0..=20 {
        let value = if key == 1 { 11 } else { key * 10 };
        assert_eq!(frontend.get(key).await?, format!("{key}:{value}"));
    }
    expect_pairs(&cluster, &[0, 1, 2], &expected).await?;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

#[tokio::test]
async fn with_the_secret_membership_calls_work_as_before() -> TestResult {
    let data = scratch("secret-admin");
    let mut cluster = start(&data, 2, Some(SECRET)).await?;
    let frontend = cluster.frontend()?;
    frontend.put(5, 50).await?;
    let id = cluster.add_server().await?;
    expect_pairs(&cluster, &[id], "5:50\n").await?;
    assert!(frontend.shutdown_server(0).await?.contains("shutting down"));
    assert_eq!(frontend.list_server().await?, format!("1, {id}"));
    assert_eq!(frontend.get(5).await?, "5:50");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

/// A frontend of its own (`data` as its folder) on `port` of the cluster's
/// host, reaching the cluster's servers; returns once it has recovered.
async fn second_frontend(
    cluster: &LocalCluster,
    data: &Path,
    port: u16,
) -> Result<Process, Box<dyn std::error::Error>> {
    let host = cluster.host().to_string();
    let mut command = Command::new(Binaries::locate().path("kvs-frontend")?);
    command.args([
        "--bind",
        &host,
        "--port",
        &port.to_string(),
        "--server-url",
        &format!("http://{host}:{{port}}"),
        "--data-dir",
        &data.to_string_lossy(),
        "--heartbeat-interval-ms",
        "100",
    ]);
    let addr = SocketAddr::new(cluster.host().into(), port);
    let process = Process::spawn_listening(command, "second frontend", addr).await?;
    let frontend = FrontendClient::new(&format!("http://{addr}"), Some(CALL_TIMEOUT))?;
    kvs_cluster::local::wait_recovered(&frontend, Duration::from_secs(30)).await?;
    Ok(process)
}

fn spec(clients: usize) -> CheckSpec {
    CheckSpec {
        duration: Duration::ZERO,
        clients,
        keys: 4,
        servers: 0,
        kinds: Vec::new(),
        seed: 7,
        fault_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(3),
        durable: false,
    }
}

/// The checker's verdict, and how many writes were acknowledged.
fn verdict(history: &History) -> usize {
    if let Err(error) = checker::check(history) {
        panic!("not linearizable: {error}");
    }
    history
        .by_key()
        .values()
        .flatten()
        .filter(|op| matches!(op.call, Call::Put(_)) && op.outcome == Outcome::Written)
        .count()
}

#[tokio::test]
async fn a_second_frontend_cannot_take_over_the_servers() -> TestResult {
    let (data, other) = (scratch("first"), scratch("second"));
    let cluster = start(&data, 2, None).await?;
    let mut second = second_frontend(&cluster, &other, 8002).await?;
    let second_url = format!("http://{}:8002", cluster.host());
    let urls = [cluster.frontend_url(), second_url.clone()];
    let fleet = ClientFleet::start(&urls, &spec(6), Arc::new(CheckCounters::default()))?;
    tokio::time::sleep(Duration::from_millis(700)).await;

    let intruder = FrontendClient::new(&second_url, Some(CALL_TIMEOUT))?;
    assert_eq!(code(intruder.add_server(0).await), Some(fault::OTHER_CLUSTER));
    assert_eq!(code(intruder.add_server(1).await), Some(fault::OTHER_CLUSTER));
    assert_eq!(code(intruder.put(100, -1).await), Some(fault::NO_ACTIVE_SERVER));
    assert_eq!(code(intruder.get(100).await), Some(fault::NO_ACTIVE_SERVER));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let history = fleet.finish().await?;
    assert!(verdict(&history) > 0, "the first frontend acknowledged nothing");
    assert_eq!(cluster.frontend()?.list_server().await?, "0, 1");
    second.kill().await?;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&other);
    Ok(())
}

#[tokio::test]
async fn a_paused_frontend_that_was_replaced_answers_nothing_when_it_resumes() -> TestResult {
    let (data, copy) = (scratch("stale"), scratch("replacement"));
    let cluster = start(&data, 2, None).await?;
    let replacement_url = format!("http://{}:8002", cluster.host());
    let urls = [cluster.frontend_url(), replacement_url.clone()];
    let fleet = ClientFleet::start(&urls, &spec(6), Arc::new(CheckCounters::default()))?;
    tokio::time::sleep(Duration::from_millis(700)).await;

    cluster.signal_frontend("STOP")?;
    // Its data folder is locked while the process lives, paused or not.
    let refused = second_frontend(&cluster, &data, 8003).await;
    assert!(refused.is_err(), "a second frontend started on a locked data folder");
    // A replacement from a copy of its folder (another node, say) takes over.
    std::fs::create_dir_all(&copy)?;
    std::fs::copy(data.join("cluster.json"), copy.join("cluster.json"))?;
    let mut replacement = second_frontend(&cluster, &copy, 8002).await?;
    tokio::time::sleep(Duration::from_millis(700)).await;

    cluster.signal_frontend("CONT")?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stale = FrontendClient::new(&cluster.frontend_url(), Some(CALL_TIMEOUT))?;
    assert_eq!(code(stale.put(100, -1).await), Some(fault::SUPERSEDED));
    assert_eq!(code(stale.get(100).await), Some(fault::SUPERSEDED));
    let current = FrontendClient::new(&replacement_url, Some(CALL_TIMEOUT))?;
    assert_eq!(current.put(100, -2).await?, "Success");
    assert_eq!(current.get(100).await?, "100:-2");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = fleet.finish().await?;
    assert!(verdict(&history) > 0, "nothing was acknowledged");
    replacement.kill().await?;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&copy);
    Ok(())
}

async fn metric(cluster: &LocalCluster, name: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let (_, text) =
        kvs_proto::client::probe(&cluster.frontend_url(), kvs_proto::serve::METRICS_PATH, CALL_TIMEOUT).await?;
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .ok_or(format!("no {name} in /metrics"))?;
    Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
}

#[tokio::test]
async fn a_server_altered_behind_the_frontends_back_is_found_and_rebuilt_by_the_scrub() -> TestResult {
    let data = scratch("scrub");
    let data_arg = data.to_string_lossy().into_owned();
    let mut cluster = LocalCluster::new(Binaries::locate())
        .with_frontend_args(&["--data-dir", &data_arg, "--scrub-interval-ms", "0"])
        .with_secret(SECRET)?;
    cluster.start_frontend().await?;
    for _ in 0..3 {
        cluster.add_server().await?;
    }
    let frontend = cluster.frontend()?;
    let mut expected = String::new();
    for key in 0..100 {
        frontend.put(key, key + 1).await?;
        expected.push_str(&format!("{key}:{}\n", key + 1));
    }
    assert!(frontend.scrub().await?.contains("diverged: []"));

    // An insider, with the secret, alters two servers behind the frontend's back.
    let secret = ClusterSecret::new(SECRET)?;
    let insider = |id| -> Result<ServerClient, Box<dyn std::error::Error>> {
        Ok(ServerClient::new(&cluster.server_url(id)?, Some(CALL_TIMEOUT))?.with_secret(Some(&secret)))
    };
    insider(1)?.put(5, 666).await?;
    insider(2)?.put(5000, 1).await?;
    let report = frontend.scrub().await?;
    assert!(report.contains("diverged: [1, 2]"), "{report}");
    assert_eq!(metric(&cluster, "kvs_scrub_diverged_total").await?, 2);
    // Both are rebuilt by catch-up, and the reads never saw the altered values.
    for id in [1, 2] {
        cluster.wait_active(id, Duration::from_secs(10)).await?;
    }
    expect_pairs(&cluster, &[0, 1, 2], &expected).await?;
    assert_eq!(frontend.get(5).await?, "5:6");
    assert_eq!(code(frontend.get(5000).await), Some(fault::KEY_NOT_FOUND));
    assert!(frontend.scrub().await?.contains("diverged: []"));
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

#[tokio::test]
async fn scrubbing_under_load_finds_nothing_wrong_with_healthy_servers() -> TestResult {
    let data = scratch("scrub-load");
    let cluster = start(&data, 3, None).await?;
    let fleet = ClientFleet::start(&[cluster.frontend_url()], &spec(8), Arc::new(CheckCounters::default()))?;
    let frontend = cluster.frontend()?;
    for _ in 0..15 {
        let report = frontend.scrub().await?;
        assert!(report.contains("diverged: []"), "{report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let differing = metric(&cluster, "kvs_scrub_ranges_differing_total").await?;
    let history = fleet.finish().await?;
    assert!(verdict(&history) > 0);
    assert_eq!(cluster.frontend()?.list_server().await?, "0, 1, 2");
    // In-flight writes made ranges differ now and then; none was taken for damage.
    eprintln!("ranges that differed and were looked at key by key: {differing}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
