//! Patches for `pack --since` (patch bundles, docs/bundle-format.md "Patch bundles"): for
//! each new layer of an image whose base version (the same repository in the base) has a
//! different layer at the same position, both layers are decompressed to temporary
//! uncompressed tars next to the output, `patch::build` writes a patch into the `store`,
//! and the patch is kept when it is under half the layer blob (`KEEP_BELOW`); otherwise the
//! layer is carried whole. The base layer's bytes come from the base bundle when `--since`
//! names one, else from the cache; else (a bundle.json or lock base, cache cleared)
//! `fetch_base_layers` fetches them by digest from the base image's repository into the
//! cache (only the base layers a patch needs); when the registry cannot give one, that
//! layer is carried whole (and said, with the registry's reason).

use crate::bundle::delta::{Base, BaseImage};
use crate::bundle::meta::{PatchBase, PatchMeta};
use crate::bundle::patched::{PatchedError, unpack_layer};
use crate::bundle::source::BundleSource;
use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::image::{Descriptor, Layer, ResolvedImage};
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::{Client, PullStats, RegistryError};
use crate::source::Source;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A patch is kept when `patch bytes * KEEP_BELOW.1 < layer blob bytes * KEEP_BELOW.0`:
/// under half the blob it replaces (the rebuild costs time offline; a patch that saves
/// little is not worth it).
pub const KEEP_BELOW: (u64, u64) = (1, 2);

/// What `make` decided.
#[derive(Debug, Default)]
pub struct Made {
    pub patches: Vec<PatchMeta>,
    /// Layers a patch was tried for and carried whole, and why (for pack's output).
    pub notes: Vec<String>,
}

/// The base image a new image replaces: the same reference (a moving tag), else the same
/// repository (name without tag or digest; the first in the base's order).
fn base_version<'a>(base: &'a Base, img: &ResolvedImage) -> Option<&'a BaseImage> {
    let same = |b: &&BaseImage| b.reference.normalized() == img.reference.normalized();
    base.images.iter().find(same).or_else(|| {
        base.images
            .iter()
            .find(|b| b.reference.name() == img.reference.name())
    })
}

/// The base patches are made against, and its bundle when `--since` names one (not a
/// bundle.json or a lock), opened once for `base_layers_wanted` and `make`.
pub struct Against<'a> {
    pub base: &'a Base,
    pub bundle: Option<BundleSource>,
}

impl<'a> Against<'a> {
    pub fn open(base: &'a Base) -> Self {
        let bundle = if crate::bundle::delta::is_json_base(&base.path) {
            None
        } else {
            BundleSource::open(&base.path).ok()
        };
        Against { base, bundle }
    }
}

/// The layers a patch is tried for: each new layer (not in `omit`, each once) of an image
/// whose base version has a different layer at the same position.
fn candidates<'a>(
    images: &'a [ResolvedImage],
    base: &'a Base,
    omit: &BTreeSet<Digest>,
) -> Vec<(&'a ResolvedImage, usize, &'a Layer, &'a BaseImage)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for img in images {
        let Some(b) = base_version(base, img) else {
            continue;
        };
        for (i, l) in img.layers.iter().enumerate() {
            if omit.contains(&l.blob.digest) || !seen.insert(l.blob.digest.clone()) {
                continue;
            }
            if b.layers.get(i).is_some_and(|(d, _)| d != &l.blob.digest) {
                out.push((img, i, l, b));
            }
        }
    }
    out
}

/// A base layer a patch needs that neither the base bundle nor the cache holds.
#[derive(Debug, Clone)]
pub struct WantedBaseLayer {
    /// The base image it belongs to (its repository is asked for it).
    pub image: Reference,
    pub blob: Digest,
    pub size: u64,
}

