//! The image plan: owns turning a loaded Compose project into the exact set of images it
//! needs (service images, build tags, Dockerfile bases, `COPY --from` images, BuildKit
//! frontends, image volumes, `docker-image://` contexts) and the offline-readiness findings.
//! Reads `compose::Project`, uses `dockerfile` and `reference`; read by `cli::plan` and `pack`.

use crate::compose::{Project, Service};
use crate::dockerfile::{self, Use};
use crate::platform::Platform;
use crate::reference::{Pinned, Reference, ReferenceError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Settings of a plan. `Default`: target `linux/amd64`, builds run on the target platform.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Platform the offline host runs (`--platform`); a service's `platform:` overrides it for that service.
    pub platform: Platform,
    /// Platform of the engine that builds (`BUILDPLATFORM`); `None` = the service's target platform,
    /// which is what an offline host that builds for itself uses.
    pub build_platform: Option<Platform>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            platform: Platform::linux_amd64(),
            build_platform: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("service `{service}` in `{}{}`: {source}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    InvalidReference {
        service: String,
        file: PathBuf,
        /// Line in a Dockerfile.
        line: Option<usize>,
        reference: String,
        #[source]
        source: Box<ReferenceError>,
    },
    #[error("service `{service}`: `{}`: {source}", file.display())]
    Dockerfile {
        service: String,
        file: PathBuf,
        #[source]
        source: Box<dockerfile::Error>,
    },
    #[error("service `{service}`: failed to read the Dockerfile `{}`", path.display())]
    Read {
        service: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("service `{service}` in `{}`: {source}", file.display())]
    Platform {
        service: String,
        file: PathBuf,
        #[source]
        source: crate::platform::PlatformError,
    },
}

impl crate::error::Classify for Error {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Input
    }
}

/// Why the project needs an image (vocabulary of the shared fixtures' README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `image:` of a service without `build:`, an image volume source: pulled.
    Image,
    /// `image:` of a service with `build:`: the name of the locally built image.
    BuildTag,
    /// External base of a FROM in a stage the build needs.
    BuildFrom,
    /// FROM (or `--from`) an image another service of the project builds.
    BuildFromLocal,
    /// FROM / `--from` image of a stage the build target does not need.
    BuildFromUnusedStage,
    /// `COPY --from=` / `RUN --mount=from=` image in a needed stage.
    BuildCopyFrom,
    /// BuildKit frontend of a `# syntax=` directive.
    BuildSyntax,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::BuildTag => "build-tag",
            Kind::BuildFrom => "build-from",
            Kind::BuildFromLocal => "build-from-local",
            Kind::BuildFromUnusedStage => "build-from-unused-stage",
            Kind::BuildCopyFrom => "build-copy-from",
            Kind::BuildSyntax => "build-syntax",
        }
    }

    /// Whether the image comes from a registry (as opposed to being built here).
    pub fn pulled(self) -> bool {
        !matches!(self, Kind::BuildTag | Kind::BuildFromLocal)
    }
}

/// One image of the plan: unique per (kind, reference as written).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanImage {
    /// As written after interpolation / substitution.
    #[serde(rename = "ref")]
    pub reference: String,
    pub normalized: String,
    pub kind: Kind,
    /// Services that need it, sorted.
    pub services: Vec<String>,
    pub pinned: Pinned,
    /// Platforms it is needed for, sorted (the target, a service's `platform:`, a `FROM --platform=`).
    pub platforms: Vec<String>,
    /// Where it is named: `compose.yaml`, `backend/Dockerfile:2`, relative to the project directory.
    pub sources: Vec<String>,
    #[serde(skip)]
    pub parsed: Reference,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Info,
}

/// Something that may break or degrade the deployment offline; never fails the plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub level: Level,
    /// Stable code (listed in docs/json.md).
    pub code: String,
    /// The service (or services, comma-separated) concerned; `null` for the project.
    pub service: Option<String>,
    pub message: String,
    /// One line saying what to do.
    pub fix: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub project: String,
    /// Target platform of the plan.
    pub platform: String,
    pub images: Vec<PlanImage>,
    pub findings: Vec<Finding>,
    /// Host files the services read at run time, and whether a bundle carries them.
    pub run_files: Vec<crate::run_files::Assessed>,
}

impl Plan {
    /// Images that must come from a registry (everything but build tags and local bases), one per
    /// normalised reference.
    pub fn pulled(&self) -> Vec<&PlanImage> {
        let mut seen = BTreeSet::new();
        self.images
            .iter()
            .filter(|i| i.kind.pulled() && seen.insert(i.normalized.clone()))
            .collect()
    }
}

