//! The benchmark figures in `docs/` and the README are generated from the
//! JSON reports `kvs-bench compare` wrote, so they cannot drift from them:
//! every report's tables (`docs/STEM.md` beside `docs/STEM.json`, and so
//! in `docs/history/`) and every summary
//! block in the README must be exactly what the report gives today
//! (`kvs-bench compare --replot docs/STEM.json --out docs --readme README.md`
//! writes them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that panics fails

use std::path::{Path, PathBuf};

use kvs_bench::compare::{SUMMARY_BEGIN, read_report, with_summary};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The compare reports in `docs/` and `docs/history/`.
fn reports() -> Vec<PathBuf> {
    let root = repo();
    let mut reports: Vec<PathBuf> = [root.join("docs"), root.join("docs/history")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    reports.sort();
    reports
}

#[test]
fn docs_tables_are_generated_from_their_reports() {
    let reports = reports();
    assert!(!reports.is_empty(), "no compare report in docs/");
    for json in reports {
        let tables = json.with_extension("md");
        let written = std::fs::read_to_string(&tables)
            .unwrap_or_else(|e| panic!("{} has no tables ({}): {e}", json.display(), tables.display()));
        let report = read_report(&json).unwrap_or_else(|e| panic!("{e}"));
        let expected = report.render();
        assert!(
            written == expected,
            "{} differs from what {} gives; regenerate with kvs-bench compare --replot",
            tables.display(),
            json.display()
        );
    }
}

#[test]
fn readme_summaries_are_generated_from_their_reports() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut blocks = 0;
    for line in readme.lines() {
        let Some(rest) = line.strip_prefix(SUMMARY_BEGIN) else {
            continue;
        };
        let relative = Path::new(rest.trim_end_matches(" -->"));
        let report = read_report(&root.join(relative)).unwrap();
        let regenerated = with_summary(&readme, relative, &report.summary()).unwrap();
        assert!(
            regenerated == readme,
            "the README's summary of {} differs from the report; regenerate with kvs-bench compare --replot {0} --readme README.md",
            relative.display()
        );
        blocks += 1;
    }
    assert!(blocks > 0, "the README carries no generated benchmark summary");
}
