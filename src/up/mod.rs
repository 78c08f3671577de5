//! The up pipeline (`airlock up BUNDLE`): from a bundle to a started, checked project.
//!
//! `bundle::read::open_meta` -> `stage::open` (the compose project as Compose will see it in
//! DIR, staged in a temporary directory so that a refusal changes nothing, and its plan) ->
//! refuse when an image is missing from both the bundle and the engine -> `files` written
//! to DIR (a user's edited env files kept) -> `load` (only what the engine lacks) -> the
//! override file (`compose_override`: `pull_policy: never`, digest-pinned references mapped
//! to local tags) -> `runner` with the CLI `compose_cli` picks (`docker compose up -d --pull never` on v2,
//! `docker-compose up -d` on v1; skipped when nothing changed and everything runs) -> `wait`
//! until every service is running and healthy, or exited 0 -> `check::check`. What was
//! started is recorded in `state` for `check --dir`. Driven by `cli::up`.

pub mod files;
mod load;
pub mod runner;
pub mod state;
pub mod wait;

pub use load::{load_bundle, load_bundle_with};
pub use state::{UP_STATE, UpState};

use crate::check::{CheckOptions, CheckReport};
use crate::compose_override::ComposeOverride;
use crate::engine::load::LoadReport;
use crate::error::Classified;
use crate::error::Context as _;
use crate::progress::Reporter;
use crate::stage::StageOptions;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The override file `up` writes next to the compose files.
pub const OVERRIDE: &str = "airlock.override.yml";

/// Everything `up` takes.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The bundle file (plain tar, compressed, or split).
    pub bundle: PathBuf,
    /// Where to put the compose files (default: `./<project name>`).
    pub dir: Option<PathBuf>,
    /// Environment files for Compose instead of `DIR/.env` (one only on Compose v1).
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable (empty: the profiles the bundle was packed with).
    pub profiles: Vec<String>,
    /// How long to wait for every service to settle.
    pub timeout: Duration,
    /// URLs to probe after start (empty: the default probe of `check`).
    pub http: Vec<String>,
    /// The base bundle a patch bundle's patches apply to (`--base`; default: the engine's
    /// images).
    pub base: Option<PathBuf>,
}

impl Default for UpOptions {
    /// No bundle, `./<project>`, no env file, the bundle's profiles, 300 s, default probes.
    fn default() -> Self {
        UpOptions {
            bundle: PathBuf::new(),
            dir: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            timeout: Duration::from_secs(300),
            http: Vec::new(),
            base: None,
        }
    }
}

/// What `up` did.
#[derive(Debug)]
pub enum Outcome {
    /// Images the project needs are neither in the bundle nor on the engine; nothing was
    /// written, loaded or started.
    Refused(Refusal),
    /// The project was started (or found running unchanged) and checked.
    Ran(Box<Ran>),
}

#[derive(Debug)]
pub struct Refusal {
    pub bundle: PathBuf,
    /// `reference (services: a, b)`, sorted.
    pub missing: Vec<String>,
}

impl Refusal {
    /// The error `up` ends with (class Failed).
    pub fn error(&self) -> Classified {
        Classified::failed(format!(
            "{} image(s) the project needs are neither in bundle `{}` nor on the engine; nothing was changed or started:\n  {}",
            self.missing.len(),
            self.bundle.display(),
            self.missing.join("\n  ")
        ))
    }
}

#[derive(Debug)]
pub struct Ran {
    pub bundle: PathBuf,
    pub project: String,
    pub dir: PathBuf,
    pub tool: crate::compose_cli::ComposeCli,
    /// The `up -d` command line (program first).
    pub command: Vec<String>,
    /// Compose succeeded (or had nothing to do).
    pub compose_ok: bool,
    /// Every service settled within the timeout.
    pub settled: bool,
    pub load: LoadReport,
    pub check: CheckReport,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.check.ok && self.compose_ok
    }
}

