//! The loaded Compose model: what `compose::load` returns after discovery, env files,
//! interpolation, merging, `include`, `extends` and profiles. Only enabled services are in
//! `Project::services`. Typed fields cover what `plan`, `up` and `check` read; `raw` keeps
//! the whole merged service mapping (as JSON) for everything else.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Project {
    /// Project name (`name:`, `-p`, COMPOSE_PROJECT_NAME, or the directory name), lower-cased.
    pub name: String,
    /// Absolute project directory.
    pub directory: PathBuf,
    /// Every compose file read, absolute, in load order (the `-f` files, then included and
    /// extended files).
    pub files: Vec<PathBuf>,
    /// Every env file read, absolute (`.env` or `--env-file`, and those of includes).
    pub env_files: Vec<PathBuf>,
    /// Enabled profiles (`*` expanded to every profile named by a service).
    pub profiles: Vec<String>,
    /// Enabled services by name.
    pub services: BTreeMap<String, Service>,
    /// Services disabled by profiles (names only).
    pub disabled_services: Vec<String>,
    /// Top-level `volumes:` names.
    pub volumes: Vec<String>,
    /// Top-level definitions by name, as merged and interpolated (`up --swarm` writes them
    /// into the stack file).
    #[serde(skip)]
    pub definitions: Definitions,
    /// Host files and directories the enabled services read at run time, sorted by path.
    pub run_files: Vec<RunFile>,
    /// Problems that did not stop loading (unset variables, ignored keys...).
    pub warnings: Vec<Warning>,
}

/// A host path a service reads when it runs (`env_file`, a bind-mount source, the `file:` of a
/// config or secret): it must exist on the offline host too.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunFile {
    /// `env_file`, `bind`, `config` or `secret`.
    pub kind: String,
    /// Absolute path (a bind source written with `~` is kept as written).
    pub path: PathBuf,
    /// Services that use it, sorted.
    pub services: Vec<String>,
    /// False only for an `env_file` with `required: false` (Compose then skips a missing one).
    pub required: bool,
}

/// The top-level `networks:`, `volumes:`, `configs:` and `secrets:` mappings, by name (a
/// definition written empty is `null`); a relative `file:` of a config or secret made absolute
/// against the project directory.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    pub networks: BTreeMap<String, serde_json::Value>,
    pub volumes: BTreeMap<String, serde_json::Value>,
    pub configs: BTreeMap<String, serde_json::Value>,
    pub secrets: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// Stable code: `unset-variable`, ...
    pub code: String,
    pub message: String,
    /// File the warning is about, when known.
    pub file: Option<PathBuf>,
    pub service: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Service {
    pub name: String,
    /// `image:` after interpolation, exactly as written (never normalised).
    pub image: Option<String>,
    pub build: Option<Build>,
    /// `pull_policy:` as written (`always`, `never`, `missing`, `if_not_present`, `build`, `daily`, ...).
    pub pull_policy: Option<String>,
    /// `platform:` as written.
    pub platform: Option<String>,
    pub profiles: Vec<String>,
    pub depends_on: BTreeMap<String, DependsOn>,
    /// `environment:` (map or list form), then the variables of its `env_file`s that exist
    /// (`environment:` wins); `None` value = `KEY` without `=`.
    pub environment: BTreeMap<String, Option<String>>,
    /// `command:` and `entrypoint:` as lists of words (a string is split on white space).
    pub command: Vec<String>,
    pub entrypoint: Vec<String>,
    pub volumes: Vec<Mount>,
    pub ports: Vec<Port>,
    pub healthcheck: Option<serde_json::Value>,
    pub restart: Option<String>,
    /// `container_name:`
    pub container_name: Option<String>,
    /// Image references used by `volumes: - type: image, source: <ref>`.
    pub image_volumes: Vec<String>,
    /// The whole merged service mapping after interpolation (for fields not typed above).
    pub raw: serde_json::Value,
    /// The compose file that defined the service (the last one merged into it).
    pub file: PathBuf,
    /// The compose file that set its `image:` (the last one to set it; `file` when the image
    /// came through `extends` or there is none).
    pub image_file: PathBuf,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Build {
    /// Absolute context directory, or `None` for a remote context (git URL, http URL).
    pub context: Option<PathBuf>,
    /// The context as written (for remote contexts and messages).
    pub context_raw: String,
    /// `dockerfile:` relative to the context as written (default `Dockerfile`).
    pub dockerfile: Option<String>,
    pub dockerfile_inline: Option<String>,
    /// Build args; `None` = `KEY` with no value (taken from the environment by Compose, here
    /// already looked up: `None` only when unset).
    pub args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    /// `additional_contexts:` name -> value (`docker-image://ref`, a path, `service:name`).
    pub additional_contexts: BTreeMap<String, String>,
    pub platforms: Vec<String>,
    pub pull: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DependsOn {
    /// `service_started` (default), `service_healthy`, `service_completed_successfully`.
    pub condition: String,
    pub required: bool,
    pub restart: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    /// `volume`, `bind`, `tmpfs`, `image`, `npipe`, `cluster`.
    pub kind: String,
    /// Volume name, host path (made absolute against the directory of the project or file
    /// that defined it, as `docker compose config` shows it; `~` kept) or image reference;
    /// `None` for anonymous volumes.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Port {
    pub host_ip: Option<String>,
    /// Published host port or range as written (`8080`, `8080-8081`); `None` = not published / random.
    pub published: Option<String>,
    pub target: u16,
    pub protocol: String,
}
