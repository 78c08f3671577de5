//! The image model every medium shares. Owns:
//! - `Descriptor` (media type, digest, size) and `media` (the OCI and Docker media types);
//! - `Manifest` (OCI image manifest, Docker schema 2), `Index` (OCI index, Docker manifest
//!   list), `Links` (the lenient "what does it point to" of either, for walking stored
//!   content) and `Config` (the image config: platform, `rootfs.diff_ids`, history);
//! - `ArchiveEntry`, the `manifest.json` of a `docker save` archive;
//! - `ResolvedImage` (one reference resolved to its top-level index/manifest, platform
//!   manifest, config and layers), `Pin` (the digests a lock fixes) and `chain_ids`.
//!
//! The bytes are authoritative: parsers read bytes as received and a digest is always of
//! those bytes, never of a re-serialisation. The size limits are the readers' (registry,
//! store, bundle), which hand whole small objects to these parsers.
//! `registry` and `engine` produce `ResolvedImage`s, `store` holds the bytes, `bundle`
//! writes and reads them, `serve` and `engine::load` consume them.
//!
//! Owned rather than `oci-spec`: airlock must read Docker media types and registry bytes
//! leniently (optional `mediaType`, unknown fields, missing `manifests`), which
//! `oci-spec`'s OCI-only, validating types refuse or would re-serialise differently.

use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;
use std::collections::BTreeMap;

mod archive;
mod chain;
mod config;
mod manifest;
pub mod media;
mod pin;

pub use archive::ArchiveEntry;
pub use chain::chain_ids;
pub use config::{Config, History, RootFs};
pub use manifest::{Index, Link, Links, Manifest};
pub use pin::Pin;

/// Bytes that do not parse as the object expected.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not JSON at all (or cut short).
    #[error("{0}")]
    Syntax(serde_json::Error),
    /// JSON, but not of the expected shape.
    #[error("{0}")]
    Shape(String),
}

impl From<serde_json::Error> for ImageError {
    fn from(e: serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => ImageError::Shape(e.to_string()),
            _ => ImageError::Syntax(e),
        }
    }
}

/// `value` as compact JSON with sorted keys: the form airlock writes the manifests, indexes
/// and archive lists it creates in, so the same content always gives the same bytes.
fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // A `Value` keeps object keys sorted; every type here has string keys, so neither step fails.
    let sorted = serde_json::to_value(value).expect("image JSON has string keys");
    serde_json::to_vec(&sorted).expect("a JSON value serialises")
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
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
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
