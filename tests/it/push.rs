//! `airlock push` into Debian's docker-registry on loopback: plain (with a prefix, chunked
//! uploads and cross-repository mounts), then TLS with htpasswd Basic auth and credentials
//! from a temporary DOCKER_CONFIG. Afterwards the engine pulls and runs the images, their
//! manifest digests equal the bundle's, and a second push uploads no blob.

use crate::harness::{Registry, airlock, docker, docker_quiet, require_docker, run};
use crate::serve::Packed;
use std::path::Path;
use std::process::Command;

fn push_json(cache: &Path, args: &[&str], docker_config: Option<&Path>) -> serde_json::Value {
    let mut cmd = airlock(cache);
    cmd.arg("push").args(args).arg("--json");
    if let Some(c) = docker_config {
        cmd.env("DOCKER_CONFIG", c);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "push {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// (blob, repository) pairs the bundle's images need at the target.
fn blob_repo_pairs(packed: &Packed) -> u64 {
    let mut pairs = std::collections::BTreeSet::new();
    for img in packed.meta["images"].as_array().unwrap() {
        let (repo, _) = Packed::repo_tag(img["ref"].as_str().unwrap());
        pairs.insert((repo.clone(), img["config"]["digest"].to_string()));
        for l in img["layers"].as_array().unwrap() {
            pairs.insert((repo.clone(), l["digest"].to_string()));
        }
    }
    pairs.len() as u64
}

/// Pull every image of the bundle from `prefix`, run app:1, and check each manifest digest
/// equals the bundle's.
fn pull_and_compare(packed: &Packed, prefix: &str, docker_config: Option<&Path>) {
    for (i, r) in packed.refs.iter().enumerate() {
        let (repo, tag) = Packed::repo_tag(r);
        let name = format!("{prefix}/{repo}:{tag}");
        docker_quiet(&["rmi", "-f", &name]);
        let mut pull = Command::new("docker");
        if let Some(c) = docker_config {
            pull.env("DOCKER_CONFIG", c);
        }
        run(pull.args(["pull", &name]));
        let digests = docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &name,
        ]);
        let top = packed.image(r)["top"]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(digests.contains(&top), "{name}: {digests} lacks {top}");
        if i == 1 {
            assert_eq!(docker(&["run", "--rm", &name]), "version 1");
        }
        docker_quiet(&["rmi", "-f", &name]);
    }
}

#[test]
fn push_plain_keeps_digests_and_a_second_push_uploads_nothing() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("push-plain");
    let target = Registry::start();
    let cache = packed.dir.path().join("cache");
    let prefix = format!("{}/fleet", target.addr);
    let override_file = packed.dir.path().join("pushed.yml");
    let bundle = packed.bundle.to_str().unwrap();
    // 1 MiB chunks: the busybox layer (about 1 MB compressed) goes up in PATCH chunks.
    let (_, largest) = packed.largest_layer();
    let first = push_json(
        &cache,
        &[
            bundle,
            "--to",
            &prefix,
            "--chunk-size",
            "1",
            "--override-out",
            override_file.to_str().unwrap(),
        ],
        None,
    );
    let pairs = blob_repo_pairs(&packed);
    let uploaded = first["blobs_uploaded"].as_u64().unwrap();
    let mounted = first["blobs_mounted"].as_u64().unwrap();
    assert_eq!(first["blobs_skipped"], 0, "{first}");
    assert_eq!(uploaded + mounted, pairs, "{first}");
    // base and app share the base layers: uploaded once, mounted into the other repository.
    assert!(mounted >= 3, "{first}");
    assert_eq!(first["images"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(first["target"], prefix.as_str());
    for img in first["images"].as_array().unwrap() {
        let src = img["source"].as_str().unwrap();
        assert_eq!(img["digest"], packed.image(src)["top"]["digest"], "{img}");
        assert!(
            img["target"].as_str().unwrap().starts_with(&prefix),
            "{img}"
        );
    }
    let text = String::from_utf8_lossy(
        &run(Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{prefix}/airlock-it/push-plain/app:2")))
        .stdout,
    )
    .to_string();
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
        ),
        packed.image(&packed.refs[2])["top"]["digest"]
            .as_str()
            .unwrap()
    );
    assert!(
        largest > 1 << 20,
        "largest layer {largest}: 1 MiB chunks would not split it"
    );

    // The override rewrites each service; docker-compose merges it.
    let yaml = std::fs::read_to_string(&override_file).unwrap();
    assert!(
        yaml.contains(&format!("\"{prefix}/airlock-it/push-plain/app:1\"")),
        "{yaml}"
    );
    let config = run(Command::new("docker-compose")
        .current_dir(packed.dir.path())
        .args(["-f", "compose.yaml", "-f", "pushed.yml", "config"]));
    let config = String::from_utf8_lossy(&config.stdout);
    assert!(
        config.contains(&format!("image: {prefix}/airlock-it/push-plain/app:2")),
        "{config}"
    );

    pull_and_compare(&packed, &prefix, None);

    let second = push_json(&cache, &[bundle, "--to", &prefix], None);
    assert_eq!(second["blobs_uploaded"], 0, "{second}");
    assert_eq!(second["blobs_mounted"], 0, "{second}");
    assert_eq!(second["blobs_skipped"].as_u64().unwrap(), pairs, "{second}");
    assert_eq!(second["manifests_pushed"], 0, "{second}");
}

