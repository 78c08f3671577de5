//! Reading one file: a compose or env file's bytes (size limit, UTF-8 with the position of a
//! bad byte), its YAML documents, and interpolation with `${VAR:?}` strict where a value
//! decides images. `Reader` records every file read and the warnings (unset variables,
//! obsolete keys) for `Project`. Used by `loader` and `extends`; uses `yaml`, `interpolate`
//! and `dotenv`.

use super::dotenv::parse_dotenv;
use super::interpolate::{InterpolationError, interpolate};
use super::yaml::{self, Node, Value};
use super::{Env, Error, Warning, invalid};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Largest compose or env file read (real ones are a few KiB).
pub const MAX_FILE_BYTES: u64 = 8 << 20;

fn read_text(path: &Path) -> Result<String, Error> {
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

/// The project's `name:` as the files give it (the last file that sets it wins), interpolated
/// with `env`; `None` when no file sets one. Errors are left to the full read.
pub(super) fn peek_name(files: &[PathBuf], env: &Env) -> Option<String> {
    let mut name = None;
    for f in files {
        let Ok(text) = read_text(f) else { continue };
        if !text.contains("name") {
            continue;
        }
        for doc in yaml::parse(&text).unwrap_or_default() {
            if let Some(raw) = doc.get("name").and_then(Node::text) {
                let lookup = |k: &str| env.get(k).cloned();
                if let Ok((value, _)) = interpolate(&raw, &lookup)
                    && !value.is_empty()
                {
                    name = Some(value);
                }
            }
        }
    }
    name
}

/// Service keys Compose accepts empty (null); every other one must have a value.
const NULLABLE: [&str; 3] = ["command", "entrypoint", "deploy"];

/// Compose's schema refuses an empty (null) top-level section, service, or service key
/// (`environment:` with nothing under it), unless marked `!reset`.
fn refuse_nulls(doc: &Node, file: &Path) -> Result<(), Error> {
    let null = |n: &Node| n.is_null() && n.mark == yaml::Mark::None;
    let Some(top) = doc.as_map() else {
        return Ok(());
    };
    for (key, value) in top {
        let what = match key.as_str() {
            "services" | "volumes" | "networks" | "configs" | "secrets" => "a mapping",
            "name" | "version" => "a string",
            _ => continue,
        };
        if null(value) {
            return Err(invalid(
                file,
                value,
                key,
                None,
                format!("must be {what}, not empty"),
            ));
        }
    }
    let Some(services) = doc.get("services").and_then(Node::as_map) else {
        return Ok(());
    };
    for (name, svc) in services {
        let path = format!("services.{name}");
        if null(svc) {
            return Err(invalid(
                file,
                svc,
                &path,
                Some(name),
                "must be a mapping, not empty".into(),
            ));
        }
        for (key, value) in svc.as_map().into_iter().flatten() {
            if null(value) && !NULLABLE.contains(&key.as_str()) && !key.starts_with("x-") {
                return Err(invalid(
                    file,
                    value,
                    &format!("{path}.{key}"),
                    Some(name),
                    "has no value (Compose refuses an empty key; remove it or give it a value)"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}

/// Files read so far and the warnings they raised.
#[derive(Default)]
pub(super) struct Reader {
    /// Compose files read, in order, each once.
    pub(super) files: Vec<PathBuf>,
    /// Env files read, in order, each once.
    pub(super) env_files: Vec<PathBuf>,
    pub(super) warnings: Vec<Warning>,
    unset_seen: HashSet<(String, PathBuf)>,
}

impl Reader {
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
            refuse_nulls(&doc, file)?;
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
