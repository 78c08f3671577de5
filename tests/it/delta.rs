//! Delta bundles against the real engine and a loopback registry: v1 = {base, app:1},
//! v2 = {base, app:2 (one changed top layer), extra (a new image)} packed `--since v1`.
//! The delta carries only the changed layer and the new image's layer; `verify` with and
//! without `--base`; `airlock diff`; `airlock load`/`up` of the delta on an engine holding
//! v1; plain `docker load -i` of the delta; and a load on an engine without v1 that fails
//! before changing anything, naming what is missing.

use crate::harness::{self, ComposeCleanup as Cleanup, Registry, TestImages, ok, require_docker};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Member names and the parsed bundle.json of a bundle tar.
fn members(bundle: &Path) -> (Vec<String>, serde_json::Value) {
    let mut ar = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    let mut names = Vec::new();
    let mut meta = serde_json::Value::Null;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        if name == "airlock/bundle.json" {
            meta = serde_json::from_reader(&mut e).unwrap();
        }
        names.push(name);
    }
    (names, meta)
}

fn layers_of(meta: &serde_json::Value, image_suffix: &str) -> Vec<String> {
    let img = meta["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"].as_str().unwrap().ends_with(image_suffix))
        .unwrap_or_else(|| panic!("no image {image_suffix} in {meta:#}"));
    img["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

const COMPOSE_V1: &str = "services:\n  app:\n    image: ${APP}\n    command: [\"/bin/sh\", \"-c\", \"cat /srv/version; exec sleep 3600\"]\n";
const COMPOSE_V2: &str = "services:\n  app:\n    image: ${APP}\n    command: [\"/bin/sh\", \"-c\", \"cat /srv/version; exec sleep 3600\"]\n  extra:\n    image: ${EXTRA}\n    command: [\"/bin/sh\", \"-c\", \"exec sleep 3600\"]\n";

#[test]
fn delta_carries_only_new_layers_and_loads_on_top_of_v1() {
    if !require_docker() {
        return;
    }
    let images = TestImages::build("delta");
    let reg = Registry::start();
    let [base, app1, app2] = images.push(&reg);
    // A new image in v2, on the same base.
    let extra_local = "airlock-it/delta/extra:1";
    std::fs::write(images.dir.path().join("extra.txt"), "extra\n").unwrap();
    std::fs::write(
        images.dir.path().join("Dockerfile.extra"),
        format!("FROM {}\nCOPY extra.txt /srv/extra\n", images.base),
    )
    .unwrap();
    harness::docker_build(
        images.dir.path(),
        extra_local,
        Some(&images.dir.path().join("Dockerfile.extra")),
    );
    let extra = reg.push(extra_local, extra_local);
    let _cleanup = Cleanup {
        project: "airlock-it-delta".into(),
        images: vec![
            extra_local.to_string(),
            base.clone(),
            app1.clone(),
            app2.clone(),
            extra.clone(),
        ],
    };

    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    // Same directory name, so the same Compose project name (docker-compose 1.29 has no `name:`).
    let (d1, d2) = (
        work.path().join("v1/airlock-it-delta"),
        work.path().join("v2/airlock-it-delta"),
    );
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    std::fs::write(d1.join("compose.yaml"), COMPOSE_V1).unwrap();
    std::fs::write(d1.join(".env"), format!("APP={app1}\n")).unwrap();
    std::fs::write(d2.join("compose.yaml"), COMPOSE_V2).unwrap();
    std::fs::write(d2.join(".env"), format!("APP={app2}\nEXTRA={extra}\n")).unwrap();
    let v1 = work.path().join("v1.tar");
    let v2 = work.path().join("v2.tar");
    harness::airlock(&cache)
        .current_dir(&d1)
        .args(["pack", "--image", &base, "-o"])
        .arg(&v1)
        .assert()
        .success();
    ok(harness::airlock(&cache)
        .current_dir(&d2)
        .args(["pack", "--image", &base, "--since"])
        .arg(&v1)
        .arg("-o")
        .arg(&v2));

    // app:1 and app:2 alone, full bundles (for the upgrade by full bundle at the end).
    let (app1_only, app2_only) = (work.path().join("app1.tar"), work.path().join("app2.tar"));
    ok(harness::airlock(&cache)
        .args(["pack", "--image", &app1, "-o"])
        .arg(&app1_only));
    ok(harness::airlock(&cache)
        .args(["pack", "--image", &app2, "-o"])
        .arg(&app2_only));

    // The delta: only app:2's top layer and extra's top layer; every manifest and config.
    let (names1, meta1) = members(&v1);
    let (names2, meta2) = members(&v2);
    let l_base = layers_of(&meta1, "base:1");
    let l_app1 = layers_of(&meta1, "app:1");
    let l_app2 = layers_of(&meta2, "app:2");
    let l_extra = layers_of(&meta2, "extra:1");
    assert_eq!(
        l_app2[..l_base.len()],
        l_base[..],
        "app:2 shares base layers"
    );
    let carried_layers: BTreeSet<String> = names2
        .iter()
        .filter_map(|n| n.strip_prefix("blobs/sha256/"))
        .map(|h| format!("sha256:{h}"))
        .filter(|d| l_app2.contains(d) || l_extra.contains(d) || l_base.contains(d))
        .collect();
    let expected: BTreeSet<String> = [
        l_app2.last().unwrap().clone(),
        l_extra.last().unwrap().clone(),
    ]
    .into_iter()
    .collect();
    assert_eq!(carried_layers, expected);
    for img in meta2["images"].as_array().unwrap() {
        for key in ["manifest", "config"] {
            let hex = img[key]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:");
            assert!(
                names2.contains(&format!("blobs/sha256/{hex}")),
                "{key} of {img}"
            );
        }
    }
    let v1_meta_bytes = {
        let mut ar = tar::Archive::new(std::fs::File::open(&v1).unwrap());
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).unwrap();
        b
    };
    assert_eq!(
        meta2["base"]["id"].as_str().unwrap(),
        format!("sha256:{}", hex_sha256(&v1_meta_bytes))
    );
    // The base's image digests, by which a containerd-store engine shows it holds them.
    assert_eq!(
        meta2["base"]["tops"].as_array().unwrap().len(),
        meta1["images"].as_array().unwrap().len(),
        "{:#}",
        meta2["base"]
    );
    let assumed: BTreeSet<String> = meta2["base"]["assumed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(assumed, l_base.iter().cloned().collect());
    assert!(
        names1
            .iter()
            .any(|n| n.ends_with(l_app1.last().unwrap().trim_start_matches("sha256:")))
    );
    assert!(
        std::fs::metadata(&v2).unwrap().len() * 2 < std::fs::metadata(&v1).unwrap().len(),
        "the delta is much smaller than v1"
    );

    // verify: alone, with the right base, with a base lacking the layers.
    let verify = |extra_args: &[&str]| {
        harness::airlock(&cache)
            .arg("verify")
            .arg(&v2)
            .args(extra_args)
            .arg("--json")
            .output()
            .unwrap()
    };
    let out = verify(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = verify(&["--base", v1.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_of(&out)["ok"], true);
    let mut bad_base = meta1.clone();
    bad_base["images"] = serde_json::json!([]);
    let bad = work.path().join("bad-bundle.json");
    std::fs::write(&bad, serde_json::to_vec(&bad_base).unwrap()).unwrap();
    let out = verify(&["--base", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    let text = v["problems"].to_string();
    assert!(text.contains(l_base[0].as_str()), "{v:#}");

    // diff
    let out = harness::airlock(&cache)
        .arg("diff")
        .arg(&v1)
        .arg(&v2)
        .arg("--json")
        .output()
        .unwrap();
    let d = json_of(&out);
    assert_eq!(d["added"][0]["ref"], extra.as_str(), "{d:#}");
    assert_eq!(d["changed"][0]["ref"], app2.as_str(), "{d:#}");
    assert_eq!(d["removed"].as_array().unwrap().len(), 0, "{d:#}");
    assert_eq!(d["layers"]["new"], 2, "{d:#}");
    assert_eq!(d["layers"]["shared"].as_u64().unwrap(), l_base.len() as u64);
    assert!(d["layers"]["delta_saves"].as_u64().unwrap() > 0);
    assert_ne!(l_app1.last(), l_app2.last());

    // Offline: no local copies of the images.
    drop(reg);
    for i in &_cleanup.images {
        harness::docker_quiet(&["rmi", "-f", i]);
    }
    images.remove(&[]);
    assert!(!harness::image_exists(&base));

    // Without v1 on the engine: refused before anything changes, naming what is missing.
    let out = harness::airlock(&cache)
        .arg("load")
        .arg(&v2)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    if harness::engine().containerd() {
        // Engine-specific: the layers may be on the engine as snapshots of other images, but
        // the base images are not there by ID, so the refusal names them.
        assert!(err.contains(&base) && err.contains(&app1), "{err}");
    } else {
        assert!(err.contains(&app2) && err.contains(&extra), "{err}");
        // The base's own top layer is unique to this test (its lower layers may be on the
        // engine from other tests' images, and are then not missing).
        assert!(
            err.contains(&base) && err.contains(l_base.last().unwrap().as_str()),
            "{err}"
        );
    }
    assert!(err.contains("load the base bundle first"), "{err}");
    for r in [&base, &app2, &extra] {
        assert!(!harness::image_exists(r), "{r} appeared");
    }

    // v1 full, then the delta (`airlock load`, then `airlock up`): v2 runs.
    harness::airlock(&cache)
        .arg("load")
        .arg(&v1)
        .assert()
        .success();
    let out = harness::airlock(&cache)
        .arg("load")
        .arg(&v2)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = json_of(&out);
    assert_eq!(l["sent"], true, "{l:#}");
    eprintln!(
        "delta load on v1: blobs_sent {} bytes_sent {} blobs_skipped {} bytes_skipped {}",
        l["blobs_sent"], l["bytes_sent"], l["blobs_skipped"], l["bytes_skipped"]
    );
    if harness::engine().containerd() {
        // Engine-specific: the containerd store takes the delta because every base image is
        // on the engine by ID (its top digest), so the blobs the delta leaves out are in its
        // content store; the unchanged base image's own blobs are left out too.
        assert!(l["blobs_skipped"].as_u64().unwrap() > 0, "{l:#}");
    }
    let dir = work.path().join("offline");
    let up = harness::airlock(&cache)
        .arg("up")
        .arg(&v2)
        .arg("--dir")
        .arg(&dir)
        .args(["--timeout", "60s", "--json"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    for r in [&app2, &extra] {
        assert!(harness::image_exists(r), "{r}");
    }
    let logs = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            "label=com.docker.compose.project=airlock-it-delta",
            "--filter",
            "label=com.docker.compose.service=app",
        ])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&logs.stdout).trim().to_string();
    assert!(!id.is_empty());
    assert_eq!(harness::docker(&["logs", &id]), "version 2");

    // Plain `docker load -i` of the delta on an engine holding v1's images.
    drop(_cleanup);
    harness::airlock(&cache)
        .arg("load")
        .arg(&v1)
        .assert()
        .success();
    assert!(!harness::image_exists(&app2));
    let out = harness::run(Command::new("docker").arg("load").arg("-i").arg(&v2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Loaded image"));
    let id = harness::docker(&["image", "inspect", "-f", "{{.Id}}", &app2]);
    let img2 = meta2["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"] == app2.as_str())
        .unwrap();
    assert_eq!(id, harness::bundle_image_id(img2));
    let ran = harness::docker(&["run", "--rm", &app2]);
    assert_eq!(ran, "version 2");
    for r in [&base, &app1, &app2, &extra] {
        harness::docker_quiet(&["rmi", "-f", r]);
    }

    // A full bundle as an upgrade: app:2 alone after app:1 alone. Its lower layers are
    // app:1's and are not sent, on either store: the classic store holds them by ChainID;
    // on the containerd store, airlock knows them from the manifest it kept in its cache
    // when it loaded app:1 (engine::content), the API having no way to list them.
    let lower = (layers_of(&members(&app2_only).1, "app:2").len() - 1) as u64;
    let offline = work.path().join("offline-cache");
    ok(harness::airlock(&offline).arg("load").arg(&app1_only));
    let l = json_of(&ok(harness::airlock(&offline)
        .arg("load")
        .arg(&app2_only)
        .arg("--json")));
    eprintln!(
        "full app:2 bundle over app:1: blobs_sent {} bytes_sent {} blobs_skipped {} bytes_skipped {}",
        l["blobs_sent"], l["bytes_sent"], l["blobs_skipped"], l["bytes_skipped"]
    );
    assert!(
        lower > 0 && l["blobs_skipped"].as_u64().unwrap() >= lower,
        "{lower} lower layers: {l:#}"
    );
    assert_eq!(harness::docker(&["run", "--rm", &app2]), "version 2");
    // Without that cache, the containerd store gets every layer again (engine-specific).
    harness::docker_quiet(&["rmi", "-f", &app2]);
    let l = json_of(&ok(harness::airlock(&work.path().join("fresh-cache"))
        .arg("load")
        .arg(&app2_only)
        .arg("--json")));
    if harness::engine().containerd() {
        assert_eq!(l["blobs_skipped"], 0, "{l:#}");
    } else {
        assert!(l["blobs_skipped"].as_u64().unwrap() >= lower, "{l:#}");
    }
    for r in [&app1, &app2] {
        harness::docker_quiet(&["rmi", "-f", r]);
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}
