//! Feeds arbitrary bytes through `compose::load` as the only compose file of a project, with
//! a fixed environment and an `.env` next to it. Any panic, hang or runaway allocation is a bug:
//! every input must give a `Project` or an `Error`.
#![no_main]

use airlock::compose::{self, LoadOptions};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Dir {
    _keep: tempfile::TempDir,
    file: PathBuf,
}

fn dir() -> &'static Dir {
    static DIR: OnceLock<Dir> = OnceLock::new();
    DIR.get_or_init(|| {
        let keep = tempfile::tempdir().expect("temp dir");
        let root = keep.path();
        std::fs::write(root.join(".env"), "TAG=1.0\nEMPTY=\nCOMPOSE_PROFILES=debug\n").expect(".env");
        // Targets for `include:` and `extends: {file:}` that inputs may name.
        std::fs::write(root.join("base.yaml"), "services:\n  base:\n    image: base:${TAG}\n    build: ./ctx\n")
            .expect("base.yaml");
        Dir { file: root.join("compose.yaml"), _keep: keep }
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    if std::fs::write(&d.file, data).is_err() {
        return;
    }
    let environment: BTreeMap<String, String> =
        [("HOME", "/home/fuzz"), ("SET", "value")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let opts = LoadOptions { files: vec![d.file.clone()], environment: Some(environment), ..LoadOptions::default() };
    if let Ok(project) = compose::load(&opts) {
        // Every enabled service has a name matching its key.
        for (name, svc) in &project.services {
            assert_eq!(name, &svc.name);
        }
    }
    let star = LoadOptions { profiles: vec!["*".into()], ..opts };
    let _ = compose::load(&star);
});
