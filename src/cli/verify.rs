//! `airlock verify BUNDLE`: bundle::verify (every byte hashed in parallel, SHA256SUMS, blob
//! names, structure, completeness) -> per-image lines and problems, or JSON. Exit 1 on any
//! problem.

use super::output::Output;
use super::shared::TotalOnly;
use crate::bundle::verify::{self, Report, VerifyOptions};
use crate::error::Context as _;
use clap::Args;
use indicatif::HumanBytes;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The bundle file (plain tar, or compressed with gzip or zstd).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Refuse the bundle unless `airlock/SHA256SUMS` carries a good signature by this minisign
    /// public key (a `.pub` file or the `RW...` key itself); checked before anything else.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// Hashing threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// For a delta bundle: its base (bundle, parts file, bundle.json or airlock.lock); checks
    /// that the delta and the base together hold every blob (the base itself is not hashed).
    #[arg(long, value_name = "BASE")]
    pub base: Option<PathBuf>,
}

pub fn run(args: VerifyArgs, out: &Output) -> crate::error::Result<ExitCode> {
    super::shared::check_signature(&args.bundle, args.key.as_deref(), out)?;
    let mut options = VerifyOptions::default();
    if let Some(j) = args.jobs {
        options.jobs = j.max(1);
    }
    let progress = Arc::new(super::progress::Progress::new(out));
    let started = std::time::Instant::now();
    let mut report = verify::verify(
        &args.bundle,
        &options,
        Arc::new(TotalOnly(Arc::clone(&progress))),
    )
    .with_context(|| format!("Cannot verify `{}`", args.bundle.display()))?;
    if let Some(base_path) = &args.base {
        let store = crate::store::Store::open(crate::store::Store::default_root()?).ok();
        let base = crate::bundle::delta::load_base(base_path, store.as_ref())
            .with_context(|| format!("Cannot read base `{}`", base_path.display()))?;
        let meta = crate::bundle::read::Bundle::open(&args.bundle)
            .and_then(|b| b.open_meta())
            .with_context(|| format!("Cannot read `{}`", args.bundle.display()))?;
        let (mut problems, mut notes) = crate::bundle::delta::check_with_base(&meta.meta, &base);
        report.problems.append(&mut problems);
        report.notes.append(&mut notes);
        // Patch bundles: every patch rebuilt against the base, proving its diff_id.
        if !meta.meta.patches().is_empty() {
            if crate::bundle::delta::is_json_base(base_path) {
                report.notes.push(format!(
                    "the {} layer patch(es) were not rebuilt: `{}` is a bundle.json or lock, not the base bundle",
                    meta.meta.patches().len(),
                    base_path.display()
                ));
            } else {
                let proved = crate::bundle::patched::prove(&meta, base_path, &*progress)
                    .with_context(|| {
                        format!("Cannot rebuild the patches of `{}`", args.bundle.display())
                    })?;
                for p in proved {
                    report.problems.push(verify::Problem {
                        kind: verify::ProblemKind::Patch,
                        file: Some(format!("blobs/sha256/{}", p.patch.hex())),
                        blob: Some(p.patch),
                        image: Some(p.image),
                        message: p.message,
                    });
                }
            }
        }
    }
    progress.finish();
    let elapsed = started.elapsed();
    if out.json {
        out.json(&serde_json::json!({
            "bundle": report.bundle,
            "ok": report.ok(),
            "compression": report.compression,
            "project": report.project,
            "platform": report.platform,
            "files": report.files,
            "bytes": report.bytes,
            "seconds": elapsed.as_secs_f64(),
            "signed": report.signed,
            "images": report.images,
            "problems": report.problems,
            "notes": report.notes,
        }))?;
    } else {
        print_human(&report, elapsed, out);
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_human(report: &Report, elapsed: std::time::Duration, out: &Output) {
    for img in &report.images {
        let mark = if img.ok {
            out.paint("ok  ", "32")
        } else {
            out.paint("FAIL", "31;1")
        };
        out.print(&format!("{mark}  {}", img.reference));
    }
    if !report.problems.is_empty() {
        out.print(&format!("\n{} problem(s):", report.problems.len()));
        for p in &report.problems {
            let at = p.file.as_deref().or(p.image.as_deref()).unwrap_or("bundle");
            out.print(&format!(
                "  {:<14} {at}\n  {:<14} {}",
                serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                "",
                p.message
            ));
        }
    }
    for n in &report.notes {
        out.warn(n);
    }
    let secs = elapsed.as_secs_f64().max(0.001);
    let verdict = if report.ok() {
        out.paint("verified", "32")
    } else {
        out.paint("NOT verified", "31;1")
    };
    out.print(&format!(
        "\n{verdict}: {} files, {} hashed in {:.1} s ({}/s){}",
        report.files,
        HumanBytes(report.bytes),
        secs,
        HumanBytes((report.bytes as f64 / secs) as u64),
        if report.problems.is_empty() {
            String::new()
        } else {
            format!(", {} problem(s)", report.problems.len())
        }
    ));
}
