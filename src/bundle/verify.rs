//! Bundle verification: owns `verify`, which hashes every member of a bundle (in parallel:
//! a plain bundle is indexed first and its blobs are hashed by a pool of workers reading
//! their own byte ranges; a compressed bundle is decompressed by one reader thread that
//! feeds the pool through bounded channels of 1 MiB chunks, one blob per worker) and checks
//! it against `airlock/SHA256SUMS` and the blob names, then checks the structure
//! (`manifest.json`, `index.json`, configs, layer counts) and completeness (every image of
//! `bundle.json` for the bundle's platform, and every image its compose project needs,
//! opened by `stage`). Uses `bundle::read`; called by `cli::verify`.

use super::meta::{SIGNATURE_PATH, SUMS_PATH};
use super::read::{
    BLOBS_DIR, Bundle, Compression, Flow, INDEX_PATH, JSON_LIMIT, MANIFEST_PATH, MemberInfo, Meta,
    MetaCollector, ReadError, read_small,
};
use crate::digest::{Digest, Hasher};
use crate::image::{Config, ImageError, Links, media};
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::reference::Reference;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

const CHUNK: usize = 1 << 20;
/// Deepest chain of indexes followed below `index.json` (registries nest at most one).
const MAX_INDEX_DEPTH: usize = 4;
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
        let (job_tx, job_rx) = sync_channel::<Job>(0);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = std::sync::mpsc::channel::<Hashed>();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let job_rx = Arc::clone(&job_rx);
            let res_tx = res_tx.clone();
            let path = bundle.path.clone();
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
                                let r = hash_range(&path, offset, size, &*reporter);
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
    path: &std::path::Path,
    offset: u64,
    size: u64,
    reporter: &dyn Reporter,
) -> Result<(Digest, u64), std::io::Error> {
    // A plain file, or the parts of a split bundle (`bundle::parts`).
    let file = super::parts::RandomAccess::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < size {
        let want = ((size - done) as usize).min(CHUNK);
        let n = file.read_at(&mut buf[..want], offset + done)?;
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
    /// Every regular member: name -> size.
    members: BTreeMap<String, u64>,
    /// Hashes computed inline (metadata and small JSON blobs).
    hashed: HashMap<String, (Digest, u64)>,
    /// JSON blobs kept in memory for the structure checks: digest -> bytes.
    json: HashMap<Digest, Vec<u8>>,
    /// Bytes in `json`.
    json_bytes: u64,
    /// JSON blobs too large to keep (their structure is not checked).
    json_skipped: Vec<String>,
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
        w.members.insert(info.name.clone(), info.size);
        if MetaCollector::is_meta(&info.name) {
            w.collector.take(&bundle, info, r)?;
            if let Some(bytes) = w.collector.raw.get(&info.name) {
                w.hashed
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
            w.json_skipped.push(info.name.clone());
        } else if json && info.size <= JSON_LIMIT {
            w.json_bytes += info.size;
            let bytes = read_small(&bundle, info, r)
                .inspect_err(|_| w.truncated_in = Some(info.name.clone()))?;
            w.hashed
                .insert(info.name.clone(), (Digest::of(&bytes), bytes.len() as u64));
            reporter.blob_progress(&dummy_digest(), info.size);
            if let Some(d) = digest {
                w.json.insert(d, bytes);
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
                w.hashed.insert(name, h);
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
        w.hashed.remove(t);
    }

    let bytes = w.hashed.values().map(|(_, n)| *n).sum();
    let files = w.members.len() as u64;
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
        w: &w,
        problems: Vec::new(),
        images: Vec::new(),
    };
    checks.integrity(meta.as_ref());
    if let Some(meta) = &meta {
        checks.structure(meta);
        checks.completeness(meta);
    }
    problems.append(&mut checks.problems);
    let mut notes = Vec::new();
    if !w.json_skipped.is_empty() {
        notes.push(format!(
            "the structure of {} config/manifest blob(s) over {} MiB was not checked (they were hashed): {}",
            w.json_skipped.len(),
            STRUCTURE_LIMIT >> 20,
            w.json_skipped.join(", ")
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

/// Every image the bundle's compose project needs (planned for the bundle's platform, with
/// the compose and env files the bundle carries and the process environment) is in the
/// bundle: service images, and the build bases of services whose built image is not carried.
pub fn compose_completeness(meta: &Meta) -> Result<Vec<Problem>, String> {
    let staged = crate::stage::open(meta, &crate::stage::StageOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(crate::stage::missing(&staged.plan, |img| crate::stage::carried(meta, img))
        .into_iter()
        .map(|img| Problem {
            kind: ProblemKind::MissingImage,
            file: None,
            blob: None,
            image: Some(img.reference.to_string()),
            message: format!(
                "the compose project needs `{}` (services: {}) for {}, but the bundle does not carry it",
                img.reference,
                img.services.join(", "),
                meta.meta.platform
            ),
        })
        .collect())
}

struct Checks<'a> {
    w: &'a Walked,
    problems: Vec<Problem>,
    images: Vec<ImageCheck>,
}

impl Checks<'_> {
    fn problem(
        &mut self,
        kind: ProblemKind,
        file: Option<&str>,
        image: Option<&str>,
        message: String,
    ) {
        let blob = file.and_then(blob_of);
        let p = Problem {
            kind,
            file: file.map(str::to_string),
            blob,
            image: image.map(str::to_string),
            message,
        };
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    fn has(&self, name: &str) -> bool {
        self.w.members.contains_key(name)
    }

    /// Every file against SHA256SUMS, every blob against its name.
    fn integrity(&mut self, meta: Option<&Meta>) {
        let sums = meta.map(|m| m.sums.clone()).unwrap_or_default();
        if meta.is_some() && sums.is_empty() {
            self.problem(
                ProblemKind::MissingFile,
                Some(SUMS_PATH),
                None,
                format!("`{SUMS_PATH}` is missing or empty"),
            );
        }
        for (name, expected) in &sums {
            match self.w.hashed.get(name) {
                Some((actual, _)) if actual != expected => self.problem(
                    ProblemKind::SumMismatch,
                    Some(name),
                    None,
                    format!("`{name}` has sha256 {actual}, but {SUMS_PATH} says {expected}"),
                ),
                Some(_) => {}
                None if self.has(name) => {} // unreadable: already reported
                None => self.problem(
                    ProblemKind::MissingFile,
                    Some(name),
                    None,
                    format!("`{name}` is listed in {SUMS_PATH} but not in the bundle"),
                ),
            }
        }
        for name in self.w.members.keys() {
            if meta.is_some()
                && name != SUMS_PATH
                && name != SIGNATURE_PATH
                && !sums.contains_key(name)
            {
                self.problem(
                    ProblemKind::UnlistedFile,
                    Some(name),
                    None,
                    format!("`{name}` is in the bundle but not listed in {SUMS_PATH}"),
                );
            }
            if let Some(hex) = name.strip_prefix(BLOBS_DIR) {
                let Ok(expected) = Digest::from_hex(hex) else {
                    self.problem(
                        ProblemKind::Structure,
                        Some(name),
                        None,
                        format!("`{name}` is not named by a sha256 digest"),
                    );
                    continue;
                };
                if let Some((actual, _)) = self.w.hashed.get(name)
                    && *actual != expected
                {
                    self.problem(
                        ProblemKind::BlobDigest,
                        Some(name),
                        None,
                        format!("blob `{expected}` is corrupt: its content hashes to {actual}"),
                    );
                }
            }
        }
    }

    fn blob_path(d: &Digest) -> String {
        format!("{BLOBS_DIR}{}", d.hex())
    }

    /// A blob must be carried, or (delta bundles) be assumed present on the target.
    fn need_blob(&mut self, d: &Digest, meta: &Meta, image: Option<&str>, what: &str) -> bool {
        let path = Self::blob_path(d);
        if self.has(&path) {
            return true;
        }
        if meta
            .meta
            .base
            .as_ref()
            .is_some_and(|b| b.assumed.contains(d))
        {
            return false;
        }
        self.problem(
            ProblemKind::MissingFile,
            Some(&path),
            image,
            format!("{what} `{d}` is not in the bundle"),
        );
        false
    }

    /// A config read during the walk: `None` when its bytes were not kept or are not JSON.
    fn config(&self, d: &Digest) -> Option<Result<Config, ImageError>> {
        match Config::parse(self.w.json.get(d)?) {
            Err(ImageError::Syntax(_)) => None,
            parsed => Some(parsed),
        }
    }

    /// manifest.json, index.json, manifests and configs parse and agree.
    fn structure(&mut self, meta: &Meta) {
        if !self.has(MANIFEST_PATH) {
            self.problem(
                ProblemKind::Structure,
                Some(MANIFEST_PATH),
                None,
                format!("`{MANIFEST_PATH}` is missing: `docker load` needs it"),
            );
        }
        let platform = &meta.meta.platform;
        for entry in &meta.manifest {
            let image = entry
                .repo_tags
                .first()
                .cloned()
                .unwrap_or_else(|| entry.config.clone());
            let img = Some(image.as_str());
            for tag in &entry.repo_tags {
                if Reference::parse(tag)
                    .map(|r| r.tag().is_none())
                    .unwrap_or(true)
                {
                    self.problem(
                        ProblemKind::Structure,
                        Some(MANIFEST_PATH),
                        img,
                        format!("RepoTag `{tag}` is not a `name:tag` reference"),
                    );
                }
            }
            let Some(cfg) = blob_of(&entry.config) else {
                self.problem(
                    ProblemKind::Structure,
                    Some(MANIFEST_PATH),
                    img,
                    format!("Config path `{}` is not `blobs/sha256/<hex>`", entry.config),
                );
                continue;
            };
            if !self.need_blob(&cfg, meta, img, "config") {
                continue;
            }
            let config = match self.config(&cfg) {
                Some(Ok(config)) => config,
                Some(Err(e)) => {
                    self.problem(
                        ProblemKind::Structure,
                        Some(&entry.config),
                        img,
                        format!("config `{cfg}` is not an image config: {e}"),
                    );
                    continue;
                }
                None => {
                    if self.w.json_skipped.contains(&entry.config) {
                        continue;
                    }
                    self.problem(
                        ProblemKind::Structure,
                        Some(&entry.config),
                        img,
                        format!("config `{cfg}` is not valid JSON"),
                    );
                    continue;
                }
            };
            let diff_ids = config.rootfs.as_ref().map(|r| r.diff_ids.len());
            if diff_ids != Some(entry.layers.len()) {
                self.problem(
                    ProblemKind::Structure,
                    Some(&entry.config),
                    img,
                    format!(
                        "config `{cfg}` lists {} diff_ids but manifest.json lists {} layers",
                        diff_ids.unwrap_or(0),
                        entry.layers.len()
                    ),
                );
            }
            for layer in &entry.layers {
                match blob_of(layer) {
                    Some(d) => {
                        self.need_blob(&d, meta, img, "layer");
                    }
                    None if self.has(layer) => {}
                    None => self.problem(
                        ProblemKind::MissingFile,
                        Some(layer),
                        img,
                        format!("layer `{layer}` is not in the bundle"),
                    ),
                }
            }
            let have = config.platform();
            if !platform.matches(&have) {
                self.problem(
                    ProblemKind::Platform,
                    Some(&entry.config),
                    img,
                    format!("image `{image}` is for {have}, the bundle is for {platform}"),
                );
            }
        }
        match &meta.index {
            None if meta.oci_layout => self.problem(
                ProblemKind::Structure,
                Some(INDEX_PATH),
                None,
                format!("`{INDEX_PATH}` is missing although `oci-layout` is present"),
            ),
            None => {}
            Some(index) => {
                for desc in &index.manifests {
                    let name = desc
                        .annotations
                        .get("io.containerd.image.name")
                        .cloned()
                        .unwrap_or_else(|| desc.digest.to_string());
                    if !self.need_blob(&desc.digest, meta, Some(&name), "index entry") {
                        continue;
                    }
                    if let Some(size) = self.w.members.get(&Self::blob_path(&desc.digest))
                        && *size != desc.size
                    {
                        self.problem(
                            ProblemKind::Structure,
                            Some(INDEX_PATH),
                            Some(&name),
                            format!(
                                "index.json says `{}` is {} bytes, the blob is {size}",
                                desc.digest, desc.size
                            ),
                        );
                    }
                    self.oci_object(
                        &desc.digest,
                        &desc.media_type,
                        meta,
                        &name,
                        Some(platform),
                        0,
                    );
                }
            }
        }
    }

    /// An index or manifest of the OCI side: its children for the platform are present.
    /// `depth` counts the indexes above; a hostile index may name itself or a cycle.
    fn oci_object(
        &mut self,
        digest: &Digest,
        media_type: &str,
        meta: &Meta,
        image: &str,
        platform: Option<&Platform>,
        depth: usize,
    ) {
        if depth > MAX_INDEX_DEPTH {
            self.problem(
                ProblemKind::Structure,
                Some(&Self::blob_path(digest)),
                Some(image),
                format!(
                    "index `{digest}` nests more than {MAX_INDEX_DEPTH} indexes deep (a cycle?)"
                ),
            );
            return;
        }
        // Fields that do not parse are not followed (the blobs they name go unchecked here).
        let links = match self.w.json.get(digest).map(|b| Links::parse(b)) {
            None => return,
            Some(Ok(links)) => links,
            Some(Err(ImageError::Shape(_))) => Links::default(),
            Some(Err(ImageError::Syntax(_))) => {
                self.problem(
                    ProblemKind::Structure,
                    Some(&Self::blob_path(digest)),
                    Some(image),
                    format!("`{digest}` is not valid JSON"),
                );
                return;
            }
        };
        let mt = links.media_type.as_deref().unwrap_or(media_type);
        if media::is_index(mt) {
            let chosen = links
                .manifests
                .iter()
                .filter(|c| {
                    c.platform
                        .as_ref()
                        .is_some_and(|p| platform.is_none_or(|want| want.matches(p)))
                })
                .find(|c| self.has(&Self::blob_path(&c.digest)));
            match chosen {
                Some(c) => self.oci_object(
                    &c.digest.clone(),
                    &c.media_type.clone(),
                    meta,
                    image,
                    platform,
                    depth + 1,
                ),
                None => self.problem(
                    ProblemKind::MissingImage,
                    Some(&Self::blob_path(digest)),
                    Some(image),
                    format!(
                        "no manifest for {} of index `{digest}` is in the bundle",
                        platform.map(|p| p.to_string()).unwrap_or_default()
                    ),
                ),
            }
        } else if media::is_manifest(mt) || links.config.is_some() || !links.layers.is_empty() {
            if let Some(cfg) = &links.config {
                self.need_blob(&cfg.digest, meta, Some(image), "config");
            }
            for l in &links.layers {
                self.need_blob(&l.digest, meta, Some(image), "layer");
            }
        }
    }

    /// Every image bundle.json promises: blobs present, tagged in manifest.json, named in index.json.
    fn completeness(&mut self, meta: &Meta) {
        for img in &meta.meta.images {
            let before = self.problems.len();
            let r = img.reference.original();
            self.need_blob(&img.top.digest, meta, Some(r), "top-level manifest");
            self.need_blob(&img.manifest.digest, meta, Some(r), "manifest");
            let have_config = self.need_blob(&img.config.digest, meta, Some(r), "config");
            for l in &img.layers {
                self.need_blob(&l.blob.digest, meta, Some(r), "layer");
            }
            let config_path = Self::blob_path(&img.config.digest);
            let entry = meta.manifest.iter().find(|e| e.config == config_path);
            match entry {
                None => self.problem(
                    ProblemKind::MissingImage,
                    Some(MANIFEST_PATH),
                    Some(r),
                    format!("image `{r}` has no entry in manifest.json"),
                ),
                Some(e) => {
                    let reference = &img.reference;
                    if let Some(tag) = reference.familiar_tagged()
                        && reference.digest().is_none()
                        && !e.repo_tags.iter().any(|t| same_tag(t, &tag))
                    {
                        self.problem(
                            ProblemKind::MissingImage,
                            Some(MANIFEST_PATH),
                            Some(r),
                            format!("manifest.json does not tag image `{r}` as `{tag}`"),
                        );
                    }
                }
            }
            if have_config && let Some(config) = self.config(&img.config.digest) {
                let diff_ids: Vec<Digest> = config
                    .ok()
                    .and_then(|c| c.rootfs)
                    .map(|r| r.diff_ids)
                    .unwrap_or_default();
                let listed: Vec<Digest> = img.layers.iter().map(|l| l.diff_id.clone()).collect();
                if diff_ids != listed {
                    self.problem(
                        ProblemKind::Structure,
                        Some(&config_path),
                        Some(r),
                        format!("bundle.json's layers of `{r}` differ from its config's diff_ids"),
                    );
                }
            }
            if let Some(index) = &meta.index {
                let normalized = img.reference.normalized();
                let named = index.manifests.iter().any(|d| {
                    d.digest == img.top.digest
                        && d.annotations
                            .get("io.containerd.image.name")
                            .is_none_or(|n| *n == normalized || normalized.starts_with(n.as_str()))
                });
                if !named {
                    self.problem(
                        ProblemKind::MissingImage,
                        Some(INDEX_PATH),
                        Some(r),
                        format!("index.json has no entry for `{normalized}`"),
                    );
                }
            }
            let mut blobs: BTreeSet<&Digest> =
                [&img.top.digest, &img.manifest.digest, &img.config.digest]
                    .into_iter()
                    .collect();
            blobs.extend(img.layers.iter().map(|l| &l.blob.digest));
            let ok = self.problems[before..].is_empty()
                && !self.problems.iter().any(|p| {
                    p.image.as_deref() == Some(r)
                        || p.blob.as_ref().is_some_and(|b| blobs.contains(b))
                });
            self.images.push(ImageCheck {
                reference: img.reference.to_string(),
                config: img.config.digest.clone(),
                ok,
            });
        }
    }
}

/// `redis:7` and `docker.io/library/redis:7` name the same tag.
fn same_tag(a: &str, b: &str) -> bool {
    match (Reference::parse(a), Reference::parse(b)) {
        (Ok(x), Ok(y)) => x.normalized() == y.normalized(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::meta::{BundleMeta, ComposeMeta, FORMAT, ImageMeta, META_PATH};
    use crate::image::{Descriptor, Layer};
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