/// The base layers the patches of `make` need that are neither in the base bundle nor in
/// the cache (each once; only the base layer at each candidate's position, and only when
/// the base's diff_ids are known, since without them no patch is made anyway). Base images
/// packed from the engine are not asked of any registry.
pub fn base_layers_wanted(
    images: &[ResolvedImage],
    against: &Against,
    omit: &BTreeSet<Digest>,
    store: &Store,
) -> Vec<WantedBaseLayer> {
    let (base, bundle) = (against.base, against.bundle.as_ref());
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (_, i, _, b) in candidates(images, base, omit) {
        let (blob, size) = &b.layers[i];
        if b.diff_ids.get(i).is_none()
            || b.from_engine
            || bundle.is_some_and(|s| s.blob_size(blob).is_some())
            || store.has(blob, *size)
            || !seen.insert(blob.clone())
        {
            continue;
        }
        out.push(WantedBaseLayer {
            image: b.reference.clone(),
            blob: blob.clone(),
            size: *size,
        });
    }
    out
}

/// Fetch `wanted` base layers by digest from their base image's repository into the cache
/// (streamed, resumed, verified by digest as every pull is). Returns, for each one the
/// registry could not give, why (for the note of the layer carried whole). Cancelled
/// fetches and a failing cache are errors; a registry that is gone, offline or lacks the
/// blob is not.
pub async fn fetch_base_layers(
    client: &Client,
    store: &Store,
    wanted: &[WantedBaseLayer],
    stats: &PullStats,
    reporter: &dyn Reporter,
) -> crate::error::Result<BTreeMap<Digest, String>> {
    let mut failed = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(failed);
    }
    reporter.total(wanted.iter().map(|w| w.size).sum());
    for w in wanted {
        reporter.step(&format!(
            "fetching base layer {} of {} to patch against",
            w.blob, w.image
        ));
        let label = format!("{} (base)", w.image);
        match crate::registry::pull::fetch_blob(client, store, &w.image, &w.blob, w.size, &label)
            .await
        {
            Ok(()) => stats.fetched(w.size),
            Err(e) if client.cancelled() || cache_failed(&e) => {
                return Err(crate::error::Error::new(e).context(format!(
                    "Cannot fetch base layer `{}` of `{}`",
                    w.blob, w.image
                )));
            }
            Err(e) => {
                reporter.warn(&format!(
                    "base layer `{}` of `{}` could not be fetched: {}",
                    w.blob,
                    w.image,
                    messages(&e)
                ));
                failed.insert(w.blob.clone(), messages(&e));
            }
        }
    }
    Ok(failed)
}

/// The cache itself failed (not the registry): cancelled, or a blob that cannot be written.
fn cache_failed(e: &RegistryError) -> bool {
    match e {
        RegistryError::Cancelled | RegistryError::Store(_) => true,
        RegistryError::Blob { source, .. } => source.class() == Class::Environment,
        _ => false,
    }
}

/// An error and its sources, `: `-joined (for a one-line note).
fn messages(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        next = s.source();
    }
    out
}

