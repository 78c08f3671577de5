//! Bundle reader: owns walking a bundle tar (plain, or compressed afterwards with gzip or
//! zstd, detected by magic bytes), refusing hostile members (absolute paths, `..`, links,
//! devices, duplicates, oversized JSON) with the member named, `open_meta` (the metadata
//! members at the start of the tar, without reading any blob) and the member index (offset
//! and size of each file, for `serve`). Used by `bundle::verify`, `engine` (load), `cli`.

use super::meta::{BundleMeta, COMPOSE_DIR, FORMAT, META_PATH, SIGNATURE_PATH, SUMS_PATH};
use super::parts::{Parts, Stream};
use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::image::{ArchiveEntry, Index};
use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Largest JSON member or JSON blob read into memory (containerd's limit for manifests).
pub const JSON_LIMIT: u64 = 20 << 20;
/// Largest metadata member (everything not under `blobs/`: bundle.json, SHA256SUMS,
/// manifest.json, index.json, compose files). Ample for hundreds of images; small enough
/// that parsing one (JSON of tiny elements grows about 14-fold in memory) stays far below
/// 100 MB.
pub const META_LIMIT: u64 = 4 << 20;
/// Most bytes of metadata members read into memory in one walk, all together.
pub const META_TOTAL_LIMIT: u64 = 16 << 20;

pub const MANIFEST_PATH: &str = "manifest.json";
pub const INDEX_PATH: &str = "index.json";
pub const OCI_LAYOUT_PATH: &str = "oci-layout";
pub const BLOBS_DIR: &str = "blobs/sha256/";

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("Failed to open bundle `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Failed to read bundle `{}` at member `{member}`", path.display())]
    Io {
        path: PathBuf,
        /// The member being read, or the previous one when reading a header.
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("Bundle `{}` is truncated: {detail}", path.display())]
    Truncated { path: PathBuf, detail: String },
    /// The first tar header does not parse: the file is something else entirely.
    #[error("`{}` is not a bundle (not a tar archive)", path.display())]
    NotATar { path: PathBuf },
    #[error("Bundle `{}` has a corrupt tar header after member `{after}`: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        after: String,
        reason: String,
    },
    #[error("Bundle `{}` holds an unsafe member name `{member}`: {reason}", path.display())]
    UnsafeName {
        path: PathBuf,
        member: String,
        reason: &'static str,
    },
    #[error("Bundle `{}` holds `{member}` of type {kind}: only regular files are allowed (no links, devices or pipes)", path.display())]
    NotRegular {
        path: PathBuf,
        member: String,
        kind: String,
    },
    #[error("Bundle `{}` holds member `{member}` twice", path.display())]
    Duplicate { path: PathBuf, member: String },
    #[error("Bundle `{}`: `{member}` is {size} bytes, more than the {limit}-byte limit for metadata and JSON", path.display())]
    TooLarge {
        path: PathBuf,
        member: String,
        size: u64,
        limit: u64,
    },
    #[error("Bundle `{}`: `{member}` is not valid JSON of the expected shape", path.display())]
    Json {
        path: PathBuf,
        member: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("Bundle `{}`: `{SUMS_PATH}` line {line} is not `<sha256 hex>  <path>`: `{text}`", path.display())]
    BadSums {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("`{}` is not an airlock bundle: `{META_PATH}` is not among the first members (a plain `docker save` archive?)", path.display())]
    NotABundle { path: PathBuf },
    #[error("Bundle `{}`: the metadata members up to `{member}` hold more than {limit} bytes together", path.display())]
    MetaTooLarge {
        path: PathBuf,
        member: String,
        limit: u64,
    },
    #[error("Bundle `{}`: `{META_PATH}` names the project `{project}`, which is not a Compose project name (`[a-z0-9][a-z0-9_-]*`)", path.display())]
    ProjectName { path: PathBuf, project: String },
    #[error("Bundle `{}` has format `{found}`; this airlock reads `{FORMAT}`", path.display())]
    Format { path: PathBuf, found: String },
    #[error("Bundle `{}`: image `{image}` has {listed} layers in `{MANIFEST_PATH}` but {expected} in `{META_PATH}` (and its config's diff_ids)", path.display())]
    LayerCount {
        path: PathBuf,
        image: String,
        listed: usize,
        expected: usize,
    },
    #[error(transparent)]
    Parts(#[from] super::parts::PartsError),
    #[error(
        "Bundle `{}` is not signed (no `{SIGNATURE_PATH}`), but --key asks for a signature; refusing it", path.display()
    )]
    Unsigned { path: PathBuf },
    #[error("Bundle `{}` has `{SIGNATURE_PATH}` but no `{SUMS_PATH}` before the blobs", path.display())]
    NoSums { path: PathBuf },
    /// The key, or the signature (`bundle::signature`).
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
}

