//! The `kvs-bench check` binary end to end: bounded fault-injection runs
//! against the real cluster (every local fault kind; durable servers with
//! power cuts; containers), which must report 0 violations. `KVS_CHECK_SEED` replays a given seed; `KVS_CHECK_SECONDS`
//! changes the duration (default 45).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::process::Command;

/// Runs `kvs-bench check` with `args` (the cluster binaries are found
/// beside kvs-bench, or in $KVS_BIN_DIR); asserts it ends with 0 violations
/// after at least `min_faults` faults, and returns its output.
fn check_clean(args: &[&str], min_faults: usize) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kvs-bench"))
        .arg("check")
        .args(args)
        .output()
        .expect("kvs-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(output.status.success(), "kvs-bench check {args:?} failed");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("check: ") && last.ends_with(" 0 violations"),
        "last line: {last}"
    );
    let faults: usize = last
        .split(", ")
        .find_map(|part| part.strip_suffix(" faults")?.parse().ok())
        .unwrap_or(0);
    assert!(faults >= min_faults, "only {faults} faults were injected");
    stdout
}

#[test]
fn randomized_fault_run_finds_no_violation() {
    let seed = std::env::var("KVS_CHECK_SEED").unwrap_or_else(|_| "20261126".to_owned());
    let seconds = std::env::var("KVS_CHECK_SECONDS").unwrap_or_else(|_| "45".to_owned());
    check_clean(
        &["--duration", &seconds, "--seed", &seed, "--fault-interval-ms", "1500"],
        5,
    );
}

/// Durable servers, and power cuts among the faults: every process is
/// SIGKILLed at once and restarted on its data folder.
#[test]
fn durable_run_with_power_cuts_finds_no_violation() {
    let seed = std::env::var("KVS_CHECK_SEED").unwrap_or_else(|_| "20261201".to_owned());
    let stdout = check_clean(
        &[
            "--duration",
            "30",
            "--seed",
            &seed,
            "--fault-interval-ms",
            "1500",
            "--faults",
            "kill,restart,pause,frontend,power",
        ],
        5,
    );
    assert!(stdout.contains(" durable servers"), "servers were not durable");
    assert!(stdout.contains("power cut"), "no power cut was injected");
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
