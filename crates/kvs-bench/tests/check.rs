//! The `kvs-bench check` binary end to end: a bounded fault-injection run
//! with every local fault kind against the real cluster, which must report
//! 0 violations. `KVS_CHECK_SEED` replays a given seed; `KVS_CHECK_SECONDS`
//! changes the duration (default 45).

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
