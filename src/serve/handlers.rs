//! Answers for `serve`: owns turning a routed request into a response with exactly the
//! headers of formats.md 3.4 (`Content-Type` = stored media type, `Content-Length`,
//! `Docker-Content-Digest`, `Accept-Ranges`, 206 + `Content-Range` for ranges), registry
//! error bodies, pagination of tags and catalog, and streaming blobs from their offsets in
//! the bundle with `pread` in small chunks (memory stays bounded whatever the blob size).
//! Works with `router` (what is asked), `catalog` (what exists) and `auth` (who asks).

use super::auth::Htpasswd;
use super::catalog::{BundleFile, Catalog};
use super::router::{self, ErrorCode, ManifestRef, Route};
use crate::digest::Digest;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, header};
use bytes::Bytes;
use std::sync::Arc;

/// Bytes read per `pread` when streaming a blob.
pub const DEFAULT_CHUNK: usize = 128 << 10;

/// Everything a request needs; shared by every connection.
pub struct State {
    pub catalog: Catalog,
    pub auth: Option<Htpasswd>,
    /// Bytes per read while streaming a blob.
    pub chunk: usize,
}

/// Who made a request (set on the response for the access log).
#[derive(Debug, Clone)]
pub struct User(pub String);

const API_VERSION: &str = "registry/2.0";
const JSON: &str = "application/json";

/// Answer one request. Never fails: every problem is a registry error response.
pub async fn respond(
    state: &State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response<Body> {
    let mut user = None;
    if let Some(auth) = &state.auth {
        match auth.check(headers).await {
            Some(u) => user = Some(u),
            None => {
                let mut resp = error(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"airlock\""),
                );
                return finish(resp, None);
            }
        }
    }
    let head = method == Method::HEAD;
    let query = uri.query().unwrap_or("");
    let resp = match router::route(method, uri.path()) {
        Route::Ping => json_response(StatusCode::OK, Bytes::from_static(b"{}"), head),
        Route::Catalog => catalog(state, query, head),
        Route::Tags { name } => tags(state, &name, query, head),
        Route::Manifest { name, reference } => manifest(state, &name, &reference, head),
        Route::Blob { name, digest } => blob(state, &name, &digest, headers, head),
        Route::Referrers { name, digest } => referrers(state, &name, &digest, head),
        Route::Write => {
            let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::Unsupported, None);
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            resp
        }
        Route::NotFound(code) => error(StatusCode::NOT_FOUND, code, None),
    };
    finish(resp, user)
}

fn finish(mut resp: Response<Body>, user: Option<String>) -> Response<Body> {
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    if let Some(u) = user {
        resp.extensions_mut().insert(User(u));
    }
    resp
}

/// A registry error: `{"errors":[{"code":..,"message":..,"detail":..}]}`.
pub fn error(
    status: StatusCode,
    code: ErrorCode,
    detail: Option<serde_json::Value>,
) -> Response<Body> {
    let body = serde_json::json!({"errors": [{
        "code": code.as_str(),
        "message": code.message(),
        "detail": detail.unwrap_or(serde_json::Value::Null),
    }]});
    let bytes = Bytes::from(body.to_string());
    let mut resp = json_response(status, bytes, false);
    *resp.status_mut() = status;
    resp
}

fn json_response(status: StatusCode, bytes: Bytes, head: bool) -> Response<Body> {
    bytes_response(status, JSON, bytes, head)
}

/// A response with a body in memory; HEAD gets the headers only.
fn bytes_response(
    status: StatusCode,
    content_type: &str,
    bytes: Bytes,
    head: bool,
) -> Response<Body> {
    let len = bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static(JSON)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

fn name_unknown(name: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        ErrorCode::NameUnknown,
        Some(serde_json::json!({ "name": name })),
    )
}

