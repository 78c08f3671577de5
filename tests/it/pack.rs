//! `airlock pack` and `airlock lock` against a real loopback registry and the real engine:
//! the bundle loads with plain `docker load -i` and runs; `--from-docker`; Basic auth over
//! TLS with credentials from `DOCKER_CONFIG`; a multi-platform index; byte-identical
//! bundles from one lock. Registry faults (cut, corrupt, 429, kill -9) are in `registry.rs`.

pub use crate::harness::ok;
use crate::harness::{Registry, TestImages, airlock, docker, docker_quiet, require_docker};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Member names of a tar, in order, with their modes and types checked.
pub fn members(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap();
    let mut ar = tar::Archive::new(file);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(
            e.header().entry_type(),
            tar::EntryType::Regular,
            "only regular files"
        );
        assert_eq!(e.header().mode().unwrap(), 0o644);
        assert_eq!(e.header().mtime().unwrap(), 0);
        out.push(e.path().unwrap().to_string_lossy().to_string());
    }
    out
}

/// One member's bytes.
pub fn member(path: &Path, name: &str) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut ar = tar::Archive::new(file);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return v;
        }
    }
    panic!("no member {name} in {}", path.display());
}

/// Run `airlock pack ARGS --json` and return the summary document.
pub fn pack_json(cache: &Path, dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = airlock(cache)
        .current_dir(dir)
        .arg("pack")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pack {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn pack_from_registry_then_docker_load_and_run() {
    if !require_docker() {
        return;
    }
    let reg = Registry::start();
    let images = TestImages::build("pack-basic");
    let [base, app1, app2] = images.push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!("services:\n  one:\n    image: {app1}\n  two:\n    image: {app2}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join(".env"), "UNUSED=1\n").unwrap();
    let out = dir.path().join("stack.tar");

    let first = pack_json(&cache, dir.path(), &["-o", p(&out)]);
    assert_eq!(first["images"].as_array().unwrap().len(), 2, "{first}");
    assert!(first["blobs"]["fetched"].as_u64().unwrap() >= 6, "{first}");
    assert_eq!(first["images"][0]["ref"], app1.as_str());
    assert_eq!(first["images"][0]["platform"], "linux/amd64");

    // Layout: airlock/ first, SHA256SUMS second, every blob once, compose files carried.
    let names = members(&out);
    assert_eq!(names[0], "airlock/bundle.json");
    assert_eq!(names[1], "airlock/SHA256SUMS");
    assert!(
        names.contains(&"airlock/compose/compose.yaml".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"airlock/compose/.env".to_string()),
        "{names:?}"
    );
    let blobs: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("blobs/sha256/"))
        .collect();
    let unique: BTreeSet<&String> = blobs.iter().copied().collect();
    assert_eq!(blobs.len(), unique.len(), "a blob twice: {names:?}");
    let first_blob = names.iter().position(|n| n.starts_with("blobs/")).unwrap();
    assert!(names[..first_blob].contains(&"manifest.json".to_string()));
    // SHA256SUMS lists every other file.
    let sums = String::from_utf8(member(&out, "airlock/SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), names.len() - 1, "{sums}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&member(&out, "manifest.json")).unwrap();
    let tags: Vec<String> = manifest
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["RepoTags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(tags, vec![app1.clone(), app2.clone()]);

    // The bundle reader agrees: every byte, the structure, every image.
    let v = ok(airlock(&cache).args(["verify", p(&out), "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");

    // A second pack downloads nothing.
    let second = pack_json(&cache, dir.path(), &["-o", p(&out)]);
    assert_eq!(second["blobs"]["fetched"], 0, "{second}");
    assert!(second["blobs"]["cached"].as_u64().unwrap() >= 6);

    // Plain docker load, then run.
    images.remove(&[&base, &app1, &app2]);
    assert!(!crate::harness::image_exists(&app1));
    let loaded = docker(&["load", "-i", p(&out)]);
    assert!(
        loaded.contains(&format!("Loaded image: {app1}")),
        "{loaded}"
    );
    assert!(
        loaded.contains(&format!("Loaded image: {app2}")),
        "{loaded}"
    );
    let ran = docker(&["run", "--rm", &app1]);
    assert_eq!(ran, "version 1");
    let ran = docker(&["run", "--rm", &app2]);
    assert_eq!(ran, "version 2");
    docker_quiet(&["rmi", "-f", &app1, &app2]);
}

#[test]
fn pack_from_docker_exports_built_images() {
    if !require_docker() {
        return;
    }
    let reg = Registry::start();
    let images = TestImages::build("pack-docker");
    let [base, _, _] = images.push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    std::fs::write(
        dir.path().join("app/Dockerfile"),
        format!("FROM {base}\nCOPY v1.txt /srv/version\n"),
    )
    .unwrap();
    // `app` builds the image the harness already built locally; `db` pulls the base.
    std::fs::write(
        dir.path().join("compose.yaml"),
        format!(
            "services:\n  app:\n    image: {}\n    build: ./app\n  db:\n    image: {base}\n",
            images.app1
        ),
    )
    .unwrap();
    let out = dir.path().join("stack.tar");

    // Without --from-docker the service to build is named.
    let failed = airlock(&cache)
        .current_dir(dir.path())
        .args(["pack", "-o", p(&out)])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("`app`") && stderr.contains("--from-docker"),
        "{stderr}"
    );
    assert!(!out.exists());

    let summary = pack_json(&cache, dir.path(), &["-o", p(&out), "--from-docker"]);
    let imgs = summary["images"].as_array().unwrap();
    let app = imgs
        .iter()
        .find(|i| i["ref"] == images.app1.as_str())
        .unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(app["source"], "engine");
    let local_id = docker(&["image", "inspect", "--format", "{{.Id}}", &images.app1]);
    if crate::harness::engine().containerd() {
        // Engine-specific: the containerd store's image ID is the manifest digest, and the
        // engine's own manifest is what pack exports.
        assert_ne!(app["config"], local_id.as_str(), "{summary:#}");
        let saved = docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            &images.app1,
        ]);
        assert!(saved.starts_with("[\"sha256:"), "{saved}");
    } else {
        assert_eq!(
            app["config"],
            local_id.as_str(),
            "config digest = local image ID"
        );
    }
    assert!(
        imgs.iter()
            .any(|i| i["ref"] == base.as_str() && i["source"] == "registry")
    );

    // Exporting again gives the same blobs (deterministic compression).
    let again = pack_json(&cache, dir.path(), &["-o", p(&out), "--from-docker"]);
    assert_eq!(again["images"], summary["images"]);

    let v = ok(airlock(&cache).args(["verify", p(&out), "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");

    images.remove(&[&base]);
    let loaded = docker(&["load", "-i", p(&out)]);
    assert!(loaded.contains(&images.app1), "{loaded}");
    assert_eq!(docker(&["run", "--rm", &images.app1]), "version 1");
    // The classic store gets the same ID back (the config digest); the containerd store
    // names the image by the bundle's manifest (pack writes its own).
    let expected = if crate::harness::engine().containerd() {
        let inspect =
            crate::harness::json_of(&ok(airlock(&cache).args(["inspect", p(&out), "--json"])));
        let img = inspect["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ref"] == images.app1.as_str())
            .cloned()
            .unwrap();
        crate::harness::bundle_image_id(&img)
    } else {
        local_id
    };
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &images.app1]),
        expected
    );
    docker_quiet(&["rmi", "-f", &base]);
}

#[test]
fn pack_with_basic_auth_over_tls() {
    if !require_docker() {
        return;
    }
    let reg = Registry::start_tls_basic("tester", "s3cret");
    let images = TestImages::build("pack-tls");
    let [_, app1, _] = images.push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = reg.docker_config(dir.path());
    let empty = dir.path().join("no-creds");
    std::fs::create_dir_all(&empty).unwrap();
    let ca = reg.ca_cert.clone().unwrap();
    let out = dir.path().join("tls.tar");

    // No credentials: 401, bad input (exit 2).
    let o = airlock(&cache)
        .current_dir(dir.path())
        .env("DOCKER_CONFIG", &empty)
        .args(["pack", "--image", &app1, "--ca-cert", p(&ca), "-o", p(&out)])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"));

    // Untrusted CA: environment (exit 3), with the hint.
    let o = airlock(&cache)
        .current_dir(dir.path())
        .env("DOCKER_CONFIG", &config)
        .args(["pack", "--image", &app1, "-o", p(&out)])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--ca-cert"));
    assert!(!out.exists());

    // Credentials from DOCKER_CONFIG and the CA: works.
    let o = ok(airlock(&cache)
        .current_dir(dir.path())
        .env("DOCKER_CONFIG", &config)
        .args([
            "pack",
            "--image",
            &app1,
            "--ca-cert",
            p(&ca),
            "-o",
            p(&out),
            "--json",
        ]));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["images"][0]["layers"], 4);
    assert!(
        members(&out)
            .iter()
            .filter(|m| m.starts_with("blobs/"))
            .count()
            >= 6
    );
}

