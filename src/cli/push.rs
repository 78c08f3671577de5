//! `airlock push BUNDLE --to HOST[:PORT][/PREFIX]`: the flags of `push::push` and the
//! rendering of what it pushed (lines per image, totals, the compose override).

use super::output::Output;
use super::progress::Progress;
use crate::registry::Options;
use clap::Args;
use indicatif::HumanBytes;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
    /// For a patch bundle: the base bundle its patches apply to (read, not pushed).
    #[arg(long, value_name = "BUNDLE")]
    pub base: Option<PathBuf>,
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

pub fn run(args: PushArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let progress = Arc::new(Progress::uploads(out));
    let opts = crate::push::PushOptions {
        bundle: args.bundle.clone(),
        to: args.to.clone(),
        registry: Options {
            insecure: args.insecure.clone(),
            ca_certs: args.ca_certs.clone(),
            jobs: args.jobs as usize,
            ..Default::default()
        },
        chunk_size: args.chunk_size << 20,
        override_out: args.override_out.clone(),
        base: args.base.clone(),
    };
    let pushed = crate::push::push(&opts, progress.clone());
    progress.finish();
    let crate::push::Pushed {
        report,
        target: base,
        override_yaml,
        elapsed,
    } = pushed?;
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
