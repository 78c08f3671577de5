//! Delta bundles: owns reading a base (an earlier bundle, split or not, its `bundle.json`,
//! or the `airlock.lock` it was packed from, whose manifests are then read from the `store`),
//! choosing the blobs a delta leaves out (layers the base holds; manifests and configs are
//! always carried, being small and what makes the delta self-describing), the `base` record of
//! bundle.json, the errors of a delta an engine cannot take (`EngineLacks`, raised by
//! `engine::load`, which owns that check), the check that a delta and its base together are
//! complete (`verify --base`), and `diff`. Knows nothing of engines: data flows from
//! `bundle` to `engine`, never back. Used by `pack`, `cli::verify`, `cli::diff` and
//! `engine::load`.

use super::meta::{BaseMeta, BundleMeta};
use super::read::Bundle;
use super::verify::{Problem, ProblemKind};
use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::image::{Descriptor, Manifest, ResolvedImage};
use crate::reference::Reference;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("Failed to read base `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Base `{}` is not a bundle, a bundle.json or an airlock.lock: {reason}", path.display())]
    Unrecognised { path: PathBuf, reason: String },
    #[error(transparent)]
    Bundle(#[from] super::read::ReadError),
    #[error(
        "Base lock `{}`: manifest `{manifest}` of `{reference}` is not in the cache, so its layers are unknown",
        path.display()
    )]
    LockManifest {
        path: PathBuf,
        reference: String,
        manifest: Digest,
    },
    #[error("{}", missing_message(base, missing))]
    EngineLacks {
        base: String,
        base_images: Vec<String>,
        missing: Vec<MissingLayer>,
    },
    #[error(
        "This delta bundle (base `{base}`) leaves out layers a containerd-store engine must already hold in its content store, and the engine lacks the base image{} {}; nothing was loaded",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", ")
    )]
    ContainerdStore {
        base: String,
        /// The base's images (`ref (top digest)`) the engine lacks by image ID, or the base
        /// itself when the delta records no base image digests.
        missing: Vec<String>,
    },
}

impl Classify for DeltaError {
    fn class(&self) -> Class {
        match self {
            DeltaError::EngineLacks { .. } | DeltaError::ContainerdStore { .. } => Class::Failed,
            DeltaError::Bundle(e) => e.class(),
            _ => Class::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            DeltaError::Bundle(e) => e.hint(),
            DeltaError::LockManifest { .. } => {
                Some("give the base bundle or its bundle.json to `--since` instead".into())
            }
            DeltaError::EngineLacks { base_images, .. } if base_images.is_empty() => {
                Some("load the base bundle first".into())
            }
            DeltaError::EngineLacks { base_images, .. } => Some(format!(
                "load the base bundle first (its images: {})",
                base_images.join(", ")
            )),
            DeltaError::ContainerdStore { .. } => Some(
                "load the base bundle first (its images must be on the engine by digest), or pack a full bundle".into(),
            ),
            DeltaError::Read { .. } | DeltaError::Unrecognised { .. } => None,
        }
    }
}

/// A layer a delta image relies on that the engine does not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingLayer {
    /// The delta's image that needs it.
    pub image: String,
    /// Position in the image's layers (0 = bottom).
    pub index: usize,
    pub diff_id: Digest,
    pub blob: Digest,
}

fn missing_message(base: &str, missing: &[MissingLayer]) -> String {
    let mut by_image: BTreeMap<&str, Vec<&MissingLayer>> = BTreeMap::new();
    for m in missing {
        by_image.entry(&m.image).or_default().push(m);
    }
    let mut s = format!(
        "The engine lacks {} layer{} this delta bundle assumes from its base `{base}`; nothing was loaded:",
        missing.len(),
        if missing.len() == 1 { "" } else { "s" }
    );
    for (image, layers) in by_image {
        s.push_str(&format!("\n  image `{image}` needs"));
        for l in layers {
            s.push_str(&format!(
                "\n    layer {} (diff_id `{}`, blob `{}`)",
                l.index, l.diff_id, l.blob
            ));
        }
    }
    s
}

