//! Shared test harness: engine availability (skip rules), a real loopback registry
//! (Debian's `docker-registry`, the distribution server), small test images built with the
//! engine (`FROM scratch` + Debian's busybox-static), and the `airlock` binary with a
//! private cache. Every helper panics with the command's stderr when the environment breaks.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// The compose fixtures folder (`AIRLOCK_FIXTURES`, default `../shared/fixtures/compose`).
pub fn fixtures() -> PathBuf {
    match std::env::var_os("AIRLOCK_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/compose"),
    }
}

/// Whether engine tests should run. `false` = skip (only allowed when
/// `AIRLOCK_REQUIRE_DOCKER` is unset and no engine answers); panics when the engine is
/// required but absent.
pub fn require_docker() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    if !up {
        if std::env::var_os("AIRLOCK_REQUIRE_DOCKER").is_some() {
            panic!("AIRLOCK_REQUIRE_DOCKER is set but no Docker engine answers `docker version`");
        }
        eprintln!(
            "skipping: no Docker engine (set AIRLOCK_REQUIRE_DOCKER=1 to make this an error)"
        );
    }
    up
}

/// How the engine under test keeps images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// A graphdriver (overlay2, fuse-overlayfs, vfs): image ID = config digest, layers
    /// kept uncompressed only.
    Classic,
    /// The containerd image store (`driver-type: io.containerd.snapshotter.v1`): image ID =
    /// manifest digest, compressed blobs kept in containerd's content store.
    Containerd,
    /// podman's containers/storage behind its Docker-compatible API.
    Podman,
}

/// The engine the tests run against (the one `DOCKER_HOST` names, else the local socket).
#[derive(Debug, Clone)]
pub struct TestEngine {
    /// `AIRLOCK_TEST_ENGINE` as `scripts/test` sets it (`20.10-classic`, `26-containerd`,
    /// `podman`), else made from what the engine says (`<version>-<store>`).
    pub name: String,
    /// The engine's version (`docker version`'s server version).
    pub version: String,
    pub store: Store,
}

impl TestEngine {
    pub fn containerd(&self) -> bool {
        self.store == Store::Containerd
    }
    pub fn classic(&self) -> bool {
        self.store == Store::Classic
    }
}

/// The engine under test, asked once (`docker version` and `docker info`). Panics when no
/// engine answers: call `require_docker()` first.
pub fn engine() -> &'static TestEngine {
    static ENGINE: OnceLock<TestEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let version = docker(&["version", "--format", "{{.Server.Version}}"]);
        let server = docker(&["version", "--format", "{{json .Server}}"]);
        let drivers = docker(&["info", "--format", "{{json .DriverStatus}}"]);
        let store = if server.contains("Podman") {
            Store::Podman
        } else if drivers.contains("io.containerd.snapshotter") {
            Store::Containerd
        } else {
            Store::Classic
        };
        let name = std::env::var("AIRLOCK_TEST_ENGINE").unwrap_or_else(|_| {
            let kind = match store {
                Store::Classic => "classic",
                Store::Containerd => "containerd",
                Store::Podman => "podman",
            };
            format!("{version}-{kind}")
        });
        eprintln!("engine under test: {name} ({version}, {store:?} store)");
        TestEngine {
            name,
            version,
            store,
        }
    })
}

/// The ID the engine under test gives an image of a bundle (`img`: one entry of bundle.json's
/// `images`): the config digest on the classic store; on the containerd store the digest of
/// the manifest (or index) the image record points at, which is the bundle's `top`.
pub fn bundle_image_id(img: &serde_json::Value) -> String {
    let key = if engine().containerd() {
        "top"
    } else {
        "config"
    };
    img[key]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}.digest in {img}"))
        .to_string()
}

/// Which Compose CLI runs projects in these tests (and in `airlock up`, which reads the
/// same variable): `AIRLOCK_COMPOSE=v1` (docker-compose 1.29) or `v2` (default: the
/// Compose v2 Docker CLI plugin when `docker compose` runs, else v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    V1,
    V2,
}

