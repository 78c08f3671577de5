//! Pushing images into a registry (formats.md 3.2): owns the upload protocol. Per blob:
//! `HEAD` first (present -> skipped), cross-repository mount when this run already put the
//! blob into another repository, else an upload session (`POST`) closed by a monolithic
//! `PUT ?digest=` or, above `chunk_size`, by `PATCH` chunks with `Content-Range` then an
//! empty `PUT`. Manifests and indexes go with their original bytes (children by digest
//! first, then the top by tag) so every digest stays the same; the registry's
//! `Docker-Content-Digest` is checked. Authorization and TLS come from `client` (the
//! `pull,push` scope through `Client::authorization`); content comes from any
//! `source::Source` (`Source::stream`: the bundles of a `serve::Catalog` today). Used by
//! `push`.

use super::RegistryError;
use super::client::{Client, Host};
use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::image::media;
use crate::reference::Reference;
use crate::source::Source;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("Invalid push target `{target}`: {reason}")]
    Target { target: String, reason: String },
    #[error(
        "Blob `{digest}` of `{image}` is not in the bundle and not in `{repository}` at the registry"
    )]
    MissingBlob {
        image: String,
        repository: String,
        digest: Digest,
    },
    #[error(
        "Registry `{host}` stored manifest `{expected}` of `{image}` as `{actual}`: it changed the bytes, so digest references would break"
    )]
    DigestChanged {
        host: String,
        image: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("Registry `{host}` answered {status} without a `Location` to {what}")]
    NoLocation {
        host: String,
        what: String,
        status: u16,
    },
    #[error("Failed to read blob `{digest}` from the bundle")]
    Source {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for PushError {
    fn class(&self) -> Class {
        match self {
            PushError::Registry(e) => e.class(),
            PushError::Target { .. } | PushError::MissingBlob { .. } => Class::Input,
            PushError::DigestChanged { .. } => Class::Failed,
            PushError::NoLocation { .. } | PushError::Source { .. } => Class::Environment,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            PushError::Registry(e) => e.hint(),
            _ => None,
        }
    }
}

/// `HOST[:PORT][/PREFIX]`: the registry host and an optional repository prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub host: String,
    /// Without slashes at either end; empty for none.
    pub prefix: String,
}

impl PushTarget {
    /// `host[:port]/prefix`, the part every pushed name starts with.
    pub fn base_name(&self) -> String {
        if self.prefix.is_empty() {
            self.host.clone()
        } else {
            format!("{}/{}", self.host, self.prefix)
        }
    }
    /// The repository path at the target for `repository` (prefix added).
    pub fn repository(&self, repository: &str) -> String {
        if self.prefix.is_empty() {
            repository.to_string()
        } else {
            format!("{}/{repository}", self.prefix)
        }
    }
}

