//! `airlock up BUNDLE`: bundle::read::open_meta -> compose files staged and planned
//! (compose::load -> plan::plan) -> refuse when an image is missing (nothing changed) ->
//! files written to DIR (a user's edited env files kept) -> engine::load::load (only what
//! is missing) -> override file (`pull_policy: never`, digest-pinned references mapped to
//! local tags) -> `docker compose up -d --pull never` (v2) or `docker-compose up -d` (v1)
//! -> wait until every service is running and healthy, or exited 0 -> check::check.

use super::check::{UP_STATE, UpState};
use super::load::{load_bundle, runtime};
use super::output::Output;
use crate::bundle::read::{Bundle, Meta};
use crate::compose::{LoadOptions, Project};
use crate::engine::Engine;
use crate::error::Classified;
use crate::plan::{Kind, Plan, PlanOptions};
use crate::reference::Reference;
use crate::error::Context;
use clap::Args;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The override file `up` writes next to the compose files.
pub const OVERRIDE: &str = "airlock.override.yml";

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
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// URL to probe after start, expecting 2xx or 3xx (repeatable).
    #[arg(long = "http", value_name = "URL")]
    pub http: Vec<String>,
}

/// `300s`, `5m`, `1h`, `90` (seconds), `1500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: expected e.g. 300s, 5m, 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("invalid duration unit in `{s}`: use ms, s, m or h")),
    }
}

/// Which Compose CLI runs the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeTool {
    /// `["docker", "compose"]` or `["docker-compose"]`.
    pub program: Vec<String>,
    /// Major version 2+ (Compose v2/v5 CLI semantics) or 1 (docker-compose 1.x, python).
    pub v2: bool,
    pub version: String,
}

impl ComposeTool {
    /// Compose v2 as a Docker CLI plugin, else `docker-compose` (v1 or a standalone v2).
    pub fn detect() -> Option<ComposeTool> {
        let try_version = |program: &[&str]| -> Option<String> {
            let out = std::process::Command::new(program[0])
                .args(&program[1..])
                .args(["version", "--short"])
                .output()
                .ok()?;
            if !out.status.success() {
                return None;
            }
            let v = String::from_utf8_lossy(&out.stdout)
                .trim()
                .trim_start_matches('v')
                .to_string();
            (!v.is_empty()).then_some(v)
        };
        if let Some(v) = try_version(&["docker", "compose"]) {
            return Some(ComposeTool {
                program: vec!["docker".into(), "compose".into()],
                v2: !v.starts_with("1."),
                version: v,
            });
        }
        try_version(&["docker-compose"]).map(|v| ComposeTool {
            program: vec!["docker-compose".into()],
            v2: !v.starts_with("1."),
            version: v,
        })
    }

    fn supports_pull_flag(&self) -> bool {
        // `up --pull` arrived in Compose v2.8.
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        self.v2 && (major > 2 || (major == 2 && minor >= 8))
    }

    /// The `up -d` command line (program first).
    pub fn up_command(
        &self,
        project: &str,
        dir: &Path,
        files: &[String],
        env_files: &[PathBuf],
        profiles: &[String],
    ) -> Vec<String> {
        let mut cmd = self.program.clone();
        cmd.extend([
            "--project-name".into(),
            project.into(),
            "--project-directory".into(),
            dir.display().to_string(),
        ]);
        for f in files {
            cmd.extend(["-f".into(), dir.join(f).display().to_string()]);
        }
        for e in env_files {
            cmd.extend(["--env-file".into(), e.display().to_string()]);
        }
        for p in profiles {
            cmd.extend(["--profile".into(), p.clone()]);
        }
        cmd.extend(["up".into(), "-d".into()]);
        if self.supports_pull_flag() {
            cmd.extend(["--pull".into(), "never".into()]);
        }
        cmd
    }
}

pub use crate::bundle::read::entry_files;

/// The override file: `pull_policy: never` for every service, pinned references mapped to
/// their local tags, and the first compose file's `version:` (docker-compose 1.x checks it).
pub fn override_yaml(
    services: &[String],
    pinned: &BTreeMap<String, String>,
    version: Option<&str>,
) -> String {
    let mut s = String::from(
        "# Written by `airlock up`: never pull (everything was loaded from the bundle);\n# digest-pinned images use the local tags `airlock load` created.\n",
    );
    if let Some(v) = version {
        s.push_str(&format!("version: \"{v}\"\n"));
    }
    s.push_str("services:\n");
    for svc in services {
        s.push_str(&format!("  {svc}:\n    pull_policy: never\n"));
        if let Some(tag) = pinned.get(svc) {
            s.push_str(&format!("    image: {tag}\n"));
        }
    }
    s
}

