//! Registry credentials and authentication challenges: owns reading `config.json`
//! (`$DOCKER_CONFIG` or `~/.docker`: `credHelpers` wins, then `credsStore`, then inline
//! `auths`), the credential-helper protocol (`docker-credential-<name> get`), and parsing
//! `WWW-Authenticate` challenges. Hand-written rather than the `docker_credential` crate:
//! that crate consults `auths` before `credsStore`, ignores `registrytoken` and reports a
//! helper's "not found" as a failure, where Docker treats it as anonymous.
//! Used by `registry::client`.

use super::RegistryError;
use crate::reference::DOCKER_HUB;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What to authenticate with at one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user).
    IdentityToken(String),
    /// Sent as a Bearer token directly (`registrytoken`).
    RegistryToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(***)"),
            Credential::RegistryToken(_) => f.write_str("RegistryToken(***)"),
        }
    }
}

impl Credential {
    pub fn basic_header(username: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        )
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

/// The directory holding `config.json`.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// The key Docker uses for a registry in `config.json` and with helpers.
pub fn server_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// `https://host:port/v1/` -> `host:port`; Hub aliases -> `docker.io`.
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

/// Credentials for `registry` (canonical name: `docker.io`, `host:port`), or `None` for anonymous.
pub fn lookup(registry: &str) -> Result<Option<Credential>, RegistryError> {
    let Some(dir) = config_dir() else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let bytes = match fs_err::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RegistryError::Config {
                path,
                message: e.to_string(),
            });
        }
    };
    let config: DockerConfig =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
    lookup_in(&config, registry, &path)
}

fn lookup_in(
    config: &DockerConfig,
    registry: &str,
    path: &std::path::Path,
) -> Result<Option<Credential>, RegistryError> {
    let key = server_key(registry);
    let helper = config
        .cred_helpers
        .iter()
        .find(|(k, _)| key_host(k) == registry)
        .map(|(_, v)| v.clone())
        .or_else(|| config.creds_store.clone())
        .filter(|h| !h.is_empty());
    if let Some(helper) = helper
        && let Some(c) = from_helper(&helper, &key)?
    {
        return Ok(Some(c));
    }
    let entry = config.auths.get(&key).or_else(|| {
        config
            .auths
            .iter()
            .find(|(k, _)| key_host(k) == registry)
            .map(|(_, v)| v)
    });
    let Some(entry) = entry else { return Ok(None) };
    if let Some(t) = entry.registrytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::RegistryToken(t.clone())));
    }
    if let Some(t) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(t.clone())));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let bad = || RegistryError::Config {
            path: path.to_path_buf(),
            message: format!("`auths.{key}.auth` is not base64 of `user:password`"),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(auth.trim()))
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (u, p) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credential::Basic {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credential::Basic {
            username: u.clone(),
            password: p.clone(),
        }));
    }
    Ok(None)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// `docker-credential-<helper> get` with the server key on stdin.
fn from_helper(helper: &str, key: &str) -> Result<Option<Credential>, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| RegistryError::Helper {
        helper: program.clone(),
        server: key.to_string(),
        message,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(key.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!(
            "{} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let answer: HelperAnswer =
        serde_json::from_str(stdout.trim()).map_err(|e| fail(format!("unreadable answer: {e}")))?;
    if answer.username == "<token>" {
        Ok(Some(Credential::IdentityToken(answer.secret)))
    } else {
        Ok(Some(Credential::Basic {
            username: answer.username,
            password: answer.secret,
        }))
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse the first Basic or Bearer challenge of a `WWW-Authenticate` value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key="value", key2=value2` with quoted values that may contain commas.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/redis:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="airlock-test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    fn cfg(json: &str) -> DockerConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn inline_auths() {
        let p = std::path::Path::new("config.json");
        let c = cfg(
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"reg.lan:5000":{"identitytoken":"tok"},"http://other.lan/v1/":{"username":"a","password":"b"}}}"#,
        );
        assert_eq!(
            lookup_in(&c, "docker.io", p).unwrap(),
            Some(Credential::Basic {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert_eq!(
            lookup_in(&c, "reg.lan:5000", p).unwrap(),
            Some(Credential::IdentityToken("tok".into()))
        );
        assert_eq!(
            lookup_in(&c, "other.lan", p).unwrap(),
            Some(Credential::Basic {
                username: "a".into(),
                password: "b".into()
            })
        );
        assert_eq!(lookup_in(&c, "ghcr.io", p).unwrap(), None);
    }

    #[test]
    fn missing_helper_is_named() {
        let c = cfg(r#"{"credHelpers":{"reg.lan":"airlock-test-no-such-helper"}}"#);
        let err = lookup_in(&c, "reg.lan", std::path::Path::new("c.json")).unwrap_err();
        assert!(
            err.to_string()
                .contains("docker-credential-airlock-test-no-such-helper"),
            "{err}"
        );
    }
}
