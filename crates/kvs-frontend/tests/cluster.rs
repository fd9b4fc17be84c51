//! Whole-cluster tests: the real `kvs-frontend`, `kvs-server` and
//! `kvs-client` binaries as processes on their own loopback address, real
//! XML-RPC, real signals. Build the binaries first (`cargo build --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::collections::BTreeMap;
use std::time::Duration;

use kvs_cluster::local::{Binaries, LocalCluster};
use kvs_proto::{ServerClient, fault, reply};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn cluster(servers: usize, clients: usize) -> LocalCluster {
    match LocalCluster::start(Binaries::locate(), servers, clients).await {
        Ok(cluster) => cluster,
        Err(error) => panic!("cluster did not start: {error}"),
    }
}

/// Every pair a server holds, read straight from the server.
async fn server_pairs(cluster: &LocalCluster, id: i32) -> Result<String, Box<dyn std::error::Error>> {
    let server = ServerClient::new(&cluster.server_url(id)?, Some(Duration::from_secs(10)))?;
    Ok(server.print_kv_pairs().await?)
}

#[tokio::test]
async fn put_is_on_every_server_when_acknowledged() -> TestResult {
    let cluster = cluster(3, 1).await;
    let proxy = cluster.proxy(0)?;
    proxy.put(1, 1).await?;
    assert_eq!(proxy.get(1).await?, "1:1");
    for id in 0..3 {
        assert_eq!(server_pairs(&cluster, id).await?, "1:1", "server {id}");
    }
    assert_eq!(cluster.frontend()?.list_server().await?, "0, 1, 2");
    Ok(())
}

#[tokio::test]
async fn killed_server_leaves_and_writes_go_on() -> TestResult {
    let mut cluster = cluster(2, 1).await;
    let proxy = cluster.proxy(0)?;
    proxy.put(1, 1).await?;
    cluster.kill_server(0).await?;
    assert_eq!(proxy.get(1).await?, "1:1");
    proxy.put(1, 2).await?;
    assert_eq!(proxy.get(1).await?, "1:2");
    assert_eq!(cluster.frontend()?.list_server().await?, "1");
    assert_eq!(server_pairs(&cluster, 1).await?, "1:2");
    Ok(())
}

#[tokio::test]
async fn added_server_holds_every_pair() -> TestResult {
    let mut cluster = cluster(1, 0).await;
    let frontend = cluster.frontend()?;
    for key in 0..500 {
        frontend.put(key, key * 3).await?;
    }
    let id = cluster.add_server().await?;
    let expected = reply::pair_lines((0..500).map(|k| (k, k * 3)));
    assert_eq!(server_pairs(&cluster, id).await?, expected);
    assert_eq!(frontend.list_server().await?, "0, 1");
    // The new server gets every later write too.
    frontend.put(7, 70).await?;
    assert!(server_pairs(&cluster, id).await?.contains("\n7:70\n"));
    Ok(())
}