/// Start the bundle's project. Steps and warnings go to `reporter`, and so does the byte
/// total of the load. The bundle's signature, when required, is checked by the caller first.
pub fn up(opts: &UpOptions, reporter: Arc<dyn Reporter>) -> crate::error::Result<Outcome> {
    let (meta, dir) = crate::stage::target(
        &opts.bundle,
        opts.dir.as_deref(),
        "use `airlock load` instead",
    )?;
    let project_name = meta.meta.project.clone();
    let tool = crate::compose_cli::chosen()
        .map_err(Classified::input)?
        .ok_or_else(|| {
            Classified::environment(
                "Neither `docker compose` (v2) nor `docker-compose` (v1) runs here; install one of them",
            )
        })?;
    if !tool.v2 && opts.env_files.len() > 1 {
        return Err(Classified::input("docker-compose 1.x takes a single --env-file").into());
    }
    let staged = crate::stage::open(
        &meta,
        &StageOptions {
            env_from: Some(dir.clone()),
            env_files: opts.env_files.clone(),
            profiles: opts.profiles.clone(),
        },
    )
    .context("Cannot open the bundle's compose project")?;
    let (project, plan, files, profiles) = (
        &staged.project,
        &staged.plan,
        &staged.files,
        &staged.profiles,
    );
    // docker-compose 1.x refuses files with keys only Compose v2 reads: say so before anything
    // changes, rather than rewriting the operator's files into something else.
    let texts: Vec<(&str, String)> = files
        .iter()
        .filter_map(|f| {
            meta.compose_files
                .get(f)
                .map(|b| (f.as_str(), String::from_utf8_lossy(b).into_owned()))
        })
        .collect();
    let texts: Vec<(&str, &str)> = texts.iter().map(|(f, t)| (*f, t.as_str())).collect();
    if let Some((file, key)) = runner::unreadable_key(&tool, &texts) {
        return Err(Classified::input(format!(
            "`{file}` in bundle `{}` has a top-level `{key}:`, which docker-compose {} cannot read; nothing was changed. Compose v2 is needed: install the Compose v2 CLI plugin (`docker compose`), or unset {}=v1 where it is installed",
            opts.bundle.display(),
            tool.version,
            crate::compose_cli::CHOICE_VAR
        ))
        .into());
    }
    let rt = crate::runtime::build(crate::runtime::Workers::Two)?;
    rt.block_on(async {
        let engine = crate::engine::connect().await?;

        // Every image the project needs is in the bundle, or (unless pinned by digest) on the engine.
        let mut on_engine = BTreeSet::new();
        for img in &plan.images {
            let r = &img.reference;
            if !crate::stage::carried(&meta, img)
                && r.digest().is_none()
                && engine.image_id(r.original()).await?.is_some()
            {
                on_engine.insert(r.original().to_string());
            }
        }
        let mut missing: Vec<String> = crate::stage::missing(plan, |img| {
            crate::stage::carried(&meta, img) || on_engine.contains(img.reference.original())
        })
        .into_iter()
        .map(|img| format!("{} (services: {})", img.reference, img.services.join(", ")))
        .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            return Ok(Outcome::Refused(Refusal { bundle: opts.bundle.clone(), missing }));
        }

        fs_err::create_dir_all(&dir)?;
        let written = files::write_files(&meta, &dir, reporter.as_ref())?;
        if !written.is_empty() {
            reporter.step(&format!("wrote {} into {}", written.join(", "), dir.display()));
        }
        reporter.step(&format!("loading {} into the engine", opts.bundle.display()));
        let load = load_bundle_with(&engine, &meta, opts.base.as_deref(), reporter.clone()).await.with_context(|| {
            format!(
                "Stopped while loading `{}`: the compose files are in `{}`, nothing was started; run `airlock up` again",
                opts.bundle.display(),
                dir.display()
            )
        })?;

        // Override: never pull; digest-pinned references resolve to local tags.
        let mut pinned = BTreeMap::new();
        for p in &load.pinned {
            for s in &p.services {
                pinned.insert(s.clone(), p.tag.clone());
            }
        }
        let mut all_services: Vec<String> = project.services.keys().cloned().collect();
        all_services.extend(project.disabled_services.iter().cloned());
        let version = files
            .first()
            .and_then(|f| meta.compose_files.get(f))
            .and_then(|b| files::compose_version(&String::from_utf8_lossy(b)));
        let override_text = override_yaml(&all_services, &pinned, version.as_deref());
        files::write_if_changed(&dir.join(OVERRIDE), override_text.as_bytes())?;
        let mut compose_files = files.clone();
        compose_files.push(OVERRIDE.to_string());
        let env_files: Vec<PathBuf> = opts
            .env_files
            .iter()
            .map(|e| std::path::absolute(e).unwrap_or_else(|_| e.clone()))
            .collect();
        let mut state = UpState {
            project: project_name.clone(),
            files: compose_files.clone(),
            env_files: env_files.iter().map(|e| e.display().to_string()).collect(),
            profiles: profiles.clone(),
            compose: if tool.v2 { "v2".into() } else { "v1".into() },
            fingerprint: None,
        };
        state.fingerprint = Some(files::fingerprint(&dir, &state, &meta.meta.compose.env_files));
        let previous: Option<UpState> = fs_err::read_to_string(dir.join(UP_STATE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());

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

        let command = runner::up_command(&tool, &project_name, &dir, &compose_files, &env_files, profiles);
        let services: Vec<String> = project.services.keys().cloned().collect();
        // Nothing new written, loaded or edited, and every service up: starting Compose again
        // would only re-run finished one-shot jobs.
        let unchanged = written.is_empty() && !load.sent && previous.is_some_and(|p| p == state);
        let compose_ok = if unchanged && wait::all_up(&engine, &project_name, &services).await? {
            reporter.step("everything is loaded and running; nothing to change");
            true
        } else {
            reporter.step(&format!("$ {}", command.join(" ")));
            let ran = runner::run(&command, &dir)?;
            files::write_if_changed(&dir.join(UP_STATE), serde_json::to_string_pretty(&state)?.as_bytes())?;
            if !ran.status.success() {
                // Compose has said why it stopped: stop here too, with its words, rather than
                // wait out --timeout for services it never started.
                return Err(Classified::failed(format!(
                    "`{}` failed ({}); airlock stopped without waiting. Compose said:\n  {}",
                    command.join(" "),
                    ran.status,
                    ran.last_lines.join("\n  ")
                ))
                .into());
            }
            true
        };
        let settled = wait::wait_settled(&engine, &project_name, &services, opts.timeout, reporter.as_ref()).await?;
        if !settled {
            reporter.warn(&format!("not every service settled within {:?}", opts.timeout));
        }
        let mut check_opts = CheckOptions::for_project(project, plan.findings.clone(), &pinned);
        check_opts.http = opts.http.clone();
        let check = crate::check::check(&engine, &check_opts).await?;
        Ok(Outcome::Ran(Box::new(Ran {
            bundle: meta.bundle.path.clone(),
            project: project_name.clone(),
            dir: dir.clone(),
            tool: tool.clone(),
            command,
            compose_ok,
            settled,
            load,
            check,
        })))
    })
}

/// The override file: `pull_policy: never` for every service, pinned references mapped to
/// their local tags, and the first compose file's `version:` (docker-compose 1.x checks it).
pub fn override_yaml(
    services: &[String],
    pinned: &BTreeMap<String, String>,
    version: Option<&str>,
) -> String {
    let mut file = ComposeOverride::new(
        "Written by `airlock up`: never pull (everything was loaded from the bundle);\ndigest-pinned images use the local tags `airlock load` created.",
    );
    file.version = version.map(str::to_string);
    for svc in services {
        let entry = file.service(svc);
        entry.pull_never = true;
        entry.image = pinned.get(svc).cloned();
    }
    file.to_yaml()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::read::entry_files;

    #[test]
    fn override_maps_pinned_services() {
        let pinned =
            BTreeMap::from([("web".to_string(), "nginx:airlock-e3b0c44298fc".to_string())]);
        let y = override_yaml(&["db".into(), "web".into()], &pinned, Some("3.8"));
        assert!(y.contains("version: \"3.8\"\nservices:\n  db:\n    pull_policy: never\n  web:\n    pull_policy: never\n    image: \"nginx:airlock-e3b0c44298fc\"\n"), "{y}");
        let parsed = crate::compose_override::images_in(&y);
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
}
