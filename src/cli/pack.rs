//! `airlock pack`: the flags of `pack::pack` and the rendering of what it packed (a table
//! of images and totals, or the summary document with `--json`).

use super::ProjectArgs;
use super::output::Output;
use super::progress::Progress;
use super::shared::RegistryArgs;
use crate::progress::Reporter;
use clap::Args;
use indicatif::HumanBytes;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
    /// With --since: carry each changed layer whole instead of as a patch against the base
    /// layer it replaces (patches are made by default; docs/bundle-format.md).
    #[arg(long, requires = "since")]
    pub no_patch: bool,
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
    /// Layers carried as patches (patch bundles; bundle.json `base.patches`).
    patches: Vec<crate::bundle::meta::PatchMeta>,
    seconds: f64,
}

#[derive(Debug, serde::Serialize)]
struct SummaryImage {
    #[serde(rename = "ref")]
    reference: String,
    normalized: String,
    source: String,
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
    let opts = crate::pack::PackOptions {
        select: args.registry.select_options(&args.project),
        output: args.output.clone(),
        from_docker: args.from_docker,
        locked: args.locked,
        since: args.since.clone(),
        no_patch: args.no_patch,
        split_size: args.split_size,
        sign: args.sign.clone(),
    };
    let progress = Arc::new(Progress::new(out));
    let reporter: Arc<dyn Reporter> = progress.clone();
    let packed = crate::pack::pack(&opts, reporter);
    progress.finish();
    let packed = packed?;
    let meta = &packed.written.meta;
    let seconds = packed.elapsed.as_secs_f64();
    if out.json {
        let summary = Summary {
            output: packed.written.path.clone(),
            bytes: packed.written.bytes,
            created: meta.created.clone(),
            platform: meta.platform.to_string(),
            project: meta.project.clone(),
            images: meta
                .images
                .iter()
                .zip(&packed.platforms)
                .map(|(i, platform)| SummaryImage {
                    reference: i.reference.to_string(),
                    normalized: i.normalized.clone(),
                    source: i.source.clone(),
                    platform: platform.to_string(),
                    top: i.top.digest.clone(),
                    manifest: i.manifest.digest.clone(),
                    config: i.config.digest.clone(),
                    layers: i.layers.len(),
                    size: i.size,
                    uncompressed_size: i.uncompressed_size,
                    zstd: i
                        .layers
                        .iter()
                        .any(|l| crate::image::media::is_zstd(&l.blob.media_type)),
                })
                .collect(),
            blobs: SummaryBlobs {
                total: packed.written.blobs,
                fetched: packed.fetched,
                fetched_bytes: packed.fetched_bytes,
                cached: packed.cached,
                cached_bytes: packed.cached_bytes,
            },
            size: meta.size,
            uncompressed_size: meta.uncompressed_size,
            patches: meta
                .base
                .as_ref()
                .map(|b| b.patches.clone())
                .unwrap_or_default(),
            seconds: (seconds * 1000.0).round() / 1000.0,
        };
        out.json(&summary)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(["IMAGE", "PLATFORM", "LAYERS", "SIZE", "SOURCE"]);
    for (i, platform) in meta.images.iter().zip(&packed.platforms) {
        table.add_row([
            i.reference.to_string(),
            platform.to_string(),
            i.layers.len().to_string(),
            HumanBytes(i.size).to_string(),
            i.source.clone(),
        ]);
    }
    out.print(&table.to_string());
    let n = meta.images.len();
    out.print(&format!(
        "\nPacked {n} image{} for {} into {}: {} blobs, {} ({} uncompressed)",
        if n == 1 { "" } else { "s" },
        meta.platform,
        packed.written.path.display(),
        packed.written.blobs,
        HumanBytes(packed.written.bytes),
        HumanBytes(meta.uncompressed_size),
    ));
    if let (Some(b), Some(record)) = (&packed.base, &meta.base) {
        out.print(&format!(
            "Delta over `{}`: {} layer{} the base holds left out",
            b.display(),
            record.assumed.len(),
            if record.assumed.len() == 1 { "" } else { "s" },
        ));
        for p in &record.patches {
            out.print(&format!(
                "  layer {} of {} as a patch: {} instead of {} (against layer {} of {})",
                p.index,
                p.image,
                HumanBytes(p.patch.size),
                HumanBytes(p.layer_size),
                p.base.index,
                p.base.image
            ));
        }
    }
    let (fetched, cached) = (packed.fetched, packed.cached);
    out.print(&format!(
        "Fetched {fetched} blob{} ({}), {cached} from cache ({}), in {seconds:.1}s",
        if fetched == 1 { "" } else { "s" },
        HumanBytes(packed.fetched_bytes),
        HumanBytes(packed.cached_bytes),
    ));
    Ok(ExitCode::SUCCESS)
}
