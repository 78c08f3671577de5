//! `airlock serve` against real clients: the engine pulls from it and runs the image,
//! docker-compose v1 starts a stack with the printed override, skopeo inspects and copies,
//! raw HTTP checks the protocol (ranges are exact slices of the bundle, writes refused,
//! `..` and unknown digests get 404), TLS with Basic auth through `docker login`, several
//! bundles at once, SIGTERM, bounded memory under concurrent downloads, and a property
//! test of arbitrary request paths against the running server.

use crate::harness::{Registry, TestImages, airlock, docker, docker_quiet, require_docker, run};
use crate::pack::ok;
use proptest::prelude::*;
use sha2::Digest as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Test images in a loopback registry, packed into one bundle with a compose project
/// (`web` runs app:1, `worker` runs app:2; base is an extra image).
pub struct Packed {
    pub images: TestImages,
    pub registry: Registry,
    pub dir: tempfile::TempDir,
    pub bundle: PathBuf,
    /// Registry references: base, app1, app2.
    pub refs: [String; 3],
    /// bundle.json
    pub meta: serde_json::Value,
}

impl Packed {
    pub fn new(name: &str) -> Packed {
        let registry = Registry::start();
        let images = TestImages::build(name);
        let refs = images.push(&registry);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("compose.yaml"),
            format!(
                "services:\n  web:\n    image: {}\n    command: [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\"]\n  worker:\n    image: {}\n    command: [\"/bin/busybox\", \"sleep\", \"600\"]\n",
                refs[1], refs[2]
            ),
        )
        .unwrap();
        let bundle = dir.path().join("stack.tar");
        ok(airlock(&dir.path().join("cache"))
            .current_dir(dir.path())
            .args(["pack", "--image", &refs[0], "-o", bundle.to_str().unwrap()]));
        let meta =
            serde_json::from_slice(&crate::pack::member(&bundle, "airlock/bundle.json")).unwrap();
        Packed {
            images,
            registry,
            dir,
            bundle,
            refs,
            meta,
        }
    }

    /// bundle.json's entry for a registry reference.
    pub fn image(&self, reference: &str) -> &serde_json::Value {
        self.meta["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ref"] == reference)
            .unwrap_or_else(|| panic!("{reference} not in {}", self.meta))
    }

    /// The repository path of a registry reference (`airlock-it/x/app`) and its tag.
    pub fn repo_tag(reference: &str) -> (String, String) {
        let path = reference.split_once('/').unwrap().1;
        let (repo, tag) = path.rsplit_once(':').unwrap();
        (repo.to_string(), tag.to_string())
    }

    /// The largest layer: digest and size.
    pub fn largest_layer(&self) -> (String, u64) {
        let mut best = (String::new(), 0);
        for img in self.meta["images"].as_array().unwrap() {
            for l in img["layers"].as_array().unwrap() {
                let size = l["size"].as_u64().unwrap();
                if size > best.1 {
                    best = (l["digest"].as_str().unwrap().to_string(), size);
                }
            }
        }
        best
    }
}

