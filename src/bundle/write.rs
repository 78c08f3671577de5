//! Bundle writer: owns producing a bundle file exactly as docs/bundle-format.md says, from
//! resolved images whose blobs come from a `source::Source` (the `store` for `pack`; any
//! other source works the same). Member order: `airlock/bundle.json`,
//! `airlock/SHA256SUMS`, `airlock/compose/*`, `oci-layout`, `index.json`, `manifest.json`,
//! then `blobs/sha256/*` (indexes and manifests, configs, layers smallest to largest), each
//! blob once. Regular files only, mode 0644, owner 0/0, mtime 0; PAX records for names over
//! 100 bytes and sizes of 8 GiB or more.
//!
//! The tar is written to `.<name>.airlock-partial-<pid>` in the output directory and renamed
//! when complete; an error or cancellation removes it, so nothing ever appears at the
//! output path unless whole. Blobs are re-hashed while copied out of the source: a damaged
//! blob is refused (and discarded from a cache), never bundled. Used by `pack`.

use super::meta::{BundleMeta, COMPOSE_DIR, META_PATH, SIGNATURE_PATH, SUMS_PATH};
use crate::digest::{Digest, HashingReader};
use crate::error::{Class, Classify};
use crate::image::{ArchiveEntry, Descriptor, Index, ResolvedImage, media};
use crate::source::{Source, SourceError};
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("Failed to write bundle `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Failed to read `{}` for the bundle", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "Blob `{digest}` in the cache is damaged ({reason}); it was removed, run the pack again to fetch it"
    )]
    Damaged { digest: Digest, reason: String },
    #[error("Writing bundle `{}` was cancelled; nothing was left at that path", path.display())]
    Cancelled { path: PathBuf },
    /// Too little free space where the bundle goes: found before writing (free space checked
    /// against the bundle's exact size), or as `ENOSPC`/`EDQUOT` while writing (space taken
    /// by someone else meanwhile). Either way nothing is left at the output path.
    #[error(
        "Not enough space for bundle `{}`: it needs {} ({needed} bytes) in `{}`, {} ({available} bytes) {}; nothing was left at that path",
        path.display(),
        human(*needed),
        dir.display(),
        human(*available),
        if *during_write { "were free when writing started, and the disk filled up" } else { "are free" }
    )]
    NoSpace {
        path: PathBuf,
        dir: PathBuf,
        needed: u64,
        available: u64,
        during_write: bool,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Parts(#[from] super::parts::PartsError),
    #[error(transparent)]
    Sign(#[from] crate::sign::SignError),
}

impl Classify for WriteError {
    fn class(&self) -> Class {
        match self {
            WriteError::Damaged { .. } => Class::Failed,
            WriteError::ReadFile { .. } => Class::Input,
            WriteError::Source(e) => e.class(),
            WriteError::Parts(e) => e.class(),
            WriteError::Sign(e) => e.class(),
            _ => Class::Environment,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            WriteError::Source(e) => e.hint(),
            WriteError::Parts(e) => e.hint(),
            WriteError::Sign(e) => e.hint(),
            _ => None,
        }
    }
}

/// A file of the compose project to carry under `airlock/compose/`.
#[derive(Debug, Clone)]
pub struct ComposeFile {
    /// Path inside `airlock/compose/` (relative to the project directory, `/`-separated).
    pub name: String,
    pub source: PathBuf,
}

/// Everything a bundle is made of.
pub struct Input<'a> {
    /// Metadata; `blobs`, `size` and `uncompressed_size` are filled in by `write`.
    pub meta: BundleMeta,
    /// The images, in bundle order; `meta.images` must describe the same list.
    pub images: &'a [ResolvedImage],
    pub compose_files: Vec<ComposeFile>,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    pub path: PathBuf,
    /// Size of the bundle file.
    pub bytes: u64,
    pub blobs: u64,
    /// The bundle.json written (with totals).
    #[serde(skip)]
    pub meta: BundleMeta,
}

/// Temporary file removed on drop unless persisted.
struct TempGuard {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs_err::remove_file(&self.path);
        }
    }
}

