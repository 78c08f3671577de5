//! `airlock pack`: one verified bundle that `docker load` accepts, straight from registries.
//!
//! Pipeline: `compose::load -> plan::plan -> registry::resolve` (per reference: index ->
//! platform manifest -> config -> layers, original bytes kept) `-> registry::pull` into the
//! `store` (content-addressed, verified, resumable; `engine::save` for `--from-docker`
//! images) `-> bundle::write` (temporary name, renamed when complete).
//!
//! Also owns what `pack` and `lock` share: the image list taken from the plan (kinds
//! `image`, `build-from`, `build-copy-from`, `build-syntax`; `build-tag` only with
//! `--from-docker`) plus `--image`, and the registry options.

use super::ProjectArgs;
use super::output::Output;
use super::progress::Progress;
use crate::bundle::meta::{BundleMeta, ComposeMeta, FORMAT, ImageMeta};
use crate::bundle::write::{self as bundle_write, ComposeFile};
use crate::compose::{self, Project};
use crate::error::Classified;
use crate::image::{Pin, ResolvedImage};
use crate::lock::{LOCK_FILE, Lock};
use crate::plan::{self, Kind, PlanOptions};
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::reference::Reference;
use crate::registry::{self, Client, Options, PullStats};
use crate::store::Store;
use crate::error::Context as _;
use clap::Args;
use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::HumanBytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Registry and platform options shared by `pack` and `lock`.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Platform of the offline host; images are chosen for it from multi-platform indexes.
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Platform,
    /// Also pack this image, which no compose file names (repeatable).
    #[arg(long = "image", value_name = "REF")]
    pub images: Vec<Reference>,
    /// Allow plain HTTP and unverified HTTPS for this registry host (repeatable; loopback hosts always may use HTTP).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Trust this CA certificate (PEM) for registries (repeatable; also /etc/docker/certs.d/<host>/*.crt).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// Concurrent blob downloads.
    #[arg(long, short = 'j', default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Lock file (default: airlock.lock in the project directory, or the current directory without a project).
    #[arg(long = "lock-file", value_name = "FILE")]
    pub lock_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PackArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Bundle file to write (default: `<project>.airlock.tar` in the current directory).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Take images that services build (`build-tag`) from the local engine (export through the Engine API).
    #[arg(long)]
    pub from_docker: bool,
    /// Use the digests of the lock file exactly; fail if the plan no longer matches it.
    #[arg(long)]
    pub locked: bool,
    /// Delta bundle: leave out the layers BASE holds (an earlier bundle or its parts file, its
    /// bundle.json, or its airlock.lock). Manifests and configs are always carried.
    #[arg(long, value_name = "BASE")]
    pub since: Option<PathBuf>,
    /// Write the bundle as parts of SIZE bytes (`NAME.tar.000`, ... and `NAME.parts.json`);
    /// units K, M, G, T (powers of 1024), or `fat32` (4000M) or `dvd` (4450M).
    #[arg(long, value_name = "SIZE", value_parser = parse_split_size)]
    pub split_size: Option<u64>,
    /// Sign the bundle with this minisign secret key (`airlock key generate`); a
    /// password-protected key takes its password from AIRLOCK_KEY_PASSWORD.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
}

fn parse_split_size(text: &str) -> Result<u64, String> {
    crate::bundle::parts::parse_size(text).map_err(|e| e.to_string())
}

/// Where an image of the pack comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Registry,
    /// Exported from the local engine; the service that builds it.
    Engine {
        service: String,
    },
}

/// One reference to pack.
#[derive(Debug, Clone)]
pub struct PackImage {
    pub reference: Reference,
    pub kinds: Vec<String>,
    pub services: Vec<String>,
    pub source: Source,
    /// Platforms the plan needs it for (a service's `platform:`, `FROM --platform=`); empty
    /// for `--image`.
    pub platforms: Vec<Platform>,
}

