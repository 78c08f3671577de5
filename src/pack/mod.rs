//! The pack pipeline (`airlock pack`, and `airlock lock`, which stops after resolving): one
//! verified bundle that `docker load` accepts, straight from registries.
//!
//! `compose::load -> plan::plan` -> `select` (the images to pack, each once, with its
//! platform) -> `registry::resolve` (per reference: index -> platform manifest -> config ->
//! layers, original bytes kept; pinned by the lock with `--locked`) -> `registry::pull` into
//! the `store` (content-addressed, verified, resumable; `engine::save` for `--from-docker`
//! images) -> one `ImageMeta` per image (`record`) -> `bundle::delta` (what `--since` leaves
//! out) -> `bundle::write` (temporary name, renamed when complete).
//!
//! An image takes three shapes on the way, each for a reason: the `PackImage` the selection
//! makes (what the plan says of a reference), the `ResolvedImage` a registry or the engine
//! gives (its content), and the `ImageMeta` the bundle records (both, joined once in
//! `record`). Driven by `cli::pack` and `cli::lock`, which render the outcome.

mod lock;
pub mod patches;
mod select;

pub use lock::{Locked, lock};
pub use select::{Origin, PackImage, Selection, platform_for, select};

use crate::bundle::meta::{BundleMeta, ComposeMeta, FORMAT, ImageMeta};
use crate::bundle::write::{self as bundle_write, ComposeFile, Written};
use crate::compose::{LoadOptions, Project};
use crate::error::Classified;
use crate::error::Context as _;
use crate::image::{Pin, ResolvedImage};
use crate::lock::{LOCK_FILE, Lock};
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::{self, Client, PullStats};
use crate::store::Store;
use futures_util::{StreamExt, TryStreamExt, stream};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What `pack` and `lock` share: the project, the platform, extra images, the registries'
/// TLS and concurrency, and the lock file.
#[derive(Debug, Clone)]
pub struct SelectOptions {
    /// The compose project; without compose files and with `images`, none is needed.
    pub project: LoadOptions,
    /// Platform of the offline host; images are chosen for it from multi-platform indexes.
    pub platform: Platform,
    /// Images to pack that no compose file names (`--image`).
    pub images: Vec<Reference>,
    /// TLS, credentials, concurrency (`jobs` blob downloads).
    pub registry: registry::Options,
    /// Lock file (default: `airlock.lock` in the project directory, or the current
    /// directory without a project).
    pub lock_file: Option<PathBuf>,
}

impl Default for SelectOptions {
    /// The project Compose finds here, `linux/amd64`, no extra image, default registry
    /// options, the default lock file.
    fn default() -> Self {
        SelectOptions {
            project: LoadOptions::default(),
            platform: Platform::linux_amd64(),
            images: Vec::new(),
            registry: registry::Options::default(),
            lock_file: None,
        }
    }
}

impl SelectOptions {
    /// The lock file for `project` (see `lock_file`).
    pub fn lock_path(&self, project: Option<&Project>) -> PathBuf {
        match (&self.lock_file, project) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => p.directory.join(LOCK_FILE),
            (None, None) => PathBuf::from(LOCK_FILE),
        }
    }
}

/// Everything `pack` takes.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub select: SelectOptions,
    /// Bundle file to write (default: `<project>.airlock.tar` in the current directory).
    pub output: Option<PathBuf>,
    /// Take images that services build (`build-tag`) from the local engine.
    pub from_docker: bool,
    /// Use the digests of the lock file exactly; fail if the plan no longer matches it.
    pub locked: bool,
    /// Delta bundle: leave out the layers this base holds.
    pub since: Option<PathBuf>,
    /// With `since`: carry whole layers, never patches (`--no-patch`).
    pub no_patch: bool,
    /// Write the bundle as parts of this many bytes.
    pub split_size: Option<u64>,
    /// Sign with this minisign secret key.
    pub sign: Option<PathBuf>,
}

