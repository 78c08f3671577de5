//! Bundle verification: owns `verify`, which hashes every member of a bundle (in parallel:
//! a plain bundle is indexed first and its blobs are hashed by a pool of workers reading
//! their own byte ranges; a compressed bundle is decompressed by one reader thread that
//! feeds the pool through bounded channels of 1 MiB chunks, one blob per worker) and checks
//! it against `airlock/SHA256SUMS` and the blob names, then hands what it read (`Contents`)
//! to the checks (`checks`: integrity, structure, completeness, the compose project), and
//! returns their `Report`. This file is the pipeline (one read, the hashing pool); the
//! checks live in `checks.rs` (the compose project is opened by `stage`). Uses `bundle::read`;
//! called by `cli::verify`.

mod checks;

pub use checks::compose_completeness;
use checks::{Checks, Contents};

use super::parts::RandomAccess;
use super::read::{
    BLOBS_DIR, Bundle, Compression, Flow, INDEX_PATH, JSON_LIMIT, MANIFEST_PATH, MemberInfo,
    MetaCollector, ReadError, read_small,
};
use super::source::BundleFile;
use crate::digest::{Digest, Hasher};
use crate::progress::Reporter;
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

const CHUNK: usize = 1 << 20;
/// Largest config, manifest or index kept in memory for the structure checks, and all of
/// them together: parsed JSON of tiny elements takes about 16 times its size, so these keep
/// verify far below 100 MB whatever the bundle holds. Larger ones are still hashed; their
/// structure is not checked (a note says so).
const STRUCTURE_LIMIT: u64 = 2 << 20;
const STRUCTURE_TOTAL_LIMIT: u64 = 32 << 20;

/// Options of `verify`, with their defaults.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Hashing workers (default: the number of CPUs).
    pub jobs: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// What kind of problem `verify` found. Serialised in kebab-case (docs/json.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// The bundle could not be read to the end (truncated, corrupt header, hostile member).
    Unreadable,
    /// A file's sha256 differs from its `SHA256SUMS` line.
    SumMismatch,
    /// A blob's sha256 differs from its name.
    BlobDigest,
    /// A file listed in `SHA256SUMS` (or referenced by a manifest) is not in the bundle.
    MissingFile,
    /// A file is in the bundle but not in `SHA256SUMS`.
    UnlistedFile,
    /// `manifest.json`, `index.json`, a manifest or a config is malformed or inconsistent.
    Structure,
    /// An image the project needs is absent or incomplete.
    MissingImage,
    /// An image is for another platform than the bundle's.
    Platform,
    /// A part of a split bundle differs from its parts file (`file` is the part's path).
    CorruptPart,
    /// A layer patch (patch bundles) is not a patch, disagrees with bundle.json, or (with
    /// `--base`) does not rebuild its layer.
    Patch,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The member at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The blob at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<Digest>,
    /// The image reference at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub message: String,
}

/// Per image outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageCheck {
    #[serde(rename = "ref")]
    pub reference: String,
    pub config: Digest,
    pub ok: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub bundle: std::path::PathBuf,
    pub compression: Compression,
    pub project: Option<String>,
    pub platform: Option<String>,
    /// Regular files in the tar.
    pub files: u64,
    /// Bytes hashed.
    pub bytes: u64,
    pub signed: bool,
    pub images: Vec<ImageCheck>,
    pub problems: Vec<Problem>,
    /// What could not be checked, and why (never a failure).
    pub notes: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Failures that prevent verification from starting; everything found inside the bundle
/// is a `Problem` in the report instead.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Open(#[from] ReadError),
    #[error("Failed to start a hashing thread")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Parts(#[from] super::parts::PartsError),
}

