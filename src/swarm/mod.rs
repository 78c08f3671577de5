//! Docker Swarm: `airlock up BUNDLE --swarm` deploys a bundle as a stack on a Swarm manager,
//! with no registry access, and `check --swarm` checks it.
//!
//! `bundle::read::open_meta` -> `stage::open` (the project, planned) -> refuse, before
//! anything changes, what Swarm cannot run (`plan::swarm` errors) and images the bundle
//! lacks (exit 2) -> the engine must be a Swarm manager (exit 3) -> `bundle::verify` (every
//! byte; `--key` is checked by the caller first) -> the compose files written to DIR (as
//! `up` does) -> images reachable from every node: `serving` (`airlock serve` started
//! detached on the manager, reused while it serves the same bundles; a delta is served
//! over its base) or `push::push` into `--registry` -> `render` (compose format 3.8,
//! every image `HOST:PORT/repo@sha256:<manifest digest>`) -> `docker stack deploy
//! --resolve-image never` (skipped when the stack file is unchanged and every service has
//! converged) -> `cluster::wait_converged` -> `check`. What was deployed is recorded in
//! `DIR/.airlock-swarm.json` for `check --swarm`. Driven by `cli::up` and `cli::check`.

pub mod check;
pub mod cluster;
pub mod objects;
pub mod render;
pub mod serving;

use crate::bundle::read::Bundle;
use crate::error::{Class, Classified, Classify, Context as _};
use crate::plan::{Finding, Level};
use crate::progress::Reporter;
use crate::serve::{Catalog, CatalogOptions};
use crate::stage::StageOptions;
use check::{SwarmCheckOptions, SwarmReport};
use serving::Serving;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The stack file `up --swarm` writes next to the compose files.
pub const STACK_FILE: &str = "airlock.stack.yml";
/// What `up --swarm` records for `check --swarm`.
pub const SWARM_STATE: &str = ".airlock-swarm.json";
/// Where `airlock serve` listens by default: engines pull over plain HTTP from 127.0.0.0/8
/// without any daemon.json change.
pub const DEFAULT_SERVE_ADDR: &str = "127.0.0.1:5000";

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("The engine at `{host}` is not part of a Swarm (state: {state})")]
    NotInSwarm { host: String, state: String },
    #[error("The engine at `{host}` is a Swarm worker; stacks are deployed on a manager")]
    NotManager { host: String },
    #[error("Swarm cannot run bundle `{}` as it is; nothing was deployed:\n  {}", bundle.display(), problems.join("\n  "))]
    Refused {
        bundle: PathBuf,
        problems: Vec<String>,
    },
    #[error("{} image(s) the stack needs are not in bundle `{}`; nothing was deployed:\n  {}", missing.len(), bundle.display(), missing.join("\n  "))]
    MissingImages {
        bundle: PathBuf,
        missing: Vec<String>,
    },
    #[error("Delta bundle `{}` needs its base: {} blob(s) are in none of the bundles served (first: `{first}`)", bundle.display(), count)]
    NeedsBase {
        bundle: PathBuf,
        count: usize,
        first: String,
    },
    #[error("Cannot keep `airlock serve` running: {message}")]
    Serve { message: String },
    #[error("`{command}` failed ({status}); the stack may be partly deployed. docker said:\n  {}", lines.join("\n  "))]
    Deploy {
        command: String,
        status: String,
        lines: Vec<String>,
    },
    #[error("Cannot run the docker CLI (`docker stack deploy` needs it): {message}")]
    NoCli { message: String },
    #[error("`{}` was not written by `airlock up --swarm` (no {SWARM_STATE})", dir.display())]
    NoState { dir: PathBuf },
    #[error("Cannot read the file `{}` of {kind} `{name}`; nothing was deployed: {message}", path.display())]
    ObjectFile {
        kind: String,
        name: String,
        path: PathBuf,
        message: String,
    },
}

