//! The bundle reader's random-access half and the bundle as a `source::Source`: owns the
//! blob-offset index (`index`: one walk over the tar headers, blob contents skipped by
//! seeking, metadata members read), `BundleFile` (one `pread` handle over a bundle file or
//! the parts of a split bundle), `stream_range` (chunks for HTTP bodies) and `BundleSource`.
//!
//! One reader serves every command: `bundle::read::Bundle` walks the tar in order (verify,
//! load, compressed bundles), `index` adds the offsets; `serve::Catalog` (serve, push) and
//! `verify`'s hashing pool read blobs through `BundleFile` at those offsets. A plain or split
//! bundle is read at random; a compressed one (gzip, zstd) in order only: `BundleSource`
//! then decompresses up to the blob, on a thread that hands over 1 MiB chunks.

use super::meta::ImageMeta;
use super::read::{BLOBS_DIR, Bundle, Compression, Flow, Meta, MetaCollector, ReadError};
use crate::digest::Digest;
use crate::image::ResolvedImage;
use crate::source::{BlobReader, CHUNK, Source, SourceError};
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, OnceLock};

/// The blob-offset index of one bundle: its metadata and where each blob's bytes are in the
/// (decompressed) tar stream.
#[derive(Debug, Clone)]
pub struct Index {
    pub meta: Meta,
    /// Blobs in tar order: digest, offset, size.
    pub blobs: Vec<(Digest, u64, u64)>,
}

/// Index `bundle` in one pass over its headers: metadata members are read (a few KB), blob
/// contents are skipped by seeking (plain and split bundles; a compressed one is
/// decompressed once).
pub fn index(bundle: &Bundle) -> Result<Index, ReadError> {
    let mut collector = MetaCollector::default();
    let mut blobs = Vec::new();
    bundle.walk(|info, r| {
        if let Some(d) = info.blob_digest() {
            blobs.push((d, info.offset, info.size));
        } else {
            collector.take(bundle, info, r)?;
        }
        Ok::<_, ReadError>(Flow::Continue)
    })?;
    let meta = collector.finish(bundle)?;
    Ok(Index { meta, blobs })
}

/// One opened bundle file, or the parts of a split bundle (`bundle::parts`). Reads use
/// `pread` (`read_at`), so one handle serves every request.
#[derive(Debug)]
pub struct BundleFile {
    pub path: PathBuf,
    pub file: crate::bundle::parts::RandomAccess,
}

impl BundleFile {
    /// Read exactly `buf.len()` bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// Stream `len` bytes at `offset` of `file`, one `pread` of at most `chunk` bytes at a time
/// on the blocking pool. The next chunk is read while the current one is being sent, so
/// disk and socket overlap with at most two chunks in memory per stream and no thread held
/// between chunks. Used for blob responses (`serve`) and upload bodies (`push`).
pub fn stream_range(
    file: Arc<BundleFile>,
    offset: u64,
    len: u64,
    chunk: usize,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    struct Reader {
        file: Arc<BundleFile>,
        pos: u64,
        left: u64,
        chunk: u64,
        pending: Option<tokio::task::JoinHandle<std::io::Result<bytes::Bytes>>>,
    }
    impl Reader {
        /// Start reading the next chunk, if any is left.
        fn start(&mut self) {
            if self.left == 0 {
                return;
            }
            let n = self.left.min(self.chunk);
            let (f, pos) = (Arc::clone(&self.file), self.pos);
            self.pending = Some(tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n as usize];
                f.read_exact_at(&mut buf, pos)
                    .map(|_| bytes::Bytes::from(buf))
            }));
            self.pos += n;
            self.left -= n;
        }
    }
    let reader = Reader {
        file,
        pos: offset,
        left: len,
        chunk: chunk.max(4096) as u64,
        pending: None,
    };
    futures_util::stream::unfold(reader, |mut r| async move {
        if r.pending.is_none() {
            r.start();
        }
        let read = r.pending.take()?.await;
        match read {
            Ok(Ok(bytes)) => {
                r.start();
                Some((Ok(bytes), r))
            }
            Ok(Err(e)) => {
                r.left = 0;
                Some((Err(e), r))
            }
            Err(join) => {
                r.left = 0;
                Some((Err(std::io::Error::other(join)), r))
            }
        }
    })
}

/// A byte range of a bundle file, read by `pread` (no shared position).
pub struct RangeReader {
    pub file: Arc<BundleFile>,
    pub pos: u64,
    pub end: u64,
}