/// `n` and `last` of a paginated list.
fn pagination(query: &str) -> (Option<usize>, Option<String>) {
    let mut n = None;
    let mut last = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "n" => n = v.parse::<usize>().ok(),
            "last" => last = Some(percent_decode(v)),
            _ => {}
        }
    }
    (n, last)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Items after `last`, at most `n`; and whether more follow.
fn page<'a>(
    items: impl Iterator<Item = &'a String>,
    n: Option<usize>,
    last: Option<&str>,
) -> (Vec<&'a String>, bool) {
    let mut rest = items.filter(|i| last.is_none_or(|l| i.as_str() > l));
    let limit = n.unwrap_or(usize::MAX);
    let out: Vec<&String> = rest.by_ref().take(limit).collect();
    let more = n.is_some() && rest.next().is_some();
    (out, more)
}

fn with_link(
    mut resp: Response<Body>,
    more: bool,
    path: &str,
    n: Option<usize>,
    last: Option<&String>,
) -> Response<Body> {
    if more
        && let (Some(n), Some(last)) = (n, last)
        && let Ok(v) = HeaderValue::from_str(&format!(
            "<{path}?n={n}&last={}>; rel=\"next\"",
            percent_encode(last)
        ))
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}

fn catalog(state: &State, query: &str, head: bool) -> Response<Body> {
    let (n, last) = pagination(query);
    let (repos, more) = page(state.catalog.repos.keys(), n, last.as_deref());
    let body = serde_json::json!({ "repositories": repos });
    let resp = json_response(StatusCode::OK, Bytes::from(body.to_string()), head);
    with_link(resp, more, "/v2/_catalog", n, repos.last().copied())
}

fn tags(state: &State, name: &str, query: &str, head: bool) -> Response<Body> {
    let Some((_, repo)) = state.catalog.repo(name) else {
        return name_unknown(name);
    };
    let (n, last) = pagination(query);
    // BTreeMap keys: already sorted.
    let (tags, more) = page(repo.tags.keys(), n, last.as_deref());
    let body = serde_json::json!({ "name": name, "tags": tags });
    let resp = json_response(StatusCode::OK, Bytes::from(body.to_string()), head);
    with_link(
        resp,
        more,
        &format!("/v2/{name}/tags/list"),
        n,
        tags.last().copied(),
    )
}

fn manifest(state: &State, name: &str, reference: &ManifestRef, head: bool) -> Response<Body> {
    let Some((_, repo)) = state.catalog.repo(name) else {
        return name_unknown(name);
    };
    let digest = match reference {
        ManifestRef::Tag(t) => repo.tags.get(t),
        ManifestRef::Digest(d) => repo.manifests.get(d),
    };
    let Some(m) = digest.and_then(|d| state.catalog.manifests.get(d).map(|m| (d, m))) else {
        let detail = match reference {
            ManifestRef::Tag(t) => serde_json::json!({ "name": name, "tag": t }),
            ManifestRef::Digest(d) => serde_json::json!({ "name": name, "digest": d }),
        };
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::ManifestUnknown,
            Some(detail),
        );
    };
    let (digest, m) = m;
    let mut resp = bytes_response(StatusCode::OK, &m.media_type, m.bytes.clone(), head);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("docker-content-digest", v.clone());
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
            h.insert(header::ETAG, etag);
        }
    }
    resp
}

