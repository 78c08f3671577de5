//! Image references: owns `Reference`, parsed and normalised with the distribution
//! grammar (docker.io default, `library/` for single names, `latest` only when neither
//! tag nor digest is given). Written by `compose`/`dockerfile`; read by `plan`,
//! `registry`, `bundle`, `engine` and `serve`. Hand-written: the grammar is small and the
//! crates we looked at either pull in regex at runtime or do not keep the original text.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves the registry API for `docker.io`.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference. Keeps the text as written (after interpolation) next to
/// its normalised parts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    original: String,
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ReferenceError {
    #[error("invalid image reference `{input}`: the reference is empty")]
    Empty { input: String },
    #[error("invalid image reference `{input}`: {reason}")]
    Invalid { input: String, reason: String },
}

/// How firmly a reference names its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pinned {
    /// `@sha256:...`: immutable.
    Digest,
    /// An explicit tag other than `latest`: usually stable, but tags can move.
    Tag,
    /// No tag, or `:latest`: moves with every release.
    Latest,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let invalid = |reason: &str| ReferenceError::Invalid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(ReferenceError::Empty {
                input: input.to_string(),
            });
        }
        if input.trim() != input || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains white space or control characters"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|e| invalid(&format!("bad digest: {e}")))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        if rest.is_empty() {
            return Err(invalid("the name is empty"));
        }
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(&format!(
                "bad tag `{tag}`: a tag is 1 to 128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
            )));
        }
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        if name.len() > 255 {
            return Err(invalid("the name is longer than 255 characters"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_host(first) => {
                if !valid_host(first) {
                    return Err(invalid(&format!("bad registry host `{first}`")));
                }
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        if path.is_empty() {
            return Err(invalid("the repository path is empty"));
        }
        if path.len() == 64
            && path.bytes().all(|b| b.is_ascii_hexdigit())
            && registry == DOCKER_HUB
            && !name.contains('/')
        {
            return Err(invalid("a 64-digit hex string is an image ID, not a name"));
        }
        for component in path.split('/') {
            if component.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(invalid("repository names must be lower-case"));
            }
            if !valid_path_component(component) {
                return Err(invalid(&format!(
                    "bad repository path component `{component}`: use lower-case letters and digits separated by `.`, `_`, `__` or `-`"
                )));
            }
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        // As Docker: the limit is on the normalised name (`docker.io/library/...`), so the
        // normalised form always parses back.
        if registry.len() + 1 + repository.len() > 255 {
            return Err(invalid(
                "the name is longer than 255 characters (as docker.io/library/... when normalised)",
            ));
        }
        Ok(Reference {
            original: input.to_string(),
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The text as written (after interpolation).
    pub fn original(&self) -> &str {
        &self.original
    }
    /// Canonical registry name (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// Host to speak the registry API to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }
    /// Repository path on the registry (`library/redis`).
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// The tag, or `latest` when neither tag nor digest was given.
    pub fn tag_or_default(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }
    /// What to ask the registry for: the digest if pinned (Docker ignores the tag then), else the tag.
    pub fn wire_reference(&self) -> String {
        match (&self.digest, self.tag_or_default()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        }
    }
    /// `docker.io/library/redis`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
    /// `redis`, `bitnami/redis`, `ghcr.io/acme/api`: as `docker images` shows it.
    /// Keeps `docker.io/` where dropping it would change the meaning (`docker.io/a.b/c` is not
    /// `a.b/c`, which names the registry `a.b`), and `library/` before a path with more parts.
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        let short = match self.repository.strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest,
            _ => &self.repository,
        };
        match short.split_once('/') {
            Some((first, _)) if looks_like_host(first) => self.name(),
            _ => short.to_string(),
        }
    }
    /// Fully normalised: `docker.io/library/redis:6.2-alpine`, `docker.io/library/nginx@sha256:..`,
    /// `name:tag@digest` when both are given.
    pub fn normalized(&self) -> String {
        let mut s = self.name();
        if let Some(t) = self.tag_or_default() {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
    /// Familiar form with tag (`redis:6.2-alpine`), the form `RepoTags` use.
    /// `None` for digest-only references, which cannot be a tag.
    pub fn familiar_tagged(&self) -> Option<String> {
        self.tag_or_default()
            .map(|t| format!("{}:{}", self.familiar_name(), t))
    }
    /// Normalised name with tag (`docker.io/library/redis:6.2-alpine`), no digest.
    pub fn normalized_tagged(&self) -> Option<String> {
        self.tag_or_default()
            .map(|t| format!("{}:{}", self.name(), t))
    }
    pub fn pinned(&self) -> Pinned {
        if self.digest.is_some() {
            Pinned::Digest
        } else if matches!(self.tag.as_deref(), None | Some("latest")) {
            Pinned::Latest
        } else {
            Pinned::Tag
        }
    }
    /// The same name pinned to `digest` (tag kept).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        let mut r = self.clone();
        r.digest = Some(digest);
        r.original = r.normalized();
        r
    }
    /// The same repository under another tag.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(&format!("{}:{}", self.name(), tag))
    }
}

/// The tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // [ipv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// The repository path grammar (without a registry host): components
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, at most 255 characters.
pub fn valid_repository(path: &str) -> bool {
    !path.is_empty() && path.len() <= 255 && path.split('/').all(valid_path_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({} -> {})", self.original, self.normalized())
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.original)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regressions found by the `reference` fuzz target: the familiar form of a Docker Hub
    /// repository whose first part looks like a host parsed back as another registry, and a
    /// name of 238-255 characters normalised to one that no longer parsed.
    #[test]
    fn familiar_and_normalised_forms_parse_back_to_the_same_name() {
        for input in [
            "docker.io/dex.docker.io/linge",
            "docker.io/library/lx.docker.io/libraryibrary/ng",
            "docker.io/library/a/b",
            "docker.io/localhost/x:1",
            "redis",
            "bitnami/redis:7",
            "docker.io/library/a.b",
        ] {
            let r = Reference::parse(input).unwrap();
            let f = r.familiar_tagged().unwrap();
            assert_eq!(
                Reference::parse(&f).unwrap().normalized(),
                r.normalized(),
                "{input} -> {f}"
            );
            assert_eq!(
                Reference::parse(&r.normalized()).unwrap().normalized(),
                r.normalized()
            );
        }
        assert_eq!(
            Reference::parse("redis:7")
                .unwrap()
                .familiar_tagged()
                .as_deref(),
            Some("redis:7")
        );
        assert!(
            Reference::parse(&"a".repeat(240)).is_err(),
            "docker.io/library/ + 240 > 255"
        );
        let r = Reference::parse(&"a".repeat(237)).unwrap();
        assert_eq!(r.name().len(), 255);
        assert!(Reference::parse(&r.normalized()).is_ok());
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    macro_rules! norm {
        ($name:ident, $input:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(Reference::parse($input).unwrap().normalized(), *$want);
            }
        };
    }
    macro_rules! bad {
        ($name:ident, $input:expr) => {
            #[test]
            fn $name() {
                assert!(
                    Reference::parse($input).is_err(),
                    "{} should be rejected",
                    $input
                );
            }
        };
    }

    norm!(bare, "nginx", &"docker.io/library/nginx:latest");
    norm!(tagged, "nginx:1.25", &"docker.io/library/nginx:1.25");
    norm!(org, "bitnami/redis", &"docker.io/bitnami/redis:latest");
    norm!(
        legacy_index,
        "index.docker.io/nginx",
        &"docker.io/library/nginx:latest"
    );
    norm!(
        explicit_hub,
        "docker.io/library/redis:6.2-alpine",
        &"docker.io/library/redis:6.2-alpine"
    );
    norm!(localhost, "localhost/app", &"localhost/app:latest");
    norm!(
        localhost_port,
        "localhost:5000/app",
        &"localhost:5000/app:latest"
    );
    norm!(
        other_registry,
        "registry.lan:5000/team/app:1",
        &"registry.lan:5000/team/app:1"
    );
    norm!(ghcr, "ghcr.io/acme/api:2.3", &"ghcr.io/acme/api:2.3");
    norm!(
        ip_port,
        "127.0.0.1:5000/demo/web:1",
        &"127.0.0.1:5000/demo/web:1"
    );
    norm!(
        digest_only,
        &format!("nginx@{D}"),
        &format!("docker.io/library/nginx@{D}")
    );
    norm!(
        tag_and_digest,
        &format!("nginx:1.25@{D}"),
        &format!("docker.io/library/nginx:1.25@{D}")
    );
    norm!(
        separators,
        "a__b/c-d.e_f---g:v1",
        &"docker.io/a__b/c-d.e_f---g:v1"
    );
    norm!(ipv6, "[::1]:5000/app:1", &"[::1]:5000/app:1");

    bad!(empty, "");
    bad!(upper_repo, "nginx/Foo");
    bad!(upper_path, "docker.io/Library/nginx");
    bad!(bad_tag, "nginx:-x");
    bad!(empty_tag, "nginx:");
    bad!(bad_digest, "nginx@sha256:abc");
    bad!(space, "ngi nx");
    bad!(trailing_sep, "nginx-");
    bad!(double_dot, "a..b");
    bad!(
        id,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    bad!(unresolved_var, "${IMAGE}");
    bad!(empty_name_tag, ":1.0");
    bad!(empty_host, "/nginx");

    #[test]
    fn familiar_forms() {
        let r = Reference::parse("docker.io/library/redis:6.2-alpine").unwrap();
        assert_eq!(r.familiar_tagged().unwrap(), "redis:6.2-alpine");
        assert_eq!(r.api_host(), DOCKER_HUB_API);
        assert_eq!(r.repository(), "library/redis");
        let r = Reference::parse("ghcr.io/acme/api").unwrap();
        assert_eq!(r.familiar_tagged().unwrap(), "ghcr.io/acme/api:latest");
        assert_eq!(r.pinned(), Pinned::Latest);
        let r = Reference::parse(&format!("nginx@{D}")).unwrap();
        assert_eq!(r.familiar_tagged(), None);
        assert_eq!(r.pinned(), Pinned::Digest);
        assert_eq!(r.wire_reference(), D);
        assert_eq!(
            Reference::parse("nginx:1.25").unwrap().pinned(),
            Pinned::Tag
        );
    }
}