impl std::io::Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the bundle ends inside this blob",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The images of a bundle's metadata as the image model describes them.
pub fn resolved_images(meta: &Meta) -> Result<Vec<ResolvedImage>, SourceError> {
    Ok(meta
        .meta
        .images
        .iter()
        .map(|img| resolved(img, &meta.meta.platform))
        .collect())
}

fn resolved(img: &ImageMeta, platform: &crate::platform::Platform) -> ResolvedImage {
    ResolvedImage {
        reference: img.reference.clone(),
        top: img.top.clone(),
        manifest: img.manifest.clone(),
        config: img.config.clone(),
        layers: img.layers.clone(),
        platform: platform.clone(),
        extra: Vec::new(),
    }
}

/// One bundle (plain, compressed or split) as a `Source`. Opening reads only the metadata
/// members; the blob index is built on the first blob asked for.
pub struct BundleSource {
    meta: Meta,
    index: OnceLock<Result<Located, String>>,
}

/// Where the blobs are: by offset (random access) or only by size (compressed).
struct Located {
    blobs: HashMap<Digest, (u64, u64)>,
    file: Option<Arc<BundleFile>>,
}

impl BundleSource {
    /// Open the bundle at `path` and read its metadata.
    pub fn open(path: &std::path::Path) -> Result<BundleSource, ReadError> {
        Ok(BundleSource::of(Bundle::open(path)?.open_meta()?))
    }

    /// The bundle whose metadata `open_meta` read.
    pub fn of(meta: Meta) -> BundleSource {
        BundleSource {
            meta,
            index: OnceLock::new(),
        }
    }

    /// The bundle's metadata (bundle.json, SHA256SUMS, manifest.json, index.json, compose files).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    fn located(&self) -> Result<&Located, SourceError> {
        let bundle = &self.meta.bundle;
        let built = self.index.get_or_init(|| {
            let idx = index(bundle).map_err(|e| e.to_string())?;
            let file = if bundle.compression == Compression::None {
                let file =
                    super::parts::RandomAccess::open(&bundle.path).map_err(|e| e.to_string())?;
                Some(Arc::new(BundleFile {
                    path: bundle.path.clone(),
                    file,
                }))
            } else {
                None
            };
            Ok(Located {
                blobs: idx.blobs.into_iter().map(|(d, o, s)| (d, (o, s))).collect(),
                file,
            })
        });
        built.as_ref().map_err(|reason| SourceError::Io {
            from: self.describe(),
            digest: Digest::of(b""),
            source: io::Error::other(reason.clone()),
        })
    }
}

impl Source for BundleSource {
    fn describe(&self) -> String {
        format!("bundle `{}`", self.meta.bundle.path.display())
    }

    fn images(&self) -> Result<Vec<ResolvedImage>, SourceError> {
        resolved_images(&self.meta)
    }

    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.located().ok()?.blobs.get(digest).map(|(_, s)| *s)
    }

    fn open(&self, digest: &Digest, offset: u64) -> Result<BlobReader, SourceError> {
        let located = self.located()?;
        let Some(&(at, size)) = located.blobs.get(digest) else {
            return Err(SourceError::Missing {
                from: self.describe(),
                digest: digest.clone(),
            });
        };
        if offset > size {
            return Err(SourceError::Range {
                from: self.describe(),
                digest: digest.clone(),
                size,
                offset,
            });
        }
        match &located.file {
            Some(file) => Ok(Box::new(RangeReader {
                file: Arc::clone(file),
                pos: at + offset,
                end: at + size,
            })),
            None => Ok(Box::new(sequential(
                self.meta.bundle.clone(),
                digest.clone(),
                offset,
            ))),
        }
    }

    fn stream(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Option<futures_util::stream::BoxStream<'static, io::Result<bytes::Bytes>>> {
        use futures_util::StreamExt;
        let located = self.located().ok()?;
        let &(at, size) = located.blobs.get(digest)?;
        let len = len.min(size.saturating_sub(offset));
        match &located.file {
            Some(file) => Some(stream_range(Arc::clone(file), at + offset, len, CHUNK).boxed()),
            None => Some(crate::source::read_stream(
                self.open(digest, offset).map_err(io::Error::other),
                len,
            )),
        }
    }

    fn visit(
        &self,
        wanted: &[Digest],
        f: &mut dyn FnMut(&Digest, u64, &mut dyn Read) -> bool,
    ) -> Result<(), SourceError> {
        self.walk_blobs(wanted, f)
            .map_err(|e| SourceError::Medium(crate::source::MediumError::new(e)))
    }
}

