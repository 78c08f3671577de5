//! Compose project loading: owns discovery of compose files, `.env` files, interpolation,
//! YAML (anchors, merge keys, `!reset`/`!override`), merging of `-f` files, `include`,
//! `extends` and profiles, producing `model::Project`. Read by `plan`, `check` and `cli`.
//! Hand-written where no crate fits: there is no maintained Rust implementation of the
//! Compose loader rules. Pipeline: `loader` (files, env, include, extends) -> `read` (one
//! file: `yaml` tree, `interpolate`) -> `extends` / `include` -> `merge` -> `convert` (typed
//! `Service`). Data flows one way: `loader` drives the others and nothing calls back into it;
//! `extends` and `include` only read files through `read` and parse their own sections.

mod convert;
pub mod dotenv;
mod extends;
mod include;
pub mod interpolate;
mod loader;
mod merge;
pub mod model;
mod paths;
mod read;
mod yaml;

pub use dotenv::{DotenvError, parse_dotenv};
pub use interpolate::{InterpolationError, interpolate};
pub use model::*;
pub use read::MAX_FILE_BYTES;

use crate::error::{Class, Classify};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml::Node;

/// Variables for interpolation: env files overlaid by the process environment.
type Env = BTreeMap<String, String>;

/// An `Error::Invalid` at `node` of `file`; `path` is the dotted path of the value.
fn invalid(file: &Path, node: &Node, path: &str, service: Option<&str>, message: String) -> Error {
    Error::Invalid {
        file: file.to_path_buf(),
        line: node.line,
        column: node.col,
        path: path.to_string(),
        service: service.map(String::from),
        message,
    }
}

/// How to find and read a project; the same inputs as `docker compose` flags and variables.
///
/// `Default` means: discover the compose file from the current directory, read `.env` from the
/// project directory, no profiles, project name from the directory, the process environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f` files in merge order; empty = `COMPOSE_FILE` or discovery.
    pub files: Vec<PathBuf>,
    /// `--project-directory`; default: the directory of the first file.
    pub project_directory: Option<PathBuf>,
    /// `--env-file` (repeatable, later wins); empty = `COMPOSE_ENV_FILES` or `<dir>/.env`.
    pub env_files: Vec<PathBuf>,
    /// `--profile` (repeatable, `*` = all); empty = `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// `-p`; default: `COMPOSE_PROJECT_NAME`, `name:`, then the directory name.
    pub project_name: Option<String>,
    /// Process environment; None = read std::env. Tests pass Some(map) to be hermetic.
    pub environment: Option<BTreeMap<String, String>>,
    /// Where discovery starts and relative `-f`/`--env-file` paths resolve; None = current dir.
    pub working_dir: Option<PathBuf>,
}

/// Tests: the project of `text`, written as `compose.yaml` into `dir`, with an empty
/// environment.
#[cfg(test)]
pub fn load_text(dir: &Path, text: &str) -> Project {
    let file = dir.join("compose.yaml");
    fs_err::write(&file, text).unwrap();
    load(&LoadOptions {
        files: vec![file],
        environment: Some(Default::default()),
        ..Default::default()
    })
    .unwrap()
}

/// Load a Compose project the way Compose v2 does.
pub fn load(opts: &LoadOptions) -> Result<Project, Error> {
    loader::load(opts)
}

fn chain_text(chain: &[PathBuf]) -> String {
    chain
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Compose file `{}` not found", path.display())]
    FileNotFound { path: PathBuf },
    #[error(
        "No compose file found in `{}` or any parent directory (looked for compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml)",
        dir.display()
    )]
    NoComposeFile { dir: PathBuf },
    #[error("Env file `{}` not found", path.display())]
    EnvFileNotFound { path: PathBuf },
    #[error("Failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not valid UTF-8 (byte offset {offset})", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
        offset: usize,
    },
    #[error("`{}` is {size} bytes; files over {limit} bytes are refused", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{}:{line}:{column}: invalid YAML: {message}", path.display())]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}:{line}: invalid env file: {message}", path.display())]
    Dotenv {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{}:{line}:{column}: required variable `{variable}` is missing a value: {message}",
        file.display()
    )]
    RequiredVariable {
        variable: String,
        message: String,
        file: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{}:{line}:{column}: {reason}", file.display())]
    Interpolation {
        file: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{}:{line}:{column}: `{path}` {message}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        /// Dotted path of the bad value (`services.web.ports`).
        path: String,
        service: Option<String>,
        message: String,
    },
    #[error(
        "`{section}.{name}` in `{}` is also defined, differently, by an included project; Compose refuses this (override it with another `-f` file instead)",
        file.display()
    )]
    IncludeConflict {
        section: String,
        name: String,
        file: PathBuf,
    },
    #[error("include cycle: {}", chain_text(chain))]
    IncludeCycle { chain: Vec<PathBuf> },
    #[error("extends cycle: {}", chain.join(" -> "))]
    ExtendsCycle { chain: Vec<String> },
    #[error(
        "service `{service}` in `{}` extends `{base}`, which is not defined in `{}`",
        file.display(),
        base_file.display()
    )]
    ExtendsUnknown {
        service: String,
        base: String,
        file: PathBuf,
        base_file: PathBuf,
    },
    #[error("service `{service}` depends on `{dependency}`, which {why}")]
    Dependency {
        service: String,
        dependency: String,
        why: String,
    },
    #[error("service `{service}` in `{}` has neither `image` nor `build`", file.display())]
    NoImage { service: String, file: PathBuf },
    #[error(
        "invalid project name `{name}`: it must contain only lowercase letters, digits, `-` and `_`, and start with a letter or digit"
    )]
    ProjectName { name: String },
}

impl Classify for Error {
    fn class(&self) -> Class {
        Class::Input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_input_errors() {
        let e = Error::FileNotFound {
            path: "x.yaml".into(),
        };
        assert_eq!(e.class(), Class::Input);
        assert_eq!(e.to_string(), "Compose file `x.yaml` not found");
    }
}
