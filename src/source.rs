//! Sources: owns the one contract between media. A `Source` lists the images it holds and
//! opens a blob by digest, streamed (a `Read`, or chunks for async code) and ranged. Sinks
//! take a `&dyn Source` and never care where the bytes live.
//!
//! Sources: the content store (`store::Store`), a bundle (`bundle::source::BundleSource`:
//! plain, compressed or split; a delta over its base with `Layered`), the bundles `serve`
//! indexes (`serve::Catalog`), the engine (`engine::save::EngineSource`). Sinks: the bundle
//! writer (`bundle::write`), registry push (`registry::push`), engine load (`engine::load`).
//!
//! The contract, for every source: bytes are served as stored, never verified here (every
//! sink hashes while it copies and refuses a mismatch, then calls `discard`); nothing is read
//! whole into memory; `open` is cheap to call once per blob (a file open or a `pread`
//! handle, never a copy). This module imports no medium: media import it.

use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::image::ResolvedImage;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::io::{self, Read};
use std::sync::Arc;

/// Bytes per chunk of `Source::stream` (the serve and push bodies).
pub const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source does not hold the blob.
    #[error("Blob `{digest}` is not in {from}")]
    Missing { from: String, digest: Digest },
    /// A byte range outside the blob.
    #[error("Blob `{digest}` in {from} is {size} bytes; bytes {offset}.. were asked for")]
    Range {
        from: String,
        digest: Digest,
        size: u64,
        offset: u64,
    },
    #[error("Failed to read blob `{digest}` from {from}")]
    Io {
        from: String,
        digest: Digest,
        #[source]
        source: io::Error,
    },
    /// The source cannot list its images (a bundle.json reference that does not parse).
    #[error("{from} cannot list its images: {reason}")]
    Images { from: String, reason: String },
    /// The medium failed in its own terms (a truncated bundle, a hostile member), with its
    /// own message and class.
    #[error(transparent)]
    Medium(MediumError),
}

/// A medium's own error inside a `SourceError`: shown as itself, classed as itself.
#[derive(Debug)]
pub struct MediumError {
    class: Class,
    hint: Option<String>,
    inner: Box<dyn std::error::Error + Send + Sync>,
}

impl MediumError {
    pub fn new(e: impl std::error::Error + Classify + Send + Sync + 'static) -> MediumError {
        MediumError {
            class: e.class(),
            hint: e.hint(),
            inner: Box::new(e),
        }
    }

    /// The medium's error, for callers that know the medium.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }
}

impl std::fmt::Display for MediumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::error::Error for MediumError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

impl Classify for SourceError {
    fn class(&self) -> Class {
        match self {
            SourceError::Io { .. } => Class::Environment,
            SourceError::Medium(e) => e.class,
            _ => Class::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            SourceError::Medium(e) => e.hint.clone(),
            _ => None,
        }
    }
}

/// A reader over (part of) one blob; owns what it reads from.
pub type BlobReader = Box<dyn Read + Send + 'static>;

/// Where images and their blobs come from. See the module doc for the contract.
pub trait Source: Send + Sync {
    /// What the source is, for messages: "the cache at `/x`", "bundle `stack.tar`".
    fn describe(&self) -> String;

    /// The images the source holds, in its own order. The content store holds blobs only and
    /// lists none: the pack pipeline knows which images it resolved into it.
    fn images(&self) -> Result<Vec<ResolvedImage>, SourceError>;

    /// The size of blob `digest` as stored, or `None` when the source lacks it.
    fn blob_size(&self, digest: &Digest) -> Option<u64>;

    /// Read blob `digest` from byte `offset` to its end (`offset` 0: the whole blob).
    fn open(&self, digest: &Digest, offset: u64) -> Result<BlobReader, SourceError>;

