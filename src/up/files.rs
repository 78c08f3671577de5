//! The files `up` leaves in the project directory: the bundle's compose, env and run files
//! (a user's edited env files kept, a changed compose file kept as `.before-airlock`), the
//! override, and the fingerprint of what Compose was started with.

use super::state::UpState;
use crate::bundle::read::Meta;
use crate::progress::Reporter;
use crate::stage::safe_rel;
use std::collections::BTreeSet;
use std::path::Path;

/// Write the bundle's compose files into `dir`: env files the user already has are kept,
/// changed compose files are replaced (the old one kept as `<file>.before-airlock`).
/// Returns the paths written.
pub fn write_files(
    meta: &Meta,
    dir: &Path,
    reporter: &dyn Reporter,
) -> crate::error::Result<Vec<String>> {
    let env: BTreeSet<&String> = meta.meta.compose.env_files.iter().collect();
    let mut written = Vec::new();
    for (rel, bytes) in &meta.compose_files {
        if !safe_rel(rel) {
            reporter.warn(&format!(
                "skipping `{rel}` from the bundle: not a relative path"
            ));
            continue;
        }
        let path = dir.join(rel);
        match fs_err::read(&path) {
            Ok(existing) if &existing == bytes => continue,
            Ok(_) if env.contains(rel) || rel.ends_with(".env") => {
                reporter.warn(&format!(
                    "keeping your edited `{}` (the bundle's version differs)",
                    path.display()
                ));
                continue;
            }
            Ok(existing) => {
                let backup = dir.join(format!("{rel}.before-airlock"));
                fs_err::write(&backup, existing)?;
                reporter.warn(&format!(
                    "`{}` differed from the bundle's; the old one is `{}`",
                    path.display(),
                    backup.display()
                ));
            }
            Err(_) => {}
        }
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("airlock-tmp");
        fs_err::write(&tmp, bytes)?;
        fs_err::rename(&tmp, &path)?;
        written.push(rel.clone());
    }
    Ok(written)
}

/// Write `bytes` to `path` unless it already holds them.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> crate::error::Result<bool> {
    if fs_err::read(path).ok().as_deref() == Some(bytes) {
        return Ok(false);
    }
    fs_err::write(path, bytes)?;
    Ok(true)
}

/// `version:` of a compose file, if it has one.
pub fn compose_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("version:"))
        .map(|v| {
            v.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string()
        })
        .filter(|v| !v.is_empty())
}

/// sha256 over the compose files, the override, the env files and the options of `state`.
pub fn fingerprint(dir: &Path, state: &UpState, bundle_env_files: &[String]) -> String {
    let mut h = crate::digest::Hasher::new();
    let mut add = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for f in state.files.iter().chain(bundle_env_files) {
        add(f, &fs_err::read(dir.join(f)).unwrap_or_default());
    }
    for f in &state.env_files {
        add(f, &fs_err::read(f).unwrap_or_default());
    }
    add("profiles", state.profiles.join(",").as_bytes());
    add("compose", state.compose.as_bytes());
    h.finish().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            compose_version("version: '3.8'\nservices: {}\n").as_deref(),
            Some("3.8")
        );
        assert_eq!(compose_version("services: {}\n"), None);
        assert!(!safe_rel("../x") && !safe_rel("/x") && safe_rel("a/.env"));
    }
}
