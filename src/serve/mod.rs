//! `serve`: a read-only OCI distribution registry straight from bundle files. Owns the
//! catalog of blob offsets (`catalog`), request routing (`router`), the answers
//! (`handlers`), Basic auth (`auth`) and the listener with TLS, access log and graceful
//! shutdown (`server`). Nothing is extracted: blobs are streamed from their offsets.
//! Built on `bundle::read`; driven by `cli::serve`. `catalog` and `compose_override` are
//! also used by `push`.

pub mod auth;
pub mod catalog;
pub mod handlers;
pub mod router;
pub mod server;

pub use catalog::{Catalog, CatalogError, CatalogImage, CatalogOptions};
pub use server::{Server, ServerOptions};

use crate::error::{Class, Classify};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("Failed to read the {what}")]
    ReadFile {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` line {line}: {reason}", path.display())]
    Htpasswd {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("Cannot use TLS certificate or key `{}`: {message}", path.display())]
    Tls { path: PathBuf, message: String },
    #[error("Cannot listen on `{addr}`")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for ServeError {
    fn class(&self) -> Class {
        match self {
            ServeError::Catalog(e) => e.class(),
            ServeError::Bind { .. } => Class::Environment,
            _ => Class::Input,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            ServeError::Catalog(e) => e.hint(),
            _ => None,
        }
    }
}

/// A compose override that points every service of `images` at `host_prefix`
/// (`127.0.0.1:5000`, `registry.lan/mirror`): `services: {svc: {image: host_prefix/repo:tag}}`.
/// Services are sorted; a service named by two images keeps the first.
pub fn compose_override(images: &[CatalogImage], host_prefix: &str, comment: &str) -> String {
    let mut file = crate::compose_override::ComposeOverride::new(comment);
    for img in images {
        for s in &img.services {
            file.service(s)
                .image
                .get_or_insert_with(|| img.name_at(host_prefix));
        }
    }
    file.to_yaml()
}

/// The `/etc/docker/daemon.json` keys that make engines use this server: the address as
/// an insecure registry (plain HTTP), or as a Hub mirror with `mirror`.
pub fn daemon_json(advertise: &str, tls: bool, mirror: bool) -> serde_json::Value {
    let scheme = if tls { "https" } else { "http" };
    let mut v = serde_json::Map::new();
    if mirror {
        v.insert(
            "registry-mirrors".into(),
            serde_json::json!([format!("{scheme}://{advertise}")]),
        );
    }
    if !tls {
        v.insert("insecure-registries".into(), serde_json::json!([advertise]));
    }
    serde_json::Value::Object(v)
}