/// Repository names (last path component) of stateful images and their data directories.
const STATEFUL: &[(&str, &[&str])] = &[
    ("mariadb", &["/var/lib/mysql"]),
    ("mysql", &["/var/lib/mysql"]),
    ("percona", &["/var/lib/mysql"]),
    (
        "postgres",
        &["/var/lib/postgresql/data", "/var/lib/postgresql"],
    ),
    (
        "postgis",
        &["/var/lib/postgresql/data", "/var/lib/postgresql"],
    ),
    (
        "timescaledb",
        &["/var/lib/postgresql/data", "/var/lib/postgresql"],
    ),
    ("redis", &["/data"]),
    ("valkey", &["/data"]),
    ("keydb", &["/data"]),
    ("mongo", &["/data/db"]),
    ("elasticsearch", &["/usr/share/elasticsearch/data"]),
    ("opensearch", &["/usr/share/opensearch/data"]),
    ("rabbitmq", &["/var/lib/rabbitmq"]),
    ("influxdb", &["/var/lib/influxdb2", "/var/lib/influxdb"]),
    ("cassandra", &["/var/lib/cassandra"]),
    ("couchdb", &["/opt/couchdb/data"]),
    ("neo4j", &["/data"]),
    ("clickhouse-server", &["/var/lib/clickhouse"]),
    ("etcd", &["/etcd-data", "/var/lib/etcd"]),
];

/// Environment keys whose value is usually a host name.
const HOST_KEYS: &[&str] = &[
    "HOST",
    "SERVER",
    "ADDR",
    "URL",
    "URI",
    "DSN",
    "ENDPOINT",
    "BROKER",
    "CONNECTION",
];

struct Collector<'a> {
    project: &'a Project,
    images: BTreeMap<(String, Kind), PlanImage>,
    findings: Vec<Finding>,
}

impl Collector<'_> {
    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.project.directory)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn add(
        &mut self,
        kind: Kind,
        reference: Reference,
        service: &str,
        platform: &Platform,
        source: String,
    ) {
        let entry = self
            .images
            .entry((reference.original().to_string(), kind))
            .or_insert_with(|| PlanImage {
                reference: reference.original().to_string(),
                normalized: reference.normalized(),
                kind,
                services: Vec::new(),
                pinned: reference.pinned(),
                platforms: Vec::new(),
                sources: Vec::new(),
                parsed: reference,
            });
        for (list, value) in [
            (&mut entry.services, service.to_string()),
            (&mut entry.platforms, platform.to_string()),
            (&mut entry.sources, source),
        ] {
            if !list.contains(&value) {
                list.push(value);
                list.sort();
            }
        }
    }

    fn finding(
        &mut self,
        level: Level,
        code: &str,
        service: Option<&str>,
        message: String,
        fix: impl Into<String>,
    ) {
        self.findings.push(Finding {
            level,
            code: code.to_string(),
            service: service.map(str::to_string),
            message,
            fix: fix.into(),
        });
    }
}

/// Largest Dockerfile read (real ones are a few KiB; the compose loader's limit).
const MAX_DOCKERFILE_BYTES: u64 = crate::compose::MAX_FILE_BYTES;

/// Read a Dockerfile, at most `MAX_DOCKERFILE_BYTES` (a device such as `/dev/zero` reports
/// no size, so the read itself is bounded).
fn read_dockerfile(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs_err::File::open(path)?.take(MAX_DOCKERFILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("Dockerfiles over {MAX_DOCKERFILE_BYTES} bytes are refused"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not valid UTF-8 (byte offset {})", e.utf8_error().valid_up_to()),
        )
    })
}

fn parse_ref(reference: &str, service: &Service, file: &Path) -> Result<Reference, Error> {
    Reference::parse(reference).map_err(|source| Error::InvalidReference {
        service: service.name.clone(),
        file: file.to_path_buf(),
        line: None,
        reference: reference.to_string(),
        source: Box::new(source),
    })
}