#[test]
fn multi_platform_index_packs_only_the_requested_platform() {
    if !require_docker() {
        return;
    }
    let reg = Registry::start();
    let images = TestImages::build("pack-multi");
    images.push(&reg);
    let repo = "airlock-it/pack-multi/app";
    let two = reg.put_two_platform_index(repo, "1", "multi");
    let (amd_cfg, arm_cfg) = (two.amd64_config, two.arm64_config);
    let reference = format!("{}/{repo}:multi", reg.addr);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    let arm = dir.path().join("arm.tar");
    let s = pack_json(
        &cache,
        dir.path(),
        &[
            "--image",
            &reference,
            "--platform",
            "linux/arm64",
            "-o",
            p(&arm),
        ],
    );
    assert_eq!(s["images"][0]["platform"], "linux/arm64");
    assert_eq!(s["images"][0]["config"], arm_cfg.as_str());
    let names = members(&arm);
    let has =
        |d: &str| names.contains(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")));
    assert!(has(&arm_cfg) && !has(&amd_cfg), "{names:?}");
    // The top is the original index, named in index.json.
    let index: serde_json::Value = serde_json::from_slice(&member(&arm, "index.json")).unwrap();
    let top = index["manifests"][0]["digest"].as_str().unwrap();
    assert_eq!(top, s["images"][0]["top"].as_str().unwrap());
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert!(has(top));

    let amd = dir.path().join("amd.tar");
    let s = pack_json(
        &cache,
        dir.path(),
        &[
            "--image",
            &reference,
            "--platform",
            "linux/amd64",
            "-o",
            p(&amd),
        ],
    );
    assert_eq!(s["images"][0]["config"], amd_cfg.as_str());

    let o = airlock(&cache)
        .current_dir(dir.path())
        .args([
            "pack",
            "--image",
            &reference,
            "--platform",
            "linux/s390x",
            "-o",
            p(&amd),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("linux/amd64, linux/arm64"), "{stderr}");

    // A service's `platform:` picks that platform for its image; the rest stay on the target.
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let base_ref = format!("{}/{}", reg.addr, images.base);
    std::fs::write(
        project.join("compose.yaml"),
        format!("services:\n  arm:\n    image: {reference}\n    platform: linux/arm64\n  base:\n    image: {base_ref}\n"),
    )
    .unwrap();
    let svc = dir.path().join("svc.tar");
    let s = pack_json(&cache, &project, &["-o", p(&svc)]);
    let by_ref = |s: &serde_json::Value, r: &str| {
        s["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ref"] == r)
            .cloned()
            .unwrap_or_else(|| panic!("{r} not in {s}"))
    };
    assert_eq!(by_ref(&s, &reference)["config"], arm_cfg.as_str(), "{s}");
    assert_eq!(by_ref(&s, &reference)["platform"], "linux/arm64", "{s}");
    assert_eq!(by_ref(&s, &base_ref)["platform"], "linux/amd64", "{s}");

    // Needed for two platforms: the target's is packed, and a warning names the other.
    std::fs::write(
        project.join("compose.yaml"),
        format!("services:\n  arm:\n    image: {reference}\n    platform: linux/arm64\n  amd:\n    image: {reference}\n"),
    )
    .unwrap();
    let o = ok(airlock(&cache)
        .current_dir(&project)
        .args(["pack", "--json", "-o", p(&svc)]));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(by_ref(&s, &reference)["config"], amd_cfg.as_str(), "{s}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("linux/arm64 too"), "{stderr}");
}

#[test]
fn lock_gives_byte_identical_bundles_and_detects_staleness() {
    if !require_docker() {
        return;
    }
    let reg = Registry::start();
    let images = TestImages::build("pack-lock");
    let [base, app1, app2] = images.push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("airlock.lock");
    let (c1, c2) = (dir.path().join("cache1"), dir.path().join("cache2"));
    ok(airlock(&c1).current_dir(dir.path()).args([
        "lock",
        "--image",
        &app1,
        "--image",
        &app2,
        "--lock-file",
        p(&lock),
    ]));
    let text = std::fs::read_to_string(&lock).unwrap();
    let l: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        l["images"][&app1]["top"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    let args = |out: &PathBuf| -> Vec<String> {
        [
            "pack",
            "--locked",
            "--lock-file",
            p(&lock),
            "--image",
            &app1,
            "--image",
            &app2,
            "-o",
            p(out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    ok(airlock(&c1).current_dir(dir.path()).args(args(&a)));
    // Another cache (cold), another time: the same bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(airlock(&c2).current_dir(dir.path()).args(args(&b)));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "bundles from one lock differ"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&member(&a, "airlock/bundle.json")).unwrap();
    assert_eq!(meta["created"], l["created"]);

    // The plan changed: a reference the lock does not know.
    let o = airlock(&c1)
        .current_dir(dir.path())
        .args([
            "pack",
            "--locked",
            "--lock-file",
            p(&lock),
            "--image",
            &app1,
            "--image",
            &app2,
            "--image",
            &base,
        ])
        .args(["-o", p(&dir.path().join("c.tar"))])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("stale") && stderr.contains(&base),
        "{stderr}"
    );
}