/// `1.2 MiB`: sizes in messages.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Refuse (`NoSpace`, nothing written) when the file system that will hold `output` has
/// fewer than `needed` free bytes; else the free bytes, when they can be known.
pub fn check_space(output: &Path, needed: u64) -> Result<Option<u64>, WriteError> {
    let dir = crate::disk::output_dir(output);
    let available = crate::disk::free_bytes(&dir);
    match available {
        Some(free) if free < needed => Err(WriteError::NoSpace {
            path: output.to_path_buf(),
            dir,
            needed,
            available: free,
            during_write: false,
        }),
        _ => Ok(available),
    }
}

/// Bytes of a tar member as `append` writes it: a PAX header block and records when the
/// name or size does not fit ustar, the header, the data padded to 512.
fn member_size(name: &str, size: u64) -> u64 {
    let pad = |n: u64| n.div_ceil(512) * 512;
    let mut records = 0u64;
    if !(name.len() <= 100 && name.is_ascii()) {
        records += pax_record("path", name).len() as u64;
    }
    if size >= 8 << 30 {
        records += pax_record("size", &size.to_string()).len() as u64;
    }
    let pax = if records > 0 { 512 + pad(records) } else { 0 };
    pax + 512 + pad(size)
}

/// Distinct blobs of `images` in bundle order.
pub fn blob_order(images: &[ResolvedImage]) -> Vec<Descriptor> {
    let mut seen: BTreeMap<Digest, (u8, Descriptor)> = BTreeMap::new();
    for img in images {
        for d in [&img.top, &img.manifest] {
            let rank = if media::is_index(&d.media_type) { 0 } else { 1 };
            seen.entry(d.digest.clone()).or_insert((rank, plain(d)));
        }
        seen.entry(img.config.digest.clone())
            .or_insert((2, plain(&img.config)));
        for e in &img.extra {
            seen.entry(e.digest.clone()).or_insert((1, plain(e)));
        }
        for l in &img.layers {
            seen.entry(l.blob.digest.clone())
                .or_insert((3, plain(&l.blob)));
        }
    }
    let mut v: Vec<(u8, Descriptor)> = seen.into_values().collect();
    v.sort_by(|a, b| (a.0, a.1.size, &a.1.digest).cmp(&(b.0, b.1.size, &b.1.digest)));
    v.into_iter().map(|(_, d)| d).collect()
}