impl BundleSource {
    /// The bundle's `visit`: one walk in tar order (seeking over the blobs not wanted, when
    /// plain), to the end of the archive, so a truncated bundle is noticed even after the
    /// last blob wanted.
    fn walk_blobs(
        &self,
        wanted: &[Digest],
        f: &mut dyn FnMut(&Digest, u64, &mut dyn Read) -> bool,
    ) -> Result<(), ReadError> {
        let wanted: std::collections::HashSet<&Digest> = wanted.iter().collect();
        self.meta.bundle.walk(|info, r| {
            let stop = info
                .blob_digest()
                .is_some_and(|d| wanted.contains(&d) && !f(&d, info.size, r));
            Ok::<_, ReadError>(if stop { Flow::Stop } else { Flow::Continue })
        })?;
        Ok(())
    }
}

/// Blob `digest` of a compressed bundle from `offset`: a thread decompresses the bundle up to
/// the blob and hands its bytes over in chunks (at most four in flight).
fn sequential(bundle: Bundle, digest: Digest, offset: u64) -> ChunkReader {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(4);
    let name = format!("{BLOBS_DIR}{}", digest.hex());
    let spawned = std::thread::Builder::new()
        .name("bundle-blob".into())
        .spawn(move || {
            let walked = bundle.walk(|info, r| {
                if info.name != name {
                    return Ok(Flow::Continue);
                }
                let io_err = |source| ReadError::Io {
                    path: bundle.path.clone(),
                    member: info.name.clone(),
                    source,
                };
                io::copy(&mut r.take(offset), &mut io::sink()).map_err(io_err)?;
                loop {
                    let mut chunk = vec![0u8; CHUNK];
                    let n = read_full(r, &mut chunk).map_err(io_err)?;
                    if n == 0 {
                        break;
                    }
                    chunk.truncate(n);
                    if tx.send(Ok(chunk)).is_err() {
                        break;
                    }
                }
                Ok::<_, ReadError>(Flow::Stop)
            });
            if let Err(e) = walked {
                let _ = tx.send(Err(io::Error::other(e)));
            }
        });
    let rx = match spawned {
        Ok(_) => Some(rx),
        Err(_) => None,
    };
    ChunkReader {
        rx,
        current: Vec::new(),
        at: 0,
    }
}

/// Fill `buf` as far as the reader goes.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the chunks a `sequential` thread sends.
struct ChunkReader {
    rx: Option<Receiver<io::Result<Vec<u8>>>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            let Some(rx) = &self.rx else {
                return Err(io::Error::other("cannot start the bundle reader thread"));
            };
            match rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(s: &dyn Source, d: &Digest, offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        s.open(d, offset).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    /// One conformance check for the bundle as a source: plain, gzip, zstd and split give
    /// the same images and the same bytes for every blob, whole and ranged.
    #[test]
    fn plain_compressed_and_split_bundles_serve_the_same_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let plain = crate::bundle::verify::tests::tiny_bundle(dir.path());
        let bytes = fs_err::read(&plain).unwrap();
        let zst = dir.path().join("tiny.tar.zst");
        fs_err::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
        let gz = dir.path().join("tiny.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut enc, &bytes).unwrap();
        fs_err::write(&gz, enc.finish().unwrap()).unwrap();
        let split = dir.path().join("split").join("tiny.tar");
        fs_err::create_dir_all(split.parent().unwrap()).unwrap();
        let mut w = crate::bundle::parts::SplitWriter::create(&split, 1024).unwrap();
        io::Write::write_all(&mut w, &bytes).unwrap();
        let (parts_file, _) = w.finish().unwrap();

        let reference = BundleSource::open(&plain).unwrap();
        let images = reference.images().unwrap();
        assert_eq!(images.len(), 1);
        let blobs: Vec<Digest> = images[0].blobs().iter().map(|d| d.digest.clone()).collect();
        for path in [&plain, &zst, &gz, &parts_file] {
            let s = BundleSource::open(path).unwrap();
            assert_eq!(s.images().unwrap(), images, "{}", path.display());
            for d in &blobs {
                let whole = read_all(&s, d, 0);
                assert_eq!(&Digest::of(&whole), d, "{}", path.display());
                assert_eq!(s.blob_size(d), Some(whole.len() as u64));
                assert_eq!(read_all(&s, d, 3), whole[3..], "{}", path.display());
            }
            let missing = Digest::of(b"not there");
            assert!(s.blob_size(&missing).is_none());
            assert!(matches!(
                s.open(&missing, 0),
                Err(SourceError::Missing { .. })
            ));
        }
    }
}