/// `version:` of a compose file, if it has one.
fn compose_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("version:"))
        .map(|v| {
            v.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string()
        })
        .filter(|v| !v.is_empty())
}

/// Whether `rel` is a safe relative path to write under the project directory.
fn safe_rel(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

/// Write the bundle's compose files into `dir`: env files the user already has are kept,
/// changed compose files are replaced (the old one kept as `<file>.before-airlock`).
/// Returns the paths written.
fn write_files(meta: &Meta, dir: &Path, out: &Output) -> crate::error::Result<Vec<String>> {
    let env: BTreeSet<&String> = meta.meta.compose.env_files.iter().collect();
    let mut written = Vec::new();
    for (rel, bytes) in &meta.compose_files {
        if !safe_rel(rel) {
            out.warn(&format!(
                "skipping `{rel}` from the bundle: not a relative path"
            ));
            continue;
        }
        let path = dir.join(rel);
        match fs_err::read(&path) {
            Ok(existing) if &existing == bytes => continue,
            Ok(_) if env.contains(rel) || rel.ends_with(".env") => {
                out.warn(&format!(
                    "keeping your edited `{}` (the bundle's version differs)",
                    path.display()
                ));
                continue;
            }
            Ok(existing) => {
                let backup = dir.join(format!("{rel}.before-airlock"));
                fs_err::write(&backup, existing)?;
                out.warn(&format!(
                    "`{}` differed from the bundle's; the old one is `{}`",
                    path.display(),
                    backup.display()
                ));
            }
            Err(_) => {}
        }
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("airlock-tmp");
        fs_err::write(&tmp, bytes)?;
        fs_err::rename(&tmp, &path)?;
        written.push(rel.clone());
    }
    Ok(written)
}

/// Write `bytes` to `path` unless it already holds them.
fn write_if_changed(path: &Path, bytes: &[u8]) -> crate::error::Result<bool> {
    if fs_err::read(path).ok().as_deref() == Some(bytes) {
        return Ok(false);
    }
    fs_err::write(path, bytes)?;
    Ok(true)
}

/// The project as Compose will see it in `dir` after extraction (staged in a temp dir so a
/// refusal changes nothing), and its plan.
fn stage_and_plan(
    meta: &Meta,
    dir: &Path,
    args: &UpArgs,
    files: &[String],
    profiles: &[String],
) -> crate::error::Result<(Project, Plan)> {
    let tmp = tempfile::tempdir().context("Cannot create a temporary directory")?;
    let stage = tmp.path().join(&meta.meta.project);
    for (rel, bytes) in &meta.compose_files {
        if !safe_rel(rel) {
            continue;
        }
        let path = stage.join(rel);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        // The user's env files in DIR win, as they will after extraction.
        let existing = dir.join(rel);
        let is_env = meta.meta.compose.env_files.contains(rel) || rel.ends_with(".env");
        match fs_err::read(&existing) {
            Ok(user) if is_env => fs_err::write(&path, user)?,
            _ => fs_err::write(&path, bytes)?,
        }
    }
    let opts = LoadOptions {
        files: files.iter().map(|f| stage.join(f)).collect(),
        project_directory: Some(stage.clone()),
        env_files: args
            .env_files
            .iter()
            .map(|e| std::path::absolute(e).unwrap_or_else(|_| e.clone()))
            .collect(),
        profiles: profiles.to_vec(),
        project_name: Some(meta.meta.project.clone()),
        ..LoadOptions::default()
    };
    let project =
        crate::compose::load(&opts).context("Cannot load the bundle's compose project")?;
    let platform = meta.meta.platform.clone();
    let plan = crate::plan::plan(
        &project,
        &PlanOptions {
            platform,
            ..PlanOptions::default()
        },
    )
    .context("Cannot plan the bundle's compose project")?;
    Ok((project, plan))
}

/// References the project needs that neither the bundle nor the engine has.
async fn missing_images(plan: &Plan, meta: &Meta, engine: &Engine) -> crate::error::Result<Vec<String>> {
    let in_bundle = |r: &Reference| {
        meta.meta.images.iter().any(|i| {
            i.reference.normalized() == r.normalized() || i.reference.original() == r.original()
        })
    };
    let mut missing = Vec::new();
    let available = |r: &Reference| {
        let here = in_bundle(r);
        let digest_ref = r.digest().is_some();
        let name = r.original().to_string();
        async move {
            if here {
                return Ok::<_, crate::error::Error>(true);
            }
            Ok(!digest_ref && engine.image_id(&name).await?.is_some())
        }
    };
    let mut unbuilt_services: BTreeSet<&str> = BTreeSet::new();
    for img in plan.images.iter().filter(|i| i.kind == Kind::BuildTag) {
        if !available(&img.reference).await? {
            unbuilt_services.extend(img.services.iter().map(String::as_str));
        }
    }
    for img in &plan.images {
        let needed = match img.kind {
            Kind::Image => true,
            Kind::BuildFrom | Kind::BuildCopyFrom | Kind::BuildSyntax => img
                .services
                .iter()
                .any(|s| unbuilt_services.contains(s.as_str())),
            _ => false,
        };
        if needed && !available(&img.reference).await? {
            missing.push(format!(
                "{} (services: {})",
                img.reference,
                img.services.join(", ")
            ));
        }
    }
    missing.sort();
    missing.dedup();
    Ok(missing)
}

/// Poll the project's containers until every service is settled (running and healthy or
/// without healthcheck, exited, unhealthy, or crash-looping) and nothing changed for 2 s.
async fn wait_settled(
    engine: &Engine,
    project: &str,
    services: &[String],
    timeout: Duration,
    out: &Output,
) -> crate::error::Result<bool> {
    let start = Instant::now();
    let mut last: Option<(Vec<String>, Instant)> = None;
    let mut last_line = String::new();
    loop {
        let containers = engine.containers(project).await?;
        let mut pending = Vec::new();
        for s in services {
            let cs: Vec<_> = containers
                .iter()
                .filter(|c| &c.service == s && !c.one_off)
                .collect();
            if cs.is_empty() {
                pending.push(format!("{s} (no container)"));
            }
            for c in cs {
                let settled = match c.state.as_str() {
                    "running" => !matches!(c.health.as_deref(), Some("starting")),
                    "exited" | "dead" => true,
                    "restarting" => c.restarts >= 2,
                    _ => false,
                };
                if !settled {
                    pending.push(format!(
                        "{s} ({}{})",
                        c.state,
                        c.health
                            .as_deref()
                            .map(|h| format!(", {h}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        let snapshot: Vec<String> = containers
            .iter()
            .map(|c| format!("{}:{}:{:?}:{}", c.name, c.state, c.health, c.restarts))
            .collect();
        if pending.is_empty() {
            match &last {
                Some((prev, since)) if prev == &snapshot => {
                    if since.elapsed() >= Duration::from_secs(2) {
                        return Ok(true);
                    }
                }
                _ => last = Some((snapshot, Instant::now())),
            }
        } else {
            last = None;
            let line = format!("waiting for {}", pending.join(", "));
            if line != last_line {
                out.status(&line);
                last_line = line;
            }
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// sha256 over the compose files, the override, the env files and the options of `state`.
fn fingerprint(dir: &Path, state: &UpState, bundle_env_files: &[String]) -> String {
    let mut h = crate::digest::Hasher::new();
    let mut add = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for f in state.files.iter().chain(bundle_env_files) {
        add(f, &fs_err::read(dir.join(f)).unwrap_or_default());
    }
    for f in &state.env_files {
        add(f, &fs_err::read(f).unwrap_or_default());
    }
    add("profiles", state.profiles.join(",").as_bytes());
    add("compose", state.compose.as_bytes());
    h.finish().to_string()
}

/// Every service has a container that is running (healthy or without healthcheck) or exited 0.
async fn all_up(engine: &Engine, project: &str, services: &[String]) -> crate::error::Result<bool> {
    let containers = engine.containers(project).await?;
    Ok(services.iter().all(|s| {
        let cs: Vec<_> = containers
            .iter()
            .filter(|c| &c.service == s && !c.one_off)
            .collect();
        !cs.is_empty()
            && cs.iter().all(|c| {
                (c.state == "running" && matches!(c.health.as_deref(), None | Some("healthy")))
                    || (c.state == "exited" && c.exit_code == Some(0))
            })
    }))
}

pub fn run(args: UpArgs, out: &Output) -> crate::error::Result<ExitCode> {
    super::key::check(&args.bundle, args.key.as_deref(), out)?;
    let bundle = Bundle::open(&args.bundle)?;
    let meta = bundle
        .open_meta()
        .with_context(|| format!("Cannot read `{}`", args.bundle.display()))?;
    let project_name = meta.meta.project.clone();
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?.join(&project_name),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let profiles = if args.profiles.is_empty() {
        meta.meta.compose.profiles.clone()
    } else {
        args.profiles.clone()
    };
    let files = entry_files(&meta.meta.compose.files, &meta.compose_files);
    if files.is_empty() {
        return Err(Classified::input(format!(
            "Bundle `{}` carries no compose file: use `airlock load` instead",
            args.bundle.display()
        ))
        .into());
    }
    let tool = ComposeTool::detect().ok_or_else(|| {
        Classified::environment("Neither `docker compose` (v2) nor `docker-compose` (v1) runs here; install one of them")
    })?;
    if !tool.v2 && args.env_files.len() > 1 {
        return Err(Classified::input("docker-compose 1.x takes a single --env-file").into());
    }
    let (project, plan) = stage_and_plan(&meta, &dir, &args, &files, &profiles)?;
    let rt = runtime()?;
    rt.block_on(async {
        let engine = crate::engine::connect().await?;
        let missing = missing_images(&plan, &meta, &engine).await?;
        if !missing.is_empty() {
            for m in &missing {
                out.print(&format!("missing  {m}"));
            }
            return Err(Classified::failed(format!(
                "{} image(s) the project needs are neither in bundle `{}` nor on the engine; nothing was changed or started:\n  {}",
                missing.len(),
                args.bundle.display(),
                missing.join("\n  ")
            ))
            .into());
        }
        fs_err::create_dir_all(&dir)?;
        let written = write_files(&meta, &dir, out)?;
        if !written.is_empty() {
            out.status(&format!("wrote {} into {}", written.join(", "), dir.display()));
        }
        out.status(&format!("loading {} into the engine", args.bundle.display()));
        let load = load_bundle(&engine, &meta, out).await.with_context(|| {
            format!(
                "Stopped while loading `{}`: the compose files are in `{}`, nothing was started; run `airlock up` again",
                args.bundle.display(),
                dir.display()
            )
        })?;
        super::load::print_report(&load, out);

        // Override: never pull; digest-pinned references resolve to local tags.
        let mut pinned = BTreeMap::new();
        for p in &load.pinned {
            for s in &p.services {
                pinned.insert(s.clone(), p.tag.clone());
            }
        }
        let mut all_services: Vec<String> = project.services.keys().cloned().collect();
        all_services.extend(project.disabled_services.iter().cloned());
        all_services.sort();
        let version = files.first().and_then(|f| meta.compose_files.get(f)).and_then(|b| compose_version(&String::from_utf8_lossy(b)));
        let override_text = override_yaml(&all_services, &pinned, version.as_deref());
        write_if_changed(&dir.join(OVERRIDE), override_text.as_bytes())?;
        let mut compose_files = files.clone();
        compose_files.push(OVERRIDE.to_string());
        let env_files: Vec<PathBuf> = args.env_files.iter().map(|e| std::path::absolute(e).unwrap_or_else(|_| e.clone())).collect();
        let mut state = UpState {
            project: project_name.clone(),
            files: compose_files.clone(),
            env_files: env_files.iter().map(|e| e.display().to_string()).collect(),
            profiles: profiles.clone(),
            compose: if tool.v2 { "v2".into() } else { "v1".into() },
            fingerprint: None,
        };
        state.fingerprint = Some(fingerprint(&dir, &state, &meta.meta.compose.env_files));
        let previous: Option<UpState> = fs_err::read_to_string(dir.join(UP_STATE)).ok().and_then(|t| serde_json::from_str(&t).ok());

        // Just before starting: every image resolves locally under the name Compose uses.
        let mut unresolved = Vec::new();
        for (name, svc) in &project.services {
            if let Some(img) = pinned.get(name).or(svc.image.as_ref())
                && svc.build.is_none()
                && engine.image_id(img).await?.is_none()
            {
                unresolved.push(format!("{name}: {img}"));
            }
        }
        if !unresolved.is_empty() {
            return Err(Classified::failed(format!(
                "after loading, these images still do not resolve on the engine, so Compose would pull them: {}",
                unresolved.join(", ")
            ))
            .into());
        }

        let cmd = tool.up_command(&project_name, &dir, &compose_files, &env_files, &profiles);
        let services: Vec<String> = project.services.keys().cloned().collect();
        // Nothing new written, loaded or edited, and every service up: starting Compose again
        // would only re-run finished one-shot jobs.
        let unchanged = written.is_empty() && !load.sent && previous.is_some_and(|p| p == state);
        let compose_ok = if unchanged && all_up(&engine, &project_name, &services).await? {
            out.status("everything is loaded and running; nothing to change");
            true
        } else {
            out.status(&format!("$ {}", cmd.join(" ")));
            let status = std::process::Command::new(&cmd[0])
                .args(&cmd[1..])
                .current_dir(&dir)
                .stdout(std::process::Stdio::from(std::io::stderr()))
                .status()
                .with_context(|| format!("Cannot run `{}`", cmd[0]))?;
            if !status.success() {
                out.warn(&format!("`{}` failed ({status}); checking what is running", cmd.join(" ")));
            }
            write_if_changed(&dir.join(UP_STATE), serde_json::to_string_pretty(&state)?.as_bytes())?;
            status.success()
        };
        let settled = wait_settled(&engine, &project_name, &services, args.timeout, out).await?;
        if !settled {
            out.warn(&format!("not every service settled within {:?}", args.timeout));
        }
        let findings = plan.findings.clone();
        let mut opts = super::check::options_for(&project, findings, &pinned);
        opts.http = args.http.clone();
        let report = crate::check::check(&engine, &opts).await?;
        if out.json {
            out.json(&serde_json::json!({
                "bundle": bundle.path,
                "project": project_name,
                "dir": dir,
                "compose": {"program": tool.program, "version": tool.version, "command": cmd},
                "compose_ok": compose_ok,
                "settled": settled,
                "load": load,
                "check": report,
                "ok": report.ok && compose_ok,
            }))?;
        } else {
            super::check::print_report(&report, out)?;
        }
        Ok(if report.ok && compose_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> ComposeTool {
        ComposeTool {
            program: vec!["docker-compose".into()],
            v2: false,
            version: "1.29.2".into(),
        }
    }
    fn v2() -> ComposeTool {
        ComposeTool {
            program: vec!["docker".into(), "compose".into()],
            v2: true,
            version: "2.27.0".into(),
        }
    }

    #[test]
    fn v2_command_never_pulls() {
        let cmd = v2().up_command(
            "demo",
            Path::new("/srv/demo"),
            &["compose.yaml".into(), OVERRIDE.into()],
            &[PathBuf::from("/e/prod.env")],
            &["web".into()],
        );
        assert_eq!(
            cmd.join(" "),
            "docker compose --project-name demo --project-directory /srv/demo -f /srv/demo/compose.yaml -f /srv/demo/airlock.override.yml --env-file /e/prod.env --profile web up -d --pull never"
        );
    }

    #[test]
    fn v1_command_has_no_pull_flag() {
        let cmd = v1().up_command(
            "demo",
            Path::new("/srv/demo"),
            &["compose.yaml".into()],
            &[],
            &[],
        );
        assert_eq!(
            cmd.join(" "),
            "docker-compose --project-name demo --project-directory /srv/demo -f /srv/demo/compose.yaml up -d"
        );
    }

    #[test]
    fn old_v2_has_no_pull_flag() {
        let t = ComposeTool {
            version: "2.6.1".into(),
            ..v2()
        };
        assert!(
            !t.up_command("p", Path::new("/d"), &[], &[], &[])
                .contains(&"--pull".to_string())
        );
    }

    #[test]
    fn override_maps_pinned_services() {
        let pinned =
            BTreeMap::from([("web".to_string(), "nginx:airlock-e3b0c44298fc".to_string())]);
        let y = override_yaml(&["db".into(), "web".into()], &pinned, Some("3.8"));
        assert!(y.contains("version: \"3.8\"\nservices:\n  db:\n    pull_policy: never\n  web:\n    pull_policy: never\n    image: nginx:airlock-e3b0c44298fc\n"), "{y}");
        let parsed = super::super::check::overrides_in_text(&y);
        assert_eq!(
            parsed.get("web").map(String::as_str),
            Some("nginx:airlock-e3b0c44298fc")
        );
    }

    #[test]
    fn entry_files_skip_extended_ones() {
        let files = vec![
            "compose.yaml".to_string(),
            "common.yml".to_string(),
            "compose.override.yaml".to_string(),
        ];
        let contents = BTreeMap::from([
            (
                "compose.yaml".to_string(),
                b"services:\n  a:\n    extends:\n      file: common.yml\n      service: base\n"
                    .to_vec(),
            ),
            (
                "common.yml".to_string(),
                b"services:\n  base:\n    image: x\n".to_vec(),
            ),
            (
                "compose.override.yaml".to_string(),
                b"services:\n  a:\n    ports: []\n".to_vec(),
            ),
        ]);
        assert_eq!(
            entry_files(&files, &contents),
            ["compose.yaml", "compose.override.yaml"]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(
            compose_version("version: '3.8'\nservices: {}\n").as_deref(),
            Some("3.8")
        );
        assert_eq!(compose_version("services: {}\n"), None);
        assert!(!safe_rel("../x") && !safe_rel("/x") && safe_rel("a/.env"));
    }
}
