//! Layer patches: owns the patch file format, building a patch that turns one uncompressed
//! layer tar (the base) into another (the target), and rebuilding the target from the base
//! and the patch, checked against its `diff_id`. Knows tars and bytes only: no bundle, no
//! engine, no registry (`pack` builds patches, sources rebuild them; the byte format is in
//! docs/bundle-format.md, "Layer patches").
//!
//! Method `tar-zstd-v1` (chosen by measurement, BENCHMARKS.md "Patch bundles"): both tars
//! are cut into entries (`walk`: header blocks, data, padding; whatever it does not parse
//! is literal tail, so any tar rebuilds byte for byte). Each target entry is matched to a
//! base entry (same path; else the same path with numbers and hash-like words ignored,
//! which follows `Django-5.1.3.dist-info` to `Django-5.1.4.dist-info`; else for a file the
//! same file name taken so, closest in size). Its header blocks are XORed with the match's (`HDR`: mostly zeros), its
//! data is copied from any base file with the same sha256 (`COPY`), or encoded as zstd
//! frames with a window of the matching file's data as reference prefix (`DIFF`, in chunks
//! of `DIFF_CHUNK` against the window at the same offset), or carried as is (`LIT`). The op
//! stream and all literal bytes go through ONE zstd stream, so the many small headers and
//! new files compress together (`wire`, `build`, `apply`). Levels: see `DIFF_LEVEL`.
//!
//! Memory grows with the number of files, not with the layer's bytes (it never holds a
//! tar): `build` holds both tars' entry lists and the base's lookup maps, the outer zstd
//! encoder (level 13, window 2^24), and for one DIFF chunk at a time the chunk (8 MiB), its
//! base window (10 MiB), its frame, and a level-19 context; `apply` holds the base's entry list
//! (about 100 bytes per entry), the outer decoder (window 2^24 for patches this module
//! writes, 2^27 at most) and one DIFF chunk, its window and frame. Measured peak RSS
//! (BENCHMARKS.md, "Patch bundles"): build 53 to 190 MB, apply 12 to 55 MB, for layers of
//! 28 MB to 1.4 GB (65,000 files). The entry lists and maps cost about 400 bytes per file
//! of the two tars together (a 450 MB layer of 300,000 small files: build 184 MB, apply
//! 53 MB); a DIFF of a large file adds up to about 120 MB (its level-19 context and the
//! chunk buffers). Bound: under 300 MB to build a patch of a 1 GB layer of up to 300,000
//! files; apply stays under 100 MB for such a layer (a hostile patch may ask for a 2^27
//! window: 128 MB more).
//! Every length read from a patch is bounded by the header's size, the base's entries and
//! `DIFF_CHUNK` before anything is allocated or copied.

mod apply;
mod build;
mod walk;
mod wire;

use crate::digest::Digest;
use crate::error::{Class, Classify};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Media type of a patch blob in a bundle.
pub const MEDIA_TYPE: &str = "application/vnd.airlock.layer.patch.v1";

