//! `kvs-bench load`, `floor` and `compare` end to end: the floor responder
//! as a real process, loaded through both clients, closed and open loop;
//! and a miniature `compare` (kvs with 1 server, in memory and durable, the
//! floor, and the Python baseline when it is there and port 8001 is free)
//! that must write its table, JSON and plots; and `restart` on a small
//! cluster. Build the binaries first (`cargo build --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kvs_bench::compare::baseline;
use kvs_cluster::{ensure_free, unique_loopback};

const BENCH: &str = env!("CARGO_BIN_EXE_kvs-bench");

/// The floor on its own loopback address, killed on drop.
struct Floor {
    child: Child,
    url: String,
}

impl Floor {
    fn start() -> Floor {
        let host = unique_loopback();
        let child = Command::new(BENCH)
            .args(["floor", "--bind", &host.to_string(), "--port", "8001"])
            .stdout(Stdio::null())
            .spawn()
            .expect("the floor starts");
        let addr = SocketAddr::new(IpAddr::V4(host), 8001);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the floor does not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Floor {
            child,
            url: format!("http://{addr}"),
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench(args: &[&str]) -> Output {
    let output = Command::new(BENCH).args(args).output().expect("kvs-bench runs");
    eprintln!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn load_counts_exactly_through_both_clients() {
    let floor = Floor::start();
    for client in ["dxr", "raw"] {
        let output = bench(&[
            "load",
            "--frontend",
            &floor.url,
            "--client",
            client,
            "--workload",
            "f",
            "--connections",
            "4",
            "--record-count",
            "50",
            "--operations",
            "300",
            "--duration-secs",
            "20",
        ]);
        assert!(output.status.success(), "{client}");
        let text = stdout(&output);
        assert!(text.contains("load phase: 50 ops"), "{client}: {text}");
        assert!(text.contains("run phase: 300 ops"), "{client}: {text}");
        assert!(text.contains("  rmw "), "{client}: {text}");
    }
}

#[test]
fn open_loop_keeps_its_rate_and_writes_json() {
    let floor = Floor::start();
    let dir = std::env::temp_dir().join(format!("kvs-bench-open-{}", std::process::id()));
    let json = dir.join("load.json");
    let output = bench(&[
        "load",
        "--frontend",
        &floor.url,
        "--put-ratio",
        "50",
        "--rate",
        "400",
        "--duration-secs",
        "1.5",
        "--connections",
        "4",
        "--json",
        &json.to_string_lossy(),
    ]);
    assert!(output.status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON is written")).expect("valid JSON");
    let ops = report["run"]["operations"].as_u64().unwrap_or(0);
    assert!((540..=660).contains(&ops), "{ops} operations at 400/s for 1.5 s");
    assert_eq!(report["rate"].as_f64(), Some(400.0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_miniature_compare_writes_table_json_and_plots() {
    let out: PathBuf = std::env::temp_dir().join(format!("kvs-bench-compare-{}", std::process::id()));
    let mut args = vec![
        "compare",
        "--servers",
        "1",
        "--repeat",
        "1",
        "--duration-secs",
        "0.5",
        "--baseline-duration-secs",
        "0.5",
        "--open-loop-secs",
        "0.5",
        "--no-mix",
        "--quiet-wait-secs",
        "0",
        "--record-count",
        "100",
        "--durable",
    ];
    let local_baseline = SocketAddr::new(IpAddr::V4(baseline::HOST), 8001);
    let with_baseline = baseline::locate_dir().is_ok() && ensure_free(local_baseline).is_ok();
    if !with_baseline {
        args.push("--no-baseline");
    }
    let out_arg = out.to_string_lossy().into_owned();
    args.extend(["--out", &out_arg]);
    let output = bench(&args);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("| kvs | 1 |"), "{text}");
    assert!(text.contains("| floor | - |"), "{text}");
    assert_eq!(text.contains("| baseline | 1 |"), with_baseline, "{text}");
    assert!(text.contains("Open loop, kvs 1 server"), "{text}");
    // --durable: kvs with durable servers puts, and the disk's sync latency.
    assert!(text.contains("| kvs-durable | 1 |"), "{text}");
    assert!(text.contains("Disk sync latency in "), "{text}");
    assert!(text.contains("durable put throughput ≥ 50% of in-memory"), "{text}");
    for file in ["compare.json", "compare.md", "compare.svg", "compare.png"] {
        let size = std::fs::metadata(out.join(file)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 100, "{file}: {size} bytes");
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn restart_times_each_kill_to_the_first_correct_read() {
    let output = bench(&["restart", "--keys", "500", "--servers", "1", "--repeats", "2"]);
    let text = stdout(&output);
    assert!(
        text.contains("restart: 500 keys, 1 servers: killed frontend serving again after"),
        "{text}"
    );
    let each = text
        .rsplit_once("median of 2: ")
        .map(|(_, tail)| tail)
        .unwrap_or_default();
    let times: Vec<f64> = each
        .trim_end()
        .trim_end_matches(" s)")
        .split(", ")
        .map(|t| t.parse().expect("a time in seconds"))
        .collect();
    assert_eq!(times.len(), 2, "{text}");
    assert!(times.iter().all(|t| *t > 0.0), "{text}");
}
