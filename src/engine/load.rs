//! `engine::load`: streams a bundle into the engine's `POST /images/load`, sending only
//! what the engine lacks. Images whose config digest (the image ID on the classic store) the
//! engine has are skipped; for the rest a filtered tar is sent: `manifest.json` rewritten to
//! the missing images, their configs, and only the layers whose ChainID the engine does not
//! hold (the classic store reuses a layer by ChainID before opening its file; formats.md
//! section 8). A containerd-store engine gets the whole tar (it names images from
//! index.json) but the blobs of the bundle's images whose top digest is an image ID there
//! (its content store holds them; the importer takes them from there), and the layers
//! that the manifests airlock kept of earlier loads show there (`content`). Every blob is
//! hashed while it is copied. Afterwards the references the
//! compose files use are tagged; digest-pinned references get a local tag (`pinned_tag`).
//! Reads with `bundle::read`; used by `up::load_bundle` (for `cli::load` and `up`).

use super::{Engine, EngineError, EngineState};
use crate::bundle::delta::{DeltaError, MissingLayer};
use crate::bundle::meta::{BundleMeta, ImageMeta};
use crate::bundle::read::{BLOBS_DIR, MANIFEST_PATH, Meta, ReadError};
use crate::bundle::source::BundleSource;
use crate::digest::{Digest, HashingReader};
use crate::image::{ArchiveEntry, chain_ids};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::source::Source;
use crate::store::Store;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// What happened to one image of the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Sent to the engine in this load.
    Loaded,
    /// The engine already had it; only tagged.
    Present,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadedImage {
    #[serde(rename = "ref")]
    pub reference: String,
    /// Image ID on the engine.
    pub id: Digest,
    pub config: Digest,
    pub action: Action,
    /// The local tags airlock set (`redis:7`; `name:airlock-<digest>` for digest-pinned references).
    pub tags: Vec<String>,
    pub services: Vec<String>,
}

/// A digest-pinned reference and the local tag that stands in for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PinnedTag {
    #[serde(rename = "ref")]
    pub reference: String,
    pub tag: String,
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadReport {
    pub images: Vec<LoadedImage>,
    /// Whether a load request was sent at all (false when everything was present).
    pub sent: bool,
    pub blobs_sent: u64,
    pub bytes_sent: u64,
    pub blobs_skipped: u64,
    pub bytes_skipped: u64,
    pub pinned: Vec<PinnedTag>,
    /// Lines the engine answered (`Loaded image: ...`).
    pub engine_messages: Vec<String>,
    /// Patch bundles: layers rebuilt from their patches before this load, and their bytes
    /// (uncompressed); set by `up::load_bundle_with`.
    pub rebuilt: u64,
    pub rebuilt_bytes: u64,
}

/// The local tag standing in for a digest-pinned reference on engines that cannot record
/// repo digests from a load (formats.md 1.4): `<name>:airlock-<first 12 hex of the digest>`.
pub fn pinned_tag(reference: &Reference) -> Option<(String, String)> {
    let d = reference.digest()?;
    Some((
        reference.familiar_name(),
        format!("airlock-{}", &d.hex()[..12]),
    ))
}

/// `(repository, tag)` to tag a bundle image with: the reference's own tag, or the pinned tag.
pub fn local_tag(reference: &Reference) -> Option<(String, String)> {
    if let Some(p) = pinned_tag(reference) {
        return Some(p);
    }
    reference
        .tag_or_default()
        .map(|t| (reference.familiar_name(), t.to_string()))
}

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct LoadPlan {
    /// manifest.json entries of the images to load.
    pub entries: Vec<ArchiveEntry>,
    /// Members to copy into the stream (other than manifest.json).
    pub send: HashSet<String>,
    /// Send the whole tar as is (containerd store).
    pub whole: bool,
    /// Config digests already on the engine.
    pub present: HashSet<Digest>,
    pub bytes_to_send: u64,
    pub blobs_skipped: u64,
    pub bytes_skipped: u64,
    /// Disk the engine needs: the stream is unpacked to a temporary directory first, then
    /// the layers are unpacked.
    pub disk_needed: u64,
    /// gzip layers sent decompressed (path -> uncompressed size, DiffID): the classic store
    /// checks only DiffIDs, and decompressing here, while streaming, is faster than the
    /// engine's single-threaded gunzip after the upload (docker save archives hold plain
    /// layers for the same reason).
    pub inflate: HashMap<String, (u64, Digest)>,
}