/// A running `airlock serve --json`, stopped with SIGTERM on drop.
pub struct Serve {
    child: Child,
    pub port: u16,
    pub doc: serde_json::Value,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    pub fn start(bundles: &[&Path], extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("airlock"))
            .arg("serve")
            .args(bundles)
            .args(["--addr", "127.0.0.1:0", "--json"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let _ = child.wait();
            panic!(
                "serve did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let doc: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let port = doc["listen"]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .1
            .parse()
            .unwrap();
        Serve {
            child,
            port,
            doc,
            log,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then the exit status (killed after 20 s).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A raw HTTP/1.1 answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Send one request over a fresh connection, exactly as written (no path normalisation).
pub fn raw(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&all[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = all[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// Bytes of blob `digest` as the bundle stores them.
pub fn bundle_blob(bundle: &Path, digest: &str) -> Vec<u8> {
    crate::pack::member(
        bundle,
        &format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")),
    )
}

#[test]
fn engine_pulls_and_runs_from_serve() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("serve-pull");
    let serve = Serve::start(&[&packed.bundle], &[]);
    let (repo, tag) = Packed::repo_tag(&packed.refs[1]);
    let name = format!("{}/{repo}:{tag}", serve.addr());
    docker_quiet(&["rmi", "-f", &name]);
    packed
        .images
        .remove(&[&packed.refs[0], &packed.refs[1], &packed.refs[2]]);
    docker(&["pull", &name]);
    let out = docker(&["run", "--rm", &name]);
    assert_eq!(out, "version 1");
    // The engine recorded the digest it pulled: the bundle's top manifest digest.
    let digests = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &name,
    ]);
    let top = packed.image(&packed.refs[1])["top"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(digests.contains(&top), "{digests} lacks {top}");
    docker_quiet(&["rmi", "-f", &name]);
    let log = serve.log();
    assert!(
        log.contains(&format!("\"HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\" 200")),
        "{log}"
    );
    assert!(
        log.contains(&format!("\"GET /v2/{repo}/manifests/{top} HTTP/1.1\" 200")),
        "{log}"
    );
    // The classic store pulls config and every layer; a containerd-store engine fetches only
    // the blobs its content store lacks (the layers stay there after `docker rmi` while
    // another image uses them): at least the config.
    let blobs_expected = if crate::harness::engine().containerd() {
        1
    } else {
        3
    };
    assert!(
        log.lines()
            .filter(|l| l.contains("/blobs/sha256:") && l.contains("\" 200 "))
            .count()
            >= blobs_expected,
        "{log}"
    );
}

#[test]
fn compose_v1_up_with_the_printed_override() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("serve-compose");
    let serve = Serve::start(&[&packed.bundle], &[]);
    let override_yaml = serve.doc["override"].as_str().unwrap().to_string();
    for svc in ["web:", "worker:"] {
        assert!(override_yaml.contains(svc), "{override_yaml}");
    }
    assert!(
        override_yaml.contains(&format!(
            "\"{}/airlock-it/serve-compose/app:1\"",
            serve.addr()
        )),
        "{override_yaml}"
    );
    assert_eq!(
        serve.doc["daemon_json"]["insecure-registries"][0],
        serve.addr()
    );
    let dir = packed.dir.path().to_path_buf();
    std::fs::write(dir.join("served.yml"), &override_yaml).unwrap();
    // Nothing local, and the original registry gone: the only source is airlock serve.
    packed
        .images
        .remove(&[&packed.refs[0], &packed.refs[1], &packed.refs[2]]);
    let Packed {
        registry,
        images,
        dir: _keep,
        ..
    } = packed;
    drop(registry);
    let project = "airlockserve";
    let compose = |args: &[&str]| {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(&dir)
            .args(["-p", project, "-f", "compose.yaml", "-f", "served.yml"])
            .args(args);
        cmd
    };
    let up = compose(&["up", "-d"]).output().unwrap();
    let ps = compose(&["ps", "-q"]).output().unwrap();
    let running = String::from_utf8_lossy(&ps.stdout).lines().count();
    let _ = compose(&["down", "-t", "1"]).output();
    for tag in ["1", "2"] {
        docker_quiet(&[
            "rmi",
            "-f",
            &format!("{}/airlock-it/serve-compose/app:{tag}", serve.addr()),
        ]);
    }
    assert!(
        up.status.success(),
        "compose up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(
        running,
        2,
        "containers: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
    let log = serve.log();
    assert!(
        log.contains("/v2/airlock-it/serve-compose/app/manifests/2"),
        "{log}"
    );
    drop(images);
}

#[test]
fn skopeo_inspects_and_copies() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("serve-skopeo");
    let serve = Serve::start(&[&packed.bundle], &[]);
    let (repo, tag) = Packed::repo_tag(&packed.refs[2]);
    let src = format!("docker://{}/{repo}:{tag}", serve.addr());
    let out = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &src]));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let img = packed.image(&packed.refs[2]);
    assert_eq!(info["Digest"], img["top"]["digest"]);
    assert_eq!(info["RepoTags"], serde_json::json!(["1", "2"]));
    let dest = packed.dir.path().join("copied");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false", &src])
        .arg(format!("dir:{}", dest.display())));
    // skopeo verified every digest; the copied files are the bundle's blobs, byte for byte.
    for l in img["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        let copied = std::fs::read(dest.join(d.trim_start_matches("sha256:"))).unwrap();
        assert_eq!(copied, bundle_blob(&packed.bundle, d));
    }
    let manifest = std::fs::read(dest.join("manifest.json")).unwrap();
    assert_eq!(sha256(&manifest), img["top"]["digest"].as_str().unwrap());
}

#[test]
fn protocol_ranges_writes_and_not_found() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("serve-http");
    let serve = Serve::start(&[&packed.bundle], &[]);
    let port = serve.port;
    let (repo, tag) = Packed::repo_tag(&packed.refs[1]);
    let (base_repo, _) = Packed::repo_tag(&packed.refs[0]);
    let img = packed.image(&packed.refs[1]).clone();
    let top = img["top"]["digest"].as_str().unwrap().to_string();

