//! Writes arbitrary bytes as a bundle file and runs every reader entry point over it: the
//! member walk, `open_meta`, `verify` (which also plans the compose project it carries),
//! `airlock inspect` and the `serve` catalog. Each must return Ok or Err: no panic, no hang,
//! bounded memory. Nothing may be written outside the fuzzer's own temporary directory
//! (`TMPDIR` points into it, and the working directory is checked to stay empty).
//! Seed: `fuzz/seeds/bundle_read/crafted.bundle`, a valid bundle built by
//! `tests/it/hostile.rs`.
#![no_main]

use airlock::bundle::read::Bundle;
use airlock::bundle::verify::{VerifyOptions, verify};
use airlock::cli::inspect::{InspectArgs, run as inspect};
use airlock::cli::output::Output;
use airlock::serve::{Catalog, CatalogOptions};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

struct Dir {
    _keep: tempfile::TempDir,
    file: PathBuf,
    cwd: PathBuf,
}

fn dir() -> &'static Dir {
    static DIR: OnceLock<Dir> = OnceLock::new();
    DIR.get_or_init(|| {
        let keep = tempfile::tempdir().expect("temp dir");
        let root = keep.path().to_path_buf();
        let tmp = root.join("tmp");
        let cwd = root.join("cwd");
        std::fs::create_dir(&tmp).expect("tmp");
        std::fs::create_dir(&cwd).expect("cwd");
        // SAFETY: set once, before any thread of this process reads the environment.
        unsafe { std::env::set_var("TMPDIR", &tmp) };
        std::env::set_current_dir(&cwd).expect("cd");
        Dir {
            file: root.join("bundle.tar"),
            cwd,
            _keep: keep,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    if std::fs::write(&d.file, data).is_err() {
        return;
    }
    if let Ok(bundle) = Bundle::open(&d.file) {
        let _ = bundle.members();
        if let Ok(meta) = bundle.open_meta() {
            let _ = meta.id();
        }
    }
    let opts = VerifyOptions { jobs: 2 };
    if let Ok(report) = verify(&d.file, &opts, Arc::new(airlock::progress::Silent)) {
        // A bundle that verifies has every image it promises.
        if report.ok() {
            assert!(report.images.iter().all(|i| i.ok));
        }
    }
    let out = Output {
        json: false,
        quiet: true,
        color: false,
        interactive: false,
    };
    let _ = inspect(
        InspectArgs {
            bundle: d.file.clone(),
        },
        &out,
    );
    let _ = Catalog::open(std::slice::from_ref(&d.file), &CatalogOptions::default());
    let stray: Vec<_> = std::fs::read_dir(&d.cwd)
        .expect("cwd")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        stray.is_empty(),
        "files written into the working directory: {stray:?}"
    );
});