impl crate::error::Classify for VerifyError {
    fn class(&self) -> crate::error::Class {
        match self {
            VerifyError::Open(e) => e.class(),
            VerifyError::Thread(_) => crate::error::Class::Environment,
            VerifyError::Parts(e) => e.class(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            VerifyError::Open(e) => e.hint(),
            VerifyError::Thread(_) => None,
            VerifyError::Parts(e) => e.hint(),
        }
    }
}

/// A hashing job for the pool.
enum Job {
    /// Read `size` bytes at `offset` of the plain bundle file.
    Range {
        name: String,
        offset: u64,
        size: u64,
    },
    /// Chunks sent by the reader thread.
    Stream {
        name: String,
        chunks: Receiver<Vec<u8>>,
    },
}

type Hashed = (String, Result<(Digest, u64), std::io::Error>);

/// The worker pool: a rendezvous job channel (a job is handed over only when a worker is
/// free, so one blob goes to one worker) and a result channel.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Hashed>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn start(bundle: &Bundle, n: usize, reporter: Arc<dyn Reporter>) -> Result<Pool, VerifyError> {
        // Plain and split bundles: one `pread` handle, shared by every worker. Opened
        // lazily (a compressed bundle has none) and once.
        let file: Arc<std::sync::OnceLock<std::io::Result<BundleFile>>> = Arc::default();
        let (job_tx, job_rx) = sync_channel::<Job>(0);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = std::sync::mpsc::channel::<Hashed>();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let job_rx = Arc::clone(&job_rx);
            let res_tx = res_tx.clone();
            let path = bundle.path.clone();
            let file = Arc::clone(&file);
            let reporter = Arc::clone(&reporter);
            let t = std::thread::Builder::new()
                .name(format!("verify-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = match job_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let (name, result) = match job {
                            Job::Range { name, offset, size } => {
                                let opened = file.get_or_init(|| {
                                    RandomAccess::open(&path).map(|file| BundleFile {
                                        path: path.clone(),
                                        file,
                                    })
                                });
                                let r = match opened {
                                    Ok(f) => hash_range(f, offset, size, &*reporter),
                                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                                };
                                (name, r)
                            }
                            Job::Stream { name, chunks } => {
                                let mut h = Hasher::new();
                                for chunk in chunks {
                                    h.update(&chunk);
                                    reporter.blob_progress(&dummy_digest(), chunk.len() as u64);
                                }
                                let len = h.len();
                                (name, Ok((h.finish(), len)))
                            }
                        };
                        if res_tx.send((name, result)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(VerifyError::Thread)?;
            threads.push(t);
        }
        Ok(Pool {
            jobs: Some(job_tx),
            results: res_rx,
            threads,
        })
    }

    fn send(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok())
    }

    /// Close the job channel, wait for the workers, collect every result.
    fn finish(mut self) -> Vec<Hashed> {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.results.try_iter().collect()
    }
}

/// Progress events carry a digest; pool progress is reported against the bundle as a whole.
fn dummy_digest() -> Digest {
    Digest::of(b"")
}

fn hash_range(
    file: &BundleFile,
    offset: u64,
    size: u64,
    reporter: &dyn Reporter,
) -> Result<(Digest, u64), std::io::Error> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < size {
        let want = ((size - done) as usize).min(CHUNK);
        let n = file.file.read_at(&mut buf[..want], offset + done)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the bundle ends inside this member",
            ));
        }
        h.update(&buf[..n]);
        done += n as u64;
        reporter.blob_progress(&dummy_digest(), n as u64);
    }
    Ok((h.finish(), done))
}

/// State gathered while walking the tar.
#[derive(Default)]
struct Walked {
    collector: MetaCollector,
    /// What the checks judge (members, hashes, JSON blobs kept).
    c: Contents,
    /// Bytes in `c.json`.
    json_bytes: u64,
    /// Plain bundles: blobs to hash by range after the walk.
    ranges: Vec<(String, u64, u64)>,
    /// Member the bundle ended inside, if any.
    truncated_in: Option<String>,
    /// Blobs known to be JSON (configs, manifests, indexes) from the metadata read so far.
    json_names: BTreeSet<Digest>,
}

impl Walked {
    /// Once `manifest.json`, `index.json` and `bundle.json` are read, which blobs are JSON.
    fn learn_json_names(&mut self) {
        let mut names = BTreeSet::new();
        for e in self.collector.manifest() {
            if let Some(d) = blob_of(&e.config) {
                names.insert(d);
            }
        }
        if let Some(index) = self.collector.index() {
            names.extend(index.manifests.iter().map(|d| d.digest.clone()));
        }
        if let Some(meta) = self.collector.meta() {
            for img in &meta.images {
                names.insert(img.top.digest.clone());
                names.insert(img.manifest.digest.clone());
                names.insert(img.config.digest.clone());
            }
        }
        self.json_names = names;
    }
}

