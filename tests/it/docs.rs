//! The documents stay current with the tests: every test of the reliability modules (hostile
//! input, faults, registry misbehaviour, signing) is named in `docs/reliability.md`, and every
//! test the document names exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Names of the `#[test]` functions in `files` (a `#[test]` line, then `fn NAME(`).
fn test_names(files: &[PathBuf]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let mut armed = false;
        for line in text.lines() {
            let t = line.trim();
            if t == "#[test]" || t.starts_with("#[tokio::test") {
                armed = true;
            } else if armed
                && let Some(rest) = t
                    .strip_prefix("fn ")
                    .or_else(|| t.strip_prefix("async fn "))
            {
                names.insert(rest.split('(').next().unwrap_or_default().to_string());
                armed = false;
            }
        }
    }
    names
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `.rs` files of the reliability test modules.
fn reliability_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for module in ["hostile", "faults", "registry", "sign"] {
        let file = root.join(format!("tests/it/{module}.rs"));
        assert!(file.is_file(), "{} is missing", file.display());
        files.push(file);
        if let Ok(dir) = std::fs::read_dir(root.join(format!("tests/it/{module}"))) {
            let mut subs: Vec<PathBuf> = dir
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                .collect();
            subs.sort();
            files.extend(subs);
        }
    }
    files
}

#[test]
fn reliability_report_names_every_fault_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/reliability.md")).unwrap();
    let tests = test_names(&reliability_files(root));
    assert!(tests.len() >= 10, "too few tests found: {tests:?}");
    let missing: Vec<&String> = tests.iter().filter(|t| !doc.contains(t.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/reliability.md does not name these tests: {missing:?}"
    );
    // Names the document gives in backticks that look like test names must exist (as an
    // integration test or a unit test under src/).
    let mut every = Vec::new();
    rs_files(&root.join("tests/it"), &mut every);
    rs_files(&root.join("src"), &mut every);
    let all = test_names(&every);
    let stale: Vec<&str> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| {
            w.contains('_')
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .filter(|w| w.matches('_').count() >= 3 && !all.contains(*w))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/reliability.md names tests that do not exist: {stale:?}"
    );
}
