//! Bundle signatures: owns finding `airlock/SHA256SUMS` and its signature
//! (`airlock/SHA256SUMS.minisig`) among the metadata members at the start of a bundle, reading
//! no blob, and having `sign::check` judge them. Used by `cli` (`verify`, `load`, `up` and
//! `serve` with `--key`) before anything else reads the bundle.

use super::meta::{SIGNATURE_PATH, SUMS_PATH};
use super::read::{BLOBS_DIR, Bundle, Flow, ReadError, read_small};
use crate::sign::{Checked, load_public_key};
use std::path::Path;

/// Largest signature member read (minisign files are a few hundred bytes).
const SIGNATURE_LIMIT: u64 = 64 << 10;

/// Check `bundle_path`'s signature of `airlock/SHA256SUMS` against the public key at `key`
/// (read first, so a bad key is named before the bundle is opened). An unsigned bundle, a
/// signature by another key, or a bad signature is refused.
pub fn check(bundle_path: &Path, key: &Path) -> Result<Checked, ReadError> {
    let pk = load_public_key(key)?;
    let bundle = Bundle::open(bundle_path)?;
    let mut sums: Option<Vec<u8>> = None;
    let mut sig: Option<Vec<u8>> = None;
    bundle.walk(|info, r| {
        if info.name.starts_with(BLOBS_DIR) {
            return Ok(Flow::Stop);
        }
        match info.name.as_str() {
            SUMS_PATH => sums = Some(read_small(&bundle, info, r)?),
            SIGNATURE_PATH => {
                if info.size > SIGNATURE_LIMIT {
                    return Err(ReadError::TooLarge {
                        path: bundle.path.clone(),
                        member: info.name.clone(),
                        size: info.size,
                        limit: SIGNATURE_LIMIT,
                    });
                }
                sig = Some(read_small(&bundle, info, r)?);
            }
            _ => {}
        }
        Ok::<_, ReadError>(Flow::Continue)
    })?;
    let Some(sig) = sig else {
        return Err(ReadError::Unsigned {
            path: bundle_path.to_path_buf(),
        });
    };
    let Some(sums) = sums else {
        return Err(ReadError::NoSums {
            path: bundle_path.to_path_buf(),
        });
    };
    Ok(crate::sign::check(
        &pk,
        key,
        bundle_path,
        SIGNATURE_PATH,
        &sums,
        sig,
    )?)
}