/// `blobs/sha256/<hex>` -> digest.
fn blob_of(path: &str) -> Option<Digest> {
    path.strip_prefix(BLOBS_DIR)
        .and_then(|h| Digest::from_hex(h).ok())
}

/// Verify a bundle: integrity (every byte), structure and completeness. Problems found in
/// the bundle are in the report; `Err` only when verification cannot run at all.
pub fn verify(
    path: &std::path::Path,
    options: &VerifyOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Report, VerifyError> {
    let bundle = Bundle::open(path)?;
    let mut problems = Vec::new();
    if let Some(parts) = &bundle.parts {
        // Every part against its SHA-256 in the parts file (one extra read), so a changed
        // byte is pinned to its part, wherever it is.
        reporter.step(&format!("checking {} parts", parts.parts.len()));
        for e in parts.check_hashes()? {
            let file = match &e {
                super::parts::PartsError::Size { part, .. }
                | super::parts::PartsError::Corrupt { part, .. } => {
                    Some(part.display().to_string())
                }
                _ => None,
            };
            problems.push(Problem {
                kind: ProblemKind::CorruptPart,
                file,
                blob: None,
                image: None,
                message: e.to_string(),
            });
        }
    }
    reporter.total(bundle.file_len);
    let pool = Pool::start(&bundle, options.jobs, Arc::clone(&reporter))?;
    let mut w = Walked::default();
    let plain = bundle.compression == Compression::None;
    let walk = bundle.walk(|info: &MemberInfo, r: &mut dyn Read| {
        w.c.members.insert(info.name.clone(), info.size);
        if MetaCollector::is_meta(&info.name) {
            w.collector.take(&bundle, info, r)?;
            if let Some(bytes) = w.collector.raw.get(&info.name) {
                w.c.hashed
                    .insert(info.name.clone(), (Digest::of(bytes), bytes.len() as u64));
                reporter.blob_progress(&dummy_digest(), info.size);
            }
            if info.name == MANIFEST_PATH
                || info.name == INDEX_PATH
                || info.name == super::meta::META_PATH
            {
                w.learn_json_names();
            }
            return Ok(Flow::Continue);
        }
        let digest = info.blob_digest();
        let json = digest.as_ref().is_some_and(|d| w.json_names.contains(d));
        if json && (info.size > STRUCTURE_LIMIT || w.json_bytes + info.size > STRUCTURE_TOTAL_LIMIT)
        {
            w.c.json_skipped.push(info.name.clone());
        } else if json && info.size <= JSON_LIMIT {
            w.json_bytes += info.size;
            let bytes = read_small(&bundle, info, r)
                .inspect_err(|_| w.truncated_in = Some(info.name.clone()))?;
            w.c.hashed
                .insert(info.name.clone(), (Digest::of(&bytes), bytes.len() as u64));
            reporter.blob_progress(&dummy_digest(), info.size);
            if let Some(d) = digest {
                w.c.json.insert(d, bytes);
            }
            return Ok(Flow::Continue);
        }
        if plain {
            w.ranges.push((info.name.clone(), info.offset, info.size));
            return Ok(Flow::Continue);
        }
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        if !pool.send(Job::Stream {
            name: info.name.clone(),
            chunks: rx,
        }) {
            return Err(ReadError::Io {
                path: bundle.path.clone(),
                member: info.name.clone(),
                source: std::io::Error::other("hashing workers stopped"),
            });
        }
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match r.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(source) => {
                        w.truncated_in = Some(info.name.clone());
                        return Err(ReadError::Io {
                            path: bundle.path.clone(),
                            member: info.name.clone(),
                            source,
                        });
                    }
                }
            }
            if filled == 0 {
                break;
            }
            chunk.truncate(filled);
            if tx.send(chunk).is_err() {
                break;
            }
        }
        Ok(Flow::Continue)
    });
    if let Err(e) = walk {
        problems.push(Problem {
            kind: ProblemKind::Unreadable,
            file: None,
            blob: None,
            image: None,
            message: e.to_string(),
        });
    }
    // Plain bundles: hash the blobs now, largest first, so the pool stays busy to the end.
    w.ranges.sort_by_key(|r| std::cmp::Reverse(r.2));
    for (name, offset, size) in std::mem::take(&mut w.ranges) {
        pool.send(Job::Range { name, offset, size });
    }
    for (name, result) in pool.finish() {
        match result {
            Ok(h) => {
                w.c.hashed.insert(name, h);
            }
            Err(e) => problems.push(Problem {
                kind: ProblemKind::Unreadable,
                file: Some(name.clone()),
                blob: blob_of(&name),
                image: None,
                message: format!("Failed to read `{name}`: {e}"),
            }),
        }
    }
    if let Some(t) = &w.truncated_in {
        w.c.hashed.remove(t);
    }

    let bytes = w.c.hashed.values().map(|(_, n)| *n).sum();
    let files = w.c.members.len() as u64;
    let collector = std::mem::take(&mut w.collector);
    let meta = match collector.finish(&bundle) {
        Ok(m) => Some(m),
        Err(e) => {
            if problems.is_empty() {
                problems.push(Problem {
                    kind: ProblemKind::Structure,
                    file: None,
                    blob: None,
                    image: None,
                    message: e.to_string(),
                });
            }
            None
        }
    };
    let mut checks = Checks {
        c: &w.c,
        problems: Vec::new(),
        images: Vec::new(),
    };
    checks.integrity(meta.as_ref());
    if let Some(meta) = &meta {
        checks.structure(meta);
        checks.completeness(meta);
    }
    problems.append(&mut checks.problems);
    // Only a patch bundle pays for the source (it clones the metadata, which a hostile
    // manifest.json can make large).
    if let Some(meta) = meta.as_ref().filter(|m| !m.meta.patches().is_empty()) {
        let delta = crate::bundle::source::BundleSource::of(meta.clone());
        for p in crate::bundle::patched::check_headers(meta, &delta) {
            let file = format!("{BLOBS_DIR}{}", p.patch.hex());
            if w.c.members.contains_key(&file) {
                problems.push(Problem {
                    kind: ProblemKind::Patch,
                    file: Some(file),
                    blob: Some(p.patch),
                    image: Some(p.image),
                    message: p.message,
                });
            }
        }
    }
    let mut notes = Vec::new();
    if !w.c.json_skipped.is_empty() {
        notes.push(format!(
            "the structure of {} config/manifest blob(s) over {} MiB was not checked (they were hashed): {}",
            w.c.json_skipped.len(),
            STRUCTURE_LIMIT >> 20,
            w.c.json_skipped.join(", ")
        ));
    }
    if let Some(meta) = &meta
        && !meta.compose_files.is_empty()
    {
        match compose_completeness(meta) {
            Ok(mut p) => problems.append(&mut p),
            Err(e) => notes.push(format!(
                "the compose project in the bundle was not checked: {e}"
            )),
        }
    }
    Ok(Report {
        bundle: bundle.path.clone(),
        compression: bundle.compression,
        project: meta.as_ref().map(|m| m.meta.project.clone()),
        platform: meta.as_ref().map(|m| m.meta.platform.to_string()),
        files,
        bytes,
        signed: meta.as_ref().is_some_and(|m| m.signed),
        images: checks.images,
        problems,
        notes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bundle::meta::{BundleMeta, ComposeMeta, FORMAT, ImageMeta, META_PATH, SUMS_PATH};
    use crate::image::{Descriptor, Layer, media};
    use std::io::Write;

    /// A minimal bundle following docs/bundle-format.md: one image, one gzip layer.
    pub(crate) fn tiny_bundle(dir: &std::path::Path) -> std::path::PathBuf {
        tiny_bundle_with(dir, |_, _| {})
    }

    /// `tiny_bundle` after `change` had its way with bundle.json and the member list
    /// (SHA256SUMS is written afterwards, so it matches whatever `change` did).
    pub(crate) fn tiny_bundle_with(
        dir: &std::path::Path,
        change: impl FnOnce(&mut BundleMeta, &mut Vec<(String, Vec<u8>)>),
    ) -> std::path::PathBuf {
        let mut layer_tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(6);
        h.set_mode(0o644);
        layer_tar
            .append_data(&mut h, "hello.txt", &b"hello\n"[..])
            .unwrap();
        let layer_tar = layer_tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer_tar).unwrap();
        let layer = gz.finish().unwrap();
        let diff_id = Digest::of(&layer_tar);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}
        }))
        .unwrap();
        let cfg_d = Descriptor::new(media::OCI_CONFIG, Digest::of(&config), config.len() as u64);
        let layer_d = Descriptor::new(
            media::OCI_LAYER_GZIP,
            Digest::of(&layer),
            layer.len() as u64,
        );
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "config": cfg_d, "layers": [layer_d]
        }))
        .unwrap();
        let man_d = Descriptor::new(
            media::OCI_MANIFEST,
            Digest::of(&manifest),
            manifest.len() as u64,
        );
        let mut top = man_d.clone();
        top.annotations.insert(
            "io.containerd.image.name".into(),
            "docker.io/library/tiny:1".into(),
        );
        top.annotations
            .insert("org.opencontainers.image.ref.name".into(), "1".into());
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [top]})).unwrap();
        let docker_manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": format!("blobs/sha256/{}", cfg_d.digest.hex()), "RepoTags": ["tiny:1"],
            "Layers": [format!("blobs/sha256/{}", layer_d.digest.hex())]
        }]))
        .unwrap();
        let meta = BundleMeta {
            format: FORMAT.into(),
            airlock_version: "0.1.0".into(),
            created: "2026-11-27T07:00:00Z".into(),
            project: "tiny".into(),
            platform: "linux/amd64".parse().unwrap(),
            compose: ComposeMeta {
                files: vec!["compose.yaml".into()],
                env_files: vec![],
                profiles: vec![],
                ..ComposeMeta::default()
            },
            images: vec![ImageMeta {
                reference: "tiny:1".parse().unwrap(),
                normalized: "docker.io/library/tiny:1".into(),
                kinds: vec!["image".into()],
                services: vec!["web".into()],
                source: "engine".into(),
                top: man_d.clone(),
                manifest: man_d.clone(),
                config: cfg_d.clone(),
                layers: vec![Layer {
                    blob: layer_d.clone(),
                    diff_id,
                    uncompressed_size: Some(layer_tar.len() as u64),
                }],
                size: layer.len() as u64,
                uncompressed_size: layer_tar.len() as u64,
            }],
            blobs: 3,
            size: (config.len() + layer.len() + manifest.len()) as u64,
            uncompressed_size: layer_tar.len() as u64,
            base: None,
        };
        let compose = b"services:\n  web:\n    image: tiny:1\n".to_vec();
        let mut files: Vec<(String, Vec<u8>)> = vec![
            ("airlock/compose/compose.yaml".into(), compose),
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), index),
            ("manifest.json".into(), docker_manifest),
            (format!("blobs/sha256/{}", man_d.digest.hex()), manifest),
            (format!("blobs/sha256/{}", cfg_d.digest.hex()), config),
            (format!("blobs/sha256/{}", layer_d.digest.hex()), layer),
        ];
        let mut meta = meta;
        change(&mut meta, &mut files);
        let mut sums: Vec<String> = files
            .iter()
            .map(|(n, b)| format!("{}  {n}\n", Digest::of(b).hex()))
            .collect();
        let meta_bytes = serde_json::to_vec_pretty(&meta).unwrap();
        sums.push(format!("{}  {META_PATH}\n", Digest::of(&meta_bytes).hex()));
        sums.sort_by(|a, b| a[66..].cmp(&b[66..]));
        files.insert(0, (SUMS_PATH.into(), sums.concat().into_bytes()));
        files.insert(0, (META_PATH.into(), meta_bytes));
        let path = dir.join("tiny.tar");
        let mut b = tar::Builder::new(fs_err::File::create(&path).unwrap());
        for (name, bytes) in &files {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, &bytes[..]).unwrap();
        }
        b.finish().unwrap();
        path
    }

    fn run(path: &std::path::Path) -> Report {
        verify(
            path,
            &VerifyOptions::default(),
            Arc::new(crate::progress::Silent),
        )
        .unwrap()
    }

    #[test]
    fn tiny_bundle_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = tiny_bundle(dir.path());
        let report = run(&path);
        assert!(report.ok(), "{:#?}", report.problems);
        assert_eq!(report.images.len(), 1);
        assert!(report.images[0].ok);
        assert_eq!(report.files, 9);
    }

    #[test]
    fn flipped_bit_names_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let path = tiny_bundle(dir.path());
        let members = Bundle::open(&path).unwrap().members().unwrap();
        let layer = members.last().unwrap().clone();
        let mut bytes = fs_err::read(&path).unwrap();
        bytes[(layer.offset + layer.size / 2) as usize] ^= 0x10;
        fs_err::write(&path, &bytes).unwrap();
        for compressed in [false, true] {
            let p = if compressed {
                let z = dir.path().join("tiny.tar.zst");
                fs_err::write(&z, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
                z
            } else {
                path.clone()
            };
            let report = run(&p);
            let digest = layer.blob_digest().unwrap();
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.kind == ProblemKind::BlobDigest && p.blob.as_ref() == Some(&digest)),
                "{:#?}",
                report.problems
            );
            assert!(!report.images[0].ok);
        }
    }

    /// Regression: a project name from bundle.json was joined to the temporary staging
    /// directory, so `/abs` or `../..` wrote the bundle's compose files outside it. Now
    /// the bundle is refused when bundle.json is read (and staging would not use it).
    #[test]
    fn hostile_project_name_stages_nothing_outside_the_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        for project in [
            outside.display().to_string(),
            "../../../outside".into(),
            "..".into(),
            "Upper".into(),
        ] {
            let path = tiny_bundle_with(dir.path(), |m, _| m.project = project.clone());
            let report = run(&path);
            assert!(!outside.exists(), "verify wrote to {}", outside.display());
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.message.contains("not a Compose project name")),
                "{project}: {:#?}",
                report.problems
            );
        }
    }

    /// Regression: an index naming itself (or a cycle of indexes) recursed until the stack
    /// overflowed.
    #[test]
    fn index_naming_itself_is_a_structure_problem() {
        let dir = tempfile::tempdir().unwrap();
        // Any name works: verify keys JSON blobs by name (the name/content mismatch is reported too).
        let fake = Digest::of(b"self");
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media::OCI_INDEX,
            "manifests": [{"mediaType": media::OCI_INDEX, "digest": fake.to_string(), "size": 1,
                           "platform": {"os": "linux", "architecture": "amd64"}}]
        }))
        .unwrap();
        let path = tiny_bundle_with(dir.path(), |_, files| {
            let top = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
                {"mediaType": media::OCI_INDEX, "digest": fake.to_string(), "size": index.len()}
            ]}))
            .unwrap();
            for (name, bytes) in files.iter_mut() {
                if name == "index.json" {
                    *bytes = top.clone();
                }
            }
            files.push((format!("blobs/sha256/{}", fake.hex()), index.clone()));
        });
        let report = run(&path);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.kind == ProblemKind::Structure && p.message.contains("nests more than")),
            "{:#?}",
            report.problems
        );
    }

    /// Regression: a compose file in the bundle building from `context: /dev`,
    /// `dockerfile: zero` made verify read /dev/zero until memory ran out.
    #[test]
    fn compose_in_bundle_cannot_make_verify_read_host_files() {
        let dir = tempfile::tempdir().unwrap();
        let compose = b"services:\n  web:\n    image: tiny:1\n  b:\n    build:\n      context: /dev\n      dockerfile: zero\n  c:\n    build:\n      context: ../../../../../../dev\n      dockerfile: zero\n";
        let path = tiny_bundle_with(dir.path(), |_, files| {
            for (name, bytes) in files.iter_mut() {
                if name == "airlock/compose/compose.yaml" {
                    *bytes = compose.to_vec();
                }
            }
        });
        let started = std::time::Instant::now();
        let report = run(&path);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(report.images.iter().all(|i| i.ok), "{:#?}", report.problems);
    }

    #[test]
    fn truncated_bundle_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = tiny_bundle(dir.path());
        let bytes = fs_err::read(&path).unwrap();
        fs_err::write(&path, &bytes[..bytes.len() - 2048]).unwrap();
        let report = run(&path);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.kind == ProblemKind::Unreadable && p.message.contains("truncated")),
            "{:#?}",
            report.problems
        );
    }
}