/// What a pack wrote and how it got there.
#[derive(Debug)]
pub struct Packed {
    /// The bundle written; `written.meta.images` in bundle order.
    pub written: Written,
    /// The platform of each image of `written.meta.images`, in the same order.
    pub platforms: Vec<Platform>,
    /// The base of a delta (`--since`).
    pub base: Option<PathBuf>,
    /// Blobs fetched (or exported) and taken from the cache.
    pub fetched: u64,
    pub fetched_bytes: u64,
    pub cached: u64,
    pub cached_bytes: u64,
    pub elapsed: Duration,
}

/// Pack the images `opts` select into one bundle. Transfers, steps and warnings go to
/// `reporter`. Ctrl-C or SIGTERM stops it, keeping partial downloads for the next pack.
pub fn pack(opts: &PackOptions, reporter: Arc<dyn Reporter>) -> crate::error::Result<Packed> {
    let started = Instant::now();
    let signer = opts
        .sign
        .as_deref()
        .map(crate::sign::Signer::load)
        .transpose()?;
    let selection = select(&opts.select, opts.from_docker)?;
    let platform = opts.select.platform.clone();
    let project_name = selection
        .project
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_else(|| "images".to_string());
    let output = opts
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{project_name}.airlock.tar")));
    if output.is_dir() {
        return Err(Classified::input(format!(
            "Output `{}` is a directory; give a file name",
            output.display()
        ))
        .into());
    }
    let registry_refs = selection.registry_refs();

    // The lock, when --locked.
    let lock_file = opts.select.lock_path(selection.project.as_ref());
    let lock = if opts.locked {
        let lock = Lock::read(&lock_file)?;
        let refs: Vec<Reference> = registry_refs.iter().map(|(r, _)| r.clone()).collect();
        lock.check(&lock_file, &refs, &platform)?;
        Some(lock)
    } else {
        None
    };
    let pins: HashMap<String, Pin> = match &lock {
        Some(l) => registry_refs
            .iter()
            .filter_map(|(r, _)| l.pin(r).map(|p| (r.original().to_string(), p)))
            .collect(),
        None => HashMap::new(),
    };
    let created = lock
        .as_ref()
        .map(|l| l.created.clone())
        .unwrap_or_else(crate::time::now_rfc3339);

    let store = Store::open(Store::default_root()?)?;
    let base = match &opts.since {
        Some(path) => Some(
            crate::bundle::delta::load_base(path, Some(&store))
                .with_context(|| format!("Cannot read the base `{}` of --since", path.display()))?,
        ),
        None => None,
    };
    for note in &selection.notes {
        reporter.warn(note);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let client =
        Client::new(opts.select.registry.clone(), reporter.clone())?.with_cancel(cancel.clone());
    let rt = crate::runtime::build(crate::runtime::Workers::Two)?;
    let stats = PullStats::default();

    // Ctrl-C or SIGTERM: `cancel` stops the client; `notify` ends the step under way (its
    // permit, when none waits, ends the next).
    let notify = Arc::new(tokio::sync::Notify::new());
    let images: Vec<ResolvedImage> = rt.block_on(async {
        install_signals(cancel.clone(), notify.clone());
        let work = fetch(&client, &store, &selection, &pins, &output, &stats, reporter.as_ref());
        tokio::select! {
            r = work => r,
            _ = notify.notified() => Err(Classified::environment("Cancelled; partial downloads are kept in the cache and resumed by the next pack").into()),
        }
    })?;

    // Bundle metadata.
    let (compose_meta, compose_files) = match &selection.project {
        Some(p) => compose_files(p, &selection.run_files),
        None => (ComposeMeta::default(), Vec::new()),
    };
    for f in selection.run_files.iter().filter(|f| f.needs_attention()) {
        let why = f.reason.as_ref().map(|r| r.describe()).unwrap_or_default();
        reporter.warn(&format!(
            "`{}` ({} of {}) is not in the bundle: {why}; copy it to the offline host yourself (`airlock plan` lists run files)",
            f.path,
            f.kind,
            f.services.join(", ")
        ));
    }
    let mut omit = base
        .as_ref()
        .map(|b| crate::bundle::delta::omitted(&images, b))
        .unwrap_or_default();
    // Patch bundles: layers replacing a base layer go as patches when much smaller.
    let made = match &base {
        Some(b) if !opts.no_patch => {
            // Base layers a patch needs that neither the base bundle nor the cache holds
            // (a bundle.json or lock base): fetched from the base images' repositories.
            let against = patches::Against::open(b);
            let wanted = patches::base_layers_wanted(&images, &against, &omit, &store);
            let unfetched = rt.block_on(async {
                let work = patches::fetch_base_layers(&client, &store, &wanted, &stats, reporter.as_ref());
                tokio::select! {
                    r = work => r,
                    _ = notify.notified() => Err(Classified::environment("Cancelled; partial downloads are kept in the cache and resumed by the next pack").into()),
                }
            })?;
            patches::make(
                &images,
                &against,
                &omit,
                &unfetched,
                &store,
                &output,
                reporter.as_ref(),
            )?
        }
        _ => patches::Made::default(),
    };
    for note in &made.notes {
        reporter.warn(note);
    }
    let meta = BundleMeta {
        format: FORMAT.to_string(),
        airlock_version: env!("CARGO_PKG_VERSION").to_string(),
        created,
        project: project_name,
        platform: platform.clone(),
        compose: compose_meta,
        images: images
            .iter()
            .zip(&selection.images)
            .map(|(r, sel)| record(sel, r))
            .collect(),
        blobs: 0,
        size: 0,
        uncompressed_size: 0,
        base: base.as_ref().map(|b| {
            let mut record = crate::bundle::delta::base_meta(b, &omit);
            record.patches = made.patches.clone();
            record
        }),
    };
    omit.extend(made.patches.iter().map(|p| p.layer.clone()));
    reporter.step(&format!("writing {}", output.display()));
    // The writer is blocking and runs here; the runtime's threads keep listening for Ctrl-C.
    let input = bundle_write::Input {
        meta,
        images: &images,
        compose_files,
    };
    let write_options = bundle_write::WriteOptions {
        omit,
        extra: made.patches.iter().map(|p| p.patch.clone()).collect(),
        split_size: opts.split_size,
        signer,
    };
    let written = bundle_write::write_with(&store, input, &output, &cancel, &write_options)
        .with_context(|| format!("Failed to write bundle `{}`", output.display()))?;
    drop(rt);

    let (fetched, fetched_bytes, cached, cached_bytes) = stats.snapshot();
    Ok(Packed {
        written,
        platforms: images.iter().map(|i| i.platform.clone()).collect(),
        base: base.map(|b| b.path),
        fetched,
        fetched_bytes,
        cached,
        cached_bytes,
        elapsed: started.elapsed(),
    })
}

/// Registry images resolved (each normalised reference once per platform) and their layers
/// fetched, engine images exported; one `ResolvedImage` per selected image, in order.
async fn fetch(
    client: &Client,
    store: &Store,
    selection: &Selection,
    pins: &HashMap<String, Pin>,
    output: &Path,
    stats: &PullStats,
    reporter: &dyn Reporter,
) -> crate::error::Result<Vec<ResolvedImage>> {
    let mut unique: Vec<(Reference, Platform)> = Vec::new();
    for (r, p) in selection.registry_refs() {
        if !unique
            .iter()
            .any(|(u, up)| u.normalized() == r.normalized() && *up == p)
        {
            unique.push((r, p));
        }
    }
    let mut pulled = resolve_all(client, store, &unique, pins, stats).await?;
    check_space_early(output, &pulled)?;
    registry::pull(client, store, &mut pulled, stats)
        .await
        .context("Failed to fetch layers")?;
    let by_name: HashMap<(String, Platform), ResolvedImage> = unique
        .iter()
        .map(|(r, p)| (r.normalized(), p.clone()))
        .zip(pulled)
        .collect();
    let mut engine = None;
    let mut out = Vec::new();
    for img in &selection.images {
        match &img.origin {
            Origin::Registry => {
                let key = (img.reference.normalized(), img.platform.clone());
                let mut r = by_name[&key].clone();
                r.reference = img.reference.clone();
                out.push(r);
            }
            Origin::Engine { service } => {
                if engine.is_none() {
                    engine = Some(crate::engine::connect().await?);
                }
                let e = engine.as_ref().expect("connected above");
                let saved = crate::engine::save::save(e, store, &img.reference, service, reporter)
                    .await
                    .with_context(|| {
                        format!("Failed to export `{}` from the engine", img.reference)
                    })?;
                if !img.platform.matches(&saved.platform) {
                    reporter.warn(&format!(
                        "`{}` from the engine is for {}, not {}",
                        img.reference, saved.platform, img.platform
                    ));
                }
                stats.fetched(saved.layers_size());
                out.push(saved);
            }
        }
    }
    Ok(out)
}

/// The bundle's record of one image: what the selection says of it joined with its content.
pub fn record(selected: &PackImage, content: &ResolvedImage) -> ImageMeta {
    ImageMeta {
        reference: content.reference.clone(),
        normalized: content.reference.normalized(),
        kinds: selected.kinds.clone(),
        services: selected.services.clone(),
        source: selected.origin.as_str().to_string(),
        top: content.top.clone(),
        manifest: content.manifest.clone(),
        config: content.config.clone(),
        layers: content.layers.clone(),
        size: content.layers_size(),
        uncompressed_size: content.uncompressed_size().unwrap_or(0),
    }
}

/// Resolve registry references, each for its platform, in order.
pub async fn resolve_all(
    client: &Client,
    store: &Store,
    refs: &[(Reference, Platform)],
    pins: &HashMap<String, Pin>,
    stats: &PullStats,
) -> crate::error::Result<Vec<ResolvedImage>> {
    let jobs = client.options().jobs.max(1);
    stream::iter(refs.iter().map(|(r, platform)| async move {
        client.reporter.step(&format!("resolving {r}"));
        registry::resolve(client, store, r, platform, pins.get(r.original()), stats)
            .await
            .with_context(|| format!("Failed to resolve `{r}`"))
    }))
    .buffered(jobs)
    .try_collect()
    .await
}

/// Before any download: refuse when the output's file system cannot hold the blobs the bundle
/// will carry (the writer checks the exact size again before writing).
fn check_space_early(output: &Path, images: &[ResolvedImage]) -> crate::error::Result<()> {
    let mut seen = std::collections::HashSet::new();
    let needed: u64 = images
        .iter()
        .flat_map(|i| i.blobs())
        .filter(|d| seen.insert(d.digest.clone()))
        .map(|d| d.size)
        .sum();
    crate::bundle::write::check_space(output, needed)?;
    Ok(())
}

/// Cancelled by Ctrl-C or SIGTERM: the flag the bundle writer polls, and a future to race.
fn install_signals(cancel: Arc<AtomicBool>, notify: Arc<tokio::sync::Notify>) {
    tokio::spawn(async move {
        crate::runtime::shutdown_signal().await;
        cancel.store(true, Ordering::SeqCst);
        notify.notify_waiters();
        notify.notify_one();
    });
}

/// The compose and env files of the project, relative to its directory.
fn compose_files(
    project: &Project,
    run_files: &[crate::run_files::Assessed],
) -> (ComposeMeta, Vec<ComposeFile>) {
    let mut files = Vec::new();
    let mut external = 0;
    let mut rel = |p: &Path| -> String {
        match p.strip_prefix(&project.directory) {
            Ok(r) if !r.as_os_str().is_empty() => r.to_string_lossy().replace('\\', "/"),
            _ => {
                external += 1;
                let name = p
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_else(|| "file".into());
                format!("_external/{external}/{name}")
            }
        }
    };
    let mut meta = ComposeMeta {
        profiles: project.profiles.clone(),
        ..Default::default()
    };
    let compose = project.files.iter().map(|f| (f, false));
    for (f, is_env) in compose.chain(project.env_files.iter().map(|f| (f, true))) {
        let name = rel(f);
        let list = if is_env {
            &mut meta.env_files
        } else {
            &mut meta.files
        };
        list.push(name.clone());
        files.push(ComposeFile {
            name,
            source: f.clone(),
        });
    }
    // Files the services read at run time, under the same names.
    for f in run_files {
        for (name, source) in f.members.iter().cloned() {
            if !meta.files.contains(&name) && !meta.env_files.contains(&name) {
                meta.run_files.push(name.clone());
                files.push(ComposeFile { name, source });
            }
        }
    }
    (meta, files)
}
