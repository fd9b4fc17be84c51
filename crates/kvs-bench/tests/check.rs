//! The `kvs-bench check` binary end to end: a bounded fault-injection run
//! with every local fault kind against the real cluster, which must report
//! 0 violations. `KVS_CHECK_SEED` replays a given seed; `KVS_CHECK_SECONDS`
//! changes the duration (default 45).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::process::Command;

#[test]
fn randomized_fault_run_finds_no_violation() {
    let seed = std::env::var("KVS_CHECK_SEED").unwrap_or_else(|_| "20261126".to_owned());
    let seconds = std::env::var("KVS_CHECK_SECONDS").unwrap_or_else(|_| "45".to_owned());
    // The cluster binaries are found beside kvs-bench (or in $KVS_BIN_DIR).
    let bench = env!("CARGO_BIN_EXE_kvs-bench");
    let output = Command::new(bench)
        .args([
            "check",
            "--duration",
            &seconds,
            "--seed",
            &seed,
            "--fault-interval-ms",
            "1500",
        ])
        .output()
        .expect("kvs-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(output.status.success(), "kvs-bench check failed (seed {seed})");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("check: ") && last.ends_with(" 0 violations"),
        "last line: {last}"
    );
    let faults: usize = last
        .split(", ")
        .find_map(|part| part.strip_suffix(" faults")?.parse().ok())
        .unwrap_or(0);
    assert!(faults >= 5, "only {faults} faults were injected");
}

/// Whether this machine can run containers; in CI it must.
fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI is set but no Docker engine answers"
    );
    ok
}

/// Containers, networks and volumes that the `kvs-bench check` process
/// `pid` made and left (their label is `kvs.check=kvs-check-<pid>-<n>`).
fn left_behind_by(pid: u32) -> Vec<String> {
    let prefix = format!("kvs-check-{pid}-");
    let mut left = Vec::new();
    for kind in [["ps", "-a"], ["network", "ls"], ["volume", "ls"]] {
        let output = Command::new("docker")
            .args(kind)
            .args(["--filter", "label=kvs.check", "--format", "{{.Label \"kvs.check\"}}"])
            .output()
            .expect("docker lists");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        left.extend(
            text.lines()
                .filter(|tag| tag.starts_with(&prefix))
                .map(|tag| format!("{} {tag}", kind[0])),
        );
    }
    left
}

#[test]
fn container_fault_run_with_kills_partitions_pauses_and_frontend_restarts_finds_no_violation() {
    if !docker_available() {
        eprintln!("skipped: no Docker engine (and not in CI)");
        return;
    }
    let seed = std::env::var("KVS_CHECK_SEED").unwrap_or_else(|_| "8".to_owned());
    let bench = env!("CARGO_BIN_EXE_kvs-bench");
    let child = Command::new(bench)
        .args([
            "check",
            "--backend",
            "docker",
            "--duration",
            "30",
            "--seed",
            &seed,
            "--fault-interval-ms",
            "1200",
            "--faults",
            "kill,restart,partition,pause,frontend",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kvs-bench starts");
    let pid = child.id();
    let output = child.wait_with_output().expect("kvs-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(output.status.success(), "kvs-bench check failed (seed {seed})");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("check: ") && last.ends_with(" 0 violations"),
        "last line: {last}"
    );
    for kind in ["SIGKILL server", "cut server", "freeze server", "SIGKILL frontend"] {
        assert!(stdout.contains(kind), "no '{kind}' fault was injected (seed {seed})");
    }
    assert_eq!(left_behind_by(pid), Vec::<String>::new(), "left behind");
}
