//! The `docker save` archive's `manifest.json` (Docker's image archive format, which the
//! engine's `POST /images/load` reads): one entry per image, naming its config and layer
//! files inside the archive and the tags to give it.

/// One entry of `manifest.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
    /// Kept as is, opaque (foreign layers' descriptors); airlock never writes it.
    #[serde(
        rename = "LayerSources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub layer_sources: Option<serde_json::Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(<Option<Vec<String>> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

impl ArchiveEntry {
    /// Parse `manifest.json`.
    pub fn parse_list(bytes: &[u8]) -> Result<Vec<ArchiveEntry>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// `manifest.json` of `entries`: compact, keys in the order `docker save` sorts them.
    pub fn list_bytes(entries: &[ArchiveEntry]) -> Vec<u8> {
        super::canonical_json(&entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_like_the_hand_built_json() {
        let e = ArchiveEntry {
            config: "blobs/sha256/c".into(),
            repo_tags: vec!["redis:7".into()],
            layers: vec!["blobs/sha256/l".into()],
            layer_sources: None,
        };
        let by_hand = serde_json::to_vec(&vec![serde_json::json!({
            "Config": "blobs/sha256/c", "RepoTags": ["redis:7"], "Layers": ["blobs/sha256/l"]
        })])
        .unwrap();
        assert_eq!(ArchiveEntry::list_bytes(std::slice::from_ref(&e)), by_hand);
        assert_eq!(ArchiveEntry::parse_list(&by_hand).unwrap(), vec![e]);
        let null_tags = br#"[{"Config":"c","RepoTags":null,"Layers":[]}]"#;
        assert!(
            ArchiveEntry::parse_list(null_tags).unwrap()[0]
                .repo_tags
                .is_empty()
        );
    }
}
