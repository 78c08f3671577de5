//! What several commands share, so that no command file imports another: the registry
//! flags (`pack`, `lock`), the `--key` signature check (`verify`, `load`, `up`, `serve`),
//! the byte-total reporter (`verify`, `load`, `up`) and the renderers of the load and check
//! reports (`load`, `up`, `check`).

use super::ProjectArgs;
use super::output::Output;
use super::progress::Progress;
use crate::check::{CheckReport, Status};
use crate::engine::load::{Action, LoadReport, PinnedTag};
use crate::platform::Platform;
use crate::progress::Reporter;
use crate::reference::Reference;
use clap::Args;
use indicatif::HumanBytes;
use std::path::PathBuf;
use std::sync::Arc;

/// Registry and platform options shared by `pack` and `lock`.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Platform of the offline host; images are chosen for it from multi-platform indexes.
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Platform,
    /// Also pack this image, which no compose file names (repeatable).
    #[arg(long = "image", value_name = "REF")]
    pub images: Vec<Reference>,
    /// Allow plain HTTP and unverified HTTPS for this registry host (repeatable; loopback hosts always may use HTTP).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
    /// Trust this CA certificate (PEM) for registries (repeatable; also /etc/docker/certs.d/<host>/*.crt).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// Concurrent blob downloads.
    #[arg(long, short = 'j', default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Lock file (default: airlock.lock in the project directory, or the current directory without a project).
    #[arg(long = "lock-file", value_name = "FILE")]
    pub lock_file: Option<PathBuf>,
}

impl RegistryArgs {
    /// The options `pack::select` takes for these flags and `project`.
    pub fn select_options(&self, project: &ProjectArgs) -> crate::pack::SelectOptions {
        crate::pack::SelectOptions {
            project: project.load_options(),
            platform: self.platform.clone(),
            images: self.images.clone(),
            registry: crate::registry::Options {
                insecure: self.insecure.clone(),
                ca_certs: self.ca_certs.clone(),
                jobs: self.jobs as usize,
                ..Default::default()
            },
            lock_file: self.lock_file.clone(),
        }
    }
}

/// `--key PUB` of `verify`, `load`, `up`, `serve`: check the bundle's signature before
/// anything else; a missing or bad signature is an error of class Failed (exit 1).
pub fn check_signature(
    bundle: &std::path::Path,
    key: Option<&std::path::Path>,
    out: &Output,
) -> crate::error::Result<()> {
    let Some(key) = key else {
        return Ok(());
    };
    let checked = crate::bundle::signature::check(bundle, key)?;
    out.status(&format!(
        "signature ok: `{}` is signed by key {} ({})",
        bundle.display(),
        checked.key_id,
        checked.trusted_comment
    ));
    Ok(())
}

/// Reports only the byte total of the whole job (verify and load have no per-blob story).
pub struct TotalOnly(pub Arc<Progress>);

impl Reporter for TotalOnly {
    fn blob_progress(&self, digest: &crate::digest::Digest, bytes: u64) {
        self.0.blob_progress(digest, bytes);
    }
    fn total(&self, bytes: u64) {
        self.0.total(bytes);
    }
    fn step(&self, message: &str) {
        self.0.step(message);
    }
    fn warn(&self, message: &str) {
        self.0.warn(message);
    }
}

/// The Compose override that makes digest-pinned references resolve to their local tags.
pub fn pinned_override(pinned: &[PinnedTag]) -> String {
    let mut file = crate::compose_override::ComposeOverride::default();
    for p in pinned {
        for svc in &p.services {
            file.service(svc).image = Some(p.tag.clone());
        }
    }
    file.to_yaml()
}

pub fn print_load_report(report: &LoadReport, out: &Output) {
    for img in &report.images {
        let what = match img.action {
            Action::Loaded => out.paint("loaded ", "32"),
            Action::Present => "present".to_string(),
        };
        out.print(&format!("{what}  {}  ({})", img.reference, img.id.short()));
    }
    if report.rebuilt > 0 {
        out.print(&format!(
            "rebuilt {} layer(s) ({}) from their patches, each checked against its diff_id",
            report.rebuilt,
            HumanBytes(report.rebuilt_bytes)
        ));
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

fn mark(status: Status, out: &Output) -> String {
    match status {
        Status::Ok => out.paint("ok  ", "32"),
        Status::Warn => out.paint("warn", "33"),
        Status::Fail => out.paint("FAIL", "31;1"),
    }
}

/// Table of services, probes, checklist rows; or the JSON document.
/// The report of `check --swarm` (and `up --swarm`): a table of services (replicas,
/// newest task and its node), the registry row, problems with task errors and log lines,
/// probes. JSON: the report itself.
pub fn print_swarm_report(
    report: &crate::swarm::check::SwarmReport,
    out: &Output,
) -> crate::error::Result<()> {
    if out.json {
        return out.json(report);
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(["", "SERVICE", "MODE", "REPLICAS", "TASK", "NODE", "IMAGE"]);
    for s in &report.services {
        let t = s.tasks.first();
        table.add_row([
            mark(s.status, out),
            s.service.clone(),
            if s.one_shot {
                format!("{} job", s.mode)
            } else {
                s.mode.clone()
            },
            if s.one_shot {
                format!("{}/{} done", s.completed, s.desired.max(1))
            } else {
                format!("{}/{}", s.running, s.desired)
            },
            t.map(|t| t.state.clone()).unwrap_or_else(|| "-".into()),
            t.map(|t| t.node.clone()).unwrap_or_else(|| "-".into()),
            s.image.clone(),
        ]);
    }
    out.print(&format!("stack {}\n{table}", report.stack));
    if let Some(r) = &report.registry {
        out.print(&format!(
            "\n{} {} {}: {}",
            mark(r.status, out),
            r.kind,
            r.address,
            r.detail
        ));
    }
    for s in report.services.iter().filter(|s| s.status != Status::Ok) {
        print_service_problems(
            out,
            s.status,
            &s.service,
            &s.problems,
            &s.signatures,
            &s.last_lines,
        );
    }
    for p in &report.probes {
        let st = if p.ok { Status::Ok } else { Status::Fail };
        out.print(&format!(
            "\n{} {} -> {}",
            mark(st, out),
            p.url,
            p.status
                .map(|s| s.to_string())
                .or(p.error.clone())
                .unwrap_or_default()
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

/// A failing or warning service: its problems, the hints of its log signatures and its last
/// log lines (check and check --swarm).
fn print_service_problems(
    out: &Output,
    status: Status,
    service: &str,
    problems: &[String],
    signatures: &[crate::check::Signature],
    last_lines: &[String],
) {
    out.print(&format!("\n{} {service}:", mark(status, out)));
    for p in problems {
        out.print(&format!("  - {p}"));
    }
    for sig in signatures {
        out.print(&format!("    hint: {}", sig.hint));
    }
    if !last_lines.is_empty() {
        out.print(&format!("  last {} log lines:", last_lines.len()));
        for l in last_lines {
            out.print(&format!("  | {l}"));
        }
    }
}

pub fn print_check_report(report: &CheckReport, out: &Output) -> crate::error::Result<()> {
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
        print_service_problems(
            out,
            s.status,
            &s.service,
            &s.problems,
            &s.signatures,
            &s.last_lines,
        );
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
