//! Split bundles: owns `NAME.tar.000`, `NAME.tar.001`, ... (plain byte splits of the bundle
//! tar, so `cat NAME.tar.* > NAME.tar` rebuilds it) and `NAME.parts.json` (each part's size
//! and SHA-256). `SplitWriter` is the sink `bundle::write` uses with `pack --split-size`:
//! parts are written under temporary names and renamed only when the whole bundle is written.
//! `Parts` finds the parts from the parts file or the first part, and reads them in order
//! without joining them on disk: a `Read + Seek` stream (`bundle::read`) and positional reads
//! (`bundle::verify`, `serve`). A missing, short or corrupt part is named in the error.

use crate::digest::{Digest, Hasher};
use crate::error::{Class, Classify};
use fs_err::os::unix::fs::FileExt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const PARTS_FORMAT: &str = "airlock.parts/v1";
pub const PARTS_SUFFIX: &str = ".parts.json";
/// Part numbers have three digits so that the shell sorts `NAME.tar.*` in order.
pub const MAX_PARTS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    #[error("Part `{}` of the split bundle is missing", part.display())]
    Missing { part: PathBuf },
    #[error("Part `{}` of the split bundle is {actual} bytes, `{}` says {expected}", part.display(), list.display())]
    Size {
        part: PathBuf,
        list: PathBuf,
        actual: u64,
        expected: u64,
    },
    #[error("Part `{}` of the split bundle is corrupt: its sha256 is {actual}, `{}` says {expected}", part.display(), list.display())]
    Corrupt {
        part: PathBuf,
        list: PathBuf,
        actual: Digest,
        expected: Digest,
    },
    #[error("Part `{}` ends at byte {at}, {expected} expected", part.display())]
    Short {
        part: PathBuf,
        at: u64,
        expected: u64,
    },
    #[error("Failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Failed to write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is not a parts file of format `{PARTS_FORMAT}`", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{}` names an unsafe part `{name}` (a plain file name next to it is expected)", path.display())]
    BadName { path: PathBuf, name: String },
    #[error(
        "A split size of {size} bytes makes more than {MAX_PARTS} parts; choose a larger `--split-size`"
    )]
    TooManyParts { size: u64 },
    #[error("Invalid split size `{text}`: {reason}")]
    BadSize { text: String, reason: String },
}

impl Classify for PartsError {
    fn class(&self) -> Class {
        match self {
            PartsError::Size { .. } | PartsError::Corrupt { .. } | PartsError::Short { .. } => {
                Class::Failed
            }
            PartsError::Write { .. } => Class::Environment,
            _ => Class::Input,
        }
    }
}

/// `NAME.parts.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartsList {
    pub format: String,
    /// File name of the joined bundle (`NAME.tar`).
    pub bundle: String,
    /// Bytes of the joined bundle.
    pub size: u64,
    /// The `--split-size` used (every part but the last has exactly this size).
    pub part_size: u64,
    pub parts: Vec<PartEntry>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartEntry {
    /// File name, in the directory of the parts file.
    pub name: String,
    pub size: u64,
    pub sha256: Digest,
}

