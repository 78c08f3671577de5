//! Registry faults, through a small HTTP proxy on loopback (tokio) in front of a real
//! `docker-registry`: a connection cut mid-blob is resumed with `Range`; wrong bytes are
//! refused with the digest named and nothing enters the store; a 429 with `Retry-After` is
//! waited out; `kill -9` during a pack, then a second pack, downloads nothing already
//! stored and leaves no partial bundle.

use crate::harness::{Registry, TestImages, airlock, require_docker, run};
use crate::pack::{members, ok};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to blob responses whose path contains `digest`.
#[derive(Clone, Debug)]
pub enum Fault {
    Pass,
    /// Close the connection after `after` body bytes, the first time only.
    CutOnce {
        digest: String,
        after: usize,
    },
    /// Flip one body byte at `at`, every time.
    Corrupt {
        digest: String,
        at: usize,
    },
    /// Answer 429 with `Retry-After: secs` to the first blob GET.
    TooManyOnce {
        secs: u64,
    },
    /// Send blob bodies at about `bytes` per 50 ms.
    Slow {
        bytes: usize,
    },
    /// Docker Hub style: every `/v2/` request needs `Bearer tok` from the anonymous token
    /// endpoint `/token`; blob GETs are redirected to another origin (`localhost:PORT/direct/`).
    Bearer,
}

#[derive(Default)]
pub struct ProxyState {
    pub fault: Mutex<Option<Fault>>,
    /// `METHOD PATH range=<Range header>` per request.
    pub log: Mutex<Vec<String>>,
    /// The proxy's own port (for challenges and redirects).
    pub port: std::sync::atomic::AtomicU16,
}

pub struct Proxy {
    pub port: u16,
    pub state: Arc<ProxyState>,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    pub fn start(upstream: u16, fault: Fault) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(ProxyState {
            fault: Mutex::new(Some(fault)),
            ..Default::default()
        });
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        state.port.store(port, std::sync::atomic::Ordering::SeqCst);
        let st = state.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = handle(client, upstream, st).await;
                });
            }
        });
        Proxy {
            port,
            state,
            _rt: rt,
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = Some(fault);
    }

    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }
}

