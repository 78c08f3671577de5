//! What `up` records in `DIR/.airlock-up.json`: the project name, files, env files,
//! profiles and Compose CLI it started the project with, and their fingerprint. `check
//! --dir` reads it back to check the project as `up` started it.

use crate::compose::LoadOptions;
use crate::error::Context as _;
use std::path::{Path, PathBuf};

/// What `airlock up` records in `DIR/.airlock-up.json` for `check --dir`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpState {
    pub project: String,
    /// Compose files passed with `-f` (relative to the directory), the override last.
    pub files: Vec<String>,
    pub env_files: Vec<String>,
    pub profiles: Vec<String>,
    /// `v1` (docker-compose 1.x) or `v2`.
    pub compose: String,
    /// sha256 of the files and options Compose was started with (a second `up` with the
    /// same fingerprint and a running project changes nothing).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

pub const UP_STATE: &str = ".airlock-up.json";

/// The load options `airlock up` used in `dir`.
pub fn read(dir: &Path) -> crate::error::Result<(UpState, LoadOptions)> {
    let path = dir.join(UP_STATE);
    let text = fs_err::read_to_string(&path).with_context(|| {
        format!(
            "`{}` was not set up by `airlock up` (no {UP_STATE})",
            dir.display()
        )
    })?;
    let state: UpState =
        serde_json::from_str(&text).with_context(|| format!("Cannot read `{}`", path.display()))?;
    let opts = LoadOptions {
        files: state.files.iter().map(|f| dir.join(f)).collect(),
        project_directory: Some(dir.to_path_buf()),
        env_files: state.env_files.iter().map(PathBuf::from).collect(),
        profiles: state.profiles.clone(),
        project_name: Some(state.project.clone()),
        ..LoadOptions::default()
    };
    Ok((state, opts))
}
