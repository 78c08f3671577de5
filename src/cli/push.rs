//! `airlock push BUNDLE --to HOST[:PORT][/PREFIX]`: copy every image of a bundle into a
//! registry the site already runs, digests unchanged.
//!
//! Pipeline: `bundle::read` -> `serve::Catalog` (blob offsets, manifests with their
//! original bytes) -> `registry::push` (HEAD, mount, upload, manifests children first)
//! -> a compose override pointing each service at the pushed name. Credentials and TLS
//! as in `pack` (`$DOCKER_CONFIG`, `--ca-cert`, `/etc/docker/certs.d`, `--insecure-registry`).

use super::output::Output;
use super::progress::Progress;
use crate::digest::Digest;
use crate::progress::Reporter;
use crate::registry::push::{self, BlobSource, PushImage, PushManifest, PushOptions, PushTarget};
use crate::registry::{Client, Options};
use crate::serve::catalog::stream_range;
use crate::serve::{self, Catalog, CatalogOptions};
use crate::error::Context as _;
use clap::Args;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use indicatif::HumanBytes;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The bundle file (plain tar, as `pack` writes it).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Target registry, with an optional repository prefix (`registry.lan:5000/airlock`).
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub to: String,
    /// Write the compose override that points each service at its pushed image to FILE.
    #[arg(long, value_name = "FILE")]
    pub override_out: Option<PathBuf>,
    /// Trust this CA certificate (PEM) for the registry (repeatable; also /etc/docker/certs.d/<host>/*.crt).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// Allow plain HTTP and unverified HTTPS for this host (loopback hosts always may use HTTP).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Concurrent blob uploads.
    #[arg(long, short = 'j', default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Blobs larger than this many MiB are uploaded in chunks (PATCH) of this size.
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub chunk_size: u64,
}

/// Blob bytes straight from the bundle file, by offset.
struct CatalogSource(Arc<Catalog>);

impl BlobSource for CatalogSource {
    fn has(&self, digest: &Digest) -> bool {
        self.0.blob(digest).is_some()
    }

    fn stream(
        &self,
        digest: &Digest,
        offset: u64,
        len: u64,
    ) -> Option<BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        let (loc, file) = self.0.blob(digest)?;
        let len = len.min(loc.size.saturating_sub(offset));
        Some(stream_range(Arc::clone(file), loc.offset + offset, len, 1 << 20).boxed())
    }
}

/// Progress lines that say "uploading" (bars are drawn by `Progress` as for pulls).
struct PushProgress {
    inner: Arc<Progress>,
    lines: bool,
}

impl Reporter for PushProgress {
    fn blob_start(&self, digest: &Digest, size: u64, label: &str, resumed_at: u64) {
        if self.lines {
            eprintln!(
                "uploading {} ({label}, {})",
                digest.short(),
                HumanBytes(size)
            );
        } else {
            self.inner.blob_start(digest, size, label, resumed_at);
        }
    }
    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        self.inner.blob_progress(digest, bytes);
    }
    fn blob_done(&self, digest: &Digest) {
        if self.lines {
            eprintln!("uploaded  {}", digest.short());
        } else {
            self.inner.blob_done(digest);
        }
    }
    fn blob_skipped(&self, digest: &Digest, size: u64, label: &str) {
        if self.lines {
            eprintln!("present   {} ({label})", digest.short());
        }
        self.inner.blob_progress(digest, size);
    }
    fn total(&self, bytes: u64) {
        self.inner.total(bytes);
    }
    fn step(&self, message: &str) {
        self.inner.step(message);
    }
    fn warn(&self, message: &str) {
        self.inner.warn(message);
    }
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

pub fn run(args: PushArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let target: PushTarget = args.to.parse()?;
    let catalog = Arc::new(
        Catalog::open(
            std::slice::from_ref(&args.bundle),
            &CatalogOptions::default(),
        )
        .with_context(|| format!("Cannot index `{}`", args.bundle.display()))?,
    );
    for w in &catalog.warnings {
        out.warn(w);
    }
    let images = push_images(&catalog, &target);
    let progress = Arc::new(Progress::new(out));
    let reporter = Arc::new(PushProgress {
        inner: Arc::clone(&progress),
        lines: (!out.interactive || out.json) && !out.quiet,
    });
    let client = Client::new(
        Options {
            insecure: args.insecure.clone(),
            ca_certs: args.ca_certs.clone(),
            jobs: args.jobs as usize,
            ..Default::default()
        },
        reporter,
    )?;
    let opts = PushOptions {
        chunk_size: args.chunk_size << 20,
        jobs: args.jobs as usize,
    };
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Cannot start the async runtime")?;
    let source = CatalogSource(Arc::clone(&catalog));
    let report = runtime
        .block_on(push::push(&client, &target, &images, &source, &opts))
        .with_context(|| format!("Cannot push `{}` to `{}`", args.bundle.display(), args.to))?;
    progress.finish();
    let elapsed = started.elapsed();
    let base = target.base_name();
    let comment = format!(
        "airlock push: every service's image from {base}\nuse: docker-compose -f <your compose file> -f <this file> up -d"
    );
    let override_yaml = serve::compose_override(&catalog.images, &base, &comment);
    if let Some(path) = &args.override_out {
        fs_err::write(path, &override_yaml)?;
    }
    if out.json {
        out.json(&serde_json::json!({
            "bundle": args.bundle,
            "target": base,
            "images": report.images,
            "blobs_uploaded": report.blobs_uploaded,
            "bytes_uploaded": report.bytes_uploaded,
            "blobs_mounted": report.blobs_mounted,
            "blobs_skipped": report.blobs_skipped,
            "bytes_skipped": report.bytes_skipped,
            "manifests_pushed": report.manifests_pushed,
            "manifests_skipped": report.manifests_skipped,
            "seconds": elapsed.as_secs_f64(),
            "override": override_yaml,
            "override_file": args.override_out,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for img in &report.images {
        let note = match &img.index_not_pushed {
            Some(i) => format!("  (platform manifest; index {} refused)", i.short()),
            None => String::new(),
        };
        out.print(&format!("pushed  {:<50} {}{note}", img.target, img.digest));
    }
    out.print(&format!(
        "\nPushed {} image(s) to {base} in {:.1} s: {} blob(s) uploaded ({}), {} mounted, {} already present ({}); {} manifest(s) pushed, {} already present",
        report.images.len(),
        elapsed.as_secs_f64(),
        report.blobs_uploaded,
        HumanBytes(report.bytes_uploaded),
        report.blobs_mounted,
        report.blobs_skipped,
        HumanBytes(report.bytes_skipped),
        report.manifests_pushed,
        report.manifests_skipped,
    ));
    match &args.override_out {
        Some(p) => out.print(&format!("Compose override written to {}", p.display())),
        None => {
            out.print("\nCompose override (or write it with --override-out FILE):");
            out.print(&override_yaml);
        }
    }
    Ok(ExitCode::SUCCESS)
}
