//! Path rules: relative paths in a compose file resolve against the directory of the file
//! (or included project) that defined them, lexically, like Go's `filepath.Join`; remote build
//! contexts and named volumes are left alone.

use super::yaml::{Node, Value};
use std::path::{Component, Path, PathBuf};

/// `base.join(p)` made lexically clean (`.` and `..` removed), like Go's `filepath.Join`.
pub fn absolutize(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Remote build contexts (git or http URLs) are never resolved against a directory.
pub fn is_remote_context(s: &str) -> bool {
    [
        "http://",
        "https://",
        "git://",
        "git@",
        "github.com/",
        "ssh://",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// A container path cleaned like Go's `path.Clean` (`/data/` -> `/data`, `a/./b` -> `a/b`),
/// as Compose writes a mount target.
pub fn clean_container_path(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let rooted = s.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// A bind-mount source in short volume syntax is a path: `.`, `/` or `~` first.
pub fn is_path_source(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~')
}

/// A relative path joined to `dir` and cleaned; an absolute one (or `~`) as written, as
/// compose-go keeps it.
fn abs_text(dir: &Path, s: &str) -> String {
    if s.starts_with('~') || s.starts_with('/') {
        return s.to_string();
    }
    absolutize(dir, Path::new(s)).to_string_lossy().into_owned()
}

/// Make the relative paths of a whole project tree absolute (`include`d projects).
pub(super) fn resolve_project_paths(doc: &mut Node, dir: &Path) {
    if let Some(Value::Map(services)) = doc.get_mut("services").map(|s| &mut s.value) {
        for (_, svc) in services.iter_mut() {
            resolve_service_paths(svc, dir);
        }
    }
    for section in ["secrets", "configs"] {
        if let Some(Value::Map(items)) = doc.get_mut(section).map(|s| &mut s.value) {
            for (_, item) in items.iter_mut() {
                if let Some(f) = item.get_mut("file")
                    && let Value::Str(s) = &mut f.value
                {
                    *s = abs_text(dir, s);
                }
            }
        }
    }
}

/// Make a service's relative paths (build context, additional contexts, env_file, bind
/// mounts) absolute against `dir`, the directory of the file or project that defined them.
pub fn resolve_service_paths(svc: &mut Node, dir: &Path) {
    if let Some(build) = svc.get_mut("build") {
        match &mut build.value {
            Value::Str(s) if !is_remote_context(s) => *s = abs_text(dir, s),
            Value::Str(_) => {}
            Value::Map(_) => {
                match build.get_mut("context") {
                    Some(Node {
                        value: Value::Str(s),
                        ..
                    }) if !is_remote_context(s) => *s = abs_text(dir, s),
                    Some(_) => {}
                    None => {
                        let at = build.clone();
                        build.insert(
                            "context",
                            Node::new(Value::Str(abs_text(dir, ".")), at.line, at.col),
                        );
                    }
                }
                if let Some(ctxs) = build.get_mut("additional_contexts") {
                    let fix = |s: &mut String| {
                        if !s.contains("://") && !s.starts_with("service:") && !is_remote_context(s)
                        {
                            *s = abs_text(dir, s);
                        }
                    };
                    match &mut ctxs.value {
                        Value::Map(entries) => {
                            for (_, v) in entries.iter_mut() {
                                if let Value::Str(s) = &mut v.value {
                                    fix(s);
                                }
                            }
                        }
                        Value::Seq(items) => {
                            for i in items.iter_mut() {
                                if let Value::Str(s) = &mut i.value
                                    && let Some((k, v)) = s.split_once('=')
                                {
                                    let mut v = v.to_string();
                                    fix(&mut v);
                                    *s = format!("{k}={v}");
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(env_file) = svc.get_mut("env_file") {
        let fix = |n: &mut Node| match &mut n.value {
            Value::Str(s) => *s = abs_text(dir, s),
            Value::Map(_) => {
                if let Some(Node {
                    value: Value::Str(s),
                    ..
                }) = n.get_mut("path")
                {
                    *s = abs_text(dir, s);
                }
            }
            _ => {}
        };
        match &mut env_file.value {
            Value::Seq(items) => items.iter_mut().for_each(fix),
            _ => fix(env_file),
        }
    }
    if let Some(Value::Seq(vols)) = svc.get_mut("volumes").map(|v| &mut v.value) {
        for v in vols.iter_mut() {
            match &mut v.value {
                Value::Str(s) => {
                    if let Some((src, rest)) = s.split_once(':')
                        && is_path_source(src)
                    {
                        *s = format!("{}:{rest}", abs_text(dir, src));
                    }
                }
                Value::Map(_) => {
                    let bind = v.get("type").and_then(Node::text).as_deref() == Some("bind");
                    if bind
                        && let Some(Node {
                            value: Value::Str(s),
                            ..
                        }) = v.get_mut("source")
                    {
                        *s = abs_text(dir, s);
                    }
                }
                _ => {}
            }
        }
    }
}
