//! From the merged YAML tree to `model::Project`: profiles, dependency checks and the typed
//! `Service` fields (build in string or mapping form, args/environment in list or mapping
//! form, depends_on, ports and volumes in short or long syntax). Called by `loader` last.

use super::dotenv::parse_dotenv;
use super::paths::{absolutize, clean_container_path, is_path_source, is_remote_context};
use super::yaml::{Node, Value};
use super::{
    Build, DependsOn, Env, Error, Mount, Port, Project, RunFile, Service, Warning, invalid,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where a service came from: the last compose file that named it, and the last one that set
/// its `image:` (`None`: none did, or it came through `extends`).
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: PathBuf,
    pub image: Option<PathBuf>,
}

/// Build the project (without name, directory and file lists, which `loader` fills in).
pub fn project(
    doc: &Node,
    service_files: &BTreeMap<String, Origin>,
    main_file: &Path,
    project_dir: &Path,
    env: &Env,
    requested: &[String],
) -> Result<Project, Error> {
    let all = all_profiles(doc);
    let everything = requested.iter().any(|p| p == "*");
    let active: BTreeSet<String> = if everything {
        all.clone()
    } else {
        requested.iter().filter(|p| *p != "*").cloned().collect()
    };

    let mut project = Project {
        profiles: active.iter().cloned().collect(),
        ..Project::default()
    };
    let empty = Vec::new();
    let services = doc.get("services").and_then(Node::as_map).unwrap_or(&empty);
    let mut enabled: BTreeMap<String, Service> = BTreeMap::new();
    let mut disabled: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, node) in services {
        let origin = service_files.get(name);
        let file = origin.map_or_else(|| main_file.to_path_buf(), |o| o.file.clone());
        let mut svc = service(name, node, &file, project_dir, env)?;
        svc.image_file = origin.and_then(|o| o.image.clone()).unwrap_or(file);
        let on = svc.profiles.is_empty()
            || everything
            || svc.profiles.iter().any(|p| active.contains(p));
        if on {
            enabled.insert(name.clone(), svc);
        } else {
            disabled.insert(name.clone(), svc.profiles);
        }
    }
    for svc in enabled.values() {
        if svc.image.is_none() && svc.build.is_none() && svc.raw.get("provider").is_none() {
            return Err(Error::NoImage {
                service: svc.name.clone(),
                file: svc.file.clone(),
            });
        }
        for (dep, d) in &svc.depends_on {
            if enabled.contains_key(dep) || !d.required {
                continue;
            }
            match disabled.get(dep) {
                // Compose refuses to start a service whose dependency the profiles disabled.
                Some(profiles) => {
                    let why = format!(
                        "is disabled; enable it with --profile {}",
                        profiles.join(" or --profile ")
                    );
                    return Err(Error::Dependency {
                        service: svc.name.clone(),
                        dependency: dep.clone(),
                        why,
                    });
                }
                // An override file meant to be merged over another names services defined
                // there; images can still be planned, so only warn.
                None => project.warnings.push(Warning {
                    code: "undefined-dependency".into(),
                    message: format!(
                        "service `{}` depends on `{dep}`, which is not defined",
                        svc.name
                    ),
                    file: Some(svc.file.clone()),
                    service: Some(svc.name.clone()),
                }),
            }
        }
    }
    undeclared(doc, &enabled, &mut project.warnings);
    project.run_files = run_files(doc, &enabled, project_dir);
    let defs = &mut project.definitions;
    for (section, into) in [
        ("networks", &mut defs.networks),
        ("volumes", &mut defs.volumes),
        ("configs", &mut defs.configs),
        ("secrets", &mut defs.secrets),
    ] {
        for (name, node) in doc.get(section).and_then(Node::as_map).unwrap_or(&empty) {
            let mut def = node.to_json();
            if let Some(serde_json::Value::String(f)) = def.get_mut("file")
                && !f.starts_with('~')
            {
                *f = absolutize(project_dir, Path::new(f.as_str()))
                    .to_string_lossy()
                    .into_owned();
            }
            into.insert(name.clone(), def);
        }
    }
    project.services = enabled;
    project.disabled_services = disabled.into_keys().collect();
    project.volumes = doc
        .get("volumes")
        .and_then(Node::as_map)
        .map(|m| m.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    Ok(project)
}

