//! HTTP side of the registry client: owns one `Host` per registry (scheme chosen by ping,
//! TLS roots, challenge), the token cache per (realm, service, scope), retries with backoff
//! (connection errors, 5xx, 429 with `Retry-After`), and redirects followed by hand so
//! `Authorization` never reaches another host. Used by `resolve` and `pull`.
//!
//! Scheme rules: HTTPS with verified certificates by default (webpki roots, the system
//! bundle, `--ca-cert`, `/etc/docker/certs.d/<host>/*.crt`). Loopback hosts (127.0.0.0/8,
//! `localhost`, `::1`) may fall back to plain HTTP; `--insecure-registry HOST` allows
//! unverified HTTPS and plain HTTP.

use super::RegistryError;
use super::auth::{self, Challenge, Credential};
use crate::digest::Digest;
use crate::image::media;
use crate::progress::Reporter;
use crate::reference::Reference;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Manifests and indexes larger than this are refused (the distribution server's own limit).
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// Redirects followed for one request; a longer chain is taken for a loop and refused.
pub const MAX_REDIRECTS: usize = 10;

/// Why `send_following` got no answer.
enum SendError {
    Http(reqwest::Error),
    /// More than `MAX_REDIRECTS` redirects; `last` is where the last one pointed.
    Redirects {
        last: Url,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts (`host` or `host:port`) allowed over plain HTTP or unverified HTTPS.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM files) trusted for every registry.
    pub ca_certs: Vec<PathBuf>,
    /// Where per-host CA certificates live (`<dir>/<host:port>/*.crt`).
    pub certs_dir: PathBuf,
    /// Concurrent blob downloads.
    pub jobs: usize,
    /// Attempts per request (first try included).
    pub attempts: u32,
    /// First backoff delay; doubled per attempt, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for Options {
    /// No insecure hosts, no extra CA, `/etc/docker/certs.d`, 4 jobs, 6 attempts,
    /// backoff 0.5 s doubling to 8 s, `Retry-After` honoured up to 120 s.
    fn default() -> Self {
        Options {
            insecure: Vec::new(),
            ca_certs: Vec::new(),
            certs_dir: PathBuf::from("/etc/docker/certs.d"),
            jobs: 4,
            attempts: 6,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// One registry host, after its ping.
pub struct Host {
    /// `host[:port]` the API is spoken to.
    pub name: String,
    /// `https://host[:port]` or `http://...`.
    base: Url,
    http: reqwest::Client,
    credential: Option<Credential>,
    challenge: Mutex<Option<Challenge>>,
}

/// The registry client: shared by every resolve and pull of one command.
pub struct Client {
    opts: Options,
    extra_roots: Vec<reqwest::Certificate>,
    hosts: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Host>>>>>,
    tokens: Mutex<HashMap<(String, String, String), String>>,
    pub(crate) reporter: Arc<dyn Reporter>,
    /// Set by the caller (Ctrl-C); transfers stop at the next chunk, keeping partial files.
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .map(|(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            })
            .unwrap_or(host)
    };
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn host_only(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map(|h| &h[1..]).unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

fn origin(u: &Url) -> (String, Option<String>, Option<u16>) {
    (
        u.scheme().to_string(),
        u.host_str().map(str::to_string),
        u.port_or_known_default(),
    )
}

impl Client {
    pub fn new(opts: Options, reporter: Arc<dyn Reporter>) -> Result<Self, RegistryError> {
        let mut extra_roots = Vec::new();
        for path in &opts.ca_certs {
            extra_roots.extend(read_certs(path)?);
        }
        // The system bundle, for registries behind a corporate CA installed system-wide.
        for bundle in [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ] {
            if let Ok(bytes) = fs_err::read(bundle) {
                if let Ok(certs) = reqwest::Certificate::from_pem_bundle(&bytes) {
                    extra_roots.extend(certs);
                }
                break;
            }
        }
        Ok(Client {
            opts,
            extra_roots,
            hosts: Mutex::default(),
            tokens: Mutex::default(),
            reporter,
            cancel: Arc::default(),
        })
    }

    /// Share a cancellation flag (Ctrl-C): blob transfers check it between chunks.
    pub fn with_cancel(mut self, cancel: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    fn insecure(&self, host: &str) -> bool {
        self.opts
            .insecure
            .iter()
            .any(|h| h == host || h == host_only(host))
    }

    fn http_client(&self, host: &str, insecure: bool) -> Result<reqwest::Client, RegistryError> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")));
        for c in &self.extra_roots {
            b = b.add_root_certificate(c.clone());
        }
        let dir = self.opts.certs_dir.join(host);
        if let Ok(entries) = fs_err::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "crt") {
                    for c in read_certs(&p)? {
                        b = b.add_root_certificate(c);
                    }
                }
            }
        }
        if insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        b.build().map_err(|e| RegistryError::CaCert {
            path: dir,
            message: e.to_string(),
        })
    }

    /// The host serving `r`, pinged once per command.
    pub async fn host(&self, r: &Reference) -> Result<Arc<Host>, RegistryError> {
        let name = r.api_host().to_string();
        let cell = self
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.ping(r)).await.cloned()
    }

    async fn ping(&self, r: &Reference) -> Result<Arc<Host>, RegistryError> {
        let name = r.api_host().to_string();
        let insecure = self.insecure(&name);
        let plain_ok = insecure || is_loopback(&name);
        let http = self.http_client(&name, insecure)?;
        let credential = auth::lookup(r.registry())?;
        let https = Url::parse(&format!("https://{name}/")).map_err(|e| RegistryError::Config {
            path: PathBuf::from(&name),
            message: e.to_string(),
        })?;
        let what = "GET /v2/".to_string();
        let first = self.ping_url(&http, &https, &name).await;
        let tls_failure = |source: reqwest::Error| {
            if is_cert_error(&source) {
                RegistryError::Tls {
                    host: name.clone(),
                    source,
                }
            } else {
                RegistryError::Connect {
                    host: name.clone(),
                    what: what.clone(),
                    source,
                }
            }
        };
        let (base, resp) = match first {
            Ok(resp) => (https, resp),
            // Not speaking TLS at all: a loopback or --insecure-registry host may be plain HTTP.
            Err(e) if plain_ok && e.is_connect() && !is_cert_error(&e) => {
                let plain =
                    Url::parse(&format!("http://{name}/")).expect("valid after https parsed");
                match self.ping_url(&http, &plain, &name).await {
                    Ok(resp)
                        if resp.status() == StatusCode::OK
                            || resp.status() == StatusCode::UNAUTHORIZED =>
                    {
                        (plain, resp)
                    }
                    _ => return Err(tls_failure(e)),
                }
            }
            Err(e) => return Err(tls_failure(e)),
        };
        let challenge = match resp.status() {
            StatusCode::OK => None,
            StatusCode::UNAUTHORIZED => resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge),
            s => {
                let body = body_snippet(resp).await;
                return Err(RegistryError::Status {
                    host: name,
                    what,
                    status: s.as_u16(),
                    body,
                });
            }
        };
        Ok(Arc::new(Host {
            name,
            base,
            http,
            credential,
            challenge: Mutex::new(challenge),
        }))
    }

    /// GET /v2/ with retries on connection errors and 5xx.
    async fn ping_url(
        &self,
        http: &reqwest::Client,
        base: &Url,
        name: &str,
    ) -> Result<Response, reqwest::Error> {
        let url = base.join("v2/").expect("static path");
        let mut attempt = 0;
        loop {
            attempt += 1;
            match http.get(url.clone()).send().await {
                Ok(r)
                    if (r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS)
                        && attempt < self.opts.attempts =>
                {
                    let wait = self.wait_for(&r, attempt);
                    self.reporter.warn(&format!(
                        "{name}: {} on GET /v2/, retrying in {wait:?}",
                        r.status()
                    ));
                    tokio::time::sleep(wait).await;
                }
                Ok(r) => return Ok(r),
                // A TLS handshake with a plain-HTTP server fails at once: do not retry it.
                Err(e)
                    if e.is_connect()
                        && base.scheme() == "https"
                        && attempt == 1
                        && is_tls_error(&e) =>
                {
                    return Err(e);
                }
                // Refused, timed out, or closed before an answer (`is_request`): try again.
                Err(e)
                    if (e.is_connect() || e.is_timeout() || e.is_request())
                        && attempt < self.opts.attempts =>
                {
                    let wait = self.backoff(attempt);
                    self.reporter.warn(&format!(
                        "{name}: GET /v2/ failed ({e}), retrying in {wait:?}"
                    ));
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let d = self
            .opts
            .backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        d.min(self.opts.max_backoff)
    }

    /// `Retry-After` (seconds or HTTP date) when present, else the backoff.
    fn wait_for(&self, resp: &Response, attempt: u32) -> Duration {
        let after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs)
                    .or_else(|| {
                        httpdate_parse(v.trim())
                            .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
                    })
            });
        match after {
            Some(d) => d.min(self.opts.max_retry_after),
            None => self.backoff(attempt),
        }
    }

    /// The `Authorization` value for pulling from `repo` (scope `repository:<repo>:pull`).
    async fn auth_header(
        &self,
        host: &Host,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        self.authorization(host, &format!("repository:{repo}:pull"), reference)
            .await
    }

    async fn fetch_token(
        &self,
        host: &Host,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        reference: &str,
    ) -> Result<String, RegistryError> {
        let fail = |message: String| RegistryError::Token {
            realm: realm.to_string(),
            reference: reference.to_string(),
            message,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let rb = match &host.credential {
                Some(Credential::IdentityToken(refresh)) => {
                    let mut form = vec![
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.as_str()),
                        ("client_id", "airlock"),
                        ("scope", scope),
                    ];
                    if let Some(s) = service {
                        form.push(("service", s));
                    }
                    host.http.post(realm).form(&form)
                }
                cred => {
                    let mut q = vec![("scope", scope)];
                    if let Some(s) = service {
                        q.push(("service", s));
                    }
                    let mut rb = host.http.get(realm).query(&q);
                    if let Some(Credential::Basic { username, password }) = cred {
                        rb = rb.basic_auth(username, Some(password));
                    }
                    rb
                }
            };
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) if attempt < self.opts.attempts && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(fail(e.to_string())),
            };
            let status = resp.status();
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                && attempt < self.opts.attempts
            {
                tokio::time::sleep(self.wait_for(&resp, attempt)).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Unauthorized {
                    host: host.name.clone(),
                    reference: reference.to_string(),
                    anonymous: host.credential.is_none(),
                });
            }
            if !status.is_success() {
                return Err(fail(format!("{status}: {}", body_snippet(resp).await)));
            }
            #[derive(serde::Deserialize)]
            struct TokenAnswer {
                token: Option<String>,
                access_token: Option<String>,
            }
            let bytes = read_limited(resp, 1 << 20)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let answer: TokenAnswer =
                serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
            return answer
                .token
                .or(answer.access_token)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| fail("no token in the answer".into()));
        }
    }

    /// Send `method path` for repository `repo` with auth, retries and redirects. Returns
    /// the final response whatever its status, except 401 (after one re-authentication),
    /// 429 and 5xx (after the retries), which become errors.
    // One argument per part of a request; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        host: &Host,
        repo: &str,
        method: Method,
        path: &str,
        headers: HeaderMap,
        reference: &str,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let url = host.base.join(path).map_err(|e| RegistryError::Config {
            path: PathBuf::from(path),
            message: e.to_string(),
        })?;
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let auth = self.auth_header(host, repo, reference).await?;
            let result = self
                .send_following(host, method.clone(), url.clone(), &headers, auth)
                .await;
            let resp = match result {
                Ok(r) => r,
                Err(SendError::Redirects { last }) => {
                    return Err(RegistryError::Redirects {
                        host: host.name.clone(),
                        what: what.to_string(),
                        reference: reference.to_string(),
                        limit: MAX_REDIRECTS,
                        location: last.to_string(),
                    });
                }
                Err(SendError::Http(e))
                    if (e.is_connect() || e.is_timeout() || e.is_request())
                        && attempt < self.opts.attempts =>
                {
                    let wait = self.backoff(attempt);
                    self.reporter.warn(&format!(
                        "{}: {what} failed ({e}), retrying in {wait:?}",
                        host.name
                    ));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(SendError::Http(e)) => {
                    return Err(RegistryError::Connect {
                        host: host.name.clone(),
                        what: what.to_string(),
                        source: e,
                    });
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                if !reauthenticated && challenge.is_some() {
                    reauthenticated = true;
                    attempt -= 1;
                    // Forget cached tokens for this repository: the registry wants a new one.
                    if let Some(Challenge::Bearer { realm, .. }) = &challenge {
                        let scope = format!("repository:{repo}:pull");
                        self.tokens
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .retain(|k, _| !(k.0 == *realm && k.2 == scope));
                    }
                    *host.challenge.lock().unwrap_or_else(|e| e.into_inner()) = challenge;
                    continue;
                }
                return Err(RegistryError::Unauthorized {
                    host: host.name.clone(),
                    reference: reference.to_string(),
                    anonymous: host.credential.is_none(),
                });
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                if attempt < self.opts.attempts {
                    let wait = self.wait_for(&resp, attempt);
                    self.reporter.warn(&format!(
                        "{}: {status} on {what}, retrying in {wait:?}",
                        host.name
                    ));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let body = body_snippet(resp).await;
                return Err(RegistryError::Status {
                    host: host.name.clone(),
                    what: what.to_string(),
                    status: status.as_u16(),
                    body,
                });
            }
            return Ok(resp);
        }
    }

    /// Follow up to `MAX_REDIRECTS` redirects; `Authorization` goes only to the original
    /// origin. A longer chain (a loop, A -> B -> A) is an error naming the last location.
    async fn send_following(
        &self,
        host: &Host,
        method: Method,
        mut url: Url,
        headers: &HeaderMap,
        mut auth: Option<String>,
    ) -> Result<Response, SendError> {
        let start = origin(&url);
        for _ in 0..=MAX_REDIRECTS {
            let mut rb = host
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(a) = &auth {
                rb = rb.header(header::AUTHORIZATION, a);
            }
            let resp = rb.send().await.map_err(SendError::Http)?;
            if resp.status().is_redirection() {
                let next = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok());
                if let Some(next) = next {
                    if origin(&next) != start {
                        auth = None;
                    }
                    url = next;
                    continue;
                }
            }
            return Ok(resp);
        }
        Err(SendError::Redirects { last: url })
    }

    /// HEAD a manifest: `(digest, size, media type)` when the registry tells all three.
    pub async fn head_manifest(
        &self,
        r: &Reference,
        wire: &str,
    ) -> Result<Option<(Digest, u64, String)>, RegistryError> {
        let host = self.host(r).await?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(media::MANIFEST_ACCEPT),
        );
        let path = format!("v2/{}/manifests/{wire}", r.repository());
        let resp = self
            .send(
                &host,
                r.repository(),
                Method::HEAD,
                &path,
                headers,
                r.original(),
                "HEAD manifest",
            )
            .await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let h = resp.headers();
        let digest = h
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let size = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let ct = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        Ok(match (digest, size, ct) {
            (Some(d), Some(s), Some(ct)) if s > 0 => Some((d, s, ct)),
            _ => None,
        })
    }

    /// GET a manifest: `(bytes, Content-Type, Docker-Content-Digest)`; at most
    /// `MANIFEST_LIMIT` bytes (refused by `Content-Length` before reading, else as soon as
    /// the body passes the limit). A body cut short is fetched again, like a failed request.
    pub async fn get_manifest(
        &self,
        r: &Reference,
        wire: &str,
    ) -> Result<(Vec<u8>, Option<String>, Option<Digest>), RegistryError> {
        let host = self.host(r).await?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(media::MANIFEST_ACCEPT),
        );
        let path = format!("v2/{}/manifests/{wire}", r.repository());
        let too_large = || RegistryError::ManifestTooLarge {
            reference: r.original().to_string(),
            what: wire.to_string(),
            limit: MANIFEST_LIMIT,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = self
                .send(
                    &host,
                    r.repository(),
                    Method::GET,
                    &path,
                    headers.clone(),
                    r.original(),
                    "GET manifest",
                )
                .await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                return Err(RegistryError::NotFound {
                    host: host.name.clone(),
                    reference: r.original().to_string(),
                    what: format!("manifest `{wire}`"),
                });
            }
            if !status.is_success() {
                let body = body_snippet(resp).await;
                return Err(RegistryError::Status {
                    host: host.name.clone(),
                    what: format!("GET manifest `{wire}` of `{r}`"),
                    status: status.as_u16(),
                    body,
                });
            }
            let h = resp.headers();
            let ct = h
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            let digest = h
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Digest>().ok());
            if resp.content_length().is_some_and(|l| l > MANIFEST_LIMIT) {
                return Err(too_large());
            }
            match read_limited(resp, MANIFEST_LIMIT).await {
                Ok(bytes) => return Ok((bytes, ct, digest)),
                Err(ReadError::TooLarge) => return Err(too_large()),
                Err(ReadError::Http(e)) if attempt < self.opts.attempts => {
                    let wait = self.backoff(attempt);
                    self.reporter.warn(&format!(
                        "{}: GET manifest `{wire}` of `{r}` was cut short ({e}), retrying in {wait:?}",
                        host.name
                    ));
                    tokio::time::sleep(wait).await;
                }
                Err(ReadError::Http(source)) => {
                    return Err(RegistryError::Connect {
                        host: host.name.clone(),
                        what: format!("GET manifest `{wire}` of `{r}`"),
                        source,
                    });
                }
            }
        }
    }

    /// GET a blob from `offset` (a `Range` request when > 0). The response status is
    /// checked by the caller (200, or 206 for a range).
    pub async fn get_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        offset: u64,
    ) -> Result<Response, RegistryError> {
        let host = self.host(r).await?;
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers.insert(
                header::RANGE,
                HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii range header"),
            );
        }
        let path = format!("v2/{}/blobs/{digest}", r.repository());
        let what = format!("GET blob `{digest}`");
        let resp = self
            .send(
                &host,
                r.repository(),
                Method::GET,
                &path,
                headers,
                r.original(),
                &what,
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                host: host.name.clone(),
                reference: r.original().to_string(),
                what: format!("blob `{digest}`"),
            });
        }
        Ok(resp)
    }
}