pub fn compose_runner() -> Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    *RUNNER.get_or_init(|| match std::env::var("AIRLOCK_COMPOSE").as_deref() {
        Ok("v1") => Runner::V1,
        Ok("v2") => Runner::V2,
        Ok(other) => panic!("AIRLOCK_COMPOSE={other}: expected v1 or v2"),
        Err(_) => {
            let v2 = Command::new("docker")
                .args(["compose", "version", "--short"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if v2 { Runner::V2 } else { Runner::V1 }
        }
    })
}

/// A `Command` running the Compose CLI of `compose_runner()`: `docker compose` or
/// `docker-compose`.
pub fn compose_command() -> Command {
    match compose_runner() {
        Runner::V2 => {
            let mut c = Command::new("docker");
            c.arg("compose");
            c
        }
        Runner::V1 => Command::new("docker-compose"),
    }
}

/// Run a command, panic with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Image builds and image removals exclude each other. Removing an image also removes its
/// untagged parents, and the classic builder's cache may be using one of them as the parent
/// of a step in a concurrent build ("unknown parent image"). Builds share the lock; removals
/// (`docker rmi`, `docker image rm|prune`, through `docker` and `docker_quiet`) take it alone.
static IMAGES: RwLock<()> = RwLock::new(());

fn is_removal(args: &[&str]) -> bool {
    matches!(
        args,
        ["rmi", ..] | ["image", "rm" | "prune", ..] | ["system", "prune", ..]
    )
}

/// `docker build` (classic builder, quiet) of `context` as `tag`, with `dockerfile` or the
/// context's `Dockerfile`; never at the same time as an image removal.
pub fn docker_build(context: &Path, tag: &str, dockerfile: Option<&Path>) {
    let _building = IMAGES.read().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", tag]);
    if let Some(f) = dockerfile {
        cmd.arg("-f").arg(f);
    }
    run(cmd.arg(context));
}

/// `docker ARGS...`, panicking on failure; returns stdout trimmed.
pub fn docker(args: &[&str]) -> String {
    let _removing = is_removal(args).then(|| IMAGES.write().unwrap_or_else(|e| e.into_inner()));
    let out = run(Command::new("docker").args(args));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker ARGS...` ignoring failure (cleanup).
pub fn docker_quiet(args: &[&str]) {
    let _removing = is_removal(args).then(|| IMAGES.write().unwrap_or_else(|e| e.into_inner()));
    let _ = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether the engine has an image (by reference or ID).
pub fn image_exists(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `127.0.0.1:port` accepts connections.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
}

/// A real distribution registry (Debian `docker-registry`) on a free loopback port, with
/// its storage in a temporary directory. Killed on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub port: u16,
    /// CA certificate (PEM) that signed the server certificate, for TLS registries.
    pub ca_cert: Option<PathBuf>,
    /// Basic auth credentials, for registries started with them.
    pub credentials: Option<(String, String)>,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// Plain HTTP, anonymous.
    pub fn start() -> Registry {
        Self::start_with(false, None)
    }

    /// TLS with a self-signed CA (`ca_cert`) and htpasswd (bcrypt) Basic auth.
    pub fn start_tls_basic(user: &str, password: &str) -> Registry {
        Self::start_with(true, Some((user.to_string(), password.to_string())))
    }

    fn start_with(tls: bool, credentials: Option<(String, String)>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        let mut ca_cert = None;
        if tls {
            let (ca, cert, key) = make_certs(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca_cert = Some(ca);
        }
        if let Some((user, password)) = &credentials {
            let htpasswd = dir.path().join("htpasswd");
            let out = run(Command::new("htpasswd").args(["-Bbn", user, password]));
            std::fs::write(&htpasswd, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: airlock-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect(
                "start docker-registry (Debian package docker-registry; scripts/test installs it)",
            );
        wait_for_port(port, Duration::from_secs(20));
        Registry {
            addr,
            port,
            ca_cert,
            credentials,
            child,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT` or `https://...`
    pub fn url(&self) -> String {
        let scheme = if self.ca_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The registry's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Push a local engine image into this registry as `<addr>/<repo_tag>`; returns that reference.
    /// Uses skopeo (from the engine) so TLS and Basic auth need no `docker login`.
    pub fn push(&self, local: &str, repo_tag: &str) -> String {
        let target = format!("{}/{}", self.addr, repo_tag);
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some((u, p)) = &self.credentials {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        // skopeo 1.9's `docker-daemon:` transport asks the engine in a way the containerd
        // image store answers with "reference does not exist"; there, go through
        // `docker save` (which the store answers) and skopeo's `docker-archive:`.
        let _archive_dir;
        if engine().classic() {
            cmd.arg(format!("docker-daemon:{local}"));
        } else {
            let dir = tempfile::tempdir().expect("tempdir");
            let tar = dir.path().join("image.tar");
            docker(&["save", "-o", tar.to_str().unwrap(), local]);
            cmd.arg(format!("docker-archive:{}", tar.display()));
            _archive_dir = dir;
        }
        cmd.arg(format!("docker://{target}"));
        run(&mut cmd);
        target
    }

    /// Write a DOCKER_CONFIG directory holding this registry's credentials; returns its path.
    pub fn docker_config(&self, dir: &Path) -> PathBuf {
        use base64::Engine as _;
        let cfg = dir.join("docker-config");
        std::fs::create_dir_all(&cfg).unwrap();
        let auths = match &self.credentials {
            Some((u, p)) => {
                let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                serde_json::json!({ self.addr.clone(): { "auth": auth } })
            }
            None => serde_json::json!({}),
        };
        std::fs::write(
            cfg.join("config.json"),
            serde_json::json!({ "auths": auths }).to_string(),
        )
        .unwrap();
        cfg
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The digests of a two-platform index made by `Registry::put_two_platform_index`.
pub struct TwoPlatformIndex {
    /// The index (a Docker manifest list) itself.
    pub index: String,
    /// The amd64 child: the original manifest of `repo:tag`.
    pub amd64_manifest: String,
    pub amd64_config: String,
    /// The arm64/v8 child: a copy whose config says arm64/v8 (same layers).
    pub arm64_config: String,
}

impl Registry {
    /// Put a two-platform index under `repo:new_tag`: the amd64 manifest of `repo:tag` and a
    /// copy of it whose config says arm64/v8, through the registry API.
    pub fn put_two_platform_index(&self, repo: &str, tag: &str, new_tag: &str) -> TwoPlatformIndex {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let http = reqwest::Client::new();
            let base = self.url();
            let mt = "application/vnd.docker.distribution.manifest.v2+json";
            let get = |url: String| {
                let http = http.clone();
                async move {
                    let r = http.get(url).header("Accept", mt).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.unwrap()
                }
            };
            let put = |url: String, content_type: &'static str, body: Vec<u8>| {
                let http = http.clone();
                async move {
                    let r = http
                        .put(url)
                        .header("Content-Type", content_type)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                }
            };
            let amd = get(format!("{base}/v2/{repo}/manifests/{tag}")).await;
            let mut manifest: serde_json::Value = serde_json::from_slice(&amd).unwrap();
            let amd64_config = manifest["config"]["digest"].as_str().unwrap().to_string();
            let cfg = get(format!("{base}/v2/{repo}/blobs/{amd64_config}")).await;
            let mut config: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
            config["architecture"] = "arm64".into();
            config["variant"] = "v8".into();
            let arm_cfg = serde_json::to_vec(&config).unwrap();
            let arm64_config = airlock::digest::Digest::of(&arm_cfg).to_string();
            let upload = http
                .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(upload.status(), 202);
            let location = upload.headers()["location"].to_str().unwrap().to_string();
            let location = if location.starts_with("http") {
                location
            } else {
                format!("{base}{location}")
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            put(
                format!("{location}{sep}digest={arm64_config}"),
                "application/octet-stream",
                arm_cfg.clone(),
            )
            .await;
            manifest["config"]["digest"] = arm64_config.clone().into();
            manifest["config"]["size"] = arm_cfg.len().into();
            let arm = serde_json::to_vec(&manifest).unwrap();
            let arm_digest = airlock::digest::Digest::of(&arm).to_string();
            put(
                format!("{base}/v2/{repo}/manifests/{arm_digest}"),
                mt,
                arm.clone(),
            )
            .await;
            let amd64_manifest = airlock::digest::Digest::of(&amd).to_string();
            let list = "application/vnd.docker.distribution.manifest.list.v2+json";
            let index = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": list,
                "manifests": [
                    {"mediaType": mt, "digest": amd64_manifest, "size": amd.len(),
                     "platform": {"os": "linux", "architecture": "amd64"}},
                    {"mediaType": mt, "digest": arm_digest, "size": arm.len(),
                     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                ]
            }))
            .unwrap();
            put(
                format!("{base}/v2/{repo}/manifests/{new_tag}"),
                list,
                index.clone(),
            )
            .await;
            TwoPlatformIndex {
                index: airlock::digest::Digest::of(&index).to_string(),
                amd64_manifest,
                amd64_config,
                arm64_config,
            }
        })
    }
}

/// Removes a compose project's containers, networks and volumes (by label, so it works
/// without the compose files), and the given images, when dropped.
pub struct ComposeCleanup {
    pub project: String,
    pub images: Vec<String>,
}

impl Drop for ComposeCleanup {
    fn drop(&mut self) {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        for id in String::from_utf8_lossy(&ids).split_whitespace() {
            docker_quiet(&["rm", "-f", "-v", id]);
        }
        for kind in ["network", "volume"] {
            let out = Command::new("docker")
                .args([kind, "ls", "-q", "--filter", &label])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            for id in String::from_utf8_lossy(&out).split_whitespace() {
                docker_quiet(&[kind, "rm", id]);
            }
        }
        for i in &self.images {
            docker_quiet(&["rmi", "-f", i]);
        }
    }
}

/// A CA and a server certificate for 127.0.0.1/localhost, made with openssl.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.crt");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.crt");
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=airlock test CA",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca),
    ]));
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
    ]));
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]));
    (ca, cert, key)
}

