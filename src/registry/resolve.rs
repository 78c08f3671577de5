//! Resolution: owns turning a `Reference` into a `ResolvedImage` for one platform:
//! top-level index or manifest (original bytes, digest verified) -> platform manifest
//! (picked with `crate::platform` rules) -> config (read for `rootfs.diff_ids` and the
//! platform) -> layer descriptors. Manifests and configs go into the `store` as they are
//! fetched; objects known by digest are read from the store without asking the registry.
//! Layers are fetched afterwards by `pull`.

use super::RegistryError;
use super::client::{Client, MANIFEST_LIMIT, ReadError, read_limited};
use super::pull::PullStats;
use crate::digest::Digest;
use crate::image::{Config, Descriptor, Index, Layer, Manifest, Pin, ResolvedImage, media};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::Store;
use reqwest::StatusCode;

/// Configs larger than this are refused (real ones are a few kilobytes).
const CONFIG_LIMIT: u64 = 32 << 20;

/// Resolve `r` for `platform`. With `pin`, the digests come from the lock (and must still
/// be served); otherwise a tag is looked up at the registry.
pub async fn resolve(
    client: &Client,
    store: &Store,
    r: &Reference,
    platform: &Platform,
    pin: Option<&Pin>,
    stats: &PullStats,
) -> Result<ResolvedImage, RegistryError> {
    let reference = r.original().to_string();
    // 1. The top-level object.
    let known = pin.map(|p| p.top.clone()).or_else(|| r.digest().cloned());
    let (top_bytes, top_ct) = match known {
        Some(d) => (manifest_by_digest(client, store, r, &d, stats).await?, None),
        None => {
            let tag = r.wire_reference();
            let head = client.head_manifest(r, &tag).await?;
            match head {
                Some((d, size, ct)) if store.has(&d, size) => {
                    stats.cached(size);
                    (store.read_small(&d, MANIFEST_LIMIT)?, Some(ct))
                }
                _ => {
                    let (bytes, ct, header_digest) = client.get_manifest(r, &tag).await?;
                    // The bytes' digest is what counts; every digest the registry claimed
                    // for the tag (HEAD, then GET) must agree with it.
                    let actual = Digest::of(&bytes);
                    let claims = [
                        (
                            head.map(|h| h.0),
                            "the `Docker-Content-Digest` header of HEAD",
                        ),
                        (header_digest, "the `Docker-Content-Digest` header of GET"),
                    ];
                    for (claimed, by) in claims {
                        if let Some(expected) = claimed.filter(|d| *d != actual) {
                            return Err(RegistryError::ManifestDigest {
                                reference,
                                expected,
                                actual,
                                claimed_by: by.to_string(),
                            });
                        }
                    }
                    stats.fetched(bytes.len() as u64);
                    store.put(&bytes)?;
                    (bytes, ct)
                }
            }
        }
    };
    let top_digest = Digest::of(&top_bytes);
    let top_type = media::detect(&top_bytes, top_ct.as_deref());
    let top = Descriptor::new(&top_type, top_digest.clone(), top_bytes.len() as u64);
    if media::is_schema1(&top_type) {
        return Err(RegistryError::Schema1 {
            reference,
            media_type: top_type,
        });
    }

    // 2. The platform manifest.
    let (manifest, manifest_bytes, index_platform) = if media::is_index(&top_type) {
        let index = Index::parse(&top_bytes).map_err(|e| RegistryError::BadManifest {
            reference: reference.clone(),
            digest: top_digest.clone(),
            what: "index".into(),
            message: e.to_string(),
        })?;
        let chosen = match pin {
            Some(p) => index
                .manifests
                .iter()
                .find(|m| m.digest == p.manifest)
                .ok_or_else(|| RegistryError::LockedManifestGone {
                    reference: reference.clone(),
                    digest: p.manifest.clone(),
                })?,
            None => pick_platform(&index.manifests, platform).ok_or_else(|| {
                RegistryError::NoPlatform {
                    reference: reference.clone(),
                    platform: platform.to_string(),
                    available: available(&index.manifests),
                }
            })?,
        };
        let bytes = manifest_by_digest(client, store, r, &chosen.digest, stats).await?;
        if bytes.len() as u64 != chosen.size {
            return Err(RegistryError::BadManifest {
                reference,
                digest: chosen.digest.clone(),
                what: "manifest".into(),
                message: format!("{} bytes, the index says {}", bytes.len(), chosen.size),
            });
        }
        let mt = media::detect(&bytes, Some(&chosen.media_type));
        if media::is_schema1(&mt) {
            return Err(RegistryError::Schema1 {
                reference,
                media_type: mt,
            });
        }
        let mut d = Descriptor::new(&mt, chosen.digest.clone(), chosen.size);
        d.platform = chosen.platform.clone();
        (d, bytes, chosen.platform.clone())
    } else if media::is_manifest(&top_type) {
        if let Some(p) = pin.filter(|p| p.manifest != top_digest) {
            return Err(RegistryError::LockedManifestGone {
                reference,
                digest: p.manifest.clone(),
            });
        }
        (top.clone(), top_bytes.clone(), None)
    } else {
        return Err(RegistryError::MediaType {
            reference,
            media_type: top_type,
        });
    };
    let m = Manifest::parse(&manifest_bytes).map_err(|e| RegistryError::BadManifest {
        reference: reference.clone(),
        digest: manifest.digest.clone(),
        what: "image manifest".into(),
        message: e.to_string(),
    })?;

    // 3. The config.
    let config_bytes = config_blob(client, store, r, &m.config, stats).await?;
    let bad_config = |e: crate::image::ImageError| RegistryError::BadManifest {
        reference: reference.clone(),
        digest: m.config.digest.clone(),
        what: "image config".into(),
        message: e.to_string(),
    };
    let config = Config::parse(&config_bytes).map_err(bad_config)?;
    let diff_ids = config.diff_ids().map_err(bad_config)?.to_vec();
    let config_platform = config.platform();
    let image_platform = match index_platform {
        Some(p) => p.normalized(),
        None => {
            if pin.is_none() && config.has_platform() && !platform.matches(&config_platform) {
                return Err(RegistryError::NoPlatform {
                    reference,
                    platform: platform.to_string(),
                    available: config_platform.to_string(),
                });
            }
            config_platform
        }
    };
    if diff_ids.len() != m.layers.len() {
        return Err(RegistryError::BadManifest {
            reference,
            digest: manifest.digest.clone(),
            what: "image".into(),
            message: format!(
                "the manifest lists {} layers but the config has {} diff_ids",
                m.layers.len(),
                diff_ids.len()
            ),
        });
    }
    let layers = m
        .layers
        .into_iter()
        .zip(diff_ids)
        .map(|(blob, diff_id)| Layer {
            uncompressed_size: None,
            blob: Descriptor {
                platform: None,
                annotations: Default::default(),
                ..blob
            },
            diff_id,
        })
        .collect();
    let config_desc = Descriptor::new(&m.config.media_type, m.config.digest.clone(), m.config.size);
    Ok(ResolvedImage {
        reference: r.clone(),
        top,
        manifest: Descriptor {
            platform: None,
            ..manifest
        },
        config: config_desc,
        layers,
        platform: image_platform,
        extra: Vec::new(),
    })
}

