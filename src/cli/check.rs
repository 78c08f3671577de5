//! `airlock check`: compose::load (or the state `airlock up` left in `--dir`) -> plan
//! findings -> check::check (engine containers, logs, HTTP probes, checklist) -> table or
//! JSON. Exit 1 on any failure.

use super::ProjectArgs;
use super::output::Output;
use crate::check::CheckOptions;
use crate::compose::{self, LoadOptions, Project};
use crate::error::Context as _;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// The directory `airlock up` extracted the bundle's compose files into (reads the
    /// project name, files and override it used). Default, without -f/--project-directory/-p:
    /// the current directory when it holds `.airlock-up.json`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["files", "project_directory"])]
    pub dir: Option<PathBuf>,
    /// URL to probe, expecting 2xx or 3xx (repeatable; default: the first published
    /// 127.0.0.1 port of a frontend-like service).
    #[arg(long = "http", value_name = "URL")]
    pub http: Vec<String>,
    /// Log lines shown for a failing service.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub lines: usize,
    /// Check a Swarm stack deployed by `airlock up --swarm` (from `--dir`, the current
    /// directory's state, or `-p STACK`): replicas, tasks with their node and error, service
    /// logs, probes, and the `airlock serve` the nodes pull from.
    #[arg(long)]
    pub swarm: bool,
}

/// Load the compose project and its plan findings; the project name and services come from it.
pub fn load_project(
    opts: &LoadOptions,
) -> crate::error::Result<(Project, Vec<crate::plan::Finding>)> {
    let project = compose::load(opts).context("Failed to load the compose project")?;
    let findings = crate::plan::plan(&project, &crate::plan::PlanOptions::default())
        .map(|p| p.findings)
        .unwrap_or_default();
    Ok((project, findings))
}

pub fn run(args: CheckArgs, out: &Output) -> crate::error::Result<ExitCode> {
    if args.swarm {
        let here = Path::new(".");
        let dir = args.dir.as_deref().or_else(|| {
            (args.project.project_name.is_none() && here.join(crate::swarm::SWARM_STATE).is_file())
                .then_some(here)
        });
        let report = crate::swarm::check_stack(
            dir,
            args.project.project_name.as_deref(),
            &args.http,
            args.lines,
        )?;
        super::shared::print_swarm_report(&report, out)?;
        return Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    // Inside a directory `airlock up` wrote, with no project options: its state, as `--dir .`.
    let here = Path::new(".");
    let dir = args.dir.as_deref().or_else(|| {
        let p = &args.project;
        (p.files.is_empty()
            && p.project_directory.is_none()
            && p.project_name.is_none()
            && std::env::var_os("COMPOSE_FILE").is_none()
            && here.join(crate::up::UP_STATE).is_file())
        .then_some(here)
    });
    if args.dir.is_none() && dir.is_some() {
        out.status(&format!(
            "using the state `airlock up` left here ({}), as `--dir .`",
            crate::up::UP_STATE
        ));
    }
    let (project, findings, overrides) = match dir {
        Some(dir) => {
            let (state, opts) = crate::up::state::read(dir)?;
            let (project, findings) = load_project(&opts)?;
            let overrides = state
                .files
                .last()
                .map(|f| crate::compose_override::images_in_file(&dir.join(f)))
                .unwrap_or_default();
            (project, findings, overrides)
        }
        None => {
            let p = &args.project;
            let opts = p.load_options();
            let (project, findings) = load_project(&opts)?;
            (project, findings, BTreeMap::new())
        }
    };
    let mut opts = CheckOptions::for_project(&project, findings, &overrides);
    opts.http = args.http.clone();
    opts.show_lines = args.lines;
    let rt = crate::runtime::build(crate::runtime::Workers::Two)?;
    let report = rt.block_on(async {
        let engine = crate::engine::connect().await?;
        Ok::<_, crate::error::Error>(crate::check::check(&engine, &opts).await?)
    })?;
    super::shared::print_check_report(&report, out)?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