async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Rewrite a head: drop `Connection`, add `Connection: close` (one exchange per connection).
fn close_head(head: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for l in head {
        if l.to_ascii_lowercase().starts_with("connection:")
            || l.to_ascii_lowercase().starts_with("keep-alive:")
        {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

async fn handle(client: TcpStream, upstream: u16, state: Arc<ProxyState>) -> std::io::Result<()> {
    let (cr, mut cw) = client.into_split();
    let mut cr = BufReader::new(cr);
    let Some(head) = read_head(&mut cr).await? else {
        return Ok(());
    };
    let request = head.first().cloned().unwrap_or_default();
    let range = header(&head, "range").unwrap_or("").to_string();
    state
        .log
        .lock()
        .unwrap()
        .push(format!("{request} range={range}"));
    let mut head = head;
    if matches!(*state.fault.lock().unwrap(), Some(Fault::Bearer)) {
        let port = state.port.load(std::sync::atomic::Ordering::SeqCst);
        let auth = header(&head, "authorization").unwrap_or("").to_string();
        let path = request.split(' ').nth(1).unwrap_or("").to_string();
        let reply = |status: &str, extra: String, body: &str| {
            format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        let answer = if path.starts_with("/token") {
            state
                .log
                .lock()
                .unwrap()
                .push(format!("token {path} auth={auth}"));
            Some(reply(
                "200 OK",
                "Content-Type: application/json\r\n".into(),
                r#"{"token":"tok"}"#,
            ))
        } else if let Some(rest) = path.strip_prefix("/direct") {
            state
                .log
                .lock()
                .unwrap()
                .push(format!("direct {rest} auth={auth}"));
            head[0] = request.replacen(&path, rest, 1);
            None
        } else if auth != "Bearer tok" {
            let challenge = format!(
                "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"airlock-test\"\r\n"
            );
            Some(reply("401 Unauthorized", challenge, ""))
        } else if request.starts_with("GET ") && path.contains("/blobs/") {
            Some(reply(
                "307 Temporary Redirect",
                format!("Location: http://localhost:{port}/direct{path}\r\n"),
                "",
            ))
        } else {
            head.retain(|l| !l.to_ascii_lowercase().starts_with("authorization:"));
            None
        };
        if let Some(answer) = answer {
            cw.write_all(answer.as_bytes()).await?;
            return cw.shutdown().await;
        }
    }
    let is_blob_get = request.starts_with("GET ") && request.contains("/blobs/sha256:");
    // Decide the fault for this exchange (one-shot faults are consumed here).
    let fault = {
        let mut f = state.fault.lock().unwrap();
        match f.clone().unwrap_or(Fault::Pass) {
            Fault::CutOnce { digest, after } if is_blob_get && request.contains(&digest) => {
                *f = Some(Fault::Pass);
                Fault::CutOnce { digest, after }
            }
            Fault::TooManyOnce { secs } if is_blob_get => {
                *f = Some(Fault::Pass);
                Fault::TooManyOnce { secs }
            }
            Fault::Corrupt { digest, at } if is_blob_get && request.contains(&digest) => {
                Fault::Corrupt { digest, at }
            }
            Fault::Slow { bytes } if is_blob_get => Fault::Slow { bytes },
            _ => Fault::Pass,
        }
    };
    if let Fault::TooManyOnce { secs } = fault {
        let answer = format!(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {secs}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        cw.write_all(answer.as_bytes()).await?;
        return cw.shutdown().await;
    }
    let up = TcpStream::connect(("127.0.0.1", upstream)).await?;
    let (ur, mut uw) = up.into_split();
    uw.write_all(&close_head(&head)).await?;
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        tokio::io::copy(&mut (&mut cr).take(len), &mut uw).await?;
    }
    let mut ur = BufReader::new(ur);
    let Some(resp_head) = read_head(&mut ur).await? else {
        return Ok(());
    };
    cw.write_all(&close_head(&resp_head)).await?;
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let limit = match &fault {
            Fault::Slow { bytes } => (*bytes).min(buf.len()),
            _ => buf.len(),
        };
        let n = ur.read(&mut buf[..limit]).await?;
        if n == 0 {
            break;
        }
        let chunk = &mut buf[..n];
        match &fault {
            Fault::CutOnce { after, .. } if sent + n >= *after => {
                let keep = after - sent;
                cw.write_all(&chunk[..keep]).await?;
                cw.flush().await?;
                // Drop both sides: the client sees the connection end mid-body.
                return Ok(());
            }
            Fault::Corrupt { at, .. } if sent <= *at && *at < sent + n => chunk[at - sent] ^= 0xff,
            Fault::Slow { .. } => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => {}
        }
        cw.write_all(chunk).await?;
        sent += n;
    }
    cw.shutdown().await
}

/// The largest layer of a pushed image (digest, size), read from the registry.
fn largest_layer(reg: &Registry, repo_tag: &str) -> (String, u64) {
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/{repo_tag}", reg.addr),
    ]));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .max_by_key(|(_, s)| *s)
        .unwrap()
}

