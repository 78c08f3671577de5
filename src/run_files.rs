//! Run files: owns deciding which host files the services read when they run (`env_file`,
//! bind-mount sources, the `file:` of configs and secrets; listed by `compose` as
//! `Project::run_files`) a bundle carries, so that the project starts offline as it does here.
//! Carried: regular files, and directories of regular files, inside the project directory,
//! within size limits (these are configuration, not data). Not carried, each with a reason:
//! missing paths, paths outside the project directory, special files and symlinks, anything
//! over the limits. Used by `plan` (the `run_files` list and its findings) and `pack`
//! (the files written under `airlock/compose/`, which `up` extracts beside the compose files).

use crate::compose::{Project, RunFile};
use std::path::{Path, PathBuf};

/// Largest single file carried. Bundle readers hold metadata members in memory, within
/// `bundle::read::META_LIMIT` each and `META_TOTAL_LIMIT` in all; run files stay well inside.
pub const MAX_FILE_BYTES: u64 = 2 << 20;
/// Most files carried from one bind-mounted directory.
pub const MAX_DIR_FILES: usize = 1000;
/// Most bytes of run files one bundle carries (half of `META_TOTAL_LIMIT`, the rest is for the
/// compose files and the JSON metadata).
pub const MAX_TOTAL_BYTES: u64 = crate::bundle::read::META_TOTAL_LIMIT / 2;

const _: () = assert!(MAX_FILE_BYTES <= crate::bundle::read::META_LIMIT);

/// What happens to one run file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Assessed {
    /// `env_file`, `bind`, `config` or `secret`.
    pub kind: String,
    /// Relative to the project directory when inside it, else as resolved.
    pub path: String,
    pub services: Vec<String>,
    pub required: bool,
    /// Whether `pack` carries it.
    pub carried: bool,
    /// Regular files carried (1 for a file, the count for a directory).
    pub files: usize,
    pub bytes: u64,
    /// Why it is not carried (`null` when carried).
    pub reason: Option<Reason>,
    /// (name relative to the project directory, absolute source) of every carried file.
    #[serde(skip)]
    pub members: Vec<(String, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Does not exist here.
    Missing,
    /// Outside the project directory (or under `~`).
    Outside,
    /// A symlink, device, socket or fifo, or a directory holding one.
    Special,
    /// Over `MAX_FILE_BYTES`, `MAX_DIR_FILES` or the bundle's `MAX_TOTAL_BYTES`.
    TooLarge,
    /// Could not be read.
    Unreadable,
    /// The project directory itself (`.:/app`): source code, not configuration.
    ProjectDirectory,
}

impl Reason {
    /// Why it is not carried, as the end of a sentence.
    pub fn describe(&self) -> String {
        match self {
            Reason::Missing => "it does not exist".into(),
            Reason::Outside => "it is outside the project directory".into(),
            Reason::Special => "it is, or holds, a symlink or special file".into(),
            Reason::Unreadable => "it cannot be read".into(),
            Reason::ProjectDirectory => {
                "it is the project directory itself (a bundle carries the compose files and run files, not the whole directory)".into()
            }
            Reason::TooLarge => format!(
                "it is over the limits for configuration files ({} per file, {MAX_DIR_FILES} files per directory, {} per bundle)",
                indicatif::HumanBytes(MAX_FILE_BYTES),
                indicatif::HumanBytes(MAX_TOTAL_BYTES)
            ),
        }
    }
}

impl Assessed {
    /// Whether the offline host will lack something the service needs: not carried, except a
    /// missing bind source (Docker creates an empty directory) or optional env file.
    pub fn needs_attention(&self) -> bool {
        match &self.reason {
            None => false,
            Some(Reason::Missing) => self.required && self.kind != "bind",
            Some(_) => true,
        }
    }
}

/// Assess every run file of `project`, in `Project::run_files` order.
pub fn assess(project: &Project) -> Vec<Assessed> {
    let mut total = 0u64;
    project
        .run_files
        .iter()
        .map(|f| {
            let mut a = assess_one(project, f);
            if a.carried {
                if total + a.bytes > MAX_TOTAL_BYTES {
                    a.carried = false;
                    a.reason = Some(Reason::TooLarge);
                    a.members.clear();
                } else {
                    total += a.bytes;
                }
            }
            a
        })
        .collect()
}