/// Build the plan of `project`.
pub fn plan(project: &Project, opts: &PlanOptions) -> Result<Plan, Error> {
    let mut c = Collector {
        project,
        images: BTreeMap::new(),
        findings: Vec::new(),
    };

    for w in &project.warnings {
        let file = w
            .file
            .as_deref()
            .map(|f| format!(" (in `{}`)", c.rel(f)))
            .unwrap_or_default();
        let fix = if w.code == "unset-variable" {
            "set it in `.env`, an `--env-file` or the environment, or give it a default (`${VAR:-value}`)"
        } else {
            "check the compose file"
        };
        c.finding(
            Level::Warning,
            &w.code,
            w.service.as_deref(),
            format!("{}{file}", w.message),
            fix,
        );
    }

    // Images the project builds itself: normalised tag -> service.
    let mut built: BTreeMap<String, String> = BTreeMap::new();
    for (name, s) in &project.services {
        if s.build.is_some() {
            let tag = s
                .image
                .clone()
                .unwrap_or_else(|| format!("{}-{}", project.name, name));
            if let Ok(r) = Reference::parse(&tag) {
                built.insert(r.normalized(), name.clone());
            }
        }
    }

    for (name, s) in &project.services {
        let platform = match &s.platform {
            Some(p) => p.parse::<Platform>().map_err(|source| Error::Platform {
                service: name.clone(),
                file: s.file.clone(),
                source,
            })?,
            None => opts.platform.clone(),
        };
        let compose_source = c.rel(&s.file);
        if let Some(image) = &s.image {
            let r = parse_ref(image, s, &s.file)?;
            let kind = if s.build.is_some() {
                Kind::BuildTag
            } else {
                Kind::Image
            };
            c.add(kind, r, name, &platform, compose_source.clone());
        }
        for source in &s.image_volumes {
            let r = parse_ref(source, s, &s.file)?;
            c.add(
                Kind::Image,
                r,
                name,
                &platform,
                format!("{compose_source} (volume)"),
            );
        }
        if s.build.is_some() {
            build_images(&mut c, s, &platform, opts, &built)?;
        }
        service_findings(&mut c, s, &platform, opts);
    }

    // Per-image findings.
    let images: Vec<PlanImage> = c.images.values().cloned().collect();
    for img in &images {
        let services = img.services.join(",");
        let pulled = img.kind.pulled() && img.kind != Kind::BuildFromUnusedStage;
        match img.pinned {
            Pinned::Latest if pulled => c.finding(
                Level::Warning,
                "moving-tag",
                Some(&services),
                format!(
                    "`{}` ({}) has no tag or `latest`: the bundle freezes whatever it points to today, and `compose pull` moves it again",
                    img.reference,
                    img.kind.as_str()
                ),
                format!("pin a version: `{}:<version>` (or a digest)", img.parsed.familiar_name()),
            ),
            Pinned::Digest if pulled => c.finding(
                Level::Warning,
                "digest-pinned",
                Some(&services),
                format!(
                    "`{}` is pinned by digest: `docker load` into a classic-store engine (Docker < 25, or without the containerd image store) records no repo digest, so the engine cannot find it by that name offline",
                    img.reference
                ),
                "use `airlock serve` (registry mode) on the offline host, or an engine with the containerd image store",
            ),
            _ => {}
        }
    }

    let run_files = crate::run_files::assess(project);
    for f in &run_files {
        run_file_finding(&mut c, f);
    }

    let mut findings = c.findings;
    findings.sort_by(|a, b| {
        (a.level, &a.code, &a.service, &a.message).cmp(&(b.level, &b.code, &b.service, &b.message))
    });
    findings.dedup();
    Ok(Plan {
        project: project.name.clone(),
        platform: opts.platform.to_string(),
        images,
        findings,
        run_files,
    })
}

/// The finding for a run file a bundle cannot carry (see `run_files`).
fn run_file_finding(c: &mut Collector<'_>, f: &crate::run_files::Assessed) {
    use crate::run_files::Reason;
    let services = f.services.join(",");
    let what = match f.kind.as_str() {
        "bind" => format!("bind mount of {}", f.services.join(", ")),
        kind => format!("{kind} of {}", f.services.join(", ")),
    };
    match &f.reason {
        None => {}
        Some(Reason::Missing) if !f.required => {}
        Some(Reason::Missing) if f.kind == "bind" => c.finding(
            Level::Info,
            "run-file-missing",
            Some(&services),
            format!("`{}` ({what}) does not exist: Docker creates an empty directory there", f.path),
            "create it before packing if the service needs its content (the bundle then carries it)",
        ),
        Some(Reason::Missing) => c.finding(
            Level::Error,
            "run-file-missing",
            Some(&services),
            format!("`{}` ({what}) does not exist: Compose refuses to start the service without it", f.path),
            "create it before packing (the bundle then carries it), or mark an env_file `required: false`",
        ),
        Some(Reason::Outside) => c.finding(
            Level::Warning,
            "run-file-outside",
            Some(&services),
            format!("`{}` ({what}) is outside the project directory: the bundle does not carry it", f.path),
            "copy it to the same path on the offline host, or move it into the project directory",
        ),
        Some(reason) => {
            let why = reason.describe();
            c.finding(
                Level::Warning,
                "run-file-not-carried",
                Some(&services),
                format!("`{}` ({what}) is not carried: {why}", f.path),
                "copy it to the offline host yourself; data belongs in a named volume",
            )
        }
    }
}