/// The best entry for `want`: matching platforms only (attestations never match), exact
/// variant first, then the index order.
pub fn pick_platform<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, d)| media::is_manifest(&d.media_type) || d.media_type.is_empty())
        .filter_map(|(i, d)| {
            d.platform
                .as_ref()
                .filter(|p| want.matches(p))
                .map(|p| (want.distance(p), i, d))
        })
        .min_by_key(|(dist, i, _)| (*dist, *i))
        .map(|(_, _, d)| d)
}

fn available(entries: &[Descriptor]) -> String {
    let mut v: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| p.normalized().to_string())
        .collect();
    v.dedup();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// A manifest by digest: from the store, else from the registry (verified, then stored).
async fn manifest_by_digest(
    client: &Client,
    store: &Store,
    r: &Reference,
    digest: &Digest,
    stats: &PullStats,
) -> Result<Vec<u8>, RegistryError> {
    if let Some(size) = store.size(digest).filter(|s| *s <= MANIFEST_LIMIT) {
        store.touch(digest);
        stats.cached(size);
        return Ok(store.read_small(digest, MANIFEST_LIMIT)?);
    }
    let (bytes, _, _) = client.get_manifest(r, &digest.to_string()).await?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(RegistryError::ManifestDigest {
            reference: r.original().to_string(),
            expected: digest.clone(),
            actual,
            claimed_by: "the request by digest".to_string(),
        });
    }
    stats.fetched(bytes.len() as u64);
    store.put(&bytes)?;
    Ok(bytes)
}