    let ping = raw(port, "GET", "/v2/", &[]);
    assert_eq!(ping.status, 200);
    assert_eq!(
        ping.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    // Manifests by tag and by digest: stored bytes and exact headers; HEAD has no body.
    let by_tag = raw(port, "GET", &format!("/v2/{repo}/manifests/{tag}"), &[]);
    assert_eq!(by_tag.status, 200);
    assert_eq!(by_tag.body, bundle_blob(&packed.bundle, &top));
    assert_eq!(by_tag.header("Docker-Content-Digest"), Some(top.as_str()));
    assert_eq!(
        by_tag.header("Content-Type"),
        img["top"]["mediaType"].as_str()
    );
    assert_eq!(
        by_tag.header("Content-Length"),
        Some(by_tag.body.len().to_string().as_str())
    );
    let head = raw(
        port,
        "HEAD",
        &format!("/v2/{repo}/manifests/{top}?ns=docker.io&x=1"),
        &[],
    );
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        head.header("Content-Length"),
        by_tag.header("Content-Length")
    );
    assert_eq!(head.header("Docker-Content-Digest"), Some(top.as_str()));

    // Blobs: whole, ranges as exact slices, suffix, unsatisfiable.
    let (layer, size) = packed.largest_layer();
    let bytes = bundle_blob(&packed.bundle, &layer);
    assert_eq!(bytes.len() as u64, size);
    let whole = raw(port, "GET", &format!("/v2/{repo}/blobs/{layer}"), &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(sha256(&whole.body), layer);
    assert_eq!(whole.header("Accept-Ranges"), Some("bytes"));
    let cases: [(String, usize, usize); 4] = [
        ("bytes=0-0".into(), 0, 0),
        ("bytes=1000-70000".into(), 1000, 70000),
        (
            format!("bytes={}-", size - 10),
            size as usize - 10,
            size as usize - 1,
        ),
        ("bytes=-100".into(), size as usize - 100, size as usize - 1),
    ];
    for (range, a, b) in cases {
        let part = raw(
            port,
            "GET",
            &format!("/v2/{repo}/blobs/{layer}"),
            &[("Range", &range)],
        );
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(part.body, bytes[a..=b], "{range}");
        assert_eq!(
            part.header("Content-Range"),
            Some(format!("bytes {a}-{b}/{size}").as_str())
        );
    }
    let bad = raw(
        port,
        "GET",
        &format!("/v2/{repo}/blobs/{layer}"),
        &[("Range", &format!("bytes={size}-"))],
    );
    assert_eq!(bad.status, 416);
    assert_eq!(
        bad.header("Content-Range"),
        Some(format!("bytes */{size}").as_str())
    );

    // Writes refused with a registry error body.
    for (m, path) in [
        ("POST", format!("/v2/{repo}/blobs/uploads/")),
        ("PUT", format!("/v2/{repo}/manifests/evil")),
        ("PATCH", format!("/v2/{repo}/blobs/uploads/x")),
        ("DELETE", format!("/v2/{repo}/manifests/{top}")),
        ("DELETE", format!("/v2/{repo}/blobs/{layer}")),
    ] {
        let a = raw(port, m, &path, &[]);
        assert_eq!(
            (a.status, a.error_code()),
            (405, "UNSUPPORTED".to_string()),
            "{m} {path}"
        );
    }

    // Not found: `..`, unknown digest, unknown name, unknown tag, a blob of another repository.
    let zero = format!("sha256:{}", "0".repeat(64));
    for (path, code) in [
        ("/v2/../../../etc/passwd".to_string(), "NAME_UNKNOWN"),
        (format!("/v2/{repo}/../../blobs/{layer}"), "NAME_UNKNOWN"),
        (format!("/v2/{repo}/blobs/../../../{layer}"), "NAME_UNKNOWN"),
        (format!("/v2/%2e%2e/blobs/{layer}"), "NAME_UNKNOWN"),
        (format!("/v2/{repo}/blobs/{zero}"), "BLOB_UNKNOWN"),
        (format!("/v2/{repo}/manifests/{zero}"), "MANIFEST_UNKNOWN"),
        (format!("/v2/{repo}/manifests/nope"), "MANIFEST_UNKNOWN"),
        (format!("/v2/no/such/repo/manifests/{tag}"), "NAME_UNKNOWN"),
        ("/etc/passwd".to_string(), "NAME_UNKNOWN"),
    ] {
        let a = raw(port, "GET", &path, &[]);
        assert_eq!(
            (a.status, a.error_code()),
            (404, code.to_string()),
            "{path}"
        );
        assert!(
            !String::from_utf8_lossy(&a.body).contains("root:"),
            "{path}"
        );
    }
    // app:2's own top layer is not referenced by base: not served under base's repository.
    let img2 = packed.image(&packed.refs[2]);
    let own = img2["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let a = raw(port, "GET", &format!("/v2/{base_repo}/blobs/{own}"), &[]);
    assert_eq!(
        (a.status, a.error_code()),
        (404, "BLOB_UNKNOWN".to_string())
    );
    assert_eq!(
        raw(port, "GET", &format!("/v2/{repo}/blobs/{own}"), &[]).status,
        200
    );

    // Tags (sorted, paginated), catalog, referrers.
    let tags = raw(port, "GET", &format!("/v2/{repo}/tags/list"), &[]).json();
    assert_eq!(tags["tags"], serde_json::json!(["1", "2"]));
    let page = raw(port, "GET", &format!("/v2/{repo}/tags/list?n=1"), &[]);
    assert_eq!(page.json()["tags"], serde_json::json!(["1"]));
    assert!(
        page.header("Link").unwrap().contains("last=1"),
        "{:?}",
        page.headers
    );
    let rest = raw(
        port,
        "GET",
        &format!("/v2/{repo}/tags/list?n=1&last=1"),
        &[],
    )
    .json();
    assert_eq!(rest["tags"], serde_json::json!(["2"]));
    let catalog = raw(port, "GET", "/v2/_catalog", &[]).json();
    let mut want = vec![base_repo.clone(), repo.clone()];
    want.sort();
    assert_eq!(catalog["repositories"], serde_json::json!(want));
    let refs = raw(port, "GET", &format!("/v2/{repo}/referrers/{top}"), &[]);
    assert_eq!(
        (
            refs.status,
            refs.json()["manifests"].as_array().map(|m| m.len())
        ),
        (200, Some(0))
    );
    assert_eq!(
        raw(port, "GET", &format!("/v2/{repo}/referrers/{zero}"), &[]).status,
        404
    );

    // One access log line per request.
    let log = serve.log();
    assert!(
        log.contains("\"DELETE /v2/") && log.contains("\" 405 "),
        "{log}"
    );
}

#[test]
fn tls_and_basic_auth_with_docker_login() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("serve-tls");
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = crate::harness::test_certs(certs.path());
    let htpasswd = certs.path().join("htpasswd");
    let out = run(Command::new("htpasswd").args(["-Bbn", "fleet", "s3cret"]));
    std::fs::write(&htpasswd, &out.stdout).unwrap();
    let serve = Serve::start(
        &[&packed.bundle],
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--htpasswd",
            htpasswd.to_str().unwrap(),
        ],
    );
    assert_eq!(serve.doc["tls"], true);
    let url = format!("https://{}/v2/", serve.addr());
    // HTTPS verified against the test CA, with and without credentials.
    let status = |creds: Option<(&str, &str)>| -> (u16, Option<String>) {
        let pem = std::fs::read(&ca).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .build()
                .unwrap();
            let mut rb = client.get(&url);
            if let Some((u, p)) = creds {
                rb = rb.basic_auth(u, Some(p));
            }
            let resp = rb.send().await.unwrap();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string());
            (resp.status().as_u16(), challenge)
        })
    };
    assert_eq!(
        status(None),
        (401, Some("Basic realm=\"airlock\"".to_string()))
    );
    assert_eq!(status(Some(("fleet", "wrong"))).0, 401);
    assert_eq!(status(Some(("fleet", "s3cret"))).0, 200);
    // The engine: docker login into a private DOCKER_CONFIG, then pull over TLS.
    let cfg = certs.path().join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let login = Command::new("docker")
        .env("DOCKER_CONFIG", &cfg)
        .args(["login", "-u", "fleet", "--password-stdin", &serve.addr()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"s3cret")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let (repo, tag) = Packed::repo_tag(&packed.refs[1]);
    let name = format!("{}/{repo}:{tag}", serve.addr());
    docker_quiet(&["rmi", "-f", &name]);
    let pull = Command::new("docker")
        .env("DOCKER_CONFIG", &cfg)
        .args(["pull", &name])
        .output()
        .unwrap();
    let ran = Command::new("docker")
        .args(["run", "--rm", &name])
        .output()
        .unwrap();
    docker_quiet(&["rmi", "-f", &name]);
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), "version 1");
    assert!(serve.log().contains(" fleet \"GET /v2/"), "{}", serve.log());
}

