//! `engine::save`: owns exporting images built locally (`pack --from-docker`) through the
//! Engine API (`GET /images/<name>/get`, the `docker save` stream) into the `store`, and
//! describing them as `ResolvedImage`s like pulled ones. The stream is read once, in order:
//! small JSON members (config, `manifest.json`) are kept in memory, every other file is a
//! layer, hashed for its DiffID while it is gzip-compressed (deterministic, fastest level)
//! into the store (already-gzip layers from newer engines are stored as they are). A Docker
//! schema 2 manifest is then written for the image. Works with the legacy (<= 24) and the
//! OCI-style (25+) `docker save` layouts. `EngineSource` is the engine as a `source::Source`
//! (the images saved, their blobs from the store). Used by `pack`.

use super::{Engine, EngineError, is_not_found};
use crate::digest::{Digest, HashingReader};
use crate::error::{Class, Classify};
use crate::image::{ArchiveEntry, Config, Descriptor, Layer, Manifest, ResolvedImage, media};
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::store::{LayerFacts, Store, StoreError};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};

/// JSON members larger than this are not configs or manifests.
const JSON_LIMIT: u64 = 20 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("The engine has no image `{reference}`")]
    NotFound { reference: String, service: String },
    #[error("Failed to export `{reference}` from the engine")]
    Export {
        reference: String,
        #[source]
        source: io::Error,
    },
    #[error("The engine's export of `{reference}` is not a docker-save archive: {message}")]
    Format { reference: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for SaveError {
    fn class(&self) -> Class {
        match self {
            SaveError::NotFound { .. } => Class::Input,
            SaveError::Format { .. } => Class::Failed,
            SaveError::Engine(e) => e.class(),
            SaveError::Store(e) => e.class(),
            SaveError::Export { .. } => Class::Environment,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            SaveError::NotFound { service, .. } => Some(format!(
                "build it first (`docker compose build {service}`), then pack again"
            )),
            SaveError::Engine(e) => e.hint(),
            SaveError::Store(e) => e.hint(),
            SaveError::Export { .. } | SaveError::Format { .. } => None,
        }
    }
}

/// Reads a channel of byte chunks filled by the async export stream.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// A layer ingested from the stream.
#[derive(Clone)]
struct Ingested {
    blob: Digest,
    size: u64,
    facts: LayerFacts,
}

/// Export `reference` (an image name the engine knows, as the compose file writes it) and
/// describe it. `service` names the compose service, for the hint when the image is absent.
pub async fn save(
    engine: &Engine,
    store: &Store,
    reference: &Reference,
    service: &str,
    reporter: &dyn Reporter,
) -> Result<ResolvedImage, SaveError> {
    let name = reference.original().to_string();
    let inspect = match engine.docker.inspect_image(&name).await {
        Ok(i) => i,
        Err(e) if is_not_found(&e) => {
            return Err(SaveError::NotFound {
                reference: name,
                service: service.to_string(),
            });
        }
        Err(source) => {
            return Err(super::request_error(
                &engine.host,
                format!("GET /images/{name}/json"),
                source,
            )
            .into());
        }
    };
    reporter.step(&format!("exporting {name} from the engine"));
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(32);
    let store2 = store.clone();
    let name2 = name.clone();
    let reader = tokio::task::spawn_blocking(move || {
        read_export(
            &store2,
            &name2,
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
        )
    });
    let mut stream = engine.docker.export_image(&name);
    while let Some(item) = stream.next().await {
        let item = item.map_err(|e| io::Error::other(e.to_string()));
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let (small, layers) = reader.await.map_err(|e| SaveError::Export {
        reference: name.clone(),
        source: io::Error::other(e.to_string()),
    })??;

    // manifest.json decides which members are the config and the layers.
    let format = |message: String| SaveError::Format {
        reference: name.clone(),
        message,
    };
    let manifest_bytes = small
        .get("manifest.json")
        .ok_or_else(|| format("no manifest.json".into()))?;
    let entries = ArchiveEntry::parse_list(manifest_bytes)
        .map_err(|e| format(format!("manifest.json: {e}")))?;
    let entry = entries
        .first()
        .ok_or_else(|| format("manifest.json lists no image".into()))?;
    let config_bytes = small
        .get(&entry.config)
        .ok_or_else(|| format(format!("config `{}` missing", entry.config)))?;
    let config_digest = store.put(config_bytes)?;
    let config = Config::parse(config_bytes).map_err(|e| format(format!("config: {e}")))?;
    let diff_ids = config
        .diff_ids()
        .map_err(|e| format(format!("config: {e}")))?;
    if diff_ids.len() != entry.layers.len() {
        return Err(format(format!(
            "{} layers but the config has {} diff_ids",
            entry.layers.len(),
            diff_ids.len()
        )));
    }
    let mut out_layers = Vec::new();
    for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
        let l = layers
            .get(path.as_str())
            .ok_or_else(|| format(format!("layer `{path}` missing from the export")))?;
        if l.facts.diff_id != *diff_id {
            return Err(format(format!(
                "layer `{path}` has DiffID `{}`, the config says `{diff_id}`",
                l.facts.diff_id
            )));
        }
        out_layers.push(Layer {
            blob: Descriptor::new(media::DOCKER_LAYER_GZIP, l.blob.clone(), l.size),
            diff_id: diff_id.clone(),
            uncompressed_size: Some(l.facts.uncompressed_size),
        });
    }
    let config_desc = Descriptor::new(
        media::DOCKER_CONFIG,
        config_digest.clone(),
        config_bytes.len() as u64,
    );
    let layer_descs: Vec<Descriptor> = out_layers.iter().map(|l| l.blob.clone()).collect();
    let manifest_bytes = Manifest::docker_bytes(&config_desc, &layer_descs);
    let manifest_digest = store.put(&manifest_bytes)?;
    let manifest_desc = Descriptor::new(
        media::DOCKER_MANIFEST,
        manifest_digest,
        manifest_bytes.len() as u64,
    );
    let os = if config.os.is_empty() {
        inspect.os.clone().unwrap_or_else(|| "linux".into())
    } else {
        config.os.clone()
    };
    let arch = if config.architecture.is_empty() {
        inspect
            .architecture
            .clone()
            .unwrap_or_else(|| "amd64".into())
    } else {
        config.architecture.clone()
    };
    Ok(ResolvedImage {
        reference: reference.clone(),
        top: manifest_desc.clone(),
        manifest: manifest_desc,
        config: config_desc,
        layers: out_layers,
        platform: Platform::new(&os, &arch, config.variant.as_deref()),
        extra: Vec::new(),
    })
}

type Small = HashMap<String, Vec<u8>>;
type Layers = HashMap<String, Ingested>;

/// Walk the export tar: JSON members into memory, other files into the store as layers.
fn read_export(store: &Store, name: &str, reader: impl Read) -> Result<(Small, Layers), SaveError> {
    let export = |source: io::Error| SaveError::Export {
        reference: name.to_string(),
        source,
    };
    let mut small = Small::new();
    let mut layers = Layers::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(export)? {
        let entry = entry.map_err(export)?;
        let path = entry
            .path()
            .map_err(export)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        match entry.header().entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = entry.link_name().map_err(export)? {
                    let target = target.to_string_lossy().to_string();
                    // Relative to the member's directory (`../<id>/layer.tar`); hard links are archive-relative.
                    let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                        normalize(&format!("{}/{target}", parent(&path)))
                    } else {
                        normalize(&target)
                    };
                    links.push((path, resolved));
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                let mut buffered = io::BufReader::with_capacity(1 << 20, entry);
                let head = buffered.fill_buf().map_err(export)?;
                let json = size <= JSON_LIMIT && matches!(head.first(), Some(b'{' | b'['));
                if json || size == 0 && !path.ends_with("layer.tar") {
                    let mut bytes = Vec::with_capacity(size as usize);
                    buffered.read_to_end(&mut bytes).map_err(export)?;
                    small.insert(path, bytes);
                } else {
                    let ingested = ingest_layer(store, buffered).map_err(|e| match e {
                        IngestError::Io(source) => export(source),
                        IngestError::Store(s) => SaveError::Store(s),
                    })?;
                    layers.insert(path, ingested);
                }
            }
            _ => {}
        }
    }
    for (path, target) in links {
        if let Some(l) = layers.get(&target).cloned() {
            layers.insert(path, l);
        } else if let Some(b) = small.get(&target).cloned() {
            small.insert(path, b);
        }
    }
    Ok((small, layers))
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

