//! Registry client (distribution API, formats.md sections 2-4): owns speaking to
//! registries for pulls. `client` does HTTP (ping, challenges, tokens, retries, redirects,
//! TLS/plain-HTTP rules), `auth` reads credentials, `resolve` turns a `Reference` into a
//! `ResolvedImage` (index -> platform manifest -> config -> layers, original bytes kept) and
//! `pull` fetches its blobs into the `store` (verified, resumed, `--jobs` at a time).
//! Used by `pack` (and its `lock`).

pub mod auth;
pub mod client;
pub mod pull;
pub mod push;
pub mod resolve;

pub use client::{Client, Options};
pub use pull::{PullStats, pull};
pub use resolve::resolve;

use crate::digest::Digest;
use crate::error::{Class, Classify};
use crate::store::StoreError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Cannot reach registry `{host}` ({what})")]
    Connect {
        host: String,
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("TLS certificate of registry `{host}` is not trusted")]
    Tls {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Registry `{host}` answered {status} to {what}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        host: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("Registry `{host}` does not know `{reference}` ({what} not found)")]
    NotFound {
        host: String,
        reference: String,
        what: String,
    },
    #[error("Registry `{host}` refused access to `{reference}` (401 Unauthorized{})", if *anonymous { ", no credentials found" } else { "" })]
    Unauthorized {
        host: String,
        reference: String,
        anonymous: bool,
    },
    #[error("Failed to get a token for `{reference}` from `{realm}`: {message}")]
    Token {
        realm: String,
        reference: String,
        message: String,
    },
    #[error("`{host}` is not a loopback address; refusing plain HTTP")]
    PlainHttp { host: String },
    #[error(
        "`{reference}` is a schema 1 manifest (`{media_type}`), which Docker removed in 28.2; re-push the image with a current client"
    )]
    Schema1 {
        reference: String,
        media_type: String,
    },
    #[error("Manifest `{what}` of `{reference}` is larger than the {limit} bytes allowed")]
    ManifestTooLarge {
        reference: String,
        what: String,
        limit: u64,
    },
    #[error("Manifest of `{reference}` has digest `{actual}`, but {claimed_by} says `{expected}`")]
    ManifestDigest {
        reference: String,
        expected: Digest,
        actual: Digest,
        /// Who named `expected`: the reference, a `Docker-Content-Digest` header, the index.
        claimed_by: String,
    },
    #[error("Manifest `{digest}` of `{reference}` is not a valid {what}: {message}")]
    BadManifest {
        reference: String,
        digest: Digest,
        what: String,
        message: String,
    },
    #[error("Unsupported media type `{media_type}` for `{reference}`")]
    MediaType {
        reference: String,
        media_type: String,
    },
    #[error("`{reference}` has no image for platform `{platform}` (available: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error(
        "Layer {index} (`{digest}`) of `{reference}` uncompresses to `{actual}`, but the image config says `{expected}`"
    )]
    DiffId {
        reference: String,
        index: usize,
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("Blob `{digest}` of `{reference}` failed")]
    Blob {
        reference: String,
        digest: Digest,
        #[source]
        source: StoreError,
    },
    #[error("Download of blob `{digest}` of `{reference}` failed after {attempts} attempts")]
    Download {
        reference: String,
        digest: Digest,
        attempts: u32,
        #[source]
        source: Box<RegistryError>,
    },
    #[error(
        "Blob `{digest}` of `{reference}`: the registry sent {status} to a resumed request (`Range: bytes={offset}-`), expected 206"
    )]
    RangeIgnored {
        reference: String,
        digest: Digest,
        status: u16,
        offset: u64,
    },
    #[error(
        "Registry `{host}` redirected {what} of `{reference}` more than {limit} times (a redirect loop?); the last redirect pointed to `{location}`"
    )]
    Redirects {
        host: String,
        what: String,
        reference: String,
        limit: usize,
        location: String,
    },
    #[error("Download of blob `{digest}` was interrupted after {received} bytes")]
    Interrupted {
        digest: Digest,
        received: u64,
        #[source]
        source: reqwest::Error,
    },
    #[error("Failed to read `{}`: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("Credential helper `{helper}` failed for `{server}`: {message}")]
    Helper {
        helper: String,
        server: String,
        message: String,
    },
    #[error("Cannot use CA certificate `{}`: {message}", path.display())]
    CaCert { path: PathBuf, message: String },
    #[error("`{reference}`: locked manifest `{digest}` is not in its index any more")]
    LockedManifestGone { reference: String, digest: Digest },
    #[error("Cancelled; partial downloads are kept in the cache and resumed by the next pack")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for RegistryError {
    fn class(&self) -> Class {
        use RegistryError::*;
        match self {
            Connect { .. }
            | Tls { .. }
            | Status { .. }
            | Token { .. }
            | Download { .. }
            | Interrupted { .. }
            | RangeIgnored { .. }
            | Redirects { .. }
            | Cancelled => Class::Environment,
            // What the registry sent failed a check: wrong digest, too large, malformed.
            ManifestDigest { .. }
            | ManifestTooLarge { .. }
            | BadManifest { .. }
            | DiffId { .. } => Class::Failed,
            // A wrong blob fails the check; a cache that cannot be written is the environment.
            Blob { source, .. } => source.class(),
            Store(e) => e.class(),
            _ => Class::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        use RegistryError::*;
        match self {
            Tls { host, .. } => Some(format!(
                "pass `--ca-cert FILE` with the registry's CA certificate, or put it in `/etc/docker/certs.d/{host}/ca.crt`"
            )),
            Unauthorized { host, .. } => Some(format!(
                "log in with `docker login {host}` or give credentials in `$DOCKER_CONFIG/config.json`"
            )),
            PlainHttp { host } => Some(format!("pass `--insecure-registry {host}` to allow it")),
            Download { source, .. } => source.hint(),
            Blob { source, .. } => source.hint(),
            Store(e) => e.hint(),
            _ => None,
        }
    }
}