impl Classify for ReadError {
    fn class(&self) -> Class {
        match self {
            // The file is damaged: an integrity failure, like a digest mismatch.
            // So is a bundle failing its signature check.
            ReadError::Truncated { .. }
            | ReadError::Corrupt { .. }
            | ReadError::Unsigned { .. }
            | ReadError::NoSums { .. } => Class::Failed,
            ReadError::Parts(e) => e.class(),
            ReadError::Sign(e) => e.class(),
            _ => Class::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            ReadError::Parts(e) => e.hint(),
            ReadError::Sign(e) => e.hint(),
            _ => None,
        }
    }
}

/// How the bundle file is compressed (the bundle itself is an uncompressed tar; users may
/// compress it for transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// By magic bytes: gzip `1f 8b`, zstd `28 b5 2f fd`.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// One member of the tar as the walker reports it.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// Validated relative name (`blobs/sha256/<hex>`, `manifest.json`, ...).
    pub name: String,
    /// Bytes of content.
    pub size: u64,
    /// Offset of the content in the (decompressed) tar stream.
    pub offset: u64,
    /// The member's header (ustar part), for re-emitting the member elsewhere.
    pub header: tar::Header,
}

impl MemberInfo {
    /// The blob digest when the member is `blobs/sha256/<hex>`.
    pub fn blob_digest(&self) -> Option<Digest> {
        self.name
            .strip_prefix(BLOBS_DIR)
            .and_then(|hex| Digest::from_hex(hex).ok())
    }
}

/// What the walker does after a member's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// A byte source over the bundle file: seekable when plain, forward-only when compressed.
/// Tracks the position in the decompressed stream.
struct Source {
    inner: SourceKind,
    pos: u64,
}

enum SourceKind {
    Plain(BufReader<Stream>),
    Gzip(flate2::read::MultiGzDecoder<BufReader<Stream>>),
    Zstd(zstd::Decoder<'static, BufReader<Stream>>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            SourceKind::Plain(r) => r.read(buf)?,
            SourceKind::Gzip(r) => r.read(buf)?,
            SourceKind::Zstd(r) => r.read(buf)?,
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Source {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match (&mut self.inner, to) {
            (SourceKind::Plain(r), to) => {
                self.pos = r.seek(to)?;
                Ok(self.pos)
            }
            // Compressed: only forward skips, by reading and discarding.
            (_, SeekFrom::Current(n)) if n >= 0 => {
                let skipped = io::copy(&mut (&mut *self).take(n as u64), &mut io::sink())?;
                if skipped < n as u64 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "unexpected EOF during skip",
                    ));
                }
                Ok(self.pos)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "compressed bundles are read forward only",
            )),
        }
    }
}

/// An opened bundle file: path, compression and (plain) length. Cheap; every walk reopens
/// the file, so one `Bundle` serves several walks and threads.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub compression: Compression,
    /// Length of the file on disk (of all parts, for a split bundle).
    pub file_len: u64,
    /// The parts of a split bundle (`path` is then the parts file or the first part).
    pub parts: Option<std::sync::Arc<Parts>>,
}

/// Summary of a walk that reached the end of the archive.
#[derive(Debug, Clone, Default)]
pub struct WalkEnd {
    pub members: u64,
    /// Bytes of the (decompressed) tar stream read or skipped.
    pub stream_len: u64,
}