/// Make the patches of the layers of `images` not in `omit`, against `base`. `unfetched`
/// says why base layers that `fetch_base_layers` could not get are missing.
pub fn make(
    images: &[ResolvedImage],
    against: &Against,
    omit: &BTreeSet<Digest>,
    unfetched: &BTreeMap<Digest, String>,
    store: &Store,
    output: &Path,
    reporter: &dyn Reporter,
) -> crate::error::Result<Made> {
    let (base, base_bundle) = (against.base, against.bundle.as_ref());
    let mut made = Made::default();
    // Where base layers come from: the base bundle (when --since named one), else the cache
    // (where `fetch_base_layers` put those the registry could give).
    let candidates = candidates(images, base, omit);
    if candidates.is_empty() {
        return Ok(made);
    }
    let dir = crate::disk::output_dir(output);
    let tmp = tempfile::Builder::new()
        .prefix(".airlock-patches-")
        .tempdir_in(&dir)
        .map_err(|e| {
            crate::error::Error::environment(format!(
                "Cannot create a temporary directory in `{}` for the layer patches: {e}",
                dir.display()
            ))
        })?;
    for (img, i, layer, b) in candidates {
        let (base_blob, _) = &b.layers[i];
        let Some(base_diff_id) = b.diff_ids.get(i) else {
            made.notes.push(format!(
                "layer {i} of `{}` is carried whole: the diff_ids of base `{}` are unknown (its config is not in the cache)",
                img.reference, b.reference
            ));
            continue;
        };
        let base_reader = match &base_bundle {
            Some(s) if s.blob_size(base_blob).is_some() => Some(s.open(base_blob, 0)?),
            _ if store.size(base_blob).is_some() => {
                Some(Box::new(store.open_blob(base_blob)?) as crate::source::BlobReader)
            }
            _ => None,
        };
        let Some(mut base_reader) = base_reader else {
            let why = match unfetched.get(base_blob) {
                Some(e) => format!("the registry could not give it: {e}"),
                None => "nor from the registry".into(),
            };
            made.notes.push(format!(
                "layer {i} of `{}` is carried whole: base layer `{base_blob}` (of `{}`) is neither in the base bundle nor in the cache, {why}",
                img.reference, b.reference
            ));
            continue;
        };
        reporter.step(&format!(
            "patching layer {i} of {} against {}",
            img.reference, b.reference
        ));
        let base_tar = tmp.path().join("base.tar");
        let new_tar = tmp.path().join("new.tar");
        let (found, _) =
            unpack_layer(&mut base_reader, &base_tar).map_err(|source| PatchedError::Read {
                what: format!("base layer `{base_blob}` of `{}`", b.reference),
                source,
            })?;
        if &found != base_diff_id {
            made.notes.push(format!(
                "layer {i} of `{}` is carried whole: base layer `{base_blob}` unpacks to {found}, not its diff_id {base_diff_id}",
                img.reference
            ));
            continue;
        }
        let (found, size) = unpack_layer(&mut store.open_blob(&layer.blob.digest)?, &new_tar)
            .map_err(|source| PatchedError::Read {
                what: format!("layer `{}` of `{}`", layer.blob.digest, img.reference),
                source,
            })?;
        if found != layer.diff_id {
            return Err(crate::error::Error::failed(format!(
                "Layer `{}` of `{}` in the cache unpacks to {found}, not its diff_id {}",
                layer.blob.digest, img.reference, layer.diff_id
            )));
        }
        let mut w = store.writer_unknown()?;
        let stats = crate::patch::build(&base_tar, base_diff_id, &new_tar, &layer.diff_id, &mut w)
            .map_err(|e| {
                crate::error::Error::new(e).context(format!(
                    "Cannot build the patch of layer {i} of `{}`",
                    img.reference
                ))
            })?;
        let digest = w.commit()?;
        let patch_size = store.size(&digest).unwrap_or(stats.patch_bytes);
        let _ = fs_err::remove_file(&base_tar);
        let _ = fs_err::remove_file(&new_tar);
        if patch_size * KEEP_BELOW.1 >= layer.blob.size * KEEP_BELOW.0 {
            made.notes.push(format!(
                "layer {i} of `{}` is carried whole: its patch ({patch_size} bytes) is not under half the layer ({} bytes)",
                img.reference, layer.blob.size
            ));
            continue;
        }
        made.patches.push(PatchMeta {
            image: img.reference.clone(),
            index: i,
            layer: layer.blob.digest.clone(),
            layer_size: layer.blob.size,
            diff_id: layer.diff_id.clone(),
            size,
            patch: Descriptor::new(crate::patch::MEDIA_TYPE, digest, patch_size),
            base: PatchBase {
                image: b.reference.clone(),
                top: b.top.clone(),
                config: b.config.clone().unwrap_or_else(|| b.top.clone()),
                index: i,
                layer: base_blob.clone(),
                diff_id: base_diff_id.clone(),
            },
        });
    }
    Ok(made)
}
