//! `extends`: a service built on another service of the same file or of another file
//! (compose-go `loader/extends.go`), applied recursively with cycle detection; files named by
//! `extends.file` are parsed once per load (`Extends` holds them). Reads other files through
//! `read::Reader`; called by `loader`.

use super::merge::{merge_file, merge_service};
use super::paths::{absolutize, resolve_service_paths};
use super::read::Reader;
use super::yaml::{Node, Value};
use super::{Env, Error, invalid};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A services mapping with an index by name (files may hold many services).
pub(super) struct Services {
    pub(super) entries: Vec<(String, Node)>,
    index: HashMap<String, usize>,
}

impl Services {
    pub(super) fn new(entries: Vec<(String, Node)>) -> Services {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        Services { entries, index }
    }

    pub(super) fn get(&self, name: &str) -> Option<&Node> {
        self.index
            .get(name)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, n)| n)
    }

    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.index
            .get(name)
            .and_then(|&i| self.entries.get_mut(i))
            .map(|(_, n)| n)
    }
}

/// The services of files named by `extends: {file:}`, parsed once per load (they keep the
/// `extends` applied so far).
#[derive(Default)]
pub(super) struct Extends {
    cache: HashMap<PathBuf, Services>,
}

impl Extends {
    /// Apply `extends` of service `name` in `services` (the services of `file`), recursively.
    pub(super) fn apply(
        &mut self,
        reader: &mut Reader,
        services: &mut Services,
        name: &str,
        file: &Path,
        env: &Env,
    ) -> Result<(), Error> {
        self.extend(reader, services, name, file, env, &mut Vec::new())
    }

    /// `stack` holds the (file, service) pairs being extended, to detect cycles.
    fn extend(
        &mut self,
        reader: &mut Reader,
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
                let mut base_services = match self.cache.remove(&base_path) {
                    Some(s) => s,
                    None => {
                        let mut merged: Option<Node> = None;
                        for doc in reader.parse_interpolated(&base_path, env)? {
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
                let result = self.extend(
                    reader,
                    &mut base_services,
                    &base_name,
                    &base_path,
                    env,
                    stack,
                );
                let b = base_services.get(&base_name).cloned();
                self.cache.insert(base_path.clone(), base_services);
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
                self.extend(reader, services, &base_name, file, env, stack)?;
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
}