impl FromStr for PushTarget {
    type Err = PushError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| PushError::Target {
            target: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s)
            .trim_end_matches('/');
        let (host, prefix) = t.split_once('/').unwrap_or((t, ""));
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad(
                "the host needs a dot or a port (`registry.lan`, `myhost:5000`), otherwise it reads as a Docker Hub path",
            ));
        }
        // Parse as a reference so host and prefix follow the distribution grammar.
        let probe = if prefix.is_empty() {
            format!("{host}/x")
        } else {
            format!("{host}/{prefix}/x")
        };
        let r = Reference::parse(&probe).map_err(|e| bad(&e.to_string()))?;
        if r.registry() != host {
            return Err(bad("the host part does not parse as a registry host"));
        }
        Ok(PushTarget {
            host: host.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// A manifest or index with its original bytes.
#[derive(Debug, Clone)]
pub struct PushManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// One image to push.
#[derive(Debug, Clone)]
pub struct PushImage {
    /// The reference as the bundle names it (for messages and the report).
    pub source: String,
    /// Repository path at the target (prefix included).
    pub repository: String,
    /// Tag for the top manifest; `None` pushes it by digest only.
    pub tag: Option<String>,
    /// Children first, the top last.
    pub manifests: Vec<PushManifest>,
    /// Config and layers: digest and size.
    pub blobs: Vec<(Digest, u64)>,
    /// The platform manifest when the top is an index (tagged instead of an index the
    /// registry refuses).
    pub platform_manifest: Option<Digest>,
}

impl PushImage {
    pub fn top(&self) -> Option<&PushManifest> {
        self.manifests.last()
    }
}

/// Push settings.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blobs larger than this go up in `PATCH` chunks of this size.
    pub chunk_size: u64,
    /// Blobs in flight at once.
    pub jobs: usize,
}

impl Default for PushOptions {
    /// 64 MiB chunks, 4 blobs at a time.
    fn default() -> Self {
        PushOptions {
            chunk_size: 64 << 20,
            jobs: 4,
        }
    }
}

/// What a push did. Blob counts are per (blob, repository).
#[derive(Debug, Default, serde::Serialize)]
pub struct PushReport {
    pub blobs_uploaded: u64,
    pub bytes_uploaded: u64,
    pub blobs_mounted: u64,
    pub blobs_skipped: u64,
    pub bytes_skipped: u64,
    pub manifests_pushed: u64,
    pub manifests_skipped: u64,
    pub images: Vec<PushedImage>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PushedImage {
    /// The reference as the bundle names it.
    pub source: String,
    /// `host/prefix/repository:tag` (or `@digest`).
    pub target: String,
    /// Top manifest or index digest, identical at the target (the platform manifest's
    /// when the registry refused the index).
    pub digest: Digest,
    /// The index the registry refused (its other platforms are not in the bundle).
    pub index_not_pushed: Option<Digest>,
    pub manifests_pushed: u64,
    pub manifests_skipped: u64,
}

#[derive(Default)]
struct Counters {
    uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    mounted: AtomicU64,
    skipped: AtomicU64,
    bytes_skipped: AtomicU64,
}

enum BlobState {
    Present,
    Missing,
}

/// One push: the target host and what every request needs.
struct Pusher<'a> {
    client: &'a Client,
    host: Arc<Host>,
    source: &'a dyn Source,
    opts: &'a PushOptions,
    counters: Counters,
}

/// Push `images` to `target`. Blobs first (`opts.jobs` at a time), then manifests.
pub async fn push(
    client: &Client,
    target: &PushTarget,
    images: &[PushImage],
    source: &dyn Source,
    opts: &PushOptions,
) -> Result<PushReport, PushError> {
    let Some(first) = images.first() else {
        return Ok(PushReport::default());
    };
    let probe =
        Reference::parse(&format!("{}/{}", target.host, first.repository)).map_err(|e| {
            PushError::Target {
                target: target.base_name(),
                reason: e.to_string(),
            }
        })?;
    let host = client.host(&probe).await?;
    let pusher = Pusher {
        client,
        host,
        source,
        opts,
        counters: Counters::default(),
    };

    // Group by blob: each digest is pushed to its repositories in order, so the first
    // upload can be mounted into the others.
    let mut order: Vec<Digest> = Vec::new();
    let mut wanted: HashMap<Digest, (u64, Vec<(String, String)>)> = HashMap::new();
    for img in images {
        for (d, size) in &img.blobs {
            let entry = wanted.entry(d.clone()).or_insert_with(|| {
                order.push(d.clone());
                (*size, Vec::new())
            });
            if !entry.1.iter().any(|(r, _)| *r == img.repository) {
                entry.1.push((img.repository.clone(), img.source.clone()));
            }
        }
    }
    let total: u64 = order.iter().map(|d| wanted[d].0).sum();
    client.reporter.total(total);
    stream::iter(order.iter().map(|d| {
        let (size, repos) = &wanted[d];
        pusher.blob(d, *size, repos)
    }))
    .buffer_unordered(opts.jobs.max(1))
    .try_collect::<Vec<()>>()
    .await?;

    // `buffered`: results in input order.
    let results: Vec<PushedImage> =
        stream::iter(images.iter().map(|img| pusher.manifests(img, target)))
            .buffered(opts.jobs.max(1))
            .try_collect()
            .await?;
    let c = &pusher.counters;
    let mut report = PushReport {
        blobs_uploaded: c.uploaded.load(Ordering::Relaxed),
        bytes_uploaded: c.bytes_uploaded.load(Ordering::Relaxed),
        blobs_mounted: c.mounted.load(Ordering::Relaxed),
        blobs_skipped: c.skipped.load(Ordering::Relaxed),
        bytes_skipped: c.bytes_skipped.load(Ordering::Relaxed),
        ..Default::default()
    };
    for r in results {
        report.manifests_pushed += r.manifests_pushed;
        report.manifests_skipped += r.manifests_skipped;
        report.images.push(r);
    }
    Ok(report)
}

fn scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl Pusher<'_> {
    fn url(&self, path: &str) -> Result<Url, PushError> {
        self.host.base_url().join(path).map_err(|e| {
            PushError::Registry(RegistryError::Config {
                path: path.into(),
                message: e.to_string(),
            })
        })
    }

    /// Send one request with authorization for `repo`'s push scope. `body` builds the body
    /// afresh for every attempt. With `retry`, connection errors, 5xx and 429 are retried;
    /// a 401 is answered once with a fresh challenge either way.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<&(dyn Fn() -> reqwest::Body + Send + Sync)>,
        repo: &str,
        what: &str,
        retry: bool,
    ) -> Result<Response, PushError> {
        let scope = scope(repo);
        let attempts = if retry {
            self.client.options().attempts.max(1)
        } else {
            1
        };
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let auth = if same_origin(&url, self.host.base_url()) {
                self.client.authorization(&self.host, &scope, repo).await?
            } else {
                None
            };
            let mut rb = self
                .host
                .http()
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(a) = auth {
                rb = rb.header(header::AUTHORIZATION, a);
            }
            if let Some(b) = body {
                rb = rb.body(b());
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e)
                    if attempt < attempts
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    let wait = self.client.retry_wait(None, attempt);
                    self.client.reporter.warn(&format!(
                        "{}: {what} failed ({e}), retrying in {wait:?}",
                        self.host.name
                    ));
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(source) => {
                    return Err(RegistryError::Connect {
                        host: self.host.name.clone(),
                        what: what.to_string(),
                        source,
                    }
                    .into());
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok());
                if !reauthenticated && self.client.rechallenge(&self.host, challenge, &scope) {
                    reauthenticated = true;
                    attempt -= 1;
                    continue;
                }
                return Err(RegistryError::Unauthorized {
                    host: self.host.name.clone(),
                    reference: format!("{}/{repo}", self.host.name),
                    anonymous: !self.host.has_credential(),
                }
                .into());
            }
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                && attempt < attempts
            {
                let wait = self.client.retry_wait(Some(&resp), attempt);
                self.client.reporter.warn(&format!(
                    "{}: {status} on {what}, retrying in {wait:?}",
                    self.host.name
                ));
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn fail(&self, resp: Response, what: &str) -> PushError {
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        RegistryError::Status {
            host: self.host.name.clone(),
            what: what.to_string(),
            status,
            body: body.trim().chars().take(300).collect(),
        }
        .into()
    }

    async fn head_blob(&self, repo: &str, digest: &Digest) -> Result<BlobState, PushError> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let what = format!("HEAD blob `{digest}` in `{repo}`");
        let resp = self
            .send(Method::HEAD, url, HeaderMap::new(), None, repo, &what, true)
            .await?;
        Ok(if resp.status().is_success() {
            BlobState::Present
        } else {
            BlobState::Missing
        })
    }

    fn location(&self, resp: &Response, what: &str) -> Result<Url, PushError> {
        resp.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| self.host.base_url().join(l).ok())
            .ok_or_else(|| PushError::NoLocation {
                host: self.host.name.clone(),
                what: what.to_string(),
                status: resp.status().as_u16(),
            })
    }

    /// Push one blob to every repository that needs it.
    async fn blob(
        &self,
        digest: &Digest,
        size: u64,
        repos: &[(String, String)],
    ) -> Result<(), PushError> {
        let mut done_in: Option<&str> = None;
        for (repo, image) in repos {
            if let BlobState::Present = self.head_blob(repo, digest).await? {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_skipped
                    .fetch_add(size, Ordering::Relaxed);
                self.client.reporter.blob_skipped(digest, size, repo);
                done_in.get_or_insert(repo);
                continue;
            }
            if self.source.blob_size(digest).is_none() {
                return Err(PushError::MissingBlob {
                    image: image.clone(),
                    repository: repo.clone(),
                    digest: digest.clone(),
                });
            }
            let attempts = self.client.options().attempts.max(1);
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.upload(digest, size, repo, done_in).await {
                    Ok(()) => break,
                    Err(e) if attempt < attempts && retryable(&e) => {
                        let wait = self.client.retry_wait(None, attempt);
                        self.client.reporter.warn(&format!(
                            "{}: upload of `{digest}` failed ({e}), retrying in {wait:?}",
                            self.host.name
                        ));
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            done_in.get_or_insert(repo);
        }
        Ok(())
    }

    /// Mount from `from` when given, else upload: one session from POST to the closing PUT.
    async fn upload(
        &self,
        digest: &Digest,
        size: u64,
        repo: &str,
        from: Option<&str>,
    ) -> Result<(), PushError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        let (url, what) = match from {
            Some(from) => {
                let mut u = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
                u.query_pairs_mut()
                    .append_pair("mount", &digest.to_string())
                    .append_pair("from", from);
                (u, format!("mount `{digest}` from `{from}` into `{repo}`"))
            }
            None => (
                self.url(&format!("v2/{repo}/blobs/uploads/"))?,
                format!("start upload of `{digest}` to `{repo}`"),
            ),
        };
        let resp = self
            .send(Method::POST, url, headers, None, repo, &what, true)
            .await?;
        match resp.status() {
            StatusCode::CREATED if from.is_some() => {
                self.counters.mounted.fetch_add(1, Ordering::Relaxed);
                self.client.reporter.blob_skipped(digest, size, repo);
                return Ok(());
            }
            StatusCode::ACCEPTED => {}
            _ => return Err(self.fail(resp, &what).await),
        }
        let mut location = self.location(&resp, &what)?;
        self.client.reporter.blob_start(digest, size, repo, 0);
        if size > self.opts.chunk_size {
            let mut offset = 0;
            while offset < size {
                let len = (size - offset).min(self.opts.chunk_size);
                let what = format!(
                    "PATCH `{digest}` bytes {offset}-{} to `{repo}`",
                    offset + len - 1
                );
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                if let Ok(v) = HeaderValue::from_str(&format!("{offset}-{}", offset + len - 1)) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
                let body = self.body_fn(digest, offset, len);
                let resp = self
                    .send(
                        Method::PATCH,
                        location.clone(),
                        headers,
                        Some(&*body),
                        repo,
                        &what,
                        false,
                    )
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.fail(resp, &what).await);
                }
                location = self.location(&resp, &what)?;
                offset += len;
            }
            let what = format!("close upload of `{digest}` to `{repo}`");
            location
                .query_pairs_mut()
                .append_pair("digest", &digest.to_string());
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            let resp = self
                .send(Method::PUT, location, headers, None, repo, &what, false)
                .await?;
            if resp.status() != StatusCode::CREATED {
                return Err(self.fail(resp, &what).await);
            }
        } else {
            let what = format!("PUT blob `{digest}` to `{repo}`");
            location
                .query_pairs_mut()
                .append_pair("digest", &digest.to_string());
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            let body = self.body_fn(digest, 0, size);
            let resp = self
                .send(
                    Method::PUT,
                    location,
                    headers,
                    Some(&*body),
                    repo,
                    &what,
                    false,
                )
                .await?;
            if resp.status() != StatusCode::CREATED {
                return Err(self.fail(resp, &what).await);
            }
        }
        self.client.reporter.blob_done(digest);
        self.counters.uploaded.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_uploaded
            .fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// A body builder for `len` bytes of `digest` at `offset`, reporting progress.
    fn body_fn(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Box<dyn Fn() -> reqwest::Body + Send + Sync + '_> {
        let digest = digest.clone();
        Box::new(move || {
            let reporter = Arc::clone(&self.client.reporter);
            let d = digest.clone();
            match self.source.stream(&digest, offset, len) {
                Some(s) => reqwest::Body::wrap_stream(
                    s.inspect_ok(move |b| reporter.blob_progress(&d, b.len() as u64)),
                ),
                None => reqwest::Body::from(Vec::new()),
            }
        })
    }

    /// Push the manifests of one image: children by digest, then the top by tag (or
    /// digest). Each is skipped when the registry already has it under that name.
    ///
    /// A bundle keeps the original index but only the children of its platform, and some
    /// registries (the distribution server) refuse an index whose children they lack. Then
    /// the platform manifest is tagged instead, with a warning: tags work, `name@<index
    /// digest>` does not.
    async fn manifests(
        &self,
        img: &PushImage,
        target: &PushTarget,
    ) -> Result<PushedImage, PushError> {
        let repo = &img.repository;
        let mut pushed = 0;
        let mut skipped = 0;
        let mut index_refused = None;
        let top = img
            .top()
            .map(|m| m.digest.clone())
            .ok_or_else(|| PushError::Target {
                target: target.base_name(),
                reason: format!("`{}` has no manifest", img.source),
            })?;
        let last = img.manifests.len().saturating_sub(1);
        for (i, m) in img.manifests.iter().enumerate() {
            let is_top = i == last;
            let name = match (&img.tag, is_top) {
                (Some(t), true) => t.clone(),
                _ => m.digest.to_string(),
            };
            let present = self.head_manifest(repo, &name, &m.media_type).await?;
            if present.as_ref() == Some(&m.digest) {
                skipped += 1;
                continue;
            }
            let fallback = if is_top && media::is_index(&m.media_type) {
                img.platform_manifest
                    .as_ref()
                    .and_then(|d| img.manifests.iter().find(|c| c.digest == *d))
            } else {
                None
            };
            if let Some(f) = fallback
                && present.as_ref() == Some(&f.digest)
            {
                // An earlier push already tagged the platform manifest.
                index_refused = Some(m.digest.clone());
                skipped += 1;
                continue;
            }
            match self.put_manifest(repo, &name, m, img).await? {
                Ok(()) => pushed += 1,
                Err(resp) => match fallback {
                    Some(f) if resp.status() == StatusCode::BAD_REQUEST => {
                        self.client.reporter.warn(&format!(
                            "{}: refused index `{}` of `{}` (its other platforms are not in the bundle); tagged the platform manifest `{}` as `{repo}:{name}` instead: tags work, `@{}` references do not",
                            self.host.name, m.digest, img.source, f.digest, m.digest
                        ));
                        if let Err(resp) = self.put_manifest(repo, &name, f, img).await? {
                            let what = format!("PUT manifest `{repo}:{name}`");
                            return Err(self.fail(resp, &what).await);
                        }
                        index_refused = Some(m.digest.clone());
                        pushed += 1;
                    }
                    _ => {
                        let what = format!("PUT manifest `{repo}:{name}`");
                        return Err(self.fail(resp, &what).await);
                    }
                },
            }
        }
        let digest = match (&index_refused, &img.platform_manifest) {
            (Some(_), Some(p)) => p.clone(),
            _ => top.clone(),
        };
        let target_name = match &img.tag {
            Some(t) => format!("{}/{repo}:{t}", target.host),
            None => format!("{}/{repo}@{digest}", target.host),
        };
        Ok(PushedImage {
            source: img.source.clone(),
            target: target_name,
            digest,
            index_not_pushed: index_refused,
            manifests_pushed: pushed,
            manifests_skipped: skipped,
        })
    }

    /// The digest the registry has under `repo:name`, if any.
    async fn head_manifest(
        &self,
        repo: &str,
        name: &str,
        media_type: &str,
    ) -> Result<Option<Digest>, PushError> {
        let url = self.url(&format!("v2/{repo}/manifests/{name}"))?;
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("{media_type}, {}", media::MANIFEST_ACCEPT)) {
            headers.insert(header::ACCEPT, v);
        }
        let what = format!("HEAD manifest `{repo}:{name}`");
        let resp = self
            .send(Method::HEAD, url, headers, None, repo, &what, true)
            .await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok()))
    }

    /// PUT `m` as `repo:name`; `Ok(Err(response))` when the registry refused it.
    async fn put_manifest(
        &self,
        repo: &str,
        name: &str,
        m: &PushManifest,
        img: &PushImage,
    ) -> Result<Result<(), Response>, PushError> {
        let url = self.url(&format!("v2/{repo}/manifests/{name}"))?;
        let what = format!("PUT manifest `{repo}:{name}`");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&m.media_type)
                .unwrap_or(HeaderValue::from_static(media::OCI_MANIFEST)),
        );
        let bytes = m.bytes.clone();
        let body = move || reqwest::Body::from(bytes.clone());
        let resp = self
            .send(Method::PUT, url, headers, Some(&body), repo, &what, true)
            .await?;
        if resp.status() != StatusCode::CREATED && resp.status() != StatusCode::OK {
            return Ok(Err(resp));
        }
        if let Some(actual) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
            && actual != m.digest
        {
            return Err(PushError::DigestChanged {
                host: self.host.name.clone(),
                image: img.source.clone(),
                expected: m.digest.clone(),
                actual,
            });
        }
        Ok(Ok(()))
    }
}