fn plain(d: &Descriptor) -> Descriptor {
    Descriptor::new(&d.media_type, d.digest.clone(), d.size)
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// `manifest.json`: one entry per distinct config, RepoTags of every reference naming it.
pub fn docker_manifest(images: &[ResolvedImage]) -> Vec<u8> {
    let mut order: Vec<&Digest> = Vec::new();
    let mut entries: BTreeMap<&Digest, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for img in images {
        let e = entries.entry(&img.config.digest).or_insert_with(|| {
            order.push(&img.config.digest);
            (
                Vec::new(),
                img.layers
                    .iter()
                    .map(|l| blob_path(&l.blob.digest))
                    .collect(),
            )
        });
        if let Some(tag) = img.reference.familiar_tagged()
            && !e.0.contains(&tag)
        {
            e.0.push(tag);
        }
    }
    let list: Vec<ArchiveEntry> = order
        .into_iter()
        .map(|cfg| {
            let (tags, layers) = &entries[cfg];
            ArchiveEntry {
                config: blob_path(cfg),
                repo_tags: tags.clone(),
                layers: layers.clone(),
                layer_sources: None,
            }
        })
        .collect();
    ArchiveEntry::list_bytes(&list)
}

/// `index.json`: one descriptor per reference, original top-level media type and digest.
pub fn oci_index(images: &[ResolvedImage]) -> Vec<u8> {
    let manifests: Vec<Descriptor> = images
        .iter()
        .map(|img| {
            let r = &img.reference;
            let mut ann = BTreeMap::new();
            match (r.tag(), r.digest()) {
                (None, Some(d)) => {
                    ann.insert(
                        "io.containerd.image.name".into(),
                        format!("{}@{d}", r.name()),
                    );
                }
                _ => {
                    let tag = r.tag_or_default().unwrap_or("latest");
                    ann.insert(
                        "io.containerd.image.name".into(),
                        format!("{}:{tag}", r.name()),
                    );
                    ann.insert("org.opencontainers.image.ref.name".into(), tag.into());
                }
            }
            let mut d = plain(&img.top);
            d.annotations = ann;
            d
        })
        .collect();
    Index::oci_bytes(manifests)
}

pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// What `write_with` does beyond one whole bundle file.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Blobs not to carry (delta bundles, `bundle::delta`): they stay named in
    /// `manifest.json` and the manifests, and are listed in `base.assumed`.
    pub omit: std::collections::BTreeSet<Digest>,
    /// Blobs to carry that no image names (layer patches, `bundle::meta::PatchMeta`),
    /// written after the layers, listed in `SHA256SUMS`.
    pub extra: Vec<Descriptor>,
    /// Cut the tar into parts of this many bytes (`bundle::parts`); `Written::path` is then
    /// the parts file.
    pub split_size: Option<u64>,
    /// Sign `SHA256SUMS` (`crate::sign`); the signature is stored right after it.
    pub signer: Option<crate::sign::Signer>,
}

/// Write the bundle to `output`. `cancel` is polled between chunks (Ctrl-C).
pub fn write(
    source: &dyn Source,
    input: Input<'_>,
    output: &Path,
    cancel: &AtomicBool,
) -> Result<Written, WriteError> {
    write_with(source, input, output, cancel, &WriteOptions::default())
}