/// What the base provides: its images and every blob they are made of.
#[derive(Debug, Clone)]
pub struct Base {
    /// `sha256:` of the base's bundle.json bytes (or of the lock file).
    pub id: String,
    pub path: PathBuf,
    pub images: Vec<BaseImage>,
    /// The layers this bundle (a patch bundle) carries as patches against its own base.
    pub patches: Vec<super::meta::PatchMeta>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BaseImage {
    #[serde(rename = "ref")]
    pub reference: Reference,
    pub top: Digest,
    /// `None` for a lock base whose manifest is not in the cache (never: that is an error).
    pub config: Option<Digest>,
    /// Layer blobs and their sizes, bottom first.
    pub layers: Vec<(Digest, u64)>,
    /// The layers' diff_ids, bottom first (empty when unknown: a lock base whose config is
    /// not in the cache). Patch bundles need them.
    #[serde(skip)]
    pub diff_ids: Vec<Digest>,
    /// Manifests and configs (small blobs).
    pub other: Vec<(Digest, u64)>,
    /// Packed from the local engine (a built image): no registry has its layers.
    #[serde(skip)]
    pub from_engine: bool,
}

impl Base {
    /// Every blob of every base image: present on a target that loaded the base.
    pub fn blobs(&self) -> BTreeSet<Digest> {
        let mut out = BTreeSet::new();
        for i in &self.images {
            out.insert(i.top.clone());
            out.extend(i.config.iter().cloned());
            out.extend(i.layers.iter().map(|(d, _)| d.clone()));
            out.extend(i.other.iter().map(|(d, _)| d.clone()));
        }
        out
    }