#[test]
fn several_bundles_share_content_by_digest() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("serve-multi");
    let dir = packed.dir.path();
    // A second bundle with only app:2 (its base layers are also in the first bundle).
    let second = dir.join("second.tar");
    // Outside the project directory, so no compose file is discovered.
    let empty = tempfile::tempdir().unwrap();
    ok(airlock(&dir.join("cache")).current_dir(empty.path()).args([
        "pack",
        "--image",
        &packed.refs[2],
        "-o",
        second.to_str().unwrap(),
    ]));
    let serve = Serve::start(&[&packed.bundle, &second], &[]);
    assert!(
        serve.doc["warnings"].as_array().unwrap().is_empty(),
        "{}",
        serve.doc
    );
    // Each image once per (repository, tag); both bundles' images listed.
    assert_eq!(
        serve.doc["images"].as_array().unwrap().len(),
        4,
        "{}",
        serve.doc
    );
    let (repo, _) = Packed::repo_tag(&packed.refs[2]);
    let tags = raw(serve.port, "GET", &format!("/v2/{repo}/tags/list"), &[]).json();
    assert_eq!(tags["tags"], serde_json::json!(["1", "2"]));
    let (layer, _) = packed.largest_layer();
    let a = raw(serve.port, "GET", &format!("/v2/{repo}/blobs/{layer}"), &[]);
    assert_eq!(sha256(&a.body), layer);
    // --mirror: the printed daemon.json uses registry-mirrors (with the scheme).
    let mirror = Serve::start(&[&second], &["--mirror"]);
    assert_eq!(
        mirror.doc["daemon_json"]["registry-mirrors"][0],
        format!("http://{}", mirror.addr())
    );
}

