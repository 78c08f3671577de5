//! Hostile registries (issue 7): answers the real `docker-registry` never gives, made up or
//! rewritten by the proxy. Each is refused (or, where the protocol allows it, retried) and
//! the cache never holds a blob for the offending digest nor one whose bytes do not match
//! its name. Exit codes: what the registry sent failed a check (too large, too long, wrong
//! digest) = 1, like wrong blob bytes; a redirect loop leaves the registry unusable = 3.

use super::*;

/// Limits the client promises (`registry::client::MANIFEST_LIMIT`, `MAX_REDIRECTS`).
const MANIFEST_LIMIT: u64 = 4 << 20;
const MAX_REDIRECTS: usize = 10;
/// Resident memory any of these runs may reach.
const MEMORY_LIMIT_KB: u64 = 100 << 10;

/// After a refused pack: no blob and no partial download for `digest` (nothing resumable is
/// kept from a body that was not the blob), every stored blob hashes to its name, no bundle.
fn assert_refused_and_nothing_kept(cache: &Path, digest: &str, out: &Path) {
    assert!(
        !stored(cache).iter().any(|d| d == digest),
        "{digest} stored"
    );
    assert!(!has_partial(cache, digest), "a partial of {digest} kept");
    assert_sound(cache);
    assert!(!out.exists(), "{} written", out.display());
}

/// One `airlock pack` of `127.0.0.1:<proxy>/<suffix>` through a proxy doing `fault`, with its
/// own cache and output `<name>.tar` in a temporary directory, measured.
struct Attempt {
    proxy: Proxy,
    _dir: tempfile::TempDir,
    cache: PathBuf,
    out: PathBuf,
    reference: String,
    m: Measured,
}

fn pack_through(upstream: u16, fault: Fault, suffix: &str, name: &str) -> Attempt {
    let proxy = Proxy::start(upstream, fault);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join(format!("{name}.tar"));
    let reference = format!("127.0.0.1:{}/{suffix}", proxy.port);
    let args = ["pack", "--image", &reference, "-o", out.to_str().unwrap()];
    let m = measured(&cache, dir.path(), &args, Duration::from_secs(60));
    Attempt {
        proxy,
        _dir: dir,
        cache,
        out,
        reference,
        m,
    }
}

#[test]
fn manifest_over_4mb_is_refused_without_reading_it() {
    if !require_docker() {
        return;
    }
    let (reg, _images, _, repo_tag) = setup("hostile-manifest");
    for content_length in [true, false] {
        // 1 GiB, announced or close-delimited.
        let Attempt {
            proxy,
            _dir,
            cache,
            out,
            reference,
            m,
        } = pack_through(
            reg.port,
            Fault::HugeManifest {
                tag: "1".into(),
                bytes: 1 << 30,
                content_length,
            },
            &repo_tag,
            "huge",
        );
        let sent = proxy.state.made_up.load(Ordering::Relaxed);
        eprintln!(
            "huge manifest (Content-Length: {content_length}): exit {:?} in {:?}, peak {} kB, proxy sent {sent} bytes\n{}",
            m.code,
            m.elapsed,
            m.peak_kb,
            m.stderr.trim()
        );
        assert_eq!(m.code, Some(1), "{}", m.stderr);
        assert!(
            m.stderr.contains(&reference) && m.stderr.contains(&MANIFEST_LIMIT.to_string()),
            "reference and limit named: {}",
            m.stderr
        );
        // Not read to the end: what the proxy got rid of is what the client read plus
        // socket buffers (a few MB), far from the 1 GiB offered.
        assert!(sent < 64 << 20, "{sent} bytes sent");
        assert!(m.peak_kb < MEMORY_LIMIT_KB, "peak {} kB", m.peak_kb);
        assert!(m.elapsed < Duration::from_secs(30), "{:?}", m.elapsed);
        assert!(stored(&cache).is_empty(), "{:?}", stored(&cache));
        assert!(!out.exists());
    }
}

