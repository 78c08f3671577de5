//! Manifests and indexes: `Manifest` (OCI image manifest, Docker schema 2 manifest),
//! `Index` (OCI index, Docker manifest list), read strictly from the bytes as received, and
//! `Links`, the lenient view of "what does this object point to" that walks a bundle whose
//! content may be hostile or damaged. None of them is ever serialised back in place of the
//! bytes it was read from: a digest is always of the bytes as received.

use super::{Descriptor, ImageError, media};
use crate::digest::Digest;
use crate::platform::Platform;
use std::collections::BTreeMap;

/// An image manifest (OCI or Docker schema 2): the config and the layers, bottom first.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    /// Optional in OCI, always given by Docker.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Parse manifest bytes. Unknown fields are ignored; `config` is required.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ImageError> {
        serde_json::from_slice(bytes).map_err(ImageError::from)
    }

    /// A Docker schema 2 manifest for `config` and `layers`, as the bytes to store and digest.
    /// Keys are sorted and the JSON is compact, so the same image always gives the same
    /// bytes (and the same bytes as airlock versions that built the JSON by hand).
    pub fn docker_bytes(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
        let plain = |d: &Descriptor| Descriptor::new(&d.media_type, d.digest.clone(), d.size);
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media::DOCKER_MANIFEST.to_string()),
            config: plain(config),
            layers: layers.iter().map(plain).collect(),
            annotations: BTreeMap::new(),
        };
        super::canonical_json(&m)
    }
}

/// An index (OCI image index or Docker manifest list): one manifest per platform, plus
/// attestations and other artifacts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// Parse registry index bytes. Lenient where registries are: `manifests` and
    /// `schemaVersion` may be absent (an empty index has no manifest for any platform).
    pub fn parse(bytes: &[u8]) -> Result<Index, ImageError> {
        #[derive(serde::Deserialize)]
        struct Lenient {
            #[serde(rename = "schemaVersion", default)]
            schema_version: u32,
            #[serde(rename = "mediaType", default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Vec<Descriptor>,
            #[serde(default)]
            annotations: BTreeMap<String, String>,
        }
        let l: Lenient = serde_json::from_slice(bytes)?;
        Ok(Index {
            schema_version: l.schema_version,
            media_type: l.media_type,
            manifests: l.manifests,
            annotations: l.annotations,
        })
    }

    /// Parse an OCI layout's `index.json` (strict: `schemaVersion` and `manifests` required).
    pub fn parse_layout(bytes: &[u8]) -> Result<Index, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// An OCI index of `manifests`, as bytes (sorted keys, compact).
    pub fn oci_bytes(manifests: Vec<Descriptor>) -> Vec<u8> {
        super::canonical_json(&Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            manifests,
            annotations: BTreeMap::new(),
        })
    }
}

/// One pointer of `Links`: a descriptor whose media type and size may be missing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Link {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// What an index or a manifest points at, for walking stored content (bundles, catalogues):
/// any JSON object reads; fields that are absent read empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Links {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Link>,
    #[serde(default)]
    pub config: Option<Link>,
    #[serde(default)]
    pub layers: Vec<Link>,
}

impl Links {
    pub fn parse(bytes: &[u8]) -> Result<Links, ImageError> {
        serde_json::from_slice(bytes).map_err(ImageError::from)
    }

    /// Whether the object is an index: by `media_type` (the descriptor's) or the document's
    /// own, or by having children.
    pub fn is_index(&self, media_type: &str) -> bool {
        media::is_index(media_type)
            || self.media_type.as_deref().is_some_and(media::is_index)
            || !self.manifests.is_empty()
    }

    /// The config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Link> {
        self.config.iter().chain(self.layers.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_bytes_are_the_hand_built_json() {
        let config = Descriptor::new(media::DOCKER_CONFIG, Digest::of(b"c"), 10);
        let layer = Descriptor::new(media::DOCKER_LAYER_GZIP, Digest::of(b"l"), 20);
        let by_hand = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::DOCKER_MANIFEST,
            "config": {"mediaType": media::DOCKER_CONFIG, "size": 10, "digest": config.digest},
            "layers": [{"mediaType": media::DOCKER_LAYER_GZIP, "size": 20, "digest": layer.digest}],
        }))
        .unwrap();
        assert_eq!(Manifest::docker_bytes(&config, &[layer]), by_hand);
    }

    #[test]
    fn parses_leniently_where_registries_are() {
        let d = Digest::of(b"x");
        let m = Manifest::parse(
            format!(r#"{{"config":{{"mediaType":"a","digest":"{d}","size":1}},"future":[1]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.config.digest, d);
        assert!(m.layers.is_empty());
        assert!(Manifest::parse(br#"{"layers":[]}"#).is_err());
        assert!(Index::parse(b"{}").unwrap().manifests.is_empty());
        assert!(Index::parse_layout(b"{}").is_err());
        let l = Links::parse(format!(r#"{{"layers":[{{"digest":"{d}"}}]}}"#).as_bytes()).unwrap();
        assert_eq!(l.blobs().count(), 1);
        assert!(!l.is_index(media::OCI_MANIFEST));
        assert!(matches!(Links::parse(b"{"), Err(ImageError::Syntax(_))));
        assert!(matches!(Links::parse(br#""x""#), Err(ImageError::Shape(_))));
    }
}
