//! Content-addressed blob store (the cache shared by every pack): owns `blobs/sha256/<hex>`,
//! `ingest/<hex>.partial` (kept for resume), `meta/sha256/<hex>.json` (per-layer DiffID and
//! uncompressed size). Filled by `registry` and `engine::save`; read by `bundle::write`
//! through `source::Source` (which it implements: blobs by digest; it names no images).
//!
//! Ordering rules: the only way in is `Store::writer` (or `writer_unknown`), write, then
//! `Writer::commit`, which checks size and digest, fsyncs, renames into `blobs/` and fsyncs
//! the directory. A crash leaves an ingest file (resumed next time), never a wrong blob
//! under its name. `AlreadyExists` on commit is success. An ingest file is locked while a
//! writer holds it, so two packs never append to the same partial download; the lock and
//! the rename are checked to act on the file the ingest name points to (same inode), so a
//! file removed or replaced by another process is never renamed into `blobs/`.

use crate::digest::{Digest, Hasher};
use crate::error::{Class, Classify};
use fs_err as fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Failed to access the cache at `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "Blob `{digest}` has wrong content: expected {expected_size} bytes with that digest, got {actual_size} bytes hashing to `{actual}`"
    )]
    DigestMismatch {
        digest: Digest,
        expected_size: u64,
        actual: Digest,
        actual_size: u64,
    },
    #[error("Blob `{digest}` is larger than the {expected} bytes its descriptor says")]
    TooLarge { digest: Digest, expected: u64 },
    #[error("Blob `{digest}` is being downloaded by another airlock process (`{}` is locked)", path.display())]
    Busy { digest: Digest, path: PathBuf },
    #[error("Blob `{digest}` is not in the cache at `{}`", root.display())]
    Missing { digest: Digest, root: PathBuf },
    #[error("No cache directory: set AIRLOCK_CACHE, XDG_CACHE_HOME or HOME")]
    NoLocation,
}

impl Classify for StoreError {
    fn class(&self) -> Class {
        match self {
            StoreError::DigestMismatch { .. } | StoreError::TooLarge { .. } => Class::Failed,
            StoreError::Missing { .. } => Class::Input,
            _ => Class::Environment,
        }
    }
}

/// Times `Store::writer` opens an ingest name again after losing a race for it.
const MAX_REOPEN: u32 = 8;

/// Whether `path` still names the open `file` (same device and inode).
fn names_file(path: &Path, file: &fs_err::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs_err::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Per-layer facts learnt by decompressing the blob once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerFacts {
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

/// A blob in the store, for `cache ls` and `prune`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub digest: Digest,
    pub size: u64,
    /// Last time a pack used the blob (file mtime, refreshed on use), seconds since the epoch.
    pub last_used: u64,
    /// Known layer facts (only for layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerFacts>,
}

/// The content store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `$AIRLOCK_CACHE`, else `$XDG_CACHE_HOME/airlock`, else `~/.cache/airlock`.
    pub fn default_root() -> Result<PathBuf, StoreError> {
        let nonempty = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = nonempty("AIRLOCK_CACHE") {
            return Ok(p);
        }
        if let Some(p) = nonempty("XDG_CACHE_HOME") {
            return Ok(p.join("airlock"));
        }
        nonempty("HOME")
            .map(|h| h.join(".cache").join("airlock"))
            .ok_or(StoreError::NoLocation)
    }

    /// Open (creating the directories) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["blobs/sha256", "ingest", "meta/sha256"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| StoreError::Io {
                path: p.clone(),
                source: e,
            })?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    fn ingest_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}.partial", digest.hex()))
    }

    fn meta_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("meta/sha256")
            .join(format!("{}.json", digest.hex()))
    }

    /// Size of the blob when present.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs_err::metadata(self.blob_path(digest))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Whether the blob is present with the expected size. Marks it used.
    pub fn has(&self, digest: &Digest, size: u64) -> bool {
        if self.size(digest) == Some(size) {
            self.touch(digest);
            true
        } else {
            false
        }
    }

    /// Refresh the blob's last-used time (its mtime); failures only affect `prune`.
    pub fn touch(&self, digest: &Digest) {
        if let Ok(f) = fs_err::File::options()
            .append(true)
            .open(self.blob_path(digest))
        {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Open a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<fs::File, StoreError> {
        let path = self.blob_path(digest);
        fs::File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::Missing {
                    digest: digest.clone(),
                    root: self.root.clone(),
                }
            } else {
                StoreError::Io { path, source: e }
            }
        })
    }

    /// Read a small stored blob (manifests, configs) whole.
    pub fn read_small(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let mut out = Vec::new();
        self.open_blob(digest)?
            .take(limit)
            .read_to_end(&mut out)
            .map_err(io_err(&path))?;
        Ok(out)
    }

    /// Store small bytes under their digest (manifests, configs, generated files).
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.has(&digest, bytes.len() as u64) {
            return Ok(digest);
        }
        let mut w = self.writer(&digest, bytes.len() as u64)?;
        w.truncate()?;
        w.write_all(bytes).map_err(|e| StoreError::Io {
            path: w.path.clone(),
            source: e,
        })?;
        w.commit()?;
        Ok(digest)
    }

    /// A writer for the blob `digest` of `size` bytes. Continues an existing partial
    /// download (`Writer::offset` tells where); call `truncate` to start over.
    pub fn writer(&self, digest: &Digest, size: u64) -> Result<Writer, StoreError> {
        let path = self.ingest_path(digest);
        let busy = |path: PathBuf| StoreError::Busy {
            digest: digest.clone(),
            path,
        };
        let mut reopened = 0;
        let file = loop {
            let file = fs_err::File::options()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Err(busy(path)),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(StoreError::Io { path, source: e });
                }
            }
            // The holder before us may have committed or removed the file between our open
            // and our lock: then the lock is on a file nobody will see; open the name again.
            if names_file(&path, &file) {
                break file;
            }
            reopened += 1;
            if reopened > MAX_REOPEN {
                return Err(busy(path));
            }
        };
        let mut w = Writer {
            root: self.root.clone(),
            path,
            file,
            hasher: Hasher::new(),
            expected: Some((digest.clone(), size)),
        };
        // Rehash what is already there so the digest covers the whole blob.
        let have = w.file.metadata().map_err(io_err(&w.path))?.len();
        if have > size {
            w.truncate()?;
        } else if have > 0 {
            let mut f = &w.file;
            f.seek(SeekFrom::Start(0)).map_err(io_err(&w.path))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).map_err(io_err(&w.path))?;
                if n == 0 {
                    break;
                }
                w.hasher.update(&buf[..n]);
            }
        }
        Ok(w)
    }

    /// A writer for content whose digest is learnt while writing (engine exports).
    pub fn writer_unknown(&self) -> Result<Writer, StoreError> {
        let dir = self.root.join("ingest");
        let (file, path) = tempfile::Builder::new()
            .prefix("unknown-")
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?
            .keep()
            .map_err(|e| StoreError::Io {
                path: dir.clone(),
                source: e.error,
            })?;
        Ok(Writer {
            root: self.root.clone(),
            file: fs_err::File::from_parts(file, path.clone()),
            path,
            hasher: Hasher::new(),
            expected: None,
        })
    }

    /// Layer facts recorded for a blob, if any.
    pub fn layer_facts(&self, digest: &Digest) -> Option<LayerFacts> {
        let bytes = fs_err::read(self.meta_path(digest)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Record layer facts (written to a temporary name, then renamed).
    pub fn set_layer_facts(&self, digest: &Digest, facts: &LayerFacts) -> Result<(), StoreError> {
        let path = self.meta_path(digest);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(facts).unwrap_or_default();
        fs::write(&tmp, bytes).map_err(|e| StoreError::Io {
            path: tmp.clone(),
            source: e,
        })?;
        fs::rename(&tmp, &path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e,
        })?;
        Ok(())
    }

    /// Decompress a stored layer (gzip, zstd or plain tar, detected by magic bytes) and
    /// compute its DiffID and uncompressed size; records them in the sidecar.
    pub fn compute_layer_facts(&self, digest: &Digest) -> Result<LayerFacts, StoreError> {
        if let Some(f) = self.layer_facts(digest) {
            return Ok(f);
        }
        let path = self.blob_path(digest);
        let file = self.open_blob(digest)?;
        let facts =
            layer_facts_of(io::BufReader::with_capacity(1 << 20, file)).map_err(io_err(&path))?;
        self.set_layer_facts(digest, &facts)?;
        Ok(facts)
    }

    /// Every blob in the store.
    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| StoreError::Io {
            path: dir.clone(),
            source: e,
        })? {
            let e = e.map_err(|e| StoreError::Io {
                path: dir.clone(),
                source: e,
            })?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(digest) = Digest::from_hex(&name) else {
                continue;
            };
            let Ok(md) = e.metadata() else { continue };
            let last_used = md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
            out.push(Entry {
                layer: self.layer_facts(&digest),
                digest,
                size: md.len(),
                last_used: last_used.map(|d| d.as_secs()).unwrap_or(0),
            });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Partial downloads: (path, bytes so far).
    pub fn partials(&self) -> Result<Vec<(PathBuf, u64)>, StoreError> {
        let dir = self.root.join("ingest");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| StoreError::Io {
            path: dir.clone(),
            source: e,
        })? {
            let e = e.map_err(|e| StoreError::Io {
                path: dir.clone(),
                source: e,
            })?;
            out.push((e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
        out.sort();
        Ok(out)
    }

    /// Remove one blob and its sidecar.
    pub fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        for p in [self.blob_path(digest), self.meta_path(digest)] {
            match fs_err::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Io { path: p, source: e }),
            }
        }
        Ok(())
    }

    /// Remove partial downloads not locked by a running pack. Returns (files, bytes).
    pub fn prune_partials(&self) -> Result<(u64, u64), StoreError> {
        let mut n = (0, 0);
        for (path, size) in self.partials()? {
            let Ok(f) = fs_err::File::options().append(true).open(&path) else {
                continue;
            };
            if f.try_lock().is_ok() && fs_err::remove_file(&path).is_ok() {
                n.0 += 1;
                n.1 += size;
            }
        }
        Ok(n)
    }

    /// Remove blobs not used within `age` (all blobs with `None`). Returns (blobs, bytes).
    pub fn prune(&self, age: Option<Duration>) -> Result<(u64, u64), StoreError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut n = (0, 0);
        for e in self.list()? {
            let old = match age {
                None => true,
                Some(age) => now.saturating_sub(e.last_used) >= age.as_secs(),
            };
            if old {
                self.remove(&e.digest)?;
                n.0 += 1;
                n.1 += e.size;
            }
        }
        Ok(n)
    }
}

/// Detect compression by magic bytes and hash the uncompressed stream.
pub fn layer_facts_of<R: io::BufRead>(mut r: R) -> io::Result<LayerFacts> {
    let head = r.fill_buf()?;
    let mut sink = HashSink(Hasher::new());
    if head.starts_with(&[0x1f, 0x8b]) {
        io::copy(&mut flate2::bufread::MultiGzDecoder::new(r), &mut sink)?;
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        io::copy(&mut zstd::stream::read::Decoder::with_buffer(r)?, &mut sink)?;
    } else {
        io::copy(&mut r, &mut sink)?;
    }
    let uncompressed_size = sink.0.len();
    Ok(LayerFacts {
        diff_id: sink.0.finish(),
        uncompressed_size,
    })
}

struct HashSink(Hasher);
impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An ingest in progress. Dropping it without `commit` keeps the partial file for resume
/// (for a known digest; an empty one is removed) and releases the lock.
pub struct Writer {
    root: PathBuf,
    path: PathBuf,
    file: fs_err::File,
    hasher: Hasher,
    expected: Option<(Digest, u64)>,
}

impl Writer {
    /// Bytes already written (where a resumed download continues).
    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    /// Start over from zero bytes.
    pub fn truncate(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0).map_err(io_err(&self.path))?;
        self.hasher = Hasher::new();
        Ok(())
    }

    /// Check size and digest, fsync, rename into `blobs/`, fsync the directory.
    /// On a mismatch the partial file is removed and nothing enters the store.
    pub fn commit(mut self) -> Result<Digest, StoreError> {
        self.file.flush().map_err(io_err(&self.path))?;
        let len = self.hasher.len();
        let actual = std::mem::take(&mut self.hasher).finish();
        let digest = match &self.expected {
            Some((digest, size)) => {
                if *digest != actual || *size != len {
                    let _ = fs_err::remove_file(&self.path);
                    return Err(StoreError::DigestMismatch {
                        digest: digest.clone(),
                        expected_size: *size,
                        actual,
                        actual_size: len,
                    });
                }
                digest.clone()
            }
            None => actual,
        };
        self.file.sync_all().map_err(io_err(&self.path))?;
        // The rename moves whatever the name points to: make sure that is still the file
        // hashed above, not one put there after ours was removed.
        if !names_file(&self.path, &self.file) {
            return Err(StoreError::Io {
                path: self.path.clone(),
                source: io::Error::other("the partial file was replaced while being written"),
            });
        }
        let dir = self.root.join("blobs/sha256");
        let target = dir.join(digest.hex());
        if fs_err::metadata(&target).is_ok_and(|m| m.len() == len) {
            // AlreadyExists: another pack committed the same content first.
            let _ = fs_err::remove_file(&self.path);
        } else {
            fs_err::rename(&self.path, &target).map_err(io_err(&target))?;
            if let Ok(d) = fs_err::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        Ok(digest)
    }

    /// Remove the partial file (for content that must not be resumed).
    pub fn discard(self) {
        let _ = fs_err::remove_file(&self.path);
    }
}

impl Drop for Writer {
    /// A download refused or failed before its first byte leaves no empty partial file.
    /// Only while the name still points to this file: after `commit` it is a blob.
    fn drop(&mut self) {
        if self.expected.is_some()
            && self.file.metadata().is_ok_and(|m| m.len() == 0)
            && names_file(&self.path, &self.file)
        {
            let _ = fs_err::remove_file(&self.path);
        }
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((digest, size)) = &self.expected
            && self.hasher.len() + buf.len() as u64 > *size
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                StoreError::TooLarge {
                    digest: digest.clone(),
                    expected: *size,
                },
            ));
        }
        // A failed write (disk full) carries the ingest path, so the error names the cache.
        let n = self.file.write(buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                StoreError::Io {
                    path: self.path.clone(),
                    source: e,
                },
            )
        })?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The store as a source: every committed blob, by digest. It lists no images (it holds no
/// names); the pack pipeline knows the images it resolved into it. A blob a sink finds
/// damaged is removed, so the next pack fetches it again.
impl crate::source::Source for Store {
    fn describe(&self) -> String {
        format!("the cache at `{}`", self.root.display())
    }

    fn images(&self) -> Result<Vec<crate::image::ResolvedImage>, crate::source::SourceError> {
        Ok(Vec::new())
    }

    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.size(digest)
    }

    fn open(
        &self,
        digest: &Digest,
        offset: u64,
    ) -> Result<crate::source::BlobReader, crate::source::SourceError> {
        use crate::source::SourceError;
        let io_err = |source| SourceError::Io {
            from: self.describe(),
            digest: digest.clone(),
            source,
        };
        let mut file = match self.open_blob(digest) {
            Ok(f) => f,
            Err(StoreError::Missing { .. }) => {
                return Err(SourceError::Missing {
                    from: self.describe(),
                    digest: digest.clone(),
                });
            }
            Err(StoreError::Io { source, .. }) => return Err(io_err(source)),
            Err(other) => return Err(io_err(io::Error::other(other))),
        };
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        }
        Ok(Box::new(file))
    }

    fn discard(&self, digest: &Digest) {
        let _ = self.remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn put_and_read() {
        let (_d, s) = store();
        let d = s.put(b"hello").unwrap();
        assert!(s.has(&d, 5));
        assert_eq!(s.read_small(&d, 100).unwrap(), b"hello");
        // AlreadyExists is success.
        assert_eq!(s.put(b"hello").unwrap(), d);
    }

    #[test]
    fn resume_continues_hash() {
        let (_d, s) = store();
        let d = Digest::of(b"hello world");
        let mut w = s.writer(&d, 11).unwrap();
        w.write_all(b"hello").unwrap();
        drop(w);
        let mut w = s.writer(&d, 11).unwrap();
        assert_eq!(w.offset(), 5);
        w.write_all(b" world").unwrap();
        assert_eq!(w.commit().unwrap(), d);
        assert!(s.has(&d, 11));
        assert!(s.partials().unwrap().is_empty());
    }

    #[test]
    fn wrong_bytes_never_enter() {
        let (_d, s) = store();
        let d = Digest::of(b"right");
        let mut w = s.writer(&d, 5).unwrap();
        w.write_all(b"wrong").unwrap();
        let err = w.commit().unwrap_err();
        assert!(err.to_string().contains(&d.to_string()), "{err}");
        assert!(s.size(&d).is_none());
        assert!(s.partials().unwrap().is_empty());
    }

    #[test]
    fn commit_refuses_a_replaced_partial() {
        let (_d, s) = store();
        let d = Digest::of(b"right");
        let mut w = s.writer(&d, 5).unwrap();
        w.write_all(b"right").unwrap();
        // Someone removed the partial file and another one took its name.
        let p = s.ingest_path(&d);
        fs_err::remove_file(&p).unwrap();
        fs_err::write(&p, b"wrong").unwrap();
        assert!(w.commit().is_err());
        assert!(s.size(&d).is_none(), "a wrong blob under the name");
    }

    #[test]
    fn too_large_is_refused_while_writing() {
        let (_d, s) = store();
        let d = Digest::of(b"abc");
        let mut w = s.writer(&d, 3).unwrap();
        assert!(w.write_all(b"abcd").is_err());
    }

    #[test]
    fn empty_partial_is_not_kept() {
        let (_d, s) = store();
        let d = Digest::of(b"abc");
        drop(s.writer(&d, 3).unwrap());
        assert!(s.partials().unwrap().is_empty());
        let mut w = s.writer(&d, 3).unwrap();
        w.write_all(b"ab").unwrap();
        drop(w);
        assert_eq!(s.partials().unwrap().len(), 1, "a started download is kept");
    }

    #[test]
    fn locked_ingest_is_busy() {
        let (_d, s) = store();
        let d = Digest::of(b"abc");
        let _w = s.writer(&d, 3).unwrap();
        assert!(matches!(s.writer(&d, 3), Err(StoreError::Busy { .. })));
    }

    #[test]
    fn unknown_digest_writer() {
        let (_d, s) = store();
        let mut w = s.writer_unknown().unwrap();
        w.write_all(b"xyz").unwrap();
        let d = w.commit().unwrap();
        assert_eq!(d, Digest::of(b"xyz"));
        assert!(s.has(&d, 3));
    }

    #[test]
    fn layer_facts_gzip_and_plain() {
        let plain = b"some tar bytes".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&plain[..], 3).unwrap();
        for bytes in [plain.clone(), gz, zs] {
            let f = layer_facts_of(&bytes[..]).unwrap();
            assert_eq!(f.diff_id, Digest::of(&plain));
            assert_eq!(f.uncompressed_size, plain.len() as u64);
        }
    }

    #[test]
    fn prune_all() {
        let (_d, s) = store();
        s.put(b"a").unwrap();
        s.put(b"b").unwrap();
        assert_eq!(s.prune(Some(Duration::from_secs(3600))).unwrap().0, 0);
        assert_eq!(s.prune(None).unwrap(), (2, 2));
        assert!(s.list().unwrap().is_empty());
    }
}
