//! The offline side against the real engine and docker-compose: verify, inspect, load, up,
//! check. Each test packs its own small stack (FROM scratch + busybox) from a loopback
//! registry, then removes the images and stops the registry before going "offline".
//! Compose projects, images and volumes are unique per test and removed by Drop guards.

use crate::harness::{self, ComposeCleanup as Cleanup, Registry, json_of, ok, require_docker};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Build a FROM-scratch busybox image `tag` with extra files and Dockerfile lines.
fn build_image(tag: &str, extra_files: &[(&str, &str)], extra_lines: &str) {
    let ctx = tempfile::tempdir().unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static");
    std::fs::copy(busybox, ctx.path().join("busybox")).unwrap();
    for (name, text) in extra_files {
        std::fs::write(ctx.path().join(name), text).unwrap();
    }
    // The label makes the image ID unique per test (layers stay shared with other tests).
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n{extra_lines}LABEL airlock.test=\"{tag}\"\n"
    );
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    harness::docker_build(ctx.path(), tag, None);
}

/// A packed stack: compose project written, images built and pushed, bundle packed, then
/// the images removed and the registry stopped.
struct Packed {
    /// Holds the online project, the bundle and the offline directory.
    work: tempfile::TempDir,
    bundle: PathBuf,
    cache: PathBuf,
    _cleanup: Cleanup,
    project: String,
}

impl Packed {
    fn offline_dir(&self) -> PathBuf {
        self.work.path().join("offline").join(&self.project)
    }
    fn airlock(&self) -> assert_cmd::Command {
        harness::airlock(&self.cache)
    }
}