fn stored(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("blobs/sha256"))
        .map(|d| {
            d.flatten()
                .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn setup(name: &str) -> (Registry, TestImages, (String, u64), String) {
    let reg = Registry::start();
    let images = TestImages::build(name);
    images.push(&reg);
    let repo_tag = format!("airlock-it/{name}/app:1");
    let big = largest_layer(&reg, &repo_tag);
    (reg, images, big, repo_tag)
}

#[test]
fn connection_cut_mid_blob_is_resumed_with_range() {
    if !require_docker() {
        return;
    }
    let (reg, _images, (big, size), repo_tag) = setup("fault-cut");
    let proxy = Proxy::start(
        reg.port,
        Fault::CutOnce {
            digest: big.clone(),
            after: (size / 2) as usize,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("cut.tar");
    let reference = format!("127.0.0.1:{}/{repo_tag}", proxy.port);
    let o = ok(airlock(&cache).current_dir(dir.path()).args([
        "pack",
        "--image",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("interrupted") || stderr.contains("ended at"),
        "{stderr}"
    );
    let gets: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|l| l.starts_with("GET") && l.contains(&big))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets[0].ends_with("range="), "{gets:?}");
    assert!(
        gets[1].contains(&format!("range=bytes={}-", size / 2)),
        "{gets:?}"
    );
    assert!(members(&out).contains(&format!(
        "blobs/sha256/{}",
        big.trim_start_matches("sha256:")
    )));
    assert!(stored(&cache).contains(&big));
}

#[test]
fn wrong_bytes_are_refused_and_never_stored() {
    if !require_docker() {
        return;
    }
    let (reg, _images, (big, size), repo_tag) = setup("fault-corrupt");
    let proxy = Proxy::start(
        reg.port,
        Fault::Corrupt {
            digest: big.clone(),
            at: (size / 3) as usize,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("bad.tar");
    let reference = format!("127.0.0.1:{}/{repo_tag}", proxy.port);
    let o = airlock(&cache)
        .current_dir(dir.path())
        .args(["pack", "--image", &reference, "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(&big), "the digest is named: {stderr}");
    assert!(!stored(&cache).contains(&big));
    // Other layers cut short by the failure keep their partial files (resumable); the wrong one does not.
    let bad_partial = cache
        .join("ingest")
        .join(format!("{}.partial", big.trim_start_matches("sha256:")));
    assert!(!bad_partial.exists(), "no partial kept for wrong bytes");
    assert!(!out.exists());
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    if !require_docker() {
        return;
    }
    let (reg, _images, _, repo_tag) = setup("fault-429");
    let proxy = Proxy::start(reg.port, Fault::TooManyOnce { secs: 2 });
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("429.tar");
    let reference = format!("127.0.0.1:{}/{repo_tag}", proxy.port);
    let start = Instant::now();
    let o = ok(airlock(&cache).current_dir(dir.path()).args([
        "pack",
        "--image",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]));
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "Retry-After not honoured: {:?}",
        start.elapsed()
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("429"), "{stderr}");
    assert!(out.exists());
}

#[test]
fn kill_during_pack_then_second_pack_resumes() {
    if !require_docker() {
        return;
    }
    let (reg, _images, (big, _), repo_tag) = setup("fault-kill");
    let proxy = Proxy::start(reg.port, Fault::Slow { bytes: 8 << 10 });
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out: PathBuf = dir.path().join("killed.tar");
    let reference = format!("127.0.0.1:{}/{repo_tag}", proxy.port);
    // A stale temporary from an earlier killed writer (a pid that does not run).
    let stale = dir.path().join(".killed.tar.airlock-partial-4000000");
    std::fs::write(&stale, b"junk").unwrap();

    let mut child = Command::new(assert_cmd::cargo::cargo_bin("airlock"))
        .env("AIRLOCK_CACHE", &cache)
        .current_dir(dir.path())
        .args([
            "pack",
            "--image",
            &reference,
            "-o",
            out.to_str().unwrap(),
            "--jobs",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = cache
        .join("ingest")
        .join(format!("{}.partial", big.trim_start_matches("sha256:")));
    let start = Instant::now();
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < 100 << 10 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the big layer never started downloading"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "pack ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !out.exists(),
        "a killed pack left a file at the output path"
    );
    let before = stored(&cache);
    assert!(
        !before.is_empty(),
        "manifests and small blobs were stored before the kill"
    );
    let kept = std::fs::metadata(&partial).unwrap().len();

    proxy.set(Fault::Pass);
    proxy.state.log.lock().unwrap().clear();
    let o = ok(airlock(&cache).current_dir(dir.path()).args([
        "pack",
        "--image",
        &reference,
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]));
    let log = proxy.log();
    for d in &before {
        assert!(
            !log.iter()
                .any(|l| l.starts_with("GET") && l.contains(d.as_str())),
            "{d} fetched again: {log:?}"
        );
    }
    let big_get: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET") && l.contains(&big))
        .collect();
    assert_eq!(big_get.len(), 1, "{log:?}");
    assert!(
        big_get[0].contains(&format!("range=bytes={kept}-")),
        "{big_get:?}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        summary["blobs"]["cached"].as_u64().unwrap() >= before.len() as u64,
        "{summary}"
    );
    assert!(out.exists());
    assert!(!stale.exists(), "stale temporary bundle removed");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("airlock-partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn anonymous_token_flow_and_redirects_without_credentials() {
    if !require_docker() {
        return;
    }
    let (reg, _images, _, repo_tag) = setup("fault-bearer");
    let proxy = Proxy::start(reg.port, Fault::Bearer);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("bearer.tar");
    let reference = format!("127.0.0.1:{}/{repo_tag}", proxy.port);
    ok(airlock(&cache).current_dir(dir.path()).args([
        "pack",
        "--image",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]));
    let log = proxy.log();
    let tokens: Vec<&String> = log.iter().filter(|l| l.starts_with("token ")).collect();
    // One token for the repository scope, reused for every request (the cache).
    assert_eq!(tokens.len(), 1, "{log:?}");
    assert!(
        tokens[0].contains("scope=repository%3Aairlock-it%2Ffault-bearer%2Fapp%3Apull"),
        "{tokens:?}"
    );
    assert!(tokens[0].contains("service=airlock-test"), "{tokens:?}");
    // Blobs came through the redirect, and the other origin never saw the token.
    let direct: Vec<&String> = log.iter().filter(|l| l.starts_with("direct ")).collect();
    assert!(direct.len() >= 5, "{log:?}");
    assert!(
        direct.iter().all(|l| l.ends_with("auth=")),
        "credentials forwarded across origins: {direct:?}"
    );
    assert!(out.exists());
}