/// `--split-size`: bytes with an optional K/M/G/T suffix (powers of 1024), or a named medium.
///
/// - `fat32`: 4000 MiB. FAT32's limit is 4 GiB - 1 byte; 4000 MiB leaves 96 MiB for the
///   parts file and directory entries and is still a round number.
/// - `dvd`: 4450 MiB. A single-layer DVD holds 4.7 GB = 4,700,372,992 bytes (4482 MiB);
///   32 MiB is left for the file system (ISO 9660/UDF) and the parts file.
pub fn parse_size(text: &str) -> Result<u64, PartsError> {
    let bad = |reason: &str| PartsError::BadSize {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "fat32" => return Ok(4000 << 20),
        "dvd" => return Ok(4450 << 20),
        _ => {}
    }
    let t = t.strip_suffix(['b', 'B']).unwrap_or(t);
    let t = t.strip_suffix(['i']).unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(bad("the unit is one of K, M, G, T (powers of 1024)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| bad("expected a number with an optional K/M/G/T unit, `fat32` or `dvd`"))?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| bad("too large"))?;
    if bytes < 64 << 10 {
        return Err(bad("parts must be at least 64K"));
    }
    Ok(bytes)
}

/// `NAME.tar` -> `NAME.parts.json` (`NAME` -> `NAME.parts.json` without `.tar`).
pub fn list_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.strip_suffix(".tar").unwrap_or(&name);
    output.with_file_name(format!("{stem}{PARTS_SUFFIX}"))
}

/// `NAME.tar` + 3 -> `NAME.tar.003`.
pub fn part_name(bundle_name: &str, index: usize) -> String {
    format!("{bundle_name}.{index:03}")
}

// ---------------------------------------------------------------------------------------
// Writing

/// SHA-256 of one part, computed on its own thread while the writer goes on writing (the
/// bundle writer is otherwise bound by hashing on one core). Writes are gathered into 1 MiB
/// batches and sent over a bounded channel: at most `QUEUE` batches wait, so memory stays
/// bounded (about 10 MiB).
struct PartHasher {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    thread: std::thread::JoinHandle<Digest>,
    batch: Vec<u8>,
}

impl PartHasher {
    const QUEUE: usize = 8;
    const BATCH: usize = 1 << 20;

    fn start() -> io::Result<PartHasher> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(Self::QUEUE);
        let thread = std::thread::Builder::new()
            .name("part-hash".into())
            .spawn(move || {
                let mut h = Hasher::new();
                for chunk in rx {
                    h.update(&chunk);
                }
                h.finish()
            })?;
        Ok(PartHasher {
            tx,
            thread,
            batch: Vec::with_capacity(Self::BATCH),
        })
    }

    fn update(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.batch.extend_from_slice(bytes);
        if self.batch.len() >= Self::BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(Self::BATCH));
        self.tx
            .send(batch)
            .map_err(|_| io::Error::other("the part hashing thread stopped"))
    }

    fn finish(mut self) -> io::Result<Digest> {
        if !self.batch.is_empty() {
            self.send()?;
        }
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| io::Error::other("the part hashing thread failed"))
    }
}

/// A `Write` that cuts the stream into parts of `part_size` bytes. Each part is written to
/// `.NAME.tar.NNN.airlock-partial-<pid>` and hashed while written; `finish` renames them all
/// and writes the parts file (itself via a temporary name). Dropped unfinished, it removes
/// its temporary files, so a failed or cancelled pack leaves no parts behind.
pub struct SplitWriter {
    dir: PathBuf,
    bundle_name: String,
    part_size: u64,
    current: Option<(fs_err::File, PartHasher, u64)>,
    /// Finished parts: temporary path, entry.
    done: Vec<(PathBuf, PartEntry)>,
    finished: bool,
}

impl SplitWriter {
    /// Parts of `output` (`NAME.tar`): `NAME.tar.000`, ... next to it.
    pub fn create(output: &Path, part_size: u64) -> Result<SplitWriter, PartsError> {
        let dir = crate::disk::output_dir(output);
        let bundle_name = output
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_else(|| "bundle.tar".into());
        Ok(SplitWriter {
            dir,
            bundle_name,
            part_size: part_size.max(1),
            current: None,
            done: Vec::new(),
            finished: false,
        })
    }

