//! Fault tests: real processes, real signals (SIGKILL, SIGSTOP/SIGCONT), and
//! checks that no acknowledged write is lost and no stale value is read.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvs_cluster::local::{Binaries, LocalCluster};
use kvs_proto::{FrontendClient, ServerClient, fault, reply};
use parking_lot::Mutex;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const FAST_DETECTION: &[&str] = &[
    "--heartbeat-interval-ms",
    "100",
    "--heartbeat-timeout-ms",
    "400",
    "--rpc-timeout-ms",
    "400",
];

async fn start(servers: usize, frontend_args: &[&str]) -> LocalCluster {
    let mut cluster = LocalCluster::new(Binaries::locate()).with_frontend_args(frontend_args);
    let started = async {
        cluster.start_frontend().await?;
        for _ in 0..servers {
            cluster.add_server().await?;
        }
        Ok::<_, kvs_cluster::ClusterError>(())
    };
    if let Err(error) = started.await {
        panic!("cluster did not start: {error}");
    }
    cluster
}

async fn server_pairs(cluster: &LocalCluster, id: i32) -> Result<String, Box<dyn std::error::Error>> {
    let server = ServerClient::new(&cluster.server_url(id)?, Some(Duration::from_secs(10)))?;
    Ok(server.print_kv_pairs().await?)
}

/// Polls `listServer` until it equals `expected`, for at most `limit`.
async fn wait_members(frontend: &FrontendClient, expected: &str, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let members = frontend.list_server().await.map_err(|e| e.to_string())?;
        if members == expected {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "listServer is {members:?}, expected {expected:?} within {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn heartbeat_drops_a_killed_server_without_any_write() -> TestResult {
    let mut cluster = start(2, &[]).await;
    let frontend = cluster.frontend()?;
    cluster.kill_server(1).await?;
    let took = wait_members(&frontend, "0", Duration::from_secs(3)).await?;
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    Ok(())
}

#[tokio::test]
async fn paused_server_is_dropped_then_readmitted_with_every_write() -> TestResult {
    let cluster = start(2, FAST_DETECTION).await;
    let frontend = cluster.frontend()?;
    for key in 0..50 {
        frontend.put(key, key).await?;
    }
    cluster.signal_server(1, "STOP")?;
    // Writes go on, each stalled at most about one timeout.
    for key in 0..50 {
        let started = Instant::now();
        frontend.put(key, key + 1000).await?;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a put stalled {:?}",
            started.elapsed()
        );
    }
    wait_members(&frontend, "0", Duration::from_secs(3)).await?;
    cluster.signal_server(1, "CONT")?;
    wait_members(&frontend, "0, 1", Duration::from_secs(5)).await?;
    frontend.put(7, 7777).await?;
    let expected = server_pairs(&cluster, 0).await?;
    assert!(expected.contains("\n7:7777\n"));
    assert_eq!(server_pairs(&cluster, 1).await?, expected, "readmitted server differs");
    Ok(())
}

#[tokio::test]
async fn server_restarted_empty_under_its_id_is_readmitted_with_full_state() -> TestResult {
    let mut cluster = start(2, FAST_DETECTION).await;
    let frontend = cluster.frontend()?;
    cluster.kill_server(1).await?;
    for key in 0..200 {
        frontend.put(key, key * 2).await?;
    }
    wait_members(&frontend, "0", Duration::from_secs(3)).await?;
    cluster.start_server_id(1).await?;
    wait_members(&frontend, "0, 1", Duration::from_secs(5)).await?;
    assert_eq!(
        server_pairs(&cluster, 1).await?,
        reply::pair_lines((0..200).map(|k| (k, k * 2)))
    );
    Ok(())
}