impl PackImage {
    /// The platform to pack it for: the one platform the plan needs it for when that is not
    /// the bundle's (`platform: linux/arm64` on a service), else the bundle's. A reference
    /// needed for several platforms gets the bundle's (a docker-save tar holds one image per
    /// tag) and a note saying which platforms are left out.
    pub fn platform(&self, target: &Platform) -> (Platform, Option<String>) {
        let wanted = &self.platforms;
        match wanted.as_slice() {
            [only] if !target.matches(only) => (only.clone(), None),
            _ => {
                let others: Vec<String> = wanted
                    .iter()
                    .filter(|p| !target.matches(p))
                    .map(|p| p.to_string())
                    .collect();
                let note = (!others.is_empty()).then(|| {
                    format!(
                        "`{}` is needed for {} too; a bundle holds one image per reference, so only {target} is packed",
                        self.reference,
                        others.join(", ")
                    )
                });
                (target.clone(), note)
            }
        }
    }
}

/// The project (if any) and the images `pack`/`lock` handle, in plan order then `--image` order.
pub struct Selection {
    pub project: Option<Project>,
    pub images: Vec<PackImage>,
    /// The project's run files as the plan assessed them (`run_files`).
    pub run_files: Vec<crate::run_files::Assessed>,
}

impl Selection {
    /// The references pulled from registries, each with the platform to pull.
    pub fn registry_refs(&self, target: &Platform) -> Vec<(Reference, Platform)> {
        self.images
            .iter()
            .filter(|i| i.source == Source::Registry)
            .map(|i| (i.reference.clone(), i.platform(target).0))
            .collect()
    }

    /// Notes about platforms left out (see `PackImage::platform`).
    pub fn platform_notes(&self, target: &Platform) -> Vec<String> {
        self.images
            .iter()
            .filter_map(|i| i.platform(target).1)
            .collect()
    }
}

/// Load the project and plan it. Without a compose file, `--image` alone is enough.
pub fn select(
    project: &ProjectArgs,
    reg: &RegistryArgs,
    from_docker: bool,
) -> crate::error::Result<Selection> {
    let loaded = match compose::load(&project.load_options()) {
        Ok(p) => Some(p),
        Err(compose::Error::NoComposeFile { .. })
            if !reg.images.is_empty() && project.files.is_empty() =>
        {
            None
        }
        Err(e) => return Err(crate::error::Error::new(e).context("Failed to load the compose project")),
    };
    let mut images: Vec<PackImage> = Vec::new();
    let mut add = |reference: Reference,
                   kind: &str,
                   services: &[String],
                   source: Source,
                   platforms: &[Platform]| {
        match images
            .iter_mut()
            .find(|i| i.reference.original() == reference.original())
        {
            Some(existing) => {
                if !existing.kinds.iter().any(|k| k == kind) {
                    existing.kinds.push(kind.to_string());
                }
                for s in services {
                    if !existing.services.contains(s) {
                        existing.services.push(s.clone());
                    }
                }
                for p in platforms {
                    if !existing.platforms.contains(p) {
                        existing.platforms.push(p.clone());
                    }
                }
                // A reference that is built here and also pulled elsewhere comes from the engine.
                if matches!(source, Source::Engine { .. }) {
                    existing.source = source;
                }
            }
            None => images.push(PackImage {
                reference,
                kinds: vec![kind.to_string()],
                services: services.to_vec(),
                source,
                platforms: platforms.to_vec(),
            }),
        }
    };
    let mut run_files = Vec::new();
    if let Some(p) = &loaded {
        let opts = PlanOptions {
            platform: reg.platform.clone(),
            ..Default::default()
        };
        let mut plan = plan::plan(p, &opts).context("Failed to plan the compose project")?;
        run_files = std::mem::take(&mut plan.run_files);
        let mut unbuilt = Vec::new();
        for img in &plan.images {
            let platforms = &img.platforms;
            match img.kind {
                Kind::Image | Kind::BuildFrom | Kind::BuildCopyFrom | Kind::BuildSyntax => add(
                    img.reference.clone(),
                    img.kind.as_str(),
                    &img.services,
                    Source::Registry,
                    platforms,
                ),
                Kind::BuildTag if from_docker => {
                    let service = img.services.first().cloned().unwrap_or_default();
                    add(
                        img.reference.clone(),
                        img.kind.as_str(),
                        &img.services,
                        Source::Engine { service },
                        platforms,
                    )
                }
                Kind::BuildTag => unbuilt.push(img),
                Kind::BuildFromLocal | Kind::BuildFromUnusedStage => {}
            }
        }
        if let Some(first) = unbuilt.first() {
            let services: Vec<String> = unbuilt
                .iter()
                .flat_map(|i| i.services.iter().cloned())
                .collect();
            return Err(Classified::input(format!(
                "Service `{}` builds its image `{}` locally; build it first and pack with --from-docker",
                first.services.join("`, `"),
                first.reference,
            ))
            .with_hint(format!("`docker-compose build {}` then `airlock pack --from-docker`", services.join(" ")))
            .into());
        }
    }
    for r in &reg.images {
        add(r.clone(), "extra", &[], Source::Registry, &[]);
    }
    if images.is_empty() {
        return Err(Classified::input(
            "Nothing to pack: the project needs no image and no --image was given",
        )
        .into());
    }
    Ok(Selection {
        project: loaded,
        images,
        run_files,
    })
}