/// Small test images built with the engine, unique per `name` (a top layer carries the
/// name) so tests can remove their own images without touching others':
/// - `airlock-it/<name>/base:1`: busybox (one ~2 MB layer) + a file layer
/// - `airlock-it/<name>/app:1` and `:2`: base + one more layer each (sharing base layers)
pub struct TestImages {
    pub base: String,
    pub app1: String,
    pub app2: String,
    /// Build context directory (kept for rebuilding).
    pub dir: tempfile::TempDir,
}

impl TestImages {
    pub fn build(name: &str) -> TestImages {
        // One build at a time: the classic builder is not friendly to concurrent builds of
        // the same context files.
        static LOCK: Mutex<()> = Mutex::new(());
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static (/bin/busybox); scripts/test installs it");
        std::fs::copy(busybox, dir.path().join("busybox")).unwrap();
        std::fs::write(dir.path().join("name.txt"), format!("{name}\n")).unwrap();
        std::fs::write(dir.path().join("v1.txt"), "version 1\n").unwrap();
        std::fs::write(dir.path().join("v2.txt"), "version 2\n").unwrap();
        let base = format!("airlock-it/{name}/base:1");
        let app1 = format!("airlock-it/{name}/app:1");
        let app2 = format!("airlock-it/{name}/app:2");
        std::fs::write(
            dir.path().join("Dockerfile.base"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY name.txt /etc/airlock-test-name\nCMD [\"/bin/sh\"]\n",
        )
        .unwrap();
        for (tag, file) in [(&app1, "v1.txt"), (&app2, "v2.txt")] {
            let df = format!(
                "FROM {base}\nCOPY {file} /srv/version\nCMD [\"/bin/cat\", \"/srv/version\"]\n"
            );
            std::fs::write(
                dir.path()
                    .join(format!("Dockerfile.{}", &tag[tag.len() - 1..])),
                df,
            )
            .unwrap();
        }
        let build = |tag: &str, dockerfile: &str| {
            docker_build(dir.path(), tag, Some(&dir.path().join(dockerfile)));
        };
        build(&base, "Dockerfile.base");
        build(&app1, "Dockerfile.1");
        build(&app2, "Dockerfile.2");
        TestImages {
            base,
            app1,
            app2,
            dir,
        }
    }

    pub fn all(&self) -> [&str; 3] {
        [&self.base, &self.app1, &self.app2]
    }

    /// Push all three to `registry`; returns the registry references (base, app1, app2).
    pub fn push(&self, registry: &Registry) -> [String; 3] {
        let strip = |r: &str| r.to_string();
        [
            registry.push(&self.base, &strip(&self.base)),
            registry.push(&self.app1, &strip(&self.app1)),
            registry.push(&self.app2, &strip(&self.app2)),
        ]
    }

    /// Remove the three local images (and any other tags given).
    pub fn remove(&self, extra: &[&str]) {
        for r in self.all().iter().chain(extra.iter()) {
            docker_quiet(&["rmi", "-f", r]);
        }
    }
}

impl Drop for TestImages {
    fn drop(&mut self) {
        self.remove(&[]);
    }
}

/// Run a command and return its output, panicking with stdout and stderr unless it succeeds.
pub fn ok(cmd: &mut assert_cmd::Command) -> Output {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{:?} failed ({}):\nstdout: {}\nstderr: {}",
        cmd,
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A command's stdout as JSON, panicking with both streams when it is not.
pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A seed for a randomised test: the number in the environment variable `var`, else the
/// clock. Printed with the variable's name, so that a failing run can be repeated.
pub fn seed(var: &str, test: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    eprintln!("{test}: seed {seed} ({var}={seed} repeats it)");
    seed
}

/// The `airlock` binary with a private cache directory (`AIRLOCK_CACHE`) and no colour.
pub fn airlock(cache: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("airlock").expect("airlock binary");
    cmd.env("AIRLOCK_CACHE", cache).env("NO_COLOR", "1");
    cmd
}

#[test]
fn harness_registry_serves_pushed_images() {
    if !require_docker() {
        return;
    }
    let images = TestImages::build("harness");
    for reg in [
        Registry::start(),
        Registry::start_tls_basic("tester", "s3cret"),
    ] {
        let pushed = images.push(&reg);
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--tls-verify=false", "--raw"]);
        if let Some((u, p)) = &reg.credentials {
            cmd.arg(format!("--creds={u}:{p}"));
        }
        let out = run(cmd.arg(format!("docker://{}", pushed[1])));
        let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // base: busybox layer + RUN symlinks + name file; app adds one layer
        assert_eq!(
            manifest["layers"].as_array().map(|l| l.len()),
            Some(4),
            "{manifest}"
        );
    }
}

/// A CA and a server certificate for 127.0.0.1/localhost: `(ca.crt, server.crt, server.key)`
/// (for TLS servers other than `Registry`, e.g. `airlock serve --tls-cert`).
pub fn test_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    make_certs(dir)
}