#[tokio::test]
async fn crash_in_the_middle_of_puts_loses_nothing() -> TestResult {
    let mut cluster = start(3, FAST_DETECTION).await;
    let url = cluster.frontend_url();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            tokio::spawn(async move {
                let frontend = FrontendClient::new(&url, Some(Duration::from_secs(10)))?;
                for i in 0..400 {
                    frontend.put(w * 1000 + i % 100, i).await?;
                }
                Ok::<_, kvs_proto::RpcError>(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    cluster.kill_server(0).await?;
    for writer in writers {
        writer.await??;
    }
    // Every writer's last put (value 300..400 on each key) is what every reader sees.
    let frontend = cluster.frontend()?;
    for w in 0..4 {
        for k in 0..100 {
            let key = w * 1000 + k;
            assert_eq!(frontend.get(key).await?, reply::pair(key, 300 + k));
        }
    }
    assert_eq!(server_pairs(&cluster, 1).await?, server_pairs(&cluster, 2).await?);
    Ok(())
}

/// What writers learned: per key, the highest value acknowledged and the
/// highest value attempted.
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<i32, i32>,
    attempted: BTreeMap<i32, i32>,
}

type Writers = Vec<tokio::task::JoinHandle<Result<(), kvs_proto::RpcError>>>;

/// Four writers putting rising values on 20 keys each through `url` until
/// `run` has passed, recording what was attempted and acknowledged.
fn spawn_writers(url: &str, run: Duration) -> (Arc<Mutex<Ledger>>, Writers) {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let deadline = Instant::now() + run;
    let writers = (0..4)
        .map(|w| {
            let (url, ledger) = (url.to_owned(), Arc::clone(&ledger));
            tokio::spawn(async move {
                let frontend = FrontendClient::new(&url, Some(Duration::from_secs(2)))?;
                let mut value = 0;
                while Instant::now() < deadline {
                    value += 1;
                    let key = w * 100 + value % 20;
                    ledger.lock().attempted.insert(key, value);
                    if frontend.put(key, value).await.is_ok() {
                        ledger.lock().acked.insert(key, value);
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Ok(())
            })
        })
        .collect();
    (ledger, writers)
}

/// Every acknowledged write is read back (or a later attempted one), and
/// no value is read that was never written.
async fn check_ledger(frontend: &FrontendClient, ledger: &Mutex<Ledger>) -> TestResult {
    let (acked, attempted) = {
        let ledger = ledger.lock();
        (ledger.acked.clone(), ledger.attempted.clone())
    };
    for (key, acked) in &acked {
        let (_, value) = reply::parse_pair(&frontend.get(*key).await?).ok_or("bad reply")?;
        assert!(value >= *acked, "key {key}: read {value}, but {acked} was acknowledged");
        assert!(value <= attempted[key], "key {key}: read {value}, never written");
    }
    Ok(())
}

#[tokio::test]
async fn frontend_killed_under_load_comes_back_without_losing_an_acknowledged_write() -> TestResult {
    let data_dir = std::env::temp_dir().join(format!("kvs-frontend-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let data_arg = data_dir.to_string_lossy().into_owned();
    let mut cluster = start(2, &["--data-dir", &data_arg]).await;
    let (ledger, writers) = spawn_writers(&cluster.frontend_url(), Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.kill_frontend().await?;
    let acked_before_crash = ledger.lock().acked.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_frontend().await?;
    for writer in writers {
        writer.await??;
    }
    assert!(acked_before_crash > 0, "no write was acknowledged before the crash");
    let frontend = cluster.frontend()?;
    assert_eq!(frontend.list_server().await?, "0, 1", "membership not recovered");
    check_ledger(&frontend, &ledger).await?;
    assert_eq!(server_pairs(&cluster, 0).await?, server_pairs(&cluster, 1).await?);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// A cluster whose frontend and `servers` servers keep data folders under
/// a fresh scratch folder named after `tag` (returned, to remove at the end).
async fn start_durable(
    tag: &str,
    servers: usize,
) -> Result<(LocalCluster, std::path::PathBuf), Box<dyn std::error::Error>> {
    let data_dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let data_arg = data_dir.join("frontend").to_string_lossy().into_owned();
    let mut cluster = LocalCluster::new(Binaries::locate())
        .with_frontend_args(&["--data-dir", &data_arg])
        .with_server_data(data_dir.join("servers"));
    cluster.start_frontend().await?;
    for _ in 0..servers {
        cluster.add_server().await?;
    }
    Ok((cluster, data_dir))
}

#[tokio::test]
async fn power_cut_under_load_of_a_durable_cluster_loses_no_acknowledged_write() -> TestResult {
    let (mut cluster, data_dir) = start_durable("kvs-power-cut", 3).await?;
    let (ledger, writers) = spawn_writers(&cluster.frontend_url(), Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Every process dies at once, in the middle of the writes.
    cluster.kill_frontend().await?;
    for id in 0..3 {
        cluster.kill_server(id).await?;
    }
    let acked_before_cut = ledger.lock().acked.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in 0..3 {
        cluster.start_server_id(id).await?;
    }
    cluster.start_frontend().await?;
    for writer in writers {
        writer.await??;
    }
    assert!(acked_before_cut > 0, "no write was acknowledged before the power cut");
    let frontend = cluster.frontend()?;
    assert_eq!(frontend.list_server().await?, "0, 1, 2", "membership not recovered");
    check_ledger(&frontend, &ledger).await?;
    let pairs = server_pairs(&cluster, 0).await?;
    assert_eq!(pairs.lines().count(), ledger.lock().attempted.len(), "{pairs}");
    for id in 1..3 {
        assert_eq!(server_pairs(&cluster, id).await?, pairs, "server {id}");
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

#[tokio::test]
async fn durable_servers_that_all_left_bring_every_write_back_to_a_restarted_frontend() -> TestResult {
    let (mut cluster, data_dir) = start_durable("kvs-all-left", 2).await?;
    let frontend = cluster.frontend()?;
    for key in 0..50 {
        frontend.put(key, key * 3).await?;
    }
    // Every server leaves (as a StatefulSet deleted whole does, on SIGTERM),
    // then the frontend goes too; all come back on their folders.
    for id in 0..2 {
        frontend.shutdown_server(id).await?;
        cluster.wait_server_exit(id, Duration::from_secs(5)).await?;
    }
    cluster.kill_frontend().await?;
    for id in 0..2 {
        cluster.start_server_id(id).await?;
    }
    cluster.start_frontend().await?;
    let frontend = cluster.frontend()?;
    for key in 0..50 {
        assert_eq!(
            frontend.get(key).await?,
            reply::pair(key, key * 3),
            "the store came back empty"
        );
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

#[tokio::test]
async fn durable_server_killed_keeps_every_write_it_acknowledged() -> TestResult {
    let data_dir = std::env::temp_dir().join(format!("kvs-durable-server-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    // A small snapshot size, so the writes span snapshots and log files.
    let mut cluster = LocalCluster::new(Binaries::locate()).with_server_data(&data_dir);
    cluster.start_server_with(0, &["--snapshot-bytes", "4096"]).await?;
    let server = ServerClient::new(&cluster.server_url(0)?, Some(Duration::from_secs(5)))?;
    for key in 0..2_000 {
        server.put(key % 700, key).await?;
    }
    cluster.kill_server(0).await?;
    cluster.start_server_with(0, &["--snapshot-bytes", "4096"]).await?;
    for key in 0..700 {
        let last = (0..2_000).filter(|value| value % 700 == key).max().ok_or("no write")?;
        assert_eq!(server.get(key).await?, reply::pair(key, last));
    }
    let files = std::fs::read_dir(data_dir.join("server-0"))?.count();
    assert!(files < 10, "snapshots keep the folder small: {files} files");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

#[tokio::test]
async fn restarted_frontend_serves_nothing_without_the_acknowledged_writes_until_the_loss_is_accepted() -> TestResult {
    let data_dir = std::env::temp_dir().join(format!("kvs-frontend-nosource-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let data_arg = data_dir.to_string_lossy().into_owned();
    let mut cluster = start(1, &["--data-dir", &data_arg, "--recovery-timeout-ms", "500"]).await;
    cluster.frontend()?.put(1, 1).await?;
    // Every process dies; the server comes back empty (no data folder).
    cluster.kill_frontend().await?;
    cluster.kill_server(0).await?;
    cluster.start_server_id(0).await?;
    cluster.spawn_frontend().await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let frontend = cluster.frontend()?;
    for answer in [
        frontend.get(1).await,
        frontend.put(2, 2).await,
        frontend.list_server().await,
    ] {
        let fault = answer
            .err()
            .ok_or("the frontend answered without the acknowledged writes")?;
        assert_eq!(fault.fault().map(|f| f.code()), Some(fault::NOT_RECOVERED), "{fault}");
        assert!(fault.to_string().contains("server 0 restarted"), "{fault}");
    }
    let (status, ready) = http_status(&cluster.frontend_url(), "/readyz").await?;
    assert!(status == 503 && ready.contains("acceptDataLoss"), "{status} {ready}");
    // The operator accepts the loss: the frontend serves what the server
    // holds (nothing), and readmits it.
    let accepted = frontend.accept_data_loss().await?;
    assert!(accepted.starts_with("accepted"), "{accepted}");
    kvs_cluster::local::wait_recovered(&frontend, Duration::from_secs(10)).await?;
    cluster.wait_active(0, Duration::from_secs(10)).await?;
    let lost = frontend.get(1).await.err().ok_or("a lost write was read")?;
    assert_eq!(lost.fault().map(|f| f.code()), Some(fault::KEY_NOT_FOUND), "{lost}");
    frontend.put(2, 2).await?;
    assert_eq!(frontend.get(2).await?, reply::pair(2, 2));
    assert!(frontend.accept_data_loss().await?.starts_with("nothing to accept"));
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

#[tokio::test]
async fn recovery_does_not_read_from_a_server_that_restarted_empty() -> TestResult {
    let data_dir = std::env::temp_dir().join(format!("kvs-frontend-reboot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let data_arg = data_dir.to_string_lossy().into_owned();
    let mut cluster = start(2, &["--data-dir", &data_arg, "--recovery-timeout-ms", "4000"]).await;
    let frontend = cluster.frontend()?;
    for key in 0..20 {
        frontend.put(key, key + 100).await?;
    }
    // Let a heartbeat tell the frontend both boot ids (recorded durably).
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The frontend and server 0 go down together (a node reboot); server 0
    // comes back empty under its id, server 1 is unreachable for now.
    cluster.kill_frontend().await?;
    cluster.kill_server(0).await?;
    cluster.start_server_id(0).await?;
    cluster.signal_server(1, "STOP")?;
    cluster.spawn_frontend().await?;
    let frontend = cluster.frontend()?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let refused = frontend
        .get(0)
        .await
        .err()
        .ok_or("the frontend recovered from an empty server")?;
    assert_eq!(
        refused.fault().map(|f| f.code()),
        Some(fault::NOT_RECOVERED),
        "{refused}"
    );
    // With the server that really holds the writes back, it recovers them
    // all, and the restarted server is caught up.
    cluster.signal_server(1, "CONT")?;
    kvs_cluster::local::wait_recovered(&frontend, Duration::from_secs(10)).await?;
    for key in 0..20 {
        assert_eq!(frontend.get(key).await?, format!("{key}:{}", key + 100));
    }
    wait_members(&frontend, "0, 1", Duration::from_secs(10)).await?;
    cluster.wait_active(0, Duration::from_secs(10)).await?;
    let pairs = server_pairs(&cluster, 0).await?;
    assert_eq!(pairs.lines().count(), 20, "{pairs}");
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

#[tokio::test]
async fn write_log_stays_bounded_under_sustained_writes() -> TestResult {
    // No tail kept for rejoins by delta: the log holds only what is in flight.
    let cluster = start(2, &["--rejoin-tail", "0"]).await;
    let pid = cluster.frontend_pid().ok_or("no frontend")?;
    let url = cluster.frontend_url();
    let write = |rounds: i32| {
        let url = url.clone();
        async move {
            let tasks: Vec<_> = (0..8)
                .map(|w| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let frontend = FrontendClient::new(&url, Some(Duration::from_secs(10)))?;
                        for i in 0..rounds {
                            frontend.put((w * 7 + i) % 100, i).await?;
                        }
                        Ok::<_, kvs_proto::RpcError>(())
                    })
                })
                .collect();
            for task in tasks {
                task.await??;
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    };
    write(500).await?;
    let warm = kvs_cluster::resident_kib(pid).ok_or("cannot read RSS")?;
    write(2500).await?;
    let after = kvs_cluster::resident_kib(pid).ok_or("cannot read RSS")?;
    let metrics = http_get(&cluster.frontend_url(), kvs_proto::serve::METRICS_PATH).await?;
    eprintln!("frontend RSS after 4,000 writes: {warm} KiB; after 20,000 more: {after} KiB");
    // Once every server acknowledged everything, the log holds nothing.
    assert!(metrics.contains("\nkvs_log_entries 0\n"), "{metrics}");
    assert!(metrics.contains("\nkvs_last_sequence 24000\n"), "{metrics}");
    assert!(after < warm + 8192, "frontend grew from {warm} KiB to {after} KiB");
    Ok(())
}

/// A plain HTTP/1.0 GET, returning the body.
async fn http_get(base: &str, path: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (status, body) = http_status(base, path).await?;
    if status != 200 {
        return Err(format!("GET {path}: {status} {body}").into());
    }
    Ok(body)
}

/// The status code and body of `GET path`.
async fn http_status(base: &str, path: &str) -> Result<(u16, String), Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    let status = head.split_whitespace().nth(1).ok_or("no status")?.parse()?;
    Ok((status, body.to_owned()))
}

/// Writes `value_of(key)` to every key in `keys`, over 8 connections.
async fn write_all(
    url: &str,
    keys: impl Iterator<Item = i32>,
    value_of: impl Fn(i32) -> i32 + Copy + Send + 'static,
) -> TestResult {
    let keys: Arc<Vec<i32>> = Arc::new(keys.collect());
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (url, keys) = (url.to_owned(), Arc::clone(&keys));
            tokio::spawn(async move {
                let frontend = FrontendClient::new(&url, Some(Duration::from_secs(5)))?;
                for &key in keys.iter().skip(w).step_by(8) {
                    frontend.put(key, value_of(key)).await?;
                }
                Ok::<_, kvs_proto::RpcError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    Ok(())
}

/// Enough keys that the servers settle most pairs (dropping their versions),
/// then a frontend crash (recovery reads settled pairs back with `dumpState`),
/// a new server (catch-up) and more overwrites: every replica ends equal to
/// what was acknowledged.
#[tokio::test]
async fn settled_pairs_survive_frontend_recovery_and_catch_up() -> TestResult {
    settled_pairs_case("one-call", "1").await
}

/// The same with several replication calls in flight, which may reach a
/// server in any order.
#[tokio::test]
async fn settled_pairs_survive_with_pipelined_replication() -> TestResult {
    settled_pairs_case("pipelined", "4").await
}

async fn settled_pairs_case(tag: &str, pipeline: &str) -> TestResult {
    const KEYS: i32 = 20_000;
    let data_dir = std::env::temp_dir().join(format!("kvs-frontend-settled-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let data_arg = data_dir.to_string_lossy().into_owned();
    let mut cluster = start(2, &["--data-dir", &data_arg, "--pipeline", pipeline]).await;
    let url = cluster.frontend_url();
    write_all(&url, 0..KEYS, |k| k).await?;
    let second = |k: i32| if k % 7 == 0 { k + 1_000_000 } else { k };
    write_all(&url, 0..KEYS, second).await?;
    cluster.kill_frontend().await?;
    cluster.start_frontend().await?;
    let id = cluster.add_server().await?;
    let expected = reply::pair_lines((0..KEYS).map(|k| (k, second(k))));
    for server in [0, 1, id] {
        assert!(
            server_pairs(&cluster, server).await? == expected,
            "server {server} differs after recovery"
        );
    }
    let last = move |k: i32| if k % 11 == 0 { -k } else { second(k) };
    let url = cluster.frontend_url();
    write_all(&url, (0..KEYS).filter(|k| k % 11 == 0), last).await?;
    let expected = reply::pair_lines((0..KEYS).map(|k| (k, last(k))));
    for server in [0, 1, id] {
        assert!(
            server_pairs(&cluster, server).await? == expected,
            "server {server} differs"
        );
    }
    let frontend = cluster.frontend()?;
    for key in [0, 7, 11, 77, KEYS - 1] {
        assert_eq!(frontend.get(key).await?, reply::pair(key, last(key)));
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

#[tokio::test]
async fn server_restarted_between_two_probes_is_caught_up_again() -> TestResult {
    // Probes 3 s apart: the kill and the restart both fall between two, so
    // no probe ever fails; only the new boot id tells the frontend.
    let mut cluster = start(2, &["--heartbeat-interval-ms", "3000"]).await;
    let frontend = cluster.frontend()?;
    for key in 0..100 {
        frontend.put(key, key * 7).await?;
    }
    let all = server_pairs(&cluster, 0).await?;
    assert_eq!(all.lines().count(), 100);
    // Let the first probes record the boot ids, then crash and restart fast.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    cluster.kill_server(1).await?;
    cluster.start_server_id(1).await?;
    assert_eq!(server_pairs(&cluster, 1).await?, "", "a restarted server is empty");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pairs = server_pairs(&cluster, 1).await?;
        if pairs == all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server 1 was never caught up again; it holds {} pairs",
            pairs.lines().count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.wait_active(1, Duration::from_secs(10)).await?;
    Ok(())
}

/// Enough keys that the frontend's committed state merges its recent
/// writes into its dense part several times (past 4096 recent pairs).
const MERGED_KEYS: i32 = 24_000;

#[tokio::test]
async fn a_state_large_enough_to_merge_reads_joins_scrubs_and_recovers_right() -> TestResult {
    let data_dir = std::env::temp_dir().join(format!("kvs-frontend-merged-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let data_arg = data_dir.to_string_lossy().into_owned();
    let mut cluster = start(1, &["--data-dir", &data_arg]).await;
    let url = cluster.frontend_url();
    // Three rounds over every key from 16 writers: each key ends at round 2.
    for round in 0..3 {
        let mut writers = Vec::new();
        for writer in 0..16 {
            let frontend = FrontendClient::new(&url, Some(Duration::from_secs(10)))?;
            writers.push(tokio::spawn(async move {
                for key in (writer..MERGED_KEYS).step_by(16) {
                    frontend.put(key, key * 10 + round).await?;
                }
                Ok::<_, kvs_proto::RpcError>(())
            }));
        }
        for writer in writers {
            writer.await??;
        }
    }
    let expected = reply::pair_lines((0..MERGED_KEYS).map(|key| (key, key * 10 + 2)));
    let frontend = cluster.frontend()?;
    for key in (0..MERGED_KEYS).step_by(97) {
        assert_eq!(frontend.get(key).await?, format!("{key}:{}", key * 10 + 2));
    }
    // A joining server gets the whole state (the snapshot reads both parts).
    let added = cluster.add_server().await?;
    assert_eq!(server_pairs(&cluster, added).await?, expected);
    // The scrub compares both servers with it and finds nothing wrong.
    assert!(frontend.scrub().await?.contains("diverged: []"));
    // A restarted frontend rebuilds it from the servers.
    cluster.kill_frontend().await?;
    cluster.start_frontend().await?;
    let frontend = cluster.frontend()?;
    for key in (0..MERGED_KEYS).step_by(89) {
        assert_eq!(frontend.get(key).await?, format!("{key}:{}", key * 10 + 2));
    }
    frontend.put(5, -5).await?;
    assert_eq!(frontend.get(5).await?, "5:-5");
    for id in [0, added] {
        assert!(server_pairs(&cluster, id).await?.contains("\n5:-5\n"), "server {id}");
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// How many calls server `id` refused because another frontend's lease held it.
async fn lease_refusals(cluster: &LocalCluster, id: i32) -> Result<u64, Box<dyn std::error::Error>> {
    let metrics = http_get(&cluster.server_url(id)?, kvs_proto::serve::METRICS_PATH).await?;
    let line = metrics
        .lines()
        .find(|line| line.starts_with("kvs_refused_total{") && line.contains("reason=\"lease_held\""));
    Ok(match line {
        Some(line) => line.split_whitespace().last().ok_or("no value")?.parse()?,
        None => 0,
    })
}

#[tokio::test]
async fn frontend_restarted_on_its_own_folder_takes_over_at_once_but_not_from_a_copy() -> TestResult {
    let data_dir = std::env::temp_dir().join(format!("kvs-frontend-successor-{}", std::process::id()));
    let copy_dir = data_dir.with_extension("copy");
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_dir_all(&copy_dir);
    let data_arg = data_dir.to_string_lossy().into_owned();
    let mut cluster = start(2, &["--data-dir", &data_arg]).await;
    let frontend = cluster.frontend()?;
    frontend.put(1, 10).await?;

    // Killed and restarted on the same folder on this machine: the servers
    // hear that its predecessor ended and follow it without a refusal.
    cluster.kill_frontend().await?;
    cluster.start_frontend().await?;
    assert_eq!(frontend.get(1).await?, "1:10");
    frontend.put(1, 11).await?;
    for id in 0..2 {
        assert_eq!(lease_refusals(&cluster, id).await?, 0, "server {id} waited out a lease");
    }

    // From a copy of the folder (another node's, say) it cannot know: it
    // waits out the lease of the frontend it replaces.
    cluster.kill_frontend().await?;
    std::fs::create_dir_all(&copy_dir)?;
    std::fs::copy(data_dir.join("cluster.json"), copy_dir.join("cluster.json"))?;
    let copy_arg = copy_dir.to_string_lossy().into_owned();
    cluster = cluster.with_frontend_args(&["--data-dir", &copy_arg]);
    cluster.start_frontend().await?;
    assert_eq!(frontend.get(1).await?, "1:11");
    let mut refused = 0;
    for id in 0..2 {
        refused += lease_refusals(&cluster, id).await?;
    }
    assert!(refused > 0, "no server refused the newcomer while the lease held");
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_dir_all(&copy_dir);
    Ok(())
}