pub fn lock_path(reg: &RegistryArgs, project: Option<&Project>) -> PathBuf {
    match (&reg.lock_file, project) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p.directory.join(LOCK_FILE),
        (None, None) => PathBuf::from(LOCK_FILE),
    }
}

pub fn client(reg: &RegistryArgs, reporter: Arc<dyn Reporter>) -> crate::error::Result<Client> {
    let opts = Options {
        insecure: reg.insecure.clone(),
        ca_certs: reg.ca_certs.clone(),
        jobs: reg.jobs as usize,
        ..Default::default()
    };
    Ok(Client::new(opts, reporter)?)
}

pub fn runtime() -> crate::error::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("Failed to start the async runtime")
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
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term_fut = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term_fut => {}
        }
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

/// The pack summary document (`--json`, schema in docs/json.md).
#[derive(Debug, serde::Serialize)]
struct Summary {
    output: PathBuf,
    bytes: u64,
    created: String,
    platform: String,
    project: String,
    images: Vec<SummaryImage>,
    blobs: SummaryBlobs,
    size: u64,
    uncompressed_size: u64,
    seconds: f64,
}

#[derive(Debug, serde::Serialize)]
struct SummaryImage {
    #[serde(rename = "ref")]
    reference: String,
    normalized: String,
    source: &'static str,
    platform: String,
    top: crate::digest::Digest,
    manifest: crate::digest::Digest,
    config: crate::digest::Digest,
    layers: usize,
    size: u64,
    uncompressed_size: u64,
    zstd: bool,
}

#[derive(Debug, serde::Serialize)]
struct SummaryBlobs {
    total: u64,
    fetched: u64,
    fetched_bytes: u64,
    cached: u64,
    cached_bytes: u64,
}

