//! Patch bundles, offline side (docs/bundle-format.md "Patch bundles"): owns rebuilding the
//! layers a delta carries as patches (`rebuild`: each base layer unpacked to a temporary
//! tar and checked against the base `diff_id` the patch names, `patch::apply` into the
//! `store` under the layer's `diff_id`, committed only when it hashes to it), checking the
//! patch blobs' headers against bundle.json (`check_headers`, for `verify` and before a
//! load), and the patched view (`view`): the bundle's metadata as if it carried each
//! patched layer as its uncompressed tar, with rewritten image manifests, `manifest.json`
//! and `index.json`, which every sink (`engine::load`, `serve`, `registry::push`) takes
//! with `source` (the delta, then the store holding the rebuilt layers and manifests).
//! Knows no engine: where base layers come from is the caller's (`BaseLayer`).

use super::meta::PatchMeta;
use super::read::{BLOBS_DIR, INDEX_PATH, MANIFEST_PATH, Meta};
use super::source::BundleSource;
use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::error::{Class, Classify};
use crate::image::{ArchiveEntry, Descriptor, Index, Manifest, media};
use crate::progress::Reporter;
use crate::source::{BlobReader, Layered, Source, SourceError};
use crate::store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PatchedError {
    #[error("Failed to read {what}")]
    Read {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "Wrong base for layer {} of `{}`: its patch needs base layer {} (layer {} of `{}`), but {} gives {}; nothing was loaded",
        .0.index, .0.image, .0.diff_id, .0.base_index, .0.base_image, .0.from,
        .0.found.as_ref().map(ToString::to_string).unwrap_or_default()
    )]
    WrongBase(Box<BaseFault>),
    #[error(
        "No base for layer {} of `{}`: its patch needs layer {} of `{}` (blob `{}`, diff_id {}), which {} lacks; nothing was loaded",
        .0.index, .0.image, .0.base_index, .0.base_image, .0.blob, .0.diff_id, .0.from
    )]
    BaseMissing(Box<BaseFault>),
    #[error("The patch `{patch}` of layer {index} of `{image}` is corrupt: {reason}")]
    Corrupt {
        image: String,
        index: usize,
        patch: Digest,
        reason: String,
    },
    #[error(
        "Layer {index} of `{image}` does not rebuild: the patch `{patch}` gives {found}, not its diff_id {diff_id}; nothing was loaded"
    )]
    Mismatch {
        image: String,
        index: usize,
        patch: Digest,
        diff_id: Digest,
        found: Digest,
    },
    #[error("Cannot read the manifest `{digest}` of `{image}` to rewrite it: {reason}")]
    Manifest {
        image: String,
        digest: Digest,
        reason: String,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A patch whose base layer is wrong or absent: the layer, the base layer it needs, where
/// it was looked for and (wrong) what was found.
#[derive(Debug)]
pub struct BaseFault {
    pub image: String,
    pub index: usize,
    pub base_image: String,
    pub base_index: usize,
    pub blob: Digest,
    pub diff_id: Digest,
    pub from: String,
    pub found: Option<Digest>,
}

impl BaseFault {
    fn of(p: &PatchMeta, from: &str, found: Option<Digest>) -> Box<BaseFault> {
        Box::new(BaseFault {
            image: p.image.to_string(),
            index: p.index,
            base_image: p.base.image.to_string(),
            base_index: p.base.index,
            blob: p.base.layer.clone(),
            diff_id: p.base.diff_id.clone(),
            from: from.to_string(),
            found,
        })
    }
}

impl Classify for PatchedError {
    fn class(&self) -> Class {
        match self {
            PatchedError::Read { .. } => Class::Environment,
            PatchedError::Source(e) => e.class(),
            PatchedError::Store(e) => e.class(),
            _ => Class::Failed,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            PatchedError::WrongBase(f) | PatchedError::BaseMissing(f) => Some(format!(
                "give the bundle this delta was packed against with `--base`, or load it first (its image `{}` must be on the engine)",
                f.base_image
            )),
            PatchedError::Corrupt { .. } | PatchedError::Mismatch { .. } => {
                Some("copy the bundle again; `airlock verify` names every damaged blob".into())
            }
            PatchedError::Source(e) => e.hint(),
            _ => None,
        }
    }
}

/// Unpack a layer blob (gzip, zstd or a plain tar, told by its first bytes) to `dest`,
/// hashing the uncompressed bytes: its diff_id and size.
pub fn unpack_layer(r: &mut dyn Read, dest: &Path) -> io::Result<(Digest, u64)> {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let head = r.fill_buf()?.to_vec();
    let out = fs_err::File::create(dest)?;
    let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
    if head.starts_with(&[0x1f, 0x8b]) {
        io::copy(&mut flate2::read::MultiGzDecoder::new(r), &mut w)?;
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        io::copy(&mut zstd::stream::read::Decoder::with_buffer(r)?, &mut w)?;
    } else {
        io::copy(&mut r, &mut w)?;
    }
    let (out, digest, size) = w.finish();
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((digest, size))
}

/// A problem a patch blob has, as `verify` reports it.
#[derive(Debug, Clone)]
pub struct PatchProblem {
    pub image: String,
    pub patch: Digest,
    pub message: String,
}

/// Read the header of every patch blob `source` holds and check it against bundle.json
/// (the diff_ids it rebuilds and starts from). A patch `source` lacks is reported too.
pub fn check_headers(meta: &Meta, source: &dyn Source) -> Vec<PatchProblem> {
    let mut out = Vec::new();
    for p in meta.meta.patches() {
        let problem = |message: String| PatchProblem {
            image: p.image.to_string(),
            patch: p.patch.digest.clone(),
            message,
        };
        let mut r = match source.open(&p.patch.digest, 0) {
            Ok(r) => r,
            Err(e) => {
                out.push(problem(format!(
                    "the patch `{}` of layer {} of `{}` cannot be read: {e}",
                    p.patch.digest, p.index, p.image
                )));
                continue;
            }
        };
        match crate::patch::header(&mut r) {
            Err(e) => out.push(problem(format!(
                "the patch `{}` of layer {} of `{}` is not a layer patch: {e}",
                p.patch.digest, p.index, p.image
            ))),
            Ok(h) if h.diff_id != p.diff_id || h.base_diff_id != p.base.diff_id => {
                out.push(problem(format!(
                    "the patch `{}` of layer {} of `{}` rebuilds {} from {}; bundle.json says {} from {}",
                    p.patch.digest, p.index, p.image, h.diff_id, h.base_diff_id, p.diff_id, p.base.diff_id
                )))
            }
            Ok(_) => {}
        }
    }
    out
}

/// Where the base layer of a patch comes from.
pub enum BaseLayer {
    /// Its blob as stored (gzip, zstd or plain), unpacked here.
    Blob(BlobReader),
    /// Its uncompressed tar, already on disk (an engine export).
    Tar(PathBuf),
    /// Not available; the text says where it was looked for.
    Missing(String),
}

/// What `rebuild` did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Rebuilt {
    /// Layers rebuilt now, and their bytes.
    pub layers: u64,
    pub bytes: u64,
    /// Layers found already rebuilt in the cache (an earlier run).
    pub cached: u64,
}