    /// `len` bytes of blob `digest` from `offset`, as chunks of at most `CHUNK` bytes for async
    /// code (HTTP bodies); `None` when the source lacks the blob. The default reads `open` on
    /// the blocking pool, one chunk ahead; sources with random access answer with `pread`s.
    fn stream(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Option<BoxStream<'static, io::Result<Bytes>>> {
        let size = self.blob_size(digest)?;
        let len = len.min(size.saturating_sub(offset));
        let reader = self.open(digest, offset).map_err(io::Error::other);
        Some(read_stream(reader, len))
    }

    /// Hand each blob of `wanted` (each once) to `f` with its size and a reader over its
    /// bytes, in the source's own order: a bundle is read once from start to end (the only
    /// way through a compressed one, and the way `docker load` streams are made). `f` reads
    /// the blob (what it leaves unread is skipped) and returns `false` to stop. The default
    /// opens each blob in `wanted`'s order.
    fn visit(
        &self,
        wanted: &[Digest],
        f: &mut dyn FnMut(&Digest, u64, &mut dyn Read) -> bool,
    ) -> Result<(), SourceError> {
        for d in wanted {
            let size = self.blob_size(d).ok_or_else(|| SourceError::Missing {
                from: self.describe(),
                digest: d.clone(),
            })?;
            let mut r = self.open(d, 0)?;
            if !f(d, size, &mut r) {
                break;
            }
        }
        Ok(())
    }

    /// A sink found blob `digest` damaged (its bytes do not hash to it): a cache drops it so
    /// the next run fetches it again. Others have nothing to do.
    fn discard(&self, _digest: &Digest) {}
}

impl<S: Source + ?Sized> Source for Arc<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn images(&self) -> Result<Vec<ResolvedImage>, SourceError> {
        (**self).images()
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        (**self).blob_size(digest)
    }
    fn open(&self, digest: &Digest, offset: u64) -> Result<BlobReader, SourceError> {
        (**self).open(digest, offset)
    }
    fn stream(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Option<BoxStream<'static, io::Result<Bytes>>> {
        (**self).stream(digest, offset, len)
    }
    fn visit(
        &self,
        wanted: &[Digest],
        f: &mut dyn FnMut(&Digest, u64, &mut dyn Read) -> bool,
    ) -> Result<(), SourceError> {
        (**self).visit(wanted, f)
    }
    fn discard(&self, digest: &Digest) {
        (**self).discard(digest)
    }
}

/// Several sources seen as one: a blob comes from the first that holds it; images are listed
/// from every source, first come first. A delta bundle over its base is
/// `Layered(vec![delta, base])`.
pub struct Layered(pub Vec<Box<dyn Source>>);

impl Layered {
    fn holder(&self, digest: &Digest) -> Option<&dyn Source> {
        self.0
            .iter()
            .map(|s| &**s)
            .find(|s| s.blob_size(digest).is_some())
    }
}

impl Source for Layered {
    fn describe(&self) -> String {
        let all: Vec<String> = self.0.iter().map(|s| s.describe()).collect();
        all.join(" over ")
    }
    fn images(&self) -> Result<Vec<ResolvedImage>, SourceError> {
        let mut out: Vec<ResolvedImage> = Vec::new();
        for s in &self.0 {
            for img in s.images()? {
                if !out
                    .iter()
                    .any(|o| o.reference == img.reference && o.top.digest == img.top.digest)
                {
                    out.push(img);
                }
            }
        }
        Ok(out)
    }
    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.holder(digest)?.blob_size(digest)
    }
    fn open(&self, digest: &Digest, offset: u64) -> Result<BlobReader, SourceError> {
        match self.holder(digest) {
            Some(s) => s.open(digest, offset),
            None => Err(SourceError::Missing {
                from: self.describe(),
                digest: digest.clone(),
            }),
        }
    }
    fn stream(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Option<BoxStream<'static, io::Result<Bytes>>> {
        self.holder(digest)?.stream(digest, offset, len)
    }
    fn discard(&self, digest: &Digest) {
        if let Some(s) = self.holder(digest) {
            s.discard(digest);
        }
    }
}