    fn tmp_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!(
            ".{}.airlock-partial-{}",
            part_name(&self.bundle_name, index),
            std::process::id()
        ))
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some((file, hasher, size)) = self.current.take() {
            // Flushed to disk in `finish`, all parts together: a sync here would stall the
            // writer once per part.
            drop(file);
            let sha256 = hasher.finish()?;
            let index = self.done.len();
            self.done.push((
                self.tmp_path(index),
                PartEntry {
                    name: part_name(&self.bundle_name, index),
                    size,
                    sha256,
                },
            ));
        }
        Ok(())
    }

    fn open_next(&mut self) -> io::Result<()> {
        let index = self.done.len();
        if index >= MAX_PARTS {
            return Err(io::Error::other(PartsError::TooManyParts {
                size: self.part_size,
            }));
        }
        let file = fs_err::File::create(self.tmp_path(index))?;
        self.current = Some((file, PartHasher::start()?, 0));
        Ok(())
    }

    /// Close the last part, rename every part to its name, write `NAME.parts.json`, and
    /// remove parts of an earlier bundle of the same name beyond the new last one (so that
    /// `cat NAME.tar.*` stays right). Returns the parts file's path and its content.
    pub fn finish(mut self) -> Result<(PathBuf, PartsList), PartsError> {
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PartsError::Write { path, source }
        };
        if self.current.is_none() && self.done.is_empty() {
            self.open_next().map_err(write_err(&self.dir))?;
        }
        self.close_current().map_err(write_err(&self.dir))?;
        let list = PartsList {
            format: PARTS_FORMAT.into(),
            bundle: self.bundle_name.clone(),
            size: self.done.iter().map(|(_, e)| e.size).sum(),
            part_size: self.part_size,
            parts: self.done.iter().map(|(_, e)| e.clone()).collect(),
        };
        for (tmp, _) in &self.done {
            fs_err::File::open(tmp)
                .and_then(|f| f.sync_all())
                .map_err(write_err(tmp))?;
        }
        for (tmp, entry) in &self.done {
            let dest = self.dir.join(&entry.name);
            fs_err::rename(tmp, &dest).map_err(write_err(&dest))?;
        }
        // Stale parts of an earlier, longer bundle of the same name.
        for index in self.done.len()..MAX_PARTS {
            let stale = self.dir.join(part_name(&self.bundle_name, index));
            if fs_err::remove_file(&stale).is_err() {
                break;
            }
        }
        let list_file = list_path(&self.dir.join(&self.bundle_name));
        let tmp = self.dir.join(format!(
            ".{}.airlock-partial-{}",
            list_file
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default(),
            std::process::id()
        ));
        let mut bytes = serde_json::to_vec_pretty(&list).expect("json");
        bytes.push(b'\n');
        fs_err::write(&tmp, &bytes).map_err(write_err(&list_file))?;
        fs_err::rename(&tmp, &list_file).map_err(write_err(&list_file))?;
        if let Ok(d) = fs_err::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.finished = true;
        Ok((list_file, list))
    }
}

impl Write for SplitWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.current.as_ref().is_some_and(|c| c.2 >= self.part_size) {
            self.close_current()?;
        }
        if self.current.is_none() {
            self.open_next()?;
        }
        let part_size = self.part_size;
        let (file, hasher, size) = self.current.as_mut().expect("opened above");
        let room = (part_size - *size).min(buf.len() as u64) as usize;
        let n = file.write(&buf[..room])?;
        hasher.update(&buf[..n])?;
        *size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((file, _, _)) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for SplitWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let n = self.done.len() + usize::from(self.current.is_some());
        self.current = None;
        for index in 0..n {
            let _ = fs_err::remove_file(self.tmp_path(index));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading

/// One part, where it sits in the joined stream.
#[derive(Debug, Clone)]
pub struct Part {
    pub path: PathBuf,
    pub offset: u64,
    pub size: u64,
    /// From the parts file; `None` when the parts were found without one.
    pub sha256: Option<Digest>,
}

/// The parts of a split bundle, in order.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The parts file, when there is one.
    pub list: Option<PathBuf>,
    pub parts: Vec<Part>,
    pub size: u64,
}

/// Whether `path` names a split bundle (the parts file or the first part `*.000`).
pub fn is_split(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    name.ends_with(PARTS_SUFFIX) || name.ends_with(".000")
}

impl Parts {
    /// The parts named by a parts file or by the first part. Without a parts file next to
    /// the first part, `NAME.000`, `NAME.001`, ... are taken while they exist (sizes from the
    /// files, no hashes). Every listed part must exist with its size.
    pub fn open(path: &Path) -> Result<Parts, PartsError> {
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if name.ends_with(PARTS_SUFFIX) {
            return Parts::from_list(path, &dir);
        }
        let joined = name.strip_suffix(".000").unwrap_or(&name).to_string();
        let list = list_path(&dir.join(&joined));
        if list.exists() {
            return Parts::from_list(&list, &dir);
        }
        let mut parts = Vec::new();
        let mut offset = 0;
        for index in 0..MAX_PARTS {
            let p = dir.join(part_name(&joined, index));
            let Ok(md) = fs_err::metadata(&p) else {
                break;
            };
            parts.push(Part {
                path: p,
                offset,
                size: md.len(),
                sha256: None,
            });
            offset += md.len();
        }
        if parts.is_empty() {
            return Err(PartsError::Missing {
                part: path.to_path_buf(),
            });
        }
        Ok(Parts {
            list: None,
            parts,
            size: offset,
        })
    }