#[test]
fn push_over_tls_with_basic_auth_from_docker_config() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("push-tls");
    let target = Registry::start_tls_basic("pusher", "pa55word");
    let cache = packed.dir.path().join("cache");
    let cfg = target.docker_config(packed.dir.path());
    let ca = target.ca_cert.clone().unwrap();
    let bundle = packed.bundle.to_str().unwrap();
    let args = [
        bundle,
        "--to",
        &target.addr,
        "--ca-cert",
        ca.to_str().unwrap(),
    ];

    // Without credentials: refused with a hint, exit 2.
    let empty = tempfile::tempdir().unwrap();
    let o = airlock(&cache)
        .env("DOCKER_CONFIG", empty.path())
        .arg("push")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("docker login"),
        "{stderr}"
    );

    let first = push_json(&cache, &args, Some(&cfg));
    assert!(first["blobs_uploaded"].as_u64().unwrap() >= 5, "{first}");
    pull_and_compare(&packed, &target.addr, Some(&cfg));
    let second = push_json(&cache, &args, Some(&cfg));
    assert_eq!(second["blobs_uploaded"], 0, "{second}");
    assert_eq!(second["blobs_mounted"], 0, "{second}");
}

/// The real case of multi-platform images: the bundle keeps the original index but only the
/// amd64 child. `serve` hands the index to the engine, which picks amd64; `push` into the
/// distribution server (which refuses an index whose children it lacks) tags the platform
/// manifest instead and says so.
#[test]
fn multi_platform_index_through_serve_and_push() {
    if !require_docker() {
        return;
    }
    let source = Registry::start();
    let images = crate::harness::TestImages::build("push-index");
    images.push(&source);
    let repo = "airlock-it/push-index/app";
    let two = source.put_two_platform_index(repo, "1", "multi");
    let (index, amd) = (two.index, two.amd64_manifest);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let bundle = dir.path().join("multi.tar");
    let reference = format!("{}/{repo}:multi", source.addr);
    crate::pack::ok(airlock(&cache).current_dir(dir.path()).args([
        "pack",
        "--image",
        &reference,
        "--platform",
        "linux/amd64",
        "-o",
        bundle.to_str().unwrap(),
    ]));
    drop(source);

    let serve = crate::serve::Serve::start(&[&bundle], &[]);
    let served = format!("{}/{repo}:multi", serve.addr());
    docker_quiet(&["rmi", "-f", &served]);
    docker(&["pull", &served]);
    let digests = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &served,
    ]);
    assert!(
        digests.contains(&index),
        "{digests} lacks the index {index}"
    );
    assert_eq!(docker(&["run", "--rm", &served]), "version 1");
    docker_quiet(&["rmi", "-f", &served]);

    let target = Registry::start();
    let b = bundle.to_str().unwrap();
    let first = push_json(&cache, &[b, "--to", &target.addr], None);
    assert_eq!(
        first["images"][0]["index_not_pushed"],
        index.as_str(),
        "{first}"
    );
    assert_eq!(first["images"][0]["digest"], amd.as_str(), "{first}");
    let pushed = format!("{}/{repo}:multi", target.addr);
    docker_quiet(&["rmi", "-f", &pushed]);
    docker(&["pull", &pushed]);
    assert_eq!(docker(&["run", "--rm", &pushed]), "version 1");
    docker_quiet(&["rmi", "-f", &pushed]);
    let second = push_json(&cache, &[b, "--to", &target.addr], None);
    assert_eq!(second["blobs_uploaded"], 0, "{second}");
    assert_eq!(second["manifests_pushed"], 0, "{second}");
}
