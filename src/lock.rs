//! The lock file (`airlock.lock`): owns its JSON format, reading, writing (temporary name
//! then rename) and the staleness check against a plan. Each reference (as the compose files
//! write it) maps to its top-level digest, platform manifest digest and platform; `created`
//! is reused by `pack --locked` so two packs from one lock give byte-identical bundles.
//! Written by `pack::lock`, read by `pack::pack`; pins go to `registry::resolve`.

use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::image::Pin;
use crate::image::{Descriptor, ResolvedImage};
use crate::platform::Platform;
use crate::reference::Reference;
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

#[cfg(test)]
mod tests {
    use super::*;

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
