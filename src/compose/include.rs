//! `include:`: other compose projects loaded with their own directory and env files, whose
//! services, volumes, networks, secrets and configs join the including project. This module
//! reads the `include` section (`entries`) and trims a loaded included project to what joins
//! (`resources`); `loader` loads each entry as a project of its own.

use super::merge::strip_marks;
use super::paths::{absolutize, resolve_project_paths};
use super::yaml::{Node, Value};
use super::{Error, invalid};
use std::path::{Path, PathBuf};

/// The top-level sections an included project contributes.
pub(super) const RESOURCES: [&str; 5] = ["services", "volumes", "networks", "secrets", "configs"];

/// One entry of `include:`, with its paths made absolute.
pub(super) struct Included {
    /// The compose files of the included project, in merge order (each exists).
    pub(super) paths: Vec<PathBuf>,
    /// Its project directory (`project_directory`, else the first file's directory).
    pub(super) project_dir: PathBuf,
    /// Its env files (`env_file`, else `<project_dir>/.env` when present).
    pub(super) env_files: Vec<PathBuf>,
}

/// The entries of the `include:` section `inc` of `file`; relative paths resolve against
/// `working_dir` (the including project's directory).
pub(super) fn entries(inc: &Node, file: &Path, working_dir: &Path) -> Result<Vec<Included>, Error> {
    let Some(items) = inc.as_seq() else {
        if inc.is_null() {
            return Ok(Vec::new());
        }
        return Err(invalid(
            file,
            inc,
            "include",
            None,
            format!("must be a list, not {}", inc.kind()),
        ));
    };
    let mut out = Vec::new();
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
        out.push(Included {
            paths,
            project_dir,
            env_files: env_paths,
        });
    }
    Ok(out)
}

/// What an included project contributes: its services, volumes, networks, secrets and
/// configs, `!reset` marks applied and relative paths made absolute against `project_dir`.
pub(super) fn resources(mut doc: Node, project_dir: &Path) -> Node {
    strip_marks(&mut doc);
    resolve_project_paths(&mut doc, project_dir);
    if let Some(entries) = doc.as_map_mut() {
        entries.retain(|(k, _)| RESOURCES.contains(&k.as_str()));
    }
    doc
}
