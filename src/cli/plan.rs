//! `airlock plan`: compose::load -> plan::plan -> table (grouped by image) and findings, or JSON.
//! Without `-f` and without a compose file here, plans the built-in Frappe example.

use super::ProjectArgs;
use super::output::Output;
use crate::compose::{self, Project};
use crate::error::Context;
use crate::plan::{self, Level, Plan, PlanOptions};
use crate::platform::Platform;
use clap::Args;
use std::process::ExitCode;

/// The built-in example planned when there is no compose file (`examples/frappe/compose.yaml`).
pub const EXAMPLE: &str = include_str!("../../examples/frappe/compose.yaml");

#[derive(Args, Debug)]
#[command(
    long_about = "List every image the Compose project needs, read exactly as Compose reads it: \
service images, images of built services (with their Dockerfile bases, `COPY --from` images and \
`# syntax` frontends), image volumes. Each image shows its kind, the services that need it and how \
firmly it is pinned; findings below say what could break offline and how to fix it.\n\n\
Without -f and without a compose file in this directory (or a parent), the built-in Frappe/ERPNext \
example is planned.",
    after_help = "Examples:\n  airlock plan\n  airlock plan -f compose.yaml -f compose.prod.yaml --profile '*'\n  \
airlock plan --env-file prod.env --platform linux/arm64 --json"
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Platform of the offline host; a service's `platform:` overrides it for that service.
    #[arg(
        long,
        value_name = "OS/ARCH[/VARIANT]",
        default_value = "linux/amd64",
        env = "DOCKER_DEFAULT_PLATFORM"
    )]
    pub platform: Platform,
    /// Also list what Docker Swarm (`docker stack deploy`, `airlock up --swarm`) ignores,
    /// refuses or runs differently in this project, with fixes.
    #[arg(long)]
    pub swarm: bool,
}

/// Load the project, falling back to the built-in example when no compose file is found.
/// The example is written to a temporary `frappe/` directory so the project is named `frappe`.
fn load(args: &PlanArgs, out: &Output) -> crate::error::Result<Project> {
    match compose::load(&args.project.load_options()) {
        Ok(p) => Ok(p),
        Err(compose::Error::NoComposeFile { .. }) if args.project.files.is_empty() => {
            out.status("no compose file here; showing the built-in Frappe example");
            let tmp = tempfile::tempdir()
                .context("Failed to create a temporary directory for the built-in example")?;
            let dir = tmp.path().join("frappe");
            fs_err::create_dir(&dir)?;
            let file = dir.join("compose.yaml");
            fs_err::write(&file, EXAMPLE)?;
            let mut opts = args.project.load_options();
            opts.files = vec![file];
            Ok(compose::load(&opts)?)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn run(args: PlanArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let project = load(&args, out)?;
    let opts = PlanOptions {
        platform: args.platform.clone(),
        ..PlanOptions::default()
    };
    let mut plan = plan::plan(&project, &opts)?;
    if args.swarm {
        plan.findings.extend(plan::swarm::findings(&project));
        // Sorted as the plan's own findings are: by level, then code (stable: services keep
        // their order within a code).
        plan.findings
            .sort_by(|a, b| (a.level, &a.code).cmp(&(b.level, &b.code)));
    }
    if out.json {
        out.json(&plan)?;
    } else {
        out.print(&render(&plan, out));
    }
    Ok(ExitCode::SUCCESS)
}

/// Human output: a summary line, the image table grouped by image, then the findings.
pub fn render(plan: &Plan, out: &Output) -> String {
    use comfy_table::{ContentArrangement, Table, presets};
    let mut text = String::new();
    let pulled = plan.pulled().len();
    let built = plan
        .images
        .iter()
        .filter(|i| i.kind == plan::Kind::BuildTag)
        .count();
    text.push_str(&format!(
        "Project `{}` for {}: {} image{} to bundle{}\n",
        plan.project,
        plan.platform,
        pulled,
        if pulled == 1 { "" } else { "s" },
        if built > 0 {
            format!(", {built} built here")
        } else {
            String::new()
        }
    ));
    if !plan.images.is_empty() {
        let mut rows: Vec<&plan::PlanImage> = plan.images.iter().collect();
        rows.sort_by_cached_key(|i| (i.normalized(), i.reference.original().to_string(), i.kind));
        let mut table = Table::new();
        table
            .load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if !out.interactive {
            table.force_no_tty();
        }
        table.set_header(vec!["image", "kind", "services", "pinned"]);
        let mut last = None;
        for img in rows {
            let same = last == Some(&img.reference);
            last = Some(&img.reference);
            let pinned = match img.pinned() {
                crate::reference::Pinned::Digest => "digest",
                crate::reference::Pinned::Tag => "tag",
                crate::reference::Pinned::Latest => "latest",
            };
            table.add_row(vec![
                if same {
                    String::new()
                } else {
                    img.reference.to_string()
                },
                img.kind.as_str().to_string(),
                img.services.join(", "),
                pinned.to_string(),
            ]);
        }
        text.push_str(&table.to_string());
        text.push('\n');
    }
    let carried: Vec<String> = plan
        .run_files
        .iter()
        .filter(|f| f.carried)
        .map(|f| match f.members.as_slice() {
            [(name, _)] if *name == f.path => f.path.clone(),
            _ => format!(
                "{}/ ({} file{})",
                f.path,
                f.files,
                if f.files == 1 { "" } else { "s" }
            ),
        })
        .collect();
    if !carried.is_empty() {
        text.push_str(&format!(
            "
Run files the bundle carries ({}): {}
",
            carried.len(),
            carried.join(", ")
        ));
    }
    if plan.findings.is_empty() {
        text.push_str("\nNo findings.");
    } else {
        text.push_str(&format!("\nFindings ({}):\n", plan.findings.len()));
        for f in &plan.findings {
            let (label, colour) = match f.level {
                Level::Error => ("error", "31;1"),
                Level::Warning => ("warning", "33"),
                Level::Info => ("info", "36"),
            };
            let service = f
                .service
                .as_deref()
                .map(|s| format!(" [{s}]"))
                .unwrap_or_default();
            text.push_str(&format!(
                "  {} {}{service}: {}\n",
                out.paint(&format!("{label:>7}"), colour),
                f.code,
                f.message
            ));
            text.push_str(&format!("          fix: {}\n", f.fix));
        }
        text.pop();
    }
    text
}
