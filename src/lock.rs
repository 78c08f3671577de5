//! The lock file (`airlock.lock`): owns its JSON format, reading, writing (temporary name
//! then rename) and the staleness check against a plan. Each reference (as the compose files
//! write it) maps to its top-level digest, platform manifest digest and platform; `created`
//! is reused by `pack --locked` so two packs from one lock give byte-identical bundles.
//! Written by `cli::lock`, read by `cli::pack`; pins go to `registry::resolve`.
//! Also owns the small UTC calendar helpers (RFC 3339 times) the crate needs.

use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::image::{Descriptor, ResolvedImage};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::image::Pin;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "airlock.lock";
pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("Failed to read lock file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to write lock file `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Lock file `{}` is not valid: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("Lock file `{}` is stale: {reason}", path.display())]
    Stale {
        path: PathBuf,
        reference: String,
        reason: String,
    },
}

impl Classify for LockError {
    fn class(&self) -> Class {
        match self {
            LockError::Write { .. } => Class::Environment,
            _ => Class::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            LockError::Stale { .. } => Some("run `airlock lock` again to update it".into()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lock {
    pub version: u32,
    /// RFC 3339 UTC; becomes `created` of bundles packed with `--locked`.
    pub created: String,
    /// The platform every image was resolved for, written `os/arch[/variant]`.
    #[serde(with = "crate::platform::as_text")]
    pub platform: Platform,
    /// Reference as written -> what it resolved to.
    pub images: BTreeMap<String, LockedImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedImage {
    pub normalized: String,
    /// The top-level object (index or manifest) the reference resolved to.
    pub top: Descriptor,
    /// The platform manifest chosen.
    pub manifest: Digest,
    #[serde(with = "crate::platform::as_text")]
    pub platform: Platform,
}

impl Lock {
    pub fn from_images(images: &[ResolvedImage], platform: &Platform, created: String) -> Lock {
        let images = images
            .iter()
            .map(|i| {
                let top = Descriptor::new(&i.top.media_type, i.top.digest.clone(), i.top.size);
                (
                    i.reference.original().to_string(),
                    LockedImage {
                        normalized: i.reference.normalized(),
                        top,
                        manifest: i.manifest.digest.clone(),
                        platform: i.platform.clone(),
                    },
                )
            })
            .collect();
        Lock {
            version: LOCK_VERSION,
            created,
            platform: platform.clone(),
            images,
        }
    }

    pub fn read(path: &Path) -> Result<Lock, LockError> {
        let bytes = fs_err::read(path).map_err(|source| LockError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let lock: Lock = serde_json::from_slice(&bytes).map_err(|e| LockError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "version {} is not supported (expected {LOCK_VERSION})",
                    lock.version
                ),
            });
        }
        Ok(lock)
    }

    /// Write pretty JSON to a temporary name next to `path`, then rename.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let err = |source| LockError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        text.push('\n');
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".airlock.lock.")
            .tempfile_in(dir)
            .map_err(err)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// Fail unless the lock covers exactly `refs` for `platform`.
    pub fn check(
        &self,
        path: &Path,
        refs: &[Reference],
        platform: &Platform,
    ) -> Result<(), LockError> {
        let stale = |reference: &str, reason: String| LockError::Stale {
            path: path.to_path_buf(),
            reference: reference.to_string(),
            reason,
        };
        if self.platform != *platform {
            return Err(stale(
                "",
                format!(
                    "it was made for platform `{}`, not `{platform}`",
                    self.platform
                ),
            ));
        }
        for r in refs {
            match self.images.get(r.original()) {
                None => return Err(stale(r.original(), format!("`{r}` is not in it"))),
                Some(l) if r.digest().is_some_and(|d| *d != l.top.digest) => {
                    return Err(stale(
                        r.original(),
                        format!("`{r}` now names another digest than `{}`", l.top.digest),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = self
            .images
            .keys()
            .find(|k| !refs.iter().any(|r| r.original() == k.as_str()))
        {
            return Err(stale(
                extra,
                format!("`{extra}` is locked but no longer in the plan"),
            ));
        }
        Ok(())
    }

    pub fn pin(&self, r: &Reference) -> Option<Pin> {
        self.images.get(r.original()).map(|l| Pin {
            top: l.top.digest.clone(),
            manifest: l.manifest.clone(),
        })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// RFC 3339 UTC (`2026-11-27T07:00:00Z`) of seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Now, as RFC 3339 UTC (whole seconds).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(784111777), "1994-11-06T08:49:37Z");
        assert_eq!(rfc3339(1709251199), "2024-02-29T23:59:59Z");
        assert_eq!(days_from_civil(2024, 2, 29) * 86400 + 86399, 1709251199);
    }

    #[test]
    fn stale_checks() {
        let d = Digest::of(b"x");
        let mut images = BTreeMap::new();
        images.insert(
            "a:1".to_string(),
            LockedImage {
                normalized: "docker.io/library/a:1".into(),
                top: Descriptor::new("m", d.clone(), 1),
                manifest: d.clone(),
                platform: "linux/amd64".parse().unwrap(),
            },
        );
        let lock = Lock {
            version: 1,
            created: "x".into(),
            platform: "linux/amd64".parse().unwrap(),
            images,
        };
        let p = Path::new("airlock.lock");
        let amd = Platform::linux_amd64();
        let r = |s: &str| Reference::parse(s).unwrap();
        assert!(lock.check(p, &[r("a:1")], &amd).is_ok());
        let e = lock.check(p, &[r("a:1"), r("b:2")], &amd).unwrap_err();
        assert!(e.to_string().contains("`b:2`"), "{e}");
        let e = lock.check(p, &[], &amd).unwrap_err();
        assert!(e.to_string().contains("`a:1`"), "{e}");
        assert!(
            lock.check(p, &[r("a:1")], &"linux/arm64".parse().unwrap())
                .is_err()
        );
        assert_eq!(lock.pin(&r("a:1")).unwrap().manifest, d);
    }
}