/// The images a `build:` section needs: its Dockerfile's bases and `additional_contexts` images.
fn build_images(
    c: &mut Collector<'_>,
    s: &Service,
    platform: &Platform,
    opts: &PlanOptions,
    built: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let Some(build) = &s.build else { return Ok(()) };
    let name = s.name.as_str();
    c.finding(
        Level::Info,
        "built-service",
        Some(name),
        format!("`{name}` is built from a Dockerfile: its base images are in this plan"),
        "bundle the bases (airlock pack does), or build here and pack the built image with `--from-docker`",
    );

    // `additional_contexts` that name images: `docker-image://ref`; `service:name` is a local build.
    let mut contexts: BTreeMap<String, String> = BTreeMap::new();
    let mut context_used = BTreeSet::new();
    for (key, value) in &build.additional_contexts {
        contexts.insert(key.clone(), value.clone());
    }

    let (text, dockerfile_path, shown) = if let Some(inline) = &build.dockerfile_inline {
        let shown = format!("{} (dockerfile_inline)", c.rel(&s.file));
        (
            inline.clone(),
            PathBuf::from(format!("{} (dockerfile_inline)", s.file.display())),
            shown,
        )
    } else {
        let Some(context) = &build.context else {
            c.finding(
                Level::Warning,
                "remote-build-context",
                Some(name),
                format!("`{name}` builds from the remote context `{}`: its Dockerfile was not read", build.context_raw),
                "clone the context next to the compose file and point `build.context` at it, or pack the built image with `--from-docker`",
            );
            add_context_images(c, s, platform, &contexts, &context_used)?;
            return Ok(());
        };
        let file = build.dockerfile.as_deref().unwrap_or("Dockerfile");
        let path = context.join(file);
        match read_dockerfile(&path) {
            Ok(text) => {
                let shown = c.rel(&path);
                (text, path, shown)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                c.finding(
                    Level::Error,
                    "dockerfile-missing",
                    Some(name),
                    format!(
                        "the Dockerfile `{}` of `{name}` does not exist: its base images are unknown",
                        path.display()
                    ),
                    "fix `build.context` / `build.dockerfile`, or pack the built image with `--from-docker`",
                );
                add_context_images(c, s, platform, &contexts, &context_used)?;
                return Ok(());
            }
            Err(source) => {
                return Err(Error::Read {
                    service: name.to_string(),
                    path,
                    source,
                });
            }
        }
    };

    let dopts = dockerfile::Options {
        build_args: build
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect(),
        target: build.target.clone(),
        platform: platform.clone(),
        build_platform: opts
            .build_platform
            .clone()
            .unwrap_or_else(|| platform.clone()),
    };
    let analysis = dockerfile::analyze(&text, &dopts).map_err(|source| Error::Dockerfile {
        service: name.to_string(),
        file: dockerfile_path.clone(),
        source: Box::new(source),
    })?;

    let mut unused = Vec::new();
    for u in &analysis.images {
        let mut reference = u.reference.clone();
        // A named context replaces the image of the same name (BuildKit matches the name as written).
        if u.kind != Use::Syntax
            && let Some(value) = contexts.get(&reference)
        {
            context_used.insert(reference.clone());
            match value.strip_prefix("docker-image://") {
                Some(image) => reference = image.to_string(),
                None => continue, // a directory, URL or `service:` context: nothing to pull here
            }
        }
        let r = Reference::parse(&reference).map_err(|source| Error::InvalidReference {
            service: name.to_string(),
            file: dockerfile_path.clone(),
            line: (u.line > 0).then_some(u.line),
            reference: reference.clone(),
            source: Box::new(source),
        })?;
        let kind = match u.kind {
            _ if u.kind != Use::Syntax && built.contains_key(&r.normalized()) => {
                Kind::BuildFromLocal
            }
            Use::From => Kind::BuildFrom,
            Use::CopyFrom => Kind::BuildCopyFrom,
            Use::UnusedStage => Kind::BuildFromUnusedStage,
            Use::Syntax => Kind::BuildSyntax,
        };
        if kind == Kind::BuildFromUnusedStage {
            unused.push(r.original().to_string());
        }
        let image_platform = u
            .platform
            .as_deref()
            .and_then(|p| p.parse::<Platform>().ok())
            .unwrap_or_else(|| platform.clone());
        let source = if u.line > 0 {
            format!("{shown}:{}", u.line)
        } else {
            format!("{shown} (BUILDKIT_SYNTAX)")
        };
        c.add(kind, r, name, &image_platform, source);
    }
    if !unused.is_empty() {
        unused.sort();
        unused.dedup();
        c.finding(
            Level::Info,
            "unused-stage-base",
            Some(name),
            format!(
                "`{name}` names {} in stages its target does not need: BuildKit skips them, the classic builder (docker-compose 1.x, DOCKER_BUILDKIT=0) builds every stage up to the target",
                unused.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
            ),
            "keep them in the bundle unless the offline host builds with BuildKit",
        );
    }
    add_context_images(c, s, platform, &contexts, &context_used)
}

/// `docker-image://` contexts not consumed by a FROM / `--from`: still listed (BuildKit may resolve them).
fn add_context_images(
    c: &mut Collector<'_>,
    s: &Service,
    platform: &Platform,
    contexts: &BTreeMap<String, String>,
    used: &BTreeSet<String>,
) -> Result<(), Error> {
    for (key, value) in contexts {
        if used.contains(key) {
            continue;
        }
        if let Some(image) = value.strip_prefix("docker-image://") {
            let r = parse_ref(image, s, &s.file)?;
            let source = format!(
                "{} (service {}, additional_contexts.{key})",
                c.rel(&s.file),
                s.name
            );
            c.add(Kind::BuildFrom, r, &s.name, platform, source);
        }
    }
    Ok(())
}

fn service_findings(c: &mut Collector<'_>, s: &Service, platform: &Platform, opts: &PlanOptions) {
    let name = s.name.as_str();
    if let Some(policy) = s.pull_policy.as_deref()
        && (matches!(policy, "always" | "daily" | "weekly") || policy.starts_with("every_"))
    {
        c.finding(
            Level::Warning,
            "pull-policy",
            Some(name),
            format!("`{name}` has `pull_policy: {policy}`: Compose contacts the registry on `up`, which fails offline"),
            "set `pull_policy: missing` (or run `docker compose up --pull never` offline)",
        );
    }
    if s.platform.is_some() && !platform.matches(&opts.platform) {
        c.finding(
            Level::Warning,
            "platform-mismatch",
            Some(name),
            format!(
                "`{name}` asks for platform `{platform}` but the plan targets `{}`: Compose treats a loaded image of another platform as missing and re-pulls it",
                opts.platform
            ),
            format!("pack this service's images for `{platform}` (airlock pack does), or remove `platform:`"),
        );
    }
    if s.build.is_none()
        && let Some(image) = s.image.as_deref().and_then(|i| Reference::parse(i).ok())
    {
        stateful_finding(c, s, &image);
    }
    undeclared_dependencies(c, s);
}

