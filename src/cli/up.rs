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
    /// Deploy as a Docker Swarm stack from this manager (`docker stack deploy`); every node
    /// pulls each image by digest from `airlock serve` on this host, or from --registry.
    #[arg(long)]
    pub swarm: bool,
    /// With --swarm: where `airlock serve` listens (default: the address used before for this
    /// stack, else 127.0.0.1:5000, which only a single-node swarm reaches; `0.0.0.0:5000` with
    /// --serve-advertise for several nodes).
    #[arg(long, value_name = "HOST:PORT", requires = "swarm")]
    pub serve_addr: Option<String>,
    /// With --swarm: the `host:port` the nodes pull from when it is not the listen address.
    #[arg(long, value_name = "HOST:PORT", requires = "swarm")]
    pub serve_advertise: Option<String>,
    /// With --swarm: push into this registry (`host[:port][/prefix]`) instead of serving.
    #[arg(long, value_name = "HOST", requires = "swarm", conflicts_with_all = ["serve_addr", "serve_advertise"])]
    pub registry: Option<String>,
    /// A delta bundle's base bundle. With --swarm: served beneath it (default: the bundles
    /// this stack was served from before). Without: for a patch bundle, the base its patches
    /// apply to (default: the base layers are exported from the engine).
    #[arg(long, value_name = "BUNDLE")]
    pub base: Option<PathBuf>,
    /// With --swarm: print a systemd unit that keeps `airlock serve` running for this bundle
    /// across reboots, and deploy nothing.
    #[arg(long, requires = "swarm")]
    pub print_unit: bool,
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
    if args.swarm {
        return run_swarm(args, out);
    }
    let opts = crate::up::UpOptions {
        bundle: args.bundle.clone(),
        dir: args.dir.clone(),
        env_files: args.env_files.clone(),
        profiles: args.profiles.clone(),
        timeout: args.timeout,
        http: args.http.clone(),
        base: args.base.clone(),
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

/// `up --swarm`: `swarm::up`, then the check report (or one JSON document).
fn run_swarm(args: UpArgs, out: &Output) -> crate::error::Result<ExitCode> {
    if args.print_unit {
        let stack = crate::bundle::read::Bundle::open(&args.bundle)?
            .open_meta()?
            .meta
            .project;
        let mut bundles = vec![args.bundle.clone()];
        bundles.extend(args.base.clone());
        let listen = args
            .serve_addr
            .clone()
            .unwrap_or_else(|| crate::swarm::DEFAULT_SERVE_ADDR.to_string());
        out.print(&crate::swarm::serving::unit(
            &stack,
            &bundles,
            &listen,
            args.serve_advertise.as_deref(),
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let opts = crate::swarm::SwarmOptions {
        bundle: args.bundle.clone(),
        base: args.base.clone(),
        dir: args.dir.clone(),
        env_files: args.env_files.clone(),
        profiles: args.profiles.clone(),
        timeout: args.timeout,
        http: args.http.clone(),
        serve_addr: args.serve_addr.clone(),
        serve_advertise: args.serve_advertise.clone(),
        registry: args.registry.clone(),
        ..Default::default()
    };
    let progress = Arc::new(UpProgress::new(out));
    let deployed = crate::swarm::up(&opts, progress.clone());
    progress.finish();
    let deployed = deployed?;
    if out.json {
        out.json(&serde_json::json!({
            "bundle": deployed.bundle,
            "stack": deployed.stack,
            "dir": deployed.dir,
            "file": deployed.file,
            "images": deployed.images,
            "source": deployed.source,
            "pull_from": deployed.pull_from,
            "serve_started": deployed.serve_started,
            "command": deployed.command,
            "converged": deployed.converged,
            "findings": deployed.findings,
            "check": deployed.check,
            "ok": deployed.ok(),
        }))?;
    } else {
        for f in &deployed.findings {
            out.warn(&format!("{}: {}", f.code, f.message));
        }
        super::shared::print_swarm_report(&deployed.check, out)?;
    }
    Ok(if deployed.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
