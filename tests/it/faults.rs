//! Faults survived: `kill -9` of pack, load and push at many points, a full disk during pack
//! (output and cache), the engine unreachable or cut off during load and up, and a layer the
//! load leaves out vanishing from the engine mid-load. After each fault a re-run finishes the
//! job (or the command recovers), the output path never holds a partial bundle, and the store
//! holds only blobs whose bytes match their names.
//!
//! Kill points are random but stratified over a measured full run (one point per slot), from
//! a seed printed by every test (`AIRLOCK_FAULT_SEED=N` repeats a run). A kill that lands
//! after the command finished is counted as such, never a failure. Transfers go through a
//! loopback proxy that slows them so a run lasts long enough to be cut in many places; the
//! engine is reached through a Unix-socket proxy written here that can cut `POST /images/load`.

use crate::harness::{Registry, TestImages, docker, docker_quiet, require_docker, run};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

// ---------------------------------------------------------------------------------------
// Random kill points

/// splitmix64: small, seedable, good enough to place kill points.
struct Rng(u64);

impl Rng {
    /// Seeded from `AIRLOCK_FAULT_SEED`, else the clock; the seed is printed either way.
    fn new(test: &str) -> Rng {
        Rng(crate::harness::seed("AIRLOCK_FAULT_SEED", test))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// `n` kill points over `span`: one uniformly in each of `n` equal slots, in random order.
fn kill_points(rng: &mut Rng, n: usize, span: Duration) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n)
        .map(|i| span.mul_f64((i as f64 + rng.unit()) / n as f64))
        .collect();
    for i in (1..v.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Run `cmd` for `after`, then SIGKILL it. `true` when the kill landed (the process was still
/// running), `false` when it had already exited (then it must have succeeded).
fn kill_after(mut cmd: Command, after: Duration) -> bool {
    let mut child: Child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn airlock");
    let deadline = Instant::now() + after;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(
                status.success(),
                "{cmd:?} failed before the kill ({status}): {err}"
            );
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

/// The `airlock` binary as a plain `Command` (for spawning and killing).
fn airlock_cmd(cache: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("airlock"));
    cmd.env("AIRLOCK_CACHE", cache).env("NO_COLOR", "1");
    cmd
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run an airlock command to completion, asserting success.
fn ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    o
}

/// Time one run of `cmd` (asserting success).
fn timed(cmd: &mut Command) -> (Duration, Output) {
    let start = Instant::now();
    let o = ok(cmd);
    (start.elapsed(), o)
}

// ---------------------------------------------------------------------------------------
// Invariants

/// Every blob in the store at `cache` hashes to its name (`sha256sum`, fast even in debug
/// builds); returns how many there are.
fn assert_store_consistent(cache: &Path) -> usize {
    let dir = cache.join("blobs/sha256");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    if names.is_empty() {
        return 0;
    }
    let out = run(Command::new("sha256sum").current_dir(&dir).args(&names));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        assert_eq!(
            hash,
            name,
            "store blob {} does not hash to its name",
            dir.join(name).display()
        );
    }
    names.len()
}

/// Files in `dir` whose name says they are a partial bundle.
fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains("airlock-partial"))
                .collect()
        })
        .unwrap_or_default()
}

/// `airlock verify PATH` exits 0.
fn assert_verifies(cache: &Path, bundle: &Path) {
    let o = airlock_cmd(cache)
        .arg("verify")
        .arg(bundle)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "verify {}: {}",
        bundle.display(),
        text(&o)
    );
}

// ---------------------------------------------------------------------------------------
// Proxies

/// Copy `r` to `w`, at most `rate` bytes per second (0: unlimited), until EOF.
async fn pump<R, W>(
    mut r: R,
    mut w: W,
    rate: Arc<AtomicU64>,
    cut: Option<Arc<EngineProxyState>>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 << 10];
    let mut watch = LoadWatch::default();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        if let Some(state) = &cut {
            let entered = !watch.in_load;
            if watch.cut(state, &buf[..n]) {
                return Err(std::io::Error::other("cut by the test proxy"));
            }
            if entered && watch.in_load && state.hold_load.load(Ordering::SeqCst) {
                state.held.fetch_add(1, Ordering::SeqCst);
                while state.hold_load.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        w.write_all(&buf[..n]).await?;
        let rate = rate.load(Ordering::Relaxed);
        if rate > 0 {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
    }
}

/// A TCP proxy on loopback that slows both directions to `rate` bytes per second per
/// connection (0: unlimited, changeable at any time).
struct Throttle {
    port: u16,
    rate: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

impl Throttle {
    fn start(upstream: u16, rate: u64) -> Throttle {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let rate = Arc::new(AtomicU64::new(rate));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = rate.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rate = r.clone();
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (ur, uw) = up.into_split();
                    let _ =
                        tokio::join!(pump(cr, uw, rate.clone(), None), pump(ur, cw, rate, None));
                });
            }
        });
        Throttle {
            port,
            rate,
            _rt: rt,
        }
    }

    fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::SeqCst);
    }
}