/// compose-go's consistency check: the named volumes, networks, configs and secrets an enabled
/// service uses are declared at the top level (the `default` network always is). Compose
/// refuses such a project; airlock warns, as for an undefined dependency, because an override
/// file planned alone names what its base file declares (docs/compose-differences.md).
fn undeclared(doc: &Node, services: &BTreeMap<String, Service>, warnings: &mut Vec<Warning>) {
    let declared = |section: &str, name: &str| {
        doc.get(section)
            .and_then(Node::as_map)
            .is_some_and(|m| m.iter().any(|(k, _)| k == name))
    };
    for svc in services.values() {
        let mut used: Vec<(&'static str, &'static str, String)> = Vec::new();
        for m in svc.volumes.iter().filter(|m| m.kind == "volume") {
            if let Some(name) = m.source.as_ref().filter(|s| !s.is_empty()) {
                used.push(("volume", "volumes", name.clone()));
            }
        }
        match svc.raw.get("networks") {
            Some(serde_json::Value::Array(items)) => {
                for n in items.iter().filter_map(|n| n.as_str()) {
                    used.push(("network", "networks", n.to_string()));
                }
            }
            Some(serde_json::Value::Object(map)) => {
                for n in map.keys() {
                    used.push(("network", "networks", n.clone()));
                }
            }
            _ => {}
        }
        for (kind, section) in [("config", "configs"), ("secret", "secrets")] {
            if let Some(serde_json::Value::Array(items)) = svc.raw.get(section) {
                for i in items {
                    let name = match i {
                        serde_json::Value::String(s) => Some(s.as_str()),
                        serde_json::Value::Object(o) => o.get("source").and_then(|s| s.as_str()),
                        _ => None,
                    };
                    if let Some(n) = name {
                        used.push((kind, section, n.to_string()));
                    }
                }
            }
        }
        for (kind, section, name) in used {
            if (kind == "network" && name == "default") || declared(section, &name) {
                continue;
            }
            warnings.push(Warning {
                code: "undeclared-resource".into(),
                message: format!(
                    "service `{}` uses the {kind} `{name}`, which is not declared under the top-level `{section}:` (docker compose would refuse this project)",
                    svc.name
                ),
                file: Some(svc.file.clone()),
                service: Some(svc.name.clone()),
            });
        }
    }
}

/// The variables of a service's `env_file`s that exist (later files win), interpolated with
/// the project's variables. A missing file is left to `run_files` (a finding).
fn env_file_vars(
    node: &Node,
    project_dir: &Path,
    env: &Env,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    let Some(n) = node.get("env_file") else {
        return Ok(out);
    };
    let items: Vec<&Node> = match &n.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    for i in items {
        let path = match &i.value {
            Value::Map(_) => i.get("path").and_then(Node::text),
            _ => i.text(),
        };
        let Some(path) = path.filter(|p| !p.starts_with('~')) else {
            continue;
        };
        let path = absolutize(project_dir, Path::new(&path));
        let Ok(meta) = fs_err::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > super::MAX_FILE_BYTES {
            continue;
        }
        let Ok(text) = fs_err::read_to_string(&path) else {
            continue;
        };
        let lookup = |k: &str| env.get(k).cloned();
        let vars = parse_dotenv(&text, &lookup).map_err(|e| Error::Dotenv {
            path: path.clone(),
            line: e.line(),
            message: e.to_string(),
        })?;
        out.extend(vars);
    }
    Ok(out)
}

/// Names of every profile any service mentions (for `--profile '*'`).
fn all_profiles(doc: &Node) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(services) = doc.get("services").and_then(Node::as_map) {
        for (_, s) in services {
            if let Some(ps) = s.get("profiles").and_then(Node::as_seq) {
                out.extend(ps.iter().filter_map(Node::text));
            }
        }
    }
    out
}