enum IngestError {
    Io(io::Error),
    Store(StoreError),
}

/// Store one layer: gzip (fastest level, no name or mtime: deterministic) unless it is
/// already compressed, hashing the uncompressed stream for the DiffID.
fn ingest_layer(store: &Store, mut r: impl BufRead) -> Result<Ingested, IngestError> {
    let head = r.fill_buf().map_err(IngestError::Io)?;
    let compressed = head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let mut w = store.writer_unknown().map_err(IngestError::Store)?;
    let facts = if compressed {
        io::copy(&mut r, &mut w).map_err(IngestError::Io)?;
        None
    } else {
        let mut hashing = HashingReader::new(r);
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(&mut w, flate2::Compression::fast());
        io::copy(&mut hashing, &mut gz).map_err(IngestError::Io)?;
        gz.finish().map_err(IngestError::Io)?;
        let (_, diff_id, uncompressed_size) = hashing.finish();
        Some(LayerFacts {
            diff_id,
            uncompressed_size,
        })
    };
    w.flush().map_err(IngestError::Io)?;
    let size = w.offset();
    let blob = w.commit().map_err(IngestError::Store)?;
    let facts = match facts {
        Some(f) => {
            store
                .set_layer_facts(&blob, &f)
                .map_err(IngestError::Store)?;
            f
        }
        None => store
            .compute_layer_facts(&blob)
            .map_err(IngestError::Store)?,
    };
    Ok(Ingested { blob, size, facts })
}