/// Rebuild the layers of `patches` into `store` (under their diff_ids): the patch from
/// `delta`, the base layer from `base` (`from` names it for messages). Every patch header
/// is checked first, so a corrupt patch is refused before any work; each base layer is
/// checked against the base diff_id the patch names (`WrongBase` otherwise), and a rebuilt
/// layer enters the store only when it hashes to its diff_id.
pub fn rebuild(
    patches: &[&PatchMeta],
    delta: &dyn Source,
    base: &mut dyn FnMut(&PatchMeta) -> Result<BaseLayer, PatchedError>,
    from: &str,
    store: &Store,
    reporter: &dyn Reporter,
) -> Result<Rebuilt, PatchedError> {
    let mut done = Rebuilt::default();
    let todo: Vec<&PatchMeta> = patches
        .iter()
        .copied()
        .filter(|p| {
            let have = store.has(&p.diff_id, p.size);
            done.cached += u64::from(have);
            !have
        })
        .collect();
    for p in &todo {
        let mut r = delta.open(&p.patch.digest, 0)?;
        let h = crate::patch::header(&mut r).map_err(|e| corrupt(p, e.to_string()))?;
        if h.diff_id != p.diff_id || h.base_diff_id != p.base.diff_id {
            return Err(corrupt(
                p,
                format!(
                    "its header rebuilds {} from {}; bundle.json says {} from {}",
                    h.diff_id, h.base_diff_id, p.diff_id, p.base.diff_id
                ),
            ));
        }
    }
    if todo.is_empty() {
        return Ok(done);
    }
    sweep(store.root());
    let tmp = tempfile::Builder::new()
        .prefix("rebuild-")
        .tempdir_in(store.root())
        .map_err(|source| PatchedError::Read {
            what: format!("a temporary directory in `{}`", store.root().display()),
            source,
        })?;
    for p in todo {
        reporter.step(&format!(
            "rebuilding layer {} of {} from its patch",
            p.index, p.image
        ));
        let base_tar = match base(p)? {
            BaseLayer::Tar(path) => path,
            BaseLayer::Blob(mut r) => {
                let path = tmp
                    .path()
                    .join(format!("base-{}.tar", p.base.diff_id.hex()));
                let (found, _) =
                    unpack_layer(&mut r, &path).map_err(|source| PatchedError::Read {
                        what: format!("base layer `{}` from {from}", p.base.layer),
                        source,
                    })?;
                if found != p.base.diff_id {
                    return Err(wrong_base(p, from, found));
                }
                path
            }
            BaseLayer::Missing(where_) => {
                return Err(PatchedError::BaseMissing(BaseFault::of(p, &where_, None)));
            }
        };
        let mut w = store.writer(&p.diff_id, p.size)?;
        w.truncate()?;
        if let Err(e) = apply_one(p, &base_tar, delta, from, &mut w) {
            w.discard();
            return Err(e);
        }
        w.commit()?;
        let _ = fs_err::remove_file(&base_tar);
        done.layers += 1;
        done.bytes += p.size;
    }
    Ok(done)
}

