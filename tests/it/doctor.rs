//! `airlock doctor` against the engine under test: it names the engine, its version and
//! store as the harness sees them, the Compose CLIs, and every capability; exit 3 without
//! an engine.

use crate::harness::{self, Store, json_of, ok, require_docker};

#[test]
fn doctor_describes_the_engine_under_test() {
    if !require_docker() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let d = json_of(&ok(
        harness::airlock(cache.path()).args(["--json", "doctor"])
    ));
    let engine = harness::engine();
    assert_eq!(d["engine"]["version"], engine.version.as_str(), "{d:#}");
    let store = match engine.store {
        Store::Classic => "classic",
        Store::Containerd => "containerd",
        Store::Podman => "podman",
    };
    assert_eq!(d["engine"]["store"], store, "{d:#}");
    assert!(
        d["engine"]["api_version"]
            .as_str()
            .unwrap()
            .starts_with("1."),
        "{d:#}"
    );
    assert!(d["engine"]["data_root"].is_string(), "{d:#}");
    let codes: Vec<&str> = d["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "zstd-layers",
            "digest-pins",
            "deltas",
            "platforms",
            "load-skips"
        ],
        "{d:#}"
    );
    let deltas = d["capabilities"][2]["status"].as_str().unwrap();
    assert_eq!(
        deltas,
        if engine.classic() || engine.containerd() {
            "yes"
        } else {
            "no"
        },
        "{d:#}"
    );
    // The Compose CLI up uses is the one the harness runs.
    let used: Vec<&serde_json::Value> = d["compose"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["used_by_up"] == true)
        .collect();
    assert_eq!(used.len(), 1, "{d:#}");
    assert_eq!(
        used[0]["v2"],
        harness::compose_runner() == harness::Runner::V2,
        "{d:#}"
    );

    let text = ok(harness::airlock(cache.path()).arg("doctor"));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&engine.version) && text.contains("delta bundles"),
        "{text}"
    );

    let dead = cache.path().join("no-engine.sock");
    let out = harness::airlock(cache.path())
        .env("DOCKER_HOST", format!("unix://{}", dead.display()))
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-engine.sock"));
}