impl Classify for SwarmError {
    fn class(&self) -> Class {
        match self {
            SwarmError::NotInSwarm { .. }
            | SwarmError::NotManager { .. }
            | SwarmError::Serve { .. }
            | SwarmError::NoCli { .. } => Class::Environment,
            SwarmError::Refused { .. }
            | SwarmError::MissingImages { .. }
            | SwarmError::NeedsBase { .. }
            | SwarmError::NoState { .. }
            | SwarmError::ObjectFile { .. } => Class::Input,
            SwarmError::Deploy { .. } => Class::Failed,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            SwarmError::NotInSwarm { .. } => Some(
                "make this engine a manager first: `docker swarm init --advertise-addr <an address the other nodes reach>`".into(),
            ),
            SwarmError::NotManager { .. } => Some("run airlock on a manager node (`docker node ls` there lists the nodes)".into()),
            SwarmError::Refused { .. } => Some("`airlock plan --swarm` lists every finding with its fix".into()),
            SwarmError::NeedsBase { .. } => Some(
                "give the base bundle with --base BASE, or run `up --swarm` on the base first (the delta is then served over it)".into(),
            ),
            SwarmError::NoCli { .. } => Some("install the docker CLI on the manager".into()),
            SwarmError::NoState { .. } => Some("run `airlock up BUNDLE --swarm` first, or name the stack with -p".into()),
            SwarmError::ObjectFile { .. } => Some("`airlock plan` lists the run files a bundle does not carry; copy the file into the stack's directory".into()),
            _ => None,
        }
    }
}

/// Everything `up --swarm` takes.
#[derive(Debug, Clone)]
pub struct SwarmOptions {
    /// The bundle file (plain tar: serving and pushing need random access).
    pub bundle: PathBuf,
    /// For a delta bundle: its base, served beneath it (default: the bundles served for
    /// this stack before, when the delta's base is among them).
    pub base: Option<PathBuf>,
    /// Where to put the compose files and the stack file (default: `./<project name>`).
    pub dir: Option<PathBuf>,
    /// Environment files for interpolation instead of `DIR/.env`.
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable (empty: the profiles the bundle was packed with).
    pub profiles: Vec<String>,
    /// How long to wait for every service to converge.
    pub timeout: Duration,
    /// URLs to probe after the deploy (empty: the default probe).
    pub http: Vec<String>,
    /// Where `airlock serve` listens (default: the address used before for this stack, else
    /// `127.0.0.1:5000`; port 0 picks a free port).
    pub serve_addr: Option<String>,
    /// The `host:port` nodes pull from, when it differs from the listen address (listening
    /// on 0.0.0.0).
    pub serve_advertise: Option<String>,
    /// Push into this registry (`host[:port][/prefix]`) instead of serving.
    pub registry: Option<String>,
    /// TLS and credentials for `registry`.
    pub registry_options: crate::registry::Options,
}

impl Default for SwarmOptions {
    /// No bundle, no base, `./<project>`, no env files, the bundle's profiles, 300 s, default
    /// probes, serve on 127.0.0.1:5000, no registry.
    fn default() -> Self {
        SwarmOptions {
            bundle: PathBuf::new(),
            base: None,
            dir: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            timeout: Duration::from_secs(300),
            http: Vec::new(),
            serve_addr: None,
            serve_advertise: None,
            registry: None,
            registry_options: crate::registry::Options::default(),
        }
    }
}

/// What `up --swarm` records in `DIR/.airlock-swarm.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwarmState {
    pub stack: String,
    /// Services of the stack file (compose names).
    pub services: Vec<String>,
    /// The stack file, relative to the directory.
    pub file: String,
    /// sha256 of the stack file deployed last.
    pub deployed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Serving>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

impl SwarmState {
    pub fn read(dir: &Path) -> crate::error::Result<SwarmState> {
        let path = dir.join(SWARM_STATE);
        let text = fs_err::read_to_string(&path).map_err(|_| SwarmError::NoState {
            dir: dir.to_path_buf(),
        })?;
        serde_json::from_str(&text).with_context(|| format!("Cannot read `{}`", path.display()))
    }
}

