//! `airlock up --swarm`, `check --swarm` and `plan --swarm` on real swarms.
//! `swarm_stack_from_a_bundle` (every engine): the engine under test as a single-node swarm
//! (the host engine advertised on 127.0.0.1; Engine 26 on its own bridge address, with its own
//! data-path port and gateway bridge device, so the two swarms live side by side), scenarios in
//! sequence: bad input refused before anything is deployed (outside a swarm, a project Swarm
//! cannot run, a bundle lacking an image); deploy from `airlock serve` with digest-pinned
//! images; a second run that changes nothing; a task whose container and image are removed
//! comes back by pulling from serve again; a delta upgrades the stack by a rolling update;
//! `airlock serve` stopped while the stack runs is named by `check --swarm`; the server of
//! the `--print-unit` unit is used; `--registry` pushes instead of serving.
//! `two_engines_one_swarm` (host leg): Engine 26 joined as a worker to the host engine's swarm;
//! a task on the worker, then forced onto the manager, pulls from serve on each.
//! Swarm mode is turned on by the tests and off again at their end (when it was off before).

use crate::harness::{self, Registry, TestImages, ok, require_docker};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The tests of this module share the engine's swarm mode: one at a time.
static SWARM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An exclusive lock on Engine 26's swarm mode across processes: the `e26` leg's scenario
/// makes it a swarm of its own while the host leg's two-engine test joins it to the host's.
struct E26Lock {
    _file: std::fs::File,
}

impl E26Lock {
    fn take() -> E26Lock {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("airlock-it-e26-swarm.lock"))
            .unwrap();
        // SAFETY: flock on a descriptor we own; released when the file closes.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        E26Lock { _file: file }
    }
}

/// Swarm mode on the engine under test for the test's lifetime.
struct SwarmMode {
    created: bool,
}

/// Where this engine's swarm listens and advertises: 127.0.0.1 for the host's engine;
/// another engine (Engine 26 beside it, same network namespace) uses its bridge address and
/// data-path port 4790, since 2377, 7946 and 4789 on 127.0.0.1 belong to the host's swarm.
fn swarm_address() -> (String, Option<&'static str>) {
    let default_socket = std::env::var("DOCKER_HOST")
        .map(|h| h.is_empty() || h == "unix:///var/run/docker.sock")
        .unwrap_or(true);
    if default_socket {
        return ("127.0.0.1".into(), None);
    }
    let gw = harness::docker(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{(index .IPAM.Config 0).Gateway}}",
    ]);
    assert!(!gw.is_empty(), "no bridge gateway on the engine under test");
    (gw, Some("4790"))
}

impl SwarmMode {
    fn on() -> SwarmMode {
        let state = harness::docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state == "active" {
            return SwarmMode { created: false };
        }
        let (addr, data_port) = swarm_address();
        if data_port.is_some() {
            // Both engines share this network namespace, and Swarm names its bridge device
            // `docker_gwbridge` on every engine: a second engine would take the host's device
            // (and its containers' host-mode ports would lead nowhere). Its own device first.
            let gw =
                harness::docker(&["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"]);
            if gw.is_empty() {
                harness::docker(GWBRIDGE);
            }
        }
        let listen = format!("{addr}:2377");
        let mut args = vec![
            "swarm",
            "init",
            "--advertise-addr",
            &addr,
            "--listen-addr",
            &listen,
        ];
        if let Some(p) = data_port {
            args.extend(["--data-path-port", p]);
        }
        harness::docker(&args);
        SwarmMode { created: true }
    }
}

impl Drop for SwarmMode {
    fn drop(&mut self) {
        if self.created {
            harness::docker_quiet(&["swarm", "leave", "--force"]);
        }
    }
}

/// Removes the stack and stops the `airlock serve` recorded in `dir`, when dropped.
struct StackCleanup {
    stack: String,
    dir: std::path::PathBuf,
}