/// The first bytes of every patch.
const MAGIC: &[u8; 16] = b"AIRLOCK-PATCH\x00\x00\x01";
/// Largest header accepted (it is a few hundred bytes of JSON).
const HEADER_LIMIT: u32 = 64 * 1024;
/// The body's encoding (`Header::method`).
const METHOD: &str = "tar-zstd-v1";
/// zstd levels of the outer stream and of DIFF frames while the bytes each compresses
/// (literal file data; changed file data) are at most `HIGH_LEVEL_LIMIT`, as in a point
/// release; `FAST_LEVEL` beyond, so that a layer that changed throughout takes minutes
/// rather than half an hour (level 19 runs at 1 to 3 MB/s, 12 at 20 to 50 MB/s). Measured
/// (BENCHMARKS.md): DIFF frames at 19 are 10% smaller than at 15 or 12; the outer stream
/// at 13 is as small as at 19 (within 0.2%; smaller for Django) with 50 MB less memory.
const OUTER_LEVEL: i32 = 13;
const DIFF_LEVEL: i32 = 19;
const FAST_LEVEL: i32 = 12;
const HIGH_LEVEL_LIMIT: u64 = 256 << 20;
/// Window of the outer stream as written, and the largest one `apply` accepts.
const OUTER_WINDOW_LOG: u32 = 24;
const OUTER_WINDOW_LOG_MAX: u32 = 27;
/// Largest DIFF chunk (target bytes per DIFF op); tests use small chunks so that files of
/// a few chunks stay small.
const DIFF_CHUNK: u64 = if cfg!(test) { 4096 } else { 8 << 20 };
/// Largest window of a DIFF frame `apply` accepts (a chunk and its base window need 2^25).
const DIFF_WINDOW_LOG_MAX: u32 = 27;

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
    /// Target bytes copied from the base unchanged (file data and its padding).
    pub copied: u64,
    /// Target bytes encoded against base bytes (changed files, and header blocks XORed
    /// with their base entry's).
    pub diffed: u64,
    /// Target bytes carried as they are (new files, headers without a match, the tail).
    pub literal: u64,
    /// Files whose content the base has (copied).
    pub files_same: u64,
    /// Files encoded against a base file.
    pub files_changed: u64,
    /// Files carried as they are.
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
    #[error("The layer `{}` to patch to is {found}, not {expected}", path.display())]
    WrongTarget {
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

/// Build a patch turning `base_tar` into `new_tar` (both uncompressed layer tars on disk,
/// whose sha256 are `base_diff_id` and `diff_id`: `WrongBase` or `WrongTarget` otherwise).
/// Reads each tar twice (a walk that hashes it, then the bytes it needs); memory is
/// bounded as the module doc says, whatever the tars' sizes.
pub fn build(
    base_tar: &Path,
    base_diff_id: &Digest,
    new_tar: &Path,
    diff_id: &Digest,
    out: &mut dyn Write,
) -> Result<Stats, PatchError> {
    build::build(base_tar, base_diff_id, new_tar, diff_id, out)
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
/// it. The base is hashed first (one read) and refused with `WrongBase` unless it is the
/// header's `base_diff_id`; a patch that is not a valid op stream is `Corrupt`;
/// `Err(Mismatch)` when the result is not the header's `diff_id`: the caller writes to a
/// temporary file and uses it only on `Ok`.
pub fn apply(
    base_tar: &Path,
    patch: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<Header, PatchError> {
    apply::apply(base_tar, patch, out)
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

/// The window of a base file's data (`lo..hi`, relative to its data) that DIFF chunk `j`
/// of a target file is encoded against: the chunk at the same offset, widened by an
/// eighth of a chunk on each side; the file's last 1.25 chunks when it is shorter.
fn prefix_window(base_size: u64, j: u64) -> (u64, u64) {
    let margin = DIFF_CHUNK / 8;
    let at = j.saturating_mul(DIFF_CHUNK);
    let lo = at.saturating_sub(margin);
    let hi = base_size.min(at.saturating_add(DIFF_CHUNK + margin));
    if lo < hi {
        (lo, hi)
    } else {
        (base_size.saturating_sub(DIFF_CHUNK + 2 * margin), base_size)
    }
}

/// The window log of a DIFF frame whose prefix and content are `n` bytes.
fn window_log_for(n: u64) -> u32 {
    let log = u64::BITS - n.saturating_sub(1).leading_zeros();
    log.clamp(10, DIFF_WINDOW_LOG_MAX)
}

/// `buf.len()` bytes of `file` at `off`; the error names the file.
fn read_at(file: &fs_err::File, buf: &mut [u8], off: u64) -> io::Result<()> {
    file.file().read_exact_at(buf, off).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("Cannot read `{}` at {off}: {e}", file.path().display()),
        )
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

#[cfg(test)]
mod tests;
