//! The push pipeline (`airlock push BUNDLE --to HOST[:PORT][/PREFIX]`): copy every image of
//! a bundle into a registry the site already runs, digests unchanged.
//!
//! `bundle::read` -> `serve::Catalog` (blob offsets, manifests with their original bytes; a
//! `source::Source`) -> `registry::push` (HEAD, mount, upload, manifests children first) -> a
//! `compose_override` pointing each service at the pushed name. Credentials and TLS as in
//! `pack` (`$DOCKER_CONFIG`, `--ca-cert`, `/etc/docker/certs.d`, `--insecure-registry`).
//! Driven by `cli::push`, which renders the outcome.

use crate::error::Context as _;
use crate::progress::Reporter;
use crate::registry::push::{
    self as registry_push, PushImage, PushManifest, PushReport, PushTarget,
};
use crate::registry::{self, Client};
use crate::serve::{self, Catalog, CatalogOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to push where.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The bundle file (plain tar, as `pack` writes it).
    pub bundle: PathBuf,
    /// Target registry with an optional repository prefix (`registry.lan:5000/airlock`).
    pub to: String,
    /// TLS, credentials and concurrency (`jobs` blobs in flight).
    pub registry: registry::Options,
    /// Blobs larger than this many bytes go up in `PATCH` chunks of this size.
    pub chunk_size: u64,
    /// Also write the compose override to this file.
    pub override_out: Option<PathBuf>,
    /// For a patch bundle: the base bundle its patches apply to (read, not pushed).
    pub base: Option<PathBuf>,
}

impl Default for PushOptions {
    /// No bundle, no target, default registry options, 64 MiB chunks, no override file.
    fn default() -> Self {
        PushOptions {
            bundle: PathBuf::new(),
            to: String::new(),
            registry: registry::Options::default(),
            chunk_size: 64 << 20,
            override_out: None,
            base: None,
        }
    }
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub report: PushReport,
    /// `host[:port]/prefix`, the part every pushed name starts with.
    pub target: String,
    /// The compose override pointing every service at its pushed image.
    pub override_yaml: String,
    /// Time spent pushing (indexing the bundle excluded).
    pub elapsed: Duration,
}

/// Push every image of `opts.bundle`; catalog warnings and transfers go to `reporter`.
pub fn push(opts: &PushOptions, reporter: Arc<dyn Reporter>) -> crate::error::Result<Pushed> {
    let target: PushTarget = opts.to.parse()?;
    let catalog = Arc::new(
        Catalog::open(
            std::slice::from_ref(&opts.bundle),
            &CatalogOptions {
                patch_bases: opts.base.iter().cloned().collect(),
                ..CatalogOptions::default()
            },
        )
        .with_context(|| format!("Cannot index `{}`", opts.bundle.display()))?,
    );
    for w in &catalog.warnings {
        reporter.warn(w);
    }
    let images = push_images(&catalog, &target);
    let client = Client::new(opts.registry.clone(), reporter)?;
    let push_opts = registry_push::PushOptions {
        chunk_size: opts.chunk_size,
        jobs: opts.registry.jobs,
    };
    let started = Instant::now();
    let runtime = crate::runtime::build(crate::runtime::Workers::PerCpu)?;
    let report = runtime
        .block_on(registry_push::push(
            &client, &target, &images, &*catalog, &push_opts,
        ))
        .with_context(|| format!("Cannot push `{}` to `{}`", opts.bundle.display(), opts.to))?;
    let elapsed = started.elapsed();
    let base = target.base_name();
    let comment = format!(
        "airlock push: every service's image from {base}\nuse: docker-compose -f <your compose file> -f <this file> up -d"
    );
    let override_yaml = serve::compose_override(&catalog.images, &base, &comment);
    if let Some(path) = &opts.override_out {
        fs_err::write(path, &override_yaml)?;
    }
    Ok(Pushed {
        report,
        target: base,
        override_yaml,
        elapsed,
    })
}

/// The images of the catalog as push jobs, each (repository, tag, top) once.
fn push_images(catalog: &Catalog, target: &PushTarget) -> Vec<PushImage> {
    let mut out: Vec<PushImage> = Vec::new();
    for img in &catalog.images {
        let repository = target.repository(&img.repository);
        if out.iter().any(|p| {
            p.repository == repository
                && p.tag == img.tag
                && p.top().map(|m| &m.digest) == Some(&img.top.digest)
        }) {
            continue;
        }
        let manifests = img
            .manifests
            .iter()
            .filter_map(|d| {
                catalog.manifests.get(d).map(|m| PushManifest {
                    digest: d.clone(),
                    media_type: m.media_type.clone(),
                    bytes: m.bytes.clone(),
                })
            })
            .collect();
        let blobs = img
            .blobs
            .iter()
            .map(|d| (d.clone(), catalog.blobs.get(d).map(|l| l.size).unwrap_or(0)))
            .collect();
        out.push(PushImage {
            source: img.reference.clone(),
            repository,
            tag: img.tag.clone(),
            manifests,
            blobs,
            platform_manifest: (img.platform_manifest != img.top.digest)
                .then(|| img.platform_manifest.clone()),
        });
    }
    out
}
