//! `include:`: other compose projects loaded with their own directory and env files, whose
//! services, volumes, networks, secrets and configs join the including project.

use super::Error;
use super::loader::{Env, Loader, invalid};
use super::merge::{merge_file, strip_marks};
use super::paths::{absolutize, resolve_project_paths};
use super::yaml::{Node, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

impl Loader {
    /// Load the projects named by an `include:` section; returns their merged resources
    /// (services, volumes, networks, secrets, configs) with paths made absolute.
    pub(super) fn include(
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