/// Host paths the enabled services read at run time: `env_file` entries (a string, or a list
/// of strings and `{path, required}`), bind-mount sources, and the `file:` of the top-level
/// configs and secrets a service names. Relative paths resolve against the project directory.
fn run_files(doc: &Node, services: &BTreeMap<String, Service>, project_dir: &Path) -> Vec<RunFile> {
    let mut out: Vec<RunFile> = Vec::new();
    let mut add = |kind: &str, path: &str, service: &str, required: bool| {
        let path = if path.starts_with('~') {
            PathBuf::from(path)
        } else {
            absolutize(project_dir, Path::new(path))
        };
        match out.iter_mut().find(|f| f.path == path && f.kind == kind) {
            Some(f) => {
                if !f.services.iter().any(|s| s == service) {
                    f.services.push(service.to_string());
                }
                f.required |= required;
            }
            None => out.push(RunFile {
                kind: kind.to_string(),
                path,
                services: vec![service.to_string()],
                required,
            }),
        }
    };
    for svc in services.values() {
        let name = svc.name.as_str();
        match svc.raw.get("env_file") {
            Some(serde_json::Value::String(p)) => add("env_file", p, name, true),
            Some(serde_json::Value::Array(items)) => {
                for item in items {
                    match item {
                        serde_json::Value::String(p) => add("env_file", p, name, true),
                        serde_json::Value::Object(o) => {
                            if let Some(p) = o.get("path").and_then(|p| p.as_str()) {
                                let required = !matches!(
                                    o.get("required"),
                                    Some(serde_json::Value::Bool(false))
                                ) && o.get("required").and_then(|r| r.as_str())
                                    != Some("false");
                                add("env_file", p, name, required);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        for m in svc.volumes.iter().filter(|m| m.kind == "bind") {
            if let Some(src) = &m.source {
                add("bind", src, name, true);
            }
        }
        for (section, kind) in [("configs", "config"), ("secrets", "secret")] {
            let Some(serde_json::Value::Array(used)) = svc.raw.get(section) else {
                continue;
            };
            for u in used {
                let source = match u {
                    serde_json::Value::String(s) => Some(s.as_str()),
                    serde_json::Value::Object(o) => o.get("source").and_then(|s| s.as_str()),
                    _ => None,
                };
                let file = source
                    .and_then(|s| doc.get(section)?.get(s)?.get("file"))
                    .and_then(Node::text);
                if let Some(f) = file {
                    add(kind, &f, name, true);
                }
            }
        }
    }
    for f in &mut out {
        f.services.sort();
    }
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(&b.kind)));
    out
}

/// Shape checks with the file, the dotted path and the service in the message.
struct Ctx<'a> {
    file: &'a Path,
    service: &'a str,
}

impl Ctx<'_> {
    fn bad(&self, node: &Node, field: &str, message: impl Into<String>) -> Error {
        invalid(
            self.file,
            node,
            &format!("services.{}.{field}", self.service),
            Some(self.service),
            message.into(),
        )
    }

    /// A scalar as text (`None` for null); lists and mappings are an error.
    fn string(&self, node: Option<&Node>, field: &str) -> Result<Option<String>, Error> {
        match node {
            None => Ok(None),
            Some(n) if n.is_null() => Ok(None),
            Some(n) => n
                .text()
                .map(Some)
                .ok_or_else(|| self.bad(n, field, format!("must be a string, not {}", n.kind()))),
        }
    }

    fn strings(&self, node: Option<&Node>, field: &str) -> Result<Vec<String>, Error> {
        match node {
            None => Ok(Vec::new()),
            Some(n) => match &n.value {
                Value::Null => Ok(Vec::new()),
                Value::Seq(items) => items
                    .iter()
                    .map(|i| {
                        i.text().ok_or_else(|| {
                            self.bad(i, field, format!("items must be strings, not {}", i.kind()))
                        })
                    })
                    .collect(),
                _ => Err(self.bad(n, field, format!("must be a list, not {}", n.kind()))),
            },
        }
    }

    /// `KEY=VALUE` list or mapping. `None` values: `KEY` alone, or a null value.
    fn mapping(
        &self,
        node: Option<&Node>,
        field: &str,
    ) -> Result<BTreeMap<String, Option<String>>, Error> {
        let mut out = BTreeMap::new();
        let Some(n) = node else { return Ok(out) };
        match &n.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (k, v) in entries {
                    let value = match &v.value {
                        Value::Null => None,
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(self.bad(
                                v,
                                &format!("{field}.{k}"),
                                format!("must be a string, not {}", v.kind()),
                            ));
                        }
                        _ => v.text(),
                    };
                    out.insert(k.clone(), value);
                }
            }
            Value::Seq(items) => {
                for i in items {
                    let t = i.text().ok_or_else(|| {
                        self.bad(i, field, format!("items must be strings, not {}", i.kind()))
                    })?;
                    match t.split_once('=') {
                        Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                        None => out.insert(t, None),
                    };
                }
            }
            _ => {
                return Err(self.bad(
                    n,
                    field,
                    format!("must be a list or a mapping, not {}", n.kind()),
                ));
            }
        }
        Ok(out)
    }

    fn bool(&self, node: Option<&Node>, field: &str) -> Result<Option<bool>, Error> {
        match node.map(|n| (n, &n.value)) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(*b)),
            Some((n, Value::Str(s))) => match s.as_str() {
                "true" | "True" | "TRUE" | "1" => Ok(Some(true)),
                "false" | "False" | "FALSE" | "0" => Ok(Some(false)),
                _ => Err(self.bad(n, field, format!("must be a boolean, not `{s}`"))),
            },
            Some((n, _)) => Err(self.bad(n, field, format!("must be a boolean, not {}", n.kind()))),
        }
    }

    /// `command`/`entrypoint`: a list, or a string split like a shell would.
    fn words(&self, node: Option<&Node>, field: &str) -> Result<Vec<String>, Error> {
        match node {
            Some(Node {
                value: Value::Str(s),
                ..
            }) => Ok(shell_words(s)),
            other => self.strings(other, field),
        }
    }
}