impl Bundle {
    pub fn open(path: &Path) -> Result<Bundle, ReadError> {
        let open_err = |source| ReadError::Open {
            path: path.to_path_buf(),
            source,
        };
        let (mut file, file_len, parts) = if super::parts::is_split(path) {
            let parts = std::sync::Arc::new(Parts::open(path)?);
            let len = parts.size;
            (Stream::Parts(parts.reader()), len, Some(parts))
        } else {
            let file = fs_err::File::open(path).map_err(open_err)?;
            let len = file.metadata().map_err(open_err)?.len();
            (Stream::File(file), len, None)
        };
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match file.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(open_err(e)),
            }
        }
        Ok(Bundle {
            path: path.to_path_buf(),
            compression: Compression::detect(&head[..got]),
            file_len,
            parts,
        })
    }

    fn source(&self) -> Result<Source, ReadError> {
        let open_err = |source| ReadError::Open {
            path: self.path.clone(),
            source,
        };
        let file = Stream::open(&self.path, self.parts.as_ref()).map_err(open_err)?;
        let buffered = BufReader::with_capacity(256 << 10, file);
        let inner = match self.compression {
            Compression::None => SourceKind::Plain(buffered),
            Compression::Gzip => SourceKind::Gzip(flate2::read::MultiGzDecoder::new(buffered)),
            Compression::Zstd => {
                SourceKind::Zstd(zstd::Decoder::with_buffer(buffered).map_err(open_err)?)
            }
        };
        Ok(Source { inner, pos: 0 })
    }

    /// Walk every member in tar order. `f` gets each regular file with a reader over its
    /// content; whatever it leaves unread is skipped (seeking when the file is plain).
    /// Hostile members stop the walk with a `ReadError` naming them. A reader that hits the
    /// end of the file inside a member makes the walk fail with `ReadError::Truncated`, even
    /// when `f` reports its own error. Returns `None` when `f` stopped the walk.
    pub fn walk<E, F>(&self, mut f: F) -> Result<Option<WalkEnd>, E>
    where
        E: From<ReadError>,
        F: FnMut(&MemberInfo, &mut dyn Read) -> Result<Flow, E>,
    {
        let path = &self.path;
        let mut archive = tar::Archive::new(self.source()?);
        let mut seen: HashSet<String> = HashSet::new();
        let mut last = String::from("(start of archive)");
        let mut last_end = 0u64;
        let mut members = 0u64;
        let entries = archive
            .entries_with_seek()
            .map_err(|e| self.header_error(&last, true, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.header_error(&last, seen.is_empty(), e))?;
            let name = member_name(path, &entry)?;
            let kind = entry.header().entry_type();
            let size = entry.size();
            let offset = entry.raw_file_position();
            last_end = offset + size.div_ceil(512) * 512;
            if !seen.insert(name.clone()) {
                return Err(ReadError::Duplicate {
                    path: path.clone(),
                    member: name,
                }
                .into());
            }
            last = name.clone();
            if kind.is_dir() {
                continue;
            }
            if !(kind.is_file() || kind == tar::EntryType::Continuous) {
                return Err(ReadError::NotRegular {
                    path: path.clone(),
                    member: name,
                    kind: kind_name(kind),
                }
                .into());
            }
            if self.compression == Compression::None && offset + size > self.file_len {
                return Err(ReadError::Truncated {
                    path: path.clone(),
                    detail: format!(
                        "member `{name}` needs {size} bytes but the file ends {} bytes into it",
                        self.file_len.saturating_sub(offset)
                    ),
                }
                .into());
            }
            members += 1;
            let info = MemberInfo {
                name,
                size,
                offset,
                header: entry.header().clone(),
            };
            let mut counted = Counted {
                inner: &mut entry,
                left: size,
                short: false,
            };
            let flow = f(&info, &mut counted);
            if counted.short {
                return Err(self.truncated_in(&info.name).into());
            }
            if flow? == Flow::Stop {
                return Ok(None);
            }
        }
        let source = archive.into_inner();
        // A tar ends with zero blocks; a file cut exactly between members has none.
        if members > 0 && source.pos < last_end + 512 {
            return Err(ReadError::Truncated {
                path: path.clone(),
                detail: format!(
                    "the archive ends after member `{last}` without the end-of-archive marker"
                ),
            }
            .into());
        }
        Ok(Some(WalkEnd {
            members,
            stream_len: source.pos,
        }))
    }

    /// The error for a tar header that cannot be read after member `after`; `first`: it is
    /// the archive's first header, so a file that ends in it or fails to parse as one is
    /// not a tar archive at all (rather than a truncated or corrupt bundle).
    fn header_error(&self, after: &str, first: bool, e: io::Error) -> ReadError {
        let text = e.to_string();
        let ends = e.kind() == io::ErrorKind::UnexpectedEof
            || text.contains("EOF")
            || text.contains("entire block");
        let corrupt =
            text.contains("checksum") || text.contains("numeric field") || text.contains("invalid");
        if first && (ends || corrupt) {
            ReadError::NotATar {
                path: self.path.clone(),
            }
        } else if ends {
            ReadError::Truncated {
                path: self.path.clone(),
                detail: format!("the file ends inside the tar header after member `{after}`"),
            }
        } else if corrupt {
            ReadError::Corrupt {
                path: self.path.clone(),
                after: after.to_string(),
                reason: text,
            }
        } else {
            ReadError::Io {
                path: self.path.clone(),
                member: after.to_string(),
                source: e,
            }
        }
    }

    fn truncated_in(&self, member: &str) -> ReadError {
        ReadError::Truncated {
            path: self.path.clone(),
            detail: format!("the file ends inside member `{member}`"),
        }
    }

    /// Offsets and sizes of every regular member (for `serve` and ranged reads). Offsets are
    /// into the decompressed stream; only meaningful for random access when `compression`
    /// is `None`.
    pub fn members(&self) -> Result<Vec<MemberInfo>, ReadError> {
        let mut out = Vec::new();
        self.walk(|info, _| {
            out.push(info.clone());
            Ok::<_, ReadError>(Flow::Continue)
        })?;
        Ok(out)
    }

    /// Read the metadata members at the start of the tar (`airlock/...`, `oci-layout`,
    /// `index.json`, `manifest.json`), stopping at the first blob: a few kilobytes even of a
    /// multi-gigabyte bundle.
    pub fn open_meta(&self) -> Result<Meta, ReadError> {
        let mut collector = MetaCollector::default();
        self.walk(|info, r| {
            if info.name.starts_with(BLOBS_DIR) {
                return Ok(Flow::Stop);
            }
            collector.take(self, info, r)?;
            Ok::<_, ReadError>(Flow::Continue)
        })?;
        let meta = collector.finish(self)?;
        meta.check_layer_counts()?;
        Ok(meta)
    }
}