#[tokio::test]
async fn server_added_under_concurrent_writes_converges() -> TestResult {
    let mut cluster = cluster(1, 0).await;
    let url = cluster.frontend_url();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            tokio::spawn(async move {
                let frontend = kvs_proto::FrontendClient::new(&url, Some(Duration::from_secs(10)))?;
                for i in 0..300 {
                    frontend.put((w * 1000 + i) % 200, i).await?;
                }
                Ok::<_, kvs_proto::RpcError>(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let added = cluster.add_server().await?;
    for writer in writers {
        writer.await??;
    }
    let old = server_pairs(&cluster, 0).await?;
    let new = server_pairs(&cluster, added).await?;
    assert_eq!(old, new, "the added server diverged from the first one");
    // And both agree with what the frontend serves.
    let frontend = cluster.frontend()?;
    for line in new.lines() {
        let (key, _) = reply::parse_pair(line).ok_or("bad line")?;
        assert_eq!(frontend.get(key).await?, line);
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_writers_leave_identical_replicas() -> TestResult {
    let cluster = cluster(3, 0).await;
    let url = cluster.frontend_url();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let url = url.clone();
            tokio::spawn(async move {
                let frontend = kvs_proto::FrontendClient::new(&url, Some(Duration::from_secs(10)))?;
                for i in 0..200 {
                    frontend.put(i % 20, w * 1000 + i).await?;
                }
                Ok::<_, kvs_proto::RpcError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let mut views = BTreeMap::new();
    for id in 0..3 {
        views.insert(id, server_pairs(&cluster, id).await?);
    }
    assert_eq!(views[&0], views[&1]);
    assert_eq!(views[&0], views[&2]);
    let frontend = cluster.frontend()?;
    for line in views[&0].lines() {
        let (key, _) = reply::parse_pair(line).ok_or("bad line")?;
        assert_eq!(frontend.get(key).await?, line, "frontend and replicas disagree");
    }
    Ok(())
}

#[tokio::test]
async fn shutdown_server_removes_it_and_it_exits_cleanly() -> TestResult {
    let mut cluster = cluster(2, 0).await;
    let frontend = cluster.frontend()?;
    frontend.put(4, 4).await?;
    let reply = frontend.shutdown_server(0).await?;
    assert!(reply.contains("shutting down"), "{reply}");
    let status = cluster
        .wait_server_exit(0, Duration::from_secs(5))
        .await?
        .ok_or("server 0 did not exit")?;
    assert!(status.success(), "server 0 exited with {status}");
    assert_eq!(frontend.list_server().await?, "1");
    frontend.put(4, 5).await?;
    assert_eq!(frontend.get(4).await?, "4:5");
    Ok(())
}

#[tokio::test]
async fn unknown_server_ids_are_faults() -> TestResult {
    let cluster = cluster(1, 0).await;
    let frontend = cluster.frontend()?;
    let fault_code = |r: Result<String, kvs_proto::RpcError>| r.err().and_then(|e| e.fault().map(|f| f.code()));
    assert_eq!(
        fault_code(frontend.print_kv_pairs(42).await),
        Some(fault::UNKNOWN_SERVER)
    );
    assert_eq!(
        fault_code(frontend.shutdown_server(42).await),
        Some(fault::UNKNOWN_SERVER)
    );
    assert_eq!(fault_code(frontend.add_server(0).await), Some(fault::ALREADY_MEMBER));
    assert_eq!(
        fault_code(frontend.add_server(9).await),
        Some(fault::SERVER_UNREACHABLE)
    );
    assert_eq!(fault_code(frontend.get(12345).await), Some(fault::KEY_NOT_FOUND));
    // Still serving.
    frontend.put(1, 1).await?;
    assert_eq!(frontend.list_server().await?, "0");
    Ok(())
}

#[tokio::test]
async fn without_active_servers_writes_and_reads_are_refused_until_one_is_added() -> TestResult {
    let mut cluster = cluster(1, 0).await;
    let frontend = cluster.frontend()?;
    frontend.put(1, 1).await?;
    cluster.kill_server(0).await?;
    // The first put after the crash discovers it; either way it is not acknowledged.
    let first = frontend.put(1, 2).await;
    assert_eq!(
        first.err().and_then(|e| e.fault().map(|f| f.code())),
        Some(fault::NO_ACTIVE_SERVER)
    );
    // No server confirms this frontend still leads, so no read is answered.
    assert_eq!(
        frontend.get(1).await.err().and_then(|e| e.fault().map(|f| f.code())),
        Some(fault::NO_ACTIVE_SERVER)
    );
    // A new server gets the committed state and writes and reads resume.
    let id = cluster.add_server().await?;
    assert_eq!(server_pairs(&cluster, id).await?, "1:1");
    assert_eq!(frontend.get(1).await?, "1:1");
    frontend.put(1, 3).await?;
    assert_eq!(frontend.get(1).await?, "1:3");
    Ok(())
}

#[tokio::test]
async fn sigterm_stops_every_process_cleanly() -> TestResult {
    let mut cluster = cluster(1, 0).await;
    let status = cluster
        .terminate_server(0)
        .await?
        .ok_or("server did not exit on SIGTERM")?;
    assert!(status.success(), "server exited with {status}");
    Ok(())
}