#[test]
fn redirect_loops_are_refused_after_a_bounded_number() {
    if !require_docker() {
        return;
    }
    let (reg, _images, (big, _), repo_tag) = setup("hostile-redirect");
    for to_self in [true, false] {
        let Attempt {
            proxy,
            _dir,
            cache,
            out,
            m,
            ..
        } = pack_through(
            reg.port,
            Fault::RedirectLoop {
                digest: big.clone(),
                to_self,
            },
            &repo_tag,
            "loop",
        );
        let gets = proxy
            .log()
            .iter()
            .filter(|l| l.starts_with("GET") && l.contains(&big))
            .count();
        eprintln!(
            "redirect loop (to itself: {to_self}): exit {:?} in {:?} after {gets} requests\n{}",
            m.code,
            m.elapsed,
            m.stderr.trim()
        );
        assert_eq!(m.code, Some(3), "{}", m.stderr);
        assert!(
            m.stderr.contains(&big) && m.stderr.contains("redirected"),
            "the blob is named: {}",
            m.stderr
        );
        // The first request and MAX_REDIRECTS redirects, not retried.
        assert_eq!(gets, MAX_REDIRECTS + 1, "{:?}", proxy.log());
        assert!(m.elapsed < Duration::from_secs(30), "{:?}", m.elapsed);
        assert_refused_and_nothing_kept(&cache, &big, &out);
    }
}

#[test]
fn endless_or_overlong_blob_body_is_refused_at_its_size() {
    if !require_docker() {
        return;
    }
    let (reg, _images, (layer, layer_size), repo_tag) = setup("hostile-endless");
    let (manifest, _) = raw_manifest(&reg, &repo_tag);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let config_size = manifest["config"]["size"].as_u64().unwrap();
    let cases = [
        (&layer, layer_size, Framing::Close),
        (&layer, layer_size, Framing::Chunked),
        (&layer, layer_size, Framing::Announced),
        // The config is read whole into memory: bounded by its descriptor too.
        (&config, config_size, Framing::Close),
    ];
    for (big, size, framing) in cases {
        let big = big.clone();
        let Attempt {
            proxy,
            _dir,
            cache,
            out,
            m,
            ..
        } = pack_through(
            reg.port,
            Fault::Endless {
                digest: big.clone(),
                framing,
            },
            &repo_tag,
            "endless",
        );
        let junk = proxy.state.made_up.load(Ordering::Relaxed);
        eprintln!(
            "endless body of {big} ({framing:?}): exit {:?} in {:?}, peak {} kB, junk sent {junk} bytes\n{}",
            m.code,
            m.elapsed,
            m.peak_kb,
            m.stderr.trim()
        );
        assert_eq!(m.code, Some(1), "{}", m.stderr);
        assert!(
            m.stderr.contains(&big) && m.stderr.contains(&format!("larger than the {size} bytes")),
            "the digest and its size are named: {}",
            m.stderr
        );
        assert!(junk < 64 << 20, "{junk} junk bytes sent");
        assert!(m.peak_kb < MEMORY_LIMIT_KB, "peak {} kB", m.peak_kb);
        assert!(m.elapsed < Duration::from_secs(30), "{:?}", m.elapsed);
        assert_refused_and_nothing_kept(&cache, &big, &out);
    }
}