/// Read a member of at most `JSON_LIMIT` bytes into memory.
pub fn read_small(
    bundle: &Bundle,
    info: &MemberInfo,
    r: &mut dyn Read,
) -> Result<Vec<u8>, ReadError> {
    read_limited(bundle, info, r, JSON_LIMIT)
}

/// Read a member of at most `limit` bytes into memory (refused by its header size first).
pub fn read_limited(
    bundle: &Bundle,
    info: &MemberInfo,
    r: &mut dyn Read,
    limit: u64,
) -> Result<Vec<u8>, ReadError> {
    if info.size > limit {
        return Err(ReadError::TooLarge {
            path: bundle.path.clone(),
            member: info.name.clone(),
            size: info.size,
            limit,
        });
    }
    let mut buf = Vec::with_capacity(info.size as usize);
    r.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Io {
            path: bundle.path.clone(),
            member: info.name.clone(),
            source,
        })?;
    Ok(buf)
}

/// A reader over one member that notices a file ending inside it.
struct Counted<'a, R> {
    inner: &'a mut R,
    left: u64,
    short: bool,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.short = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the bundle ends inside this member",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn kind_name(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Symlink => "symlink".into(),
        tar::EntryType::Link => "hard link".into(),
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "fifo".into(),
        tar::EntryType::GNUSparse => "sparse file".into(),
        other => format!("{other:?}"),
    }
}

/// The member's name, validated: UTF-8, relative, no `.`/`..` components, no empty parts.
fn member_name<R: Read>(path: &Path, entry: &tar::Entry<'_, R>) -> Result<String, ReadError> {
    let raw = entry.path_bytes();
    let unsafe_name = |reason| ReadError::UnsafeName {
        path: path.to_path_buf(),
        member: String::from_utf8_lossy(&raw).into_owned(),
        reason,
    };
    let name = std::str::from_utf8(&raw).map_err(|_| unsafe_name("not UTF-8"))?;
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(unsafe_name("empty name"));
    }
    if trimmed.starts_with('/') || trimmed.contains('\\') || trimmed.contains('\0') {
        return Err(unsafe_name("absolute path or backslash"));
    }
    for part in trimmed.split('/') {
        match part {
            ".." => return Err(unsafe_name("`..` component")),
            "" | "." => return Err(unsafe_name("empty or `.` component")),
            _ => {}
        }
    }
    Ok(trimmed.to_string())
}