fn blob_of(path: &str) -> Option<Digest> {
    path.strip_prefix(BLOBS_DIR)
        .and_then(|h| Digest::from_hex(h).ok())
}

fn image_for_config<'a>(meta: &'a Meta, config: &Digest) -> Option<&'a ImageMeta> {
    meta.meta.images.iter().find(|i| &i.config.digest == config)
}

/// Decide what to send, from the bundle metadata and the engine's images and layers.
pub fn plan(meta: &Meta, state: &EngineState) -> LoadPlan {
    let mut plan = LoadPlan {
        whole: state.containerd_store,
        ..Default::default()
    };
    let sizes: HashMap<&str, u64> = meta.members.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let blob_size = |path: &str, d: &Digest| -> u64 {
        sizes.get(path).copied().unwrap_or_else(|| {
            meta.meta
                .images
                .iter()
                .flat_map(|i| i.layers.iter())
                .find(|l| &l.blob.digest == d)
                .map(|l| l.blob.size)
                .unwrap_or(0)
        })
    };
    // layer path -> whether every image that needs it must get it
    let mut layer_needed: HashMap<String, bool> = HashMap::new();
    let mut uncompressed: HashMap<String, u64> = HashMap::new();
    for entry in &meta.manifest {
        let Some(config) = blob_of(&entry.config) else {
            plan.entries.push(entry.clone());
            plan.send.insert(entry.config.clone());
            plan.send.extend(entry.layers.iter().cloned());
            continue;
        };
        let img = image_for_config(meta, &config);
        let present = state.images.contains_key(&config)
            || img.is_some_and(|i| state.images.contains_key(&i.top.digest));
        if present {
            plan.present.insert(config);
            continue;
        }
        plan.entries.push(entry.clone());
        plan.send.insert(entry.config.clone());
        let diff_ids: Option<Vec<Digest>> =
            img.map(|i| i.layers.iter().map(|l| l.diff_id.clone()).collect());
        let chains = diff_ids
            .filter(|d| d.len() == entry.layers.len())
            .map(|d| chain_ids(&d));
        for (i, layer) in entry.layers.iter().enumerate() {
            // podman's `docker load` wants every layer file manifest.json names.
            let engine_has = !state.podman
                && chains
                    .as_ref()
                    .is_some_and(|c| state.chains.contains(&c[i]));
            let needed = layer_needed.entry(layer.clone()).or_insert(false);
            *needed |= !engine_has || plan.whole;
            if let Some(l) = img.and_then(|im| im.layers.get(i)) {
                if let Some(n) = l.uncompressed_size
                    && l.blob.media_type.ends_with("gzip")
                    && !plan.whole
                {
                    plan.inflate.insert(layer.clone(), (n, l.diff_id.clone()));
                }
                uncompressed.insert(
                    layer.clone(),
                    l.uncompressed_size.unwrap_or(l.blob.size.saturating_mul(3)),
                );
            }
        }
    }
    for (layer, needed) in &layer_needed {
        let size = blob_of(layer).map(|d| blob_size(layer, &d)).unwrap_or(0);
        if *needed {
            plan.send.insert(layer.clone());
            plan.disk_needed += uncompressed
                .get(layer)
                .copied()
                .unwrap_or(size.saturating_mul(3));
        } else {
            plan.blobs_skipped += 1;
            plan.bytes_skipped += size;
            plan.inflate.remove(layer);
        }
    }
    if plan.whole && !plan.entries.is_empty() {
        // Containerd store: every member, but the blobs of images whose top digest is an
        // image ID on the engine, and the layers its content store is known to hold
        // (`content::known_blobs`): the importer finds those there.
        let covered: HashMap<&Digest, u64> = meta
            .meta
            .images
            .iter()
            .flat_map(|i| {
                let whole = state.images.contains_key(&i.top.digest);
                let layers = i
                    .layers
                    .iter()
                    .map(|l| &l.blob)
                    .filter(move |b| whole || state.known_blobs.contains(&b.digest));
                [&i.top, &i.manifest, &i.config]
                    .into_iter()
                    .filter(move |_| whole)
                    .chain(layers)
                    .map(|d| (&d.digest, d.size))
            })
            .collect();
        let mut names: BTreeSet<String> = meta
            .sums
            .keys()
            .filter(|n| !n.starts_with("airlock/"))
            .cloned()
            .collect();
        names.extend(
            meta.members
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| !n.starts_with("airlock/")),
        );
        plan.send = HashSet::new();
        for name in names {
            match blob_of(&name) {
                Some(d) if covered.contains_key(&d) => {
                    plan.blobs_skipped += 1;
                    plan.bytes_skipped += covered.get(&d).copied().unwrap_or(0);
                }
                _ => {
                    plan.send.insert(name);
                }
            }
        }
    }
    plan.bytes_to_send = plan
        .send
        .iter()
        .map(|p| match (plan.inflate.get(p), blob_of(p)) {
            (Some((n, _)), _) => *n,
            (None, Some(d)) => blob_size(p, &d),
            (None, None) => sizes.get(p.as_str()).copied().unwrap_or(0),
        })
        .sum();
    plan.disk_needed += plan.bytes_to_send;
    plan
}