    fn from_list(list_file: &Path, dir: &Path) -> Result<Parts, PartsError> {
        let bytes = fs_err::read(list_file).map_err(|source| PartsError::Read {
            path: list_file.to_path_buf(),
            source,
        })?;
        let list: PartsList =
            serde_json::from_slice(&bytes).map_err(|source| PartsError::Json {
                path: list_file.to_path_buf(),
                source,
            })?;
        let mut parts = Vec::new();
        let mut offset = 0u64;
        for e in &list.parts {
            let plain = Path::new(&e.name)
                .file_name()
                .is_some_and(|f| f == std::ffi::OsStr::new(&e.name));
            if !plain || e.name.starts_with('.') {
                return Err(PartsError::BadName {
                    path: list_file.to_path_buf(),
                    name: e.name.clone(),
                });
            }
            let p = dir.join(&e.name);
            let md = fs_err::metadata(&p).map_err(|_| PartsError::Missing { part: p.clone() })?;
            if md.len() != e.size {
                return Err(PartsError::Size {
                    part: p,
                    list: list_file.to_path_buf(),
                    actual: md.len(),
                    expected: e.size,
                });
            }
            parts.push(Part {
                path: p,
                offset,
                size: e.size,
                sha256: Some(e.sha256.clone()),
            });
            offset += e.size;
        }
        Ok(Parts {
            list: Some(list_file.to_path_buf()),
            parts,
            size: offset,
        })
    }

    /// Hash every part against the parts file (two threads). Returns every corrupt part;
    /// `Err` only when a part cannot be read. Parts found without a parts file are not checked.
    pub fn check_hashes(&self) -> Result<Vec<PartsError>, PartsError> {
        let list = self.list.clone().unwrap_or_default();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(part) = self.parts.get(i) else {
                            break;
                        };
                        let Some(expected) = &part.sha256 else {
                            continue;
                        };
                        let r = fs_err::File::open(&part.path).and_then(|f| {
                            crate::digest::hash_reader(io::BufReader::with_capacity(1 << 20, f))
                        });
                        let outcome = match r {
                            Err(source) => Some(PartsError::Read {
                                path: part.path.clone(),
                                source,
                            }),
                            Ok((_, n)) if n != part.size => Some(PartsError::Size {
                                part: part.path.clone(),
                                list: list.clone(),
                                actual: n,
                                expected: part.size,
                            }),
                            Ok((actual, _)) if &actual != expected => Some(PartsError::Corrupt {
                                part: part.path.clone(),
                                list: list.clone(),
                                actual,
                                expected: expected.clone(),
                            }),
                            Ok(_) => None,
                        };
                        if let Some(e) = outcome {
                            results.lock().expect("not poisoned").push((i, e));
                        }
                    }
                });
            }
        });
        let mut found = results.into_inner().expect("not poisoned");
        found.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (_, e) in found {
            if let PartsError::Read { .. } = e {
                return Err(e);
            }
            out.push(e);
        }
        Ok(out)
    }

    /// The part holding byte `offset` of the joined stream.
    pub fn part_at(&self, offset: u64) -> Option<&Part> {
        let i = self.parts.partition_point(|p| p.offset + p.size <= offset);
        self.parts.get(i)
    }

    /// A `Read + Seek` over the joined stream.
    pub fn reader(self: &Arc<Self>) -> PartsReader {
        PartsReader {
            parts: Arc::clone(self),
            pos: 0,
            open: None,
        }
    }

    /// Read at `offset` of the joined stream (within one part: may return fewer bytes).
    fn read_at_with(
        &self,
        files: &[fs_err::File],
        buf: &mut [u8],
        offset: u64,
    ) -> io::Result<usize> {
        let Some(part) = self.part_at(offset) else {
            return Ok(0);
        };
        let i = self.parts.partition_point(|p| p.offset + p.size <= offset);
        let within = offset - part.offset;
        let want = ((part.size - within) as usize).min(buf.len());
        let n = files[i].read_at(&mut buf[..want], within)?;
        if n == 0 && want > 0 {
            return Err(short(part, within));
        }
        Ok(n)
    }
}