/// The metadata of a bundle, as `open_meta` reads it.
#[derive(Debug, Clone)]
pub struct Meta {
    pub bundle: Bundle,
    pub meta: BundleMeta,
    /// The bytes of `airlock/bundle.json` (its sha256 identifies the bundle, for delta bases).
    pub meta_bytes: Vec<u8>,
    /// `SHA256SUMS`: path -> digest, sorted by path.
    pub sums: BTreeMap<String, Digest>,
    /// Compose and env files: path relative to the project directory -> content.
    pub compose_files: BTreeMap<String, Vec<u8>>,
    pub manifest: Vec<ArchiveEntry>,
    pub index: Option<Index>,
    pub oci_layout: bool,
    pub signed: bool,
    /// Every metadata member read, with its size, in tar order.
    pub members: Vec<(String, u64)>,
    /// The bytes of every metadata member read (`members`), at most `META_TOTAL_LIMIT`
    /// together: what `engine::load` copies into a load stream besides blobs.
    pub raw: BTreeMap<String, Vec<u8>>,
}

impl Meta {
    /// Identity of the bundle: sha256 of its bundle.json bytes.
    pub fn id(&self) -> Digest {
        Digest::of(&self.meta_bytes)
    }

    /// Every image of bundle.json has as many layers in manifest.json as bundle.json lists
    /// (pack writes them from the config's diff_ids). A bundle that disagrees would make the
    /// engine refuse the load half-way; `open_meta` refuses it before anything is sent.
    pub fn check_layer_counts(&self) -> Result<(), ReadError> {
        for img in &self.meta.images {
            let config = format!("{BLOBS_DIR}{}", img.config.digest.hex());
            if let Some(entry) = self.manifest.iter().find(|e| e.config == config)
                && entry.layers.len() != img.layers.len()
            {
                return Err(ReadError::LayerCount {
                    path: self.bundle.path.clone(),
                    image: img.reference.to_string(),
                    listed: entry.layers.len(),
                    expected: img.layers.len(),
                });
            }
        }
        Ok(())
    }
}

/// Collects the metadata members during any walk (`open_meta`, verify, load).
#[derive(Debug, Default)]
pub struct MetaCollector {
    meta: Option<(BundleMeta, Vec<u8>)>,
    sums: BTreeMap<String, Digest>,
    compose_files: BTreeMap<String, Vec<u8>>,
    manifest: Option<Vec<ArchiveEntry>>,
    index: Option<Index>,
    oci_layout: bool,
    signed: bool,
    members: Vec<(String, u64)>,
    /// Raw bytes of each metadata member (for hashing against SHA256SUMS).
    pub raw: BTreeMap<String, Vec<u8>>,
    /// Bytes of metadata read so far.
    total: u64,
}

impl MetaCollector {
    /// Whether `name` is a metadata member (everything that is not a blob).
    pub fn is_meta(name: &str) -> bool {
        !name.starts_with(BLOBS_DIR)
    }

