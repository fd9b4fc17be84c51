//! The deterministic simulation, bounded: many schedules with every fault
//! kind find no violation, and one seed replays exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use kvs_bench::simulate::{self, FaultKind, SimSpec, Stop};

#[test]
fn a_thousand_schedules_with_every_fault_find_no_violation() -> std::io::Result<()> {
    let spec = SimSpec::default();
    let summary = simulate::run_seeds(1, 1_000, 2, &spec, Stop::Never)?;
    println!("{summary}; {} operations", summary.operations);
    assert_eq!(summary.schedules, 1_000);
    assert!(summary.operations > 100_000, "clients ran: {}", summary.operations);
    assert!(summary.faults > 1_000, "the nemesis ran: {}", summary.faults);
    assert!(
        summary.unrecoverable.len() < 100,
        "few schedules lose every copy: {:?}",
        summary.unrecoverable
    );
    assert!(summary.failures.is_empty(), "{:#?}", summary.failures);
    Ok(())
}

#[test]
fn a_seed_replays_the_same_interleaving() -> std::io::Result<()> {
    let spec = SimSpec::default();
    let first = simulate::run_schedule(867, &spec)?;
    let again = simulate::run_schedule(867, &spec)?;
    assert!(first.faults > 0);
    assert!(first.history.len() > 100);
    assert_eq!(first.history.operations, again.history.operations);
    assert_eq!(first.faults, again.faults);
    let other = simulate::run_schedule(868, &spec)?;
    assert_ne!(
        first.history.operations, other.history.operations,
        "another seed, another schedule"
    );
    Ok(())
}

#[test]
fn each_fault_kind_alone_finds_no_violation() -> std::io::Result<()> {
    for kind in FaultKind::ALL {
        let spec = SimSpec {
            faults: vec![kind],
            ..SimSpec::default()
        };
        let summary = simulate::run_seeds(1_000, 40, 2, &spec, Stop::Never)?;
        assert!(summary.faults > 0, "{kind:?} was injected");
        assert!(summary.failures.is_empty(), "{kind:?}: {:#?}", summary.failures);
    }
    Ok(())
}

/// The deliberate bugs of `crates/kvs-bench/bugs/` (the proof that the
/// simulation can fail, run by `bugs/run.sh`) still apply to the code, so
/// that proof cannot silently rot.
#[test]
fn the_deliberate_bugs_still_apply() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bugs = root.join("crates/kvs-bench/bugs");
    let mut patches: Vec<_> = std::fs::read_dir(&bugs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "patch"))
        .collect();
    patches.sort();
    assert_eq!(patches.len(), 4, "{patches:?}");
    for patch in patches {
        let check = std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["apply", "--check"])
            .arg(&patch)
            .output()
            .expect("git runs");
        assert!(
            check.status.success(),
            "{} no longer applies: {}",
            patch.display(),
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
