//! Basic auth for `serve`: owns reading an htpasswd file (bcrypt entries only, as
//! `htpasswd -B` writes and the distribution server requires) and checking
//! `Authorization: Basic` headers. bcrypt is slow on purpose, so a verified header is
//! remembered (by its sha256, bounded) and checks run on the blocking pool.
//! Used by `serve::handlers`.

use super::ServeError;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Verified headers remembered at most.
const CACHE_LIMIT: usize = 1024;

pub struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256 of an `Authorization` value that verified -> user.
    verified: Mutex<HashMap<crate::digest::Digest, String>>,
}

impl Htpasswd {
    pub fn read(path: &Path) -> Result<Htpasswd, ServeError> {
        let text = fs_err::read_to_string(path).map_err(|source| ServeError::ReadFile {
            what: "htpasswd file",
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Htpasswd, ServeError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &'static str| ServeError::Htpasswd {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| bad("not `user:hash`"))?;
            if !(hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$")) {
                return Err(bad("only bcrypt hashes are accepted (`htpasswd -B`)"));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(ServeError::Htpasswd {
                path: path.to_path_buf(),
                line: 0,
                reason: "no users",
            });
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::default(),
        })
    }

    /// The user when `headers` carry valid Basic credentials.
    pub async fn check(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let key = crate::digest::Digest::of(value.as_bytes());
        if let Some(u) = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Some(u.clone());
        }
        let encoded = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let hash = self.users.get(user)?.clone();
        let password = password.to_string();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !ok {
            return None;
        }
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, user.to_string());
        Some(user.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(user: &str, pw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn bcrypt_entries() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let h = Htpasswd::parse(&format!("# comment\nalice:{hash}\n"), Path::new("x")).unwrap();
        assert_eq!(
            h.check(&headers("alice", "s3cret")).await.as_deref(),
            Some("alice")
        );
        // cached path
        assert_eq!(
            h.check(&headers("alice", "s3cret")).await.as_deref(),
            Some("alice")
        );
        assert_eq!(h.check(&headers("alice", "wrong")).await, None);
        assert_eq!(h.check(&headers("bob", "s3cret")).await, None);
        assert_eq!(h.check(&HeaderMap::new()).await, None);
    }

    #[test]
    fn refuses_other_hashes() {
        assert!(Htpasswd::parse("a:$apr1$xyz$abc\n", Path::new("x")).is_err());
        assert!(Htpasswd::parse("a:{SHA}abc\n", Path::new("x")).is_err());
        assert!(Htpasswd::parse("\n", Path::new("x")).is_err());
    }
}
