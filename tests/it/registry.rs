//! Registry faults, through a small HTTP proxy on loopback (tokio) in front of a real
//! `docker-registry`: a connection cut mid-blob is resumed with `Range`; wrong bytes are
//! refused with the digest named and nothing enters the store; a 429 with `Retry-After` is
//! waited out; `kill -9` during a pack, then a second pack, downloads nothing already
//! stored and leaves no partial bundle. `hostile` holds the answers a real registry never
//! gives (a huge manifest, redirect loops, endless bodies, lying `Content-Length` and
//! `Docker-Content-Digest`), which the proxy makes up or rewrites; `flaky` packs through a
//! proxy that drops connections and answers 5xx/429 at random (seed printed; set
//! `AIRLOCK_FLAKY_SEED=N` to repeat a run).

mod flaky;
mod hostile;

use crate::harness::{Registry, TestImages, airlock, require_docker, run};
use crate::pack::{members, ok};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How a made-up endless body is framed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Framing {
    /// No `Content-Length`: the body ends when the connection does (never).
    Close,
    /// `Transfer-Encoding: chunked`, chunks without end.
    Chunked,
    /// `Content-Length` = the real size + 1 MiB, and that many bytes.
    Announced,
}

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
    /// Answer `GET .../manifests/<tag>` with a manifest-typed body of `bytes` bytes (a JSON
    /// start, then spaces), announced by `Content-Length` or not (close-delimited).
    HugeManifest {
        tag: String,
        bytes: u64,
        content_length: bool,
    },
    /// Redirect blob GETs for `digest`: to the same URL (`to_self`), else A -> B -> A.
    RedirectLoop {
        digest: String,
        to_self: bool,
    },
    /// Blob GETs for `digest`: the real bytes, then junk without end (`Close`, `Chunked`)
    /// or 1 MiB of it (`Announced`).
    Endless {
        digest: String,
        framing: Framing,
    },
    /// GETs whose path contains `path`: `Content-Length` changed by `delta`, the body cut to
    /// what that says (or all of it, then the connection closes); `times` times, then pass.
    LieLength {
        path: String,
        delta: i64,
        times: usize,
    },
    /// Manifest answers (HEAD and/or GET) whose path contains `path` carry
    /// `Docker-Content-Digest: <digest>`.
    LieDigest {
        path: String,
        digest: String,
        head: bool,
        get: bool,
    },
    /// Manifest GETs whose path contains `path` get `body` instead (upstream headers kept,
    /// `Content-Length` fixed).
    SwapBody {
        path: String,
        body: Vec<u8>,
    },
    /// Every request, decided from `seed`, the request line (digests left out) and how
    /// often such a line was seen (so with `--jobs 1` a seed repeats a run): about 20% dropped (before the answer, or mid-body), 10% answered 500/502/503/429
    /// (with `Retry-After: 0|1` or none); never more than `MAX_STREAK` faults in a row for
    /// one request, so default retries always get through.
    Flaky {
        seed: u64,
    },
}

/// Longest run of faults the flaky mode deals one request before letting it through.
pub const MAX_STREAK: u32 = 3;

/// Counters of the flaky mode, for the test's report.
#[derive(Default)]
pub struct FlakyStats {
    seen: HashMap<String, u64>,
    streak: HashMap<String, u32>,
    /// Connections dropped (before the answer, or mid-body: `mid_body` of them).
    pub drops: u64,
    pub mid_body: u64,
    /// 500/502/503/429 answers made up.
    pub statuses: u64,
    pub passed: u64,
}

impl std::fmt::Debug for FlakyStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests: {} dropped ({} mid-body), {} answered 5xx/429, {} passed",
            self.drops + self.statuses + self.passed,
            self.drops,
            self.mid_body,
            self.statuses,
            self.passed
        )
    }
}

