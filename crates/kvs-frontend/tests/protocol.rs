//! Each step of the replication protocol (see `kvs_frontend::replication`),
//! tested on the real frontend and replica code in simulated time, through
//! the simulator's network (`kvs_bench::simulate`): no processes, no
//! wall-clock waits, the same interleaving on every run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dxr::Fault;
use kvs_bench::simulate::SimSpec;
use kvs_bench::simulate::network::{Status, Weather};
use kvs_bench::simulate::world::World;
use kvs_frontend::config::Config;
use kvs_frontend::service::Frontend;
use kvs_proto::api::frontend::{AddServer, ClusterStatus, Get, Put};
use kvs_proto::serve::Handle;
use kvs_proto::{Key, ServerId, Value, fault, reply};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A world of `servers` members and one spare, a calm network (no loss,
/// no duplicates; delays up to `max_delay_ms`, so calls overtake), and
/// the frontend's batching and pipelining as given.
async fn cluster(
    servers: usize,
    max_batch: usize,
    pipeline: usize,
    max_delay_ms: u64,
) -> Result<(Arc<World>, Arc<Frontend>), Box<dyn std::error::Error>> {
    cluster_with(servers, max_batch, pipeline, max_delay_ms, &[]).await
}

/// [`cluster`] with `extra` frontend options.
async fn cluster_with(
    servers: usize,
    max_batch: usize,
    pipeline: usize,
    max_delay_ms: u64,
    extra: &[&str],
) -> Result<(Arc<World>, Arc<Frontend>), Box<dyn std::error::Error>> {
    cluster_in(servers, max_batch, pipeline, calm(max_delay_ms), extra).await
}

/// No loss, no duplicates, delays up to `max_delay_ms`.
fn calm(max_delay_ms: u64) -> Weather {
    Weather {
        max_delay: Duration::from_millis(max_delay_ms),
        loss: 0.0,
        duplication: 0.0,
    }
}

/// [`cluster_with`] in any `weather`.
async fn cluster_in(
    servers: usize,
    max_batch: usize,
    pipeline: usize,
    weather: Weather,
    extra: &[&str],
) -> Result<(Arc<World>, Arc<Frontend>), Box<dyn std::error::Error>> {
    let spec = SimSpec {
        servers,
        spare_servers: 1,
        faults: Vec::new(),
        weather,
        ..SimSpec::default()
    };
    let config = Config::try_parse_from(
        [
            "kvs-frontend".to_owned(),
            "--rpc-timeout-ms=500".to_owned(),
            "--heartbeat-interval-ms=100".to_owned(),
            "--heartbeat-timeout-ms=400".to_owned(),
            "--recovery-timeout-ms=3000".to_owned(),
            "--scrub-interval-ms=0".to_owned(),
            format!("--max-batch={max_batch}"),
            format!("--pipeline={pipeline}"),
            "--snapshot-chunk=3".to_owned(),
        ]
        .into_iter()
        .chain(extra.iter().map(|arg| (*arg).to_owned())),
    )?;
    let world = World::new(spec, config, Arc::new(Mutex::new(StdRng::seed_from_u64(7))));
    world.start_frontend().await;
    world.add_initial_servers().await;
    let frontend = world.frontend().ok_or("the frontend did not start")?;
    Ok((world, frontend))
}

async fn put(frontend: &Frontend, key: Key, value: Value) -> Result<String, Fault> {
    frontend.handle(Put { key, value }).await
}

async fn get(frontend: &Frontend, key: Key) -> Result<Option<Value>, Fault> {
    match frontend.handle(Get { key }).await {
        Ok(text) => Ok(reply::parse_pair(&text).map(|(_, value)| value)),
        Err(refusal) if refusal.code() == fault::KEY_NOT_FOUND => Ok(None),
        Err(refusal) => Err(refusal),
    }
}

/// [active, joining, lost] as the frontend reports them.
async fn status(frontend: &Frontend) -> Result<[Vec<ServerId>; 3], Box<dyn std::error::Error>> {
    let text = frontend.handle(ClusterStatus {}).await?;
    Ok(reply::parse_cluster_status(&text).ok_or("bad clusterStatus reply")?)
}

/// Waits (in simulated time) until `done` holds, at most `limit`.
async fn eventually(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done().await
}

/// Every key's committed value, read through the frontend, as `(key, value)`.
async fn committed(frontend: &Frontend, keys: std::ops::Range<Key>) -> Result<Vec<(Key, Value)>, Fault> {
    let mut pairs = Vec::new();
    for key in keys {
        if let Some(value) = get(frontend, key).await? {
            pairs.push((key, value));
        }
    }
    Ok(pairs)
}

/// Concurrent writers: `writers` tasks, `each` puts over `keys` keys.
async fn write_concurrently(frontend: &Arc<Frontend>, writers: i32, each: i32, keys: i32) -> TestResult {
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let frontend = Arc::clone(frontend);
        tasks.spawn(async move {
            for n in 0..each {
                put(&frontend, (writer + n) % keys, writer * 10_000 + n).await?;
            }
            Ok::<(), Fault>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn order_every_server_ends_with_the_last_acknowledged_write_of_each_key() -> TestResult {
    let (world, frontend) = cluster(3, 1024, 1, 2).await?;
    write_concurrently(&frontend, 4, 50, 4).await?;
    let expected = committed(&frontend, 0..4).await?;
    assert_eq!(expected.len(), 4);
    for id in 0..3 {
        assert_eq!(world.network().pairs(id), expected, "server {id}");
    }
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn ship_pipelined_batches_that_overtake_each_other_leave_every_server_equal() -> TestResult {
    // Two writes per call, three calls in flight, delays up to 8 ms each
    // way: calls arrive out of order all the time.
    let (world, frontend) = cluster(3, 2, 3, 8).await?;
    write_concurrently(&frontend, 8, 40, 20).await?;
    let expected = committed(&frontend, 0..20).await?;
    assert_eq!(expected.len(), 20);
    for id in 0..3 {
        assert_eq!(world.network().pairs(id), expected, "server {id}");
    }
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn commit_waits_until_every_active_server_holds_the_write() -> TestResult {
    let (world, frontend) = cluster(3, 1024, 1, 1).await?;
    world.network().set_status(2, Status::Paused);
    let pending = tokio::spawn({
        let frontend = Arc::clone(&frontend);
        async move { put(&frontend, 1, 10).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished(), "not acknowledged while server 2 lacks it");
    assert_eq!(world.network().pairs(0), vec![(1, 10)]);
    // Server 2 misses its heartbeat deadline, fails, and the write commits.
    assert_eq!(pending.await??, reply::SUCCESS);
    assert_eq!(get(&frontend, 1).await?, Some(10));
    assert_eq!(status(&frontend).await?, [vec![0, 1], vec![], vec![2]]);
    assert_eq!(world.network().pairs(2), vec![], "the paused server never got it");
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn fail_a_crashed_server_leaves_the_active_set_and_writes_go_on() -> TestResult {
    let (world, frontend) = cluster(3, 1024, 1, 1).await?;
    world.network().set_status(1, Status::Down);
    assert_eq!(put(&frontend, 5, 50).await?, reply::SUCCESS);
    assert_eq!(status(&frontend).await?, [vec![0, 2], vec![], vec![1]]);
    assert_eq!(get(&frontend, 5).await?, Some(50));
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn detect_a_paused_server_by_heartbeats_alone_then_readmit_it() -> TestResult {
    let (world, frontend) = cluster(3, 1024, 1, 1).await?;
    put(&frontend, 1, 10).await?;
    world.network().set_status(2, Status::Paused);
    // No write is made: only the failure detector's heartbeats can tell.
    let lost = eventually(Duration::from_secs(2), async || {
        status(&frontend)
            .await
            .is_ok_and(|[active, _, lost]| active == vec![0, 1] && lost == vec![2])
    })
    .await;
    assert!(lost, "a silent server is found within the heartbeat timeout");
    put(&frontend, 2, 20).await?;
    world.network().set_status(2, Status::Up);
    let back = eventually(Duration::from_secs(5), async || {
        status(&frontend)
            .await
            .is_ok_and(|[active, _, _]| active == vec![0, 1, 2])
    })
    .await;
    assert!(back, "it is readmitted once it answers");
    assert_eq!(world.network().pairs(2), committed(&frontend, 0..3).await?);
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn detect_a_server_restarted_empty_between_two_heartbeats_by_its_boot_id() -> TestResult {
    let (world, frontend) = cluster(2, 1024, 1, 1).await?;
    write_concurrently(&frontend, 2, 10, 10).await?;
    let expected = committed(&frontend, 0..10).await?;
    // Down and up again at once: a new, empty process under the same id,
    // which answers every heartbeat; no write reveals it.
    world.network().set_status(1, Status::Down);
    world.network().set_status(1, Status::Up);
    assert!(world.network().pairs(1).is_empty());
    let rebuilt = eventually(Duration::from_secs(5), async || {
        status(&frontend).await.is_ok_and(|[active, _, _]| active == vec![0, 1]) && world.network().pairs(1) == expected
    })
    .await;
    assert!(
        rebuilt,
        "the new boot id is noticed and the server caught up and active again"
    );
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn join_a_server_added_under_load_ends_with_every_pair() -> TestResult {
    let (world, frontend) = cluster(2, 4, 2, 3).await?;
    write_concurrently(&frontend, 2, 30, 50).await?;
    let writers = tokio::spawn({
        let frontend = Arc::clone(&frontend);
        async move {
            write_concurrently(&frontend, 4, 60, 50)
                .await
                .map_err(|e| e.to_string())
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(frontend.handle(AddServer { server_id: 2 }).await?, reply::SUCCESS);
    writers.await??;
    let expected = committed(&frontend, 0..50).await?;
    assert_eq!(world.network().pairs(2), expected);
    assert_eq!(status(&frontend).await?, [vec![0, 1, 2], vec![], vec![]]);
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn join_of_a_member_is_refused_and_empties_nothing() -> TestResult {
    let (world, frontend) = cluster(2, 1024, 1, 1).await?;
    write_concurrently(&frontend, 2, 20, 10).await?;
    let expected = committed(&frontend, 0..10).await?;
    let refused = frontend
        .handle(AddServer { server_id: 0 })
        .await
        .err()
        .map(|f| f.code());
    assert_eq!(refused, Some(fault::ALREADY_MEMBER));
    assert_eq!(world.network().pairs(0), expected, "an active member was emptied");
    // Two admissions of the same new server at once: one catches it up,
    // the other is refused without touching it.
    let (first, second) = tokio::join!(
        frontend.handle(AddServer { server_id: 2 }),
        frontend.handle(AddServer { server_id: 2 })
    );
    let codes = [first.err().map(|f| f.code()), second.err().map(|f| f.code())];
    assert!(
        codes.contains(&None) && codes.contains(&Some(fault::ALREADY_MEMBER)),
        "{codes:?}"
    );
    assert_eq!(world.network().pairs(2), expected);
    assert_eq!(status(&frontend).await?, [vec![0, 1, 2], vec![], vec![]]);
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn catch_up_a_server_restarted_empty_is_readmitted_with_every_pair() -> TestResult {
    let (world, frontend) = cluster(3, 1024, 1, 1).await?;
    write_concurrently(&frontend, 2, 20, 10).await?;
    world.network().set_status(1, Status::Down);
    put(&frontend, 100, 1).await?;
    world.network().set_status(1, Status::Up);
    let readmitted = eventually(Duration::from_secs(5), async || {
        status(&frontend).await.is_ok_and(|[active, _, _]| active.contains(&1))
    })
    .await;
    assert!(readmitted);
    let expected = committed(&frontend, 0..101).await?;
    assert_eq!(world.network().pairs(1), expected);
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn catch_up_where_calls_arrive_twice_is_not_undone_by_a_late_reset() -> TestResult {
    // A third of the messages are delivered twice, the second copy after
    // the first was answered: a reset's copy may land among the snapshot's
    // chunks (or after the server was promoted), where it must not run.
    let weather = Weather {
        duplication: 0.3,
        ..calm(5)
    };
    let (world, frontend) = cluster_in(2, 1024, 1, weather, &[]).await?;
    write_concurrently(&frontend, 2, 20, 30).await?;
    let expected = committed(&frontend, 0..30).await?;
    for round in 0..12 {
        world.network().set_status(1, Status::Down);
        world.network().set_status(1, Status::Up);
        let readmitted = eventually(Duration::from_secs(10), async || {
            status(&frontend).await.is_ok_and(|[active, _, _]| active == vec![0, 1])
        })
        .await;
        assert!(readmitted, "round {round}: {:?}", status(&frontend).await?);
        // Long enough for every late copy to have arrived.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            world.network().pairs(1),
            expected,
            "round {round}: the active server lacks pairs"
        );
    }
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn truncate_the_log_keeps_only_writes_in_flight_and_the_rejoin_tail() -> TestResult {
    let (world, frontend) = cluster_with(3, 8, 2, 2, &["--rejoin-tail=10"]).await?;
    write_concurrently(&frontend, 4, 50, 30).await?;
    let drained = eventually(Duration::from_secs(1), async || frontend.log().progress().0 == 10).await;
    let (held, commit, last) = frontend.log().progress();
    assert!(drained, "log still holds {held} entries");
    assert_eq!(commit, last);
    world.stop().await;
    Ok(())
}

/// Cuts server 2 off until it is lost, writes `missed` more, reconnects
/// it and waits until it is active again; returns the pairs sent to it as
/// snapshots and the writes shipped to it by delta meanwhile.
async fn rejoin_after_missing(
    world: &World,
    frontend: &Frontend,
    missed: i32,
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    for key in 0..20 {
        put(frontend, key, key).await?;
    }
    world.network().set_status(2, Status::Partitioned);
    let lost = eventually(Duration::from_secs(2), async || {
        status(frontend).await.is_ok_and(|[_, _, lost]| lost == vec![2])
    })
    .await;
    assert!(lost, "server 2 was not found lost");
    for key in 0..missed {
        put(frontend, key, key + 100).await?;
    }
    let snapshot = || frontend.catch_up().sent().get_or_create(&[("kind", "snapshot")]).get();
    let before = (snapshot(), frontend.catch_up().delta_writes().get());
    world.network().set_status(2, Status::Up);
    let back = eventually(Duration::from_secs(5), async || {
        status(frontend)
            .await
            .is_ok_and(|[active, _, _]| active == vec![0, 1, 2])
    })
    .await;
    assert!(back, "{:?}", status(frontend).await?);
    assert_eq!(
        world.network().pairs(2),
        world.network().pairs(0),
        "server 2 holds every pair"
    );
    Ok((
        snapshot() - before.0,
        frontend.catch_up().delta_writes().get() - before.1,
    ))
}

#[tokio::test(start_paused = true)]
async fn rejoin_a_server_that_was_cut_off_by_delta_with_only_the_writes_it_missed() -> TestResult {
    let (world, frontend) = cluster(3, 1024, 1, 1).await?;
    let (snapshot_pairs, delta_writes) = rejoin_after_missing(&world, &frontend, 5).await?;
    assert_eq!(snapshot_pairs, 0, "no snapshot was sent");
    // The 5 it missed, and the last write before the cut, which it held
    // but had not been told was stable.
    assert!((5..=6).contains(&delta_writes), "{delta_writes} writes shipped");
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn rejoin_with_a_snapshot_once_the_log_no_longer_holds_what_was_missed() -> TestResult {
    let (world, frontend) = cluster_with(3, 1024, 1, 1, &["--rejoin-tail=0"]).await?;
    let (snapshot_pairs, delta_writes) = rejoin_after_missing(&world, &frontend, 5).await?;
    assert_eq!(snapshot_pairs, 20, "a whole snapshot was sent");
    assert_eq!(delta_writes, 0);
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn recover_a_restarted_frontend_serves_every_acknowledged_write() -> TestResult {
    let (world, frontend) = cluster(3, 1024, 1, 1).await?;
    write_concurrently(&frontend, 3, 20, 15).await?;
    let expected = committed(&frontend, 0..15).await?;
    world.crash_frontend().await;
    world.start_frontend().await;
    let restarted = world.frontend().ok_or("no frontend after the restart")?;
    assert_eq!(committed(&restarted, 0..15).await?, expected);
    assert_eq!(put(&restarted, 1, 7).await?, reply::SUCCESS);
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn record_a_membership_change_the_disk_cannot_store_stops_the_commit_point() -> TestResult {
    let (world, frontend) = cluster(3, 1024, 1, 1).await?;
    put(&frontend, 1, 1).await?;
    world.disk().set_failing(true);
    world.network().set_status(2, Status::Down);
    // The failure cannot be recorded: this write cannot commit without server 2.
    let stuck = tokio::spawn({
        let frontend = Arc::clone(&frontend);
        async move { put(&frontend, 1, 2).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!stuck.is_finished(), "no commit while the membership is not on disk");
    let refused = put(&frontend, 2, 2).await.err().map(|f| f.code());
    assert_eq!(refused, Some(fault::NOT_RECORDED));
    assert_eq!(
        world.disk().record().active,
        vec![0, 1, 2],
        "the disk still lists server 2"
    );
    assert_eq!(get(&frontend, 1).await?, Some(1), "reads go on");
    world.disk().set_failing(false);
    assert_eq!(stuck.await??, reply::SUCCESS, "it commits once the record is stored");
    assert_eq!(world.disk().record().active, vec![0, 1]);
    assert_eq!(put(&frontend, 2, 3).await?, reply::SUCCESS);
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn recover_the_last_server_holding_the_writes_is_revived_not_emptied() -> TestResult {
    let (world, frontend) = cluster(2, 1024, 1, 1).await?;
    write_concurrently(&frontend, 2, 10, 8).await?;
    let expected = committed(&frontend, 0..8).await?;
    // Server 0 fails first, then server 1, the last holder.
    world.network().set_status(0, Status::Partitioned);
    put(&frontend, 20, 1).await?;
    world.network().set_status(1, Status::Partitioned);
    let none_active = eventually(Duration::from_secs(2), async || {
        status(&frontend).await.is_ok_and(|[active, _, _]| active.is_empty())
    })
    .await;
    assert!(none_active);
    assert_eq!(
        world.disk().record().active,
        vec![1],
        "the record keeps the last holder"
    );
    // Server 0 answers first: it is not emptied before server 1 is back.
    world.network().set_status(0, Status::Up);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status(&frontend).await?[0], Vec::<ServerId>::new());
    world.network().set_status(1, Status::Up);
    let back = eventually(Duration::from_secs(5), async || {
        status(&frontend).await.is_ok_and(|[active, _, _]| active == vec![0, 1])
    })
    .await;
    assert!(back, "{:?}", status(&frontend).await?);
    // A frontend crash now still finds every acknowledged write.
    world.crash_frontend().await;
    world.start_frontend().await;
    let restarted = world.frontend().ok_or("no frontend after the restart")?;
    let mut with_last = expected.clone();
    with_last.push((20, 1));
    assert_eq!(committed(&restarted, 0..21).await?, with_last);
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn recover_refuses_when_the_last_holder_restarted_empty_and_the_frontend_crashed_before_refilling_it()
-> TestResult {
    // Slow calls, so the catch-up that refills the server takes a while.
    let (world, frontend) = cluster(1, 1024, 1, 50).await?;
    write_concurrently(&frontend, 2, 10, 8).await?;
    // The only server restarts: a new, empty process under the same id.
    world.network().set_status(0, Status::Down);
    world.network().set_status(0, Status::Up);
    let unheld = eventually(Duration::from_secs(2), async || world.disk().record().unheld).await;
    assert!(unheld, "the record says no server holds the acknowledged writes");
    assert!(world.disk().record().active.is_empty());
    // The frontend dies before the catch-up is done: its memory held the
    // only copy. Its successor must refuse, not serve a store without them.
    world.network().set_status(0, Status::Partitioned);
    world.crash_frontend().await;
    world.network().set_status(0, Status::Up);
    world.start_frontend().await;
    assert!(world.frontend().is_none(), "no frontend serves");
    assert_eq!(world.unrecoverable.get(), 1, "the schedule is unrecoverable");
    world.stop().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn recover_after_the_last_holder_was_refilled_serves_every_acknowledged_write() -> TestResult {
    let (world, frontend) = cluster(1, 1024, 1, 1).await?;
    write_concurrently(&frontend, 2, 10, 8).await?;
    let expected = committed(&frontend, 0..8).await?;
    world.network().set_status(0, Status::Down);
    world.network().set_status(0, Status::Up);
    let refilled = eventually(Duration::from_secs(5), async || {
        world.network().pairs(0) == expected && !world.disk().record().unheld && world.disk().record().active == [0]
    })
    .await;
    assert!(refilled, "caught up from the frontend's memory and recorded as holder");
    world.crash_frontend().await;
    world.start_frontend().await;
    let restarted = world.frontend().ok_or("no frontend after the restart")?;
    assert_eq!(committed(&restarted, 0..8).await?, expected);
    world.stop().await;
    Ok(())
}
