//! The catalog of one or more bundles: owns the index of every blob's offset in its bundle
//! (from the tar headers, without reading any layer), the manifests (small, read once and
//! checked against their digests), and which repository serves which tags, manifests and
//! blobs. Built from the bundle reader's index (`bundle::source::index`); read by `serve`
//! (HTTP) and, as a `source::Source`, by `registry::push` (`push`: the images to copy
//! into a registry).
//!
//! Naming: each image is served under its repository path without the registry host
//! (`docker.io/library/redis:6.2` -> `library/redis:6.2`, `ghcr.io/acme/api:2` -> `acme/api:2`);
//! Docker Hub's official images also answer to the short alias (`redis`).
//! A blob is listed under a repository only when a manifest of that repository references it.

use crate::bundle::read::{Bundle, Compression, ReadError};
pub use crate::bundle::source::{BundleFile, RangeReader, stream_range};
use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::image::{Descriptor, Links, media};
use crate::reference::{DOCKER_HUB, Reference};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest manifest or index kept (the distribution server's own limit).
pub const MANIFEST_LIMIT: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(
        "Bundle `{}` is {compression:?}-compressed; serving and pushing need random access to the blobs",
        path.display()
    )]
    Compressed {
        path: PathBuf,
        compression: Compression,
        tool: &'static str,
    },
    #[error("Bundle `{}` lacks manifest `{digest}` of `{reference}`", path.display())]
    MissingManifest {
        path: PathBuf,
        reference: String,
        digest: Digest,
    },
    #[error("Bundle `{}`: manifest `{digest}` of `{reference}` is {size} bytes, more than the {MANIFEST_LIMIT}-byte limit", path.display())]
    ManifestTooLarge {
        path: PathBuf,
        reference: String,
        digest: Digest,
        size: u64,
    },
    #[error("Bundle `{}`: manifest `{expected}` of `{reference}` hashes to `{actual}` (the bundle is damaged; run `airlock verify`)", path.display())]
    ManifestDigest {
        path: PathBuf,
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("Bundle `{}`: manifest `{digest}` of `{reference}` is not valid JSON: {message}", path.display())]
    BadManifest {
        path: PathBuf,
        reference: String,
        digest: Digest,
        message: String,
    },
    /// A patch bundle's layers could not be rebuilt (`bundle::patched`).
    #[error(transparent)]
    Patched(#[from] crate::bundle::patched::PatchedError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("Failed to read `{}` at offset {offset}", path.display())]
    Io {
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for CatalogError {
    fn class(&self) -> Class {
        match self {
            CatalogError::Read(e) => e.class(),
            CatalogError::ManifestDigest { .. } | CatalogError::MissingManifest { .. } => {
                Class::Failed
            }
            CatalogError::Io { .. } => Class::Environment,
            CatalogError::Patched(e) => e.class(),
            CatalogError::Store(e) => e.class(),
            _ => Class::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            CatalogError::Read(e) => e.hint(),
            CatalogError::Patched(e) => e.hint(),
            CatalogError::Compressed { path, tool, .. } => Some(format!(
                "decompress it first (`{tool} -d {}`)",
                path.display()
            )),
            _ => None,
        }
    }
}

/// Where a blob's bytes are: a byte range of one bundle file.
#[derive(Debug, Clone)]
pub struct BlobLoc {
    /// Index into `Catalog::files`.
    pub file: usize,
    pub offset: u64,
    pub size: u64,
}

/// A manifest or index, kept in memory with the media type it is served as.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub bytes: bytes::Bytes,
}

/// What one repository serves.
#[derive(Debug, Clone, Default)]
pub struct Repo {
    /// Tag -> top-level manifest or index digest.
    pub tags: BTreeMap<String, Digest>,
    /// Every manifest served by digest (tops, platform and attestation manifests present).
    pub manifests: BTreeSet<Digest>,
    /// Every blob referenced by those manifests.
    pub blobs: BTreeSet<Digest>,
    /// Registries (`docker.io`, `ghcr.io`) whose images landed in this repository.
    pub registries: BTreeSet<String>,
}

/// One image of a bundle as the catalog serves it.
#[derive(Debug, Clone)]
pub struct CatalogImage {
    /// The reference as the compose files write it.
    pub reference: String,
    /// Parsed from the normalised form.
    pub parsed: Reference,
    /// Repository path without the registry host (`library/redis`).
    pub repository: String,
    /// `None` for digest-only references.
    pub tag: Option<String>,
    pub top: Descriptor,
    /// The platform manifest chosen at pack time (equal to `top` when it is no index).
    pub platform_manifest: Digest,
    /// Manifests to push, children first, the top last (each once).
    pub manifests: Vec<Digest>,
    /// Config and layer blobs, each once, in manifest order.
    pub blobs: Vec<Digest>,
    /// Services whose `image:` is this reference.
    pub services: Vec<String>,
    /// Index of the bundle in `Catalog::files`.
    pub bundle: usize,
}

impl CatalogImage {
    /// `host/repository:tag`, or `host/repository@digest` for digest-only references.
    pub fn name_at(&self, host_prefix: &str) -> String {
        match &self.tag {
            Some(t) => format!("{host_prefix}/{}:{t}", self.repository),
            None => format!("{host_prefix}/{}@{}", self.repository, self.top.digest),
        }
    }
}

/// Options of `Catalog::open`.
#[derive(Debug, Clone, Default)]
pub struct CatalogOptions {
    /// Mirror mode: Docker Hub images win over same-named images of other registries.
    pub mirror: bool,
    /// Bundles read only for the base layers of patch bundles (not served); the bundles
    /// served are searched too.
    pub patch_bases: Vec<PathBuf>,
}

/// The index of one or more bundles.
#[derive(Debug, Default)]
pub struct Catalog {
    pub files: Vec<Arc<BundleFile>>,
    pub blobs: HashMap<Digest, BlobLoc>,
    pub manifests: HashMap<Digest, Manifest>,
    pub repos: BTreeMap<String, Repo>,
    /// Short names of Docker Hub official images (`redis` -> `library/redis`).
    pub aliases: HashMap<String, String>,
    pub images: Vec<CatalogImage>,
    /// Things the operator should know (tag conflicts, blobs missing from every bundle).
    pub warnings: Vec<String>,
    /// The metadata of each bundle, in `files` order.
    pub metas: Vec<crate::bundle::read::Meta>,
}

fn scan(path: &Path) -> Result<crate::bundle::source::Index, CatalogError> {
    let bundle = Bundle::open(path)?;
    if bundle.compression != Compression::None {
        return Err(CatalogError::Compressed {
            path: path.to_path_buf(),
            compression: bundle.compression,
            tool: match bundle.compression {
                Compression::Zstd => "zstd",
                _ => "gzip",
            },
        });
    }
    // One pass over the headers: metadata members are read (a few KB), blob contents are
    // skipped by seeking.
    Ok(crate::bundle::source::index(&bundle)?)
}

/// The repository path an image is served under: its path on its registry.
pub fn repository_of(r: &Reference) -> String {
    r.repository().to_string()
}

impl Catalog {
    /// Index `paths` in order. Content is shared by digest; on a tag served by two images,
    /// the first bundle wins (in mirror mode, the Docker Hub image wins).
    pub fn open(paths: &[PathBuf], opts: &CatalogOptions) -> Result<Catalog, CatalogError> {
        let mut cat = Catalog::default();
        let mut pending = Vec::new();
        for path in paths {
            let scanned = scan(path)?;
            let file = crate::bundle::parts::RandomAccess::open(path).map_err(|source| {
                CatalogError::Read(ReadError::Open {
                    path: path.clone(),
                    source,
                })
            })?;
            let idx = cat.files.len();
            cat.files.push(Arc::new(BundleFile {
                path: path.clone(),
                file,
            }));
            for (d, offset, size) in &scanned.blobs {
                cat.blobs.entry(d.clone()).or_insert(BlobLoc {
                    file: idx,
                    offset: *offset,
                    size: *size,
                });
            }
            cat.metas.push(scanned.meta);
        }
        cat.patched_views(&opts.patch_bases)?;
        for (idx, meta) in cat.metas.iter().enumerate() {
            for img in &meta.meta.images {
                pending.push((idx, img.clone()));
            }
        }
        if opts.mirror {
            // Stable: Docker Hub images first, bundle order otherwise.
            pending.sort_by_key(|(_, img)| img.reference.registry() != DOCKER_HUB);
        }
        for (idx, img) in pending {
            cat.add_image(idx, &img)?;
        }
        cat.check_blobs();
        Ok(cat)
    }

    /// Patch bundles (docs/bundle-format.md "Patch bundles"): every patched layer is rebuilt
    /// into the cache, its base layer read from the bundles served or `bases`; the bundle's
    /// patched view is served instead of its metadata (rewritten manifests listing the
    /// rebuilt layers uncompressed), the rebuilt layers and manifests read from the cache.
    fn patched_views(&mut self, bases: &[PathBuf]) -> Result<(), CatalogError> {
        use crate::bundle::patched::{self, BaseLayer};
        use crate::source::Source;
        if self.metas.iter().all(|m| m.meta.patches().is_empty()) {
            return Ok(());
        }
        let store = crate::store::Store::open(crate::store::Store::default_root()?)?;
        let mut base_sources = Vec::new();
        for b in bases {
            base_sources.push(crate::bundle::source::BundleSource::open(b)?);
        }
        for i in 0..self.metas.len() {
            if self.metas[i].meta.patches().is_empty() {
                continue;
            }
            let meta = self.metas[i].clone();
            let delta = crate::bundle::source::BundleSource::of(meta.clone());
            let view = patched::view(&meta, &delta, &store)?;
            let patches: Vec<&crate::bundle::meta::PatchMeta> =
                meta.meta.patches().iter().collect();
            let from = "the bundles given (serve them together, or name the base bundle)";
            let mut base = |p: &crate::bundle::meta::PatchMeta| {
                if self.blob_size(&p.base.layer).is_some() {
                    return Ok(BaseLayer::Blob(self.open(&p.base.layer, 0)?));
                }
                for s in &base_sources {
                    if s.blob_size(&p.base.layer).is_some() {
                        return Ok(BaseLayer::Blob(s.open(&p.base.layer, 0)?));
                    }
                }
                Ok(BaseLayer::Missing(from.to_string()))
            };
            patched::rebuild(
                &patches,
                &delta,
                &mut base,
                from,
                &store,
                &crate::progress::Silent,
            )?;
            // The rebuilt layers and rewritten manifests are files of the cache: each is
            // served as a one-blob "bundle" at offset 0.
            for img in &view.meta.images {
                let blobs = std::iter::once(&img.top).chain(img.layers.iter().map(|l| &l.blob));
                for d in blobs {
                    if self.blobs.contains_key(&d.digest) {
                        continue;
                    }
                    let Some(size) = store.size(&d.digest) else {
                        continue;
                    };
                    let path = store.blob_path(&d.digest);
                    let file =
                        crate::bundle::parts::RandomAccess::open(&path).map_err(|source| {
                            CatalogError::Read(ReadError::Open {
                                path: path.clone(),
                                source,
                            })
                        })?;
                    self.blobs.insert(
                        d.digest.clone(),
                        BlobLoc {
                            file: self.files.len(),
                            offset: 0,
                            size,
                        },
                    );
                    self.files.push(Arc::new(BundleFile { path, file }));
                }
            }
            self.metas[i] = view;
        }
        Ok(())
    }

    fn add_image(
        &mut self,
        idx: usize,
        img: &crate::bundle::meta::ImageMeta,
    ) -> Result<(), CatalogError> {
        let parsed = img.reference.clone();
        let repository = repository_of(&parsed);
        let tag = parsed.tag_or_default().map(str::to_string);
        let mut manifests = Vec::new();
        let mut blobs = Vec::new();
        self.collect(
            idx,
            img.reference.original(),
            &img.top.digest,
            &img.top.media_type,
            &mut manifests,
            &mut blobs,
            0,
        )?;
        let repo = self.repos.entry(repository.clone()).or_default();
        repo.registries.insert(parsed.registry().to_string());
        if let Some(t) = &tag {
            match repo.tags.get(t) {
                Some(existing) if *existing != img.top.digest => {
                    self.warnings.push(format!(
                        "`{repository}:{t}` is served as `{existing}`; `{}` (`{}`) names the same tag with other content and is reachable by digest only",
                        img.reference, img.top.digest
                    ));
                }
                Some(_) => {}
                None => {
                    repo.tags.insert(t.clone(), img.top.digest.clone());
                }
            }
        }
        repo.manifests.extend(manifests.iter().cloned());
        repo.blobs.extend(blobs.iter().cloned());
        if repo.registries.len() > 1 {
            let list: Vec<&str> = repo.registries.iter().map(String::as_str).collect();
            let w = format!(
                "repository `{repository}` holds images of several registries ({})",
                list.join(", ")
            );
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        if parsed.registry() == DOCKER_HUB
            && let Some(short) = repository.strip_prefix("library/")
        {
            self.aliases
                .entry(short.to_string())
                .or_insert_with(|| repository.clone());
        }
        let services = if img.kinds.is_empty() || img.kinds.iter().any(|k| k == "image") {
            img.services.clone()
        } else {
            Vec::new()
        };
        self.images.push(CatalogImage {
            reference: img.reference.to_string(),
            parsed,
            repository,
            tag,
            top: img.top.clone(),
            platform_manifest: img.manifest.digest.clone(),
            manifests,
            blobs,
            services,
            bundle: idx,
        });
        Ok(())
    }

    /// Read manifest `digest` (and its children present in the bundles), children first.
    // The recursion carries its context; a struct would only rename the arguments.
    #[allow(clippy::too_many_arguments)]
    fn collect(
        &mut self,
        idx: usize,
        reference: &str,
        digest: &Digest,
        media_type: &str,
        manifests: &mut Vec<Digest>,
        blobs: &mut Vec<Digest>,
        depth: u32,
    ) -> Result<(), CatalogError> {
        if manifests.contains(digest) || depth > 4 {
            return Ok(());
        }
        let path = self.files[idx].path.clone();
        let bytes = match self.manifests.get(digest) {
            Some(m) => m.bytes.clone(),
            None => {
                let Some(loc) = self.blobs.get(digest).cloned() else {
                    return Err(CatalogError::MissingManifest {
                        path,
                        reference: reference.to_string(),
                        digest: digest.clone(),
                    });
                };
                if loc.size > MANIFEST_LIMIT {
                    return Err(CatalogError::ManifestTooLarge {
                        path,
                        reference: reference.to_string(),
                        digest: digest.clone(),
                        size: loc.size,
                    });
                }
                let mut buf = vec![0u8; loc.size as usize];
                let file = &self.files[loc.file];
                file.read_exact_at(&mut buf, loc.offset)
                    .map_err(|source| CatalogError::Io {
                        path: file.path.clone(),
                        offset: loc.offset,
                        source,
                    })?;
                let actual = Digest::of(&buf);
                if actual != *digest {
                    return Err(CatalogError::ManifestDigest {
                        path: file.path.clone(),
                        reference: reference.to_string(),
                        expected: digest.clone(),
                        actual,
                    });
                }
                let bytes = bytes::Bytes::from(buf);
                let media_type = if media_type.is_empty() {
                    media::detect(&bytes, None)
                } else {
                    media_type.to_string()
                };
                self.manifests.insert(
                    digest.clone(),
                    Manifest {
                        media_type,
                        bytes: bytes.clone(),
                    },
                );
                bytes
            }
        };
        let parsed = Links::parse(&bytes).map_err(|e| CatalogError::BadManifest {
            path: path.clone(),
            reference: reference.to_string(),
            digest: digest.clone(),
            message: e.to_string(),
        })?;
        let is_index = parsed.is_index(media_type);
        if is_index {
            // Children of other platforms are not in the bundle: serve those present.
            for child in &parsed.manifests {
                if self.blobs.contains_key(&child.digest) {
                    self.collect(
                        idx,
                        reference,
                        &child.digest,
                        &child.media_type,
                        manifests,
                        blobs,
                        depth + 1,
                    )?;
                }
            }
        } else {
            for d in parsed.blobs() {
                if !blobs.contains(&d.digest) {
                    blobs.push(d.digest.clone());
                }
            }
        }
        manifests.push(digest.clone());
        Ok(())
    }

    fn check_blobs(&mut self) {
        let mut missing = BTreeSet::new();
        for img in &self.images {
            for d in &img.blobs {
                if !self.blobs.contains_key(d) {
                    missing.insert((img.reference.clone(), d.clone()));
                }
            }
        }
        for (r, d) in missing {
            self.warnings.push(format!(
                "blob `{d}` of `{r}` is in none of the bundles (a delta bundle?); requests for it get 404"
            ));
        }
    }

    /// The repository a request names, after aliases.
    pub fn repo(&self, name: &str) -> Option<(&str, &Repo)> {
        if let Some((k, r)) = self.repos.get_key_value(name) {
            return Some((k.as_str(), r));
        }
        let real = self.aliases.get(name)?;
        self.repos.get_key_value(real).map(|(k, r)| (k.as_str(), r))
    }

    /// Where a blob is and which file holds it.
    pub fn blob(&self, digest: &Digest) -> Option<(&BlobLoc, &Arc<BundleFile>)> {
        let loc = self.blobs.get(digest)?;
        Some((loc, &self.files[loc.file]))
    }

    /// Bytes of every blob (as stored) referenced by the served images, each once.
    pub fn served_bytes(&self) -> (u64, u64) {
        let mut seen = BTreeSet::new();
        let mut bytes = 0;
        for repo in self.repos.values() {
            for d in repo.blobs.iter().chain(repo.manifests.iter()) {
                if seen.insert(d.clone())
                    && let Some(loc) = self.blobs.get(d)
                {
                    bytes += loc.size;
                }
            }
        }
        (seen.len() as u64, bytes)
    }
}

/// The catalog as a source: every blob of its bundles, read by `pread` at its offset (the
/// blob-offset index), the images of every bundle. Used by `registry::push`.
impl crate::source::Source for Catalog {
    fn describe(&self) -> String {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("`{}`", f.path.display()))
            .collect();
        format!("bundle {}", files.join(", "))
    }

    fn images(&self) -> Result<Vec<crate::image::ResolvedImage>, crate::source::SourceError> {
        let mut out = Vec::new();
        for meta in &self.metas {
            out.extend(crate::bundle::source::resolved_images(meta)?);
        }
        Ok(out)
    }

    fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).map(|l| l.size)
    }

    fn open(
        &self,
        digest: &Digest,
        offset: u64,
    ) -> Result<crate::source::BlobReader, crate::source::SourceError> {
        let Some((loc, file)) = self.blob(digest) else {
            return Err(crate::source::SourceError::Missing {
                from: self.describe(),
                digest: digest.clone(),
            });
        };
        Ok(Box::new(RangeReader {
            file: Arc::clone(file),
            pos: loc.offset + offset.min(loc.size),
            end: loc.offset + loc.size,
        }))
    }

    fn stream(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Option<futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        use futures_util::StreamExt;
        let (loc, file) = self.blob(digest)?;
        let len = len.min(loc.size.saturating_sub(offset));
        Some(
            stream_range(
                Arc::clone(file),
                loc.offset + offset,
                len,
                crate::source::CHUNK,
            )
            .boxed(),
        )
    }
}