fn short(part: &Part, at: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        PartsError::Short {
            part: part.path.clone(),
            at,
            expected: part.size,
        },
    )
}

/// Sequential reader over the parts (opened one at a time, as the position reaches them).
pub struct PartsReader {
    parts: Arc<Parts>,
    pos: u64,
    /// Index of the open part and its file, positioned at `pos`.
    open: Option<(usize, fs_err::File)>,
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.parts.size {
            return Ok(0);
        }
        let i = self
            .parts
            .parts
            .partition_point(|p| p.offset + p.size <= self.pos);
        let Some(part) = self.parts.parts.get(i) else {
            return Ok(0);
        };
        let within = self.pos - part.offset;
        if self.open.as_ref().is_none_or(|(j, _)| *j != i) {
            let mut f = fs_err::File::open(&part.path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    PartsError::Read {
                        path: part.path.clone(),
                        source: e,
                    },
                )
            })?;
            f.seek(SeekFrom::Start(within))?;
            self.open = Some((i, f));
        }
        let (_, f) = self.open.as_mut().expect("opened above");
        let want = ((part.size - within) as usize).min(buf.len());
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            return Err(short(part, within));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PartsReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.parts.size.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the bundle",
            ));
        };
        if target != self.pos {
            if let Some((i, f)) = &mut self.open {
                let part = &self.parts.parts[*i];
                if target >= part.offset && target < part.offset + part.size {
                    f.seek(SeekFrom::Start(target - part.offset))?;
                } else {
                    self.open = None;
                }
            }
            self.pos = target;
        }
        Ok(self.pos)
    }
}

// ---------------------------------------------------------------------------------------
// Either kind of bundle file

/// A sequential source over a bundle file or a split bundle (`bundle::read`).
pub enum Stream {
    File(fs_err::File),
    Parts(PartsReader),
}

impl Stream {
    pub fn open(path: &Path, parts: Option<&Arc<Parts>>) -> io::Result<Stream> {
        Ok(match parts {
            Some(p) => Stream::Parts(p.reader()),
            None => Stream::File(fs_err::File::open(path)?),
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::File(f) => f.read(buf),
            Stream::Parts(p) => p.read(buf),
        }
    }
}

impl Seek for Stream {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Stream::File(f) => f.seek(to),
            Stream::Parts(p) => p.seek(to),
        }
    }
}

/// A bundle file or a split bundle, for positional reads (`verify`'s hashing pool, `serve`).
#[derive(Debug)]
pub enum RandomAccess {
    File(fs_err::File),
    Parts {
        parts: Arc<Parts>,
        files: Vec<fs_err::File>,
    },
}

impl RandomAccess {
    /// Open `path`: a split bundle when it is a parts file or a first part, else a file.
    pub fn open(path: &Path) -> io::Result<RandomAccess> {
        if is_split(path) {
            let parts = Parts::open(path).map_err(io::Error::other)?;
            return RandomAccess::of_parts(Arc::new(parts));
        }
        Ok(RandomAccess::File(fs_err::File::open(path)?))
    }

    pub fn of_parts(parts: Arc<Parts>) -> io::Result<RandomAccess> {
        let files = parts
            .parts
            .iter()
            .map(|p| {
                fs_err::File::open(&p.path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        PartsError::Missing {
                            part: p.path.clone(),
                        },
                    )
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(RandomAccess::Parts { parts, files })
    }

    /// Like `FileExt::read_at`: may return fewer bytes than asked (at a part boundary).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            RandomAccess::File(f) => f.read_at(buf, offset),
            RandomAccess::Parts { parts, files } => parts.read_at_with(files, buf, offset),
        }
    }