fn referrers(state: &State, name: &str, digest: &Digest, head: bool) -> Response<Body> {
    let Some((_, repo)) = state.catalog.repo(name) else {
        return name_unknown(name);
    };
    if !repo.manifests.contains(digest) {
        return error(
            StatusCode::NOT_FOUND,
            ErrorCode::ManifestUnknown,
            Some(serde_json::json!({ "name": name, "digest": digest })),
        );
    }
    // The bundle carries no referrers: an empty index (OCI 1.1).
    let body = crate::image::Index::oci_bytes(Vec::new());
    bytes_response(
        StatusCode::OK,
        crate::image::media::OCI_INDEX,
        Bytes::from(body),
        head,
    )
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No range, or one we may ignore (several ranges, other units, bad syntax).
    Full,
    /// Inclusive `first..=last`.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parse a single-range `bytes=` header (RFC 9110 14.1.2).
pub fn parse_range(value: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Full;
    };
    if spec.contains(',') {
        return RangeAsk::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last `b` bytes.
        return match b.parse::<u64>() {
            Ok(0) => RangeAsk::Unsatisfiable,
            Ok(_) if size == 0 => RangeAsk::Unsatisfiable,
            Ok(n) => RangeAsk::Part(size.saturating_sub(n), size - 1),
            Err(_) => RangeAsk::Full,
        };
    }
    let Ok(first) = a.parse::<u64>() else {
        return RangeAsk::Full;
    };
    let last = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => Some(l),
            _ => return RangeAsk::Full,
        }
    };
    if first >= size {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(first, last.unwrap_or(size - 1).min(size - 1))
}

fn blob(
    state: &State,
    name: &str,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Response<Body> {
    let Some((_, repo)) = state.catalog.repo(name) else {
        return name_unknown(name);
    };
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUnknown,
            Some(serde_json::json!({ "name": name, "digest": digest })),
        )
    };
    if !repo.blobs.contains(digest) && !repo.manifests.contains(digest) {
        return unknown();
    }
    let Some((loc, file)) = state.catalog.blob(digest) else {
        return unknown();
    };
    let size = loc.size;
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, first, len) = match range {
        RangeAsk::Full => (StatusCode::OK, 0, size),
        RangeAsk::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        RangeAsk::Unsatisfiable => {
            let mut resp = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::RangeInvalid,
                None,
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let body = if head || len == 0 {
        Body::empty()
    } else {
        stream_body(Arc::clone(file), loc.offset + first, len, state.chunk)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("docker-content-digest", v.clone());
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
            h.insert(header::ETAG, etag);
        }
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{}/{size}", first + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000"),
    );
    resp
}

/// Stream `len` bytes at `offset` of `file` as a response body (see `catalog::stream_range`).
pub fn stream_body(file: Arc<BundleFile>, offset: u64, len: u64, chunk: usize) -> Body {
    Body::from_stream(super::catalog::stream_range(file, offset, len, chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! range {
        ($name:ident, $h:expr, $size:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(parse_range($h, $size), $want);
            }
        };
    }
    range!(no_header, None, 10, RangeAsk::Full);
    range!(open_end, Some("bytes=4-"), 10, RangeAsk::Part(4, 9));
    range!(closed, Some("bytes=2-5"), 10, RangeAsk::Part(2, 5));
    range!(
        past_end_clamped,
        Some("bytes=2-50"),
        10,
        RangeAsk::Part(2, 9)
    );
    range!(suffix, Some("bytes=-3"), 10, RangeAsk::Part(7, 9));
    range!(suffix_longer, Some("bytes=-30"), 10, RangeAsk::Part(0, 9));
    range!(
        start_past_end,
        Some("bytes=10-"),
        10,
        RangeAsk::Unsatisfiable
    );
    range!(suffix_zero, Some("bytes=-0"), 10, RangeAsk::Unsatisfiable);
    range!(several, Some("bytes=0-1,4-5"), 10, RangeAsk::Full);
    range!(other_unit, Some("items=0-1"), 10, RangeAsk::Full);
    range!(reversed, Some("bytes=5-2"), 10, RangeAsk::Full);
    range!(garbage, Some("bytes=a-b"), 10, RangeAsk::Full);

    #[test]
    fn pages() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let (p, more) = page(items.iter(), Some(2), None);
        assert_eq!((p.len(), more), (2, true));
        let (p, more) = page(items.iter(), Some(2), Some("b"));
        assert_eq!(
            (p.iter().map(|s| s.as_str()).collect::<Vec<_>>(), more),
            (vec!["c", "d"], false)
        );
        let (p, _) = page(items.iter(), None, None);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn decodes_percent() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%"), "%");
    }
}
