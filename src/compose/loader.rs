//! The Compose v2 loading sequence (compose-go `cli` options and `loader`): process
//! environment, env files, `COMPOSE_*` variables, file discovery, then per file: YAML ->
//! interpolation -> `extends` -> `include` -> merge over the earlier files; finally `!reset`
//! clean-up, profiles and conversion to `model::Project`. Works with `yaml`, `interpolate`,
//! `dotenv`, `merge` and `convert`.

use super::dotenv::parse_dotenv;
use super::interpolate::{InterpolationError, interpolate};
use super::merge::{merge_file, merge_service, strip_marks};
use super::yaml::{self, Node, Value};
use super::{Error, LoadOptions, Project, Warning, convert};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

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

/// `base.join(p)` made lexically clean (`.` and `..` removed), like Go's `filepath.Join`.
pub fn absolutize(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
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

/// A services mapping with an index by name (files may hold many services).
struct Services {
    entries: Vec<(String, Node)>,
    index: HashMap<String, usize>,
}

impl Services {
    fn new(entries: Vec<(String, Node)>) -> Services {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        Services { entries, index }
    }

    fn get(&self, name: &str) -> Option<&Node> {
        self.index
            .get(name)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, n)| n)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.index
            .get(name)
            .and_then(|&i| self.entries.get_mut(i))
            .map(|(_, n)| n)
    }
}

#[derive(Default)]
struct Loader {
    /// Services of files named by `extends: {file:}`, parsed once.
    extends_cache: HashMap<PathBuf, Services>,
    files: Vec<PathBuf>,
    env_files: Vec<PathBuf>,
    warnings: Vec<Warning>,
    unset_seen: HashSet<(String, PathBuf)>,
}