    /// Consume the member if it is metadata; returns whether it was.
    pub fn take(
        &mut self,
        bundle: &Bundle,
        info: &MemberInfo,
        r: &mut dyn Read,
    ) -> Result<bool, ReadError> {
        if !Self::is_meta(&info.name) {
            return Ok(false);
        }
        let name = info.name.as_str();
        let bytes = read_limited(bundle, info, r, META_LIMIT)?;
        self.total += bytes.len() as u64;
        if self.total > META_TOTAL_LIMIT {
            return Err(ReadError::MetaTooLarge {
                path: bundle.path.clone(),
                member: name.to_string(),
                limit: META_TOTAL_LIMIT,
            });
        }
        let json_err = |source| ReadError::Json {
            path: bundle.path.clone(),
            member: name.to_string(),
            source,
        };
        match name {
            META_PATH => {
                // Only `format` first (other fields are skipped, not built: a `serde_json::Value`
                // of a few MB of tiny elements takes hundreds of MB), so another format is
                // named even when the rest does not parse.
                #[derive(serde::Deserialize)]
                struct FormatOnly {
                    format: Option<String>,
                }
                if let Ok(FormatOnly {
                    format: Some(found),
                }) = serde_json::from_slice::<FormatOnly>(&bytes)
                    && found != FORMAT
                {
                    return Err(ReadError::Format {
                        path: bundle.path.clone(),
                        found,
                    });
                }
                let meta: BundleMeta = serde_json::from_slice(&bytes).map_err(json_err)?;
                // `verify` and `up` stage the compose files in a directory of this name: `/etc`
                // or `../..` would put them elsewhere. Pack writes a normalised Compose name.
                if !valid_project_name(&meta.project) {
                    return Err(ReadError::ProjectName {
                        path: bundle.path.clone(),
                        project: meta.project.chars().take(200).collect(),
                    });
                }
                self.meta = Some((meta, bytes.clone()));
            }
            SUMS_PATH => self.sums = parse_sums(bundle, &bytes)?,
            SIGNATURE_PATH => self.signed = true,
            MANIFEST_PATH => {
                self.manifest = Some(ArchiveEntry::parse_list(&bytes).map_err(json_err)?)
            }
            INDEX_PATH => self.index = Some(Index::parse_layout(&bytes).map_err(json_err)?),
            OCI_LAYOUT_PATH => self.oci_layout = true,
            _ => {
                if let Some(rel) = name.strip_prefix(COMPOSE_DIR) {
                    self.compose_files.insert(rel.to_string(), bytes.clone());
                }
            }
        }
        self.members.push((name.to_string(), info.size));
        self.raw.insert(name.to_string(), bytes);
        Ok(true)
    }

    pub fn finish(self, bundle: &Bundle) -> Result<Meta, ReadError> {
        let Some((meta, meta_bytes)) = self.meta else {
            return Err(ReadError::NotABundle {
                path: bundle.path.clone(),
            });
        };
        Ok(Meta {
            bundle: bundle.clone(),
            meta,
            meta_bytes,
            sums: self.sums,
            compose_files: self.compose_files,
            manifest: self.manifest.unwrap_or_default(),
            index: self.index,
            oci_layout: self.oci_layout,
            signed: self.signed,
            members: self.members,
            raw: self.raw,
        })
    }

    pub fn has_manifest(&self) -> bool {
        self.manifest.is_some()
    }
    pub fn manifest(&self) -> &[ArchiveEntry] {
        self.manifest.as_deref().unwrap_or_default()
    }
    pub fn meta(&self) -> Option<&BundleMeta> {
        self.meta.as_ref().map(|(m, _)| m)
    }
    pub fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }
}

/// A Compose project name as compose-go normalises it: `[a-z0-9][a-z0-9_-]*`.
pub fn valid_project_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parse `sha256sum` output: `<64 hex>  <path>` (or `<hex> *<path>`, binary mode).
pub fn parse_sums(bundle: &Bundle, bytes: &[u8]) -> Result<BTreeMap<String, Digest>, ReadError> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || ReadError::BadSums {
            path: bundle.path.clone(),
            line: i + 1,
            text: line.chars().take(200).collect(),
        };
        let (hex, rest) = line.split_once(' ').ok_or_else(bad)?;
        let file = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .ok_or_else(bad)?;
        let digest = Digest::from_hex(hex).map_err(|_| bad())?;
        if file.is_empty() {
            return Err(bad());
        }
        out.insert(file.to_string(), digest);
    }
    Ok(out)
}

