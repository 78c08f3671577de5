//! `airlock load BUNDLE`: bundle::read::open_meta -> engine::connect -> engine::load::load
//! (only what the engine lacks, streamed, hashed on the way) -> tags; prints what was loaded
//! and, for digest-pinned references, the local tag and the Compose override that uses it.

use super::output::Output;
use super::progress::Progress;
use super::shared::TotalOnly;
use crate::bundle::read::Bundle;
use crate::error::Context as _;
use clap::Args;
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
    /// For a patch bundle: the base bundle its patches apply to (read instead of exporting
    /// the base layers from the engine).
    #[arg(long, value_name = "BASE")]
    pub base: Option<PathBuf>,
}

pub fn run(args: LoadArgs, out: &Output) -> crate::error::Result<ExitCode> {
    super::shared::check_signature(&args.bundle, args.key.as_deref(), out)?;
    let bundle = Bundle::open(&args.bundle)?;
    let meta = bundle
        .open_meta()
        .with_context(|| format!("Cannot read `{}`", args.bundle.display()))?;
    let rt = crate::runtime::build(crate::runtime::Workers::Two)?;
    let report = rt.block_on(async {
        let engine = crate::engine::connect().await?;
        let progress = Arc::new(Progress::new(out));
        let report = crate::up::load_bundle_with(
            &engine,
            &meta,
            args.base.as_deref(),
            Arc::new(TotalOnly(Arc::clone(&progress))),
        )
        .await;
        progress.finish();
        report
    })?;
    if out.json {
        out.json(&report)?;
    } else {
        super::shared::print_load_report(&report, out);
    }
    Ok(ExitCode::SUCCESS)
}
