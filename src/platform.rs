//! Platforms: owns `Platform` (`os/arch[/variant]`), its normalisation (containerd's rules:
//! `aarch64`->`arm64`, `arm64/v8`->`arm64`, `arm`->`arm/v7`, `x86_64`->`amd64`) and the
//! matcher that picks a manifest out of an index. Used by `registry`, `bundle`, `plan`.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid platform `{0}`: expected `os/arch[/variant]`, for example `linux/amd64` or `linux/arm64/v8`"
)]
pub struct PlatformError(pub String);

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
        .normalized()
    }

    pub fn linux_amd64() -> Self {
        Platform::new("linux", "amd64", None)
    }

    /// The platform this binary runs on, as a Docker engine would name it.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "arm" => "arm",
            "x86" => "386",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// containerd's normalisation.
    pub fn normalized(&self) -> Self {
        let os = self.os.to_ascii_lowercase();
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self
            .variant
            .as_deref()
            .map(str::to_ascii_lowercase)
            .filter(|v| !v.is_empty());
        let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
            ("i386", _) => ("386".to_string(), None),
            ("x86_64" | "x86-64" | "amd64", Some("v1") | None) => ("amd64".to_string(), None),
            ("x86_64" | "x86-64", v) => ("amd64".to_string(), v.map(str::to_string)),
            ("aarch64" | "arm64", Some("8" | "v8") | None) => ("arm64".to_string(), None),
            ("aarch64", v) => ("arm64".to_string(), v.map(str::to_string)),
            ("armhf", _) => ("arm".to_string(), Some("v7".to_string())),
            ("armel", _) => ("arm".to_string(), Some("v6".to_string())),
            ("arm", None | Some("7")) => ("arm".to_string(), Some("v7".to_string())),
            ("arm", Some("5" | "6" | "8")) => (
                "arm".to_string(),
                Some(format!("v{}", variant.as_deref().unwrap_or(""))),
            ),
            (a, v) => (a.to_string(), v.map(str::to_string)),
        };
        Platform {
            os,
            architecture: arch,
            variant,
        }
    }

    /// Whether an index entry for `candidate` can run where `self` is wanted.
    /// Exact (normalised) match, or a lower arm variant on arm.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let want = self.normalized();
        let have = candidate.normalized();
        if want.os != have.os || want.architecture != have.architecture {
            return false;
        }
        if want.variant == have.variant {
            return true;
        }
        if want.architecture == "arm" {
            let level = |v: &Option<String>| {
                v.as_deref()
                    .and_then(|v| v.trim_start_matches('v').parse::<u32>().ok())
            };
            if let (Some(w), Some(h)) = (level(&want.variant), level(&have.variant)) {
                return h <= w;
            }
        }
        false
    }

    /// Ranking among matching entries: lower is better (exact variant first).
    pub fn distance(&self, candidate: &Platform) -> u32 {
        let want = self.normalized();
        let have = candidate.normalized();
        if want.variant == have.variant {
            return 0;
        }
        let level = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.trim_start_matches('v').parse::<u32>().ok())
                .unwrap_or(0)
        };
        1 + level(&want.variant).saturating_sub(level(&have.variant))
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

/// Serde for a `Platform` written as its text, `os/arch[/variant]` (bundle metadata, lock
/// files), rather than as the OCI object: `#[serde(with = "crate::platform::as_text")]`.
/// Reading parses (and so normalises) it; text that is not a platform is an error.
pub mod as_text {
    use super::Platform;
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(p: &Platform, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(p)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Platform, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn normalises() {
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/amd64/v1").to_string(), "linux/amd64");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
    }

    #[test]
    fn matching() {
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/arm/v7").matches(&p("linux/arm/v6")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!(!p("linux/amd64").matches(&p("unknown/unknown")));
    }

    #[test]
    fn as_text_round_trips() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Meta {
            #[serde(with = "as_text")]
            platform: Platform,
        }
        let m: Meta = serde_json::from_str(r#"{"platform":"linux/arm/v7"}"#).unwrap();
        assert_eq!(m.platform, p("linux/arm/v7"));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"platform":"linux/arm/v7"}"#
        );
        let bad = serde_json::from_str::<Meta>(r#"{"platform":"linux"}"#)
            .err()
            .unwrap();
        assert!(
            bad.to_string().contains("invalid platform `linux`"),
            "{bad}"
        );
    }

    #[test]
    fn rejects() {
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }
}
