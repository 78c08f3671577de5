//! Blob transfer: owns fetching the layers of resolved images into the `store`, `--jobs`
//! at a time, each blob once, streamed (never held in memory), verified at commit, and
//! resumed with `Range: bytes=N-` from the partial file after a cut connection or a
//! killed process. Afterwards every layer's DiffID is checked against the image config and
//! its uncompressed size filled in. Reports through `progress::Reporter`.

use super::RegistryError;
use super::client::Client;
use crate::digest::Digest;
use crate::image::{ResolvedImage, media};
use crate::reference::Reference;
use crate::store::{LayerFacts, Store, StoreError};
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a pull transferred, for the summary.
#[derive(Debug, Default)]
pub struct PullStats {
    pub fetched_blobs: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub cached_blobs: AtomicU64,
    pub cached_bytes: AtomicU64,
}

impl PullStats {
    pub fn fetched(&self, bytes: u64) {
        self.fetched_blobs.fetch_add(1, Ordering::Relaxed);
        self.fetched_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn cached(&self, bytes: u64) {
        self.cached_blobs.fetch_add(1, Ordering::Relaxed);
        self.cached_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    /// (fetched blobs, fetched bytes, cached blobs, cached bytes)
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.fetched_blobs.load(Ordering::Relaxed),
            self.fetched_bytes.load(Ordering::Relaxed),
            self.cached_blobs.load(Ordering::Relaxed),
            self.cached_bytes.load(Ordering::Relaxed),
        )
    }
}

/// Fetch every layer of `images` that the store lacks, then fill in layer facts.
/// zstd layers are reported with a warning naming the image.
pub async fn pull(
    client: &Client,
    store: &Store,
    images: &mut [ResolvedImage],
    stats: &PullStats,
) -> Result<(), RegistryError> {
    let reporter = client.reporter.clone();
    // Distinct layers, first image naming each wins (for messages and the registry to ask).
    let mut wanted: BTreeMap<Digest, (Reference, u64, String)> = BTreeMap::new();
    for img in images.iter() {
        if img
            .layers
            .iter()
            .any(|l| media::is_zstd(&l.blob.media_type))
        {
            reporter.warn(&format!(
                "`{}` has zstd-compressed layers: Docker Engine before 23.0 cannot load them",
                img.reference
            ));
        }
        for l in &img.layers {
            wanted.entry(l.blob.digest.clone()).or_insert_with(|| {
                (
                    img.reference.clone(),
                    l.blob.size,
                    img.reference.to_string(),
                )
            });
        }
    }
    let mut missing = Vec::new();
    for (digest, (r, size, label)) in &wanted {
        if store.has(digest, *size) {
            stats.cached(*size);
            reporter.blob_skipped(digest, *size, label);
        } else {
            missing.push((digest.clone(), r.clone(), *size, label.clone()));
        }
    }
    reporter.total(missing.iter().map(|m| m.2).sum());
    let jobs = client.options().jobs.max(1);
    stream::iter(
        missing
            .into_iter()
            .map(|(digest, r, size, label)| async move {
                fetch_blob(client, store, &r, &digest, size, &label).await?;
                stats.fetched(size);
                Ok::<_, RegistryError>(())
            }),
    )
    .buffer_unordered(jobs)
    .try_collect::<Vec<()>>()
    .await?;

    // Layer facts: cached in the sidecar, else computed by decompressing once.
    let facts: BTreeMap<Digest, LayerFacts> = stream::iter(wanted.keys().cloned().map(|digest| {
        let store = store.clone();
        async move {
            let d = digest.clone();
            let facts = tokio::task::spawn_blocking(move || store.compute_layer_facts(&d))
                .await
                .map_err(|e| StoreError::Io {
                    path: "layer facts".into(),
                    source: std::io::Error::other(e.to_string()),
                })??;
            Ok::<_, RegistryError>((digest, facts))
        }
    }))
    .buffer_unordered(2)
    .try_collect()
    .await?;
    for img in images.iter_mut() {
        for (index, l) in img.layers.iter_mut().enumerate() {
            if let Some(f) = facts.get(&l.blob.digest) {
                if f.diff_id != l.diff_id {
                    return Err(RegistryError::DiffId {
                        reference: img.reference.to_string(),
                        index,
                        digest: l.blob.digest.clone(),
                        expected: l.diff_id.clone(),
                        actual: f.diff_id.clone(),
                    });
                }
                l.uncompressed_size = Some(f.uncompressed_size);
            }
        }
    }
    Ok(())
}

