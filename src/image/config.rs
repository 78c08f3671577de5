//! The image config (OCI image config, Docker image JSON): the fields airlock reads, which
//! are the platform (`os`, `architecture`, `variant`), `rootfs.diff_ids` and `history`.
//! Other fields are ignored on reading; the config is never written back (its bytes, as
//! received, are what the manifest's digest names).

use super::ImageError;
use crate::digest::Digest;
use crate::platform::Platform;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Config {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    /// Absent in malformed configs; `diff_ids` reports that as an error.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
    #[serde(default)]
    pub history: Vec<History>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The sha256 of each layer uncompressed, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// One build step; `empty_layer` steps made no layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct History {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub empty_layer: bool,
}

impl Config {
    /// Parse config bytes. The size limit is the reader's (a config is read whole).
    pub fn parse(bytes: &[u8]) -> Result<Config, ImageError> {
        serde_json::from_slice(bytes).map_err(ImageError::from)
    }

    /// `rootfs.diff_ids`; an error when the config has no `rootfs`.
    pub fn diff_ids(&self) -> Result<&[Digest], ImageError> {
        self.rootfs
            .as_ref()
            .map(|r| r.diff_ids.as_slice())
            .ok_or_else(|| ImageError::Shape("missing field `rootfs`".into()))
    }

    /// The platform the config declares (normalised; empty parts stay empty).
    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }

    /// Whether the config names an OS at all (engine exports may leave it out).
    pub fn has_platform(&self) -> bool {
        !self.os.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_airlock_needs() {
        let d = Digest::of(b"layer");
        let c = Config::parse(
            format!(
                r#"{{"os":"linux","architecture":"aarch64","config":{{"Env":[]}},
                "rootfs":{{"type":"layers","diff_ids":["{d}"]}},
                "history":[{{"created_by":"RUN x"}},{{"empty_layer":true}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.platform().to_string(), "linux/arm64");
        assert_eq!(c.diff_ids().unwrap(), &[d]);
        assert_eq!(c.history.iter().filter(|h| !h.empty_layer).count(), 1);
        let bare = Config::parse(b"{}").unwrap();
        assert!(!bare.has_platform());
        assert!(bare.diff_ids().is_err());
        assert!(Config::parse(br#"{"rootfs":{"diff_ids":["nope"]}}"#).is_err());
    }
}
