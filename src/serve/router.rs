//! Request routing for `serve`: owns turning a method and a raw URI path into a `Route` of
//! the distribution API (formats.md 3.4). Names contain slashes, so paths are matched from
//! the right (`<name>/manifests/<ref>`, `<name>/blobs/<digest>`, `<name>/tags/list`, ...).
//! Pure: no catalog, no I/O. A name must match the distribution grammar, so `..`, `.`,
//! empty components and percent escapes never reach a lookup. Used by `serve::handlers`.

use crate::digest::Digest;
use axum::http::Method;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v2/`
    Ping,
    /// `GET /v2/_catalog`
    Catalog,
    /// `GET /v2/<name>/tags/list`
    Tags { name: String },
    /// `GET|HEAD /v2/<name>/manifests/<tag|digest>`
    Manifest {
        name: String,
        reference: ManifestRef,
    },
    /// `GET|HEAD /v2/<name>/blobs/<digest>`
    Blob { name: String, digest: Digest },
    /// `GET /v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: Digest },
    /// Any request that would change the registry (uploads, manifest PUT, DELETE...).
    Write,
    /// Nothing here; the error code to answer with.
    NotFound(ErrorCode),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

/// Registry error codes (distribution-spec "Error Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NameUnknown,
    ManifestUnknown,
    BlobUnknown,
    Unsupported,
    Unauthorized,
    RangeInvalid,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
        }
    }
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::NameUnknown => "repository name not known to registry",
            ErrorCode::ManifestUnknown => "manifest unknown",
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::Unsupported => "this registry is read-only (airlock serve)",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::RangeInvalid => "invalid content range",
        }
    }
}

/// Route a request. `path` is the raw URI path (no query; not percent-decoded).
pub fn route(method: &Method, path: &str) -> Route {
    let reading = method == Method::GET || method == Method::HEAD;
    if !reading {
        // Writes are refused whatever they name, before anything is parsed.
        return Route::Write;
    }
    let Some(rest) = path.strip_prefix("/v2") else {
        return Route::NotFound(ErrorCode::NameUnknown);
    };
    if rest.is_empty() || rest == "/" {
        return Route::Ping;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Route::NotFound(ErrorCode::NameUnknown);
    };
    if rest == "_catalog" {
        return Route::Catalog;
    }
    // From the right: the last one or two segments say what is asked for.
    let Some((head, last)) = rest.rsplit_once('/') else {
        return Route::NotFound(ErrorCode::NameUnknown);
    };
    if last == "list" {
        return match head.strip_suffix("/tags") {
            Some(name) if valid_name(name) => Route::Tags {
                name: name.to_string(),
            },
            _ => Route::NotFound(ErrorCode::NameUnknown),
        };
    }
    let Some((name, kind)) = head.rsplit_once('/') else {
        return Route::NotFound(ErrorCode::NameUnknown);
    };
    if !valid_name(name) {
        return Route::NotFound(ErrorCode::NameUnknown);
    }
    let name = name.to_string();
    match kind {
        "manifests" => {
            if let Ok(digest) = last.parse::<Digest>() {
                Route::Manifest {
                    name,
                    reference: ManifestRef::Digest(digest),
                }
            } else if valid_tag(last) {
                Route::Manifest {
                    name,
                    reference: ManifestRef::Tag(last.to_string()),
                }
            } else {
                Route::NotFound(ErrorCode::ManifestUnknown)
            }
        }
        "blobs" => match last.parse::<Digest>() {
            Ok(digest) => Route::Blob { name, digest },
            Err(_) => Route::NotFound(ErrorCode::BlobUnknown),
        },
        "referrers" => match last.parse::<Digest>() {
            Ok(digest) => Route::Referrers { name, digest },
            Err(_) => Route::NotFound(ErrorCode::ManifestUnknown),
        },
        _ => Route::NotFound(ErrorCode::NameUnknown),
    }
}