fn stateful_finding(c: &mut Collector<'_>, s: &Service, image: &Reference) {
    let repo = image.repository();
    let last = repo.rsplit('/').next().unwrap_or(repo);
    let Some((_, dirs)) = STATEFUL.iter().find(|(n, _)| *n == last) else {
        return;
    };
    let mut dirs: Vec<String> = if repo.starts_with("bitnami/") {
        vec![format!("/bitnami/{last}"), "/bitnami".to_string()]
    } else {
        dirs.iter().map(|d| d.to_string()).collect()
    };
    if let Some(Some(pgdata)) = s.environment.get("PGDATA") {
        dirs.insert(0, pgdata.clone());
    }
    let covers = |target: &str, dir: &str| {
        let t = target.trim_end_matches('/');
        let t = if t.is_empty() { "/" } else { t };
        dir == t
            || dir.starts_with(&format!("{}/", t.trim_end_matches('/')))
            || t.starts_with(&format!("{dir}/"))
    };
    let on_volume = s.volumes.iter().any(|m| {
        matches!(m.kind.as_str(), "volume" | "bind") && dirs.iter().any(|d| covers(&m.target, d))
    });
    if !on_volume {
        let name = s.name.as_str();
        c.finding(
            Level::Warning,
            "stateful-no-volume",
            Some(name),
            format!("`{name}` runs `{}` but its data directory `{}` is not on a volume: data is lost when the container is re-created", image.original(), dirs[0]),
            format!("add `volumes: [\"{name}-data:{}\"]` to `{name}` (and a top-level `volumes: {{{name}-data: {{}}}}`)", dirs[0]),
        );
    }
}

/// The host names `value` names as network addresses: `host:port`, `scheme://host`,
/// `user@host`, or the whole value when `key` looks like a host setting. Candidates are the
/// maximal runs of host characters, so one pass over the value serves every service name.
fn named_hosts<'a>(key: &str, value: &'a str) -> Vec<&'a str> {
    let key = key.to_ascii_uppercase();
    if !value.is_empty()
        && HOST_KEYS.iter().any(|k| key.contains(k))
        && value.bytes().all(is_host_char)
    {
        return vec![value];
    }
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_host_char(bytes[i]) {
            i += 1;
            continue;
        }
        let at = i;
        while i < bytes.len() && is_host_char(bytes[i]) {
            i += 1;
        }
        let (before, run, after) = (&value[..at], &value[at..i], &value[i..]);
        let url_before = before.ends_with("://") || before.ends_with('@');
        let port_after = after
            .strip_prefix(':')
            .is_some_and(|p| p.starts_with(|ch: char| ch.is_ascii_digit()));
        if url_before || port_after {
            out.push(run);
        }
    }
    out
}

fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Whether `value` names `host` (see `named_hosts`).
#[cfg(test)]
fn names_host(key: &str, value: &str, host: &str) -> bool {
    named_hosts(key, value).contains(&host)
}