#[test]
fn concurrent_downloads_stay_small_and_sigterm_stops() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("serve-load");
    let mut serve = Serve::start(&[&packed.bundle], &["--quiet"]);
    let (repo, _) = Packed::repo_tag(&packed.refs[1]);
    let (layer, size) = packed.largest_layer();
    let port = serve.port;
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let path = format!("/v2/{repo}/blobs/{layer}");
            std::thread::spawn(move || {
                let mut digests = Vec::new();
                for _ in 0..4 {
                    digests.push(sha256(&raw(port, "GET", &path, &[]).body));
                }
                digests
            })
        })
        .collect();
    for t in threads {
        for d in t.join().unwrap() {
            assert_eq!(d, layer);
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.pid())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    // 256 downloads of a ~1 MB blob, 64 at a time: peak memory far below the bytes served.
    assert!(
        hwm_kb < 50 * 1024,
        "peak RSS {hwm_kb} kB (served {} MB)",
        256 * size / 1_000_000
    );
    // --quiet: no access log.
    assert!(!serve.log().contains("GET /v2/"), "{}", serve.log());
    let status = serve.stop().expect("serve did not stop on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after SIGTERM"
    );
}

#[test]
fn refuses_compressed_and_missing_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("b.tar.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    let o = airlock(dir.path())
        .args(["serve", gz.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("gzip -d"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = airlock(dir.path())
        .args(["serve", "/nonexistent.tar"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// Arbitrary request paths against the running server: it never panics or dies, answers
/// only with registry statuses, and any 200 on a blob or manifest path carries bytes whose
/// digest is the one named (so nothing but bundle content ever comes back).
#[test]
fn arbitrary_paths_against_the_server() {
    if !require_docker() {
        return;
    }
    let packed = Packed::new("serve-fuzz");
    let serve = Serve::start(&[&packed.bundle], &["--quiet"]);
    let port = serve.port;
    let (repo, tag) = Packed::repo_tag(&packed.refs[1]);
    let (layer, _) = packed.largest_layer();
    let pieces: Vec<String> = vec![
        "v2".into(),
        "..".into(),
        ".".into(),
        "%2e%2e".into(),
        "%2F".into(),
        "".into(),
        repo.clone(),
        tag.clone(),
        "manifests".into(),
        "blobs".into(),
        "tags".into(),
        "list".into(),
        "_catalog".into(),
        "uploads".into(),
        "referrers".into(),
        layer.clone(),
        "etc".into(),
        "passwd".into(),
        "sha256:".into(),
        "\u{e9}".into(),
    ];
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(parts in proptest::collection::vec(0..pieces.len(), 0..8), lead in any::<bool>(), method in 0usize..4)| {
        let mut path = if lead { "/v2".to_string() } else { String::new() };
        for p in &parts {
            path.push('/');
            path.push_str(&pieces[*p]);
        }
        if path.is_empty() {
            path.push('/');
        }
        let path: String = path.chars().map(|c| if c.is_ascii() { c.to_string() } else { "%C3%A9".into() }).collect();
        let m = ["GET", "HEAD", "PUT", "DELETE"][method];
        let a = raw(port, m, &path, &[]);
        prop_assert!([200, 206, 400, 404, 405, 416].contains(&a.status), "{m} {path} -> {}", a.status);
        if a.status == 200 && m == "GET" {
            if let Some(d) = path.rsplit('/').next().filter(|d| d.starts_with("sha256:") && d.len() == 71) {
                prop_assert_eq!(sha256(&a.body), d.to_string(), "{}", path);
            }
            prop_assert!(!String::from_utf8_lossy(&a.body).contains("root:x:"));
        }
        if m != "GET" && m != "HEAD" {
            prop_assert_eq!(a.status, 405);
        }
    });
    // Still serving.
    assert_eq!(raw(port, "GET", "/v2/", &[]).status, 200);
}
