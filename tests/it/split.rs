//! Split bundles against the real engine: `pack --split-size` writes `NAME.tar.000`, ...
//! and `NAME.parts.json`; `cat` of the parts is the bundle; verify, inspect and load read
//! the parts in place (from the parts file or the first part); a removed part and a changed
//! byte are named precisely, and nothing is loaded then.

use crate::harness::{self, Registry, TestImages, ok, require_docker};
use std::path::{Path, PathBuf};

fn part(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("s.tar.{i:03}"))
}

#[test]
fn split_pack_verify_inspect_load_and_damaged_parts() {
    if !require_docker() {
        return;
    }
    let images = TestImages::build("split");
    let reg = Registry::start();
    let [base, app1, _app2] = images.push(&reg);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let out = work.path().join("s.tar");
    ok(harness::airlock(&cache)
        .current_dir(work.path())
        .args([
            "pack",
            "--image",
            &base,
            "--image",
            &app1,
            "--split-size",
            "256K",
            "-o",
        ])
        .arg(&out));
    assert!(!out.exists(), "no joined file is written");
    let list_path = work.path().join("s.parts.json");
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&list_path).unwrap()).unwrap();
    let parts = list["parts"].as_array().unwrap();
    assert!(parts.len() >= 3, "{list:#}");
    let mut joined = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let bytes = std::fs::read(part(work.path(), i)).unwrap();
        assert_eq!(p["name"], format!("s.tar.{i:03}"));
        assert_eq!(p["size"].as_u64().unwrap(), bytes.len() as u64);
        if i + 1 < parts.len() {
            assert_eq!(bytes.len(), 256 << 10);
        }
        assert_eq!(
            p["sha256"].as_str().unwrap(),
            format!("sha256:{}", hex_sha256(&bytes))
        );
        joined.extend(bytes);
    }
    assert_eq!(list["size"].as_u64().unwrap(), joined.len() as u64);
    // `cat s.tar.* > s.tar` rebuilds a bundle that verifies.
    let cat = work.path().join("cat.tar");
    std::fs::write(&cat, &joined).unwrap();
    harness::airlock(&cache)
        .arg("verify")
        .arg(&cat)
        .assert()
        .success();

    // verify and inspect from the parts file and from the first part.
    for p in [&list_path, &part(work.path(), 0)] {
        ok(harness::airlock(&cache).arg("verify").arg(p).arg("--json"));
        let i = ok(harness::airlock(&cache).arg("inspect").arg(p).arg("--json"));
        let j: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
        assert_eq!(j["images"].as_array().unwrap().len(), 2, "{j:#}");
    }

    // Offline: load from the parts.
    drop(reg);
    images.remove(&[&base, &app1]);
    harness::airlock(&cache)
        .arg("load")
        .arg(&list_path)
        .assert()
        .success();
    assert!(harness::image_exists(&app1));
    assert_eq!(harness::docker(&["run", "--rm", &app1]), "version 1");
    harness::docker_quiet(&["rmi", "-f", &base, &app1]);

    // One byte changed in the middle part: verify names the part, load refuses (nothing loaded).
    let mid = parts.len() / 2;
    let mid_path = part(work.path(), mid);
    let original = std::fs::read(&mid_path).unwrap();
    let mut changed = original.clone();
    changed[1000] ^= 0x20;
    std::fs::write(&mid_path, &changed).unwrap();
    let mid_name = format!("s.tar.{mid:03}");
    let v = harness::airlock(&cache)
        .arg("verify")
        .arg(&list_path)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let corrupt: Vec<&serde_json::Value> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "corrupt-part")
        .collect();
    assert_eq!(corrupt.len(), 1, "{report:#}");
    assert!(corrupt[0]["file"].as_str().unwrap().ends_with(&mid_name));
    let l = harness::airlock(&cache)
        .arg("load")
        .arg(&list_path)
        .output()
        .unwrap();
    assert_eq!(l.status.code(), Some(1));
    let err = String::from_utf8_lossy(&l.stderr);
    assert!(err.contains(&mid_name) && err.contains("corrupt"), "{err}");
    assert!(!harness::image_exists(&app1) && !harness::image_exists(&base));
    std::fs::write(&mid_path, &original).unwrap();

    // One part removed: every command names it.
    let last = parts.len() - 1;
    let gone = part(work.path(), last);
    let kept = std::fs::read(&gone).unwrap();
    std::fs::remove_file(&gone).unwrap();
    let gone_name = format!("s.tar.{last:03}");
    for cmd in ["verify", "inspect", "load"] {
        let o = harness::airlock(&cache)
            .arg(cmd)
            .arg(&list_path)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{cmd}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&gone_name) && err.contains("missing"),
            "{cmd}: {err}"
        );
    }
    assert!(!harness::image_exists(&app1));
    // Without the parts file, from the first part: the parts present are read, and the end
    // of the bundle is missing.
    std::fs::rename(&list_path, work.path().join("moved.json")).unwrap();
    let o = harness::airlock(&cache)
        .arg("verify")
        .arg(part(work.path(), 0))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    std::fs::write(&gone, kept).unwrap();
    harness::airlock(&cache)
        .arg("verify")
        .arg(part(work.path(), 0))
        .assert()
        .success();
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn split_sizes_are_checked() {
    let work = tempfile::tempdir().unwrap();
    let o = harness::airlock(&work.path().join("cache"))
        .args(["pack", "--image", "127.0.0.1:1/x:1", "--split-size", "12Q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("12Q"));
}