fn undeclared_dependencies(c: &mut Collector<'_>, s: &Service) {
    let project = c.project;
    // Services started before `s`: depends_on, transitively.
    let mut deps = BTreeSet::new();
    let mut todo: Vec<&str> = s.depends_on.keys().map(String::as_str).collect();
    while let Some(d) = todo.pop() {
        if deps.insert(d.to_string())
            && let Some(ds) = project.services.get(d)
        {
            todo.extend(ds.depends_on.keys().map(String::as_str));
        }
    }
    let mut words: Vec<(String, String)> = s
        .environment
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    let argv: Vec<&String> = s.entrypoint.iter().chain(s.command.iter()).collect();
    for (i, w) in argv.iter().enumerate() {
        match w.split_once('=') {
            Some((k, v)) if k.starts_with('-') => words.push((k.to_string(), v.to_string())),
            _ => {
                let prev = if i > 0 && argv[i - 1].starts_with('-') {
                    argv[i - 1].as_str()
                } else {
                    ""
                };
                let key = if prev == "-h" { "host" } else { prev };
                words.push((key.to_string(), w.to_string()));
            }
        }
    }
    // The first word naming each other service (linear in the words, not in the services).
    let mut found: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in &words {
        for host in named_hosts(key, value) {
            if let Some((other, _)) = project.services.get_key_value(host)
                && other != &s.name
                && !deps.contains(other)
            {
                found.entry(other.as_str()).or_insert(key.as_str());
            }
        }
    }
    let name = s.name.as_str();
    for (other, key) in found {
        c.finding(
            Level::Warning,
            "undeclared-dependency",
            Some(name),
            format!("`{name}` reaches `{other}` (in `{key}`) without `depends_on`: it may start first and fail to connect"),
            format!("add `depends_on: [{other}]` to `{name}`"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Build, DependsOn, Mount};

    fn dir() -> PathBuf {
        std::env::temp_dir()
    }

    fn service(name: &str, image: Option<&str>) -> Service {
        Service {
            name: name.to_string(),
            image: image.map(str::to_string),
            file: dir().join("compose.yaml"),
            ..Service::default()
        }
    }

    fn project(services: Vec<Service>) -> Project {
        Project {
            name: "demo".to_string(),
            directory: dir(),
            services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
            ..Project::default()
        }
    }

    fn inline(name: &str, image: Option<&str>, dockerfile: &str) -> Service {
        Service {
            build: Some(Build {
                dockerfile_inline: Some(dockerfile.to_string()),
                context: Some(dir()),
                ..Build::default()
            }),
            ..service(name, image)
        }
    }

    fn kinds(p: &Plan) -> Vec<String> {
        p.images
            .iter()
            .map(|i| {
                format!(
                    "{} {} {}",
                    i.kind.as_str(),
                    i.reference,
                    i.services.join(",")
                )
            })
            .collect()
    }

    fn codes(p: &Plan) -> Vec<String> {
        p.findings
            .iter()
            .map(|f| format!("{} {}", f.code, f.service.clone().unwrap_or_default()))
            .collect()
    }

    fn run(services: Vec<Service>) -> Plan {
        plan(&project(services), &PlanOptions::default()).unwrap()
    }

    #[test]
    fn service_images_and_build_tags() {
        let p = run(vec![
            service("db", Some("postgres:16")),
            service("cache", Some("redis:7")),
            inline("web", Some("acme/web:1"), "FROM python:3.12\n"),
        ]);
        assert_eq!(
            kinds(&p),
            [
                "build-tag acme/web:1 web",
                "image postgres:16 db",
                "build-from python:3.12 web",
                "image redis:7 cache"
            ]
        );
        let pg = p
            .images
            .iter()
            .find(|i| i.reference == "postgres:16")
            .unwrap();
        assert_eq!(pg.normalized, "docker.io/library/postgres:16");
        assert_eq!(pg.pinned, Pinned::Tag);
    }

    #[test]
    fn shared_image_lists_every_service() {
        let p = run(vec![
            service("a", Some("redis:7")),
            service("b", Some("redis:7")),
        ]);
        assert_eq!(kinds(&p), ["image redis:7 a,b"]);
    }

    #[test]
    fn build_from_local() {
        let p = run(vec![
            inline("base", Some("acme/base:1"), "FROM debian:12\n"),
            inline(
                "app",
                None,
                "FROM acme/base:1\nCOPY --from=demo-tools /x /\n",
            ),
            inline("tools", None, "FROM busybox:1.36\n"),
        ]);
        assert_eq!(
            kinds(&p),
            [
                "build-tag acme/base:1 base",
                "build-from-local acme/base:1 app",
                "build-from busybox:1.36 tools",
                "build-from debian:12 base",
                "build-from-local demo-tools app",
            ]
        );
        assert_eq!(p.pulled().len(), 2);
    }

    #[test]
    fn dockerfile_kinds_and_build_args() {
        let mut s = inline(
            "app",
            None,
            "# syntax=docker/dockerfile:1.7\nARG BASE=alpine:3.19\nFROM ${BASE} AS dev\nFROM dev AS envs\nCOPY --from=tools:1 / /\nFROM nginx:1.27\nCOPY --from=busybox:1.36 / /\n",
        );
        let b = s.build.as_mut().unwrap();
        b.args.insert("BASE".into(), Some("debian:12".into()));
        b.args.insert("UNSET".into(), None);
        b.target = Some("dev".into());
        let p = run(vec![s]);
        assert_eq!(
            kinds(&p),
            [
                "build-from-unused-stage busybox:1.36 app",
                "build-from debian:12 app",
                "build-syntax docker/dockerfile:1.7 app",
                "build-from-unused-stage nginx:1.27 app",
                "build-from-unused-stage tools:1 app",
            ]
        );
        assert!(codes(&p).contains(&"unused-stage-base app".to_string()));
        assert!(codes(&p).contains(&"built-service app".to_string()));
    }

    #[test]
    fn copy_from_in_needed_stage() {
        let p = run(vec![inline(
            "app",
            None,
            "FROM alpine:3\nRUN --mount=from=cache:1,target=/c true\n",
        )]);
        assert_eq!(
            kinds(&p),
            ["build-from alpine:3 app", "build-copy-from cache:1 app"]
        );
    }

    #[test]
    fn dockerfile_from_context() {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::create_dir(tmp.path().join("app")).unwrap();
        fs_err::write(tmp.path().join("app/Dockerfile.prod"), "FROM node:22\n").unwrap();
        let mut s = service("app", None);
        s.build = Some(Build {
            context: Some(tmp.path().join("app")),
            dockerfile: Some("Dockerfile.prod".into()),
            ..Build::default()
        });
        let mut p = project(vec![s]);
        p.directory = tmp.path().to_path_buf();
        let plan = plan(&p, &PlanOptions::default()).unwrap();
        assert_eq!(kinds(&plan), ["build-from node:22 app"]);
        assert_eq!(plan.images[0].sources, ["app/Dockerfile.prod:1"]);
    }

    #[test]
    fn endless_dockerfile_is_refused_at_the_limit() {
        let mut zero = service("z", None);
        zero.build = Some(Build {
            context: Some(PathBuf::from("/dev")),
            dockerfile: Some("zero".into()),
            ..Build::default()
        });
        let err = plan(&project(vec![zero]), &PlanOptions::default()).unwrap_err();
        let text = format!("{err} {:?}", std::error::Error::source(&err));
        assert!(text.contains("/dev/zero") && text.contains("are refused"), "{text}");
    }

    #[test]
    fn missing_dockerfile_and_remote_context_are_findings() {
        let mut missing = service("a", None);
        missing.build = Some(Build {
            context: Some(dir().join("airlock-no-such-dir")),
            ..Build::default()
        });
        let mut remote = service("b", None);
        remote.build = Some(Build {
            context: None,
            context_raw: "https://github.com/acme/app.git#main".into(),
            ..Build::default()
        });
        let p = run(vec![missing, remote]);
        assert!(p.images.is_empty());
        let f = p
            .findings
            .iter()
            .find(|f| f.code == "dockerfile-missing")
            .unwrap();
        assert_eq!(f.level, Level::Error);
        assert!(f.message.contains("airlock-no-such-dir"), "{}", f.message);
        assert!(codes(&p).contains(&"remote-build-context b".to_string()));
    }

    #[test]
    fn additional_contexts() {
        let mut s = inline(
            "app",
            None,
            "FROM base\nFROM alpine:3 AS x\nCOPY --from=src / /\n",
        );
        let b = s.build.as_mut().unwrap();
        b.additional_contexts
            .insert("base".into(), "docker-image://debian:12".into());
        b.additional_contexts.insert("src".into(), "./src".into());
        b.additional_contexts
            .insert("extra".into(), "docker-image://busybox:1.36".into());
        let p = run(vec![s]);
        assert_eq!(
            kinds(&p),
            [
                "build-from alpine:3 app",
                "build-from busybox:1.36 app",
                "build-from-unused-stage debian:12 app"
            ]
        );
    }

    #[test]
    fn image_volumes() {
        let mut s = service("app", Some("nginx:1.27"));
        s.image_volumes = vec!["acme/assets:3".into()];
        assert_eq!(
            kinds(&run(vec![s])),
            ["image acme/assets:3 app", "image nginx:1.27 app"]
        );
    }

    #[test]
    fn invalid_reference_is_an_error_naming_the_service() {
        let err = plan(
            &project(vec![service("web", Some("Nginx:1"))]),
            &PlanOptions::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`web`") && text.contains("compose.yaml") && text.contains("Nginx:1"),
            "{text}"
        );
        let err = plan(
            &project(vec![inline("app", None, "ARG B=UPPER\nFROM ${B}\n")]),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("(dockerfile_inline):2`: invalid image reference `UPPER`"),
            "{err}"
        );
        let err = plan(
            &project(vec![inline("app", None, "ARG B\nFROM ${B}\n")]),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Dockerfile { .. }), "{err}");
    }

    #[test]
    fn tag_findings() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let p = run(vec![
            service("a", Some("nginx")),
            service("b", Some("nginx:latest")),
            service("c", Some(&format!("redis@{d}"))),
            inline("d", Some("acme/d"), "FROM alpine\n"),
        ]);
        assert_eq!(
            codes(&p)
                .into_iter()
                .filter(|c| !c.starts_with("built") && !c.starts_with("stateful"))
                .collect::<Vec<_>>(),
            [
                "digest-pinned c",
                "moving-tag a",
                "moving-tag b",
                "moving-tag d"
            ]
        );
    }

    #[test]
    fn pull_policy_and_platform() {
        let mut a = service("a", Some("nginx:1"));
        a.pull_policy = Some("always".into());
        let mut b = service("b", Some("nginx:1"));
        b.pull_policy = Some("every_12h".into());
        let mut c = service("c", Some("nginx:1"));
        c.pull_policy = Some("missing".into());
        let mut d = service("d", Some("nginx:1"));
        d.platform = Some("linux/arm64".into());
        let mut e = service("e", Some("nginx:1"));
        e.platform = Some("linux/x86_64".into());
        let p = run(vec![a, b, c, d, e]);
        assert_eq!(
            codes(&p),
            ["platform-mismatch d", "pull-policy a", "pull-policy b"]
        );
        assert_eq!(p.images[0].platforms, ["linux/amd64", "linux/arm64"]);
        let mut bad = service("x", Some("nginx:1"));
        bad.platform = Some("linux".into());
        assert!(matches!(
            plan(&project(vec![bad]), &PlanOptions::default()),
            Err(Error::Platform { .. })
        ));
    }

    fn mount(kind: &str, target: &str) -> Mount {
        Mount {
            kind: kind.into(),
            source: Some("data".into()),
            target: target.into(),
            read_only: false,
        }
    }

    #[test]
    fn stateful_without_volume() {
        let mut ok = service("db", Some("mariadb:10.6"));
        ok.volumes = vec![mount("volume", "/var/lib/mysql")];
        let mut tmpfs = service("db2", Some("mysql:8"));
        tmpfs.volumes = vec![mount("tmpfs", "/var/lib/mysql")];
        let none = service("pg", Some("postgres:16"));
        let mut pgdata = service("pg2", Some("postgres:16"));
        pgdata
            .environment
            .insert("PGDATA".into(), Some("/pg".into()));
        pgdata.volumes = vec![mount("bind", "/pg")];
        let mut sub = service("pg3", Some("docker.io/library/postgres:16"));
        sub.volumes = vec![mount("volume", "/var/lib/postgresql/data/pgdata")];
        let mut bitnami = service("r", Some("bitnami/redis:7"));
        bitnami.volumes = vec![mount("volume", "/bitnami/redis/data")];
        let cache = service("c", Some("redis:7-alpine"));
        let p = run(vec![ok, tmpfs, none, pgdata, sub, bitnami, cache]);
        assert_eq!(
            codes(&p),
            [
                "stateful-no-volume c",
                "stateful-no-volume db2",
                "stateful-no-volume pg"
            ]
        );
        assert!(
            p.findings[0].fix.contains("c-data:/data"),
            "{}",
            p.findings[0].fix
        );
    }

    #[test]
    fn undeclared_dependency() {
        let db = service("db", Some("mariadb:10.6"));
        let cache = service("redis-cache", Some("redis:7"));
        let mut web = service("web", Some("acme/web:1"));
        web.environment.insert("DB_HOST".into(), Some("db".into()));
        web.environment.insert("DATABASE".into(), Some("db".into()));
        web.environment
            .insert("CACHE".into(), Some("redis://redis-cache:6379/0".into()));
        let mut worker = service("worker", Some("acme/web:1"));
        worker.depends_on.insert(
            "web".into(),
            DependsOn {
                condition: "service_started".into(),
                required: true,
                restart: false,
            },
        );
        worker.command = vec![
            "wait-for".into(),
            "--host".into(),
            "db".into(),
            "redis-cache-2:1".into(),
        ];
        let mut job = service("job", Some("acme/web:1"));
        job.command = vec!["run".into(), "--db-host=db".into()];
        let mut plain = service("plain", Some("acme/web:1"));
        plain
            .environment
            .insert("MYSQL_DATABASE".into(), Some("db".into()));
        plain
            .environment
            .insert("NAME".into(), Some("mydb:1".into()));
        let started = DependsOn {
            condition: "service_started".into(),
            required: true,
            restart: false,
        };
        let mut mid = service("mid", Some("acme/web:1"));
        mid.depends_on.insert("db".into(), started.clone());
        let mut top = service("top", Some("acme/web:1"));
        top.depends_on.insert("mid".into(), started);
        top.environment.insert("DB_HOST".into(), Some("db".into()));
        let p = run(vec![db, cache, web, worker, job, plain, mid, top]);
        let found: Vec<String> = codes(&p)
            .into_iter()
            .filter(|c| c.starts_with("undeclared"))
            .collect();
        assert_eq!(
            found,
            [
                "undeclared-dependency job",
                "undeclared-dependency web",
                "undeclared-dependency web",
                "undeclared-dependency worker"
            ]
        );
    }

    #[test]
    fn names_host_rules() {
        assert!(names_host("X", "db:3306", "db"));
        assert!(names_host("X", "postgres://u:p@db/x", "db"));
        assert!(names_host("X", "http://db", "db"));
        assert!(names_host("REDIS_HOST", "db", "db"));
        assert!(!names_host("NAME", "db", "db"));
        assert!(!names_host("X", "mydb:3306", "db"));
        assert!(!names_host("X", "db-2:3306", "db"));
        assert!(!names_host("X", "db:abc", "db"));
    }

    #[test]
    fn loader_warnings_become_findings() {
        let mut p = project(vec![service("a", Some("nginx:1"))]);
        p.warnings.push(crate::compose::Warning {
            code: "unset-variable".into(),
            message: "`TAG` is not set; using an empty string".into(),
            file: Some(dir().join("compose.yaml")),
            service: Some("a".into()),
        });
        let plan = plan(&p, &PlanOptions::default()).unwrap();
        let f = &plan.findings[0];
        assert_eq!(
            (f.level, f.code.as_str()),
            (Level::Warning, "unset-variable")
        );
        assert!(f.message.contains("in `compose.yaml`"), "{}", f.message);
    }

    #[test]
    fn json_shape() {
        let p = run(vec![service("db", Some("redis:6.2-alpine"))]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["project"], "demo");
        let img = &v["images"][0];
        assert_eq!(img["ref"], "redis:6.2-alpine");
        assert_eq!(img["normalized"], "docker.io/library/redis:6.2-alpine");
        assert_eq!(img["kind"], "image");
        assert_eq!(img["services"], serde_json::json!(["db"]));
        assert_eq!(img["pinned"], "tag");
        let f = &v["findings"][0];
        assert_eq!(
            (
                f["level"].as_str(),
                f["code"].as_str(),
                f["service"].as_str()
            ),
            (Some("warning"), Some("stateful-no-volume"), Some("db"))
        );
        assert!(f["fix"].is_string() && f["message"].is_string());
    }
}
