//! The image model every medium shares: `Descriptor` (media type, digest, size) and
//! `ResolvedImage` (one reference resolved to its top-level index/manifest, platform
//! manifest, config and layers). `registry` and `engine` produce these, `store` holds the
//! bytes, `bundle` writes and reads them, `serve` and `engine::load` consume them.

use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;
use std::collections::BTreeMap;

pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// The Accept header for manifest requests: every index and manifest type, never schema1.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_LIST
    }
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }
    pub fn is_schema1(mt: &str) -> bool {
        mt == DOCKER_SCHEMA1 || mt == DOCKER_SCHEMA1_SIGNED || mt == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    }
    pub fn is_zstd(mt: &str) -> bool {
        mt.ends_with("+zstd")
    }
}

/// A content descriptor as in OCI manifests and indexes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor { media_type: media_type.to_string(), digest, size, platform: None, annotations: BTreeMap::new() }
    }
}

/// A layer of a resolved image: the blob as stored plus its DiffID (sha256 of the
/// uncompressed tar) and, when known, the uncompressed size.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    #[serde(flatten)]
    pub blob: Descriptor,
    pub diff_id: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_size: Option<u64>,
}

/// One image reference resolved to content for one platform. Every descriptor's bytes are
/// in the store (or the bundle) under its digest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedImage {
    /// The reference as the compose files write it (after interpolation).
    pub reference: Reference,
    /// The top-level object the reference resolved to: an index (original registry bytes)
    /// or a manifest. Its digest is what `name@digest` means.
    pub top: Descriptor,
    /// The platform manifest (equal to `top` when the reference resolved to a manifest).
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Layer>,
    pub platform: Platform,
    /// Other small blobs kept alongside (child manifests of other entries are NOT kept;
    /// attestation manifests and their blobs may be).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<Descriptor>,
}

impl ResolvedImage {
    /// Every blob this image needs, top first, each once.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        let mut out: Vec<&Descriptor> = vec![&self.top];
        if self.manifest.digest != self.top.digest {
            out.push(&self.manifest);
        }
        out.push(&self.config);
        for l in &self.layers {
            if !out.iter().any(|d| d.digest == l.blob.digest) {
                out.push(&l.blob);
            }
        }
        for e in &self.extra {
            if !out.iter().any(|d| d.digest == e.digest) {
                out.push(e);
            }
        }
        out
    }

    /// Compressed bytes of all layers (as stored).
    pub fn layers_size(&self) -> u64 {
        self.layers.iter().map(|l| l.blob.size).sum()
    }

    /// Uncompressed bytes of all layers, when every layer's size is known.
    pub fn uncompressed_size(&self) -> Option<u64> {
        self.layers.iter().map(|l| l.uncompressed_size).sum()
    }
}
