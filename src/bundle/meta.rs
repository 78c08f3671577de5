//! `airlock/bundle.json`: the bundle's own metadata (docs/bundle-format.md). Written first
//! in the tar by `bundle::write`, read by `inspect` without touching the blobs. References
//! and the platform are typed: they read back parsed, and the JSON is the same as ever.

use crate::digest::Digest;
use crate::image::{Descriptor, Layer};
use crate::platform::Platform;
use crate::reference::Reference;

pub const FORMAT: &str = "airlock.bundle/v1";
pub const META_PATH: &str = "airlock/bundle.json";
pub const SUMS_PATH: &str = "airlock/SHA256SUMS";
pub const SIGNATURE_PATH: &str = "airlock/SHA256SUMS.minisig";
pub const COMPOSE_DIR: &str = "airlock/compose/";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BundleMeta {
    pub format: String,
    pub airlock_version: String,
    /// RFC 3339 UTC.
    pub created: String,
    pub project: String,
    /// The platform the images were chosen for, written `os/arch[/variant]`.
    #[serde(with = "crate::platform::as_text")]
    pub platform: Platform,
    pub compose: ComposeMeta,
    pub images: Vec<ImageMeta>,
    /// Number of distinct blobs carried.
    pub blobs: u64,
    /// Bytes of all blobs carried (as stored, compressed).
    pub size: u64,
    /// Bytes of all layers uncompressed (what the engine needs on disk).
    pub uncompressed_size: u64,
    #[serde(default)]
    pub base: Option<BaseMeta>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComposeMeta {
    /// Compose files, relative to the project directory, in `-f` order (included and extended files too).
    pub files: Vec<String>,
    /// Env files, relative to the project directory.
    pub env_files: Vec<String>,
    /// Profiles enabled when the bundle was packed.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Files the services read at run time (`env_file`, bind-mounted files and directories,
    /// config and secret files), relative to the project directory, carried beside the
    /// compose files so that the project starts offline (see `run_files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageMeta {
    /// The reference as the compose files write it (parsed on reading: a bundle whose
    /// references do not parse does not open).
    #[serde(rename = "ref")]
    pub reference: Reference,
    /// `reference.normalized()`, written for readers of the JSON; airlock reads `reference`.
    pub normalized: String,
    /// Plan kinds that named this reference (`image`, `build-from`, ...).
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
    /// `registry` or `engine`.
    pub source: String,
    pub top: Descriptor,
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Layer>,
    /// Bytes of the layers as stored.
    pub size: u64,
    pub uncompressed_size: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BaseMeta {
    /// Identity of the base bundle (sha256 of its bundle.json).
    pub id: String,
    /// Blobs this bundle relies on without carrying them.
    pub assumed: Vec<Digest>,
    /// References of the base's images (to name what to load first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Reference>,
    /// Top (manifest or index) digests of the base's images, in the order of `images`: on a
    /// containerd-store engine, the image IDs that show the assumed blobs are in its content
    /// store (absent from deltas packed before this field existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tops: Vec<Digest>,
    /// Layers carried as patches against a base layer instead of whole (patch bundles,
    /// docs/bundle-format.md "Patch bundles"): their blobs are neither in the tar nor in
    /// the base; the offline side rebuilds them (`bundle::patched`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PatchMeta>,
}

impl BaseMeta {
    /// The patch that stands in for layer blob `layer`, if any.
    pub fn patch_for(&self, layer: &Digest) -> Option<&PatchMeta> {
        self.patches.iter().find(|p| &p.layer == layer)
    }
}

impl BundleMeta {
    /// Patched layers (empty unless a patch bundle).
    pub fn patches(&self) -> &[PatchMeta] {
        self.base.as_ref().map(|b| &b.patches[..]).unwrap_or(&[])
    }
}

/// One layer carried as a patch: rebuilt offline from `base` and the patch blob, checked
/// against `diff_id`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatchMeta {
    /// The (first) image of this bundle whose layer it is.
    pub image: Reference,
    /// Position of the layer in that image (0 = bottom).
    pub index: usize,
    /// The layer blob (compressed, as the image's manifest names it), not carried.
    pub layer: Digest,
    /// Its size as a blob.
    pub layer_size: u64,
    /// sha256 of the layer's uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar (what the rebuild writes).
    pub size: u64,
    /// The patch blob carried in `blobs/sha256/`.
    pub patch: crate::image::Descriptor,
    /// The base layer the patch applies to.
    pub base: PatchBase,
}

/// The base layer of a patch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatchBase {
    /// The base image whose layer it is.
    pub image: Reference,
    /// The base image's top digest (its image ID on a containerd-store engine) and config
    /// digest (its image ID on a classic-store engine).
    pub top: Digest,
    pub config: Digest,
    /// Position in the base image.
    pub index: usize,
    /// The base layer's blob and its `diff_id`.
    pub layer: Digest,
    pub diff_id: Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle.json as airlock has always written it reads back typed and writes back the same.
    #[test]
    fn reads_typed_and_writes_the_same_json() {
        let d = Digest::of(b"x");
        let desc = format!(r#"{{"mediaType":"m","digest":"{d}","size":1}}"#);
        let text = format!(
            r#"{{"format":"airlock.bundle/v1","airlock_version":"0.1.0","created":"2026-11-27T07:00:00Z","project":"p","platform":"linux/arm/v7","compose":{{"files":[],"env_files":[],"profiles":[]}},"images":[{{"ref":"redis:7","normalized":"docker.io/library/redis:7","kinds":["image"],"services":["cache"],"source":"registry","top":{desc},"manifest":{desc},"config":{desc},"layers":[],"size":0,"uncompressed_size":0}}],"blobs":3,"size":3,"uncompressed_size":0,"base":{{"id":"sha256:x","assumed":[],"images":["app:1"]}}}}"#
        );
        let meta: BundleMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(meta.platform, Platform::new("linux", "arm", Some("v7")));
        assert_eq!(meta.images[0].reference.repository(), "library/redis");
        assert_eq!(meta.base.as_ref().unwrap().images[0].tag(), Some("1"));
        assert_eq!(serde_json::to_string(&meta).unwrap(), text);

        let bad = text.replace("linux/arm/v7", "linux");
        let e = serde_json::from_str::<BundleMeta>(&bad).unwrap_err();
        assert!(e.to_string().contains("invalid platform `linux`"), "{e}");
        let bad = text.replace(r#""ref":"redis:7""#, r#""ref":"Redis:7""#);
        let e = serde_json::from_str::<BundleMeta>(&bad).unwrap_err();
        assert!(e.to_string().contains("Redis:7"), "{e}");
    }
}