impl Loader {
    /// Read env files in order (later wins); `lookup` values win in their interpolation.
    fn read_env_files(&mut self, paths: &[PathBuf], lookup: &Env) -> Result<Env, Error> {
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
    fn load_project(
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
    fn parse_interpolated(&mut self, file: &Path, env: &Env) -> Result<Vec<Node>, Error> {
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

    /// Apply `extends` of service `name` in `services` (the services of `file`), recursively.
    /// `stack` holds the (file, service) pairs being extended, to detect cycles.
    fn extend(
        &mut self,
        services: &mut Services,
        name: &str,
        file: &Path,
        env: &Env,
        stack: &mut Vec<(PathBuf, String)>,
    ) -> Result<(), Error> {
        let Some(ext) = services.get(name).and_then(|s| s.get("extends")).cloned() else {
            return Ok(());
        };
        let here = (file.to_path_buf(), name.to_string());
        if stack.contains(&here) {
            let mut chain: Vec<String> = stack
                .iter()
                .map(|(f, s)| format!("{}:{s}", f.display()))
                .collect();
            chain.push(format!("{}:{name}", file.display()));
            return Err(Error::ExtendsCycle { chain });
        }
        let path = format!("services.{name}.extends");
        let bad = |n: &Node, at: &str, message: String| invalid(file, n, at, Some(name), message);
        let (base_name, base_file) = match &ext.value {
            Value::Str(s) => (s.clone(), None),
            Value::Map(_) => {
                let service = ext
                    .get("service")
                    .and_then(Node::text)
                    .ok_or_else(|| bad(&ext, &path, "needs a `service` name".into()))?;
                let base_file = match ext.get("file") {
                    None => None,
                    Some(f) => Some(f.text().ok_or_else(|| {
                        bad(
                            f,
                            &format!("{path}.file"),
                            format!("must be a string, not {}", f.kind()),
                        )
                    })?),
                };
                (service, base_file)
            }
            _ => {
                let message = format!("must be a string or a mapping, not {}", ext.kind());
                return Err(bad(&ext, &path, message));
            }
        };
        let unknown = |base_file: PathBuf| Error::ExtendsUnknown {
            service: name.to_string(),
            base: base_name.clone(),
            file: file.to_path_buf(),
            base_file,
        };
        stack.push(here);
        let base = match base_file {
            Some(rel) => {
                let dir = file.parent().unwrap_or(Path::new("/"));
                let base_path = absolutize(dir, Path::new(&rel));
                if !base_path.is_file() {
                    return Err(Error::FileNotFound { path: base_path });
                }
                // Each other file is parsed once; its services keep the extends applied so far.
                let mut base_services = match self.extends_cache.remove(&base_path) {
                    Some(s) => s,
                    None => {
                        let mut merged: Option<Node> = None;
                        for doc in self.parse_interpolated(&base_path, env)? {
                            merged = Some(match merged {
                                Some(m) => merge_file(m, doc),
                                None => doc,
                            });
                        }
                        let entries = match merged.and_then(|mut d| d.remove("services")) {
                            Some(Node {
                                value: Value::Map(e),
                                ..
                            }) => e,
                            _ => Vec::new(),
                        };
                        Services::new(entries)
                    }
                };
                if base_services.get(&base_name).is_none() {
                    return Err(unknown(base_path));
                }
                let result = self.extend(&mut base_services, &base_name, &base_path, env, stack);
                let b = base_services.get(&base_name).cloned();
                self.extends_cache.insert(base_path.clone(), base_services);
                result?;
                let mut b = b.unwrap_or_else(|| Node::new(Value::Map(Vec::new()), 1, 1));
                let base_dir = base_path.parent().unwrap_or(Path::new("/")).to_path_buf();
                resolve_service_paths(&mut b, &base_dir);
                b
            }
            None => {
                if services.get(&base_name).is_none() {
                    return Err(unknown(file.to_path_buf()));
                }
                self.extend(services, &base_name, file, env, stack)?;
                services
                    .get(&base_name)
                    .cloned()
                    .unwrap_or_else(|| Node::new(Value::Map(Vec::new()), 1, 1))
            }
        };
        stack.pop();
        if let Some(slot) = services.get_mut(name) {
            let mut local = std::mem::replace(slot, Node::new(Value::Null, 0, 0));
            local.remove("extends");
            let mut base = base;
            base.remove("extends");
            *slot = merge_service(base, local);
        }
        Ok(())
    }

    /// Load the projects named by an `include:` section; returns their merged resources
    /// (services, volumes, networks, secrets, configs) with paths made absolute.
    fn include(
        &mut self,
        inc: &Node,
        file: &Path,
        working_dir: &Path,
        env: &Env,
        chain: &[PathBuf],
    ) -> Result<(Option<Node>, BTreeMap<String, PathBuf>), Error> {
        let Some(items) = inc.as_seq() else {
            if inc.is_null() {
                return Ok((None, BTreeMap::new()));
            }
            return Err(invalid(
                file,
                inc,
                "include",
                None,
                format!("must be a list, not {}", inc.kind()),
            ));
        };
        let mut imported: Option<Node> = None;
        let mut owners = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("include[{i}]");
            let strings = |n: &Node, what: &str| -> Result<Vec<String>, Error> {
                match &n.value {
                    Value::Seq(xs) => xs
                        .iter()
                        .map(|x| {
                            x.text().ok_or_else(|| {
                                invalid(
                                    file,
                                    x,
                                    &format!("{at}.{what}"),
                                    None,
                                    "must be a string".into(),
                                )
                            })
                        })
                        .collect(),
                    _ => n.text().map(|t| vec![t]).ok_or_else(|| {
                        invalid(
                            file,
                            n,
                            &format!("{at}.{what}"),
                            None,
                            format!("must be a string or a list, not {}", n.kind()),
                        )
                    }),
                }
            };
            let (paths, project_directory, env_file) = match &item.value {
                Value::Str(s) => (vec![s.clone()], None, Vec::new()),
                Value::Map(_) => {
                    let paths = match item.get("path") {
                        Some(p) => strings(p, "path")?,
                        None => {
                            return Err(invalid(file, item, &at, None, "needs a `path`".into()));
                        }
                    };
                    let dir = item.get("project_directory").and_then(Node::text);
                    let envs = match item.get("env_file") {
                        Some(e) => strings(e, "env_file")?,
                        None => Vec::new(),
                    };
                    (paths, dir, envs)
                }
                _ => {
                    return Err(invalid(
                        file,
                        item,
                        &at,
                        None,
                        format!("must be a string or a mapping, not {}", item.kind()),
                    ));
                }
            };
            if paths.is_empty() {
                return Err(invalid(
                    file,
                    item,
                    &at,
                    None,
                    "needs at least one path".into(),
                ));
            }
            let paths: Vec<PathBuf> = paths
                .iter()
                .map(|p| absolutize(working_dir, Path::new(p)))
                .collect();
            for p in &paths {
                if !p.is_file() {
                    return Err(Error::FileNotFound { path: p.clone() });
                }
            }
            let project_dir = match project_directory {
                Some(d) => absolutize(working_dir, Path::new(&d)),
                None => paths[0].parent().unwrap_or(Path::new("/")).to_path_buf(),
            };
            let env_paths: Vec<PathBuf> = if env_file.is_empty() {
                let p = project_dir.join(".env");
                if p.is_file() { vec![p] } else { Vec::new() }
            } else {
                env_file
                    .iter()
                    .map(|e| absolutize(working_dir, Path::new(e)))
                    .collect()
            };
            // The included project's own env files, overridden by the including environment.
            let mut inc_env = self.read_env_files(&env_paths, env)?;
            inc_env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
            // Files extended from the included project interpolate with its environment.
            let saved = std::mem::take(&mut self.extends_cache);
            let tree = self.load_project(&paths, &project_dir, &inc_env, chain);
            self.extends_cache = saved;
            let tree = tree?;
            let mut doc = tree.doc;
            strip_marks(&mut doc);
            resolve_project_paths(&mut doc, &project_dir);
            if let Some(entries) = doc.as_map_mut() {
                entries.retain(|(k, _)| {
                    matches!(
                        k.as_str(),
                        "services" | "volumes" | "networks" | "secrets" | "configs"
                    )
                });
            }
            owners.extend(tree.service_files);
            imported = Some(match imported {
                Some(a) => merge_file(a, doc),
                None => doc,
            });
        }
        Ok((imported, owners))
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

/// Remote build contexts (git or http URLs) are never resolved against a directory.
pub fn is_remote_context(s: &str) -> bool {
    [
        "http://",
        "https://",
        "git://",
        "git@",
        "github.com/",
        "ssh://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// A bind-mount source in short volume syntax is a path: `.`, `/` or `~` first.
pub fn is_path_source(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~')
}

fn abs_text(dir: &Path, s: &str) -> String {
    if s.starts_with('~') {
        return s.to_string();
    }
    absolutize(dir, Path::new(s)).to_string_lossy().into_owned()
}

/// Make the relative paths of a whole project tree absolute (`include`d projects).
fn resolve_project_paths(doc: &mut Node, dir: &Path) {
    if let Some(Value::Map(services)) = doc.get_mut("services").map(|s| &mut s.value) {
        for (_, svc) in services.iter_mut() {
            resolve_service_paths(svc, dir);
        }
    }
    for section in ["secrets", "configs"] {
        if let Some(Value::Map(items)) = doc.get_mut(section).map(|s| &mut s.value) {
            for (_, item) in items.iter_mut() {
                if let Some(f) = item.get_mut("file")
                    && let Value::Str(s) = &mut f.value
                {
                    *s = abs_text(dir, s);
                }
            }
        }
    }
}

/// Make a service's relative paths (build context, additional contexts, env_file, bind
/// mounts) absolute against `dir`, the directory of the file or project that defined them.
pub fn resolve_service_paths(svc: &mut Node, dir: &Path) {
    if let Some(build) = svc.get_mut("build") {
        match &mut build.value {
            Value::Str(s) if !is_remote_context(s) => *s = abs_text(dir, s),
            Value::Str(_) => {}
            Value::Map(_) => {
                match build.get_mut("context") {
                    Some(Node {
                        value: Value::Str(s),
                        ..
                    }) if !is_remote_context(s) => *s = abs_text(dir, s),
                    Some(_) => {}
                    None => {
                        let at = build.clone();
                        build.insert(
                            "context",
                            Node::new(Value::Str(abs_text(dir, ".")), at.line, at.col),
                        );
                    }
                }
                if let Some(ctxs) = build.get_mut("additional_contexts") {
                    let fix = |s: &mut String| {
                        if !s.contains("://") && !s.starts_with("service:") && !is_remote_context(s)
                        {
                            *s = abs_text(dir, s);
                        }
                    };
                    match &mut ctxs.value {
                        Value::Map(entries) => {
                            for (_, v) in entries.iter_mut() {
                                if let Value::Str(s) = &mut v.value {
                                    fix(s);
                                }
                            }
                        }
                        Value::Seq(items) => {
                            for i in items.iter_mut() {
                                if let Value::Str(s) = &mut i.value
                                    && let Some((k, v)) = s.split_once('=')
                                {
                                    let mut v = v.to_string();
                                    fix(&mut v);
                                    *s = format!("{k}={v}");
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(env_file) = svc.get_mut("env_file") {
        let fix = |n: &mut Node| match &mut n.value {
            Value::Str(s) => *s = abs_text(dir, s),
            Value::Map(_) => {
                if let Some(Node {
                    value: Value::Str(s),
                    ..
                }) = n.get_mut("path")
                {
                    *s = abs_text(dir, s);
                }
            }
            _ => {}
        };
        match &mut env_file.value {
            Value::Seq(items) => items.iter_mut().for_each(fix),
            _ => fix(env_file),
        }
    }
    if let Some(Value::Seq(vols)) = svc.get_mut("volumes").map(|v| &mut v.value) {
        for v in vols.iter_mut() {
            match &mut v.value {
                Value::Str(s) => {
                    if let Some((src, rest)) = s.split_once(':')
                        && is_path_source(src)
                    {
                        *s = format!("{}:{rest}", abs_text(dir, src));
                    }
                }
                Value::Map(_) => {
                    let bind = v.get("type").and_then(Node::text).as_deref() == Some("bind");
                    if bind
                        && let Some(Node {
                            value: Value::Str(s),
                            ..
                        }) = v.get_mut("source")
                    {
                        *s = abs_text(dir, s);
                    }
                }
                _ => {}
            }
        }
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