/// What `up --swarm` did.
#[derive(Debug, serde::Serialize)]
pub struct Deployed {
    pub bundle: PathBuf,
    pub stack: String,
    pub dir: PathBuf,
    /// The stack file deployed.
    pub file: PathBuf,
    /// Service -> the digest-pinned image it runs.
    pub images: BTreeMap<String, String>,
    /// `serve` or `registry`.
    pub source: String,
    /// Where the nodes pull from (`127.0.0.1:5000`).
    pub pull_from: String,
    /// `airlock serve` started by this run (false: reused, or a registry).
    pub serve_started: bool,
    /// The `docker stack deploy` command line, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Every service converged within the timeout.
    pub converged: bool,
    /// Findings of `plan --swarm` (warnings and infos: what Swarm does differently).
    pub findings: Vec<Finding>,
    pub check: SwarmReport,
}

impl Deployed {
    pub fn ok(&self) -> bool {
        self.check.ok
    }
}

/// The bundles a stack is served from: the bundle, then (for a delta) its base, given or
/// found among the bundles served before.
fn bundles_to_serve(
    bundle: &Path,
    meta: &crate::bundle::read::Meta,
    base: Option<&Path>,
    previous: Option<&Serving>,
) -> crate::error::Result<(Vec<PathBuf>, Vec<String>)> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut bundles = vec![abs(bundle)];
    let mut ids = vec![crate::digest::Digest::of(&meta.meta_bytes).to_string()];
    if let Some(b) = base {
        let m = Bundle::open(b)?
            .open_meta()
            .with_context(|| format!("Cannot read base `{}`", b.display()))?;
        bundles.push(abs(b));
        ids.push(crate::digest::Digest::of(&m.meta_bytes).to_string());
    } else if let (Some(delta), Some(prev)) = (&meta.meta.base, previous) {
        // The base and whatever it was layered over (a chain of deltas).
        if let Some(i) = prev.ids.iter().position(|id| *id == delta.id) {
            bundles.extend(prev.bundles[i..].iter().cloned());
            ids.extend(prev.ids[i..].iter().cloned());
        }
    }
    Ok((bundles, ids))
}