impl Drop for StackCleanup {
    fn drop(&mut self) {
        harness::docker_quiet(&["stack", "rm", &self.stack]);
        if let Some(pid) = serve_pid(&self.dir) {
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// A child process killed (and reaped) when dropped, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(".airlock-swarm.json")).unwrap())
        .unwrap()
}

fn serve_pid(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(".airlock-swarm.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    // 0: a server airlock did not start (never `kill 0`, the whole process group).
    v["serving"]["pid"].as_u64().filter(|p| *p > 0)
}

/// `docker stack ls` names.
fn stacks() -> Vec<String> {
    harness::docker(&["stack", "ls", "--format", "{{.Name}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Task IDs of a service that are running.
fn running_tasks(service: &str) -> Vec<String> {
    harness::docker(&[
        "service",
        "ps",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.ID}} {{.CurrentState}}",
        service,
    ])
    .lines()
    .filter(|l| l.contains(" Running"))
    .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
    .collect()
}

/// GET http://127.0.0.1:port/path with busybox-free std networking; the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// `airlock up --swarm --json EXTRA --dir DIR BUNDLE`, exit 0; its JSON document.
fn up_swarm(cache: &Path, dir: &Path, bundle: &Path, extra: &[&str]) -> serde_json::Value {
    let out = ok(harness::airlock(cache)
        .args(["up", "--swarm", "--json"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .arg(bundle));
    harness::json_of(&out)
}

/// Engine 26's own `docker_gwbridge` (device `airlock26_gw`), made before it joins a swarm:
/// otherwise it would take the host engine's device.
const GWBRIDGE: &[&str] = &[
    "network",
    "create",
    "--driver",
    "bridge",
    "--opt",
    "com.docker.network.bridge.name=airlock26_gw",
    "--opt",
    "com.docker.network.bridge.enable_icc=false",
    "--opt",
    "com.docker.network.bridge.enable_ip_masquerade=true",
    "docker_gwbridge",
];

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

const COMPOSE: &str = "services:
  web:
    image: APP_IMAGE
    command: [\"sh\", \"-c\", \"mkdir -p /www && cp /srv/version /www/index.html && cp /etc/app/motd /www/motd && cp /run/secrets/token /www/token && exec httpd -f -p 8080 -h /www\"]
    configs:
      - source: motd
        target: /etc/app/motd
    secrets: [token]
    ports:
      - target: 8080
        published: ${PORT}
        mode: host
    restart: unless-stopped
    stop_grace_period: 1s
    depends_on: [migrate]
  migrate:
    image: ${BASE}
    command: [\"sh\", \"-c\", \"echo migrated\"]
    restart: \"no\"
  debug:
    image: 127.0.0.1:9/airlock-it/never-packed:1
    profiles: [debug]
configs:
  motd:
    file: ./motd.txt
secrets:
  token:
    file: ./token.txt
";

#[test]
fn swarm_stack_from_a_bundle() {
    if !require_docker() {
        return;
    }
    let _serial = SWARM.lock().unwrap_or_else(|e| e.into_inner());
    let _e26 = swarm_address().1.is_some().then(E26Lock::take);
    let t0 = Instant::now();
    let images = TestImages::build("swarm");
    let reg = Registry::start();
    let [base, app1, app2] = images.push(&reg);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let port = harness::free_port();
    // Two versions of the project; v2 is packed as a delta of v1.
    let (p1, p2) = (
        work.path().join("v1/airlock-it-swarm"),
        work.path().join("v2/airlock-it-swarm"),
    );
    for (p, app) in [(&p1, &app1), (&p2, &app2)] {
        std::fs::create_dir_all(p).unwrap();
        // The image in the compose file, the rest in .env (which `up` keeps once written).
        std::fs::write(p.join("compose.yaml"), COMPOSE.replace("APP_IMAGE", app)).unwrap();
        std::fs::write(p.join(".env"), format!("BASE={base}\nPORT={port}\n")).unwrap();
        // A config that changes between the versions (Swarm configs cannot change: each
        // version is its own object, named by content) and a secret that does not.
        let n = if p == &p1 { 1 } else { 2 };
        std::fs::write(p.join("motd.txt"), format!("motd {n}\n")).unwrap();
        std::fs::write(p.join("token.txt"), "s3cret\n").unwrap();
    }
    let (v1, v2) = (work.path().join("v1.tar"), work.path().join("v2.tar"));
    ok(harness::airlock(&cache)
        .current_dir(&p1)
        .args(["pack", "-o"])
        .arg(&v1));
    ok(harness::airlock(&cache)
        .current_dir(&p2)
        .args(["pack", "--since"])
        .arg(&v1)
        .arg("-o")
        .arg(&v2));
    // A project Swarm cannot run: a service sharing another's network namespace.
    let p3 = work.path().join("v3/airlock-it-swarm-refused");
    std::fs::create_dir_all(&p3).unwrap();
    std::fs::write(
        p3.join("compose.yaml"),
        format!("services:\n  app:\n    image: {app1}\n  side:\n    image: {base}\n    network_mode: \"service:app\"\n"),
    )
    .unwrap();
    let v3 = work.path().join("v3.tar");
    ok(harness::airlock(&cache)
        .current_dir(&p3)
        .args(["pack", "-o"])
        .arg(&v3));
    // From here on, no image is on the engine and the registry is gone: only serve has them.
    drop(reg);
    images.remove(&[]);
    eprintln!("swarm: images and bundles ready in {:?}", t0.elapsed());

    // plan --swarm names what Swarm ignores, with fixes.
    let plan = ok(harness::airlock(&cache)
        .current_dir(&p1)
        .args(["plan", "--swarm", "--json"]));
    let plan = harness::json_of(&plan);
    let codes: Vec<(String, String)> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["service"].as_str().unwrap_or_default().to_string(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let order: Vec<(usize, String)> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let level = ["error", "warning", "info"]
                .iter()
                .position(|l| f["level"] == *l)
                .unwrap();
            (level, f["code"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        order.is_sorted(),
        "findings not sorted by level and code: {order:?}"
    );
    for (svc, code) in [
        ("web", "swarm-depends-on"),
        ("web", "swarm-restart"),
        ("web", "swarm-port-mode"),
        ("migrate", "swarm-restart"),
        ("web", "swarm-object"),
    ] {
        assert!(
            codes.contains(&(svc.into(), code.into())),
            "{svc}/{code} missing: {codes:?}"
        );
    }

    // Outside a swarm: exit 3, with the command that makes one (swarm mode is off here
    // unless someone left it on, in which case SwarmMode keeps it).
    if harness::docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]) == "inactive" {
        let out = harness::airlock(&cache)
            .args(["up", "--swarm", "--dir"])
            .arg(work.path().join("nowhere"))
            .arg(&v1)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(
            err.contains("not part of a Swarm") && err.contains("docker swarm init"),
            "{err}"
        );
    }
    let _swarm = SwarmMode::on();
    let dir = work.path().join("deploy");
    let _cleanup = StackCleanup {
        stack: "airlock-it-swarm".into(),
        dir: dir.clone(),
    };
    let refused_dir = work.path().join("refused");
    let _cleanup_refused = StackCleanup {
        stack: "airlock-it-swarm-refused".into(),
        dir: refused_dir.clone(),
    };

    // Bad input: refused before anything is deployed, exit 2.
    let out = harness::airlock(&cache)
        .args(["up", "--swarm", "--serve-addr", "127.0.0.1:0", "--dir"])
        .arg(&refused_dir)
        .arg(&v3)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("network_mode: service:app") && err.contains("nothing was deployed"),
        "{err}"
    );
    let out = harness::airlock(&cache)
        .args([
            "up",
            "--swarm",
            "--profile",
            "debug",
            "--serve-addr",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(&dir)
        .arg(&v1)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("never-packed") && err.contains("services: debug"),
        "{err}"
    );
    assert!(stacks().is_empty(), "a stack was deployed: {:?}", stacks());
    assert!(serve_pid(&dir).is_none() && serve_pid(&refused_dir).is_none());

    // Deploy: every image pinned by digest on serve, replicas running, the job completed.
    let t = Instant::now();
    let out = ok(harness::airlock(&cache)
        .args([
            "up",
            "--swarm",
            "--serve-addr",
            "127.0.0.1:0",
            "--timeout",
            "120s",
            "--json",
            "--dir",
        ])
        .arg(&dir)
        .arg(&v1));
    eprintln!("swarm: first deploy in {:?}", t.elapsed());
    let up = harness::json_of(&out);
    assert_eq!(up["ok"], true, "{up:#}");
    assert_eq!(up["source"], "serve");
    assert_eq!(up["serve_started"], true);
    let pull_from = up["pull_from"].as_str().unwrap().to_string();
    let web_image = up["images"]["web"].as_str().unwrap().to_string();
    assert!(
        web_image.starts_with(&format!("{pull_from}/airlock-it/swarm/app@sha256:")),
        "{web_image}"
    );
    let services = up["check"]["services"].as_array().unwrap();
    let svc = |name: &str| {
        services
            .iter()
            .find(|s| s["service"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            svc("web")["running"].as_u64(),
            svc("web")["desired"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(svc("migrate")["one_shot"], true);
    assert_eq!(svc("migrate")["completed"], 1);
    assert_eq!(up["check"]["registry"]["up"], true);
    assert_eq!(
        up["check"]["probes"][0]["ok"], true,
        "{:#}",
        up["check"]["probes"]
    );
    assert_eq!(http_get(port, "/").as_deref(), Some("version 1\n"));
    assert_eq!(http_get(port, "/motd").as_deref(), Some("motd 1\n"));
    assert_eq!(http_get(port, "/token").as_deref(), Some("s3cret\n"));
    let stack_file = std::fs::read_to_string(dir.join("airlock.stack.yml")).unwrap();
    assert!(
        stack_file.contains(&web_image) && !stack_file.contains("depends_on"),
        "{stack_file}"
    );

    // Again: nothing changes (no deploy, serve reused, same tasks).
    let before = running_tasks("airlock-it-swarm_web");
    let again = up_swarm(&cache, &dir, &v1, &[]);
    assert_eq!(again["ok"], true, "{again:#}");
    assert!(again["command"].is_null(), "deployed again: {again:#}");
    assert_eq!(again["serve_started"], false);
    assert_eq!(again["pull_from"], pull_from.as_str());
    assert_eq!(running_tasks("airlock-it-swarm_web"), before);

    // A task whose container and image are gone is restarted by Swarm, which pulls the
    // image from serve again (no registry, nothing on the engine).
    let container = harness::docker(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.swarm.service.name=airlock-it-swarm_web",
    ]);
    assert!(!container.is_empty());
    harness::docker(&["rm", "-f", &container]);
    harness::docker_quiet(&["rmi", "-f", &web_image]);
    wait_for("the web task to run again", Duration::from_secs(60), || {
        let now = running_tasks("airlock-it-swarm_web");
        !now.is_empty() && now != before
    });
    assert!(
        harness::image_exists(&web_image),
        "the restarted task did not pull {web_image}"
    );
    let out = ok(harness::airlock(&cache)
        .args(["check", "--swarm", "--json", "--dir"])
        .arg(&dir));
    let check = harness::json_of(&out);
    assert_eq!(check["ok"], true, "{check:#}");

    // Upgrade from a delta: serve restarts with the delta over its base (found in the
    // state), web gets its new digest by a rolling update, migrate runs again.
    let t = Instant::now();
    let out = ok(harness::airlock(&cache)
        .args(["up", "--swarm", "--timeout", "120s", "--json", "--dir"])
        .arg(&dir)
        .arg(&v2));
    eprintln!("swarm: delta upgrade in {:?}", t.elapsed());
    let up2 = harness::json_of(&out);
    assert_eq!(up2["ok"], true, "{up2:#}");
    assert_eq!(up2["serve_started"], true);
    assert_eq!(up2["pull_from"], pull_from.as_str(), "the address moved");
    let web2 = up2["images"]["web"].as_str().unwrap();
    assert_ne!(web2, web_image);
    assert_eq!(up2["images"]["migrate"], up["images"]["migrate"]);
    assert_eq!(http_get(port, "/").as_deref(), Some("version 2\n"));
    // The changed config deployed as a new object beside the old one.
    assert_eq!(http_get(port, "/motd").as_deref(), Some("motd 2\n"));
    let configs = harness::docker(&["config", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        configs
            .lines()
            .filter(|c| c.starts_with("airlock-it-swarm_motd_"))
            .count(),
        2,
        "{configs}"
    );
    let served = state(&dir)["serving"]["bundles"].as_array().unwrap().len();
    assert_eq!(served, 2, "{:#}", state(&dir));
    let update = harness::docker(&[
        "service",
        "inspect",
        "--format",
        "{{.UpdateStatus.State}}",
        "airlock-it-swarm_web",
    ]);
    assert_eq!(update, "completed");

    // serve stopped while the stack runs: check names it and fails.
    let pid = serve_pid(&dir).unwrap();
    let _ = Command::new("kill")
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status();
    wait_for("serve to stop", Duration::from_secs(15), || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
    });
    let out = harness::airlock(&cache)
        .args(["check", "--swarm", "--json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let check = harness::json_of(&out);
    assert_eq!(check["registry"]["up"], false, "{check:#}");
    assert!(
        check["registry"]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("airlock serve (pid {pid})"))
    );
    let text = harness::airlock(&cache)
        .args(["check", "--swarm", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("is down"));
    // The operator's way back: `up --swarm` again starts serve on the same address (the
    // image names stay valid), deploys nothing, and the check passes.
    let back = up_swarm(&cache, &dir, &v2, &[]);
    assert_eq!(back["ok"], true, "{back:#}");
    assert_eq!(back["serve_started"], true);
    assert_eq!(back["pull_from"], pull_from.as_str());
    assert!(back["command"].is_null(), "deployed again: {back:#}");
    // By stack name, without the state: no registry row, the same services.
    let out =
        ok(harness::airlock(&cache).args(["check", "--swarm", "--json", "-p", "airlock-it-swarm"]));
    let by_name = harness::json_of(&out);
    assert!(by_name.get("registry").is_none(), "{by_name:#}");
    assert_eq!(
        by_name["services"].as_array().map(Vec::len),
        Some(2),
        "{by_name:#}"
    );

    // The systemd unit for the operator, and a server it runs: `up --swarm` uses what answers
    // on the address when it has every image, and starts nothing.
    let unit_port = harness::free_port();
    let unit_addr = format!("127.0.0.1:{unit_port}");
    let out = ok(harness::airlock(&cache)
        .args(["up", "--swarm", "--print-unit", "--serve-addr", &unit_addr])
        .arg(&v1));
    let unit = String::from_utf8_lossy(&out.stdout).to_string();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {unit}"));
    assert!(
        exec.contains(" serve ")
            && exec.contains(v1.to_str().unwrap())
            && exec.ends_with(&format!("--addr {unit_addr}")),
        "{unit}"
    );
    let words: Vec<&str> = exec.split_whitespace().collect();
    let unit_serve = KillOnDrop(
        Command::new(words[0])
            .args(&words[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    harness::wait_for_port(unit_port, Duration::from_secs(10));
    let unit_dir = work.path().join("unit");
    let by_unit = up_swarm(
        &cache,
        &unit_dir,
        &v1,
        &["--timeout", "120s", "--serve-addr", &unit_addr],
    );
    drop(unit_serve);
    assert_eq!(by_unit["ok"], true, "{by_unit:#}");
    assert_eq!(by_unit["serve_started"], false);
    assert_eq!(by_unit["pull_from"], unit_addr.as_str());
    assert!(by_unit["check"]["registry"]["pid"].is_null(), "{by_unit:#}");
    assert_eq!(http_get(port, "/").as_deref(), Some("version 1\n"));

    // --registry: pushed into the site's registry instead of served; the stack follows.
    let site = Registry::start();
    let site_host = site.url().trim_start_matches("http://").to_string();
    let reg_dir = work.path().join("registry");
    let pushed = up_swarm(
        &cache,
        &reg_dir,
        &v1,
        &["--timeout", "120s", "--registry", &site_host],
    );
    assert_eq!(pushed["ok"], true, "{pushed:#}");
    assert_eq!(pushed["source"], "registry");
    assert!(
        pushed["images"]["web"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{site_host}/airlock-it/swarm/app@sha256:")),
        "{pushed:#}"
    );
    assert_eq!(pushed["check"]["registry"]["kind"], "registry");
    assert!(serve_pid(&reg_dir).is_none());
    eprintln!("swarm: whole scenario in {:?}", t0.elapsed());
}

/// Engine 26 (`scripts/engine26`, started when it is not running): its `DOCKER_HOST`.
fn engine26() -> String {
    if let Ok(h) = std::env::var("AIRLOCK_E26_HOST") {
        return h;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/engine26");
    let out = harness::run(Command::new(script).arg("start"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn docker_on(host: &str, args: &[&str]) -> String {
    let out = harness::run(Command::new("docker").env("DOCKER_HOST", host).args(args));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Engine 26 joined as a worker to the host engine's swarm, and out again when dropped.
struct Worker {
    host: String,
    id: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(["swarm", "leave", "--force"])
            .output();
        harness::docker_quiet(&["node", "rm", "--force", &self.id]);
    }
}

/// (node ID, state) of the tasks of `service` Swarm wants running.
fn task_nodes(service: &str) -> Vec<(String, String)> {
    let ids = harness::docker(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        service,
    ]);
    ids.lines()
        .map(|id| {
            let s = harness::docker(&["inspect", "--format", "{{.NodeID}} {{.Status.State}}", id]);
            let (n, st) = s.split_once(' ').unwrap_or_default();
            (n.to_string(), st.to_string())
        })
        .collect()
}

/// Two engines, one swarm: the host's Engine 20.10 as the manager, Engine 26 (its own
/// containerd image store) joined as a worker. A task placed on the worker pulls its image
/// from `airlock serve` on the manager; forced onto the manager, it pulls it there too.
/// Runs in the host leg only (the `e26` leg skips it: Engine 26 takes part here).
/// Both daemons share this machine's network namespace, so overlay networks work on one of
/// them at a time ("error creating vxlan interface: file exists" on the second): the stack
/// uses the host network, which Swarm services may join as an external network.
#[test]
fn two_engines_one_swarm() {
    if !require_docker() {
        return;
    }
    assert!(
        swarm_address().1.is_none(),
        "two_engines_one_swarm makes the engine at the default socket the manager; run it in the host leg"
    );
    let _serial = SWARM.lock().unwrap_or_else(|e| e.into_inner());
    let e26 = engine26();
    let _e26 = E26Lock::take();
    let images = TestImages::build("swarm-mn");
    let reg = Registry::start();
    let [_, app1, _] = images.push(&reg);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let port = harness::free_port();
    let project = work.path().join("airlock-it-swarm-mn");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        format!(
            "services:
  web:
    image: {app1}
    command: [\"sh\", \"-c\", \"mkdir -p /www && cp /srv/version /www/index.html && exec httpd -f -p {port} -h /www\"]
    networks: [hostnet]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [\"node.role == worker\"]
networks:
  hostnet:
    external: true
    name: host
"
        ),
    )
    .unwrap();
    let bundle = work.path().join("mn.tar");
    ok(harness::airlock(&cache)
        .current_dir(&project)
        .args(["pack", "-o"])
        .arg(&bundle));
    drop(reg);
    images.remove(&[]);

    let _swarm = SwarmMode::on();
    if docker_on(&e26, &["info", "--format", "{{.Swarm.LocalNodeState}}"]) != "inactive" {
        docker_on(&e26, &["swarm", "leave", "--force"]);
    }
    if docker_on(
        &e26,
        &["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"],
    )
    .is_empty()
    {
        docker_on(&e26, GWBRIDGE);
    }
    let gw = docker_on(
        &e26,
        &[
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{(index .IPAM.Config 0).Gateway}}",
        ],
    );
    let token = harness::docker(&["swarm", "join-token", "-q", "worker"]);
    docker_on(
        &e26,
        &[
            "swarm",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            &gw,
            "--listen-addr",
            &format!("{gw}:2377"),
            "127.0.0.1:2377",
        ],
    );
    let worker = Worker {
        host: e26.clone(),
        id: docker_on(&e26, &["info", "--format", "{{.Swarm.NodeID}}"]),
    };
    let manager = harness::docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
    let dir = work.path().join("deploy");
    let _cleanup = StackCleanup {
        stack: "airlock-it-swarm-mn".into(),
        dir: dir.clone(),
    };

    // Placed on the worker, which never loaded anything: it pulls from serve on the manager.
    let url = format!("http://127.0.0.1:{port}/");
    let up = up_swarm(
        &cache,
        &dir,
        &bundle,
        &[
            "--serve-addr",
            "127.0.0.1:0",
            "--timeout",
            "120s",
            "--http",
            &url,
        ],
    );
    assert_eq!(up["ok"], true, "{up:#}");
    let web_image = up["images"]["web"].as_str().unwrap().to_string();
    let web = up["check"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "web")
        .unwrap();
    assert_eq!(web["tasks"][0]["node_id"], worker.id.as_str(), "{web:#}");
    assert!(
        !docker_on(
            &e26,
            &["image", "inspect", "--format", "{{.Id}}", &web_image]
        )
        .is_empty()
    );
    assert!(
        !harness::image_exists(&web_image),
        "the manager has the image, it should not"
    );
    assert_eq!(http_get(port, "/").as_deref(), Some("version 1\n"));

    // Forced onto the manager: its engine pulls the image from serve too.
    harness::docker(&[
        "service",
        "update",
        "--detach",
        "--constraint-rm",
        "node.role == worker",
        "--constraint-add",
        "node.role == manager",
        "airlock-it-swarm-mn_web",
    ]);
    wait_for(
        "the web task to run on the manager",
        Duration::from_secs(60),
        || task_nodes("airlock-it-swarm-mn_web") == [(manager.clone(), "running".to_string())],
    );
    assert!(
        harness::image_exists(&web_image),
        "the manager did not pull {web_image}"
    );
    wait_for(
        "web to answer on the manager",
        Duration::from_secs(10),
        || http_get(port, "/").as_deref() == Some("version 1\n"),
    );
    let out = ok(harness::airlock(&cache)
        .args(["check", "--swarm", "--json", "--http", &url, "--dir"])
        .arg(&dir));
    let check = harness::json_of(&out);
    assert_eq!(check["ok"], true, "{check:#}");
    let tasks = check["services"][0]["tasks"].as_array().unwrap();
    assert_eq!(tasks[0]["node_id"], manager.as_str(), "{check:#}");
    assert!(
        tasks
            .iter()
            .any(|t| t["node_id"] == worker.id.as_str() && t["desired_state"] == "shutdown"),
        "{check:#}"
    );
    harness::docker_quiet(&["rmi", "-f", &web_image]);
    let _ = Command::new("docker")
        .env("DOCKER_HOST", &e26)
        .args(["rmi", "-f", &web_image])
        .output();
}