#[test]
fn lying_content_length_is_resumed_or_refused_never_stored() {
    if !require_docker() {
        return;
    }
    let (reg, _images, (big, size), repo_tag) = setup("hostile-length");
    let half = (size / 2) as i64;
    // (fault, exit code wanted, what must be in stderr)
    let cases = [
        // Shorter than the body, once: the rest is fetched with a Range request.
        (big.clone(), -half, 1, 0, "ended at"),
        // Shorter, every time: never the whole blob, refused with its digest.
        (big.clone(), -1000, usize::MAX, 1, big.as_str()),
        // Longer than the body (the connection then closes): larger than the descriptor,
        // refused before reading.
        (big.clone(), 1000, usize::MAX, 1, "larger than the"),
        // A manifest announced longer than it is, once: fetched again.
        ("/manifests/1".to_string(), 100, 1, 0, "cut short"),
    ];
    for (path, delta, times, code, said) in cases {
        let Attempt {
            proxy,
            _dir,
            cache,
            out,
            m,
            ..
        } = pack_through(
            reg.port,
            Fault::LieLength {
                path: path.clone(),
                delta,
                times,
            },
            &repo_tag,
            "length",
        );
        let lies = proxy.state.lies.load(Ordering::Relaxed);
        eprintln!(
            "Content-Length {delta:+} on `{path}` ({lies} lies): exit {:?} in {:?}\n{}",
            m.code,
            m.elapsed,
            m.stderr.trim()
        );
        assert_eq!(m.code, Some(code), "{}", m.stderr);
        assert!(m.stderr.contains(said), "`{said}` in: {}", m.stderr);
        assert!(m.elapsed < Duration::from_secs(30), "{:?}", m.elapsed);
        assert_sound(&cache);
        if code == 0 {
            assert!(out.exists());
            assert!(stored(&cache).contains(&big));
            let gets: Vec<String> = proxy
                .log()
                .into_iter()
                .filter(|l| l.starts_with("GET") && l.contains(&path))
                .collect();
            assert_eq!(gets.len(), 2, "{gets:?}");
            if path == big {
                let offset = size - half as u64;
                assert!(
                    gets[1].contains(&format!("range=bytes={offset}-")),
                    "{gets:?}"
                );
            }
        } else {
            assert!(m.stderr.contains(&big), "{}", m.stderr);
            assert!(!stored(&cache).contains(&big));
            assert!(!has_partial(&cache, &big), "no partial kept");
            assert!(!out.exists());
        }
    }
}

#[test]
fn lying_digest_header_is_refused_naming_both_digests() {
    if !require_docker() {
        return;
    }
    let (reg, _images, _, repo_tag) = setup("hostile-digest");
    let (_, real) = raw_manifest(&reg, &repo_tag);
    let (other_bytes, other) = raw_manifest(&reg, &repo_tag.replace(":1", ":2"));
    let fake = format!("sha256:{}", "ab".repeat(32));
    let repo = repo_tag.trim_end_matches(":1");
    // (fault, reference suffix, claimed digest, digest of the bytes, who claimed)
    let cases = [
        (
            Fault::LieDigest {
                path: "/manifests/1".into(),
                digest: fake.clone(),
                head: false,
                get: true,
            },
            repo_tag.clone(),
            fake.clone(),
            real.clone(),
            "header of GET",
        ),
        (
            Fault::LieDigest {
                path: "/manifests/1".into(),
                digest: fake.clone(),
                head: true,
                get: false,
            },
            repo_tag.clone(),
            fake.clone(),
            real.clone(),
            "header of HEAD",
        ),
        (
            Fault::LieDigest {
                path: "/manifests/1".into(),
                digest: fake.clone(),
                head: true,
                get: true,
            },
            repo_tag.clone(),
            fake.clone(),
            real.clone(),
            "header of",
        ),
        // Pinned by digest, the registry sends another manifest (claiming the pin).
        (
            Fault::SwapBody {
                path: real.clone(),
                body: other_bytes.clone(),
            },
            format!("{repo}@{real}"),
            real.clone(),
            other.clone(),
            "request by digest",
        ),
    ];
    for (fault, suffix, claimed, actual, by) in cases {
        let Attempt {
            _dir,
            cache,
            out,
            reference,
            m,
            ..
        } = pack_through(reg.port, fault.clone(), &suffix, "digest");
        eprintln!(
            "{by}: exit {:?} in {:?}\n{}",
            m.code,
            m.elapsed,
            m.stderr.trim()
        );
        assert_eq!(m.code, Some(1), "{}", m.stderr);
        for said in [reference.as_str(), &claimed, &actual, by] {
            assert!(m.stderr.contains(said), "`{said}` in: {}", m.stderr);
        }
        // The manifest comes first: nothing at all was stored.
        assert!(stored(&cache).is_empty(), "{:?}", stored(&cache));
        assert!(!out.exists());
    }
}
