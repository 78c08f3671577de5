//! The Compose v2 loading sequence (compose-go `cli` options and `loader`): process
//! environment, env files, `COMPOSE_*` variables, file discovery, then per file: YAML ->
//! interpolation -> `extends` -> `include` -> merge over the earlier files; finally `!reset`
//! clean-up, profiles and conversion to `model::Project`. The top of the loading pipeline:
//! it drives `read` (one file), `extends`, `include`, `merge` and `convert`, none of which
//! calls back into it.

use super::convert::Origin;
use super::extends::{Extends, Services};
use super::include;
use super::merge::{merge_file, strip_marks};
use super::paths::absolutize;
use super::read::{self, Reader};
use super::yaml::{Node, Value};
use super::{Env, Error, LoadOptions, Project, convert};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    let mut default_dotenv = false;
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
        default_dotenv = true;
        let p = dotenv_dir.join(".env");
        if p.is_file() { vec![p] } else { Vec::new() }
    };
    let dot_env = l.reader.read_env_files(&env_paths, &os_env)?;
    // The process environment wins over env files.
    let mut env = dot_env.clone();
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

    // A compose file discovered in a parent directory: Compose also reads that project
    // directory's `.env`, under the working directory's.
    if default_dotenv && project_dir != dotenv_dir {
        let p = project_dir.join(".env");
        if p.is_file() {
            let mut merged = l.reader.read_env_files(std::slice::from_ref(&p), &os_env)?;
            if let Some(i) = l.reader.env_files.iter().position(|f| *f == p) {
                let f = l.reader.env_files.remove(i);
                l.reader.env_files.insert(0, f);
            }
            merged.extend(dot_env);
            merged.extend(os_env.iter().map(|(k, v)| (k.clone(), v.clone())));
            env = merged;
        }
    }

    // The project name comes before interpolation: Compose sets `COMPOSE_PROJECT_NAME` to it.
    // `-p` and `COMPOSE_PROJECT_NAME` must already be valid; `name:` and the directory name
    // are normalised.
    let explicit = opts
        .project_name
        .clone()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME")
                .filter(|v| !v.is_empty())
                .cloned()
        });
    let name = match explicit {
        Some(n) if normalize_project_name(&n) == n && !n.is_empty() => n,
        Some(n) => return Err(Error::ProjectName { name: n }),
        None => {
            let source = read::peek_name(&files, &env).unwrap_or_else(|| {
                project_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let name = normalize_project_name(&source);
            if name.is_empty() {
                return Err(Error::ProjectName { name: source });
            }
            name
        }
    };
    env.insert("COMPOSE_PROJECT_NAME".into(), name.clone());

    // `--profile` replaces COMPOSE_PROFILES (Compose reads the variable only without the flag).
    let mut profiles: Vec<String> = opts.profiles.clone();
    if let Some(p) = env.get("COMPOSE_PROFILES").filter(|_| profiles.is_empty()) {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }

    // `Project::files` lists the -f files first, then included and extended ones.
    l.reader.files.extend(files.iter().cloned());
    let tree = l.load_project(&files, &project_dir, &env, &[])?;
    let mut doc = tree.doc;
    strip_marks(&mut doc);

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
    project.files = l.reader.files;
    project.env_files = l.reader.env_files;
    project.warnings.splice(0..0, l.reader.warnings);
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

/// Service name -> the compose file that defined it.
type Owners = BTreeMap<String, Origin>;

/// Merge the origins of a later file over `into`: it owns the services it names, and the
/// `image:` of those it sets one for.
fn adopt(into: &mut Owners, later: Owners) {
    for (name, o) in later {
        let entry = into.entry(name).or_insert_with(|| o.clone());
        entry.file = o.file;
        if o.image.is_some() {
            entry.image = o.image;
        }
    }
}

/// A project's merged (not yet converted) tree and the file each service came from.
struct Tree {
    doc: Node,
    service_files: Owners,
}

/// The state of one load: the files read so far and the `extends` cache.
#[derive(Default)]
struct Loader {
    reader: Reader,
    extends: Extends,
}

impl Loader {
    /// Load `files` as one project: each file fully processed, then merged in order.
    fn load_project(
        &mut self,
        files: &[PathBuf],
        working_dir: &Path,
        env: &Env,
        chain: &[PathBuf],
    ) -> Result<Tree, Error> {
        let mut acc: Option<Node> = None;
        let mut service_files = Owners::new();
        for f in files {
            if chain.contains(f) {
                let mut c = chain.to_vec();
                c.push(f.clone());
                return Err(Error::IncludeCycle { chain: c });
            }
            for (doc, owners) in self.load_file(f, working_dir, env, chain)? {
                adopt(&mut service_files, owners);
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
        for mut doc in self.reader.parse_interpolated(file, env)? {
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
                        self.extends
                            .apply(&mut self.reader, &mut services, name, file, env)?;
                    }
                    *entries = services.entries;
                }
            }
            let with_image: Vec<String> = doc
                .get("services")
                .and_then(Node::as_map)
                .map(|m| {
                    m.iter()
                        .filter(|(_, s)| s.get("image").is_some_and(|i| !i.is_null()))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut owners = Owners::new();
            if let Some(inc) = doc.remove("include") {
                let mut c = chain.to_vec();
                c.push(file.to_path_buf());
                let (imported, imported_owners) = self.include(&inc, file, working_dir, env, &c)?;
                adopt(&mut owners, imported_owners);
                if let Some(imported) = imported {
                    conflicts(&imported, &doc, file)?;
                    doc = merge_file(imported, doc);
                }
            }
            let here = names.into_iter().map(|n| {
                let image = with_image.contains(&n).then(|| file.to_path_buf());
                let origin = Origin {
                    file: file.to_path_buf(),
                    image,
                };
                (n, origin)
            });
            adopt(&mut owners, here.collect());
            out.push((doc, owners));
        }
        Ok(out)
    }

    /// Load the projects named by an `include:` section (each with its own directory and env
    /// files); returns their merged resources and the file each of their services came from.
    fn include(
        &mut self,
        inc: &Node,
        file: &Path,
        working_dir: &Path,
        env: &Env,
        chain: &[PathBuf],
    ) -> Result<(Option<Node>, Owners), Error> {
        let mut imported: Option<Node> = None;
        let mut owners = Owners::new();
        for item in include::entries(inc, file, working_dir)? {
            // The included project's own env files, overridden by the including environment.
            let mut inc_env = self.reader.read_env_files(&item.env_files, env)?;
            inc_env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
            // Files extended from the included project interpolate with its environment.
            let saved = std::mem::take(&mut self.extends);
            let tree = self.load_project(&item.paths, &item.project_dir, &inc_env, chain);
            self.extends = saved;
            let tree = tree?;
            adopt(&mut owners, tree.service_files);
            let doc = include::resources(tree.doc, &item.project_dir);
            imported = Some(match imported {
                Some(a) => {
                    conflicts(&a, &doc, file)?;
                    merge_file(a, doc)
                }
                None => doc,
            });
        }
        Ok((imported, owners))
    }
}

/// compose-go `importResources`: a resource an included project defines may not be defined
/// again, differently, by the including file or by another included project.
fn conflicts(imported: &Node, local: &Node, file: &Path) -> Result<(), Error> {
    for section in include::RESOURCES {
        let (Some(a), Some(b)) = (
            imported.get(section).and_then(Node::as_map),
            local.get(section).and_then(Node::as_map),
        ) else {
            continue;
        };
        for (name, node) in b {
            if let Some((_, other)) = a.iter().find(|(k, _)| k == name)
                && other.to_json() != node.to_json()
            {
                return Err(Error::IncludeConflict {
                    section: section.to_string(),
                    name: name.clone(),
                    file: file.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

fn service_names(doc: &Node) -> Vec<String> {
    doc.get("services")
        .and_then(Node::as_map)
        .map(|m| m.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default()
}
