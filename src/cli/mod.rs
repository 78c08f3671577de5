//! Command line: owns argument parsing (clap), dispatch to one file per command, output
//! conventions (`--json`, `--quiet`, `NO_COLOR`) and the rendering of errors (`crate::error`:
//! each carries its exit code, 0 ok, 1 checks failed, 2 bad input or usage, 3 engine or
//! registry unreachable, and its hint).
//! Also answers the Docker CLI plugin protocol (`docker airlock ...`).

pub mod cache;
pub mod check;
pub mod diff;
pub mod doctor;
pub mod inspect;
pub mod key;
pub mod load;
pub mod lock;
pub mod output;
pub mod pack;
pub mod patch;
pub mod plan;
pub mod progress;
pub mod push;
pub mod serve;
pub mod shared;
pub mod up;
pub mod verify;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "airlock",
    version,
    about = "Carry Docker Compose deployments across an air gap",
    long_about = "airlock reads a Compose project exactly as Compose does, lists every image it needs \
(including Dockerfile bases of built services), packs them into one verified bundle that `docker load` \
also accepts, and on the offline host loads, starts and validates the stack.\n\n\
Online:   airlock plan  ->  airlock pack -o stack.tar\n\
Offline:  airlock verify stack.tar  ->  airlock up stack.tar  ->  airlock check",
    after_help = "Exit codes: 0 ok, 1 checks failed, 2 bad input or usage, 3 engine or registry unreachable.\n\
Environment: DOCKER_HOST, DOCKER_CONFIG, AIRLOCK_CACHE, NO_COLOR, COMPOSE_FILE, COMPOSE_PROFILES, COMPOSE_PROJECT_NAME."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Print a machine-readable JSON document on stdout instead of tables (schema in docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors (and the JSON document with --json).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Never use colour (also when NO_COLOR is set).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// How to find and load the Compose project; the same flags as `docker compose`.
#[derive(Args, Debug, Clone, Default)]
pub struct ProjectArgs {
    /// Compose file(s), merged in order (default: compose.yaml, docker-compose.yml, ... and their override files; or COMPOSE_FILE).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project directory (default: the directory of the first compose file).
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Environment file(s) for interpolation, instead of `<project dir>/.env` (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a profile (repeatable; `*` enables all; when none is given, COMPOSE_PROFILES).
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Project name (default: `name:`, COMPOSE_PROJECT_NAME, or the directory name).
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
}

impl ProjectArgs {
    /// The loader's options for these flags (the environment is read by the loader).
    pub fn load_options(&self) -> crate::compose::LoadOptions {
        crate::compose::LoadOptions {
            files: self.files.clone(),
            project_directory: self.project_directory.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
            project_name: self.project_name.clone(),
            ..Default::default()
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every image a Compose project needs, with offline-readiness findings.
    Plan(plan::PlanArgs),
    /// Check every byte of a bundle, its structure, and that it holds every image the project needs.
    Verify(verify::VerifyArgs),
    /// Show what a bundle holds (reads only its metadata).
    Inspect(inspect::InspectArgs),
    /// Load a bundle into the engine, sending only what the engine lacks, and tag the references.
    Load(load::LoadArgs),
    /// Extract the compose files, load what is missing, start the stack without any pull, wait, check.
    Up(up::UpArgs),
    /// Validate a running project: states, health, restarts, log signatures, HTTP probes, checklist.
    Check(check::CheckArgs),
    /// Pull every image of the project from registries into one bundle that `docker load` accepts.
    Pack(pack::PackArgs),
    /// Resolve every image to digests and write airlock.lock (for `pack --locked`).
    Lock(lock::LockArgs),
    /// Inspect or prune the blob cache shared by every pack.
    Cache(cache::CacheArgs),
    /// Serve bundle(s) as a read-only registry for a fleet of hosts (docker pull from the LAN).
    Serve(serve::ServeArgs),
    /// Copy every image of a bundle into an existing registry, digests unchanged.
    Push(push::PushArgs),
    /// Compare two bundles (or lock files): images added, removed, changed; layers shared; bytes a delta saves.
    Diff(diff::DiffArgs),
    /// Manage minisign keys for signed bundles (`key generate`).
    Key(key::KeyArgs),
    /// What this host's engine can take: engine and API version, image store, free space, Compose CLIs, capabilities.
    Doctor(doctor::DoctorArgs),
    /// Build or apply one layer patch on tars on disk (for benchmarks; bundles get theirs from `pack --since`).
    #[command(hide = true)]
    Patch(patch::PatchArgs),
}

/// Entry point of both binaries (`airlock` and the Docker CLI plugin `docker-airlock`).
pub fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = docker_plugin(&mut args) {
        return code;
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let out = output::Output::new(&cli.global);
    let result = run(cli, &out);
    match result {
        Ok(code) => code,
        Err(err) => {
            out.error(&err);
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: Cli, out: &output::Output) -> crate::error::Result<ExitCode> {
    match cli.command {
        Command::Plan(args) => plan::run(args, out),
        Command::Verify(args) => verify::run(args, out),
        Command::Inspect(args) => inspect::run(args, out),
        Command::Load(args) => load::run(args, out),
        Command::Up(args) => up::run(args, out),
        Command::Check(args) => check::run(args, out),
        Command::Pack(args) => pack::run(args, out),
        Command::Lock(args) => lock::run(args, out),
        Command::Cache(args) => cache::run(args, out),
        Command::Serve(args) => serve::run(args, out),
        Command::Push(args) => push::run(args, out),
        Command::Diff(args) => diff::run(args, out),
        Command::Key(args) => key::run(args, out),
        Command::Doctor(args) => doctor::run(args, out),
        Command::Patch(args) => patch::run(args, out),
    }
}

/// Docker CLI plugin protocol: `docker-airlock docker-cli-plugin-metadata` prints the
/// metadata; when invoked as `docker airlock ...` the CLI passes `airlock` as the first argument.
fn docker_plugin(args: &mut Vec<std::ffi::OsString>) -> Option<ExitCode> {
    if args.get(1).and_then(|a| a.to_str()) == Some("docker-cli-plugin-metadata") {
        output::stdout_line(
            &serde_json::json!({
                "SchemaVersion": "0.1.0",
                "Vendor": "airlock",
                "Version": env!("CARGO_PKG_VERSION"),
                "ShortDescription": "Carry Compose deployments across an air gap",
                "URL": "https://github.com/airlock/airlock"
            })
            .to_string(),
        );
        return Some(ExitCode::SUCCESS);
    }
    let invoked_as_plugin = args
        .first()
        .and_then(|a| {
            std::path::Path::new(a)
                .file_name()
                .and_then(|f| f.to_str())
                .map(|f| f.starts_with("docker-airlock"))
        })
        .unwrap_or(false);
    if invoked_as_plugin && args.get(1).and_then(|a| a.to_str()) == Some("airlock") {
        args.remove(1);
    }
    None
}