/// Apply `p`'s patch (from `delta`, hashed against its digest on the way) to `base_tar`,
/// writing the rebuilt layer to `out`; `Mismatch` when it is not `p.diff_id`.
fn apply_one(
    p: &PatchMeta,
    base_tar: &Path,
    delta: &dyn Source,
    from: &str,
    out: &mut dyn io::Write,
) -> Result<(), PatchedError> {
    let mut patch = HashingReader::new(delta.open(&p.patch.digest, 0)?);
    let applied = crate::patch::apply(base_tar, &mut patch, out);
    let _ = io::copy(&mut patch, &mut io::sink());
    let (_, actual, _) = patch.finish();
    if actual != p.patch.digest {
        return Err(corrupt(
            p,
            format!("its bytes hash to {actual}, not {}", p.patch.digest),
        ));
    }
    match applied {
        Ok(h) if h.diff_id != p.diff_id => Err(corrupt(
            p,
            format!("it rebuilds {}, bundle.json says {}", h.diff_id, p.diff_id),
        )),
        Ok(_) => Ok(()),
        Err(crate::patch::PatchError::Mismatch { found, .. }) => Err(PatchedError::Mismatch {
            image: p.image.to_string(),
            index: p.index,
            patch: p.patch.digest.clone(),
            diff_id: p.diff_id.clone(),
            found,
        }),
        Err(crate::patch::PatchError::WrongBase { found, .. }) => Err(wrong_base(p, from, found)),
        Err(crate::patch::PatchError::Io(source)) => Err(PatchedError::Read {
            what: format!("the rebuild of layer {} of `{}`", p.index, p.image),
            source,
        }),
        Err(e) => Err(corrupt(p, e.to_string())),
    }
}

/// `verify --base`: rebuild every patch of `meta` against base bundle `base` into nothing
/// but a hash, proving each gives its diff_id. One problem per patch that does not.
pub fn prove(
    meta: &Meta,
    base: &Path,
    reporter: &dyn Reporter,
) -> Result<Vec<PatchProblem>, PatchedError> {
    let delta = BundleSource::of(meta.clone());
    let base_source = BundleSource::open(base).map_err(|e| PatchedError::Read {
        what: format!("base bundle `{}`", base.display()),
        source: io::Error::other(e.to_string()),
    })?;
    let from = format!("base bundle `{}`", base.display());
    let tmp = tempfile::tempdir().map_err(|source| PatchedError::Read {
        what: "a temporary directory".into(),
        source,
    })?;
    let mut out = Vec::new();
    for p in meta.meta.patches() {
        reporter.step(&format!(
            "rebuilding layer {} of {} from its patch",
            p.index, p.image
        ));
        let result = (|| {
            if base_source.blob_size(&p.base.layer).is_none() {
                return Err(PatchedError::BaseMissing(BaseFault::of(p, &from, None)));
            }
            let path = tmp.path().join("base.tar");
            let (found, _) = unpack_layer(&mut base_source.open(&p.base.layer, 0)?, &path)
                .map_err(|source| PatchedError::Read {
                    what: format!("base layer `{}` from {from}", p.base.layer),
                    source,
                })?;
            if found != p.base.diff_id {
                return Err(wrong_base(p, &from, found));
            }
            apply_one(p, &path, &delta, &from, &mut io::sink())
        })();
        match result {
            Ok(()) => {}
            Err(e @ PatchedError::Read { .. }) => return Err(e),
            Err(e) => out.push(PatchProblem {
                image: p.image.to_string(),
                patch: p.patch.digest.clone(),
                message: e.to_string(),
            }),
        }
    }
    Ok(out)
}

