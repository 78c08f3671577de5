//! The Compose v2 loading sequence (compose-go `cli` options and `loader`): process
//! environment, env files, `COMPOSE_*` variables, file discovery, then per file: YAML ->
//! interpolation -> `extends` -> `include` -> merge over the earlier files; finally `!reset`
//! clean-up, profiles and conversion to `model::Project`. Works with `yaml`, `interpolate`,
//! `dotenv`, `merge` and `convert`.

use super::dotenv::parse_dotenv;
use super::interpolate::{InterpolationError, interpolate};
use super::merge::{merge_file, strip_marks};
use super::yaml::{self, Node, Value};
use super::{Error, LoadOptions, Project, Warning, convert};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::extends::Services;
pub use super::paths::{absolutize, is_path_source, is_remote_context};

pub type Env = BTreeMap<String, String>;

/// Largest compose or env file read (real ones are a few KiB).
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// Default compose file names, in compose-go's order of preference.
const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

pub fn load(opts: &LoadOptions) -> Result<Project, Error> {
    let os_env: Env = match &opts.environment {
        Some(e) => e.clone(),
        None => std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    };
    let cwd = match &opts.working_dir {
        Some(d) => absolutize(&current_dir()?, d),
        None => current_dir()?,
    };
    let given_files: Vec<PathBuf> = opts.files.iter().map(|f| absolutize(&cwd, f)).collect();
    let given_dir = opts.project_directory.as_ref().map(|d| absolutize(&cwd, d));

    let mut l = Loader::default();

    // Env files: --env-file, else COMPOSE_ENV_FILES, else `.env` in the project directory
    // (the first -f file's directory, or the working dir), unless COMPOSE_DISABLE_ENV_FILE.
    let dotenv_dir = given_dir
        .clone()
        .or_else(|| {
            given_files
                .first()
                .and_then(|f| f.parent().map(Path::to_path_buf))
        })
        .unwrap_or_else(|| cwd.clone());
    let env_paths: Vec<PathBuf> = if !opts.env_files.is_empty() {
        opts.env_files.iter().map(|f| absolutize(&cwd, f)).collect()
    } else if let Some(list) = os_env.get("COMPOSE_ENV_FILES").filter(|v| !v.is_empty()) {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(|f| absolutize(&cwd, Path::new(f)))
            .collect()
    } else if os_env
        .get("COMPOSE_DISABLE_ENV_FILE")
        .is_some_and(|v| is_true(v))
    {
        Vec::new()
    } else {
        let p = dotenv_dir.join(".env");
        if p.is_file() { vec![p] } else { Vec::new() }
    };
    let mut env = l.read_env_files(&env_paths, &os_env)?;
    // The process environment wins over env files.
    env.extend(os_env.iter().map(|(k, v)| (k.clone(), v.clone())));

    let files = if !given_files.is_empty() {
        given_files
    } else if let Some(list) = env.get("COMPOSE_FILE").filter(|v| !v.is_empty()) {
        let sep = env
            .get("COMPOSE_PATH_SEPARATOR")
            .filter(|s| !s.is_empty())
            .map_or(":", String::as_str);
        let base = given_dir.clone().unwrap_or_else(|| cwd.clone());
        list.split(sep)
            .filter(|s| !s.is_empty())
            .map(|f| absolutize(&base, Path::new(f)))
            .collect()
    } else {
        discover(&cwd)?
    };
    for f in &files {
        if !f.is_file() {
            return Err(Error::FileNotFound { path: f.clone() });
        }
    }
    let project_dir = given_dir.unwrap_or_else(|| {
        files
            .first()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone())
    });

    let mut profiles: Vec<String> = opts.profiles.clone();
    if let Some(p) = env.get("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }

    // `Project::files` lists the -f files first, then included and extended ones.
    l.files.extend(files.iter().cloned());
    let tree = l.load_project(&files, &project_dir, &env, &[])?;
    let mut doc = tree.doc;
    strip_marks(&mut doc);

    let name_source = opts
        .project_name
        .clone()
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME")
                .filter(|v| !v.is_empty())
                .cloned()
        })
        .or_else(|| {
            doc.get("name")
                .and_then(Node::text)
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| {
            project_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let name = normalize_project_name(&name_source);
    if name.is_empty() {
        return Err(Error::ProjectName { name: name_source });
    }

    let main_file = files.first().cloned().unwrap_or_default();
    let mut project = convert::project(
        &doc,
        &tree.service_files,
        &main_file,
        &project_dir,
        &env,
        &profiles,
    )?;
    project.name = name;
    project.directory = project_dir;
    project.files = l.files;
    project.env_files = l.env_files;
    project.warnings.splice(0..0, l.warnings);
    Ok(project)
}

fn current_dir() -> Result<PathBuf, Error> {
    std::env::current_dir().map_err(|source| Error::Read {
        path: PathBuf::from("."),
        source,
    })
}

/// Go's `strconv.ParseBool` true values.
fn is_true(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// compose-go `NormalizeProjectName`: lower case, only `[a-z0-9_-]`, no leading `_`/`-`.
pub fn normalize_project_name(s: &str) -> String {
    let lower = s.to_lowercase();
    let kept: String = lower
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// Walk up from `dir` to the first directory holding a default compose file; add the first
/// override file found next to it.
fn discover(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut d = Some(dir);
    while let Some(here) = d {
        if let Some(main) = DEFAULT_FILES
            .iter()
            .map(|n| here.join(n))
            .find(|p| p.is_file())
        {
            let mut files = vec![main];
            if let Some(o) = OVERRIDE_FILES
                .iter()
                .map(|n| here.join(n))
                .find(|p| p.is_file())
            {
                files.push(o);
            }
            return Ok(files);
        }
        d = here.parent();
    }
    Err(Error::NoComposeFile {
        dir: dir.to_path_buf(),
    })
}

pub fn read_text(path: &Path) -> Result<String, Error> {
    let meta = fs_err::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::FileNotFound {
            path: path.to_path_buf(),
        },
        _ => Error::Read {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let bytes = fs_err::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Error::NotUtf8 {
            path: path.to_path_buf(),
            line,
            column,
            offset,
        }
    })
}

/// Service name -> the compose file that defined it.
type Owners = BTreeMap<String, PathBuf>;

/// A project's merged (not yet converted) tree and the file each service came from.
pub struct Tree {
    pub doc: Node,
    pub service_files: BTreeMap<String, PathBuf>,
}

#[derive(Default)]
pub(super) struct Loader {
    /// Services of files named by `extends: {file:}`, parsed once.
    pub(super) extends_cache: HashMap<PathBuf, Services>,
    pub(super) files: Vec<PathBuf>,
    pub(super) env_files: Vec<PathBuf>,
    pub(super) warnings: Vec<Warning>,
    pub(super) unset_seen: HashSet<(String, PathBuf)>,
}

impl Loader {
    /// Read env files in order (later wins); `lookup` values win in their interpolation.
    pub(super) fn read_env_files(&mut self, paths: &[PathBuf], lookup: &Env) -> Result<Env, Error> {
        let mut env = Env::new();
        for p in paths {
            if !p.is_file() {
                return Err(Error::EnvFileNotFound { path: p.clone() });
            }
            let text = read_text(p)?;
            let vars = parse_dotenv(&text, &|k| lookup.get(k).or_else(|| env.get(k)).cloned())
                .map_err(|e| Error::Dotenv {
                    path: p.clone(),
                    line: e.line(),
                    message: e.to_string(),
                })?;
            env.extend(vars);
            if !self.env_files.contains(p) {
                self.env_files.push(p.clone());
            }
        }
        Ok(env)
    }

    /// Load `files` as one project: each file fully processed, then merged in order.
    pub(super) fn load_project(
        &mut self,
        files: &[PathBuf],
        working_dir: &Path,
        env: &Env,
        chain: &[PathBuf],
    ) -> Result<Tree, Error> {
        let mut acc: Option<Node> = None;
        let mut service_files = BTreeMap::new();
        for f in files {
            if chain.contains(f) {
                let mut c = chain.to_vec();
                c.push(f.clone());
                return Err(Error::IncludeCycle { chain: c });
            }
            for (doc, owners) in self.load_file(f, working_dir, env, chain)? {
                service_files.extend(owners);
                acc = Some(match acc {
                    Some(a) => merge_file(a, doc),
                    None => doc,
                });
            }
        }
        let doc = acc.unwrap_or_else(|| Node::new(Value::Map(Vec::new()), 1, 1));
        Ok(Tree { doc, service_files })
    }

    /// Read one compose file: every document interpolated, its `extends` and `include`
    /// applied. Returns each document with the file each of its services came from.
    fn load_file(
        &mut self,
        file: &Path,
        working_dir: &Path,
        env: &Env,
        chain: &[PathBuf],
    ) -> Result<Vec<(Node, Owners)>, Error> {
        let mut out = Vec::new();
        for mut doc in self.parse_interpolated(file, env)? {
            let names = service_names(&doc);
            if let Some(Value::Map(entries)) = doc.get_mut("services").map(|s| &mut s.value) {
                let extending: Vec<String> = entries
                    .iter()
                    .filter(|(_, s)| s.get("extends").is_some())
                    .map(|(k, _)| k.clone())
                    .collect();
                if !extending.is_empty() {
                    let mut services = Services::new(std::mem::take(entries));
                    for name in &extending {
                        self.extend(&mut services, name, file, env, &mut Vec::new())?;
                    }
                    *entries = services.entries;
                }
            }
            let mut owners: BTreeMap<String, PathBuf> = BTreeMap::new();
            if let Some(inc) = doc.remove("include") {
                let mut c = chain.to_vec();
                c.push(file.to_path_buf());
                let (imported, imported_owners) = self.include(&inc, file, working_dir, env, &c)?;
                owners.extend(imported_owners);
                if let Some(imported) = imported {
                    doc = merge_file(imported, doc);
                }
            }
            owners.extend(names.into_iter().map(|n| (n, file.to_path_buf())));
            out.push((doc, owners));
        }
        Ok(out)
    }

    /// Parse a file and interpolate every value; check the top-level shape.
    pub(super) fn parse_interpolated(
        &mut self,
        file: &Path,
        env: &Env,
    ) -> Result<Vec<Node>, Error> {
        if !self.files.iter().any(|f| f == file) {
            self.files.push(file.to_path_buf());
        }
        let text = read_text(file)?;
        let docs = yaml::parse(&text).map_err(|e| Error::Yaml {
            path: file.to_path_buf(),
            line: e.line,
            column: e.col,
            message: e.message,
        })?;
        let mut out = Vec::new();
        for mut doc in docs {
            if doc.is_null() {
                continue;
            }
            if doc.as_map().is_none() {
                return Err(invalid(
                    file,
                    &doc,
                    "(top level)",
                    None,
                    format!("must be a mapping, not {}", doc.kind()),
                ));
            }
            self.interpolate_tree(&mut doc, file, env)?;
            if doc.get("version").is_some() {
                self.warn(
                    "obsolete-version",
                    "the top-level `version` key is obsolete and ignored".into(),
                    file,
                    None,
                );
            }
            if let Some(services) = doc.get("services") {
                match &services.value {
                    Value::Null => {}
                    Value::Map(entries) => {
                        for (name, svc) in entries {
                            if svc.as_map().is_none()
                                && !svc.is_null()
                                && svc.mark == yaml::Mark::None
                            {
                                return Err(invalid(
                                    file,
                                    svc,
                                    &format!("services.{name}"),
                                    Some(name),
                                    format!("must be a mapping, not {}", svc.kind()),
                                ));
                            }
                        }
                    }
                    _ => {
                        return Err(invalid(
                            file,
                            services,
                            "services",
                            None,
                            format!("must be a mapping, not {}", services.kind()),
                        ));
                    }
                }
            }
            out.push(doc);
        }
        // A null service (`web:`) is an empty definition.
        for doc in &mut out {
            if let Some(Value::Map(entries)) = doc.get_mut("services").map(|s| &mut s.value) {
                for (_, svc) in entries.iter_mut() {
                    if svc.is_null() {
                        svc.value = Value::Map(Vec::new());
                    }
                }
            }
        }
        Ok(out)
    }

    fn warn(&mut self, code: &str, message: String, file: &Path, service: Option<String>) {
        self.warnings.push(Warning {
            code: code.into(),
            message,
            file: Some(file.to_path_buf()),
            service,
        });
    }

    /// Interpolate every string value (never keys), recording unset variables.
    fn interpolate_tree(&mut self, node: &mut Node, file: &Path, env: &Env) -> Result<(), Error> {
        self.interpolate_at(node, file, env, Level::Top, "")
    }

    fn interpolate_at(
        &mut self,
        node: &mut Node,
        file: &Path,
        env: &Env,
        level: Level,
        key: &str,
    ) -> Result<(), Error> {
        let level = level.child(key);
        match &mut node.value {
            Value::Str(s) if s.contains('$') => {
                let lookup = |k: &str| env.get(k).cloned();
                match interpolate(s, &lookup) {
                    Ok((out, unset)) => {
                        *s = out;
                        for var in unset {
                            if self.unset_seen.insert((var.clone(), file.to_path_buf())) {
                                let message =
                                    format!("variable `{var}` is not set; using an empty string");
                                self.warn("unset-variable", message, file, None);
                            }
                        }
                    }
                    Err(InterpolationError::Required { variable, message })
                        if level == Level::Lenient =>
                    {
                        // Outside what decides images (labels, commands, networks...) a missing
                        // required variable does not stop planning; `docker compose` would refuse it.
                        let text = format!(
                            "{}:{}:{}: required variable `{variable}` is missing a value: {message} (docker compose would refuse this file)",
                            file.display(),
                            node.line,
                            node.col
                        );
                        self.warn("required-variable", text, file, None);
                        s.clear();
                    }
                    Err(InterpolationError::Required { variable, message }) => {
                        return Err(Error::RequiredVariable {
                            variable,
                            message,
                            file: file.to_path_buf(),
                            line: node.line,
                            column: node.col,
                        });
                    }
                    Err(e) => {
                        return Err(Error::Interpolation {
                            file: file.to_path_buf(),
                            line: node.line,
                            column: node.col,
                            reason: e.to_string(),
                        });
                    }
                }
            }
            Value::Seq(items) => {
                for i in items {
                    self.interpolate_at(i, file, env, level, "")?;
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    self.interpolate_at(v, file, env, level, k)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Where a value sits, for the strictness of `${VAR:?}`: fatal where it decides images.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Services,
    Service,
    Fatal,
    Lenient,
}

impl Level {
    /// The level of the child under `key` (`""` for sequence items).
    fn child(self, key: &str) -> Level {
        match (self, key) {
            (Level::Top, "") => Level::Top,
            (Level::Top, "services") => Level::Services,
            (Level::Top, "name" | "include") => Level::Fatal,
            (Level::Top, _) => Level::Lenient,
            (Level::Services, _) => Level::Service,
            (
                Level::Service,
                "image" | "build" | "platform" | "profiles" | "extends" | "pull_policy" | "volumes",
            ) => Level::Fatal,
            (Level::Service, _) => Level::Lenient,
            (other, _) => other,
        }
    }
}

fn service_names(doc: &Node) -> Vec<String> {
    doc.get("services")
        .and_then(Node::as_map)
        .map(|m| m.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default()
}

pub fn invalid(
    file: &Path,
    node: &Node,
    path: &str,
    service: Option<&str>,
    message: String,
) -> Error {
    Error::Invalid {
        file: file.to_path_buf(),
        line: node.line,
        column: node.col,
        path: path.to_string(),
        service: service.map(String::from),
        message,
    }
}

/// Names of every profile any service mentions (for `--profile '*'`).
pub fn all_profiles(doc: &Node) -> BTreeSet<String> {
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