/// `write`, leaving out `options.omit` and splitting at `options.split_size`.
pub fn write_with(
    source: &dyn Source,
    mut input: Input<'_>,
    output: &Path,
    cancel: &AtomicBool,
    options: &WriteOptions,
) -> Result<Written, WriteError> {
    let mut blobs: Vec<Descriptor> = blob_order(input.images)
        .into_iter()
        .filter(|d| !options.omit.contains(&d.digest))
        .collect();
    for e in &options.extra {
        if !blobs.iter().any(|b| b.digest == e.digest) {
            blobs.push(plain(e));
        }
    }
    for d in &blobs {
        if source.blob_size(&d.digest) != Some(d.size) {
            return Err(SourceError::Missing {
                from: source.describe(),
                digest: d.digest.clone(),
            }
            .into());
        }
    }
    let mut uncompressed = 0u64;
    let mut seen = std::collections::BTreeSet::new();
    for img in input.images {
        for l in &img.layers {
            if !options.omit.contains(&l.blob.digest) && seen.insert(&l.blob.digest) {
                uncompressed += l.uncompressed_size.unwrap_or(0);
            }
        }
    }
    input.meta.blobs = blobs.len() as u64;
    input.meta.size = blobs.iter().map(|d| d.size).sum();
    input.meta.uncompressed_size = uncompressed;

    // Small members, in memory (compose files are checked to be small).
    let mut small: Vec<(String, Vec<u8>)> = Vec::new();
    let meta_bytes = {
        let mut v = serde_json::to_vec_pretty(&input.meta).expect("json");
        v.push(b'\n');
        v
    };
    small.push((META_PATH.to_string(), meta_bytes));
    let mut compose = Vec::new();
    for f in &input.compose_files {
        let md = fs_err::metadata(&f.source).map_err(|source| WriteError::ReadFile {
            path: f.source.clone(),
            source,
        })?;
        if md.len() > 16 << 20 {
            return Err(WriteError::ReadFile {
                path: f.source.clone(),
                source: io::Error::other("larger than 16 MiB: not a compose or env file"),
            });
        }
        let bytes = fs_err::read(&f.source).map_err(|source| WriteError::ReadFile {
            path: f.source.clone(),
            source,
        })?;
        compose.push((format!("{COMPOSE_DIR}{}", f.name), bytes));
    }
    compose.sort_by(|a, b| a.0.cmp(&b.0));
    compose.dedup_by(|a, b| a.0 == b.0);
    let layout = [
        ("oci-layout".to_string(), OCI_LAYOUT.to_vec()),
        ("index.json".to_string(), oci_index(input.images)),
        ("manifest.json".to_string(), docker_manifest(input.images)),
    ];
    let mut sums: Vec<(String, String)> = small
        .iter()
        .chain(compose.iter())
        .chain(layout.iter())
        .map(|(p, b)| (p.clone(), Digest::of(b).hex().to_string()))
        .chain(
            blobs
                .iter()
                .map(|d| (blob_path(&d.digest), d.digest.hex().to_string())),
        )
        .collect();
    sums.sort();
    let sums_text: String = sums.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
    let signature = match &options.signer {
        Some(signer) => Some(signer.sign(
            sums_text.as_bytes(),
            &format!(
                "airlock bundle of project {} file:{SUMS_PATH}",
                input.meta.project
            ),
        )?),
        None => None,
    };

    // The file.
    let dir = crate::disk::output_dir(output);
    let file_name = output
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| "bundle.tar".into());
    remove_stale_partials(&dir, &file_name);
    let tmp = dir.join(format!(
        ".{file_name}.airlock-partial-{}",
        std::process::id()
    ));
    // The exact size of the tar: every member, then the two zero blocks that end it.
    let needed: u64 = small
        .iter()
        .chain(compose.iter())
        .chain(layout.iter())
        .map(|(n, b)| member_size(n, b.len() as u64))
        .sum::<u64>()
        + member_size(SUMS_PATH, sums_text.len() as u64)
        + signature
            .as_ref()
            .map(|s| member_size(SIGNATURE_PATH, s.len() as u64))
            .unwrap_or(0)
        + blobs
            .iter()
            .map(|d| member_size(&blob_path(&d.digest), d.size))
            .sum::<u64>()
        + 1024;
    let available = check_space(output, needed)?;
    let no_space = |during_write: bool| WriteError::NoSpace {
        path: output.to_path_buf(),
        dir: dir.clone(),
        needed,
        available: available.unwrap_or(0),
        during_write,
    };
    let io_err = |source: io::Error| {
        if crate::disk::is_full(&source) {
            no_space(true)
        } else {
            WriteError::Io {
                path: output.to_path_buf(),
                source,
            }
        }
    };
    let (sink, mut guard) = match options.split_size {
        Some(size) => (
            Sink::Split(Box::new(super::parts::SplitWriter::create(output, size)?)),
            None,
        ),
        None => {
            let file = fs_err::File::create(&tmp).map_err(io_err)?;
            let guard = TempGuard {
                path: tmp.clone(),
                keep: false,
            };
            // Held until the file is renamed: a lock nobody holds marks a stale temporary
            // (`remove_stale_partials`), whatever process now has the pid in its name.
            let _ = file.try_lock();
            (Sink::File(file), Some(guard))
        }
    };
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, sink));
    let cancelled = || WriteError::Cancelled {
        path: output.to_path_buf(),
    };

    let (meta_name, meta_bytes) = &small[0];
    append(
        &mut tar,
        meta_name,
        meta_bytes.len() as u64,
        &meta_bytes[..],
    )
    .map_err(io_err)?;
    append(
        &mut tar,
        SUMS_PATH,
        sums_text.len() as u64,
        sums_text.as_bytes(),
    )
    .map_err(io_err)?;
    if let Some(sig) = &signature {
        append(&mut tar, SIGNATURE_PATH, sig.len() as u64, &sig[..]).map_err(io_err)?;
    }
    for (name, bytes) in compose.iter().chain(layout.iter()) {
        append(&mut tar, name, bytes.len() as u64, &bytes[..]).map_err(io_err)?;
    }
    for d in &blobs {
        if cancel.load(Ordering::Relaxed) {
            return Err(cancelled());
        }
        let file = source.open(&d.digest, 0)?;
        let mut reader = HashingReader::new(CancelReader {
            inner: file.take(d.size),
            cancel,
        });
        let r = append(&mut tar, &blob_path(&d.digest), d.size, &mut reader);
        if cancel.load(Ordering::Relaxed) {
            return Err(cancelled());
        }
        r.map_err(io_err)?;
        let (_, actual, n) = reader.finish();
        if actual != d.digest || n != d.size {
            source.discard(&d.digest);
            return Err(WriteError::Damaged {
                digest: d.digest.clone(),
                reason: format!("{n} bytes hashing to `{actual}`, expected {} bytes", d.size),
            });
        }
    }
    let buf = tar.into_inner().map_err(io_err)?;
    let sink = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
    if cancel.load(Ordering::Relaxed) {
        return Err(cancelled());
    }
    let (path, bytes) = match sink {
        Sink::File(file) => {
            // Not fsynced, like `docker save`: a 1 GB fsync would double a warm pack's time.
            // The rename still makes the file appear whole or not at all for every reader, and
            // `airlock verify` checks a copy that survived a crash.
            drop(file);
            if cancel.load(Ordering::Relaxed) {
                return Err(cancelled());
            }
            fs_err::rename(&tmp, output).map_err(io_err)?;
            if let Some(g) = guard.as_mut() {
                g.keep = true;
            }
            let bytes = fs_err::metadata(output).map(|m| m.len()).unwrap_or(0);
            debug_assert_eq!(bytes, needed, "the space check must know the exact size");
            (output.to_path_buf(), bytes)
        }
        Sink::Split(split) => {
            let (list_file, list) = (*split).finish()?;
            (list_file, list.size)
        }
    };
    Ok(Written {
        path,
        bytes,
        blobs: blobs.len() as u64,
        meta: input.meta,
    })
}

