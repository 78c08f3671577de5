//! `airlock up BUNDLE`: the flags of `up::up` and the rendering of what it did (the load
//! report, then the check report; or one JSON document). Progress of the load is drawn only
//! while the load runs, so that Compose's own output is not mixed with bars.

use super::output::Output;
use super::progress::Progress;
use crate::digest::Digest;
use crate::progress::Reporter;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// The bundle file (plain tar, or compressed with gzip or zstd).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Refuse the bundle unless `airlock/SHA256SUMS` carries a good signature by this minisign
    /// public key (a `.pub` file or the `RW...` key itself); checked before anything else.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// Where to put the compose files (default: `./<project name>`). An existing, edited
    /// `.env` there is kept.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Environment file for Compose instead of `DIR/.env` (repeatable on Compose v2).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a profile (repeatable; default: the profiles the bundle was packed with).
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// How long to wait for every service to be running and healthy (or exited 0).
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = crate::time::parse_duration)]
    pub timeout: Duration,
    /// URL to probe after start, expecting 2xx or 3xx (repeatable).
    #[arg(long = "http", value_name = "URL")]
    pub http: Vec<String>,
}

/// Steps and warnings as status lines; the load's byte total as a bar, drawn from the first
/// `total` until the next step.
struct UpProgress {
    out: Output,
    bar: Mutex<Option<Progress>>,
}

impl UpProgress {
    fn new(out: &Output) -> Self {
        UpProgress {
            out: Output {
                json: out.json,
                quiet: out.quiet,
                color: out.color,
                interactive: out.interactive,
            },
            bar: Mutex::new(None),
        }
    }

    /// Remove the bar, if one is drawn.
    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish();
        }
    }
}

impl Reporter for UpProgress {
    fn total(&self, bytes: u64) {
        self.bar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| Progress::new(&self.out))
            .total(bytes);
    }
    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.blob_progress(digest, bytes);
        }
    }
    fn step(&self, message: &str) {
        self.finish();
        self.out.status(message);
    }
    fn warn(&self, message: &str) {
        match &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(bar) => bar.warn(message),
            None => self.out.warn(message),
        }
    }
}

pub fn run(args: UpArgs, out: &Output) -> crate::error::Result<ExitCode> {
    super::shared::check_signature(&args.bundle, args.key.as_deref(), out)?;
    let opts = crate::up::UpOptions {
        bundle: args.bundle.clone(),
        dir: args.dir.clone(),
        env_files: args.env_files.clone(),
        profiles: args.profiles.clone(),
        timeout: args.timeout,
        http: args.http.clone(),
    };
    let progress = Arc::new(UpProgress::new(out));
    let outcome = crate::up::up(&opts, progress.clone());
    progress.finish();
    let ran = match outcome? {
        crate::up::Outcome::Refused(refusal) => {
            for m in &refusal.missing {
                out.print(&format!("missing  {m}"));
            }
            return Err(refusal.error().into());
        }
        crate::up::Outcome::Ran(ran) => ran,
    };
    if out.json {
        out.json(&serde_json::json!({
            "bundle": ran.bundle,
            "project": ran.project,
            "dir": ran.dir,
            "compose": {"program": ran.tool.program, "version": ran.tool.version, "command": ran.command},
            "compose_ok": ran.compose_ok,
            "settled": ran.settled,
            "load": ran.load,
            "check": ran.check,
            "ok": ran.ok(),
        }))?;
    } else {
        super::shared::print_load_report(&ran.load, out);
        super::shared::print_check_report(&ran.check, out)?;
    }
    Ok(if ran.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
