//! Findings: owns `Finding` and `Level` and says what may break or degrade the deployment
//! offline, with one line on what to do: the loader's warnings, what builds left unseen
//! (`images::BuildNote`), moving and digest-pinned tags, run files a bundle cannot carry,
//! pull policies, platform mismatches, stateful images without a volume and undeclared
//! dependencies. Reads the project, the parsed `Target`s and the discovered images; never
//! fails the plan. The codes are listed in docs/json.md.

use super::images::{BuildNote, Discovery, Kind};
use super::{PlanOptions, Target, rel};
use crate::compose::{Project, Service};
use crate::reference::{Pinned, Reference};
use std::collections::{BTreeMap, BTreeSet};

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
    findings: Vec<Finding>,
}

impl Collector<'_> {
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

/// Every finding of the plan, sorted by (level, code, service, message), without duplicates.
pub(super) fn collect(
    project: &Project,
    targets: &[Target<'_>],
    discovery: &Discovery,
    run_files: &[crate::run_files::Assessed],
    opts: &PlanOptions,
) -> Vec<Finding> {
    let mut c = Collector {
        project,
        findings: Vec::new(),
    };
    for w in &project.warnings {
        let file = w
            .file
            .as_deref()
            .map(|f| format!(" (in `{}`)", rel(project, f)))
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
    for t in targets {
        service_findings(&mut c, t, opts);
    }
    undeclared_dependencies(&mut c);
    if project.services.is_empty() && !project.disabled_services.is_empty() {
        c.finding(
            Level::Warning,
            "all-services-disabled",
            None,
            format!(
                "every service is behind a profile that is not enabled ({}): the plan has no image",
                project.disabled_services.join(", ")
            ),
            "enable profiles with `--profile NAME` (repeatable; `--profile '*'` for all) or COMPOSE_PROFILES",
        );
    }
    for note in &discovery.notes {
        build_finding(&mut c, note);
    }
    image_findings(&mut c, discovery);
    for f in run_files {
        run_file_finding(&mut c, f);
    }
    let mut findings = c.findings;
    findings.sort_by(|a, b| {
        (a.level, &a.code, &a.service, &a.message).cmp(&(b.level, &b.code, &b.service, &b.message))
    });
    findings.dedup();
    findings
}

/// What a `build:` left unseen, in words.
fn build_finding(c: &mut Collector<'_>, note: &BuildNote) {
    match note {
        BuildNote::Built { service: name } => c.finding(
            Level::Info,
            "built-service",
            Some(name),
            format!("`{name}` is built from a Dockerfile: its base images are in this plan"),
            "bundle the bases (airlock pack does), or build here and pack the built image with `--from-docker`",
        ),
        BuildNote::RemoteContext { service: name, context } => c.finding(
            Level::Warning,
            "remote-build-context",
            Some(name),
            format!("`{name}` builds from the remote context `{context}`: its Dockerfile was not read"),
            "clone the context next to the compose file and point `build.context` at it, or pack the built image with `--from-docker`",
        ),
        BuildNote::DockerfileMissing { service: name, path } => c.finding(
            Level::Error,
            "dockerfile-missing",
            Some(name),
            format!(
                "the Dockerfile `{}` of `{name}` does not exist: its base images are unknown",
                path.display()
            ),
            "fix `build.context` / `build.dockerfile`, or pack the built image with `--from-docker`",
        ),
        BuildNote::UnusedStages { service: name, references } => c.finding(
            Level::Info,
            "unused-stage-base",
            Some(name),
            format!(
                "`{name}` names {} in stages its target does not need: BuildKit skips them, the classic builder (docker-compose 1.x, DOCKER_BUILDKIT=0) builds every stage up to the target",
                references.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
            ),
            "keep them in the bundle unless the offline host builds with BuildKit",
        ),
    }
}

/// Moving tags and digest pins of the images pulled from registries.
fn image_findings(c: &mut Collector<'_>, discovery: &Discovery) {
    for img in &discovery.images {
        let services = img.services.join(",");
        let pulled = img.kind.pulled() && img.kind != Kind::BuildFromUnusedStage;
        match img.pinned() {
            Pinned::Latest if pulled => c.finding(
                Level::Warning,
                "moving-tag",
                Some(&services),
                format!(
                    "`{}` ({}) has no tag or `latest`: the bundle freezes whatever it points to today, and `compose pull` moves it again",
                    img.reference,
                    img.kind.as_str()
                ),
                format!("pin a version: `{}:<version>` (or a digest)", img.reference.familiar_name()),
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
        Some(Reason::ProjectDirectory) => c.finding(
            Level::Warning,
            "run-file-not-carried",
            Some(&services),
            format!("`.` ({what}) is not carried: {}", Reason::ProjectDirectory.describe()),
            "copy the project directory to the offline host, or bind-mount only the files the service needs",
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

fn service_findings(c: &mut Collector<'_>, t: &Target<'_>, opts: &PlanOptions) {
    let s = t.service;
    let platform = &t.platform;
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
    if t.declared_platform && !platform.matches(&opts.platform) {
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
        && let Some(image) = &t.image
    {
        stateful_finding(c, s, image);
    }
    runtime_images(c, s);
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
    // A data directory set by a flag (`etcd --data-dir /etcd`, `mongod --dbpath=/db`).
    if let Some(dir) = data_dir_flag(s) {
        dirs.insert(0, dir);
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

/// A service that mounts the Docker socket starts containers itself: the images named in its
/// `*IMAGE*` environment variables are pulled at run time, so the offline host needs them too.
fn runtime_images(c: &mut Collector<'_>, s: &Service) {
    let docker_sock = s.volumes.iter().any(|m| {
        m.kind == "bind"
            && m.source
                .as_deref()
                .is_some_and(|p| p.ends_with("docker.sock"))
    });
    if !docker_sock {
        return;
    }
    let mut named: Vec<String> = Vec::new();
    for (key, value) in &s.environment {
        let Some(value) = value else { continue };
        if !key.to_ascii_uppercase().contains("IMAGE") {
            continue;
        }
        for word in value.split([',', ' ']).filter(|w| !w.is_empty()) {
            // An image names a tag, digest or repository path (`enabled` is not one).
            if word.contains([':', '/', '@'])
                && !word.contains("://")
                && !word.starts_with(['/', '.'])
                && Reference::parse(word).is_ok()
                && !named.iter().any(|n| n == word)
            {
                named.push(word.to_string());
            }
        }
    }
    if named.is_empty() {
        return;
    }
    let name = s.name.as_str();
    let list = named
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let args = named
        .iter()
        .map(|n| format!("--image {n}"))
        .collect::<Vec<_>>()
        .join(" ");
    c.finding(
        Level::Info,
        "runtime-image",
        Some(name),
        format!("`{name}` mounts the Docker socket and names {list} in its environment: it may pull them at run time, which fails offline"),
        format!("add them to the bundle: `airlock pack {args}`"),
    );
}

/// Flags that set a server's data directory.
const DATA_DIR_FLAGS: &[&str] = &[
    "--data-dir",
    "--datadir",
    "--dbpath",
    "--data-path",
    "--dir",
];

/// The data directory a service's command or entrypoint sets by flag, if any.
fn data_dir_flag(s: &Service) -> Option<String> {
    let argv: Vec<&String> = s.entrypoint.iter().chain(s.command.iter()).collect();
    for (i, w) in argv.iter().enumerate() {
        if let Some((flag, value)) = w.split_once('=')
            && DATA_DIR_FLAGS.contains(&flag)
            && value.starts_with('/')
        {
            return Some(value.to_string());
        }
        if DATA_DIR_FLAGS.contains(&w.as_str())
            && let Some(next) = argv.get(i + 1)
            && next.starts_with('/')
        {
            return Some(next.to_string());
        }
    }
    None
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

/// Whether `to` is reachable from `from` in `graph` (service -> the services it waits for).
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from];
    while let Some(d) = todo.pop() {
        if d == to {
            return true;
        }
        if seen.insert(d)
            && let Some(next) = graph.get(d)
        {
            todo.extend(next.iter().map(String::as_str));
        }
    }
    false
}

/// Services that reach another service's host without waiting for it (directly or through
/// others). The advice never makes a `depends_on` cycle, even when all of it is followed: each
/// suggested edge joins the graph (in service order) only when the other service does not
/// already wait for this one, declared or advised; of two services naming each other, only
/// the first is advised.
fn undeclared_dependencies(c: &mut Collector<'_>) {
    let project = c.project;
    let declared: BTreeMap<String, BTreeSet<String>> = project
        .services
        .values()
        .map(|s| (s.name.clone(), s.depends_on.keys().cloned().collect()))
        .collect();
    // The declared edges and the advice given so far.
    let mut graph = declared.clone();
    for s in project.services.values() {
        for (other, key) in named_services(project, s) {
            if reaches(&declared, &s.name, &other) || reaches(&graph, &other, &s.name) {
                continue;
            }
            graph
                .entry(s.name.clone())
                .or_default()
                .insert(other.clone());
            let name = s.name.as_str();
            c.finding(
                Level::Warning,
                "undeclared-dependency",
                Some(name),
                format!("`{name}` reaches `{other}` (in `{key}`) without `depends_on`: it may start first and fail to connect"),
                format!("add `depends_on: [{other}]` to `{name}`"),
            );
        }
    }
}

/// The other services whose host `s` names in its environment, command or entrypoint, each
/// with the first setting that names it (linear in the words, not in the services).
fn named_services(project: &Project, s: &Service) -> BTreeMap<String, String> {
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
                // `-h db` is a host; `sh -c 'script'` is a command, not a setting named `-c`.
                let key = match prev {
                    "-h" => "host",
                    "-c" => "command",
                    p => p,
                };
                words.push((key.to_string(), w.to_string()));
            }
        }
    }
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in &words {
        for host in named_hosts(key, value) {
            if host != s.name && project.services.contains_key(host) {
                found.entry(host.to_string()).or_insert_with(|| key.clone());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