    fn from_meta(id: String, path: &Path, meta: &BundleMeta) -> Base {
        Base {
            id,
            path: path.to_path_buf(),
            images: meta
                .images
                .iter()
                .map(|i| BaseImage {
                    reference: i.reference.clone(),
                    top: i.top.digest.clone(),
                    config: Some(i.config.digest.clone()),
                    layers: i
                        .layers
                        .iter()
                        .map(|l| (l.blob.digest.clone(), l.blob.size))
                        .collect(),
                    diff_ids: i.layers.iter().map(|l| l.diff_id.clone()).collect(),
                    other: vec![
                        (i.manifest.digest.clone(), i.manifest.size),
                        (i.config.digest.clone(), i.config.size),
                        (i.top.digest.clone(), i.top.size),
                    ],
                    from_engine: i.source == "engine",
                })
                .collect(),
            patches: meta.patches().to_vec(),
        }
    }
}

/// Whether `path` is a JSON base (a bundle.json or a lock) rather than a bundle.
pub fn is_json_base(path: &Path) -> bool {
    if super::parts::is_split(path) {
        return false;
    }
    let mut head = [0u8; 1];
    fs_err::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .is_ok_and(|n| n == 1 && (head[0] == b'{' || head[0].is_ascii_whitespace()))
}

/// Read a base: a bundle (plain, compressed or split), its `bundle.json`, or an
/// `airlock.lock` (its manifests are read from `store`, where the pack that wrote the lock
/// left them).
pub fn load_base(path: &Path, store: Option<&crate::store::Store>) -> Result<Base, DeltaError> {
    let read_err = |source| DeltaError::Read {
        path: path.to_path_buf(),
        source,
    };
    if !super::parts::is_split(path) {
        let mut head = [0u8; 1];
        let mut f = fs_err::File::open(path).map_err(read_err)?;
        let n = std::io::Read::read(&mut f, &mut head).map_err(read_err)?;
        if n == 1 && (head[0] == b'{' || head[0].is_ascii_whitespace()) {
            let len = f.metadata().map_err(read_err)?.len();
            if len > super::read::JSON_LIMIT {
                return Err(DeltaError::Unrecognised {
                    path: path.to_path_buf(),
                    reason: "a JSON file larger than 20 MiB".into(),
                });
            }
            let bytes = fs_err::read(path).map_err(read_err)?;
            return from_json(path, &bytes, store);
        }
    }
    let bundle = Bundle::open(path)?;
    let meta = bundle.open_meta()?;
    Ok(Base::from_meta(meta.id().to_string(), path, &meta.meta))
}

fn from_json(
    path: &Path,
    bytes: &[u8],
    store: Option<&crate::store::Store>,
) -> Result<Base, DeltaError> {
    // Which of the two it is, by its keys; then parsed as that.
    let keys: BTreeMap<String, serde::de::IgnoredAny> =
        serde_json::from_slice(bytes).map_err(|e| DeltaError::Unrecognised {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let id = Digest::of(bytes).to_string();
    if keys.contains_key("format") {
        let meta: BundleMeta =
            serde_json::from_slice(bytes).map_err(|e| DeltaError::Unrecognised {
                path: path.to_path_buf(),
                reason: format!("not a bundle.json: {e}"),
            })?;
        return Ok(Base::from_meta(id, path, &meta));
    }
    if keys.contains_key("version") && keys.contains_key("images") {
        let lock: crate::lock::Lock =
            serde_json::from_slice(bytes).map_err(|e| DeltaError::Unrecognised {
                path: path.to_path_buf(),
                reason: format!("not an airlock.lock: {e}"),
            })?;
        let mut images = Vec::new();
        for (reference, locked) in &lock.images {
            let manifest = store
                .and_then(|s| read_manifest(s, &locked.manifest))
                .ok_or_else(|| DeltaError::LockManifest {
                    path: path.to_path_buf(),
                    reference: reference.clone(),
                    manifest: locked.manifest.clone(),
                })?;
            let (config, layers) = manifest;
            let diff_ids = store
                .and_then(|s| s.read_small(&config.0, super::read::JSON_LIMIT).ok())
                .and_then(|b| crate::image::Config::parse(&b).ok())
                .and_then(|c| c.diff_ids().ok().map(<[Digest]>::to_vec))
                .filter(|d| d.len() == layers.len())
                .unwrap_or_default();
            let reference = Reference::parse(reference).map_err(|e| DeltaError::Unrecognised {
                path: path.to_path_buf(),
                reason: format!("not an airlock.lock: {e}"),
            })?;
            images.push(BaseImage {
                reference,
                top: locked.top.digest.clone(),
                config: Some(config.0.clone()),
                layers,
                diff_ids,
                other: vec![(locked.manifest.clone(), 0), config],
                from_engine: false,
            });
        }
        return Ok(Base {
            id,
            path: path.to_path_buf(),
            images,
            patches: Vec::new(),
        });
    }
    Err(DeltaError::Unrecognised {
        path: path.to_path_buf(),
        reason: "JSON without `format` (bundle.json) or `version` and `images` (airlock.lock)"
            .into(),
    })
}

type Blob = (Digest, u64);

/// Config and layers of an image manifest in the store.
fn read_manifest(store: &crate::store::Store, digest: &Digest) -> Option<(Blob, Vec<Blob>)> {
    let mut bytes = Vec::new();
    let f = store.open_blob(digest).ok()?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(f, super::read::JSON_LIMIT),
        &mut bytes,
    )
    .ok()?;
    if &Digest::of(&bytes) != digest {
        return None;
    }
    let manifest = Manifest::parse(&bytes).ok()?;
    let blob = |d: &Descriptor| (d.digest.clone(), d.size);
    Some((
        blob(&manifest.config),
        manifest.layers.iter().map(blob).collect(),
    ))
}

/// Blobs a delta of `images` over `base` leaves out: the layers the base holds.
pub fn omitted(images: &[ResolvedImage], base: &Base) -> BTreeSet<Digest> {
    let have: BTreeSet<Digest> = base
        .images
        .iter()
        .flat_map(|i| i.layers.iter().map(|(d, _)| d.clone()))
        .collect();
    images
        .iter()
        .flat_map(|i| i.layers.iter())
        .filter(|l| have.contains(&l.blob.digest))
        .map(|l| l.blob.digest.clone())
        .collect()
}

/// The `base` record of the delta's bundle.json.
pub fn base_meta(base: &Base, omitted: &BTreeSet<Digest>) -> BaseMeta {
    BaseMeta {
        id: base.id.clone(),
        assumed: omitted.iter().cloned().collect(),
        images: base.images.iter().map(|i| i.reference.clone()).collect(),
        tops: base.images.iter().map(|i| i.top.clone()).collect(),
        patches: Vec::new(),
    }
}

/// `verify DELTA --base BASE`: the base is the one the delta names, and together they hold
/// every blob of every image of the delta.
pub fn check_with_base(delta: &BundleMeta, base: &Base) -> (Vec<Problem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let Some(record) = &delta.base else {
        notes.push(format!(
            "the bundle is not a delta; `--base {}` was not needed",
            base.path.display()
        ));
        return (problems, notes);
    };
    if record.id != base.id {
        notes.push(format!(
            "the delta was packed against base `{}`, `{}` is `{}` (a different bundle, or the lock or bundle.json of the same one); checked by blobs",
            record.id,
            base.path.display(),
            base.id
        ));
    }
    let have = base.blobs();
    for d in &record.assumed {
        if !have.contains(d) {
            let image = delta
                .images
                .iter()
                .find(|i| i.layers.iter().any(|l| &l.blob.digest == d))
                .map(|i| i.reference.to_string());
            problems.push(Problem {
                kind: ProblemKind::MissingFile,
                file: Some(format!("blobs/sha256/{}", d.hex())),
                blob: Some(d.clone()),
                image: image.clone(),
                message: format!(
                    "blob `{d}`{} is neither in the delta nor in base `{}`",
                    image
                        .map(|i| format!(" (a layer of `{i}`)"))
                        .unwrap_or_default(),
                    base.path.display()
                ),
            });
        }
    }
    (problems, notes)
}

/// `airlock diff A B`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diff {
    pub added: Vec<DiffImage>,
    pub removed: Vec<DiffImage>,
    pub changed: Vec<Changed>,
    pub unchanged: Vec<DiffImage>,
    pub layers: LayerStats,
    /// Every distinct layer of B that A lacks: its size as a layer and, when B is a patch
    /// bundle carrying it as a patch, its size as a patch.
    pub new_layers: Vec<NewLayer>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NewLayer {
    /// The (first) image of B with this layer, and its position there.
    #[serde(rename = "ref")]
    pub reference: String,
    pub index: usize,
    pub digest: Digest,
    /// Bytes of the layer blob.
    pub size: u64,
    /// Bytes of its patch (B carries it as a patch), else null.
    pub patch_size: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffImage {
    #[serde(rename = "ref")]
    pub reference: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Changed {
    /// The reference in B.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The reference in A (differs when the upgrade changed the tag).
    pub old_ref: String,
    pub old: Digest,
    pub new: Digest,
    /// Layers of the new image that A already holds.
    pub layers_shared: usize,
    /// Layers of the new image A lacks.
    pub layers_new: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LayerStats {
    /// Distinct layer blobs of B that A also holds, and their bytes.
    pub shared: u64,
    pub shared_bytes: u64,
    /// Distinct layer blobs of B that A lacks, and their bytes: what a delta carries.
    pub new: u64,
    pub new_bytes: u64,
    /// Bytes of all distinct layers of B (a full bundle of B).
    pub total_bytes: u64,
    /// Layer bytes a delta of B over A saves against a full bundle of B (`shared_bytes`).
    pub delta_saves: u64,
    /// New layers B carries as patches, the bytes of those layers and of their patches.
    pub patched: u64,
    pub patched_layer_bytes: u64,
    pub patch_bytes: u64,
}

/// Compare two image sets: the same normalised reference, or else (an upgrade that changes
/// the tag) the same repository, is one image; its top-level digest says whether it changed.
pub fn diff(a: &Base, b: &Base) -> Diff {
    let a_layers: BTreeSet<&Digest> = a
        .images
        .iter()
        .flat_map(|i| i.layers.iter().map(|(d, _)| d))
        .collect();
    let mut out = Diff {
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        unchanged: Vec::new(),
        layers: LayerStats::default(),
        new_layers: Vec::new(),
    };
    let mut a_left: Vec<&BaseImage> = a.images.iter().collect();
    let mut pairs: Vec<(Option<&BaseImage>, &BaseImage)> = Vec::new();
    let mut b_left = Vec::new();
    for bi in &b.images {
        match a_left
            .iter()
            .position(|ai| ai.reference.normalized() == bi.reference.normalized())
        {
            Some(i) => pairs.push((Some(a_left.remove(i)), bi)),
            None => b_left.push(bi),
        }
    }
    for bi in b_left {
        let repo = bi.reference.name();
        match a_left.iter().position(|ai| ai.reference.name() == repo) {
            Some(i) => pairs.push((Some(a_left.remove(i)), bi)),
            None => pairs.push((None, bi)),
        }
    }
    for (ai, bi) in pairs {
        match ai {
            None => out.added.push(DiffImage {
                reference: bi.reference.to_string(),
                digest: bi.top.clone(),
            }),
            Some(ai)
                if ai.top == bi.top && ai.reference.normalized() == bi.reference.normalized() =>
            {
                out.unchanged.push(DiffImage {
                    reference: bi.reference.to_string(),
                    digest: bi.top.clone(),
                })
            }
            Some(ai) => {
                let shared = bi
                    .layers
                    .iter()
                    .filter(|(d, _)| a_layers.contains(d))
                    .count();
                out.changed.push(Changed {
                    reference: bi.reference.to_string(),
                    old_ref: ai.reference.to_string(),
                    old: ai.top.clone(),
                    new: bi.top.clone(),
                    layers_shared: shared,
                    layers_new: bi.layers.len() - shared,
                });
            }
        }
    }
    for ai in a_left {
        out.removed.push(DiffImage {
            reference: ai.reference.to_string(),
            digest: ai.top.clone(),
        });
    }
    let mut seen = BTreeSet::new();
    for (d, size) in b.images.iter().flat_map(|i| i.layers.iter()) {
        if !seen.insert(d) {
            continue;
        }
        out.layers.total_bytes += size;
        if a_layers.contains(d) {
            out.layers.shared += 1;
            out.layers.shared_bytes += size;
        } else {
            out.layers.new += 1;
            out.layers.new_bytes += size;
        }
    }
    let mut seen = BTreeSet::new();
    for img in &b.images {
        for (index, (d, size)) in img.layers.iter().enumerate() {
            if a_layers.contains(d) || !seen.insert(d) {
                continue;
            }
            let patch_size = b
                .patches
                .iter()
                .find(|p| &p.layer == d)
                .map(|p| p.patch.size);
            if let Some(p) = patch_size {
                out.layers.patched += 1;
                out.layers.patched_layer_bytes += size;
                out.layers.patch_bytes += p;
            }
            out.new_layers.push(NewLayer {
                reference: img.reference.to_string(),
                index,
                digest: d.clone(),
                size: *size,
                patch_size,
            });
        }
    }
    out.layers.delta_saves = out.layers.shared_bytes;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn img(r: &str, top: u8, layers: &[u8]) -> BaseImage {
        BaseImage {
            reference: r.parse().unwrap(),
            top: d(top),
            config: Some(d(top + 100)),
            layers: layers.iter().map(|l| (d(*l), 10 * *l as u64)).collect(),
            diff_ids: Vec::new(),
            other: Vec::new(),
            from_engine: false,
        }
    }

    fn base(images: Vec<BaseImage>) -> Base {
        Base {
            id: "x".into(),
            path: "x".into(),
            images,
            patches: Vec::new(),
        }
    }

    #[test]
    fn diff_counts_added_removed_changed_and_bytes() {
        let a = base(vec![
            img("base:1", 1, &[1]),
            img("app:1", 2, &[1, 2]),
            img("old:1", 3, &[9]),
        ]);
        let b = base(vec![
            img("base:1", 1, &[1]),
            img("app:1", 4, &[1, 3]),
            img("new:1", 5, &[4]),
        ]);
        let diff = diff(&a, &b);
        assert_eq!(diff.added.len(), 1);
        assert_eq!(diff.removed[0].reference, "old:1");
        assert_eq!(diff.changed[0].old, d(2));
        assert_eq!(diff.changed[0].new, d(4));
        assert_eq!(
            (diff.changed[0].layers_shared, diff.changed[0].layers_new),
            (1, 1)
        );
        assert_eq!(diff.unchanged.len(), 1);
        assert_eq!(diff.layers.shared, 1);
        assert_eq!(diff.layers.shared_bytes, 10);
        assert_eq!(diff.layers.new_bytes, 30 + 40);
        assert_eq!(diff.layers.delta_saves, 10);
    }

    #[test]
    fn a_new_tag_of_the_same_repository_is_a_change() {
        let a = base(vec![img("app:1", 2, &[1, 2])]);
        let b = base(vec![img("app:2", 4, &[1, 3])]);
        let diff = diff(&a, &b);
        assert!(diff.added.is_empty() && diff.removed.is_empty(), "{diff:?}");
        assert_eq!(diff.changed[0].old_ref, "app:1");
        assert_eq!(diff.changed[0].reference, "app:2");
    }

    #[test]
    fn lock_base_without_cached_manifest_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("airlock.lock");
        fs_err::write(
            &lock,
            format!(
                r#"{{"version":1,"created":"x","platform":"linux/amd64","images":{{"app:1":{{"normalized":"docker.io/library/app:1","top":{{"mediaType":"m","digest":"{}","size":1}},"manifest":"{}","platform":"linux/amd64"}}}}}}"#,
                d(1),
                d(2)
            ),
        )
        .unwrap();
        let store = crate::store::Store::open(dir.path().join("cache")).unwrap();
        let e = load_base(&lock, Some(&store)).unwrap_err();
        assert!(matches!(e, DeltaError::LockManifest { .. }), "{e}");
        assert!(e.to_string().contains("app:1"), "{e}");
    }

    #[test]
    fn not_a_base() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        fs_err::write(&p, "{\"a\":1}").unwrap();
        assert!(matches!(
            load_base(&p, None),
            Err(DeltaError::Unrecognised { .. })
        ));
    }
}