/// An image to build: (name under `<registry>/<project>/`, extra files, Dockerfile lines).
type ImageSpec<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// `compose` is the compose file, with `${REGISTRY}` for the registry address; `files` are
/// more files of the project (path relative to it, content).
fn pack_stack(
    name: &str,
    images: &[ImageSpec<'_>],
    compose: &str,
    env: &str,
    files: &[(&str, &str)],
) -> Packed {
    let registry = Registry::start();
    let project = format!("airlock-it-{name}");
    let work = tempfile::tempdir().unwrap();
    let online = work.path().join("online").join(&project);
    std::fs::create_dir_all(&online).unwrap();
    let mut tags = Vec::new();
    for (img, files, lines) in images {
        let tag = format!("{}/{project}/{img}:1.0", registry.addr);
        build_image(&tag, files, lines);
        // skopeo from the engine, not `docker push`: podman's push refuses a plain-HTTP registry.
        registry.push(&tag, &format!("{project}/{img}:1.0"));
        tags.push(tag);
    }
    std::fs::write(online.join("compose.yaml"), compose).unwrap();
    for (rel, text) in files {
        let path = online.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(
        online.join(".env"),
        format!("REGISTRY={}\n{env}", registry.addr),
    )
    .unwrap();
    let cache = work.path().join("cache");
    let bundle = work.path().join(format!("{project}.tar"));
    harness::airlock(&cache)
        .current_dir(&online)
        .arg("pack")
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();
    for t in &tags {
        harness::docker(&["rmi", "-f", t]);
    }
    drop(registry); // offline from here on
    std::fs::create_dir_all(work.path().join("offline")).unwrap();
    Packed {
        work,
        bundle,
        cache,
        _cleanup: Cleanup {
            project: project.clone(),
            images: tags,
        },
        project,
    }
}

const WEB_COMPOSE: &str = r#"services:
  setup:
    image: ${REGISTRY}/airlock-it-NAME/setup:1.0
    command: ["sh", "-c", "echo ready > /data/status && echo '<h1>hello</h1>' > /data/index.html && echo $$GREETING > /data/greeting && cp /site/conf.d/extra.html /data/extra.html"]
    env_file: [setup.env]
    volumes: ["data:/data", "./site/conf.d:/site/conf.d:ro"]
  web:
    image: ${REGISTRY}/airlock-it-NAME/web:1.0
    command: ["httpd", "-f", "-p", "80", "-h", "/data"]
    volumes: ["data:/data:ro"]
    ports: ["127.0.0.1:${WEB_PORT}:80"]
    depends_on:
      setup: {condition: service_completed_successfully}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/status"]
      interval: 1s
      retries: 30
volumes:
  data:
"#;

fn web_stack(name: &str) -> (Packed, u16) {
    let port = harness::free_port();
    let compose = WEB_COMPOSE.replace("NAME", name);
    let p = pack_stack(
        name,
        &[
            ("setup", &[], ""),
            (
                "web",
                &[("index.html", "hello\n")],
                "COPY index.html /srv/index.html\n",
            ),
        ],
        &compose,
        &format!("WEB_PORT={port}\n"),
        // Run files: an env_file and a bind-mounted directory the bundle must carry.
        &[
            ("setup.env", "GREETING=hello from setup.env\n"),
            ("site/conf.d/extra.html", "carried\n"),
        ],
    );
    (p, port)
}

/// A plain HTTP/1.0 GET on 127.0.0.1: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn container_starts(project: &str) -> Vec<String> {
    let ids = harness::docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    let mut out: Vec<String> = ids
        .split_whitespace()
        .map(|id| {
            harness::docker(&[
                "inspect",
                "-f",
                "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}",
                id,
            ])
        })
        .collect();
    out.sort();
    out
}

/// The guide end to end: verify, up (load, start, wait, check), HTTP 200, check; up again
/// changes nothing; plain `docker load -i` accepts the same file.
#[test]
fn end_to_end_up_twice_and_docker_load() {
    if !require_docker() {
        return;
    }
    let (p, port) = web_stack("e2e");
    let verify = ok(p.airlock().arg("verify").arg(&p.bundle).arg("--json"));
    let v = json_of(&verify);
    assert_eq!(v["ok"], true);
    assert_eq!(v["images"].as_array().unwrap().len(), 2);

    let inspect = json_of(
        &p.airlock()
            .arg("inspect")
            .arg(&p.bundle)
            .arg("--json")
            .output()
            .unwrap(),
    );
    assert_eq!(inspect["project"], p.project);
    assert_eq!(inspect["compose"]["files"][0], "compose.yaml");
    assert_eq!(
        inspect["compose"]["run_files"],
        serde_json::json!(["setup.env", "site/conf.d/extra.html"]),
        "{inspect:#}"
    );

    let dir = p.offline_dir();
    let up = p
        .airlock()
        .arg("up")
        .arg(&p.bundle)
        .arg("--dir")
        .arg(&dir)
        .args(["--timeout", "90s", "--json"])
        .output()
        .unwrap();
    let u = json_of(&up);
    assert!(
        up.status.success(),
        "up failed: {u:#}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(u["check"]["ok"], true);
    assert!(u["load"]["sent"].as_bool().unwrap());
    let probe = u["check"]["probes"].as_array().unwrap();
    assert_eq!(probe[0]["status"], 200, "{u:#}");
    assert!(
        probe[0]["url"]
            .as_str()
            .unwrap()
            .contains(&port.to_string())
    );
    assert!(
        dir.join("compose.yaml").exists()
            && dir.join(".env").exists()
            && dir.join("airlock.override.yml").exists()
    );

    // HTTP from the host
    let (status, body) = http_get(port, "/status");
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "ready");
    // The run files came with the bundle: the env_file and the bind-mounted directory.
    assert_eq!(http_get(port, "/greeting").1.trim(), "hello from setup.env");
    assert_eq!(http_get(port, "/extra.html").1.trim(), "carried");
    assert!(dir.join("setup.env").is_file() && dir.join("site/conf.d/extra.html").is_file());

    // check --dir on its own
    ok(p.airlock()
        .arg("check")
        .arg("--dir")
        .arg(&dir)
        .arg("--json"));

    // up twice: nothing loaded, nothing restarted, files untouched
    let before = container_starts(&p.project);
    let mtime = std::fs::metadata(dir.join("compose.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    let again = p
        .airlock()
        .arg("up")
        .arg(&p.bundle)
        .arg("--dir")
        .arg(&dir)
        .args(["--timeout", "60s", "--json"])
        .output()
        .unwrap();
    let a = json_of(&again);
    assert!(again.status.success(), "{a:#}");
    assert_eq!(a["load"]["sent"], false);
    assert!(
        a["load"]["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "present"),
        "{a:#}"
    );
    assert_eq!(container_starts(&p.project), before);
    assert_eq!(
        std::fs::metadata(dir.join("compose.yaml"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );

    // plain docker load of the same file (after the stack is gone)
    let images = p._cleanup.images.clone();
    drop(p._cleanup);
    let _loaded = Cleanup {
        project: p.project.clone(),
        images,
    };
    let out = harness::docker(&["load", "-i", p.bundle.to_str().unwrap()]);
    assert!(out.contains("Loaded image"), "{out}");
}

/// A bundle packed from an older compose file lacks the image a new service needs: `up`
/// lists it and changes nothing (no files written, no image loaded, no container).
#[test]
fn up_refuses_when_an_image_is_missing() {
    if !require_docker() {
        return;
    }
    let (p, _) = web_stack("missing");
    let tampered = p.work.path().join("tampered.tar");
    rewrite_member(
        &p.bundle,
        &tampered,
        "airlock/compose/compose.yaml",
        |text| {
            format!("{text}\n").replace("volumes:\n  data:\n", "  extra:\n    image: ${REGISTRY}/airlock-it-missing/extra:9.9\nvolumes:\n  data:\n")
        },
    );
    // verify plans the carried compose project: the new service's image is not in the bundle
    let verify = p
        .airlock()
        .arg("verify")
        .arg(&tampered)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(1));
    let v = json_of(&verify);
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|pr| pr["kind"] == "missing-image"
                && pr["image"]
                    .as_str()
                    .unwrap()
                    .ends_with("airlock-it-missing/extra:9.9")),
        "{v:#}"
    );
    let dir = p.offline_dir();
    let up = p
        .airlock()
        .arg("up")
        .arg(&tampered)
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&up.stdout);
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("airlock-it-missing/extra:9.9"), "{stdout}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(!dir.exists(), "up wrote files before refusing");
    assert!(container_starts(&p.project).is_empty());
    assert!(!harness::image_exists(&format!(
        "{}/airlock-it-missing/web:1.0",
        registry_of(&p)
    )));
}

fn registry_of(p: &Packed) -> String {
    let env = std::fs::read_to_string(p.work.path().join("online").join(&p.project).join(".env"))
        .unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix("REGISTRY="))
        .unwrap()
        .to_string()
}

/// Copy a bundle, replacing one compose member and its SHA256SUMS line.
fn rewrite_member(src: &Path, dst: &Path, member: &str, edit: impl Fn(&str) -> String) {
    let mut archive = tar::Archive::new(std::fs::File::open(src).unwrap());
    let mut members: Vec<(tar::Header, String, Vec<u8>)> = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        members.push((e.header().clone(), name, data));
    }
    let new = edit(&String::from_utf8_lossy(
        &members.iter().find(|m| m.1 == member).unwrap().2,
    ))
    .into_bytes();
    let new_hex = hex_sha256(&new);
    for m in members.iter_mut() {
        if m.1 == member {
            m.2 = new.clone();
        }
    }
    let sums = members
        .iter_mut()
        .find(|m| m.1 == "airlock/SHA256SUMS")
        .unwrap();
    let text: String = String::from_utf8_lossy(&sums.2)
        .lines()
        .map(|l| {
            if l.ends_with(&format!("  {member}")) {
                format!("{new_hex}  {member}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    sums.2 = text.into_bytes();
    let mut b = tar::Builder::new(std::fs::File::create(dst).unwrap());
    for (mut h, name, data) in members {
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, &name, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

fn hex_sha256(bytes: &[u8]) -> String {
    airlock::digest::Digest::of(bytes).hex().to_string()
}

/// A crash-looping service is named with its last log lines; a frontend that cannot
/// resolve its upstream shows the DNS signature; both exit 1.
#[test]
fn check_names_crash_loops_and_dns_failures() {
    if !require_docker() {
        return;
    }
    let compose = r#"services:
  worker:
    image: ${REGISTRY}/airlock-it-broken/base:1.0
    command: ["sh", "-c", "echo worker starting; echo 'fatal: cannot open /etc/worker.conf'; exit 3"]
    restart: always
  frontend:
    image: ${REGISTRY}/airlock-it-broken/base:1.0
    command: ["sh", "-c", "while true; do wget -q -O - http://api-upstream:8080/ || true; sleep 1; done"]
"#;
    let p = pack_stack("broken", &[("base", &[], "")], compose, "", &[]);
    let dir = p.offline_dir();
    let up = p
        .airlock()
        .arg("up")
        .arg(&p.bundle)
        .arg("--dir")
        .arg(&dir)
        .args(["--timeout", "45s", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        up.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let check = p
        .airlock()
        .arg("check")
        .arg("--dir")
        .arg(&dir)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let c = json_of(&check);
    let service = |name: &str| {
        c["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == name)
            .cloned()
            .unwrap()
    };
    let worker = service("worker");
    assert_eq!(worker["status"], "fail", "{c:#}");
    assert!(
        worker["last_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("cannot open /etc/worker.conf")),
        "{worker:#}"
    );
    let frontend = service("frontend");
    assert_eq!(frontend["status"], "fail", "{c:#}");
    assert!(
        frontend["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "dns"),
        "{frontend:#}"
    );
    let human = p
        .airlock()
        .arg("check")
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("worker") && text.contains("bad address"),
        "{text}"
    );
}

/// One flipped bit in a layer, and in a config: verify names that blob, exit 1. A truncated
/// bundle: a clear error, exit 1, for verify and for load.
#[test]
fn verify_names_corrupt_blobs_and_truncation() {
    if !require_docker() {
        return;
    }
    let p = pack_stack(
        "corrupt",
        &[("base", &[], "")],
        "services:\n  a:\n    image: ${REGISTRY}/airlock-it-corrupt/base:1.0\n",
        "",
        &[],
    );
    let members = airlock::bundle::read::Bundle::open(&p.bundle)
        .unwrap()
        .members()
        .unwrap();
    let meta = airlock::bundle::read::Bundle::open(&p.bundle)
        .unwrap()
        .open_meta()
        .unwrap();
    let config = meta.meta.images[0].config.digest.clone();
    let largest = members
        .iter()
        .filter(|m| m.name.starts_with("blobs/"))
        .max_by_key(|m| m.size)
        .unwrap()
        .clone();
    let config_member = members
        .iter()
        .find(|m| m.blob_digest().as_ref() == Some(&config))
        .unwrap()
        .clone();
    let original = std::fs::read(&p.bundle).unwrap();
    for (member, at) in [
        (&largest, largest.size / 2),
        (&largest, largest.size - 1),
        (&config_member, 3),
    ] {
        let mut bytes = original.clone();
        bytes[(member.offset + at) as usize] ^= 0x01;
        let bad = p.work.path().join("flipped.tar");
        std::fs::write(&bad, &bytes).unwrap();
        let out = p
            .airlock()
            .arg("verify")
            .arg(&bad)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let v = json_of(&out);
        let digest = member.blob_digest().unwrap().to_string();
        assert!(
            v["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|pr| pr["kind"] == "blob-digest" && pr["blob"] == digest.as_str()),
            "{v:#}"
        );
        let human = p.airlock().arg("verify").arg(&bad).output().unwrap();
        assert!(
            String::from_utf8_lossy(&human.stdout).contains(&digest),
            "{}",
            String::from_utf8_lossy(&human.stdout)
        );
    }
    for cut in [
        original.len() / 2,
        original.len() - 1024 - 100,
        largest.offset as usize + 10,
    ] {
        let short = p.work.path().join("short.tar");
        std::fs::write(&short, &original[..cut]).unwrap();
        let out = p.airlock().arg("verify").arg(&short).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "cut at {cut}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("truncated"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let load = p.airlock().arg("load").arg(&short).output().unwrap();
        assert!(!load.status.success());
        let err = String::from_utf8_lossy(&load.stderr);
        assert!(err.contains("truncated"), "{err}");
    }
}

/// zstd- and gzip-compressed bundles load (Engine 20.10 itself refuses zstd); a second load
/// sends nothing; an engine holding the base layers gets only the new ones (on the containerd
/// store: leaves out the blobs of the still-loaded `side` image).
#[test]
fn load_compressed_bundles_and_skip_what_is_present() {
    if !require_docker() {
        return;
    }
    let p = pack_stack(
        "compressed",
        &[
            ("app", &[("v.txt", "compressed\n")], "COPY v.txt /v.txt\n"),
            ("side", &[("s.txt", "side\n")], "COPY s.txt /s.txt\n"),
        ],
        "services:\n  a:\n    image: ${REGISTRY}/airlock-it-compressed/app:1.0\n  b:\n    image: ${REGISTRY}/airlock-it-compressed/side:1.0\n",
        "",
        &[],
    );
    let reference = format!("{}/airlock-it-compressed/app:1.0", registry_of(&p));
    let raw = std::fs::read(&p.bundle).unwrap();
    let zst = p.work.path().join("b.tar.zst");
    std::fs::write(&zst, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
    let gz = p.work.path().join("b.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &raw).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    // The engine keeps the layers through another image: a holder made FROM the app image
    // with only a label (same layers, another config), so removing the app's tag keeps them.
    ok(p.airlock().arg("load").arg(&p.bundle));
    let holder = format!("airlock-it/compressed-holder:{}", std::process::id());
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {reference}\nLABEL airlock.test=holder\n"),
    )
    .unwrap();
    harness::docker_build(ctx.path(), &holder, None);
    let _holder = Cleanup {
        project: "airlock-it-compressed-holder".into(),
        images: vec![holder],
    };
    for file in [&zst, &gz] {
        harness::docker_quiet(&["rmi", "-f", &reference]);
        assert!(!harness::image_exists(&reference));
        let out = ok(p.airlock().arg("load").arg(file).arg("--json"));
        let l = json_of(&out);
        assert_eq!(l["sent"], true);
        eprintln!(
            "load after rmi: blobs_sent {} bytes_sent {} blobs_skipped {} bytes_skipped {}",
            l["blobs_sent"], l["bytes_sent"], l["blobs_skipped"], l["bytes_skipped"]
        );
        if harness::engine().containerd() {
            // Engine-specific: a containerd-store engine gets the bundle but the blobs of
            // images whose top digest is an image ID there (the `side` image, still loaded:
            // its manifest, config and layers, the base layer shared with `app` among them),
            // which its content store holds (docs/engines.md). The holder, built on the
            // engine, proves nothing about the content store.
            assert!(l["blobs_skipped"].as_u64().unwrap() >= 3, "{l:#}");
        } else if harness::engine().store == harness::Store::Podman {
            // Engine-specific: podman's `docker load` wants the file of every layer
            // manifest.json names, even of layers it holds ("Some layer tarfiles are missing
            // in the tarball"), so only images present are skipped, never layers.
            assert_eq!(l["blobs_skipped"], 0, "{l:#}");
            assert!(l["blobs_sent"].as_u64().unwrap() >= 3, "{l:#}");
        } else {
            // every layer is on the engine already (the holder's): skipped, only the config sent
            assert!(l["blobs_skipped"].as_u64().unwrap() >= 3, "{l:#}");
        }
        assert!(harness::image_exists(&reference));
        ok(p.airlock().arg("verify").arg(file));
    }
    let again = json_of(
        &p.airlock()
            .arg("load")
            .arg(&p.bundle)
            .arg("--json")
            .output()
            .unwrap(),
    );
    assert_eq!(again["sent"], false);
    assert_eq!(again["images"][0]["action"], "present");
}

/// `airlock check` run inside the directory `up` wrote (it holds `.airlock-up.json`), with no
/// option, uses the state `up` left there as `--dir .` does: the project name and files come
/// from it, not from the directory's name.
#[test]
fn check_inside_the_up_directory_uses_its_state() {
    if !require_docker() {
        return;
    }
    let (p, _) = web_stack("inside");
    // A directory whose name is not the project's.
    let dir = p.work.path().join("offline").join("site-a");
    let up = p
        .airlock()
        .arg("up")
        .arg(&p.bundle)
        .arg("--dir")
        .arg(&dir)
        .args(["--timeout", "90s"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let check = p
        .airlock()
        .current_dir(&dir)
        .args(["check", "--json"])
        .output()
        .unwrap();
    let c = json_of(&check);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{c:#}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(c["project"], p.project.as_str(), "{c:#}");
    assert!(
        c["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] != "fail"),
        "{c:#}"
    );
}

/// Compose refuses to start the stack (the published port is taken): `up` stops as soon as
/// compose exits, exit 1, showing compose's own error lines; it never waits out --timeout.
#[test]
fn up_stops_at_once_when_compose_fails() {
    if !require_docker() {
        return;
    }
    let (p, _) = web_stack("compose-fails");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // The user's edited .env wins over the bundle's: the web service publishes a taken port.
    let dir = p.offline_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        format!("REGISTRY={}\nWEB_PORT={port}\n", registry_of(&p)),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let up = p
        .airlock()
        .arg("up")
        .arg(&p.bundle)
        .arg("--dir")
        .arg(&dir)
        .args(["--timeout", "240s"])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(1), "{stderr}");
    assert!(
        elapsed < Duration::from_secs(120),
        "up took {elapsed:?}: {stderr}"
    );
    assert!(
        stderr.contains(&port.to_string())
            && (stderr.contains("already in use") || stderr.contains("already allocated")),
        "compose's error line is missing: {stderr}"
    );
    assert!(stderr.contains("compose"), "{stderr}");
    assert!(!stderr.contains("waiting for"), "{stderr}");
    drop(taken);
}

/// Under docker-compose 1.x (AIRLOCK_COMPOSE=v1), a compose file with a top-level key only
/// Compose v2 reads (`name:`) is refused before anything changes: exit 2, naming the file,
/// the key and Compose v2; no file written, no image loaded.
#[test]
fn up_under_v1_refuses_keys_only_compose_v2_reads() {
    if !require_docker() {
        return;
    }
    let compose = "name: airlock-it-v1name\nservices:\n  a:\n    image: ${REGISTRY}/airlock-it-v1name/base:1.0\n    command: [\"sleep\", \"300\"]\n";
    let p = pack_stack("v1name", &[("base", &[], "")], compose, "", &[]);
    let dir = p.offline_dir();
    let up = p
        .airlock()
        .env("AIRLOCK_COMPOSE", "v1")
        .arg("up")
        .arg(&p.bundle)
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("compose.yaml")
            && stderr.contains("`name:`")
            && stderr.contains("Compose v2"),
        "{stderr}"
    );
    assert!(!dir.exists(), "up wrote files before refusing");
    assert!(!harness::image_exists(&format!(
        "{}/airlock-it-v1name/base:1.0",
        registry_of(&p)
    )));
}

/// A service pinned by digest (`name@sha256:...`): `up` starts it offline on either store.
/// The classic store records no repo digest on load, so `load` tags the image
/// `name:airlock-<hex>` and the override points the service at that tag; the containerd store
/// keeps the digest, so the pinned reference itself resolves on the engine.
#[test]
fn up_with_a_digest_pinned_reference() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start();
    let project = "airlock-it-pinned".to_string();
    let work = tempfile::tempdir().unwrap();
    let online = work.path().join("online").join(&project);
    std::fs::create_dir_all(&online).unwrap();
    let tag = format!("{}/{project}/base:1.0", registry.addr);
    build_image(&tag, &[], "");
    harness::docker(&["push", "-q", &tag]);
    let pinned = harness::docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &tag,
    ]);
    assert!(pinned.contains("@sha256:"), "{pinned}");
    std::fs::write(
        online.join("compose.yaml"),
        format!("services:\n  a:\n    image: {pinned}\n    command: [\"sleep\", \"300\"]\n"),
    )
    .unwrap();
    let cache = work.path().join("cache");
    let bundle = work.path().join("pinned.tar");
    harness::airlock(&cache)
        .current_dir(&online)
        .arg("pack")
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();
    harness::docker(&["rmi", "-f", &tag]);
    drop(registry);
    let _cleanup = Cleanup {
        project: project.clone(),
        images: vec![tag.clone(), pinned.clone()],
    };
    let dir = work.path().join("offline").join(&project);
    let up = harness::airlock(&cache)
        .arg("up")
        .arg(&bundle)
        .arg("--dir")
        .arg(&dir)
        .args(["--timeout", "60s", "--json"])
        .output()
        .unwrap();
    let u = json_of(&up);
    assert!(
        up.status.success(),
        "{u:#}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(u["check"]["ok"], true, "{u:#}");
    let pins = u["load"]["pinned"].as_array().cloned().unwrap_or_default();
    if harness::engine().containerd() {
        // The store keeps the digest: the reference as written resolves.
        assert!(harness::image_exists(&pinned), "{pinned} does not resolve");
    }
    // Either way the service runs the pinned image, through the tag load reports (if any).
    for p in &pins {
        assert!(harness::image_exists(p["tag"].as_str().unwrap()), "{u:#}");
    }
    assert!(
        !harness::engine().classic() || !pins.is_empty(),
        "the classic store needs a local tag for a pinned reference: {u:#}"
    );
}