/// What the engine proxy does.
#[derive(Default)]
struct EngineProxyState {
    /// Cut a connection once this many bytes of a `POST .../images/load` went upstream
    /// (0: pass everything).
    cut_load_after: AtomicU64,
    /// Connections cut so far.
    cuts: AtomicUsize,
    /// Hold a `POST .../images/load` before its first byte reaches the engine.
    hold_load: std::sync::atomic::AtomicBool,
    /// Load requests held so far.
    held: AtomicUsize,
}

/// Per-connection watch for the load request in the client-to-engine bytes.
#[derive(Default)]
struct LoadWatch {
    tail: Vec<u8>,
    in_load: bool,
    sent: u64,
}

impl LoadWatch {
    /// Whether to cut before forwarding `chunk`.
    fn cut(&mut self, state: &EngineProxyState, chunk: &[u8]) -> bool {
        const NEEDLE: &[u8] = b"/images/load";
        if !self.in_load {
            self.tail.extend_from_slice(chunk);
            if let Some(i) = self.tail.windows(NEEDLE.len()).position(|w| w == NEEDLE) {
                self.in_load = true;
                self.sent = (self.tail.len() - i) as u64;
                self.tail.clear();
            } else {
                let keep = self.tail.len().saturating_sub(NEEDLE.len());
                self.tail.drain(..keep);
                return false;
            }
        } else {
            self.sent += chunk.len() as u64;
        }
        let limit = state.cut_load_after.load(Ordering::SeqCst);
        if limit > 0 && self.sent > limit {
            state.cuts.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }
}

/// A Unix-socket proxy in front of the engine's socket (`DOCKER_HOST=unix://<path>`), which
/// can cut `POST /images/load` connections mid-stream.
struct EngineProxy {
    path: PathBuf,
    state: Arc<EngineProxyState>,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

/// The engine's own socket (from `DOCKER_HOST` when it is a unix socket).
fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

impl EngineProxy {
    fn start() -> EngineProxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let upstream = engine_socket();
        let listener = {
            let _guard = rt.enter();
            tokio::net::UnixListener::bind(&path).unwrap()
        };
        let state = Arc::new(EngineProxyState::default());
        let st = state.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let st = st.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::UnixStream::connect(&upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (ur, uw) = up.into_split();
                    let unlimited = Arc::new(AtomicU64::new(0));
                    // A cut ends the exchange: both sockets are dropped at once, as when the
                    // engine goes away.
                    let (cut_tx, cut_rx) = tokio::sync::oneshot::channel::<()>();
                    let upward = async {
                        if pump(cr, uw, unlimited.clone(), Some(st.clone())).await.is_err() {
                            let _ = cut_tx.send(());
                        }
                    };
                    tokio::select! {
                        _ = async { tokio::join!(pump(ur, cw, unlimited.clone(), None), upward) } => {}
                        Ok(()) = cut_rx => {}
                    }
                });
            }
        });
        EngineProxy {
            path,
            state,
            _dir: dir,
            _rt: rt,
        }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn cut_load_after(&self, bytes: u64) {
        self.state.cut_load_after.store(bytes, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.state.cuts.load(Ordering::SeqCst)
    }

    fn hold_load(&self, hold: bool) {
        self.state.hold_load.store(hold, Ordering::SeqCst);
    }

    fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------
// A stack to pack, load and push

/// Test images (`TestImages`: base, app:1, app:2) plus `big:1` (base + one layer of random
/// bytes), pushed to a loopback registry; a compose project (`app`, `big`) naming them there;
/// and a bundle of all four packed from it. The local images are removed afterwards, so the
/// bundle is what brings them to the engine. Loaded images are removed on drop (by ID).
struct Stack {
    registry: Registry,
    /// Kept for its drop (removes the local images).
    _images: TestImages,
    big: String,
    /// The four references at the registry: base, app:1, app:2, big:1.
    refs: Vec<String>,
    dir: tempfile::TempDir,
    project: String,
    bundle: PathBuf,
    /// The bundle's `airlock/bundle.json`.
    meta: serde_json::Value,
}

/// Held while this module builds images and while it removes built ones: removing an image
/// also removes its untagged parents, among them the build cache's busybox steps every test
/// image shares, and a build that found them in its cache then fails ("unknown parent image").
static BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Stack {
    fn new(name: &str, big_bytes: usize, rng: &mut Rng) -> Stack {
        let registry = Registry::start();
        let dir = tempfile::tempdir().unwrap();
        let builds = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
        let images = TestImages::build(&format!("faults-{name}"));
        // big:1, FROM the base, with incompressible bytes.
        let ctx = dir.path().join("big-context");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("random.bin"), rng.bytes(big_bytes)).unwrap();
        std::fs::write(ctx.join("version"), "big\n").unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM {}\nCOPY version /srv/version\nCOPY random.bin /srv/random.bin\nCMD [\"/bin/cat\", \"/srv/version\"]\n",
                images.base
            ),
        )
        .unwrap();
        let big = format!("airlock-it/faults-{name}/big:1");
        crate::harness::docker_build(&ctx, &big, None);
        drop(builds);
        let mut refs: Vec<String> = images.push(&registry).into();
        refs.push(registry.push(&big, &big));

        let project = format!("airlock-it-faults-{name}");
        let project_dir = dir.path().join("online").join(&project);
        std::fs::create_dir_all(&project_dir).unwrap();
        std::fs::write(
            project_dir.join("compose.yaml"),
            format!(
                "services:\n  app:\n    image: {}\n    command: [\"sleep\", \"600\"]\n  big:\n    image: {}\n    command: [\"sleep\", \"600\"]\n",
                refs[1], refs[3]
            ),
        )
        .unwrap();
        let bundle = dir.path().join("stack.tar");
        ok(airlock_cmd(&dir.path().join("cache-setup"))
            .current_dir(&project_dir)
            .args(["pack", "-o"])
            .arg(&bundle)
            .args(["--image", &refs[0], "--image", &refs[2]]));
        let meta: serde_json::Value =
            serde_json::from_slice(&crate::pack::member(&bundle, "airlock/bundle.json")).unwrap();
        {
            let _builds = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
            images.remove(&[&big]);
        }
        Stack {
            registry,
            _images: images,
            big,
            refs,
            dir,
            project,
            bundle,
            meta,
        }
    }

    /// Config digests (image IDs on the classic store) by reference, from bundle.json.
    fn ids(&self) -> Vec<(String, String)> {
        self.meta["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["ref"].as_str().unwrap().to_string(),
                    crate::harness::bundle_image_id(i),
                )
            })
            .collect()
    }

    /// Remove every image of the bundle from the engine (by ID: all their tags go too), again
    /// until none is left: the engine refuses to remove the base while images built on it
    /// are still there.
    fn remove_from_engine(&self) {
        let ids: Vec<String> = self.ids().into_iter().map(|(_, id)| id).collect();
        let mut args = vec!["rmi", "-f"];
        args.extend(ids.iter().map(String::as_str));
        // A load killed after sending everything may still be finishing in the engine and
        // bring images back a moment later: wait for that.
        for _ in 0..20 {
            for _ in 0..2 {
                docker_quiet(&args);
                if self.on_engine() == 0 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// How many of the bundle's images (by ID) the engine has.
    fn on_engine(&self) -> usize {
        let ids: Vec<String> = self.ids().into_iter().map(|(_, id)| id).collect();
        let out = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}"])
            .args(&ids)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        // Images it lacks come back as empty lines.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("sha256:"))
            .count()
    }

    /// Every image of the bundle is on the engine under its reference with the bundle's ID.
    fn assert_loaded(&self) {
        let ids = self.ids();
        let mut args = vec!["image", "inspect", "--format", "{{.Id}}"];
        args.extend(ids.iter().map(|(r, _)| r.as_str()));
        let got = docker(&args);
        let expected: Vec<&str> = ids.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(
            got.lines().collect::<Vec<_>>(),
            expected,
            "{ids:?} on the engine"
        );
    }

    /// `docker run --rm REF cat /srv/version` for image `i` of `refs` (1: app:1, 2: app:2, 3: big).
    fn assert_runs(&self, i: usize) {
        let expected = ["", "version 1", "version 2", "big"][i];
        let out = docker(&["run", "--rm", &self.refs[i], "cat", "/srv/version"]);
        assert_eq!(out, expected, "{}", self.refs[i]);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.remove_from_engine();
        docker_quiet(&["rmi", "-f", &self.big]);
    }
}

/// `refs` with the registry address replaced by `127.0.0.1:port` (a proxy in front of it).
fn via(refs: &[String], registry: &Registry, port: u16) -> Vec<String> {
    refs.iter()
        .map(|r| r.replacen(&registry.addr, &format!("127.0.0.1:{port}"), 1))
        .collect()
}

// ---------------------------------------------------------------------------------------
// kill -9

/// `kill -9` of `airlock pack` at 24 points or more: 16 over a measured cold run (resolve,
/// download, layer facts, write) and 8 over a warm one (mostly the bundle write), more early
/// ones until 20 kills have landed while pack ran. After each kill the output path holds
/// nothing or a bundle `verify` accepts and every stored blob hashes to its name; then a
/// second pack completes, verifies, and no partial bundle is left beside it.
#[test]
fn kill_pack_at_random_points() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new("kill_pack_at_random_points");
    let stack = Stack::new("pack", 2 << 20, &mut rng);
    // 2 MB/s per connection: the random layer takes about a second.
    let throttle = Throttle::start(stack.registry.port, 2 << 20);
    let refs = via(&stack.refs, &stack.registry, throttle.port);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let out_dir = work.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("stack.tar");
    let pack = || {
        let mut cmd = airlock_cmd(&cache);
        cmd.args(["pack", "-o"]).arg(&out).arg("--quiet");
        for r in &refs {
            cmd.args(["--image", r]);
        }
        cmd
    };
    let (cold, _) = timed(&mut pack());
    assert_verifies(&cache, &out);
    std::fs::remove_file(&out).unwrap();
    let (warm, _) = timed(&mut pack());
    eprintln!("pack: cold {cold:?}, warm {warm:?}");

    // Spread over 90% of each run: later runs vary by a few percent.
    let mut points: Vec<(Duration, bool)> = Vec::new();
    points.extend(
        kill_points(&mut rng, 16, cold.mul_f64(0.9))
            .into_iter()
            .map(|p| (p, false)),
    );
    points.extend(
        kill_points(&mut rng, 8, warm.mul_f64(0.9))
            .into_iter()
            .map(|p| (p, true)),
    );
    let (mut landed, mut output_whole, mut max_blobs, mut i) = (0, 0, 0, 0);
    while i < points.len() || landed < 20 {
        if i >= points.len() {
            assert!(i < 40, "only {landed} of {i} kills landed while pack ran");
            points.push((cold.mul_f64(0.5 * rng.unit()), false));
        }
        let (point, warm) = points[i];
        i += 1;
        let _ = std::fs::remove_file(&out);
        if !warm {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let killed = kill_after(pack(), point);
        landed += killed as usize;
        let whole = out.exists();
        if whole {
            output_whole += 1;
            assert_verifies(&cache, &out);
        }
        let blobs = assert_store_consistent(&cache);
        max_blobs = max_blobs.max(blobs);
        eprintln!(
            "kill {i}: {} run at {point:?}: {}, output {}, {blobs} blobs in the store",
            if warm { "warm" } else { "cold" },
            if killed { "killed" } else { "had finished" },
            if whole { "whole" } else { "absent" }
        );
        let o = ok(&mut pack());
        assert!(out.exists(), "kill {i} at {point:?}: {}", text(&o));
        assert_verifies(&cache, &out);
        assert_eq!(
            partials(&out_dir),
            Vec::<String>::new(),
            "kill {i} at {point:?}"
        );
        assert_store_consistent(&cache);
    }
    eprintln!(
        "kill_pack_at_random_points: {i} kills ({landed} while pack ran, {output_whole} left a whole bundle), up to {max_blobs} blobs checked per kill, {:?}",
        started.elapsed()
    );
}

/// `kill -9` of `airlock load` at 20 points or more over a measured full load (engine state,
/// the filtered stream, the engine unpacking, tagging), with the stack's images removed from
/// the engine before each. After each kill a second load completes; every image then has the
/// bundle's ID under its reference, and one of them runs.
#[test]
fn kill_load_at_random_points() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new("kill_load_at_random_points");
    let stack = Stack::new("load", 4 << 20, &mut rng);
    let cache = stack.dir.path().join("cache");
    let load = || {
        let mut cmd = airlock_cmd(&cache);
        cmd.args(["load", "--quiet"]).arg(&stack.bundle);
        cmd
    };
    // The first load into an engine is slower (layer store caches); time the second.
    stack.remove_from_engine();
    let (first, _) = timed(&mut load());
    stack.remove_from_engine();
    let (full, _) = timed(&mut load());
    stack.assert_loaded();
    eprintln!("load: first {first:?}, then {full:?}");

    let mut points = kill_points(&mut rng, 20, full.mul_f64(0.9));
    let (mut landed, mut i) = (0, 0);
    while i < points.len() || landed < 20 {
        if i >= points.len() {
            assert!(i < 35, "only {landed} of {i} kills landed while load ran");
            points.push(full.mul_f64(0.6 * rng.unit()));
        }
        let point = points[i];
        i += 1;
        stack.remove_from_engine();
        assert_eq!(stack.on_engine(), 0, "images left on the engine");
        let killed = kill_after(load(), point);
        landed += killed as usize;
        let present = stack.on_engine();
        eprintln!(
            "kill {i} at {point:?}: {}, {present} of 4 images on the engine",
            if killed { "killed" } else { "had finished" }
        );
        ok(&mut load());
        stack.assert_loaded();
        stack.assert_runs(1 + i % 3);
    }
    eprintln!(
        "kill_load_at_random_points: {i} kills ({landed} while load ran), {:?}",
        started.elapsed()
    );
}