pub fn service(
    name: &str,
    node: &Node,
    file: &Path,
    project_dir: &Path,
    env: &Env,
) -> Result<Service, Error> {
    let c = Ctx {
        file,
        service: name,
    };
    if node.as_map().is_none() {
        return Err(invalid(
            file,
            node,
            &format!("services.{name}"),
            Some(name),
            format!("must be a mapping, not {}", node.kind()),
        ));
    }
    let mut svc = Service {
        name: name.to_string(),
        // Compose treats an empty `image`, `platform` or `pull_policy` (`${VAR:-}`) as unset.
        image: c
            .string(node.get("image"), "image")?
            .filter(|v| !v.is_empty()),
        build: build(&c, node.get("build"), project_dir, env)?,
        pull_policy: c
            .string(node.get("pull_policy"), "pull_policy")?
            .filter(|v| !v.is_empty()),
        platform: c
            .string(node.get("platform"), "platform")?
            .filter(|v| !v.is_empty()),
        profiles: c.strings(node.get("profiles"), "profiles")?,
        environment: c.mapping(node.get("environment"), "environment")?,
        command: c.words(node.get("command"), "command")?,
        entrypoint: c.words(node.get("entrypoint"), "entrypoint")?,
        healthcheck: node
            .get("healthcheck")
            .filter(|h| !h.is_null())
            .map(Node::to_json),
        restart: c.string(node.get("restart"), "restart")?,
        container_name: c.string(node.get("container_name"), "container_name")?,
        raw: node.to_json(),
        file: file.to_path_buf(),
        ..Service::default()
    };
    // compose-go: `build.platforms`, when given, must name the service's `platform`.
    if let (Some(platform), Some(b)) = (&svc.platform, &svc.build)
        && !b.platforms.is_empty()
        && !b.platforms.contains(platform)
    {
        let at = node.get("platform").unwrap_or(node);
        return Err(c.bad(
            at,
            "platform",
            format!(
                "`{platform}` is not one of `build.platforms` ({}); Compose refuses this",
                b.platforms.join(", ")
            ),
        ));
    }
    // Compose reads each `env_file` into the environment; `environment:` wins.
    for (k, v) in env_file_vars(node, project_dir, env)? {
        svc.environment.entry(k).or_insert(Some(v));
    }
    svc.depends_on = depends_on(&c, node.get("depends_on"))?;
    svc.ports = ports(&c, node.get("ports"))?;
    svc.volumes = volumes(&c, node.get("volumes"), project_dir)?;
    svc.image_volumes = svc
        .volumes
        .iter()
        .filter(|m| m.kind == "image")
        .filter_map(|m| m.source.clone())
        .collect();
    Ok(svc)
}