/// The compose files to pass with `-f`: every file of the bundle's list that no other
/// listed file names in an `extends`/`include` line (those are read through the file that
/// names them).
pub fn entry_files(files: &[String], contents: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let named_by_other = |f: &str| {
        let base = f.rsplit('/').next().unwrap_or(f);
        files.iter().filter(|o| o.as_str() != f).any(|o| {
            let text = contents
                .get(o)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            text.lines().any(|l| {
                let t = l.trim();
                t.contains(base)
                    && (t.starts_with("file:")
                        || t.starts_with("path:")
                        || t.starts_with("- ")
                        || t.starts_with("include:"))
            })
        })
    };
    let out: Vec<String> = files
        .iter()
        .filter(|f| !named_by_other(f))
        .cloned()
        .collect();
    if out.is_empty() {
        files.iter().take(1).cloned().collect()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Build a tar in memory from (name, type, content) rows.
    fn tar_of(rows: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in rows {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // set_path refuses `..`; write the raw name bytes instead.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("target").unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn walk_err(rows: &[(&str, tar::EntryType, &[u8])]) -> ReadError {
        let f = write_tmp(&tar_of(rows));
        let b = Bundle::open(f.path()).unwrap();
        b.members().unwrap_err()
    }

    const REG: tar::EntryType = tar::EntryType::Regular;

    #[test]
    fn refuses_parent_components() {
        assert!(
            matches!(walk_err(&[("a/../../etc/passwd", REG, b"x")]), ReadError::UnsafeName { member, .. } if member == "a/../../etc/passwd")
        );
    }
    #[test]
    fn refuses_absolute() {
        assert!(matches!(
            walk_err(&[("/etc/passwd", REG, b"x")]),
            ReadError::UnsafeName { .. }
        ));
    }
    #[test]
    fn refuses_links() {
        assert!(
            matches!(walk_err(&[("blobs/sha256/x", tar::EntryType::Symlink, b"")]), ReadError::NotRegular { member, .. } if member == "blobs/sha256/x")
        );
    }
    #[test]
    fn refuses_devices() {
        assert!(matches!(
            walk_err(&[("dev", tar::EntryType::Char, b"")]),
            ReadError::NotRegular { .. }
        ));
    }
    #[test]
    fn refuses_duplicates() {
        assert!(
            matches!(walk_err(&[("a", REG, b"1"), ("a", REG, b"2")]), ReadError::Duplicate { member, .. } if member == "a")
        );
    }

    #[test]
    fn detects_truncation_inside_and_between_members() {
        let whole = tar_of(&[("a", REG, &[7u8; 3000]), ("b", REG, b"hello")]);
        for cut in [700, 1536 + 512, 2048 + 512 + 512] {
            let f = write_tmp(&whole[..cut]);
            let b = Bundle::open(f.path()).unwrap();
            let err = b.walk(|_, r| {
                io::copy(r, &mut io::sink()).map_err(|source| ReadError::Io {
                    path: PathBuf::new(),
                    member: String::new(),
                    source,
                })?;
                Ok::<_, ReadError>(Flow::Continue)
            });
            assert!(
                matches!(err, Err(ReadError::Truncated { .. })),
                "cut at {cut}: {err:?}"
            );
        }
        let f = write_tmp(&whole);
        assert_eq!(Bundle::open(f.path()).unwrap().members().unwrap().len(), 2);
    }

    #[test]
    fn reads_gzip_and_zstd() {
        let whole = tar_of(&[("a", REG, b"one"), ("b", REG, b"two")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&whole).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&whole[..], 1).unwrap();
        for (bytes, kind) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
            let f = write_tmp(&bytes);
            let b = Bundle::open(f.path()).unwrap();
            assert_eq!(b.compression, kind);
            let mut seen = Vec::new();
            b.walk(|info, r| {
                let mut s = String::new();
                r.read_to_string(&mut s).unwrap();
                seen.push(format!("{}={s}", info.name));
                Ok::<_, ReadError>(Flow::Continue)
            })
            .unwrap();
            assert_eq!(seen, ["a=one", "b=two"]);
            // truncated compressed stream
            let f = write_tmp(&bytes[..bytes.len() / 2]);
            assert!(Bundle::open(f.path()).unwrap().members().is_err());
        }
    }

    #[test]
    fn not_a_bundle() {
        let f = write_tmp(&tar_of(&[
            ("manifest.json", REG, b"[]"),
            ("blobs/sha256/aa", REG, b"x"),
        ]));
        assert!(matches!(
            Bundle::open(f.path()).unwrap().open_meta(),
            Err(ReadError::NotABundle { .. })
        ));
    }

    #[test]
    fn parses_sums() {
        let f = write_tmp(b"");
        let b = Bundle::open(f.path()).unwrap();
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let sums = parse_sums(
            &b,
            format!("{hex}  manifest.json\n{hex} *index.json\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(sums.len(), 2);
        assert!(parse_sums(&b, b"abc  x\n").is_err());
    }
}
