//! Media types of images: the OCI and Docker names of indexes, manifests, configs and
//! layers, the `Accept` header for manifest requests, and the predicates that sort them.

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
    mt == DOCKER_SCHEMA1
        || mt == DOCKER_SCHEMA1_SIGNED
        || mt == "application/vnd.docker.distribution.manifest.v1+prettyjws"
}
pub fn is_zstd(mt: &str) -> bool {
    mt.ends_with("+zstd")
}

/// The media type of manifest bytes: the `mediaType` field, else the Content-Type, else
/// guessed from the shape (OCI makes `mediaType` optional).
pub fn detect(bytes: &[u8], content_type: Option<&str>) -> String {
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<IgnoredAny>,
        config: Option<IgnoredAny>,
    }
    let shape: Option<Shape> = serde_json::from_slice(bytes).ok();
    if let Some(s) = &shape {
        if let Some(mt) = s.media_type.as_ref().filter(|m| !m.is_empty()) {
            return mt.clone();
        }
        if s.schema_version == Some(1) {
            return DOCKER_SCHEMA1.to_string();
        }
    }
    if let Some(ct) = content_type.filter(|c| is_index(c) || is_manifest(c) || is_schema1(c)) {
        return ct.to_string();
    }
    match shape {
        Some(s) if s.manifests.is_some() => OCI_INDEX.to_string(),
        Some(s) if s.config.is_some() => OCI_MANIFEST.to_string(),
        _ => content_type
            .unwrap_or("application/octet-stream")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects() {
        assert_eq!(
            detect(br#"{"schemaVersion":2,"manifests":[]}"#, None),
            OCI_INDEX
        );
        assert_eq!(
            detect(br#"{"schemaVersion":2,"config":{}}"#, None),
            OCI_MANIFEST
        );
        assert_eq!(
            detect(br#"{"schemaVersion":1,"fsLayers":[]}"#, None),
            DOCKER_SCHEMA1
        );
        assert_eq!(
            detect(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#,
                None
            ),
            DOCKER_MANIFEST
        );
        assert_eq!(detect(b"not json", Some(DOCKER_LIST)), DOCKER_LIST);
        assert_eq!(detect(b"not json", None), "application/octet-stream");
    }
}