fn build(
    c: &Ctx,
    node: Option<&Node>,
    project_dir: &Path,
    env: &Env,
) -> Result<Option<Build>, Error> {
    let Some(n) = node else { return Ok(None) };
    let context_of =
        |raw: &str| (!is_remote_context(raw)).then(|| absolutize(project_dir, Path::new(raw)));
    match &n.value {
        Value::Null => Ok(None),
        Value::Str(_) | Value::Number(_) => {
            let raw = n.text().unwrap_or_default();
            Ok(Some(Build {
                context: context_of(&raw),
                context_raw: raw,
                ..Build::default()
            }))
        }
        Value::Map(_) => {
            let raw = c
                .string(n.get("context"), "build.context")?
                .unwrap_or_else(|| ".".to_string());
            let args = c
                .mapping(n.get("args"), "build.args")?
                .into_iter()
                .map(|(k, v)| {
                    // `KEY` without a value takes the environment's value (unset stays None).
                    let v = v.or_else(|| env.get(&k).cloned());
                    (k, v)
                })
                .collect();
            let additional_contexts = c
                .mapping(n.get("additional_contexts"), "build.additional_contexts")?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect();
            Ok(Some(Build {
                context: context_of(&raw),
                context_raw: raw,
                dockerfile: c.string(n.get("dockerfile"), "build.dockerfile")?,
                dockerfile_inline: c
                    .string(n.get("dockerfile_inline"), "build.dockerfile_inline")?,
                args,
                target: c.string(n.get("target"), "build.target")?,
                additional_contexts,
                platforms: c.strings(n.get("platforms"), "build.platforms")?,
                pull: c.bool(n.get("pull"), "build.pull")?,
            }))
        }
        _ => Err(c.bad(
            n,
            "build",
            format!("must be a string or a mapping, not {}", n.kind()),
        )),
    }
}

fn depends_on(c: &Ctx, node: Option<&Node>) -> Result<BTreeMap<String, DependsOn>, Error> {
    let started = || DependsOn {
        condition: "service_started".into(),
        required: true,
        restart: false,
    };
    let mut out = BTreeMap::new();
    let Some(n) = node else { return Ok(out) };
    match &n.value {
        Value::Null => {}
        Value::Seq(_) => {
            for name in c.strings(Some(n), "depends_on")? {
                out.insert(name, started());
            }
        }
        Value::Map(entries) => {
            for (dep, v) in entries {
                let field = format!("depends_on.{dep}");
                let mut d = started();
                match &v.value {
                    Value::Null => {}
                    Value::Map(_) => {
                        if let Some(cond) =
                            c.string(v.get("condition"), &format!("{field}.condition"))?
                        {
                            d.condition = cond;
                        }
                        d.required = c
                            .bool(v.get("required"), &format!("{field}.required"))?
                            .unwrap_or(true);
                        d.restart = c
                            .bool(v.get("restart"), &format!("{field}.restart"))?
                            .unwrap_or(false);
                    }
                    _ => {
                        return Err(c.bad(
                            v,
                            &field,
                            format!("must be a mapping, not {}", v.kind()),
                        ));
                    }
                }
                out.insert(dep.clone(), d);
            }
        }
        _ => {
            return Err(c.bad(
                n,
                "depends_on",
                format!("must be a list or a mapping, not {}", n.kind()),
            ));
        }
    }
    Ok(out)
}