fn is_cert_error(e: &reqwest::Error) -> bool {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        let text = s.to_string().to_ascii_lowercase();
        if text.contains("certificate")
            || text.contains("unknownissuer")
            || text.contains("notvalidforname")
        {
            return true;
        }
        src = s.source();
    }
    false
}

// ---- Additions for `registry::push` (airlock push): host accessors and authorization
// for a scope other than `pull`. Kept apart from the pull code above.
impl Host {
    /// `https://host[:port]/` or `http://...`, as chosen by the ping.
    pub fn base_url(&self) -> &Url {
        &self.base
    }
    /// The HTTP client for this host (its TLS roots; redirects are not followed).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
    /// Whether credentials were found for this host.
    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }
}

impl Client {
    /// The `Authorization` value for `scope` (`repository:team/app:pull,push`): Basic
    /// credentials, or a Bearer token fetched (and cached) for that scope; `None` when
    /// the registry asked for nothing.
    pub async fn authorization(
        &self,
        host: &Host,
        scope: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        if let Some(Credential::RegistryToken(t)) = &host.credential {
            return Ok(Some(format!("Bearer {t}")));
        }
        let challenge = host
            .challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match &host.credential {
                Some(Credential::Basic { username, password }) => {
                    Some(Credential::basic_header(username, password))
                }
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = (
                    realm.clone(),
                    service.clone().unwrap_or_default(),
                    scope.to_string(),
                );
                if let Some(t) = self
                    .tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self
                    .fetch_token(host, &realm, service.as_deref(), scope, reference)
                    .await?;
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// After a 401: take the new challenge from `www_authenticate` and forget tokens cached
    /// for `scope`. Returns whether there was a challenge to answer.
    pub fn rechallenge(&self, host: &Host, www_authenticate: Option<&str>, scope: &str) -> bool {
        let Some(challenge) = www_authenticate.and_then(auth::parse_challenge) else {
            return false;
        };
        if let Challenge::Bearer { realm, .. } = &challenge {
            self.tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|k, _| !(k.0 == *realm && k.2 == scope));
        }
        *host.challenge.lock().unwrap_or_else(|e| e.into_inner()) = Some(challenge);
        true
    }

    /// The wait before retry `attempt` (1-based): `Retry-After` when the answer has one,
    /// else the doubling backoff.
    pub fn retry_wait(&self, resp: Option<&Response>, attempt: u32) -> Duration {
        match resp {
            Some(r) => self.wait_for(r, attempt),
            None => self.backoff(attempt),
        }
    }
}

fn is_tls_error(e: &reqwest::Error) -> bool {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        let text = s.to_string().to_ascii_lowercase();
        if text.contains("tls")
            || text.contains("certificate")
            || text.contains("handshake")
            || text.contains("invalidcontenttype")
        {
            return true;
        }
        src = s.source();
    }
    false
}

fn read_certs(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, RegistryError> {
    let bytes = fs_err::read(path).map_err(|e| RegistryError::CaCert {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| RegistryError::CaCert {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(RegistryError::CaCert {
            path: path.to_path_buf(),
            message: "no PEM certificate in the file".into(),
        });
    }
    Ok(certs)
}

pub(crate) enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge => f.write_str("answer too large"),
            ReadError::Http(e) => write!(f, "{e}"),
        }
    }
}

/// Read a small body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(mut resp: Response, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Http)? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The start of an error body, for messages.
async fn body_snippet(resp: Response) -> String {
    match read_limited(resp, 64 << 10).await {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let s = s.trim();
            s.chars().take(300).collect()
        }
        Err(_) => String::new(),
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate, the only form servers send today).
fn httpdate_parse(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == mon)? as u32
        + 1;
    let (day, year): (u32, i64) = (day.parse().ok()?, year.parse().ok()?);
    let t: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = t.as_slice() else {
        return None;
    };
    let days = crate::time::days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86400 + h * 3600 + m * 60 + sec;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.3.4.5"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("registry.lan"));
    }

    #[test]
    fn http_dates() {
        let t = httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            784111777
        );
    }
}