/// Export image `name` (`docker save`, read once, in order) and keep the layers whose
/// diff_id is in `wanted` as uncompressed tars in `dir`, named `<diff_id hex>.tar` (patch
/// bundles: the base layers `bundle::patched::rebuild` applies patches to). Every layer is
/// unpacked while hashed (plain tars on the classic store, the stored compressed blobs on
/// the containerd store); the others are deleted as soon as they are read. Returns the
/// diff_ids found and their paths.
pub async fn export_layers(
    engine: &Engine,
    name: &str,
    wanted: &std::collections::BTreeSet<Digest>,
    dir: &std::path::Path,
) -> Result<HashMap<Digest, std::path::PathBuf>, SaveError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(32);
    let (wanted2, dir2, name2) = (wanted.clone(), dir.to_path_buf(), name.to_string());
    let reader = tokio::task::spawn_blocking(move || {
        let mut ar = tar::Archive::new(ChannelReader {
            rx,
            current: Bytes::new(),
        });
        let mut found = HashMap::new();
        let export_err = |source: io::Error| SaveError::Export {
            reference: name2.clone(),
            source,
        };
        for (n, entry) in ar.entries().map_err(export_err)?.enumerate() {
            let mut entry = entry.map_err(export_err)?;
            if entry.header().entry_type() != tar::EntryType::Regular
                || entry.size() < 512
                || entry
                    .path()
                    .is_ok_and(|p| p.extension().is_some_and(|e| e == "json"))
            {
                continue;
            }
            let tmp = dir2.join(format!("export-{n}.partial"));
            let (diff_id, _) =
                crate::bundle::patched::unpack_layer(&mut entry, &tmp).map_err(export_err)?;
            if wanted2.contains(&diff_id) && !found.contains_key(&diff_id) {
                let path = dir2.join(format!("{}.tar", diff_id.hex()));
                fs_err::rename(&tmp, &path).map_err(export_err)?;
                found.insert(diff_id, path);
            } else {
                let _ = fs_err::remove_file(&tmp);
            }
        }
        Ok::<_, SaveError>(found)
    });
    let mut stream = engine.docker.export_image(name);
    while let Some(item) = stream.next().await {
        let item = item.map_err(|e| io::Error::other(e.to_string()));
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    reader.await.map_err(|e| SaveError::Export {
        reference: name.to_string(),
        source: io::Error::other(e.to_string()),
    })?
}

/// The engine as a `source::Source`: the images `save` exported, their blobs served from the
/// store. The export stream (`docker save`) is read once, in order, and its layers are
/// compressed on the way, so a blob can be served only once its image is saved; `save` is
/// the step that makes an engine image a source like a pulled one.
pub struct EngineSource {
    store: Store,
    images: Vec<ResolvedImage>,
}

impl EngineSource {
    /// An engine source keeping its blobs in `store`; it holds no image yet.
    pub fn new(store: Store) -> EngineSource {
        EngineSource {
            store,
            images: Vec::new(),
        }
    }

    /// Export `reference` from `engine` into the store (`save`) and add it to the source.
    pub async fn save(
        &mut self,
        engine: &Engine,
        reference: &Reference,
        service: &str,
        reporter: &dyn Reporter,
    ) -> Result<&ResolvedImage, SaveError> {
        let img = save(engine, &self.store, reference, service, reporter).await?;
        self.images.push(img);
        Ok(self.images.last().expect("pushed above"))
    }
}

impl crate::source::Source for EngineSource {
    fn describe(&self) -> String {
        format!("the engine's images saved in {}", self.store.describe())
    }
    fn images(&self) -> Result<Vec<ResolvedImage>, crate::source::SourceError> {
        Ok(self.images.clone())
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.store.blob_size(digest)
    }
    fn open(
        &self,
        digest: &Digest,
        offset: u64,
    ) -> Result<crate::source::BlobReader, crate::source::SourceError> {
        self.store.open(digest, offset)
    }
    fn discard(&self, digest: &Digest) {
        self.store.discard(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_legacy_save_with_shared_layer_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = b"pretend this is a layer tar".to_vec();
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, data).unwrap();
        };
        add("aaa/layer.tar", &layer);
        add("cfg.json", br#"{"rootfs":{"diff_ids":[]}}"#);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        tar.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        let bytes = tar.into_inner().unwrap();
        let (small, layers) = read_export(&store, "x", &bytes[..]).unwrap();
        assert!(small.contains_key("cfg.json"));
        let a = &layers["aaa/layer.tar"];
        assert_eq!(a.facts.diff_id, Digest::of(&layer));
        assert_eq!(layers["bbb/layer.tar"].blob, a.blob);
        assert!(store.has(&a.blob, a.size));
        // Deterministic: the same layer gives the same blob again.
        let (_, again) = read_export(&store, "x", &bytes[..]).unwrap();
        assert_eq!(again["aaa/layer.tar"].blob, a.blob);
    }
}
