//! `airlock check`: compose::load (or the state `airlock up` left in `--dir`) -> plan
//! findings -> check::check (engine containers, logs, HTTP probes, checklist) -> table or
//! JSON. Exit 1 on any failure.

use super::ProjectArgs;
use super::output::Output;
use crate::check::{CheckOptions, CheckReport, Status};
use crate::compose::{self, LoadOptions, Project};
use crate::error::Context;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// The directory `airlock up` extracted the bundle's compose files into (reads the
    /// project name, files and override it used).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["files", "project_directory"])]
    pub dir: Option<PathBuf>,
    /// URL to probe, expecting 2xx or 3xx (repeatable; default: the first published
    /// 127.0.0.1 port of a frontend-like service).
    #[arg(long = "http", value_name = "URL")]
    pub http: Vec<String>,
    /// Log lines shown for a failing service.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub lines: usize,
}

/// What `airlock up` records in `DIR/.airlock-up.json` for `check --dir`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpState {
    pub project: String,
    /// Compose files passed with `-f` (relative to the directory), the override last.
    pub files: Vec<String>,
    pub env_files: Vec<String>,
    pub profiles: Vec<String>,
    /// `v1` (docker-compose 1.x) or `v2`.
    pub compose: String,
    /// sha256 of the files and options Compose was started with (a second `up` with the
    /// same fingerprint and a running project changes nothing).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

pub const UP_STATE: &str = ".airlock-up.json";

/// Load the compose project and its plan findings; the project name and services come from it.
pub fn load_project(opts: &LoadOptions) -> crate::error::Result<(Project, Vec<crate::plan::Finding>)> {
    let project = compose::load(opts).context("Failed to load the compose project")?;
    let findings = crate::plan::plan(&project, &crate::plan::PlanOptions::default())
        .map(|p| p.findings)
        .unwrap_or_default();
    Ok((project, findings))
}

/// Check options for a loaded project: services, one-shot jobs, images as Compose resolves them.
pub fn options_for(
    project: &Project,
    findings: Vec<crate::plan::Finding>,
    image_overrides: &BTreeMap<String, String>,
) -> CheckOptions {
    let mut images = BTreeMap::new();
    let mut one_shot = Vec::new();
    for (name, svc) in &project.services {
        if let Some(img) = image_overrides.get(name).or(svc.image.as_ref()) {
            images.insert(name.clone(), img.clone());
        }
        for (dep, d) in &svc.depends_on {
            if d.condition == "service_completed_successfully" && !one_shot.contains(dep) {
                one_shot.push(dep.clone());
            }
        }
    }
    CheckOptions {
        project: project.name.clone(),
        services: Some(project.services.keys().cloned().collect()),
        one_shot,
        images,
        findings,
        ..CheckOptions::default()
    }
}

/// `image:` overrides in an airlock override file (`services: {svc: {image: ...}}`).
pub fn overrides_in(path: &Path) -> BTreeMap<String, String> {
    fs_err::read_to_string(path)
        .map(|t| overrides_in_text(&t))
        .unwrap_or_default()
}

/// `image:` overrides in the text of an airlock override file.
pub fn overrides_in_text(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut service = None;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("  ")
            .filter(|l| !l.starts_with(' '))
            .and_then(|l| l.strip_suffix(':'))
        {
            service = Some(name.trim_matches('"').to_string());
        } else if let (Some(s), Some(img)) = (&service, line.trim().strip_prefix("image: ")) {
            out.insert(s.clone(), img.trim_matches('"').to_string());
        }
    }
    out
}

/// The load options `airlock up` used in `dir`.
pub fn up_options(dir: &Path) -> crate::error::Result<(UpState, LoadOptions)> {
    let path = dir.join(UP_STATE);
    let text = fs_err::read_to_string(&path).with_context(|| {
        format!(
            "`{}` was not set up by `airlock up` (no {UP_STATE})",
            dir.display()
        )
    })?;
    let state: UpState =
        serde_json::from_str(&text).with_context(|| format!("Cannot read `{}`", path.display()))?;
    let opts = LoadOptions {
        files: state.files.iter().map(|f| dir.join(f)).collect(),
        project_directory: Some(dir.to_path_buf()),
        env_files: state.env_files.iter().map(PathBuf::from).collect(),
        profiles: state.profiles.clone(),
        project_name: Some(state.project.clone()),
        ..LoadOptions::default()
    };
    Ok((state, opts))
}

pub fn run(args: CheckArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let (project, findings, overrides) = match &args.dir {
        Some(dir) => {
            let (state, opts) = up_options(dir)?;
            let (project, findings) = load_project(&opts)?;
            let overrides = state
                .files
                .last()
                .map(|f| overrides_in(&dir.join(f)))
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
    let mut opts = options_for(&project, findings, &overrides);
    opts.http = args.http.clone();
    opts.show_lines = args.lines;
    let rt = super::load::runtime()?;
    let report = rt.block_on(async {
        let engine = crate::engine::connect().await?;
        Ok::<_, crate::error::Error>(crate::check::check(&engine, &opts).await?)
    })?;
    print_report(&report, out)?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn mark(status: Status, out: &Output) -> String {
    match status {
        Status::Ok => out.paint("ok  ", "32"),
        Status::Warn => out.paint("warn", "33"),
        Status::Fail => out.paint("FAIL", "31;1"),
    }
}

/// Table of services, probes, checklist rows; or the JSON document.
pub fn print_report(report: &CheckReport, out: &Output) -> crate::error::Result<()> {
    if out.json {
        return out.json(report);
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header([
        "", "SERVICE", "STATE", "HEALTH", "RESTARTS", "EXIT", "PORTS",
    ]);
    for s in &report.services {
        let c = s.containers.first();
        table.add_row([
            mark(s.status, out),
            s.service.clone(),
            c.map(|c| c.state.clone())
                .unwrap_or_else(|| "missing".into()),
            c.and_then(|c| c.health.clone())
                .unwrap_or_else(|| "-".into()),
            c.map(|c| c.restarts.to_string())
                .unwrap_or_else(|| "-".into()),
            c.and_then(|c| c.exit_code)
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into()),
            c.map(|c| {
                c.ports
                    .iter()
                    .map(|p| format!("{}:{}->{}", p.host_ip, p.host_port, p.container_port))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        ]);
    }
    out.print(&format!("project {}\n{table}", report.project));
    for s in report.services.iter().filter(|s| s.status != Status::Ok) {
        out.print(&format!("\n{} {}:", mark(s.status, out), s.service));
        for p in &s.problems {
            out.print(&format!("  - {p}"));
        }
        for sig in &s.signatures {
            out.print(&format!("    hint: {}", sig.hint));
        }
        if !s.last_lines.is_empty() {
            out.print(&format!("  last {} log lines:", s.last_lines.len()));
            for l in &s.last_lines {
                out.print(&format!("  | {l}"));
            }
        }
    }
    out.print("\nchecklist:");
    for r in &report.checklist {
        out.print(&format!(
            "  {}  {:<45} {}",
            mark(r.status, out),
            r.title,
            r.detail
        ));
    }
    out.print(&format!(
        "\n{}",
        if report.ok {
            out.paint("check passed", "32")
        } else {
            out.paint("check FAILED", "31;1")
        }
    ));
    Ok(())
}