/// Remove `rebuild-*` temporary directories under the cache root left by a rebuild that was
/// killed (`kill -9` skips their removal): those untouched for a day (far longer than a
/// rebuild runs).
pub fn sweep(root: &Path) {
    let Ok(entries) = fs_err::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
        if stale && e.file_name().to_string_lossy().starts_with("rebuild-") && e.path().is_dir() {
            let _ = fs_err::remove_dir_all(e.path());
        }
    }
}

fn corrupt(p: &PatchMeta, reason: String) -> PatchedError {
    PatchedError::Corrupt {
        image: p.image.to_string(),
        index: p.index,
        patch: p.patch.digest.clone(),
        reason,
    }
}

fn wrong_base(p: &PatchMeta, from: &str, found: Digest) -> PatchedError {
    PatchedError::WrongBase(BaseFault::of(p, from, Some(found)))
}

/// The media type of an uncompressed layer in a manifest of `manifest_type`.
fn tar_type(manifest_type: &str) -> &'static str {
    if manifest_type == media::OCI_MANIFEST {
        media::OCI_LAYER
    } else {
        media::DOCKER_LAYER
    }
}

/// The name a containerd-store engine gives a patched image loaded from the view: its
/// tag, or for a digest-only reference the local tag `airlock load` uses for it
/// (`name:airlock-<12 hex>`), since the digest no longer names the rewritten manifest.
fn view_name(annotation: &str) -> String {
    match annotation.split_once('@') {
        Some((name, digest)) => {
            let hex = digest.trim_start_matches("sha256:");
            format!("{name}:airlock-{}", &hex[..hex.len().min(12)])
        }
        None => annotation.to_string(),
    }
}

