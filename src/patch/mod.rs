//! Layer patches: owns the patch file format, building a patch that turns one uncompressed
//! layer tar (the base) into another (the target), and rebuilding the target from the base
//! and the patch, checked against its `diff_id`. Knows tars and bytes only: no bundle, no
//! engine, no registry (`pack` builds patches, sources rebuild them; see
//! docs/bundle-format.md).
//!
//! STUB (first cut of the API): the patch is the header plus the whole target tar
//! compressed with zstd. The real method replaces the bodies of `build` and `apply`.

use crate::digest::{Digest, HashingWriter};
use crate::error::{Class, Classify};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Media type of a patch blob in a bundle.
pub const MEDIA_TYPE: &str = "application/vnd.airlock.layer.patch.v1";

/// The first bytes of every patch.
const MAGIC: &[u8; 16] = b"AIRLOCK-PATCH\x00\x00\x01";
/// Largest header accepted (it is a few hundred bytes of JSON).
const HEADER_LIMIT: u32 = 64 * 1024;

/// What a patch rebuilds, from what.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Header {
    /// sha256 of the base layer's uncompressed tar.
    pub base_diff_id: Digest,
    /// sha256 of the rebuilt (target) uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of the rebuilt uncompressed tar.
    pub size: u64,
    /// How the body is encoded.
    pub method: String,
}

/// What `build` found and wrote.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    /// Target bytes copied from the base unchanged.
    pub copied: u64,
    /// Target bytes encoded against a base file.
    pub diffed: u64,
    /// Target bytes encoded on their own.
    pub literal: u64,
    pub files_same: u64,
    pub files_changed: u64,
    pub files_new: u64,
    /// Bytes of the patch written.
    pub patch_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("Not an airlock layer patch (bad magic or header)")]
    NotAPatch,
    #[error("The layer patch is corrupt: {0}")]
    Corrupt(String),
    #[error("The base layer `{}` is {found}, not {expected} as the patch needs", path.display())]
    WrongBase {
        path: PathBuf,
        expected: Digest,
        found: Digest,
    },
    #[error("The rebuilt layer is {found}, not {expected}")]
    Mismatch { expected: Digest, found: Digest },
    #[error("Failed to read or write a layer patch")]
    Io(#[from] io::Error),
}

impl Classify for PatchError {
    fn class(&self) -> Class {
        match self {
            PatchError::Io(_) => Class::Environment,
            _ => Class::Failed,
        }
    }
}

/// Build a patch turning `base_tar` into `new_tar` (both uncompressed layer tars on disk).
pub fn build(
    _base_tar: &Path,
    base_diff_id: &Digest,
    new_tar: &Path,
    diff_id: &Digest,
    out: &mut dyn Write,
) -> Result<Stats, PatchError> {
    let size = fs_err::metadata(new_tar)?.len();
    let header = Header {
        base_diff_id: base_diff_id.clone(),
        diff_id: diff_id.clone(),
        size,
        method: "zstd-whole-v0".into(),
    };
    let mut counter = CountingWriter { inner: out, n: 0 };
    write_header(&mut counter, &header)?;
    let mut enc = zstd::stream::write::Encoder::new(&mut counter, 19)?;
    io::copy(&mut fs_err::File::open(new_tar)?, &mut enc)?;
    enc.finish()?;
    Ok(Stats {
        literal: size,
        patch_bytes: counter.n,
        ..Stats::default()
    })
}

/// Read only the header (the patch's first bytes).
pub fn header(patch: &mut dyn Read) -> Result<Header, PatchError> {
    let mut magic = [0u8; 16];
    read_exact_or(patch, &mut magic)?;
    if &magic != MAGIC {
        return Err(PatchError::NotAPatch);
    }
    let mut len = [0u8; 4];
    read_exact_or(patch, &mut len)?;
    let len = u32::from_le_bytes(len);
    if len > HEADER_LIMIT {
        return Err(PatchError::NotAPatch);
    }
    let mut json = vec![0u8; len as usize];
    read_exact_or(patch, &mut json)?;
    serde_json::from_slice(&json).map_err(|_| PatchError::NotAPatch)
}

/// Rebuild the target tar from `base_tar` and the patch, writing it to `out` while hashing
/// it. `Err(Mismatch)` when the result is not the header's `diff_id`: the caller writes to
/// a temporary file and uses it only on `Ok`.
pub fn apply(
    _base_tar: &Path,
    patch: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<Header, PatchError> {
    let header = header(patch)?;
    let mut w = HashingWriter::new(out);
    let mut dec = zstd::stream::read::Decoder::new(patch)
        .map_err(|e| PatchError::Corrupt(e.to_string()))?;
    io::copy(&mut dec, &mut w).map_err(|e| PatchError::Corrupt(e.to_string()))?;
    let (_, found, _) = w.finish();
    if found != header.diff_id {
        return Err(PatchError::Mismatch {
            expected: header.diff_id,
            found,
        });
    }
    Ok(header)
}

fn write_header(out: &mut dyn Write, header: &Header) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&json)
}

fn read_exact_or(r: &mut dyn Read, buf: &mut [u8]) -> Result<(), PatchError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => PatchError::NotAPatch,
        _ => PatchError::Io(e),
    })
}

struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
