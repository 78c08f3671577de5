//! A bundle's compose project, opened: the compose, env and run files the bundle carries
//! staged in a temporary directory, loaded as Compose would load them there, and planned for
//! the bundle's platform; and which of the images that plan needs are not available.
//! One set of path rules for every reader (`bundle::verify`'s completeness check and `up`):
//! only a plain project name becomes a directory, only plain relative paths are written,
//! and a build context outside the staging directory is never read (a bundle's compose file
//! must not make airlock read `/dev/zero` or a host's Dockerfile).

use crate::bundle::read::{Meta, entry_files};
use crate::compose::{LoadOptions, Project};
use crate::plan::{Kind, Plan, PlanImage, PlanOptions};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// How to open the project; the default is the project exactly as the bundle carries it.
#[derive(Debug, Clone, Default)]
pub struct StageOptions {
    /// A directory whose existing env files win over the bundle's (`up --dir`, where the
    /// user may have edited `.env`; they win there too once the files are written).
    pub env_from: Option<PathBuf>,
    /// Env files for interpolation instead of the project's `.env` (`up --env-file`).
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable (empty: the ones the bundle was packed with).
    pub profiles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("Cannot stage the bundle's compose files in `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Load(#[from] crate::compose::Error),
    #[error(transparent)]
    Plan(#[from] crate::plan::Error),
}

impl crate::error::Classify for StageError {
    fn class(&self) -> crate::error::Class {
        match self {
            StageError::Write { .. } => crate::error::Class::Environment,
            StageError::Load(e) => e.class(),
            StageError::Plan(e) => e.class(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            StageError::Write { .. } => None,
            StageError::Load(e) => e.hint(),
            StageError::Plan(e) => e.hint(),
        }
    }
}

/// The project as it opens from the bundle; the staging directory lives as long as this.
#[derive(Debug)]
pub struct Staged {
    _tmp: tempfile::TempDir,
    /// The staging directory (the project directory Compose saw).
    pub dir: PathBuf,
    /// The compose files passed with `-f`, relative to the project directory (files that
    /// another one includes or extends are left out).
    pub files: Vec<String>,
    /// Profiles enabled.
    pub profiles: Vec<String>,
    pub project: Project,
    pub plan: Plan,
}

/// A bundle about to be started (`up`, `up --swarm`): its metadata, and the absolute
/// directory its compose files go to (`dir`, default `./<project name>`). A bundle without a
/// compose file is refused (bad input) with `why`, which says what to do instead.
pub fn target(
    bundle: &Path,
    dir: Option<&Path>,
    why: &str,
) -> crate::error::Result<(Meta, PathBuf)> {
    use crate::error::Context as _;
    let meta = crate::bundle::read::Bundle::open(bundle)?
        .open_meta()
        .with_context(|| format!("Cannot read `{}`", bundle.display()))?;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir()?.join(&meta.meta.project),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    if entry_files(&meta.meta.compose.files, &meta.compose_files).is_empty() {
        return Err(crate::error::Classified::input(format!(
            "Bundle `{}` carries no compose file: {why}",
            bundle.display()
        ))
        .into());
    }
    Ok((meta, dir))
}

/// Whether `rel` is a plain relative path (no root, no `.` or `..`, no empty component).
pub fn safe_rel(rel: &str) -> bool {
    !rel.is_empty()
        && rel
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

/// Stage, load and plan the compose project `meta` carries.
pub fn open(meta: &Meta, opts: &StageOptions) -> Result<Staged, StageError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StageError::Write { path, source }
    };
    let tmp = tempfile::tempdir().map_err(write_err(&std::env::temp_dir()))?;
    // The project name comes from the bundle: only a plain name may become a directory
    // (`/etc` or `../..` would stage the compose files outside the temporary directory).
    let name = &meta.meta.project;
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    let stage = tmp
        .path()
        .join(if plain { name.as_str() } else { "project" });
    let env_files: BTreeSet<&String> = meta.meta.compose.env_files.iter().collect();
    for (rel, bytes) in &meta.compose_files {
        if !safe_rel(rel) {
            continue;
        }
        let path = stage.join(rel);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).map_err(write_err(parent))?;
        }
        let is_env = env_files.contains(rel) || rel.ends_with(".env");
        let user = opts
            .env_from
            .as_ref()
            .filter(|_| is_env)
            .and_then(|dir| fs_err::read(dir.join(rel)).ok());
        fs_err::write(&path, user.as_deref().unwrap_or(bytes)).map_err(write_err(&path))?;
    }
    let files = entry_files(&meta.meta.compose.files, &meta.compose_files);
    let profiles = if opts.profiles.is_empty() {
        meta.meta.compose.profiles.clone()
    } else {
        opts.profiles.clone()
    };
    let load = LoadOptions {
        files: files.iter().map(|f| stage.join(f)).collect(),
        project_directory: Some(stage.clone()),
        env_files: opts
            .env_files
            .iter()
            .map(|e| std::path::absolute(e).unwrap_or_else(|_| e.clone()))
            .collect(),
        profiles: profiles.clone(),
        project_name: Some(meta.meta.project.clone()),
        ..LoadOptions::default()
    };
    let mut project = crate::compose::load(&load)?;
    // A bundle carries no build contexts, so a Dockerfile that exists is one the bundle's
    // compose file points at elsewhere on this host (`context: /dev`, `dockerfile: zero`
    // read without end). Only paths inside the staging directory are read; the others count
    // as missing Dockerfiles, whose base images are then unknown.
    for svc in project.services.values_mut() {
        if let Some(build) = &mut svc.build
            && let Some(context) = &build.context
        {
            let file = context.join(build.dockerfile.as_deref().unwrap_or("Dockerfile"));
            let inside = file
                .strip_prefix(&stage)
                .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))));
            if !inside {
                build.context = Some(stage.join("_outside_the_bundle"));
                build.dockerfile = None;
            }
        }
    }
    let plan = crate::plan::plan(
        &project,
        &PlanOptions {
            platform: meta.meta.platform.clone(),
            ..PlanOptions::default()
        },
    )?;
    Ok(Staged {
        _tmp: tmp,
        dir: stage,
        files,
        profiles,
        project,
        plan,
    })
}

/// Whether the bundle carries `image` (by normalised name or as written).
pub fn carried(meta: &Meta, image: &PlanImage) -> bool {
    let r = &image.reference;
    meta.meta.images.iter().any(|i| {
        i.reference.normalized() == r.normalized() || i.reference.original() == r.original()
    })
}

/// The images `plan` needs that `available` says are missing: every service image, and the
/// build bases (`FROM`, `COPY --from`, `# syntax=`) of services whose built image is missing.
pub fn missing(plan: &Plan, available: impl Fn(&PlanImage) -> bool) -> Vec<&PlanImage> {
    let unbuilt: BTreeSet<&str> = plan
        .images
        .iter()
        .filter(|i| i.kind == Kind::BuildTag && !available(i))
        .flat_map(|i| i.services.iter().map(String::as_str))
        .collect();
    plan.images
        .iter()
        .filter(|img| match img.kind {
            Kind::Image => true,
            Kind::BuildFrom | Kind::BuildCopyFrom | Kind::BuildSyntax => {
                img.services.iter().any(|s| unbuilt.contains(s.as_str()))
            }
            _ => false,
        })
        .filter(|img| !available(img))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_only() {
        assert!(safe_rel("a/.env") && safe_rel("compose.yaml"));
        assert!(!safe_rel("../x") && !safe_rel("/x") && !safe_rel("a//b") && !safe_rel("./a"));
    }
}