/// The digest-pinned name of each service's image at `prefix`, from the catalog.
fn pinned_images(
    catalog: &Catalog,
    project: &crate::compose::Project,
    prefix: &str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, svc) in &project.services {
        let Some(image) = &svc.image else { continue };
        let wanted = crate::reference::Reference::parse(image).ok();
        let found = catalog
            .images
            .iter()
            .filter(|i| {
                i.bundle == 0
                    || !catalog
                        .images
                        .iter()
                        .any(|j| j.bundle == 0 && j.reference == i.reference)
            })
            .find(|i| {
                i.reference == *image
                    || wanted
                        .as_ref()
                        .is_some_and(|w| w.normalized() == i.parsed.normalized())
            });
        if let Some(i) = found {
            out.insert(
                name.clone(),
                format!("{prefix}/{}@{}", i.repository, i.top.digest),
            );
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::digest::Digest::of(bytes).to_string()
}

/// Deploy the bundle's project as a stack. Steps and warnings go to `reporter`.
pub fn up(opts: &SwarmOptions, reporter: Arc<dyn Reporter>) -> crate::error::Result<Deployed> {
    let (meta, dir) = crate::stage::target(&opts.bundle, opts.dir.as_deref(), "a stack needs one")?;
    let stack = meta.meta.project.clone();
    let staged = crate::stage::open(
        &meta,
        &StageOptions {
            env_from: Some(dir.clone()),
            env_files: opts.env_files.clone(),
            profiles: opts.profiles.clone(),
        },
    )
    .context("Cannot open the bundle's compose project")?;

    // What Swarm cannot run, and images the bundle lacks: refused before anything changes.
    let findings = crate::plan::swarm::findings(&staged.project);
    let problems: Vec<String> = findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .map(|f| format!("{} ({}); fix: {}", f.message, f.code, f.fix))
        .collect();
    if !problems.is_empty() {
        return Err(SwarmError::Refused {
            bundle: opts.bundle.clone(),
            problems,
        }
        .into());
    }
    let mut missing: Vec<String> = staged
        .plan
        .images
        .iter()
        .filter(|i| i.kind == crate::plan::Kind::Image && !crate::stage::carried(&meta, i))
        .map(|i| format!("{} (services: {})", i.reference, i.services.join(", ")))
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        return Err(SwarmError::MissingImages {
            bundle: opts.bundle.clone(),
            missing,
        }
        .into());
    }

    let rt = crate::runtime::build(crate::runtime::Workers::Two)?;
    let engine = rt.block_on(crate::engine::connect())?;
    let node = rt.block_on(cluster::manager(&engine))?;
    reporter.step(&format!(
        "Swarm manager {} ({} node(s), {} manager(s))",
        node.node_addr, node.nodes, node.managers
    ));
    let previous: Option<SwarmState> = SwarmState::read(&dir).ok();
    let (bundles, ids) = bundles_to_serve(
        &opts.bundle,
        &meta,
        opts.base.as_deref(),
        previous.as_ref().and_then(|p| p.serving.as_ref()),
    )?;

    reporter.step(&format!("verifying {}", opts.bundle.display()));
    let verified = crate::bundle::verify::verify(
        &opts.bundle,
        &crate::bundle::verify::VerifyOptions::default(),
        Arc::new(crate::progress::Silent),
    )?;
    if !verified.ok() {
        let lines: Vec<String> = verified.problems.iter().map(|p| format!("{p:?}")).collect();
        return Err(Classified::failed(format!(
            "Bundle `{}` failed verification; nothing was deployed:\n  {}",
            opts.bundle.display(),
            lines.join("\n  ")
        ))
        .into());
    }
    let catalog = Catalog::open(&bundles, &CatalogOptions::default())
        .with_context(|| format!("Cannot index `{}`", opts.bundle.display()))?;
    let absent: Vec<String> = catalog
        .images
        .iter()
        .filter(|i| i.bundle == 0)
        .flat_map(|i| i.blobs.iter())
        .filter(|d| !catalog.blobs.contains_key(*d))
        .map(|d| d.to_string())
        .collect();
    if !absent.is_empty() {
        return Err(SwarmError::NeedsBase {
            bundle: opts.bundle.clone(),
            count: absent.len(),
            first: absent[0].clone(),
        }
        .into());
    }

    fs_err::create_dir_all(&dir)?;
    let written = crate::up::files::write_files(&meta, &dir, reporter.as_ref())?;
    if !written.is_empty() {
        reporter.step(&format!(
            "wrote {} into {}",
            written.join(", "),
            dir.display()
        ));
    }
    // The project as it reads in DIR, so that bind mounts point there.
    let project = crate::compose::load(&crate::compose::LoadOptions {
        files: staged.files.iter().map(|f| dir.join(f)).collect(),
        project_directory: Some(dir.clone()),
        env_files: opts
            .env_files
            .iter()
            .map(|e| std::path::absolute(e).unwrap_or_else(|_| e.clone()))
            .collect(),
        profiles: staged.profiles.clone(),
        project_name: Some(stack.clone()),
        ..Default::default()
    })
    .context("Cannot load the compose files written")?;

    // Every node must reach every image: a registry, or airlock serve on this manager.
    let (source, pull_from, serving, serve_started) = match &opts.registry {
        Some(registry) => {
            reporter.step(&format!("pushing {} to {registry}", opts.bundle.display()));
            let pushed = crate::push::push(
                &crate::push::PushOptions {
                    bundle: opts.bundle.clone(),
                    to: registry.clone(),
                    registry: opts.registry_options.clone(),
                    // A delta's or patch's base: the layers it does not carry.
                    base: bundles.get(1).cloned(),
                    ..Default::default()
                },
                reporter.clone(),
            )?;
            ("registry".to_string(), pushed.target, None, false)
        }
        None => {
            let prev = previous.as_ref().and_then(|p| p.serving.clone());
            let listen = opts
                .serve_addr
                .clone()
                .or_else(|| prev.as_ref().map(|p| p.listen.clone()))
                .unwrap_or_else(|| DEFAULT_SERVE_ADDR.to_string());
            let reuse = prev.as_ref().filter(|p| {
                p.ids == ids
                    && (opts.serve_addr.is_none()
                        || opts.serve_addr.as_deref() == Some(p.listen.as_str()))
                    && (p.pid == 0 || serving::alive(p.pid))
            });
            let reuse = match reuse {
                Some(p) if rt.block_on(serving::answers(&p.listen)) => Some(p.clone()),
                _ => None,
            };
            match reuse {
                Some(p) => {
                    reporter.step(&format!(
                        "airlock serve (pid {}) already serves this bundle on {}",
                        p.pid, p.listen
                    ));
                    ("serve".to_string(), p.advertise.clone(), Some(p), false)
                }
                None => {
                    if let Some(p) = prev.as_ref().filter(|p| p.pid != 0) {
                        reporter.step(&format!(
                            "stopping airlock serve (pid {}) on {}",
                            p.pid, p.listen
                        ));
                        serving::stop(p);
                    }
                    // A server the operator runs there (the systemd unit) that has every
                    // image of this bundle is used as it is.
                    let wanted: Vec<(String, String)> = catalog
                        .images
                        .iter()
                        .filter(|i| i.bundle == 0)
                        .map(|i| (i.repository.clone(), i.top.digest.to_string()))
                        .collect();
                    let external = !listen.ends_with(":0")
                        && rt.block_on(serving::answers(&listen))
                        && rt.block_on(serving::serves(&listen, &wanted));
                    if external {
                        let advertise = opts
                            .serve_advertise
                            .clone()
                            .unwrap_or_else(|| listen.clone());
                        reporter.step(&format!(
                            "a registry on {listen} that airlock up did not start serves every image of this bundle; using it"
                        ));
                        let s = Serving {
                            pid: 0,
                            listen: listen.clone(),
                            advertise: advertise.clone(),
                            bundles: bundles.clone(),
                            ids: ids.clone(),
                            log: PathBuf::new(),
                        };
                        ("serve".to_string(), advertise, Some(s), false)
                    } else {
                        reporter.step(&format!(
                            "starting airlock serve for {} bundle(s) on {listen}",
                            bundles.len()
                        ));
                        let s = serving::start(
                            &dir,
                            &bundles,
                            &ids,
                            &listen,
                            opts.serve_advertise.as_deref(),
                        )?;
                        reporter.step(&format!(
                            "airlock serve (pid {}) listens on {}; nodes pull from {}",
                            s.pid, s.listen, s.advertise
                        ));
                        ("serve".to_string(), s.advertise.clone(), Some(s), true)
                    }
                }
            }
        }
    };

    let images = pinned_images(&catalog, &project, &pull_from);
    let unpinned: Vec<String> = project
        .services
        .keys()
        .filter(|s| !images.contains_key(*s))
        .cloned()
        .collect();
    if !unpinned.is_empty() {
        return Err(SwarmError::MissingImages {
            bundle: opts.bundle.clone(),
            missing: unpinned
                .iter()
                .map(|s| format!("the image of service `{s}`"))
                .collect(),
        }
        .into());
    }
    let objects = objects::definitions(&project, &stack)?;
    let file = render::stack_file(&project, &images, &objects);
    let text = render::to_yaml(
        &file,
        &format!(
            "Written by `airlock up --swarm` from bundle {}: compose file format {} for `docker stack deploy`;\nevery image pinned by digest on {pull_from}. Edit the compose files, not this file.",
            opts.bundle
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            render::VERSION
        ),
    );
    let stack_path = dir.join(STACK_FILE);
    crate::up::files::write_if_changed(&stack_path, text.as_bytes())?;
    let fingerprint = sha256_hex(text.as_bytes());
    let services: Vec<String> = project.services.keys().cloned().collect();
    let mut state = SwarmState {
        stack: stack.clone(),
        services: services.clone(),
        file: STACK_FILE.to_string(),
        deployed: previous.as_ref().and_then(|p| p.deployed.clone()),
        serving: serving.clone(),
        registry: opts.registry.as_ref().map(|_| pull_from.clone()),
    };
    let write_state = |state: &SwarmState| -> crate::error::Result<()> {
        crate::up::files::write_if_changed(
            &dir.join(SWARM_STATE),
            serde_json::to_string_pretty(state)?.as_bytes(),
        )?;
        Ok(())
    };
    write_state(&state)?;

    let unchanged = state.deployed.as_deref() == Some(fingerprint.as_str()) && {
        let now = rt.block_on(cluster::stack(&engine, &stack))?;
        services
            .iter()
            .all(|s| now.iter().any(|n| &n.service == s && n.converged()))
    };
    let command = if unchanged {
        reporter.step("the stack runs this stack file already; nothing to change");
        None
    } else {
        let mut command: Vec<String> = ["docker", "stack", "deploy", "--compose-file"]
            .iter()
            .map(|s| s.to_string())
            .chain([
                stack_path.display().to_string(),
                "--resolve-image".into(),
                "never".into(),
            ])
            .collect();
        if opts.registry.is_some() {
            // The nodes pull from the site's registry with the manager's credentials.
            command.push("--with-registry-auth".into());
        }
        command.push(stack.clone());
        reporter.step(&format!("$ {}", command.join(" ")));
        let ran = crate::up::runner::run(&command, &dir).map_err(|e| SwarmError::NoCli {
            message: e.to_string(),
        })?;
        if !ran.status.success() {
            return Err(SwarmError::Deploy {
                command: command.join(" "),
                status: ran.status.to_string(),
                lines: ran.last_lines,
            }
            .into());
        }
        state.deployed = Some(fingerprint);
        write_state(&state)?;
        Some(command)
    };
    let converged = rt.block_on(cluster::wait_converged(
        &engine,
        &stack,
        &services,
        opts.timeout,
        reporter.as_ref(),
    ))?;
    if !converged {
        reporter.warn(&format!(
            "not every service converged within {:?}",
            opts.timeout
        ));
    }
    let check_opts = SwarmCheckOptions {
        stack: stack.clone(),
        services: Some(services),
        serving: serving.clone(),
        registry: state.registry.clone(),
        http: opts.http.clone(),
        ..Default::default()
    };
    let report = rt.block_on(check::check(&engine, &check_opts))?;
    Ok(Deployed {
        bundle: opts.bundle.clone(),
        stack,
        dir,
        file: stack_path,
        images,
        source,
        pull_from,
        serve_started,
        command,
        converged,
        findings: findings
            .into_iter()
            .filter(|f| f.level != Level::Info)
            .collect(),
        check: report,
    })
}

/// Check a deployed stack: from the state `up --swarm` left in `dir`, or stack `name`.
pub fn check_stack(
    dir: Option<&Path>,
    name: Option<&str>,
    http: &[String],
    show_lines: usize,
) -> crate::error::Result<SwarmReport> {
    let state = match dir {
        Some(d) => Some(SwarmState::read(d)?),
        None => None,
    };
    let stack = match (&state, name) {
        (_, Some(n)) => n.to_string(),
        (Some(s), None) => s.stack.clone(),
        (None, None) => {
            return Err(SwarmError::NoState {
                dir: std::env::current_dir().unwrap_or_default(),
            }
            .into());
        }
    };
    let opts = SwarmCheckOptions {
        stack,
        services: state.as_ref().map(|s| s.services.clone()),
        serving: state.as_ref().and_then(|s| s.serving.clone()),
        registry: state.as_ref().and_then(|s| s.registry.clone()),
        http: http.to_vec(),
        show_lines,
        ..Default::default()
    };
    let rt = crate::runtime::build(crate::runtime::Workers::Two)?;
    rt.block_on(async {
        let engine = crate::engine::connect().await?;
        cluster::manager(&engine).await?;
        check::check(&engine, &opts).await
    })
}