/// The config blob: from the store, else fetched whole (small), verified and stored.
async fn config_blob(
    client: &Client,
    store: &Store,
    r: &Reference,
    desc: &Descriptor,
    stats: &PullStats,
) -> Result<Vec<u8>, RegistryError> {
    let blob_err = |source| RegistryError::Blob {
        reference: r.original().to_string(),
        digest: desc.digest.clone(),
        source,
    };
    if desc.size > CONFIG_LIMIT {
        return Err(RegistryError::ManifestTooLarge {
            reference: r.original().to_string(),
            what: format!("config {}", desc.digest),
            limit: CONFIG_LIMIT,
        });
    }
    if store.has(&desc.digest, desc.size) {
        stats.cached(desc.size);
        return Ok(store.read_small(&desc.digest, CONFIG_LIMIT)?);
    }
    // Read no more than the descriptor's size (a body that goes on is refused as soon as it
    // passes it); a body cut short is fetched again, like a failed request.
    let mut attempt = 0;
    let bytes = loop {
        attempt += 1;
        let resp = client.get_blob(r, &desc.digest, 0).await?;
        if resp.status() != StatusCode::OK {
            let host = r.api_host().to_string();
            return Err(RegistryError::Status {
                host,
                what: format!("GET config `{}`", desc.digest),
                status: resp.status().as_u16(),
                body: String::new(),
            });
        }
        let too_large = || {
            blob_err(crate::store::StoreError::TooLarge {
                digest: desc.digest.clone(),
                expected: desc.size,
            })
        };
        if resp.content_length().is_some_and(|l| l > desc.size) {
            return Err(too_large());
        }
        match read_limited(resp, desc.size).await {
            Ok(bytes) => break bytes,
            Err(ReadError::TooLarge) => return Err(too_large()),
            Err(ReadError::Http(e)) if attempt < client.options().attempts => {
                let wait = client.retry_wait(None, attempt);
                client.reporter.warn(&format!(
                    "{}: GET config `{}` of `{r}` was cut short ({e}), retrying in {wait:?}",
                    r.api_host(),
                    desc.digest
                ));
                tokio::time::sleep(wait).await;
            }
            Err(ReadError::Http(source)) => {
                return Err(RegistryError::Connect {
                    host: r.api_host().to_string(),
                    what: format!("GET config `{}` of `{r}`", desc.digest),
                    source,
                });
            }
        }
    };
    let actual = Digest::of(&bytes);
    if actual != desc.digest || bytes.len() as u64 != desc.size {
        return Err(blob_err(crate::store::StoreError::DigestMismatch {
            digest: desc.digest.clone(),
            expected_size: desc.size,
            actual,
            actual_size: bytes.len() as u64,
        }));
    }
    stats.fetched(desc.size);
    store.put(&bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str, n: u8) -> Descriptor {
        let mut d = Descriptor::new(media::OCI_MANIFEST, Digest::of(&[n]), 1);
        d.platform = Some(p.parse().unwrap());
        d
    }

    #[test]
    fn picks_platform() {
        let mut att = Descriptor::new(media::OCI_MANIFEST, Digest::of(b"att"), 1);
        att.platform = Some(Platform {
            os: "unknown".into(),
            architecture: "unknown".into(),
            variant: None,
        });
        let entries = vec![
            entry("linux/amd64", 1),
            entry("linux/arm/v6", 2),
            entry("linux/arm/v7", 3),
            entry("linux/arm64/v8", 4),
            att,
        ];
        let pick = |p: &str| pick_platform(&entries, &p.parse().unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64"), Some(Digest::of(&[1])));
        assert_eq!(pick("linux/arm/v7"), Some(Digest::of(&[3])));
        assert_eq!(pick("linux/arm64"), Some(Digest::of(&[4])));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(
            available(&entries),
            "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64"
        );
    }
}