pub fn run(args: PackArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let started = Instant::now();
    let signer = args
        .sign
        .as_deref()
        .map(crate::sign::Signer::load)
        .transpose()?;
    let selection = select(&args.project, &args.registry, args.from_docker)?;
    let platform = args.registry.platform.clone();
    let project_name = selection
        .project
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_else(|| "images".to_string());
    let output = args
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
    let registry_refs = selection.registry_refs(&platform);

    // The lock, when --locked.
    let lock_file = lock_path(&args.registry, selection.project.as_ref());
    let lock = if args.locked {
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
        .unwrap_or_else(crate::lock::now_rfc3339);

    let store = Store::open(Store::default_root()?)?;
    let base = match &args.since {
        Some(path) => Some(
            crate::bundle::delta::load_base(path, Some(&store))
                .with_context(|| format!("Cannot read the base `{}` of --since", path.display()))?,
        ),
        None => None,
    };
    let progress = Arc::new(Progress::new(out));
    let reporter: Arc<dyn Reporter> = progress.clone();
    for note in selection.platform_notes(&platform) {
        reporter.warn(&note);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let client = client(&args.registry, reporter.clone())?.with_cancel(cancel.clone());
    let rt = runtime()?;
    let stats = PullStats::default();

    let resolved: crate::error::Result<Vec<ResolvedImage>> = rt.block_on(async {
        let notify = Arc::new(tokio::sync::Notify::new());
        install_signals(cancel.clone(), notify.clone());
        let work = async {
            // Registry images: resolve (each normalised reference once), then fetch the layers.
            let mut unique: Vec<(Reference, Platform)> = Vec::new();
            for (r, p) in &registry_refs {
                if !unique.iter().any(|(u, up)| u.normalized() == r.normalized() && up == p) {
                    unique.push((r.clone(), p.clone()));
                }
            }
            let mut pulled = resolve_all(&client, &store, &unique, &pins, &stats).await?;
            check_space_early(&output, &pulled)?;
            registry::pull(&client, &store, &mut pulled, &stats).await.context("Failed to fetch layers")?;
            let by_name: HashMap<(String, Platform), ResolvedImage> = unique
                .iter()
                .map(|(r, p)| (r.normalized(), p.clone()))
                .zip(pulled)
                .collect();
            // Engine images.
            let mut engine = None;
            let mut out_images = Vec::new();
            for img in &selection.images {
                match &img.source {
                    Source::Registry => {
                        let key = (img.reference.normalized(), img.platform(&platform).0);
                        let mut r = by_name[&key].clone();
                        r.reference = img.reference.clone();
                        out_images.push(r);
                    }
                    Source::Engine { service } => {
                        if engine.is_none() {
                            engine = Some(crate::engine::connect().await?);
                        }
                        let e = engine.as_ref().expect("connected above");
                        let saved = crate::engine::save::save(e, &store, &img.reference, service, reporter.as_ref())
                            .await
                            .with_context(|| format!("Failed to export `{}` from the engine", img.reference))?;
                        let wanted = img.platform(&platform).0;
                        if !wanted.matches(&saved.platform) {
                            reporter.warn(&format!(
                                "`{}` from the engine is for {}, not {wanted}",
                                img.reference, saved.platform
                            ));
                        }
                        stats.fetched(saved.layers_size());
                        out_images.push(saved);
                    }
                }
            }
            Ok(out_images)
        };
        tokio::select! {
            r = work => r,
            _ = notify.notified() => Err(Classified::environment("Cancelled; partial downloads are kept in the cache and resumed by the next pack").into()),
        }
    });
    let images = match resolved {
        Ok(i) => i,
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };
    progress.finish();

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
    let image_meta: Vec<ImageMeta> = images
        .iter()
        .zip(&selection.images)
        .map(|(r, sel)| ImageMeta {
            reference: r.reference.clone(),
            normalized: r.reference.normalized(),
            kinds: sel.kinds.clone(),
            services: sel.services.clone(),
            source: match sel.source {
                Source::Registry => "registry".into(),
                Source::Engine { .. } => "engine".into(),
            },
            top: r.top.clone(),
            manifest: r.manifest.clone(),
            config: r.config.clone(),
            layers: r.layers.clone(),
            size: r.layers_size(),
            uncompressed_size: r.uncompressed_size().unwrap_or(0),
        })
        .collect();
    let omit = base
        .as_ref()
        .map(|b| crate::bundle::delta::omitted(&images, b))
        .unwrap_or_default();
    let meta = BundleMeta {
        format: FORMAT.to_string(),
        airlock_version: env!("CARGO_PKG_VERSION").to_string(),
        created: created.clone(),
        project: project_name.clone(),
        platform: platform.clone(),
        compose: compose_meta,
        images: image_meta,
        blobs: 0,
        size: 0,
        uncompressed_size: 0,
        base: base
            .as_ref()
            .map(|b| crate::bundle::delta::base_meta(b, &omit)),
    };
    reporter.step(&format!("writing {}", output.display()));
    // The writer is blocking and runs here; the runtime's threads keep listening for Ctrl-C.
    let input = bundle_write::Input {
        meta,
        images: &images,
        compose_files,
    };
    let options = bundle_write::WriteOptions {
        omit,
        split_size: args.split_size,
        signer,
    };
    let written = bundle_write::write_with(&store, input, &output, &cancel, &options)
        .with_context(|| format!("Failed to write bundle `{}`", output.display()))?;
    drop(rt);

    let (fetched, fetched_bytes, cached, cached_bytes) = stats.snapshot();
    let seconds = started.elapsed().as_secs_f64();
    if out.json {
        let summary = Summary {
            output: written.path.clone(),
            bytes: written.bytes,
            created,
            platform: platform.to_string(),
            project: project_name,
            images: images
                .iter()
                .zip(&selection.images)
                .map(|(r, sel)| SummaryImage {
                    reference: r.reference.original().to_string(),
                    normalized: r.reference.normalized(),
                    source: if sel.source == Source::Registry {
                        "registry"
                    } else {
                        "engine"
                    },
                    platform: r.platform.to_string(),
                    top: r.top.digest.clone(),
                    manifest: r.manifest.digest.clone(),
                    config: r.config.digest.clone(),
                    layers: r.layers.len(),
                    size: r.layers_size(),
                    uncompressed_size: r.uncompressed_size().unwrap_or(0),
                    zstd: r
                        .layers
                        .iter()
                        .any(|l| crate::image::media::is_zstd(&l.blob.media_type)),
                })
                .collect(),
            blobs: SummaryBlobs {
                total: written.blobs,
                fetched,
                fetched_bytes,
                cached,
                cached_bytes,
            },
            size: written.meta.size,
            uncompressed_size: written.meta.uncompressed_size,
            seconds: (seconds * 1000.0).round() / 1000.0,
        };
        out.json(&summary)?;
    } else {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::NOTHING);
        table.set_header(["IMAGE", "PLATFORM", "LAYERS", "SIZE", "SOURCE"]);
        for (r, sel) in images.iter().zip(&selection.images) {
            table.add_row([
                r.reference.original().to_string(),
                r.platform.to_string(),
                r.layers.len().to_string(),
                HumanBytes(r.layers_size()).to_string(),
                if sel.source == Source::Registry {
                    "registry".into()
                } else {
                    "engine".into()
                },
            ]);
        }
        out.print(&table.to_string());
        out.print(&format!(
            "\nPacked {} image{} for {platform} into {}: {} blobs, {} ({} uncompressed)",
            images.len(),
            if images.len() == 1 { "" } else { "s" },
            written.path.display(),
            written.blobs,
            HumanBytes(written.bytes),
            HumanBytes(written.meta.uncompressed_size),
        ));
        if let (Some(b), Some(record)) = (&base, &written.meta.base) {
            out.print(&format!(
                "Delta over `{}`: {} layer{} the base holds left out",
                b.path.display(),
                record.assumed.len(),
                if record.assumed.len() == 1 { "" } else { "s" },
            ));
        }
        out.print(&format!(
            "Fetched {fetched} blob{} ({}), {cached} from cache ({}), in {seconds:.1}s",
            if fetched == 1 { "" } else { "s" },
            HumanBytes(fetched_bytes),
            HumanBytes(cached_bytes),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(platforms: &[&str]) -> PackImage {
        PackImage {
            reference: Reference::parse("redis:7").unwrap(),
            kinds: vec!["image".into()],
            services: vec!["cache".into()],
            source: Source::Registry,
            platforms: platforms.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_service_platform_picks_the_image_platform() {
        let amd64 = Platform::linux_amd64();
        let arm64: Platform = "linux/arm64".parse().unwrap();
        // --image: no plan platforms, the target.
        assert_eq!(image(&[]).platform(&amd64), (amd64.clone(), None));
        assert_eq!(
            image(&["linux/amd64"]).platform(&amd64),
            (amd64.clone(), None)
        );
        assert_eq!(
            image(&["linux/arm64"]).platform(&amd64),
            (arm64.clone(), None)
        );
        // Two platforms: the target, and a note naming the other.
        let (p, note) = image(&["linux/amd64", "linux/arm64"]).platform(&amd64);
        assert_eq!(p, amd64);
        assert!(note.unwrap().contains("linux/arm64 too"));
        let (p, note) = image(&["linux/arm64", "linux/arm/v7"]).platform(&amd64);
        assert_eq!(p, amd64);
        assert!(note.unwrap().contains("linux/arm64, linux/arm/v7"));
    }
}