/// Writes the tar stream into a channel in 1 MiB pieces.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

const PIECE: usize = 1 << 20;

impl ChannelWriter {
    fn push(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, EngineStoppedReading))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = PIECE - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= PIECE {
            self.push()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

/// Reports bytes as they are read.
struct Progress<'a, R> {
    inner: R,
    digest: Digest,
    reporter: &'a dyn Reporter,
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.reporter.blob_progress(&self.digest, n as u64);
        Ok(n)
    }
}

/// Whether the writer stopped only because the request body was dropped (the engine or the
/// connection went away), as `ChannelWriter::push` reports it.
fn stream_closed(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Bundle(ReadError::Io { source, .. })
            if source.kind() == io::ErrorKind::BrokenPipe
                && source.get_ref().is_some_and(|inner| inner.is::<EngineStoppedReading>())
    )
}

/// The writer's error when the request body it feeds was dropped.
#[derive(Debug, thiserror::Error)]
#[error("the engine stopped reading the load stream")]
struct EngineStoppedReading;

/// A tar header for a member of the load stream (regular file, 0644, owner 0, mtime 0).
fn member_header(name: &str, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Write the filtered tar: the metadata members the plan sends (`manifest.json` rewritten
/// to the images to load), then the blobs, read from `source` in its own order (a bundle:
/// one pass, start to end), each hashed on the way. Runs on a blocking thread.
fn write_stream(
    meta: &Meta,
    source: &dyn Source,
    plan: &LoadPlan,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
    reporter: &dyn Reporter,
) -> Result<u64, EngineError> {
    let path = &meta.bundle.path;
    let err_tx = tx.clone();
    let mut builder = tar::Builder::new(ChannelWriter {
        tx,
        buf: Vec::with_capacity(PIECE),
    });
    let mut sent = 0u64;
    let io_err = |member: &str, source: io::Error| ReadError::Io {
        path: path.clone(),
        member: member.to_string(),
        source,
    };
    let append = |builder: &mut tar::Builder<ChannelWriter>,
                  name: &str,
                  size: u64,
                  r: &mut dyn Read|
     -> Result<(), ReadError> {
        let h = member_header(name, size).map_err(|e| io_err(name, e))?;
        builder.append(&h, r).map_err(|e| io_err(name, e))
    };
    let mut result: Result<(), EngineError> = Ok(());
    for (name, _) in &meta.members {
        let written = if name == MANIFEST_PATH && !plan.whole {
            let bytes = ArchiveEntry::list_bytes(&plan.entries);
            append(
                &mut builder,
                MANIFEST_PATH,
                bytes.len() as u64,
                &mut &bytes[..],
            )
        } else if plan.send.contains(name)
            && let Some(bytes) = meta.raw.get(name)
        {
            append(&mut builder, name, bytes.len() as u64, &mut &bytes[..])
        } else {
            Ok(())
        };
        if let Err(e) = written {
            result = Err(e.into());
            break;
        }
    }
    let wanted: Vec<Digest> = plan.send.iter().filter_map(|n| blob_of(n)).collect();
    let mut failed: Option<EngineError> = None;
    let mut blob = |digest: &Digest, stored: u64, r: &mut dyn Read| -> Result<(), EngineError> {
        let name = format!("{BLOBS_DIR}{}", digest.hex());
        reporter.blob_start(digest, stored, &name, 0);
        let mut compressed = HashingReader::new(Progress {
            inner: r,
            digest: digest.clone(),
            reporter,
        });
        if let Some((size, diff_id)) = plan.inflate.get(&name) {
            let mut plain = HashingReader::new(flate2::read::GzDecoder::new(&mut compressed));
            append(&mut builder, &name, *size, &mut plain)?;
            let (_, actual_diff, len) = plain.finish();
            // Whatever follows the gzip stream is part of the blob too.
            std::io::copy(&mut compressed, &mut std::io::sink()).map_err(|e| io_err(&name, e))?;
            let (_, actual, _) = compressed.finish();
            if actual != *digest {
                return Err(EngineError::CorruptBlob {
                    bundle: path.clone(),
                    digest: digest.clone(),
                    actual,
                });
            }
            if &actual_diff != diff_id || len != *size {
                return Err(EngineError::CorruptLayer {
                    bundle: path.clone(),
                    digest: digest.clone(),
                    diff_id: diff_id.clone(),
                    actual: actual_diff,
                });
            }
        } else {
            append(&mut builder, &name, stored, &mut compressed)?;
            let (_, actual, _) = compressed.finish();
            if actual != *digest {
                return Err(EngineError::CorruptBlob {
                    bundle: path.clone(),
                    digest: digest.clone(),
                    actual,
                });
            }
        }
        reporter.blob_done(digest);
        sent += 1;
        Ok(())
    };
    if result.is_ok() {
        let visited = source.visit(&wanted, &mut |d, size, r| match blob(d, size, r) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        });
        // The source's own failure (a bundle ending inside a blob) explains a failed copy.
        result = match (visited, failed.take()) {
            (Err(e), _) => Err(e.into()),
            (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
        };
    }
    let finished = result.and_then(|_| {
        builder
            .finish()
            .map_err(|e| EngineError::Bundle(io_err("(end)", e)))?;
        builder
            .get_mut()
            .flush()
            .map_err(|e| EngineError::Bundle(io_err("(end)", e)))
    });
    if let Err(e) = finished {
        // Make the request fail instead of letting the engine load a partial stream.
        let _ = err_tx.blocking_send(Err(io::Error::other(e.to_string())));
        return Err(e);
    }
    Ok(sent)
}

/// Before a load: the engine must hold every layer the delta assumes, at the same place in
/// the layer stack (the classic store reuses a layer by ChainID; formats.md section 8), for
/// every image it does not already have. Names every image and layer missing otherwise.
pub fn check_delta(meta: &BundleMeta, state: &EngineState) -> Result<(), DeltaError> {
    let Some(base) = &meta.base else {
        return Ok(());
    };
    if base.assumed.is_empty() {
        return Ok(());
    }
    let assumed: BTreeSet<&Digest> = base.assumed.iter().collect();
    let mut missing = Vec::new();
    for img in &meta.images {
        if state.images.contains_key(&img.config.digest) {
            continue;
        }
        let diff_ids: Vec<Digest> = img.layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = chain_ids(&diff_ids);
        for (i, l) in img.layers.iter().enumerate() {
            if assumed.contains(&l.blob.digest) && !state.chains.contains(&chains[i]) {
                missing.push(MissingLayer {
                    image: img.reference.to_string(),
                    index: i,
                    diff_id: l.diff_id.clone(),
                    blob: l.blob.digest.clone(),
                });
            }
        }
    }
    if !missing.is_empty() {
        return Err(DeltaError::EngineLacks {
            base: base.id.clone(),
            base_images: base.images.iter().map(Reference::to_string).collect(),
            missing,
        });
    }
    // The containerd importer needs every blob in the stream or in its content store, and
    // the API cannot list that store; an image whose ID (its top digest there) is on the
    // engine has all its blobs in it. So every base image must be present by ID, unless
    // the engine already has every image of the delta.
    let all_present = meta
        .images
        .iter()
        .all(|i| state.images.contains_key(&i.top.digest));
    if state.containerd_store && !all_present {
        let missing: Vec<String> = if base.tops.len() != base.images.len() || base.tops.is_empty() {
            vec![format!(
                "(this delta records no base image digests; repack it with this airlock) {}",
                base.images
                    .iter()
                    .map(Reference::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )]
        } else {
            base.images
                .iter()
                .zip(&base.tops)
                .filter(|(_, top)| !state.images.contains_key(*top))
                .map(|(r, top)| format!("`{r}` ({top})"))
                .collect()
        };
        if !missing.is_empty() {
            return Err(DeltaError::ContainerdStore {
                base: base.id.clone(),
                missing,
            });
        }
    }
    Ok(())
}

/// Layer member the plan left out (the engine had it) that the engine's refusal names.
fn skipped_layer_gone(plan: &LoadPlan, message: &str) -> Option<String> {
    plan.entries
        .iter()
        .flat_map(|e| e.layers.iter())
        .find(|l| !plan.send.contains(*l) && message.contains(l.as_str()))
        .cloned()
}

/// Stream `plan`'s tar into `POST /images/load`; the blobs sent and the engine's lines.
async fn send(
    engine: &Engine,
    meta: &Arc<Meta>,
    source: &Arc<dyn Source>,
    plan: &LoadPlan,
    reporter: Arc<dyn Reporter>,
) -> Result<(u64, Vec<String>), EngineError> {
    reporter.total(plan.bytes_to_send);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
    let (writer_meta, source) = (Arc::clone(meta), Arc::clone(source));
    let plan_arc = Arc::new(plan.clone());
    let writer_reporter = Arc::clone(&reporter);
    let writer = tokio::task::spawn_blocking(move || {
        write_stream(&writer_meta, &*source, &plan_arc, tx, &*writer_reporter)
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let opts = bollard::query_parameters::ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    let mut messages = Vec::new();
    let mut responses = engine.docker.import_image_stream(opts, body, None).boxed();
    let mut engine_error = None;
    while let Some(item) = responses.next().await {
        match item {
            Ok(info) => {
                if let Some(s) = info
                    .stream
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    messages.push(s.to_string());
                }
            }
            Err(e) => engine_error = Some(e),
        }
    }
    drop(responses);
    let written = writer.await.map_err(EngineError::Join)?;
    // Which failure to report: a bundle problem the writer found wins (the request
    // failed because the writer aborted it); a writer that only saw the engine stop
    // reading yields to the engine's error, and a broken connection is `Lost` (exit 3),
    // not a refusal of the bundle.
    match (written, engine_error) {
        (Ok(sent), None) => Ok((sent, messages)),
        (Err(e), _) if !stream_closed(&e) => Err(e),
        (_, Some(e)) if !super::engine_answered(&e) => Err(EngineError::Lost {
            host: engine.host.clone(),
            action: "POST /images/load".to_string(),
            source: e,
        }),
        (_, Some(e)) => {
            let message = match e {
                bollard::errors::Error::DockerStreamError { error } => error,
                bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                other => other.to_string(),
            };
            Err(EngineError::LoadRefused {
                bundle: meta.bundle.path.clone(),
                message,
            })
        }
        (Err(e), None) => Err(e),
    }
}

/// Load `meta`'s bundle into the engine, its blobs read from the bundle itself
/// (`bundle::source::BundleSource`). See `load_from`.
pub async fn load(
    engine: &Engine,
    meta: &Meta,
    store: Option<&Store>,
    reporter: Arc<dyn Reporter>,
) -> Result<LoadReport, EngineError> {
    let source: Arc<dyn Source> = Arc::new(BundleSource::of(meta.clone()));
    load_from(engine, meta, source, store, reporter).await
}

/// The engine load sink: load the images `meta` describes, their blobs read from `source`
/// (any `source::Source`: the bundle, or a delta layered over its base): plan, check disk
/// space, stream, verify, tag.
///
/// The plan leaves out layers the engine holds; if one of them disappears before the engine
/// reaches it (an image removed meanwhile, `docker image prune`), the engine refuses the
/// stream naming that layer's file. Then the engine is read again and the load re-planned and
/// re-sent, at most twice.
///
/// With `store` (airlock's cache), a containerd-store engine also skips the layers that
/// earlier loads' manifests show in its content store, and this load's manifests are kept
/// there for the next (`content`).
pub async fn load_from(
    engine: &Engine,
    meta: &Meta,
    source: Arc<dyn Source>,
    store: Option<&Store>,
    reporter: Arc<dyn Reporter>,
) -> Result<LoadReport, EngineError> {
    let shared = Arc::new(meta.clone());
    let mut attempts = 0;
    // What the engine had before this command (a failed attempt may load some images).
    let mut present_before: Option<HashSet<Digest>> = None;
    let (state, plan, mut report) = loop {
        let mut state = engine.state().await?;
        if let Some(store) = store {
            state.known_blobs = super::content::known_blobs(store, &state);
        }
        // A delta: the engine must hold every layer it assumes; checked before anything is sent.
        check_delta(&meta.meta, &state)?;
        let plan = plan(meta, &state);
        present_before.get_or_insert_with(|| plan.present.clone());
        let mut report = LoadReport {
            blobs_skipped: plan.blobs_skipped,
            bytes_skipped: plan.bytes_skipped,
            ..Default::default()
        };
        if plan.entries.is_empty() {
            break (state, plan, report);
        }
        if let Some((path, available)) = engine.free_space(state.root_dir.as_deref())
            && available < plan.disk_needed
        {
            return Err(EngineError::DiskSpace {
                path,
                needed: plan.disk_needed,
                available,
            });
        }
        match send(engine, &shared, &source, &plan, Arc::clone(&reporter)).await {
            Ok((sent, messages)) => {
                report.sent = true;
                report.blobs_sent = sent;
                report.bytes_sent = plan.bytes_to_send;
                report.engine_messages = messages;
                break (state, plan, report);
            }
            Err(EngineError::LoadRefused { message, .. })
                if attempts < 2 && skipped_layer_gone(&plan, &message).is_some() =>
            {
                attempts += 1;
                reporter.warn(&format!(
                    "layer `{}` left the engine during the load; loading again with it",
                    skipped_layer_gone(&plan, &message).unwrap_or_default()
                ));
            }
            Err(e) => return Err(e),
        }
    };
    // Every image of the bundle must now be on the engine; tag the references compose uses.
    let mut pinned: Vec<PinnedTag> = Vec::new();
    let mut seen_tags: BTreeSet<String> = BTreeSet::new();
    for img in &meta.meta.images {
        let config = img.config.digest.clone();
        let id = if state.containerd_store {
            // A patched image's top (its rewritten manifest, `bundle::patched::view`) is
            // its image ID there.
            match engine.image_id(&img.reference.normalized()).await? {
                Some(id) => Some(id),
                None => engine
                    .image_id(&img.top.digest.to_string())
                    .await?
                    .or(engine.image_id(&config.to_string()).await?),
            }
        } else {
            engine.image_id(&config.to_string()).await?
        };
        let Some(id) = id else {
            return Err(EngineError::NotLoaded {
                reference: img.reference.to_string(),
                config,
            });
        };
        let mut tags = Vec::new();
        if let Some((repo, tag)) = local_tag(&img.reference) {
            engine.tag(&id, &repo, &tag).await?;
            let full = format!("{repo}:{tag}");
            if img.reference.digest().is_some() && seen_tags.insert(full.clone()) {
                pinned.push(PinnedTag {
                    reference: img.reference.to_string(),
                    tag: full.clone(),
                    services: img.services.clone(),
                });
            }
            tags.push(full);
        }
        let action = if present_before
            .as_ref()
            .unwrap_or(&plan.present)
            .contains(&config)
        {
            Action::Present
        } else {
            Action::Loaded
        };
        report.images.push(LoadedImage {
            reference: img.reference.to_string(),
            id,
            config,
            action,
            tags,
            services: img.services.clone(),
        });
    }
    report.pinned = pinned;
    if state.containerd_store
        && let Some(store) = store
    {
        let source = Arc::clone(&source);
        let (store, images) = (store.clone(), meta.meta.images.clone());
        let _ = tokio::task::spawn_blocking(move || {
            super::content::remember(&store, source.as_ref(), &images)
        })
        .await;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_tags() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("nginx@sha256:{hex}")).unwrap();
        assert_eq!(
            pinned_tag(&r),
            Some(("nginx".into(), "airlock-e3b0c44298fc".into()))
        );
        let r = Reference::parse(&format!("ghcr.io/a/b:1@sha256:{hex}")).unwrap();
        assert_eq!(
            local_tag(&r),
            Some(("ghcr.io/a/b".into(), "airlock-e3b0c44298fc".into()))
        );
        let r = Reference::parse("redis").unwrap();
        assert_eq!(local_tag(&r), Some(("redis".into(), "latest".into())));
    }
}