/// `len` bytes of `reader` as chunks, each read on the blocking pool while the previous one
/// is being sent (at most two chunks in memory).
pub fn read_stream(
    reader: io::Result<BlobReader>,
    len: u64,
) -> BoxStream<'static, io::Result<Bytes>> {
    use futures_util::StreamExt;
    type Pending = tokio::task::JoinHandle<(BlobReader, io::Result<Bytes>)>;
    struct State {
        reader: Option<BlobReader>,
        left: u64,
        pending: Option<Pending>,
        failed: Option<io::Error>,
    }
    impl State {
        fn start(&mut self) {
            if self.left == 0 {
                return;
            }
            let Some(mut r) = self.reader.take() else {
                return;
            };
            let n = self.left.min(CHUNK as u64) as usize;
            self.left -= n as u64;
            self.pending = Some(tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                let res = r.read_exact(&mut buf).map(|_| Bytes::from(buf));
                (r, res)
            }));
        }
    }
    let (reader, failed) = match reader {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    let state = State {
        reader,
        left: len,
        pending: None,
        failed,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if let Some(e) = s.failed.take() {
            s.left = 0;
            return Some((Err(e), s));
        }
        if s.pending.is_none() {
            s.start();
        }
        match s.pending.take()?.await {
            Ok((r, Ok(bytes))) => {
                s.reader = Some(r);
                s.start();
                Some((Ok(bytes), s))
            }
            Ok((_, Err(e))) => {
                s.left = 0;
                Some((Err(e), s))
            }
            Err(join) => {
                s.left = 0;
                Some((Err(io::Error::other(join)), s))
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Blobs in memory: the smallest source, for the contract's tests.
    struct Memory(&'static str, HashMap<Digest, Vec<u8>>);

    impl Source for Memory {
        fn describe(&self) -> String {
            self.0.to_string()
        }
        fn images(&self) -> Result<Vec<ResolvedImage>, SourceError> {
            Ok(Vec::new())
        }
        fn blob_size(&self, digest: &Digest) -> Option<u64> {
            self.1.get(digest).map(|b| b.len() as u64)
        }
        fn open(&self, digest: &Digest, offset: u64) -> Result<BlobReader, SourceError> {
            let b = self.1.get(digest).ok_or_else(|| SourceError::Missing {
                from: self.describe(),
                digest: digest.clone(),
            })?;
            Ok(Box::new(io::Cursor::new(b[offset as usize..].to_vec())))
        }
    }

    fn memory(name: &'static str, blobs: &[&[u8]]) -> Memory {
        Memory(
            name,
            blobs.iter().map(|b| (Digest::of(b), b.to_vec())).collect(),
        )
    }

    #[test]
    fn layered_reads_from_the_first_holder() {
        let l = Layered(vec![
            Box::new(memory("delta", &[b"new"])),
            Box::new(memory("base", &[b"old", b"new"])),
        ]);
        assert_eq!(l.blob_size(&Digest::of(b"old")), Some(3));
        let mut s = String::new();
        l.open(&Digest::of(b"new"), 1)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "ew");
        let err = l.open(&Digest::of(b"none"), 0).err().unwrap();
        assert!(err.to_string().contains("delta over base"), "{err}");
    }

    #[test]
    fn default_stream_is_ranged_and_chunked() {
        use futures_util::TryStreamExt;
        let big: Vec<u8> = (0..(CHUNK * 2 + 10)).map(|i| i as u8).collect();
        let m = Memory("m", [(Digest::of(&big), big.clone())].into_iter().collect());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let chunks: Vec<Bytes> = rt
            .block_on(
                m.stream(&Digest::of(&big), 5, u64::MAX)
                    .unwrap()
                    .try_collect(),
            )
            .unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), big[5..]);
        assert!(m.stream(&Digest::of(b"x"), 0, 1).is_none());
    }
}