/// A plain HTTP/1.0 request to `127.0.0.1:port`: (status, headers in lower case, body).
fn http(port: u16, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

/// `registry/repo/path:tag` -> (`repo/path`, `tag`).
fn repo_tag(reference: &str) -> (String, String) {
    let (_, path) = reference.split_once('/').unwrap();
    let (repo, tag) = path.rsplit_once(':').unwrap();
    (repo.to_string(), tag.to_string())
}

/// The registry on `port` serves every image of `meta` under `prefix`: the manifest by tag
/// has the bundle's digest (its bytes hash to it, and the registry says so), and the config
/// and every layer are there with their sizes. Returns the number of objects checked.
fn assert_pushed(port: u16, prefix: &str, meta: &serde_json::Value) -> usize {
    let mut checked = 0;
    for img in meta["images"].as_array().unwrap() {
        let (repo, tag) = repo_tag(img["ref"].as_str().unwrap());
        let top = img["top"]["digest"].as_str().unwrap();
        let (status, headers, body) =
            http(port, "GET", &format!("/v2/{prefix}/{repo}/manifests/{tag}"));
        assert_eq!(
            status,
            200,
            "{prefix}/{repo}:{tag}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            airlock::digest::Digest::of(&body).to_string(),
            top,
            "{prefix}/{repo}:{tag}"
        );
        let said = headers
            .iter()
            .find(|(k, _)| k == "docker-content-digest")
            .map(|(_, v)| v.as_str());
        assert_eq!(said, Some(top), "{prefix}/{repo}:{tag}");
        checked += 1;
        let blobs = std::iter::once(&img["config"]).chain(img["layers"].as_array().unwrap());
        for b in blobs {
            let digest = b["digest"].as_str().unwrap();
            let (status, headers, _) =
                http(port, "HEAD", &format!("/v2/{prefix}/{repo}/blobs/{digest}"));
            assert_eq!(status, 200, "{prefix}/{repo} blob {digest}");
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.clone());
            assert_eq!(
                len,
                Some(b["size"].to_string()),
                "{prefix}/{repo} blob {digest}"
            );
            checked += 1;
        }
    }
    checked
}