fn ports(c: &Ctx, node: Option<&Node>) -> Result<Vec<Port>, Error> {
    let mut out = Vec::new();
    let Some(n) = node else { return Ok(out) };
    let items = match &n.value {
        Value::Null => return Ok(out),
        Value::Seq(items) => items,
        _ => return Err(c.bad(n, "ports", format!("must be a list, not {}", n.kind()))),
    };
    for i in items {
        match &i.value {
            Value::Str(_) | Value::Number(_) => {
                let spec = i.text().unwrap_or_default();
                let parsed = parse_port(&spec)
                    .ok_or_else(|| c.bad(i, "ports", format!("has an invalid port `{spec}`")))?;
                out.extend(parsed);
            }
            Value::Map(_) => {
                let target_text = c
                    .string(i.get("target"), "ports.target")?
                    .ok_or_else(|| c.bad(i, "ports", "needs a `target`"))?;
                let target = target_text.parse::<u16>().map_err(|_| {
                    c.bad(
                        i,
                        "ports.target",
                        format!("has an invalid port `{target_text}`"),
                    )
                })?;
                out.push(Port {
                    host_ip: c
                        .string(i.get("host_ip"), "ports.host_ip")?
                        .filter(|s| !s.is_empty()),
                    published: c
                        .string(i.get("published"), "ports.published")?
                        .filter(|s| !s.is_empty()),
                    target,
                    protocol: c
                        .string(i.get("protocol"), "ports.protocol")?
                        .unwrap_or_else(|| "tcp".into()),
                });
            }
            _ => {
                return Err(c.bad(
                    i,
                    "ports",
                    format!("items must be strings or mappings, not {}", i.kind()),
                ));
            }
        }
    }
    Ok(out)
}

/// Parse a port range `a` or `a-b`.
fn port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => s.parse().ok().map(|p| (p, p)),
    }
}

/// Short port syntax `[[ip:]published:]target[-range][/protocol]`; a target range expands
/// to one `Port` each (published split alongside when it is a range of the same length).
pub fn parse_port(spec: &str) -> Option<Vec<Port>> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) if !p.is_empty() => (r, p.to_string()),
        Some(_) => return None,
        None => (spec, "tcp".to_string()),
    };
    let mut parts = rest.rsplitn(3, ':');
    let target = parts.next()?;
    let published = parts.next().filter(|p| !p.is_empty());
    let ip = parts
        .next()
        .map(|ip| ip.trim_start_matches('[').trim_end_matches(']'))
        .filter(|ip| !ip.is_empty());
    let (t0, t1) = port_range(target)?;
    if let Some(p) = published {
        port_range(p)?;
    }
    let count = usize::from(t1 - t0) + 1;
    let published_range = published
        .and_then(port_range)
        .filter(|(a, b)| usize::from(b - a) + 1 == count && count > 1);
    Some(
        (0..count)
            .map(|k| Port {
                host_ip: ip.map(String::from),
                published: match published_range {
                    // k < count <= 65536 and both ranges have `count` ports: no overflow.
                    Some((a, _)) => Some((u32::from(a) + k as u32).to_string()),
                    None => published.map(String::from),
                },
                target: (u32::from(t0) + k as u32) as u16,
                protocol: protocol.clone(),
            })
            .collect(),
    )
}

