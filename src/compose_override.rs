//! The Compose override files airlock writes, and the one reader of them: `up` (never pull;
//! digest-pinned references mapped to local tags), `load` (the override it prints for those
//! tags), `serve` and `push` (every service pointed at the served or pushed name). One
//! writer, so that every file quotes its keys and values the same way; `check --dir` reads
//! the `image:` lines back.

use std::collections::BTreeMap;

/// What one service's entry sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceOverride {
    /// `pull_policy: never`.
    pub pull_never: bool,
    /// `image:` replacing the service's own.
    pub image: Option<String>,
}

/// A Compose override file: a comment, the `version:` docker-compose 1.x checks, and one
/// entry per service (sorted by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeOverride {
    /// Comment lines at the top (without `# `).
    pub comment: String,
    /// `version:` of the files it is merged with (docker-compose 1.x refuses to mix).
    pub version: Option<String>,
    pub services: BTreeMap<String, ServiceOverride>,
}

impl ComposeOverride {
    pub fn new(comment: &str) -> Self {
        ComposeOverride {
            comment: comment.to_string(),
            ..Default::default()
        }
    }

    /// The entry of `service`, created empty.
    pub fn service(&mut self, service: &str) -> &mut ServiceOverride {
        self.services.entry(service.to_string()).or_default()
    }

    /// The YAML text: keys quoted unless they are plain service names, values always quoted.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for line in self.comment.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        if let Some(v) = &self.version {
            out.push_str(&format!("version: {}\n", quoted(v)));
        }
        if self.services.is_empty() {
            out.push_str("services: {}\n");
            return out;
        }
        out.push_str("services:\n");
        for (name, s) in &self.services {
            out.push_str(&format!("  {}:", key(name)));
            if !s.pull_never && s.image.is_none() {
                out.push_str(" {}\n");
                continue;
            }
            out.push('\n');
            if s.pull_never {
                out.push_str("    pull_policy: never\n");
            }
            if let Some(image) = &s.image {
                out.push_str(&format!("    image: {}\n", quoted(image)));
            }
        }
        out
    }
}

/// `image:` of each service in an override file this module wrote (`check --dir` reads the
/// one `up` left).
pub fn images_in(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut service = None;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("  ")
            .filter(|l| !l.starts_with(' '))
            .and_then(|l| l.strip_suffix(':'))
        {
            service = Some(unquote(name));
        } else if let (Some(s), Some(img)) = (&service, line.trim().strip_prefix("image: ")) {
            out.insert(s.clone(), unquote(img));
        }
    }
    out
}

/// `image:` of each service in the override file at `path` (empty when it cannot be read).
pub fn images_in_file(path: &std::path::Path) -> BTreeMap<String, String> {
    fs_err::read_to_string(path)
        .map(|t| images_in(&t))
        .unwrap_or_default()
}

/// A double-quoted YAML scalar (JSON string syntax is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.starts_with('"')
        && let Ok(v) = serde_json::from_str::<String>(s)
    {
        return v;
    }
    s.trim_matches('"').to_string()
}

/// Service names are `[a-zA-Z0-9._-]+`; quote anything else.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        s.to_string()
    } else {
        quoted(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let mut o = ComposeOverride::new("first\nsecond");
        o.version = Some("3.8".into());
        o.service("db").pull_never = true;
        let web = o.service("web");
        web.pull_never = true;
        web.image = Some("nginx:airlock-e3b0c44298fc".into());
        o.service("odd name").image = Some("r:1".into());
        let y = o.to_yaml();
        assert_eq!(
            y,
            "# first\n# second\nversion: \"3.8\"\nservices:\n  db:\n    pull_policy: never\n  \"odd name\":\n    image: \"r:1\"\n  web:\n    pull_policy: never\n    image: \"nginx:airlock-e3b0c44298fc\"\n"
        );
        let back = images_in(&y);
        assert_eq!(back.len(), 2);
        assert_eq!(back["web"], "nginx:airlock-e3b0c44298fc");
        assert_eq!(back["odd name"], "r:1");
    }

    #[test]
    fn empty_has_no_services() {
        assert_eq!(ComposeOverride::new("c").to_yaml(), "# c\nservices: {}\n");
    }

    #[test]
    fn reads_unquoted_values() {
        let back = images_in("services:\n  web:\n    image: nginx:1\n");
        assert_eq!(back["web"], "nginx:1");
    }
}