#[derive(Default)]
pub struct ProxyState {
    pub fault: Mutex<Option<Fault>>,
    /// `METHOD PATH range=<Range header>` per request.
    pub log: Mutex<Vec<String>>,
    /// The proxy's own port (for challenges and redirects).
    pub port: std::sync::atomic::AtomicU16,
    /// Body bytes written by made-up answers (huge manifests, endless bodies).
    pub made_up: AtomicU64,
    /// How many `LieLength` answers were given.
    pub lies: AtomicU64,
    pub flaky: Mutex<FlakyStats>,
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
        state.port.store(port, Ordering::SeqCst);
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

/// Replace (or with `None` remove) a header of a head.
fn set_header(head: &mut Vec<String>, name: &str, value: Option<&str>) {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    head.retain(|l| !l.to_ascii_lowercase().starts_with(&prefix));
    if let Some(v) = value {
        head.push(format!("{name}: {v}"));
    }
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

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic roll for the `n`th sighting of `key` under `seed`.
fn roll(seed: u64, key: &str, n: u64) -> u64 {
    let mut h = splitmix(seed);
    for b in key.bytes() {
        h = splitmix(h ^ u64::from(b));
    }
    splitmix(h ^ n)
}

/// What one exchange gets, decided when its request arrives.
enum Plan {
    Pass,
    Cut(usize),
    Corrupt(usize),
    Slow(usize),
    /// Answer this status (and `Retry-After`) without asking upstream.
    Status(u16, Option<u64>),
    /// Flaky drop: before the answer when `per_mille < 100` or the body is empty, else
    /// after that share of the body.
    Drop {
        per_mille: u64,
    },
    Endless(Framing),
    LieLength(i64),
    LieDigest(String),
    SwapBody(Vec<u8>),
}

/// `key` with every `sha256:<hex>` made `sha256:*`: the test images are rebuilt each run
/// (new timestamps, new digests), so rolls are keyed by the kind of request and its order.
fn without_digests(key: &str) -> String {
    let mut out = String::new();
    let mut rest = key;
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i + 7]);
        out.push('*');
        rest = rest[i + 7..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

fn flaky_plan(state: &ProxyState, seed: u64, key: &str) -> Plan {
    let mut st = state.flaky.lock().unwrap();
    let kind = without_digests(key);
    let n = {
        let seen = st.seen.entry(kind.clone()).or_default();
        *seen += 1;
        *seen
    };
    let streak = st.streak.get(key).copied().unwrap_or(0);
    let r = roll(seed, &kind, n);
    let plan = if streak >= MAX_STREAK {
        Plan::Pass
    } else {
        match r % 100 {
            0..20 => Plan::Drop {
                per_mille: (r >> 8) % 1000,
            },
            20..30 => Plan::Status(
                [500, 502, 503, 429][((r >> 20) % 4) as usize],
                [None, Some(0), Some(1)][((r >> 24) % 3) as usize],
            ),
            _ => Plan::Pass,
        }
    };
    match plan {
        Plan::Pass => {
            st.passed += 1;
            st.streak.insert(key.to_string(), 0);
        }
        Plan::Drop { .. } => st.drops += 1,
        _ => st.statuses += 1,
    }
    if !matches!(plan, Plan::Pass) {
        *st.streak.entry(key.to_string()).or_default() += 1;
    }
    plan
}

async fn reply(cw: &mut tokio::net::tcp::OwnedWriteHalf, text: String) -> std::io::Result<()> {
    cw.write_all(text.as_bytes()).await?;
    cw.shutdown().await
}

/// Junk bytes until the client hangs up (or `limit`), counted in `made_up`.
async fn send_junk(
    cw: &mut tokio::net::tcp::OwnedWriteHalf,
    state: &ProxyState,
    chunked: bool,
    limit: u64,
) -> std::io::Result<()> {
    let junk = vec![b'x'; 64 << 10];
    let mut sent = 0u64;
    while sent < limit {
        let n = (limit - sent).min(junk.len() as u64) as usize;
        if chunked {
            cw.write_all(format!("{n:x}\r\n").as_bytes()).await?;
        }
        cw.write_all(&junk[..n]).await?;
        if chunked {
            cw.write_all(b"\r\n").await?;
        }
        sent += n as u64;
        state.made_up.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(())
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
    let port = state.port.load(Ordering::SeqCst);
    if matches!(*state.fault.lock().unwrap(), Some(Fault::Bearer)) {
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
    let method = request.split(' ').next().unwrap_or("").to_string();
    let path = request.split(' ').nth(1).unwrap_or("").to_string();
    let is_get = method == "GET";
    let is_blob_get = is_get && path.contains("/blobs/sha256:");
    let is_manifest = path.contains("/manifests/");
    // Decide the fault for this exchange (one-shot faults are consumed here).
    let fault = state.fault.lock().unwrap().clone().unwrap_or(Fault::Pass);
    let plan = match fault {
        Fault::CutOnce { digest, after } if is_blob_get && path.contains(&digest) => {
            *state.fault.lock().unwrap() = Some(Fault::Pass);
            Plan::Cut(after)
        }
        Fault::TooManyOnce { secs } if is_blob_get => {
            *state.fault.lock().unwrap() = Some(Fault::Pass);
            Plan::Status(429, Some(secs))
        }
        Fault::Corrupt { digest, at } if is_blob_get && path.contains(&digest) => Plan::Corrupt(at),
        Fault::Slow { bytes } if is_blob_get => Plan::Slow(bytes),
        Fault::HugeManifest {
            tag,
            bytes,
            content_length,
        } if is_get && path.ends_with(&format!("/manifests/{tag}")) => {
            let length = if content_length {
                format!("Content-Length: {bytes}\r\n")
            } else {
                String::new()
            };
            cw.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.distribution.manifest.v2+json\r\n{length}Connection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
            let start = br#"{"schemaVersion":2,"padding":""#;
            cw.write_all(start).await?;
            send_junk(&mut cw, &state, false, bytes - start.len() as u64).await?;
            return cw.shutdown().await;
        }
        Fault::RedirectLoop { digest, to_self } if is_blob_get && path.contains(&digest) => {
            let location = if to_self {
                path.clone()
            } else if let Some(a) = path.strip_suffix("?b") {
                a.to_string()
            } else {
                format!("{path}?b")
            };
            return reply(
                &mut cw,
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{port}{location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
            )
            .await;
        }
        Fault::Endless { digest, framing } if is_blob_get && path.contains(&digest) => {
            Plan::Endless(framing)
        }
        Fault::LieLength {
            path: p,
            delta,
            times,
        } if is_get && path.contains(&p) => {
            if times > 0 {
                state.lies.fetch_add(1, Ordering::Relaxed);
                *state.fault.lock().unwrap() = Some(Fault::LieLength {
                    path: p,
                    delta,
                    times: times - 1,
                });
                Plan::LieLength(delta)
            } else {
                Plan::Pass
            }
        }
        Fault::LieDigest {
            path: p,
            digest,
            head,
            get,
        } if is_manifest
            && path.contains(&p)
            && ((is_get && get) || (method == "HEAD" && head)) =>
        {
            Plan::LieDigest(digest)
        }
        Fault::SwapBody { path: p, body } if is_get && is_manifest && path.contains(&p) => {
            Plan::SwapBody(body)
        }
        Fault::Flaky { seed } => flaky_plan(&state, seed, &format!("{method} {path}")),
        _ => Plan::Pass,
    };
    if let Plan::Status(code, retry_after) = plan {
        let retry = retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"made up by the test proxy"}]}"#;
        return reply(
            &mut cw,
            format!(
                "HTTP/1.1 {code} Made Up\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
    }
    let up = TcpStream::connect(("127.0.0.1", upstream)).await?;
    let (ur, mut uw) = up.into_split();
    uw.write_all(&close_head(&head)).await?;
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        tokio::io::copy(&mut (&mut cr).take(len), &mut uw).await?;
    }
    let mut ur = BufReader::new(ur);
    let Some(mut resp_head) = read_head(&mut ur).await? else {
        return Ok(());
    };
    let real_length = header(&resp_head, "content-length").and_then(|v| v.parse::<u64>().ok());
    // How many body bytes to pass on before hanging up (`None`: all).
    let mut cut: Option<u64> = None;
    match &plan {
        Plan::Cut(after) => cut = Some(*after as u64),
        Plan::Drop { per_mille } => {
            let len = if method == "HEAD" {
                0
            } else {
                real_length.unwrap_or(0)
            };
            if len == 0 || *per_mille < 100 {
                // Hang up before answering.
                return Ok(());
            }
            cut = Some(len * per_mille / 1000);
            state.flaky.lock().unwrap().mid_body += 1;
        }
        Plan::Endless(framing) => match framing {
            Framing::Close => set_header(&mut resp_head, "Content-Length", None),
            Framing::Chunked => {
                set_header(&mut resp_head, "Content-Length", None);
                set_header(&mut resp_head, "Transfer-Encoding", Some("chunked"));
            }
            Framing::Announced => {
                let n = real_length.unwrap_or(0) + (1 << 20);
                set_header(&mut resp_head, "Content-Length", Some(&n.to_string()));
            }
        },
        Plan::LieLength(delta) => {
            let real = real_length.unwrap_or(0);
            let lie = (real as i64 + delta).max(0) as u64;
            set_header(&mut resp_head, "Content-Length", Some(&lie.to_string()));
            cut = Some(lie.min(real));
        }
        Plan::LieDigest(d) => set_header(&mut resp_head, "Docker-Content-Digest", Some(d)),
        Plan::SwapBody(body) => {
            set_header(
                &mut resp_head,
                "Content-Length",
                Some(&body.len().to_string()),
            );
            cw.write_all(&close_head(&resp_head)).await?;
            cw.write_all(body).await?;
            return cw.shutdown().await;
        }
        _ => {}
    }
    cw.write_all(&close_head(&resp_head)).await?;
    let chunked = matches!(plan, Plan::Endless(Framing::Chunked));
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let limit = match &plan {
            Plan::Slow(bytes) => (*bytes).min(buf.len()),
            _ => buf.len(),
        };
        let n = ur.read(&mut buf[..limit]).await?;
        if n == 0 {
            break;
        }
        let chunk = &mut buf[..n];
        if let Some(after) = cut.map(|c| c as usize)
            && sent + n >= after
        {
            let keep = after - sent;
            cw.write_all(&chunk[..keep]).await?;
            cw.flush().await?;
            // Drop both sides: the client sees the connection end mid-body.
            return Ok(());
        }
        match &plan {
            Plan::Corrupt(at) if sent <= *at && *at < sent + n => chunk[at - sent] ^= 0xff,
            Plan::Slow(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => {}
        }
        if chunked {
            cw.write_all(format!("{n:x}\r\n").as_bytes()).await?;
        }
        cw.write_all(chunk).await?;
        if chunked {
            cw.write_all(b"\r\n").await?;
        }
        sent += n;
    }
    match plan {
        Plan::Endless(Framing::Announced) => send_junk(&mut cw, &state, false, 1 << 20).await?,
        Plan::Endless(framing) => {
            send_junk(&mut cw, &state, framing == Framing::Chunked, 8 << 30).await?
        }
        _ => {}
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

/// Every committed blob in the cache hashes to its name (the store never holds wrong bytes).
fn assert_sound(cache: &Path) {
    for d in stored(cache) {
        let hex = d.trim_start_matches("sha256:");
        let bytes = std::fs::read(cache.join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(
            hex_sha256(&bytes),
            hex,
            "a blob in the cache does not match its name"
        );
    }
}

/// Whether the cache keeps a partial download of `digest`.
fn has_partial(cache: &Path, digest: &str) -> bool {
    cache
        .join("ingest")
        .join(format!("{}.partial", digest.trim_start_matches("sha256:")))
        .exists()
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The raw manifest the registry holds for `repo_tag`, and its digest.
fn raw_manifest(reg: &Registry, repo_tag: &str) -> (Vec<u8>, String) {
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/{repo_tag}", reg.addr),
    ]));
    let digest = format!("sha256:{}", hex_sha256(&out.stdout));
    (out.stdout, digest)
}

/// One `airlock` run, watched: exit code, stderr, peak resident memory, wall time.
struct Measured {
    code: Option<i32>,
    stderr: String,
    peak_kb: u64,
    elapsed: Duration,
}

/// Run `airlock ARGS` with its own cache in `dir`, polling `/proc/<pid>/status` for the
/// peak resident set (`VmHWM`) until it exits; killed after `limit`.
fn measured(cache: &Path, dir: &Path, args: &[&str], limit: Duration) -> Measured {
    let err_path = dir.join(format!("stderr-{}", std::process::id()));
    let err = std::fs::File::create(&err_path).unwrap();
    let start = Instant::now();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("airlock"))
        .env("AIRLOCK_CACHE", cache)
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("airlock {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    Measured {
        code: status.code(),
        stderr,
        peak_kb,
        elapsed: start.elapsed(),
    }
}