/// Pull every image of `meta` back from `127.0.0.1:port/prefix` with `airlock pack --image`
/// into a fresh cache (every byte checked against its digest on the way), verify that bundle,
/// and compare its top digests with `meta`'s.
fn assert_pulls_back(port: u16, prefix: &str, meta: &serde_json::Value, work: &Path) {
    let cache = work.join(format!("pull-{prefix}"));
    let out = work.join(format!("pulled-{prefix}.tar"));
    let mut cmd = airlock_cmd(&cache);
    cmd.args(["pack", "--json", "-o"]).arg(&out);
    let mut expected = Vec::new();
    for img in meta["images"].as_array().unwrap() {
        let (repo, tag) = repo_tag(img["ref"].as_str().unwrap());
        cmd.args([
            "--image",
            &format!("127.0.0.1:{port}/{prefix}/{repo}:{tag}"),
        ]);
        expected.push(img["top"]["digest"].as_str().unwrap().to_string());
    }
    let o = ok(&mut cmd);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<String> = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["top"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected, "{summary}");
    assert_verifies(&cache, &out);
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_file(&out);
}

/// `kill -9` of `airlock push` (into a real docker-registry, through a proxy slowing the
/// upload) at 20 points or more over a measured full push, each into a fresh repository
/// prefix. After each kill a second push completes and the registry serves every manifest with
/// the bundle's digest and every blob with its size; every fifth prefix is also pulled back
/// with `airlock pack` into a fresh cache and verified.
#[test]
fn kill_push_at_random_points() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new("kill_push_at_random_points");
    let stack = Stack::new("push", 2 << 20, &mut rng);
    let target = Registry::start();
    const RATE: u64 = 2 << 20;
    let throttle = Throttle::start(target.port, RATE);
    let cache = stack.dir.path().join("cache");
    let push = |prefix: &str| {
        let mut cmd = airlock_cmd(&cache);
        cmd.arg("push").arg(&stack.bundle).args([
            "--to",
            &format!("127.0.0.1:{}/{prefix}", throttle.port),
            "--quiet",
        ]);
        cmd
    };
    let (full, _) = timed(&mut push("measure"));
    assert_pushed(target.port, "measure", &stack.meta);
    eprintln!("push: {full:?}");

    let mut points = kill_points(&mut rng, 20, full.mul_f64(0.9));
    let (mut landed, mut i, mut checked) = (0, 0, 0);
    while i < points.len() || landed < 20 {
        if i >= points.len() {
            assert!(i < 35, "only {landed} of {i} kills landed while push ran");
            points.push(full.mul_f64(0.6 * rng.unit()));
        }
        let point = points[i];
        i += 1;
        let prefix = format!("kill{i}");
        throttle.set_rate(RATE);
        let killed = kill_after(push(&prefix), point);
        landed += killed as usize;
        eprintln!(
            "kill {i} at {point:?}: {}",
            if killed { "killed" } else { "had finished" }
        );
        throttle.set_rate(0);
        ok(&mut push(&prefix));
        checked += assert_pushed(target.port, &prefix, &stack.meta);
        if i % 5 == 0 {
            assert_pulls_back(target.port, &prefix, &stack.meta, stack.dir.path());
        }
    }
    eprintln!(
        "kill_push_at_random_points: {i} kills ({landed} while push ran), {checked} manifests and blobs checked, {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Disk full

/// A tmpfs of a fixed size mounted on a fresh directory (we run as root); unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (test skipped, with a message) when not root.
    fn mount(options: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // CI (which sets AIRLOCK_REQUIRE_DOCKER) runs as root: there this is a failure.
            assert!(
                std::env::var_os("AIRLOCK_REQUIRE_DOCKER").is_none(),
                "mounting a tmpfs needs root, and AIRLOCK_REQUIRE_DOCKER is set"
            );
            eprintln!("skipping: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path()));
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fill the filesystem holding `dir` (a file `filler` of zeros until it is full).
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.flush();
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signalling our own child by pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// A pack whose output directory is a small tmpfs:
/// 1. smaller than the bundle: refused before writing, exit 3, the message names the output
///    path, the bytes needed and the bytes free; nothing left in the directory; a second pack
///    into a large directory fetches nothing (all cached) and verifies;
/// 2. large enough when the write starts, then filled by someone else (pack stopped with
///    SIGSTOP right after creating its temporary file): `ENOSPC` gives the same error, exit 3,
///    and the temporary is removed;
/// 3. the cache (`AIRLOCK_CACHE`) on a full tmpfs: exit 3 naming the cache path, and every
///    blob that made it into the store hashes to its name.
///
/// The store stays consistent throughout.
#[test]
fn disk_full_during_pack() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new("disk_full_during_pack");
    let stack = Stack::new("disk", 2 << 20, &mut rng);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let pack = |cache: &Path, out: &Path| {
        let mut cmd = airlock_cmd(cache);
        cmd.args(["pack", "-o"]).arg(out);
        for r in &stack.refs {
            cmd.args(["--image", r]);
        }
        cmd
    };

    // 1a. Too small from the start: refused once the manifests are read, before any layer
    //     is downloaded (needed = the blobs the bundle carries).
    let Some(small) = Tmpfs::mount("size=1m") else {
        return;
    };
    let out = small.path().join("stack.tar");
    let o = pack(&cache, &out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let refused = error_lines(&o);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        err.contains(&format!("Not enough space for bundle `{}`", out.display()))
            && err.contains(&format!(
                " in `{}`, 1.0 MiB (1048576 bytes) are free",
                small.path().display()
            )),
        "{err}"
    );
    assert_eq!(small.entries(), Vec::<String>::new());
    let before = assert_store_consistent(&cache);
    assert!(
        before <= 12,
        "only manifests and configs are read before the space check: {before} blobs"
    );
    drop(small);
    eprintln!("1a. refused before downloading: {refused}");

    // 1b. Into a large directory: completes, and gives the bundle's exact size.
    let big_dir = work.path().join("big");
    std::fs::create_dir_all(&big_dir).unwrap();
    let again = big_dir.join("stack.tar");
    let o = ok(pack(&cache, &again).arg("--json"));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        summary["blobs"]["fetched"].as_u64().unwrap() >= 4,
        "{summary}"
    );
    let needed = summary["bytes"].as_u64().unwrap();
    assert_verifies(&cache, &again);

    // 1c. Room for the blobs but not for the whole tar (headers, metadata): the writer's
    //     exact check refuses before writing, needed = the bundle's size to the byte.
    let pages = (needed - 1) / 4096;
    let tight = Tmpfs::mount(&format!("size={}", pages * 4096)).unwrap();
    let out = tight.path().join("stack.tar");
    let o = pack(&cache, &out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        err.contains(&format!("({needed} bytes) in `{}`", tight.path().display())),
        "needed = the bundle's size {needed}: {err}"
    );
    assert_eq!(tight.entries(), Vec::<String>::new());
    assert_store_consistent(&cache);
    drop(tight);
    eprintln!("1c. refused by the exact size: {}", error_lines(&o));

    // 2. Enough space when the write starts, none a moment later.
    let mut caught = false;
    for attempt in 1..=5 {
        let fs = Tmpfs::mount(&format!("size={}k", needed / 1024 + 2048)).unwrap();
        let out = fs.path().join("stack.tar");
        let mut child = pack(&cache, &out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let seen = loop {
            if !fs.entries().is_empty() {
                signal(&child, libc::SIGSTOP);
                break true;
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break false;
            }
        };
        if seen {
            if !out.exists() {
                fill(fs.path());
            }
            signal(&child, libc::SIGCONT);
        }
        let o = child.wait_with_output().unwrap();
        if o.status.success() {
            eprintln!("2. attempt {attempt}: the write finished before the disk was filled; again");
            continue;
        }
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert!(
            err.contains(&format!("Not enough space for bundle `{}`", out.display()))
                && err.contains("the disk filled up"),
            "{err}"
        );
        assert_eq!(
            fs.entries(),
            vec!["filler".to_string()],
            "only the filler is left"
        );
        assert_store_consistent(&cache);
        eprintln!(
            "2. ENOSPC while writing (attempt {attempt}): {}",
            error_lines(&o)
        );
        caught = true;
        break;
    }
    assert!(caught, "never caught the pack while it was writing");

    // 3. The cache itself on a full disk.
    let store_fs = Tmpfs::mount("size=1m").unwrap();
    let store = store_fs.path().join("airlock");
    let o = pack(&store, &big_dir.join("other.tar")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        err.contains(&store.display().to_string()),
        "the error names the cache: {err}"
    );
    assert!(!big_dir.join("other.tar").exists());
    let blobs = assert_store_consistent(&store);
    eprintln!("3. cache full after {blobs} blobs: {}", error_lines(&o));
    eprintln!("disk_full_during_pack: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------
// The engine cut off

/// `DOCKER_HOST` for a socket file nobody listens on (an engine that stopped).
fn dead_engine(dir: &Path) -> String {
    let path = dir.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    format!("unix://{}", path.display())
}

/// The error lines of a command's stderr (progress lines left out), for messages.
fn error_lines(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.starts_with("error:") || l.trim_start().starts_with("caused by:"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// `airlock load` with the engine cut off:
/// - `DOCKER_HOST` at a socket nobody listens on, and at a path with no socket: exit 3 naming
///   `DOCKER_HOST`, before anything is sent;
/// - through a proxy that cuts the connection after 64 KiB, 1 MiB and 3 MiB of the
///   `POST /images/load` stream (the engine went away mid-load): exit 3 naming `DOCKER_HOST`,
///   "Lost the connection"; then a load through the proxy passing everything completes, every
///   image has the bundle's ID and big:1 runs.
#[test]
fn engine_cut_off_during_load() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new("engine_cut_off_during_load");
    let stack = Stack::new("cut", 4 << 20, &mut rng);
    let cache = stack.dir.path().join("cache");
    let load = |host: &str| {
        let mut cmd = airlock_cmd(&cache);
        cmd.env("DOCKER_HOST", host).arg("load").arg(&stack.bundle);
        cmd
    };
    stack.remove_from_engine();

    let dead = dead_engine(stack.dir.path());
    let missing = format!("unix://{}", stack.dir.path().join("no-such.sock").display());
    for host in [&dead, &missing] {
        let o = load(host).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        let err = error_lines(&o);
        assert!(
            err.contains(&format!("Cannot reach the Docker engine at `{host}`")),
            "{err}"
        );
        eprintln!("unreachable: {err}");
    }
    assert_eq!(stack.on_engine(), 0);

    let proxy = EngineProxy::start();
    let host = proxy.docker_host();
    for (n, cut) in [64u64 << 10, 1 << 20, 3 << 20].into_iter().enumerate() {
        proxy.cut_load_after(cut);
        let o = load(&host).output().unwrap();
        assert_eq!(proxy.cuts(), n + 1, "the proxy cut the load: {}", text(&o));
        assert_eq!(
            o.status.code(),
            Some(3),
            "cut after {cut} bytes: {}",
            text(&o)
        );
        let err = error_lines(&o);
        assert!(
            err.contains(&format!("into the engine at `{host}`"))
                && err.contains(&format!(
                    "Lost the connection to the Docker engine at `{host}`"
                )),
            "cut after {cut} bytes: {err}"
        );
        eprintln!("cut after {cut} bytes: {err}");
        proxy.cut_load_after(0);
        ok(&mut load(&host));
        stack.assert_loaded();
        stack.assert_runs(3);
        stack.remove_from_engine();
    }
    eprintln!("engine_cut_off_during_load: {:?}", started.elapsed());
}

/// A layer the load plan leaves out (the engine has it through another image) disappears
/// before the engine reaches it: the engine holds only app:2, `airlock load` of the whole
/// bundle is held at the proxy until app:2 is removed, then let through. The engine refuses
/// the stream naming the missing layer's file; load reads the engine again, sends the layer
/// and completes (exit 0, a warning naming the layer); every image has the bundle's ID.
#[test]
fn layer_removed_from_engine_during_load() {
    if !require_docker() {
        return;
    }
    if crate::harness::engine().containerd() {
        // Engine-specific: a containerd-store engine is sent the whole bundle (load plans
        // leave nothing out there; docs/engines.md), so no layer can vanish from the plan.
        eprintln!(
            "layer_removed_from_engine_during_load: not applicable on a containerd-store engine (whole bundle sent)"
        );
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new("layer_removed_from_engine_during_load");
    let stack = Stack::new("vanish", 1 << 20, &mut rng);
    let cache = stack.dir.path().join("cache");
    stack.remove_from_engine();
    ok(airlock_cmd(&cache).arg("load").arg(&stack.bundle));
    let ids = stack.ids();
    let app2 = ids
        .iter()
        .find(|(r, _)| r == &stack.refs[2])
        .unwrap()
        .1
        .clone();
    for (_, id) in ids.iter().filter(|(_, id)| id != &app2) {
        docker(&["rmi", "-f", id]);
    }
    assert_eq!(stack.on_engine(), 1, "only app:2 is left");

    let proxy = EngineProxy::start();
    proxy.hold_load(true);
    let child = airlock_cmd(&cache)
        .env("DOCKER_HOST", proxy.docker_host())
        .args(["load", "--json"])
        .arg(&stack.bundle)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.held() == 0 {
        assert!(
            Instant::now() < deadline,
            "the load request never reached the proxy"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    docker(&["rmi", "-f", &app2]);
    proxy.hold_load(false);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("left the engine during the load; loading again with it"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["sent"], true, "{report}");
    stack.assert_loaded();
    stack.assert_runs(2);
    eprintln!(
        "layer_removed_from_engine_during_load: {} / {:?}",
        err.lines()
            .filter(|l| l.contains("left the engine"))
            .collect::<Vec<_>>()
            .join(" / "),
        started.elapsed()
    );
}

/// Containers of compose project `project`, `name state` each, sorted.
fn project_containers(project: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Removes a compose project's containers and networks (by label).
struct ProjectCleanup(String);

impl Drop for ProjectCleanup {
    fn drop(&mut self) {
        let label = format!("label=com.docker.compose.project={}", self.0);
        for kind in [["ps", "-aq"], ["network", "ls"]] {
            let mut args = kind.to_vec();
            args.extend(["-q", "--filter", &label]);
            if kind[0] == "ps" {
                args.remove(2);
            }
            let ids = Command::new("docker")
                .args(&args)
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            for id in String::from_utf8_lossy(&ids).split_whitespace() {
                if kind[0] == "ps" {
                    docker_quiet(&["rm", "-f", "-v", id]);
                } else {
                    docker_quiet(&["network", "rm", id]);
                }
            }
        }
    }
}

/// `airlock up` with the engine cut off:
/// - unreachable at start (`DOCKER_HOST` at a dead socket): exit 3 naming it, before anything
///   is extracted (the project directory is not created) or started;
/// - cut mid-load (after 1 MiB of the load stream): exit 3, the message says where it stopped
///   (compose files written, nothing started) and names `DOCKER_HOST`; no container exists;
/// - again with the proxy passing: exit 0, both services running, images with the bundle's IDs.
#[test]
fn engine_cut_off_during_up() {
    if !require_docker() {
        return;
    }
    let started = Instant::now();
    let mut rng = Rng::new("engine_cut_off_during_up");
    let stack = Stack::new("up", 2 << 20, &mut rng);
    let project = stack.meta["project"].as_str().unwrap().to_string();
    assert_eq!(project, stack.project);
    let _cleanup = ProjectCleanup(project.clone());
    let cache = stack.dir.path().join("cache");
    let dir = stack.dir.path().join("offline").join(&project);
    let up = |host: &str| {
        let mut cmd = airlock_cmd(&cache);
        cmd.env("DOCKER_HOST", host)
            .arg("up")
            .arg(&stack.bundle)
            .arg("--dir")
            .arg(&dir)
            .args(["--timeout", "60s"]);
        cmd
    };
    stack.remove_from_engine();

    let dead = dead_engine(stack.dir.path());
    let o = up(&dead).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = error_lines(&o);
    assert!(
        err.contains(&format!("Cannot reach the Docker engine at `{dead}`")),
        "{err}"
    );
    assert!(
        !dir.exists(),
        "nothing extracted before the engine answered"
    );
    assert_eq!(project_containers(&project), Vec::<String>::new());
    eprintln!("unreachable: {err}");

    let proxy = EngineProxy::start();
    let host = proxy.docker_host();
    proxy.cut_load_after(1 << 20);
    let o = up(&host).output().unwrap();
    assert_eq!(proxy.cuts(), 1, "the proxy cut the load: {}", text(&o));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = error_lines(&o);
    assert!(
        err.contains(&format!(
            "Stopped while loading `{}`",
            stack.bundle.display()
        )) && err.contains(&format!(
            "the compose files are in `{}`, nothing was started",
            dir.display()
        )) && err.contains(&format!(
            "Lost the connection to the Docker engine at `{host}`"
        )),
        "{err}"
    );
    assert!(dir.join("compose.yaml").exists());
    assert_eq!(
        project_containers(&project),
        Vec::<String>::new(),
        "nothing started"
    );
    eprintln!("cut mid-load: {err}");

    proxy.cut_load_after(0);
    let o = up(&host).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    stack.assert_loaded();
    let running = project_containers(&project);
    assert_eq!(running.len(), 2, "{running:?}");
    assert!(
        running.iter().all(|c| c.ends_with(" running")),
        "{running:?}"
    );
    eprintln!("engine_cut_off_during_up: {:?}", started.elapsed());
}