    /// Like `FileExt::read_exact_at`, across part boundaries.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! size_case {
        ($name:ident, $text:expr, $bytes:expr) => {
            #[test]
            fn $name() {
                assert_eq!(parse_size($text).unwrap(), $bytes);
            }
        };
    }
    size_case!(size_m, "3900M", 3900 << 20);
    size_case!(size_g, "4G", 4 << 30);
    size_case!(size_k, "2048k", 2 << 20);
    size_case!(size_mib, "10MiB", 10 << 20);
    size_case!(size_fat32, "fat32", 4000 << 20);
    size_case!(size_dvd, "DVD", 4450 << 20);
    size_case!(size_plain, "1048576", 1 << 20);

    #[test]
    fn sizes_refused() {
        for t in ["", "x", "10Q", "1K", "-5M", "99999999999999T"] {
            assert!(parse_size(t).is_err(), "{t}");
        }
        // The named sizes fit their media.
        assert!(parse_size("fat32").unwrap() < (4 << 30) - 1);
        assert!(parse_size("dvd").unwrap() < 4_700_372_992);
    }

    #[test]
    fn list_path_of_names() {
        assert_eq!(
            list_path(Path::new("/a/b.tar")),
            Path::new("/a/b.parts.json")
        );
        assert_eq!(list_path(Path::new("b")), Path::new("b.parts.json"));
    }

    fn write_split(dir: &Path, data: &[u8], size: u64) -> PathBuf {
        let out = dir.join("x.tar");
        let mut w = SplitWriter::create(&out, size).unwrap();
        for chunk in data.chunks(777) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap().0
    }

    #[test]
    fn split_cat_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let list = write_split(dir.path(), &data, 4096);
        let parts = Arc::new(Parts::open(&list).unwrap());
        assert_eq!(parts.parts.len(), 3);
        assert_eq!(parts.size, 10_000);
        // cat of the parts in name order is the stream.
        let mut cat = Vec::new();
        for i in 0..3 {
            cat.extend(fs_err::read(dir.path().join(part_name("x.tar", i))).unwrap());
        }
        assert_eq!(cat, data);
        // Sequential read, with seeks across boundaries.
        let mut r = parts.reader();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        r.seek(SeekFrom::Start(4090)).unwrap();
        let mut b = [0u8; 20];
        r.read_exact(&mut b).unwrap();
        assert_eq!(&b[..], &data[4090..4110]);
        // Positional reads, from the first part's name too.
        let ra = RandomAccess::open(&dir.path().join("x.tar.000")).unwrap();
        let mut b = vec![0u8; 9000];
        ra.read_exact_at(&mut b, 1000).unwrap();
        assert_eq!(&b[..], &data[1000..]);
        assert!(parts.check_hashes().unwrap().is_empty());
        // No temporary files left.
        let names: Vec<String> = fs_err::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
    }

    #[test]
    fn missing_short_and_corrupt_parts_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 10_000];
        let list = write_split(dir.path(), &data, 4096);
        let p1 = dir.path().join("x.tar.001");
        // One byte changed.
        let mut bytes = fs_err::read(&p1).unwrap();
        bytes[5] ^= 1;
        fs_err::write(&p1, &bytes).unwrap();
        let errs = Parts::open(&list).unwrap().check_hashes().unwrap();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("x.tar.001"), "{}", errs[0]);
        // Short.
        fs_err::write(&p1, &bytes[..100]).unwrap();
        let e = Parts::open(&list).unwrap_err();
        assert!(
            matches!(e, PartsError::Size { .. }) && e.to_string().contains("x.tar.001"),
            "{e}"
        );
        // Missing.
        fs_err::remove_file(&p1).unwrap();
        let e = Parts::open(&list).unwrap_err();
        assert!(
            matches!(e, PartsError::Missing { .. }) && e.to_string().contains("x.tar.001"),
            "{e}"
        );
    }

    #[test]
    fn unfinished_writer_leaves_nothing_and_stale_parts_go() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("y.tar");
        {
            let mut w = SplitWriter::create(&out, 1000).unwrap();
            w.write_all(&[1u8; 2500]).unwrap();
        }
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 0);
        write_split_named(&out, 5000, 1000);
        assert!(dir.path().join("y.tar.004").exists());
        write_split_named(&out, 1500, 1000);
        assert!(dir.path().join("y.tar.001").exists());
        assert!(!dir.path().join("y.tar.002").exists());
    }

    fn write_split_named(out: &Path, n: usize, size: u64) {
        let mut w = SplitWriter::create(out, size).unwrap();
        w.write_all(&vec![3u8; n]).unwrap();
        w.finish().unwrap();
    }
}