/// The patched view of `meta` (see the module doc): each image with a patched layer gets a
/// manifest listing that layer as its uncompressed tar (digest = diff_id); the manifest is
/// put in `store` and becomes the image's top (the index, if any, is not carried over);
/// `manifest.json` and `index.json` follow. `delta` gives the original manifests. A bundle
/// without patches is returned as it is.
pub fn view(meta: &Meta, delta: &dyn Source, store: &Store) -> Result<Meta, PatchedError> {
    let patches: HashMap<&Digest, &PatchMeta> =
        meta.meta.patches().iter().map(|p| (&p.layer, p)).collect();
    if patches.is_empty() {
        return Ok(meta.clone());
    }
    let mut out = meta.clone();
    let mut tops: HashMap<Digest, Descriptor> = HashMap::new();
    let mut configs: HashMap<String, Vec<String>> = HashMap::new();
    let mut added: BTreeMap<String, (Digest, u64)> = BTreeMap::new();
    for img in out.meta.images.iter_mut() {
        if !img
            .layers
            .iter()
            .any(|l| patches.contains_key(&l.blob.digest))
        {
            continue;
        }
        let bad = |reason: String| PatchedError::Manifest {
            image: img.reference.to_string(),
            digest: img.manifest.digest.clone(),
            reason,
        };
        let mut bytes = Vec::new();
        delta
            .open(&img.manifest.digest, 0)?
            .take(super::read::JSON_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(e.to_string()))?;
        if Digest::of(&bytes) != img.manifest.digest {
            return Err(bad("its bytes do not hash to its digest".into()));
        }
        let mut m = Manifest::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        if m.layers.len() != img.layers.len() {
            return Err(bad(
                "it lists another number of layers than bundle.json".into()
            ));
        }
        let mt = tar_type(&img.manifest.media_type);
        for (l, d) in img.layers.iter_mut().zip(m.layers.iter_mut()) {
            if let Some(p) = patches.get(&l.blob.digest) {
                let nd = Descriptor::new(mt, p.diff_id.clone(), p.size);
                *d = nd.clone();
                l.blob = nd;
                l.uncompressed_size = Some(p.size);
                added.insert(
                    format!("{BLOBS_DIR}{}", p.diff_id.hex()),
                    (p.diff_id.clone(), p.size),
                );
            }
        }
        let new_bytes = serde_json::to_vec(&m).map_err(|e| bad(e.to_string()))?;
        let digest = store.put(&new_bytes)?;
        let nd = Descriptor::new(
            &img.manifest.media_type,
            digest.clone(),
            new_bytes.len() as u64,
        );
        added.insert(
            format!("{BLOBS_DIR}{}", digest.hex()),
            (digest, new_bytes.len() as u64),
        );
        tops.insert(img.top.digest.clone(), nd.clone());
        img.manifest = nd.clone();
        img.top = nd;
        img.size = img.layers.iter().map(|l| l.blob.size).sum();
        configs.insert(
            format!("{BLOBS_DIR}{}", img.config.digest.hex()),
            img.layers
                .iter()
                .map(|l| format!("{BLOBS_DIR}{}", l.blob.digest.hex()))
                .collect(),
        );
    }
    for e in out.manifest.iter_mut() {
        if let Some(layers) = configs.get(&e.config) {
            e.layers = layers.clone();
        }
    }
    out.raw.insert(
        MANIFEST_PATH.to_string(),
        ArchiveEntry::list_bytes(&out.manifest),
    );
    if let Some(index) = &out.index {
        let manifests: Vec<Descriptor> = index
            .manifests
            .iter()
            .map(|d| match tops.get(&d.digest) {
                Some(nd) => {
                    let mut nd = nd.clone();
                    nd.annotations = d.annotations.clone();
                    if let Some(name) = nd.annotations.get_mut("io.containerd.image.name") {
                        *name = view_name(name);
                    }
                    nd
                }
                None => d.clone(),
            })
            .collect();
        let bytes = Index::oci_bytes(manifests);
        out.index = Index::parse(&bytes).ok();
        out.raw.insert(INDEX_PATH.to_string(), bytes);
    }
    // The patch blobs are not part of the images; the rebuilt layers and manifests are.
    let patch_files: Vec<String> = meta
        .meta
        .patches()
        .iter()
        .map(|p| format!("{BLOBS_DIR}{}", p.patch.digest.hex()))
        .collect();
    out.sums.retain(|k, _| !patch_files.contains(k));
    out.members.retain(|(k, _)| !patch_files.contains(k));
    for (name, (digest, size)) in added {
        out.sums.insert(name.clone(), digest);
        out.members.push((name, size));
    }
    for (name, bytes) in [
        (MANIFEST_PATH, out.raw[MANIFEST_PATH].len() as u64),
        (
            INDEX_PATH,
            out.raw.get(INDEX_PATH).map(|b| b.len() as u64).unwrap_or(0),
        ),
    ] {
        if let Some(m) = out.members.iter_mut().find(|(n, _)| n == name) {
            m.1 = bytes;
        }
    }
    Ok(out)
}

/// The source of the view: the delta bundle, then the store (rebuilt layers, rewritten
/// manifests).
pub fn source(meta: &Meta, store: &Store) -> Layered {
    Layered(vec![
        Box::new(BundleSource::of(meta.clone())),
        Box::new(store.clone()),
    ])
}

/// The patches the images of `meta` not satisfied by `present` need, each once.
pub fn needed<'a>(
    meta: &'a Meta,
    present: &dyn Fn(&super::meta::ImageMeta) -> bool,
) -> Vec<&'a PatchMeta> {
    let mut out: Vec<&PatchMeta> = Vec::new();
    for img in meta.meta.images.iter().filter(|i| !present(i)) {
        for l in &img.layers {
            if let Some(p) = meta
                .meta
                .patches()
                .iter()
                .find(|p| p.layer == l.blob.digest)
                && !out.iter().any(|o| o.layer == p.layer)
            {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn unpack_layer_reads_gzip_zstd_and_plain_tars() {
        let dir = tempfile::tempdir().unwrap();
        let tar: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        for (name, blob) in [("gz", gz), ("zst", zst), ("plain", tar.clone())] {
            let dest = dir.path().join(name);
            let (d, n) = unpack_layer(&mut &blob[..], &dest).unwrap();
            assert_eq!((d, n), (Digest::of(&tar), tar.len() as u64), "{name}");
            assert_eq!(fs_err::read(&dest).unwrap(), tar, "{name}");
        }
    }

    #[test]
    fn digest_only_names_become_the_pinned_local_tag() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            view_name(&format!("registry.lan/app@sha256:{hex}")),
            "registry.lan/app:airlock-e3b0c44298fc"
        );
        assert_eq!(view_name("registry.lan/app:2"), "registry.lan/app:2");
    }
}
