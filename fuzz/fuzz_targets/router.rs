//! Sends arbitrary requests to `serve`'s request handling in process (router, handlers and
//! Basic auth over a catalog of a small valid bundle, the `bundle_read` seed): every request
//! gets an answer with some status, never a panic, a body as long as its `Content-Length`
//! says, and a HEAD answer with the status and length of the GET answer.
//!
//! Input: byte 0 picks the method (low 3 bits) and Basic auth on or off (bit 3); the rest is
//! lines: the request target (path and query), then `Name: value` headers. Lines that are
//! not a valid target or header are skipped, as hyper would refuse them before routing.
#![no_main]

use airlock::serve::auth::Htpasswd;
use airlock::serve::handlers::{DEFAULT_CHUNK, State, respond};
use airlock::serve::{Catalog, CatalogOptions};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const BUNDLE: &[u8] = include_bytes!("../seeds/bundle_read/crafted.bundle");
/// `htpasswd -nbB -C 4 fuzz secret` (cost 4 keeps a good header cheap).
const HTPASSWD: &str = "fuzz:$2y$04$D1EHGzM8Ry8i3tmza27HLeeqQN593yl7ETaN2js.Oy9OiSGkD37Zi\n";
const METHODS: [&str; 8] = [
    "GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "get",
];

struct World {
    _keep: tempfile::TempDir,
    open: State,
    authed: State,
    rt: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let keep = tempfile::tempdir().expect("temp dir");
        let path = keep.path().join("crafted.tar");
        std::fs::write(&path, BUNDLE).expect("bundle");
        let catalog = || {
            Catalog::open(std::slice::from_ref(&path), &CatalogOptions::default()).expect("catalog")
        };
        let auth = Htpasswd::parse(HTPASSWD, std::path::Path::new("htpasswd")).expect("htpasswd");
        World {
            open: State {
                catalog: catalog(),
                auth: None,
                chunk: DEFAULT_CHUNK,
            },
            authed: State {
                catalog: catalog(),
                auth: Some(auth),
                chunk: 4096,
            },
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            _keep: keep,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    let Ok(method) = Method::from_bytes(METHODS[(first & 7) as usize].as_bytes()) else {
        return;
    };
    let state = if first & 8 != 0 { &w.authed } else { &w.open };
    let mut lines = rest.split(|&b| b == b'\n');
    let Some(target) = lines.next() else { return };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    w.rt.block_on(async {
        let resp = respond(state, &method, &uri, &headers).await;
        let status = resp.status();
        assert!((100..600).contains(&status.as_u16()));
        let length = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        if method == Method::HEAD {
            // hyper drops a HEAD answer's body; its status and length must be GET's
            let get = respond(state, &Method::GET, &uri, &headers).await;
            assert_eq!(get.status(), status, "HEAD and GET of {uri}");
            let get_length = get
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            assert_eq!(get_length, length, "Content-Length of HEAD and GET of {uri}");
        } else if let Some(n) = length {
            assert_eq!(
                body.len(),
                n,
                "Content-Length {n} but {} bytes for {uri}",
                body.len()
            );
        }
    });
});