fn volumes(c: &Ctx, node: Option<&Node>, project_dir: &Path) -> Result<Vec<Mount>, Error> {
    let mut out = Vec::new();
    let Some(n) = node else { return Ok(out) };
    let items = match &n.value {
        Value::Null => return Ok(out),
        Value::Seq(items) => items,
        _ => return Err(c.bad(n, "volumes", format!("must be a list, not {}", n.kind()))),
    };
    let resolve = |s: &str| {
        if s.starts_with('~') || s.starts_with('/') {
            s.to_string()
        } else {
            absolutize(project_dir, Path::new(s))
                .to_string_lossy()
                .into_owned()
        }
    };
    for i in items {
        match &i.value {
            Value::Str(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let m = match parts.as_slice() {
                    [target] => Mount {
                        kind: "volume".into(),
                        source: None,
                        target: clean_container_path(target),
                        read_only: false,
                    },
                    [src, target, rest @ ..] => {
                        let bind = is_path_source(src);
                        let mode = rest.join(":");
                        Mount {
                            kind: if bind { "bind" } else { "volume" }.into(),
                            source: Some(if bind { resolve(src) } else { src.to_string() }),
                            target: clean_container_path(target),
                            read_only: mode.split(',').any(|m| m == "ro"),
                        }
                    }
                    [] => return Err(c.bad(i, "volumes", "has an empty volume")),
                };
                if m.target.is_empty() {
                    return Err(c.bad(i, "volumes", format!("has no container path in `{s}`")));
                }
                out.push(m);
            }
            Value::Map(_) => {
                let kind = c
                    .string(i.get("type"), "volumes.type")?
                    .unwrap_or_else(|| "volume".into());
                let source = c
                    .string(i.get("source"), "volumes.source")?
                    .filter(|s| !s.is_empty());
                let target = c
                    .string(i.get("target"), "volumes.target")?
                    .ok_or_else(|| c.bad(i, "volumes", "needs a `target`"))?;
                let source = match kind.as_str() {
                    "bind" => source.map(|s| resolve(&s)),
                    _ => source,
                };
                if kind == "image" && source.is_none() {
                    return Err(c.bad(i, "volumes", "of type `image` needs a `source` image"));
                }
                let read_only = c
                    .bool(i.get("read_only"), "volumes.read_only")?
                    .unwrap_or(false);
                out.push(Mount {
                    kind,
                    source,
                    target: clean_container_path(&target),
                    read_only,
                });
            }
            _ => {
                return Err(c.bad(
                    i,
                    "volumes",
                    format!("items must be strings or mappings, not {}", i.kind()),
                ));
            }
        }
    }
    Ok(out)
}

/// Split a command string into words like a POSIX shell (quotes and backslashes), without
/// expansion; an unterminated quote runs to the end.
pub fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => cur.push(e),
                            Some(e) => {
                                cur.push('\\');
                                cur.push(e);
                            }
                            None => cur.push('\\'),
                        },
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! port {
        ($name:ident, $spec:expr, $want:expr) => {
            #[test]
            fn $name() {
                let got: Vec<String> = parse_port($spec)
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        format!(
                            "{}|{}|{}/{}",
                            p.host_ip.clone().unwrap_or_default(),
                            p.published.clone().unwrap_or_default(),
                            p.target,
                            p.protocol
                        )
                    })
                    .collect();
                let want: Vec<&str> = $want;
                assert_eq!(got, want);
            }
        };
    }

    port!(target_only, "80", vec!["||80/tcp"]);
    port!(published, "8080:80", vec!["|8080|80/tcp"]);
    port!(with_ip, "127.0.0.1:8080:80", vec!["127.0.0.1|8080|80/tcp"]);
    port!(ipv6, "[::1]:8080:80/udp", vec!["::1|8080|80/udp"]);
    port!(empty_published, "127.0.0.1::80", vec!["127.0.0.1||80/tcp"]);
    port!(
        range,
        "8000-8001:9000-9001",
        vec!["|8000|9000/tcp", "|8001|9001/tcp"]
    );
    port!(bad_target, "80:http", vec![]);
    port!(bad_range, "9-8", vec![]);

    macro_rules! words {
        ($name:ident, $s:expr, $want:expr) => {
            #[test]
            fn $name() {
                let want: Vec<&str> = $want;
                assert_eq!(shell_words($s), want);
            }
        };
    }

    words!(simple_words, "npm run  start", vec!["npm", "run", "start"]);
    words!(
        quoted_words,
        r#"sh -c 'echo "hi there"'"#,
        vec!["sh", "-c", "echo \"hi there\""]
    );
    words!(
        double_quoted,
        r#"echo "a \"b\" c""#,
        vec!["echo", "a \"b\" c"]
    );
    words!(empty_quotes, "a '' b", vec!["a", "", "b"]);
}
