//! `airlock load BUNDLE`: bundle::read::open_meta -> engine::connect -> engine::load::load
//! (only what the engine lacks, streamed, hashed on the way) -> tags; prints what was loaded
//! and, for digest-pinned references, the local tag and the Compose override that uses it.

use super::output::Output;
use super::verify::TotalOnly;
use crate::bundle::read::{Bundle, Meta};
use crate::engine::load::{Action, LoadReport, PinnedTag};
use crate::error::Context;
use clap::Args;
use indicatif::HumanBytes;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The bundle file (plain tar, or compressed with gzip or zstd: decompressed here).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Refuse the bundle unless `airlock/SHA256SUMS` carries a good signature by this minisign
    /// public key (a `.pub` file or the `RW...` key itself); checked before anything else.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
}

/// A runtime for the engine calls of one command.
pub(crate) fn runtime() -> crate::error::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("Cannot start the async runtime")
}

/// Load `meta`'s bundle with progress on stderr (shared with `up`).
pub(crate) async fn load_bundle(
    engine: &crate::engine::Engine,
    meta: &Meta,
    out: &Output,
) -> crate::error::Result<LoadReport> {
    if let Some(parts) = &meta.bundle.parts {
        // A split bundle: every part against the parts file first (one extra read), so a
        // corrupt part is named before anything reaches the engine.
        out.status(&format!("checking {} parts", parts.parts.len()));
        let parts = Arc::clone(parts);
        let bad = tokio::task::spawn_blocking(move || parts.check_hashes())
            .await
            .context("The part checker stopped")??;
        if let Some(first) = bad.into_iter().next() {
            return Err(crate::error::Error::new(first).context(format!(
                "Cannot load `{}`; nothing was loaded",
                meta.bundle.path.display()
            )));
        }
    }
    let progress = Arc::new(super::progress::Progress::new(out));
    let report =
        crate::engine::load::load(engine, meta, Arc::new(TotalOnly(Arc::clone(&progress))))
            .await
            .with_context(|| {
                format!(
                    "Cannot load `{}` into the engine at `{}`",
                    meta.bundle.path.display(),
                    engine.host
                )
            });
    progress.finish();
    report
}

/// The Compose override that makes digest-pinned references resolve to their local tags.
pub fn pinned_override(pinned: &[PinnedTag]) -> String {
    let mut s = String::from("services:\n");
    for p in pinned {
        for svc in &p.services {
            s.push_str(&format!("  {svc}:\n    image: {}\n", p.tag));
        }
    }
    s
}

pub fn print_report(report: &LoadReport, out: &Output) {
    for img in &report.images {
        let what = match img.action {
            Action::Loaded => out.paint("loaded ", "32"),
            Action::Present => "present".to_string(),
        };
        out.print(&format!("{what}  {}  ({})", img.reference, img.id.short()));
    }
    if report.sent {
        out.print(&format!(
            "sent {} blobs ({}); skipped {} layers the engine already has ({})",
            report.blobs_sent,
            HumanBytes(report.bytes_sent),
            report.blobs_skipped,
            HumanBytes(report.bytes_skipped)
        ));
    } else {
        out.print("nothing to send: the engine has every image");
    }
    if !report.pinned.is_empty() {
        out.print("\ndigest-pinned references cannot be recorded by `docker load` on this engine; they were tagged locally:");
        for p in &report.pinned {
            out.print(&format!("  {}  ->  {}", p.reference, p.tag));
        }
        out.print(&format!(
            "use them with this Compose override (`airlock up` writes it for you):\n\n{}",
            pinned_override(&report.pinned)
        ));
    }
}

pub fn run(args: LoadArgs, out: &Output) -> crate::error::Result<ExitCode> {
    super::key::check(&args.bundle, args.key.as_deref(), out)?;
    let bundle = Bundle::open(&args.bundle)?;
    let meta = bundle
        .open_meta()
        .with_context(|| format!("Cannot read `{}`", args.bundle.display()))?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let engine = crate::engine::connect().await?;
        load_bundle(&engine, &meta, out).await
    })?;
    if out.json {
        out.json(&report)?;
    } else {
        print_report(&report, out);
    }
    Ok(ExitCode::SUCCESS)
}