/// The distribution name grammar (shared with `reference`).
pub use crate::reference::{valid_repository as valid_name, valid_tag};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn get(path: &str) -> Route {
        route(&Method::GET, path)
    }

    macro_rules! case {
        ($name:ident, $method:expr, $path:expr, $want:pat) => {
            #[test]
            fn $name() {
                let r = route(&$method, &$path);
                assert!(matches!(r, $want), "{} -> {r:?}", $path);
            }
        };
    }

    case!(ping, Method::GET, "/v2/", Route::Ping);
    case!(ping_no_slash, Method::HEAD, "/v2", Route::Ping);
    case!(catalog, Method::GET, "/v2/_catalog", Route::Catalog);
    case!(
        not_v2,
        Method::GET,
        "/etc/passwd",
        Route::NotFound(ErrorCode::NameUnknown)
    );
    case!(v2x, Method::GET, "/v2x/a/manifests/1", Route::NotFound(_));
    case!(
        tags,
        Method::GET,
        "/v2/library/redis/tags/list",
        Route::Tags { .. }
    );
    case!(
        tag_manifest,
        Method::HEAD,
        "/v2/a/b/c/manifests/6.2-alpine",
        Route::Manifest {
            reference: ManifestRef::Tag(_),
            ..
        }
    );
    case!(
        digest_manifest,
        Method::GET,
        format!("/v2/a/manifests/{D}"),
        Route::Manifest {
            reference: ManifestRef::Digest(_),
            ..
        }
    );
    case!(
        blob,
        Method::GET,
        format!("/v2/a/b/blobs/{D}"),
        Route::Blob { .. }
    );
    case!(
        blob_bad_digest,
        Method::GET,
        "/v2/a/blobs/sha256:zz",
        Route::NotFound(ErrorCode::BlobUnknown)
    );
    case!(
        blob_dotdot,
        Method::GET,
        format!("/v2/../../etc/blobs/{D}"),
        Route::NotFound(ErrorCode::NameUnknown)
    );
    case!(
        name_dotdot_inside,
        Method::GET,
        "/v2/a/../b/manifests/1",
        Route::NotFound(ErrorCode::NameUnknown)
    );
    case!(
        name_escaped,
        Method::GET,
        "/v2/a/%2e%2e/manifests/1",
        Route::NotFound(ErrorCode::NameUnknown)
    );
    case!(
        name_upper,
        Method::GET,
        "/v2/A/manifests/1",
        Route::NotFound(ErrorCode::NameUnknown)
    );
    case!(
        name_double_slash,
        Method::GET,
        "/v2/a//b/manifests/1",
        Route::NotFound(ErrorCode::NameUnknown)
    );
    case!(
        bad_tag,
        Method::GET,
        "/v2/a/manifests/.hidden",
        Route::NotFound(ErrorCode::ManifestUnknown)
    );
    case!(
        referrers,
        Method::GET,
        format!("/v2/a/referrers/{D}"),
        Route::Referrers { .. }
    );
    case!(
        upload_post,
        Method::POST,
        "/v2/a/blobs/uploads/",
        Route::Write
    );
    case!(manifest_put, Method::PUT, "/v2/a/manifests/1", Route::Write);
    case!(
        delete,
        Method::DELETE,
        format!("/v2/a/blobs/{D}"),
        Route::Write
    );
    case!(patch, Method::PATCH, "/v2/a/blobs/uploads/x", Route::Write);
    case!(
        upload_get,
        Method::GET,
        "/v2/a/blobs/uploads/x",
        Route::NotFound(_)
    );
    case!(
        name_with_manifests_component,
        Method::GET,
        "/v2/manifests/manifests/1",
        Route::Manifest { .. }
    );

    #[test]
    fn names_with_separators() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "a/b/c", "0x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", "a/", "/a", "a..b", "a___b", "-a", "a-", "a/./b", "a/../b", ".", "..", "a.-b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn tags_list_name_from_the_right() {
        assert_eq!(
            get("/v2/x/tags/list/tags/list"),
            Route::Tags {
                name: "x/tags/list".into()
            }
        );
    }

    proptest! {
        /// No path panics the router, and any name it accepts is a clean relative name:
        /// no `..`, `.`, empty components, escapes or backslashes.
        #[test]
        fn arbitrary_paths(path in "(/v2)?(/[a-z0-9._%-]{0,6}|/\\.\\.|/manifests|/blobs|/tags|/list|/sha256:[0-9a-f]{0,64})*/?", upper in any::<bool>()) {
            let method = if upper { Method::HEAD } else { Method::GET };
            let name = match route(&method, &path) {
                Route::Tags { name } | Route::Manifest { name, .. } | Route::Blob { name, .. } | Route::Referrers { name, .. } => Some(name),
                _ => None,
            };
            if let Some(name) = name {
                prop_assert!(valid_name(&name));
                prop_assert!(name.split('/').all(|c| c != ".." && c != "." && !c.is_empty()));
                prop_assert!(!name.contains('%') && !name.contains('\\'));
                prop_assert!(path.starts_with("/v2/"));
            }
        }

        #[test]
        fn arbitrary_bytes(path in "\\PC{0,80}", m in 0usize..6) {
            let method = [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::PATCH][m].clone();
            let r = route(&method, &path);
            if method != Method::GET && method != Method::HEAD {
                prop_assert_eq!(r, Route::Write);
            }
        }
    }
}