fn assess_one(project: &Project, f: &RunFile) -> Assessed {
    let inside = f
        .path
        .strip_prefix(&project.directory)
        .ok()
        .filter(|r| !r.as_os_str().is_empty())
        .map(|r| r.to_string_lossy().replace('\\', "/"));
    let mut a = Assessed {
        kind: f.kind.clone(),
        path: inside
            .clone()
            .unwrap_or_else(|| f.path.display().to_string()),
        services: f.services.clone(),
        required: f.required,
        carried: false,
        files: 0,
        bytes: 0,
        reason: None,
        members: Vec::new(),
    };
    if f.path.starts_with("~") {
        a.reason = Some(Reason::Outside);
        return a;
    }
    if f.path == project.directory {
        a.path = ".".into();
        a.reason = Some(Reason::ProjectDirectory);
        return a;
    }
    let meta = match fs_err::symlink_metadata(&f.path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            a.reason = Some(Reason::Missing);
            return a;
        }
        Err(_) => {
            a.reason = Some(Reason::Unreadable);
            return a;
        }
    };
    let Some(rel) = inside else {
        a.reason = Some(Reason::Outside);
        return a;
    };
    let mut members = Vec::new();
    let result = if meta.is_file() {
        if meta.len() > MAX_FILE_BYTES {
            Err(Reason::TooLarge)
        } else {
            members.push((rel, f.path.clone()));
            Ok(meta.len())
        }
    } else if meta.is_dir() {
        walk(&f.path, &rel, &mut members)
    } else {
        Err(Reason::Special)
    };
    match result {
        Ok(bytes) => {
            a.carried = true;
            a.files = members.len();
            a.bytes = bytes;
            a.members = members;
        }
        Err(reason) => a.reason = Some(reason),
    }
    a
}

/// Collect the regular files under `dir` (sorted, so bundles are reproducible); refuses
/// directories holding anything else or more than the limits.
fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> Result<u64, Reason> {
    let mut entries: Vec<_> = fs_err::read_dir(dir)
        .map_err(|_| Reason::Unreadable)?
        .map(|e| e.map_err(|_| Reason::Unreadable))
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    let mut bytes = 0u64;
    for e in entries {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            return Err(Reason::Unreadable);
        };
        let path = e.path();
        let child = format!("{rel}/{name}");
        let meta = fs_err::symlink_metadata(&path).map_err(|_| Reason::Unreadable)?;
        if meta.is_dir() {
            bytes += walk(&path, &child, out)?;
        } else if meta.is_file() {
            if meta.len() > MAX_FILE_BYTES {
                return Err(Reason::TooLarge);
            }
            bytes += meta.len();
            out.push((child, path));
        } else {
            return Err(Reason::Special);
        }
        if out.len() > MAX_DIR_FILES || bytes > MAX_TOTAL_BYTES {
            return Err(Reason::TooLarge);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(dir: &Path, files: &[(&str, &str, bool)]) -> Project {
        Project {
            name: "p".into(),
            directory: dir.to_path_buf(),
            run_files: files
                .iter()
                .map(|(kind, path, required)| RunFile {
                    kind: kind.to_string(),
                    path: if path.starts_with('/') || path.starts_with('~') {
                        PathBuf::from(path)
                    } else {
                        dir.join(path)
                    },
                    services: vec!["web".into()],
                    required: *required,
                })
                .collect(),
            ..Project::default()
        }
    }

    #[test]
    fn files_and_directories_inside_are_carried_the_rest_named() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs_err::write(d.join("web.env"), "A=1\n").unwrap();
        fs_err::create_dir_all(d.join("conf.d/sub")).unwrap();
        fs_err::write(d.join("conf.d/b.conf"), "b").unwrap();
        fs_err::write(d.join("conf.d/sub/a.conf"), "aa").unwrap();
        fs_err::create_dir_all(d.join("links")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("links/host")).unwrap();
        let big = fs_err::File::create(d.join("big.bin")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        let p = project(
            d,
            &[
                ("env_file", "web.env", true),
                ("bind", "conf.d", true),
                ("bind", "links", true),
                ("bind", "big.bin", true),
                ("env_file", "absent.env", false),
                ("bind", "/etc/hostname", true),
                ("bind", "~/x", true),
            ],
        );
        let a = assess(&p);
        let summary: Vec<(&str, bool, usize, u64, Option<Reason>)> = a
            .iter()
            .map(|a| {
                (
                    a.path.as_str(),
                    a.carried,
                    a.files,
                    a.bytes,
                    a.reason.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("web.env", true, 1, 4, None),
                ("conf.d", true, 2, 3, None),
                ("links", false, 0, 0, Some(Reason::Special)),
                ("big.bin", false, 0, 0, Some(Reason::TooLarge)),
                ("absent.env", false, 0, 0, Some(Reason::Missing)),
                ("/etc/hostname", false, 0, 0, Some(Reason::Outside)),
                ("~/x", false, 0, 0, Some(Reason::Outside)),
            ]
        );
        let names: Vec<&str> = a[1].members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["conf.d/b.conf", "conf.d/sub/a.conf"]);
    }

    #[test]
    fn the_bundle_total_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let mut files = Vec::new();
        for i in 0..5 {
            let name = format!("f{i}.bin");
            let f = fs_err::File::create(d.join(&name)).unwrap();
            f.set_len(MAX_FILE_BYTES).unwrap();
            files.push(name);
        }
        let specs: Vec<(&str, &str, bool)> =
            files.iter().map(|f| ("bind", f.as_str(), true)).collect();
        let a = assess(&project(d, &specs));
        let carried = a.iter().filter(|a| a.carried).count();
        assert_eq!(carried as u64, MAX_TOTAL_BYTES / MAX_FILE_BYTES);
        assert_eq!(a[4].reason, Some(Reason::TooLarge));
    }
}