/// Download one blob into the store, resuming from whatever the store already has.
pub async fn fetch_blob(
    client: &Client,
    store: &Store,
    r: &Reference,
    digest: &Digest,
    size: u64,
    label: &str,
) -> Result<(), RegistryError> {
    let reporter = client.reporter.clone();
    let opts = client.options();
    let blob_err = |source| RegistryError::Blob {
        reference: r.original().to_string(),
        digest: digest.clone(),
        source,
    };
    let mut attempt = 0u32;
    let mut restarted_after_mismatch = false;
    loop {
        attempt += 1;
        if store.has(digest, size) {
            return Ok(());
        }
        let mut w = match store.writer(digest, size) {
            Ok(w) => w,
            Err(StoreError::Busy { .. }) => {
                // Another airlock process is downloading it: wait for that one.
                tokio::time::sleep(Duration::from_millis(500)).await;
                attempt -= 1;
                continue;
            }
            Err(e) => return Err(blob_err(e)),
        };
        let offset = w.offset();
        let resumed = offset > 0;
        if offset < size {
            reporter.blob_start(digest, size, label, offset);
            let mut resp = client.get_blob(r, digest, offset).await?;
            match resp.status() {
                StatusCode::OK if offset == 0 => {}
                StatusCode::PARTIAL_CONTENT if offset > 0 => {
                    let start = resp
                        .headers()
                        .get(reqwest::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.parse::<u64>().ok());
                    if start != Some(offset) {
                        return Err(RegistryError::RangeIgnored {
                            reference: r.original().to_string(),
                            digest: digest.clone(),
                            status: 206,
                            offset,
                        });
                    }
                }
                StatusCode::OK => {
                    // The server ignored Range: start over rather than append the wrong bytes.
                    reporter.warn(&format!("{}: range request for `{digest}` answered 200, downloading it again from the start", r.api_host()));
                    w.truncate().map_err(blob_err)?;
                    reporter.blob_start(digest, size, label, 0);
                }
                s => {
                    return Err(RegistryError::Status {
                        host: r.api_host().to_string(),
                        what: format!("GET blob `{digest}`"),
                        status: s.as_u16(),
                        body: String::new(),
                    });
                }
            }
            // A body announced longer than what is missing is not this blob: refuse it
            // before reading (a body without `Content-Length` is stopped by the writer once
            // it passes `size`).
            if let Some(len) = resp.content_length()
                && len > size - w.offset()
            {
                return Err(blob_err(StoreError::TooLarge {
                    digest: digest.clone(),
                    expected: size,
                }));
            }
            let mut interrupted = None;
            loop {
                if client.cancelled() {
                    return Err(RegistryError::Cancelled);
                }
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if let Err(e) = w.write_all(&chunk) {
                            let err =
                                match e.into_inner().map(|inner| inner.downcast::<StoreError>()) {
                                    Some(Ok(store_err)) => *store_err,
                                    Some(Err(other)) => StoreError::Io {
                                        path: store.root().into(),
                                        source: std::io::Error::other(other),
                                    },
                                    None => StoreError::Io {
                                        path: store.root().into(),
                                        source: std::io::Error::other("write failed"),
                                    },
                                };
                            if matches!(err, StoreError::TooLarge { .. }) {
                                w.discard();
                            }
                            return Err(blob_err(err));
                        }
                        reporter.blob_progress(digest, chunk.len() as u64);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        interrupted = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = interrupted {
                let received = w.offset();
                drop(w);
                if attempt >= opts.attempts {
                    return Err(RegistryError::Download {
                        reference: r.original().to_string(),
                        digest: digest.clone(),
                        attempts: attempt,
                        source: Box::new(RegistryError::Interrupted {
                            digest: digest.clone(),
                            received,
                            source: e,
                        }),
                    });
                }
                let wait = opts
                    .backoff
                    .saturating_mul(1 << (attempt - 1).min(8))
                    .min(opts.max_backoff);
                reporter.warn(&format!("download of `{digest}` interrupted at {received} of {size} bytes ({e}); resuming in {wait:?}"));
                tokio::time::sleep(wait).await;
                continue;
            }
            if w.offset() < size && attempt < opts.attempts {
                // The body ended early without an error: resume for the rest.
                let received = w.offset();
                drop(w);
                reporter.warn(&format!(
                    "download of `{digest}` ended at {received} of {size} bytes; resuming"
                ));
                continue;
            }
        }
        match w.commit() {
            Ok(_) => {
                reporter.blob_done(digest);
                return Ok(());
            }
            Err(StoreError::DigestMismatch { .. }) if resumed && !restarted_after_mismatch => {
                // The partial file may predate a change on the server side: one clean retry.
                restarted_after_mismatch = true;
                reporter.warn(&format!(
                    "`{digest}` did not verify after resuming; downloading it again from the start"
                ));
                continue;
            }
            Err(e) => return Err(blob_err(e)),
        }
    }
}