/// Remove `.<name>.airlock-partial-<pid>` files left by writers that no longer run (a
/// `kill -9` during a pack): files no writer holds locked whose pid is gone, or which are
/// older than a minute (the pid was reused). A live writer locks its file right after
/// creating it, so a young unlocked file may be one about to be locked and is kept.
fn remove_stale_partials(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.airlock-partial-");
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(file) = fs_err::File::open(e.path()) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // a running writer holds it
        }
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        let old = file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(60));
        if !alive || old {
            let _ = fs_err::remove_file(e.path());
        }
    }
}

/// Where the tar goes: one file (temporary name, renamed by `write_with`) or parts.
enum Sink {
    File(fs_err::File),
    Split(Box<super::parts::SplitWriter>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Split(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Split(s) => s.flush(),
        }
    }
}

struct CancelReader<'a, R> {
    inner: R,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for CancelReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        self.inner.read(buf)
    }
}

/// One regular-file member: ustar header (mode 0644, owner 0/0, mtime 0), preceded by a
/// PAX header when the name or size does not fit ustar.
fn append<W: Write, R: Read>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: R,
) -> io::Result<()> {
    let mut records = String::new();
    let name_fits = name.len() <= 100 && name.is_ascii();
    if !name_fits {
        records.push_str(&pax_record("path", name));
    }
    if size >= 8 << 30 {
        records.push_str(&pax_record("size", &size.to_string()));
    }
    if !records.is_empty() {
        let mut h = header(records.len() as u64);
        h.set_entry_type(tar::EntryType::XHeader);
        let short: String = name
            .chars()
            .filter(|c| c.is_ascii())
            .rev()
            .take(80)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        set_name(
            &mut h,
            &format!("PaxHeaders/{}", short.trim_start_matches('/')),
        )?;
        h.set_cksum();
        tar.append(&h, records.as_bytes())?;
    }
    let mut h = header(size);
    if name_fits {
        set_name(&mut h, name)?;
    } else {
        let short: String = name.chars().filter(|c| c.is_ascii()).take(100).collect();
        set_name(&mut h, &short)?;
    }
    h.set_cksum();
    // Exactly `size` bytes: a short source would corrupt the tar, so count them.
    let mut counted = CountingReader {
        inner: data.take(size),
        n: 0,
    };
    tar.append(&h, &mut counted)?;
    if counted.n != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("`{name}`: {} of {size} bytes", counted.n),
        ));
    }
    Ok(())
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// Name into the ustar `name` field directly (at most 100 bytes, no prefix split).
fn set_name(h: &mut tar::Header, name: &str) -> io::Result<()> {
    let field = &mut h.as_old_mut().name;
    let bytes = name.as_bytes();
    if bytes.len() > field.len() {
        return Err(io::Error::other(format!(
            "tar name `{name}` longer than 100 bytes"
        )));
    }
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// `"<len> key=value\n"` where `<len>` counts the whole record.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len = format!("{len}{body}").len();
    }
    format!("{len}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn pax_records_count_themselves() {
        assert_eq!(pax_record("path", "a"), "9 path=a\n");
        for n in 85..100 {
            let r = pax_record("path", &"y".repeat(n));
            assert_eq!(
                r.len(),
                r.split(' ').next().unwrap().parse::<usize>().unwrap(),
                "{r}"
            );
        }
        let long = "x".repeat(95);
        let r = pax_record("path", &long);
        assert_eq!(
            r.len(),
            r.split(' ').next().unwrap().parse::<usize>().unwrap()
        );
    }

    #[test]
    fn long_names_round_trip_through_tar_reader() {
        let mut tar = tar::Builder::new(Vec::new());
        let long = format!("{COMPOSE_DIR}{}/compose.yaml", "deep/".repeat(30));
        append(&mut tar, &long, 3, &b"abc"[..]).unwrap();
        append(&mut tar, "short", 2, &b"hi"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec![long, "short".to_string()]);
    }

    #[test]
    fn member_size_is_what_append_writes() {
        let long = format!("{COMPOSE_DIR}{}/compose.yaml", "deep/".repeat(30));
        for (name, size) in [
            ("a", 0u64),
            ("b", 1),
            ("c", 511),
            ("d", 512),
            ("e", 513),
            (long.as_str(), 700),
        ] {
            let mut tar = tar::Builder::new(Vec::new());
            append(&mut tar, name, size, std::io::repeat(7).take(size)).unwrap();
            let bytes = tar.into_inner().unwrap();
            // into_inner adds the two zero blocks that end the archive.
            assert_eq!(
                bytes.len() as u64,
                member_size(name, size) + 1024,
                "{name} {size}"
            );
        }
    }

    #[test]
    fn no_space_names_path_and_sizes() {
        let e = WriteError::NoSpace {
            path: "/mnt/usb/stack.tar".into(),
            dir: "/mnt/usb".into(),
            needed: 3 << 20,
            available: 1 << 20,
            during_write: false,
        };
        assert_eq!(
            e.to_string(),
            "Not enough space for bundle `/mnt/usb/stack.tar`: it needs 3.0 MiB (3145728 bytes) in `/mnt/usb`, 1.0 MiB (1048576 bytes) are free; nothing was left at that path"
        );
        assert_eq!(e.class(), Class::Environment);
    }

    #[test]
    fn short_source_is_an_error() {
        let mut tar = tar::Builder::new(Vec::new());
        assert!(append(&mut tar, "x", 10, &b"abc"[..]).is_err());
    }

    fn sample(store: &Store) -> (ResolvedImage, BundleMeta) {
        use crate::image::Layer;
        let raw = b"layer tar bytes".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let gz = gz.finish().unwrap();
        let layer = store.put(&gz).unwrap();
        let config = format!(
            r#"{{"os":"linux","architecture":"amd64","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            Digest::of(&raw)
        );
        let config_d = store.put(config.as_bytes()).unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{config_d}","size":{}}},"layers":[{{"digest":"{layer}","size":{}}}]}}"#,
            config.len(),
            gz.len()
        );
        let manifest_d = store.put(manifest.as_bytes()).unwrap();
        let top = Descriptor::new(media::OCI_MANIFEST, manifest_d, manifest.len() as u64);
        let img = ResolvedImage {
            reference: crate::reference::Reference::parse("demo/app:1").unwrap(),
            top: top.clone(),
            manifest: top,
            config: Descriptor::new(media::OCI_CONFIG, config_d, config.len() as u64),
            layers: vec![Layer {
                blob: Descriptor::new(media::OCI_LAYER_GZIP, layer, gz.len() as u64),
                diff_id: Digest::of(&raw),
                uncompressed_size: Some(raw.len() as u64),
            }],
            platform: crate::platform::Platform::linux_amd64(),
            extra: Vec::new(),
        };
        let meta = BundleMeta {
            format: super::super::meta::FORMAT.into(),
            airlock_version: "test".into(),
            created: "2026-01-01T00:00:00Z".into(),
            project: "demo".into(),
            platform: "linux/amd64".parse().unwrap(),
            compose: Default::default(),
            images: Vec::new(),
            blobs: 0,
            size: 0,
            uncompressed_size: 0,
            base: None,
        };
        (img, meta)
    }

    #[test]
    fn order_reproducibility_and_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("cache")).unwrap();
        let (img, meta) = sample(&store);
        let images = [img];
        let no = AtomicBool::new(false);
        let a = dir.path().join("a.tar");
        let w = write(
            &store,
            Input {
                meta: meta.clone(),
                images: &images,
                compose_files: vec![],
            },
            &a,
            &no,
        )
        .unwrap();
        assert_eq!(w.blobs, 3);
        assert_eq!(w.meta.uncompressed_size, 15);
        let mut ar = tar::Archive::new(fs_err::File::open(&a).unwrap());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(
            &names[..5],
            &[
                META_PATH,
                SUMS_PATH,
                "oci-layout",
                "index.json",
                "manifest.json"
            ]
        );
        // manifest, then config, then the layer
        assert_eq!(names[5], blob_path(&images[0].manifest.digest));
        assert_eq!(names[6], blob_path(&images[0].config.digest));
        assert_eq!(names[7], blob_path(&images[0].layers[0].blob.digest));
        let b = dir.path().join("b.tar");
        write(
            &store,
            Input {
                meta: meta.clone(),
                images: &images,
                compose_files: vec![],
            },
            &b,
            &no,
        )
        .unwrap();
        assert_eq!(fs_err::read(&a).unwrap(), fs_err::read(&b).unwrap());

        // Cancelled: nothing at the output path, no temporary left.
        let yes = AtomicBool::new(true);
        let c = dir.path().join("c.tar");
        let err = write(
            &store,
            Input {
                meta,
                images: &images,
                compose_files: vec![],
            },
            &c,
            &yes,
        )
        .unwrap_err();
        assert!(matches!(err, WriteError::Cancelled { .. }), "{err}");
        assert!(!c.exists());
        let left: Vec<_> = fs_err::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn damaged_cache_blob_is_refused_and_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("cache")).unwrap();
        let (img, meta) = sample(&store);
        let layer = img.layers[0].blob.digest.clone();
        let path = store.blob_path(&layer);
        let mut bytes = fs_err::read(&path).unwrap();
        bytes[12] ^= 0xff;
        fs_err::write(&path, bytes).unwrap();
        let out = dir.path().join("d.tar");
        let images = [img];
        let err = write(
            &store,
            Input {
                meta,
                images: &images,
                compose_files: vec![],
            },
            &out,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(err.to_string().contains(&layer.to_string()), "{err}");
        assert!(!out.exists());
        assert!(store.size(&layer).is_none(), "the damaged blob was evicted");
    }
}