fn retryable(e: &PushError) -> bool {
    match e {
        PushError::Registry(RegistryError::Connect { .. }) => true,
        PushError::Registry(RegistryError::Status { status, .. }) => {
            *status >= 500 || *status == 429 || *status == 404
        }
        PushError::NoLocation { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! target {
        ($name:ident, $input:expr, $host:expr, $prefix:expr) => {
            #[test]
            fn $name() {
                let t: PushTarget = $input.parse().unwrap();
                assert_eq!((t.host.as_str(), t.prefix.as_str()), ($host, $prefix));
            }
        };
    }
    target!(host_port, "127.0.0.1:5000", "127.0.0.1:5000", "");
    target!(
        with_prefix,
        "registry.lan/team/mirror",
        "registry.lan",
        "team/mirror"
    );
    target!(
        trailing_slash,
        "registry.lan:443/x/",
        "registry.lan:443",
        "x"
    );
    target!(
        scheme_dropped,
        "https://localhost:5000/p",
        "localhost:5000",
        "p"
    );

    #[test]
    fn refuses_bad_targets() {
        for bad in [
            "",
            "registry",
            "registry/x",
            "host.lan/Upper",
            "host.lan/a..b",
            "/x",
        ] {
            assert!(bad.parse::<PushTarget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn target_names() {
        let t: PushTarget = "r.lan:5000/mirror".parse().unwrap();
        assert_eq!(t.repository("library/redis"), "mirror/library/redis");
        assert_eq!(t.base_name(), "r.lan:5000/mirror");
    }
}
