//! Hostile input, crafted by hand. Bundles with raw tar headers (no engine needed): `..`,
//! absolute paths, symlinks, hard links, devices, duplicate names, a 100 MB
//! `manifest.json`/`bundle.json` (a sparse file: refused by its header size, never read).
//! Each is refused by `verify` and `inspect` with a message naming the entry, a non-zero
//! exit, and nothing written outside. Well-formed bundles with one flaw (a blob whose content
//! does not match its name, a layer count that does not match diff_ids): refused by `verify`
//! and `load` (no image appears). Memory: `verify`/`inspect` on every hostile bundle and
//! `plan` on YAML bombs, deep nesting, non-UTF-8 files and huge lines stay under 100 MB.

use crate::harness::airlock;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// One tar member: its header and content.
type Member = (tar::Header, Vec<u8>);

const META: &str = r#"{"format":"airlock.bundle/v1","airlock_version":"0.1.0","created":"2026-11-27T07:00:00Z","project":"p","platform":"linux/amd64","compose":{"files":[],"env_files":[],"profiles":[]},"images":[],"blobs":0,"size":0,"uncompressed_size":0,"base":null}"#;

/// A ustar header with the raw `name` bytes (no checks), `kind`, `size` and `link` name.
fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: &str) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    {
        let bytes = h.as_mut_bytes();
        bytes[..100].fill(0);
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        bytes[157..257].fill(0);
        bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    h
}

/// Write a tar of `airlock/bundle.json` followed by `members` (header, data).
fn write_tar(path: &Path, members: &[(tar::Header, Vec<u8>)]) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut all = vec![(
        raw_header(
            "airlock/bundle.json",
            tar::EntryType::Regular,
            META.len() as u64,
            "",
        ),
        META.as_bytes().to_vec(),
    )];
    all.extend(members.iter().cloned());
    for (h, data) in &all {
        f.write_all(h.as_bytes()).unwrap();
        f.write_all(data).unwrap();
        let pad = (512 - data.len() % 512) % 512;
        f.write_all(&vec![0u8; pad]).unwrap();
    }
    f.write_all(&[0u8; 1024]).unwrap();
}

/// Run `verify` and `inspect` on `bundle`; both must fail naming `entry`.
fn refused(dir: &Path, bundle: &Path, entry: &str) {
    let cache = dir.join("cache");
    for cmd in ["verify", "inspect"] {
        let started = Instant::now();
        let out = airlock(&cache)
            .current_dir(dir)
            .arg(cmd)
            .arg(bundle)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{cmd} accepted {entry}: {text}");
        assert!(
            matches!(out.status.code(), Some(1) | Some(2)),
            "{cmd}: {text}"
        );
        assert!(
            text.contains(entry),
            "{cmd} does not name `{entry}`: {text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{cmd} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn unsafe_names_links_devices_and_duplicates_are_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let body = b"{}".to_vec();
    let reg = |name: &str| {
        (
            raw_header(name, tar::EntryType::Regular, 2, ""),
            body.clone(),
        )
    };
    let cases: Vec<(&str, Vec<Member>, &str)> = vec![
        (
            "dotdot",
            vec![reg("../../escaped-airlock-test")],
            "../../escaped-airlock-test",
        ),
        (
            "inner-dotdot",
            vec![reg("blobs/../../escaped2")],
            "blobs/../../escaped2",
        ),
        (
            "absolute",
            vec![reg("/tmp/airlock-hostile-abs")],
            "/tmp/airlock-hostile-abs",
        ),
        (
            "symlink",
            vec![(
                raw_header("index.json", tar::EntryType::Symlink, 0, "/etc/passwd"),
                vec![],
            )],
            "index.json",
        ),
        (
            "hardlink",
            vec![(
                raw_header("manifest.json", tar::EntryType::Link, 0, "/etc/shadow"),
                vec![],
            )],
            "manifest.json",
        ),
        (
            "chardev",
            vec![(
                raw_header("oci-layout", tar::EntryType::Char, 0, ""),
                vec![],
            )],
            "oci-layout",
        ),
        (
            "blockdev",
            vec![(
                raw_header("airlock/compose/dev", tar::EntryType::Block, 0, ""),
                vec![],
            )],
            "airlock/compose/dev",
        ),
        (
            "fifo",
            vec![(
                raw_header("airlock/compose/fifo", tar::EntryType::Fifo, 0, ""),
                vec![],
            )],
            "airlock/compose/fifo",
        ),
        (
            "duplicate",
            vec![reg("index.json"), reg("index.json")],
            "index.json",
        ),
        (
            "duplicate-meta",
            vec![(
                raw_header(
                    "airlock/bundle.json",
                    tar::EntryType::Regular,
                    META.len() as u64,
                    "",
                ),
                META.as_bytes().to_vec(),
            )],
            "airlock/bundle.json",
        ),
    ];
    for (label, members, entry) in cases {
        let bundle = w.join(format!("{label}.tar"));
        write_tar(&bundle, &members);
        refused(w, &bundle, entry);
    }
    // nothing escaped: not next to the work dir, not at the absolute path
    assert!(!w.parent().unwrap().join("escaped-airlock-test").exists());
    assert!(!Path::new("/tmp/airlock-hostile-abs").exists());
    let names: Vec<_> = std::fs::read_dir(w)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.ends_with(".tar") && n != "cache")
        .collect();
    assert!(names.is_empty(), "unexpected files: {names:?}");
    project_names_that_are_paths_are_refused();
}

#[test]
fn huge_json_members_are_refused_by_size_without_reading() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for name in ["manifest.json", "airlock/bundle.json", "index.json"] {
        let bundle = w.join("huge.tar");
        let size: u64 = 100 << 20;
        // a sparse 100 MB member: the header claims it, the disk holds almost nothing
        let mut f = std::fs::File::create(&bundle).unwrap();
        if name != "airlock/bundle.json" {
            let h = raw_header(
                "airlock/bundle.json",
                tar::EntryType::Regular,
                META.len() as u64,
                "",
            );
            f.write_all(h.as_bytes()).unwrap();
            f.write_all(META.as_bytes()).unwrap();
            f.write_all(&vec![0u8; (512 - META.len() % 512) % 512])
                .unwrap();
        }
        let h = raw_header(name, tar::EntryType::Regular, size, "");
        f.write_all(h.as_bytes()).unwrap();
        f.write_all(b"[").unwrap();
        let pos = std::io::Seek::stream_position(&mut f).unwrap();
        f.set_len(pos - 1 + size + 1024).unwrap();
        drop(f);
        refused(w, &bundle, name);
        std::fs::remove_file(&bundle).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Well-formed bundles with one flaw: built member by member (docs/bundle-format.md), so the
// flaw is the only thing wrong.

/// What to break in `crafted_bundle`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flaw {
    /// Nothing: a valid bundle (`verify` accepts it).
    None,
    /// The first layer blob holds other bytes than its name says; `SHA256SUMS` lists the
    /// bytes actually there, so only the name gives it away.
    BlobContent,
    /// `manifest.json` lists one layer less than the config's `rootfs.diff_ids`.
    LayerCount,
}

/// A gzip layer holding one file `name` with `content`: (blob, uncompressed tar).
fn layer(name: &str, content: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, name, content).unwrap();
    let plain = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    (gz.finish().unwrap(), plain)
}

fn sha(bytes: &[u8]) -> String {
    airlock::digest::Digest::of(bytes).to_string()
}

fn hex(bytes: &[u8]) -> String {
    airlock::digest::Digest::of(bytes).hex().to_string()
}

/// The members of a bundle carrying one two-layer image tagged `reference` (`name:tag`),
/// for linux/amd64, with the given flaw.
fn crafted_members(reference: &str, flaw: Flaw) -> Vec<(String, Vec<u8>)> {
    let layers = [
        layer("a.txt", b"first layer\n"),
        layer("b.txt", b"second layer\n"),
    ];
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/a.txt"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha(&l.1)).collect::<Vec<_>>()}
    }))
    .unwrap();
    let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": sha(b), "size": b.len()});
    let cfg_d = desc("application/vnd.oci.image.config.v1+json", &config);
    let layer_ds: Vec<_> = layers
        .iter()
        .map(|l| desc("application/vnd.oci.image.layer.v1.tar+gzip", &l.0))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg_d, "layers": layer_ds
    }))
    .unwrap();
    let man_d = desc("application/vnd.oci.image.manifest.v1+json", &manifest);
    let (name, tag) = reference.rsplit_once(':').unwrap();
    let normalized = format!("docker.io/library/{name}:{tag}");
    let mut top = man_d.clone();
    top["annotations"] = serde_json::json!({
        "io.containerd.image.name": normalized, "org.opencontainers.image.ref.name": tag
    });
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [top]
    }))
    .unwrap();
    let mut listed: Vec<String> = layers
        .iter()
        .map(|l| format!("blobs/sha256/{}", hex(&l.0)))
        .collect();
    if flaw == Flaw::LayerCount {
        listed.pop();
    }
    let docker_manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{}", hex(&config)), "RepoTags": [reference], "Layers": listed
    }]))
    .unwrap();
    let size: usize = layers.iter().map(|l| l.0.len()).sum();
    let usize_: usize = layers.iter().map(|l| l.1.len()).sum();
    let meta = serde_json::to_vec_pretty(&serde_json::json!({
        "format": "airlock.bundle/v1", "airlock_version": "0.1.0", "created": "2026-11-27T07:00:00Z",
        "project": "crafted", "platform": "linux/amd64",
        "compose": {"files": ["compose.yaml"], "env_files": [], "profiles": []},
        "images": [{
            "ref": reference, "normalized": normalized, "kinds": ["image"], "services": ["web"],
            "source": "engine", "top": man_d, "manifest": man_d, "config": cfg_d,
            "layers": layers.iter().zip(&layer_ds).map(|(l, d)| {
                let mut d = d.clone();
                d["diff_id"] = sha(&l.1).into();
                d["uncompressed_size"] = l.1.len().into();
                d
            }).collect::<Vec<_>>(),
            "size": size, "uncompressed_size": usize_
        }],
        "blobs": 4, "size": size + config.len() + manifest.len(), "uncompressed_size": usize_, "base": null
    }))
    .unwrap();
    let mut layer_blobs: Vec<(String, Vec<u8>)> = layers
        .iter()
        .map(|l| (format!("blobs/sha256/{}", hex(&l.0)), l.0.clone()))
        .collect();
    if flaw == Flaw::BlobContent {
        // same size, other bytes: a valid gzip layer of another file
        layer_blobs[0].1 = layer("a.txt", b"evil  layer\n").0;
        assert_ne!(hex(&layer_blobs[0].1), hex(&layers[0].0));
    }
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "airlock/compose/compose.yaml".into(),
            format!("services:\n  web:\n    image: {reference}\n").into_bytes(),
        ),
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), index),
        ("manifest.json".into(), docker_manifest),
        (format!("blobs/sha256/{}", hex(&manifest)), manifest),
        (format!("blobs/sha256/{}", hex(&config)), config),
    ];
    files.append(&mut layer_blobs);
    let mut sums: Vec<(String, String)> = files.iter().map(|(n, b)| (n.clone(), hex(b))).collect();
    sums.push(("airlock/bundle.json".into(), hex(&meta)));
    sums.sort();
    let sums: String = sums.iter().map(|(n, h)| format!("{h}  {n}\n")).collect();
    files.insert(0, ("airlock/SHA256SUMS".into(), sums.into_bytes()));
    files.insert(0, ("airlock/bundle.json".into(), meta));
    files
}

/// Write `members` as a plain ustar bundle.
fn write_members(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut f = std::fs::File::create(path).unwrap();
    for (name, data) in members {
        let h = raw_header(name, tar::EntryType::Regular, data.len() as u64, "");
        f.write_all(h.as_bytes()).unwrap();
        f.write_all(data).unwrap();
        f.write_all(&vec![0u8; (512 - data.len() % 512) % 512])
            .unwrap();
    }
    f.write_all(&[0u8; 1024]).unwrap();
}

/// Run airlock with `args` in `dir`: (exit code, stdout + stderr).
fn airlock_in(dir: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = airlock(&dir.join("cache"))
        .current_dir(dir)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn crafted_valid_bundle_verifies_and_is_the_fuzz_seed() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("valid.tar");
    write_members(
        &bundle,
        &crafted_members("airlock-hostile-valid:1", Flaw::None),
    );
    let (code, text) = airlock_in(work.path(), &["verify".as_ref(), bundle.as_os_str()]);
    assert_eq!(code, Some(0), "{text}");
    // The fuzz targets `bundle_read` and `router` start from this bundle
    // (`AIRLOCK_WRITE_FUZZ_SEED=1` rewrites it after a format change).
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/bundle_read/crafted.bundle");
    if std::env::var_os("AIRLOCK_WRITE_FUZZ_SEED").is_some() {
        std::fs::create_dir_all(seed.parent().unwrap()).unwrap();
        std::fs::copy(&bundle, &seed).unwrap();
    }
    let (code, text) = airlock_in(work.path(), &["verify".as_ref(), seed.as_os_str()]);
    assert_eq!(code, Some(0), "the fuzz seed no longer verifies: {text}");
}

/// `airlock load` of a flawed bundle: refused (non-zero, naming `what`), and no image with
/// the bundle's reference appears on the engine.
fn load_refused(dir: &Path, bundle: &Path, reference: &str, what: &str) {
    crate::harness::docker_quiet(&["rmi", "-f", reference]);
    let (code, text) = airlock_in(dir, &["load".as_ref(), bundle.as_os_str()]);
    let present = crate::harness::image_exists(reference);
    crate::harness::docker_quiet(&["rmi", "-f", reference]);
    eprintln!("load {reference}: exit {code:?}: {}", text.trim());
    assert!(matches!(code, Some(1) | Some(2)), "load: {code:?} {text}");
    assert!(text.contains(what), "load does not name `{what}`: {text}");
    assert!(!present, "load left `{reference}` on the engine: {text}");
}

#[test]
fn blob_whose_content_does_not_match_its_name_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let reference = "airlock-hostile-blob:1";
    let members = crafted_members(reference, Flaw::BlobContent);
    let bad = crafted_members(reference, Flaw::None)
        .into_iter()
        .zip(&members)
        .find(|(good, flawed)| good.1 != flawed.1 && good.0.starts_with("blobs/"))
        .map(|(good, _)| good.0)
        .unwrap();
    let digest = format!("sha256:{}", bad.strip_prefix("blobs/sha256/").unwrap());
    let bundle = w.join("blob.tar");
    write_members(&bundle, &members);
    let (code, text) = airlock_in(w, &["verify".as_ref(), bundle.as_os_str()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("blob-digest") && text.contains(&bad),
        "verify: {text}"
    );
    // --json names the blob too
    let (_, json) = airlock_in(
        w,
        &["--json".as_ref(), "verify".as_ref(), bundle.as_os_str()],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "blob-digest" && p["blob"] == digest.as_str()),
        "{json}"
    );
    if crate::harness::require_docker() {
        load_refused(w, &bundle, reference, &digest);
    }
}

#[test]
fn layer_count_that_does_not_match_diff_ids_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let reference = "airlock-hostile-layers:1";
    let bundle = w.join("layers.tar");
    write_members(&bundle, &crafted_members(reference, Flaw::LayerCount));
    let (code, text) = airlock_in(w, &["verify".as_ref(), bundle.as_os_str()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("structure")
            && text.contains("lists 2 diff_ids but manifest.json lists 1 layers"),
        "verify: {text}"
    );
    assert!(
        text.contains(reference),
        "verify does not name the image: {text}"
    );
    if crate::harness::require_docker() {
        load_refused(w, &bundle, reference, reference);
    }
}

// ---------------------------------------------------------------------------------------
// Memory: the airlock process's own resident memory, sampled every millisecond from
// /proc/PID/status: `VmHWM` (the peak of everything resident, the debug binary's code pages
// included) and `RssAnon` (heap and stacks: what an input makes airlock allocate). Growth
// between the last sample and the exit is missed (a few MB at most; at exit_group a trivial
// `verify` is at 21 MB VmHWM, as GNU time's %M also says). Not ru_maxrss from our own wait4:
// std spawns with vfork, and Linux folds the spawning mm's high-water mark (this test process,
// hundreds of MB while other tests run) into the child's ru_maxrss at exec. (BusyBox `time`
// %M reports 4 times GNU time's figure, so it is no help either.)

/// `RssAnon` and `VmHWM` of a live process, in bytes.
fn rss_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    };
    Some((field("RssAnon:")?, field("VmHWM:")?))
}

/// What `measured` saw.
struct Run {
    code: Option<i32>,
    text: String,
    /// Highest `RssAnon` sampled, bytes.
    anon: u64,
    /// Last `VmHWM` sampled (peak of all resident memory, code included), bytes.
    hwm: u64,
    took: Duration,
}

/// Run airlock with `args` in `dir`, killed after `limit`, sampling its memory.
fn measured(dir: &Path, args: &[&std::ffi::OsStr], limit: Duration) -> Run {
    fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            s
        })
    }
    let started = Instant::now();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("airlock"))
        .args(args)
        .current_dir(dir)
        .env("AIRLOCK_CACHE", dir.join("cache"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let readers = [
        drain(child.stdout.take().unwrap()),
        drain(child.stderr.take().unwrap()),
    ];
    let (mut anon, mut hwm) = (0, 0);
    let status = loop {
        if let Some((a, h)) = rss_of(child.id()) {
            anon = anon.max(a);
            hwm = hwm.max(h);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let took = started.elapsed();
    let text: String = readers
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.join().unwrap()).into_owned())
        .collect();
    Run {
        code: status.code(),
        text,
        anon,
        hwm,
        took,
    }
}

const RSS_LIMIT: u64 = 100 << 20;

/// A bundle whose `name` member holds `json` (real bytes), after a valid bundle.json unless
/// `name` is bundle.json itself.
fn bundle_with_json(path: &Path, name: &str, json: Vec<u8>) {
    let mut members = Vec::new();
    if name != "airlock/bundle.json" {
        members.push(("airlock/bundle.json".to_string(), META.as_bytes().to_vec()));
    }
    members.push((name.to_string(), json));
    write_members(path, &members);
}

/// `[x,x,x,...]` of about `bytes` bytes.
fn json_array(item: &str, bytes: usize) -> Vec<u8> {
    let n = bytes / (item.len() + 1);
    let mut v = Vec::with_capacity(bytes + 2);
    v.push(b'[');
    for i in 0..n {
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(item.as_bytes());
    }
    v.push(b']');
    v
}

#[test]
fn verify_and_inspect_stay_under_100_mb_on_hostile_bundles() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut cases: Vec<(String, std::path::PathBuf)> = Vec::new();
    let mut add = |label: &str| {
        let p = w.join(format!("{label}.tar"));
        cases.push((label.to_string(), p.clone()));
        p
    };
    // names, links, duplicates
    let body = b"{}".to_vec();
    write_tar(
        &add("dotdot"),
        &[(
            raw_header("../../x", tar::EntryType::Regular, 2, ""),
            body.clone(),
        )],
    );
    write_tar(
        &add("symlink"),
        &[(
            raw_header("index.json", tar::EntryType::Symlink, 0, "/etc/passwd"),
            vec![],
        )],
    );
    // one flaw in a well-formed bundle
    write_members(
        &add("blob-content"),
        &crafted_members("airlock-hostile-rss:1", Flaw::BlobContent),
    );
    write_members(
        &add("layer-count"),
        &crafted_members("airlock-hostile-rss:1", Flaw::LayerCount),
    );
    // 100 MB sparse JSON members (refused by their header)
    for name in ["manifest.json", "airlock/bundle.json", "index.json"] {
        let p = add(&format!("sparse-{}", name.replace('/', "-")));
        let mut f = std::fs::File::create(&p).unwrap();
        if name != "airlock/bundle.json" {
            f.write_all(
                raw_header(
                    "airlock/bundle.json",
                    tar::EntryType::Regular,
                    META.len() as u64,
                    "",
                )
                .as_bytes(),
            )
            .unwrap();
            f.write_all(META.as_bytes()).unwrap();
            f.write_all(&vec![0u8; (512 - META.len() % 512) % 512])
                .unwrap();
        }
        f.write_all(raw_header(name, tar::EntryType::Regular, 100 << 20, "").as_bytes())
            .unwrap();
        let pos = std::io::Seek::stream_position(&mut f).unwrap();
        f.set_len(pos + (100 << 20) + 1024).unwrap();
    }
    // JSON just under the 4 MiB metadata member limit, built to expand in memory: tiny
    // elements (about 14 times their size as Rust values)
    let near = (4 << 20) - 4096;
    bundle_with_json(
        &add("bundle-json-zeros"),
        "airlock/bundle.json",
        json_array("0", near),
    );
    let mut layers = br#"[{"Config":"blobs/sha256/00","RepoTags":[],"Layers":"#.to_vec();
    layers.extend(json_array("\"a\"", near - 100));
    layers.extend(b"}]");
    bundle_with_json(&add("manifest-json-strings"), "manifest.json", layers);
    let mut index = br#"{"schemaVersion":2,"manifests":"#.to_vec();
    index.extend(json_array("{}", near - 100));
    index.push(b'}');
    bundle_with_json(&add("index-json-objects"), "index.json", index);
    // one more member over the metadata limit, and a config blob of tiny elements just under
    // verify's 2 MiB structure limit
    bundle_with_json(
        &add("manifest-over-limit"),
        "manifest.json",
        json_array("0", (4 << 20) + 10),
    );
    let config = json_array("0", (2 << 20) - 1024);
    let config_name = format!("blobs/sha256/{}", hex(&config));
    write_members(
        &add("config-zeros"),
        &[
            ("airlock/bundle.json".into(), META.as_bytes().to_vec()),
            (
                "manifest.json".into(),
                format!(r#"[{{"Config":"{config_name}","RepoTags":["x:1"],"Layers":[]}}]"#)
                    .into_bytes(),
            ),
            (config_name.clone(), config),
        ],
    );

    let mut worst = (0u64, String::new());
    for (label, bundle) in &cases {
        for cmd in ["verify", "inspect"] {
            let Run {
                code,
                text,
                anon: rss,
                hwm,
                took,
            } = measured(
                w,
                &[cmd.as_ref(), bundle.as_os_str()],
                Duration::from_secs(60),
            );
            // `verify` refuses (1, 2); `inspect` refuses or, when the metadata parses, shows
            // it (0); neither is killed by a signal or the time limit
            assert!(
                matches!(code, Some(1) | Some(2)) || (cmd == "inspect" && code == Some(0)),
                "{cmd} {label}: exit {code:?}: {text}"
            );
            eprintln!(
                "{cmd} {label}: exit {code:?}, RssAnon {} MB (VmHWM {} MB), {took:?}",
                rss >> 20,
                hwm >> 20
            );
            assert!(
                rss < RSS_LIMIT,
                "{cmd} {label}: RssAnon {} MB: {text}",
                rss >> 20
            );
            assert!(
                hwm < RSS_LIMIT,
                "{cmd} {label}: VmHWM {} MB: {text}",
                hwm >> 20
            );
            assert!(
                took < Duration::from_secs(20),
                "{cmd} {label} took {took:?}"
            );
            if rss > worst.0 {
                worst = (rss, format!("{cmd} {label}"));
            }
        }
    }
    eprintln!("largest RssAnon: {} MB ({})", worst.0 >> 20, worst.1);
}

// ---------------------------------------------------------------------------------------
// Compose input through `airlock plan`: exit 2, the file named, bounded time and memory.

fn plan_refused(label: &str, files: &[(&str, Vec<u8>)], named: &str) -> (u64, Duration) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("proj");
    std::fs::create_dir(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let Run {
        code,
        text,
        anon: rss,
        hwm,
        took,
    } = measured(&dir, &["plan".as_ref()], Duration::from_secs(60));
    eprintln!(
        "plan {label}: exit {code:?}, RssAnon {} MB (VmHWM {} MB), {took:?}",
        rss >> 20,
        hwm >> 20
    );
    assert_eq!(code, Some(2), "plan {label}: {text}");
    assert!(
        text.contains(named),
        "plan {label} does not name `{named}`: {text}"
    );
    assert!(rss < RSS_LIMIT, "plan {label}: RssAnon {} MB", rss >> 20);
    assert!(hwm < RSS_LIMIT, "plan {label}: VmHWM {} MB", hwm >> 20);
    // a few seconds at most for the debug binary on a loaded 2-core machine
    assert!(took < Duration::from_secs(30), "plan {label} took {took:?}");
    (rss, took)
}

#[test]
fn compose_bombs_deep_nesting_and_bad_bytes_are_refused_by_plan() {
    // billion laughs: 9 levels of 9 aliases = 387 420 489 strings
    let mut laughs = String::from(
        "x-a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, cur) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        laughs.push_str(&format!(
            "x-{cur}: &{cur} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    laughs.push_str("services:\n  web:\n    image: redis:7\n    command: *i\n");
    plan_refused(
        "billion-laughs",
        &[("compose.yaml", laughs.into_bytes())],
        "compose.yaml",
    );

    // a wide alias fan-out in a mapping (merge keys)
    let mut merges = String::from("x-0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n");
    for i in 1..30 {
        merges.push_str(&format!(
            "x-{i}: &m{i} [*m{}, *m{}, *m{}, *m{}]\n",
            i - 1,
            i - 1,
            i - 1,
            i - 1
        ));
    }
    merges.push_str("services:\n  web:\n    image: redis:7\n    labels: *m29\n");
    plan_refused(
        "alias-fan-out",
        &[("compose.yaml", merges.into_bytes())],
        "compose.yaml",
    );

    // deep nesting: 100 000 `[` (flow), and 3 000 levels of block mappings (4.5 MB of indentation)
    let mut deep = b"services: ".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    plan_refused("deep-flow", &[("compose.yaml", deep)], "compose.yaml");
    let mut deep_block = String::from("services:\n");
    for i in 0..3_000 {
        deep_block.push_str(&" ".repeat(i + 2));
        deep_block.push_str("k:\n");
    }
    plan_refused(
        "deep-block",
        &[("compose.yaml", deep_block.into_bytes())],
        "compose.yaml",
    );

    // not UTF-8: the compose file, and the .env next to it
    plan_refused(
        "non-utf8-compose",
        &[(
            "compose.yaml",
            b"services:\n  web:\n    image: redis:\xff\xfe7\n".to_vec(),
        )],
        "compose.yaml",
    );
    plan_refused(
        "non-utf8-env",
        &[
            (
                "compose.yaml",
                b"services:\n  web:\n    image: redis:${TAG}\n".to_vec(),
            ),
            (".env", b"TAG=7\nBAD=\xc3\x28\n".to_vec()),
        ],
        ".env",
    );

    // a huge single line: 7 MB of flow mapping (under the 8 MiB file limit), and 9 MB (over)
    let mut line = String::from("services: {web: {image: redis, labels: {");
    let mut i = 0;
    while line.len() < 7 << 20 {
        line.push_str(&format!("k{i}: v, "));
        i += 1;
    }
    line.push_str("z: [}}}\n"); // unclosed: refused at the end of the line
    plan_refused(
        "huge-line",
        &[("compose.yaml", line.into_bytes())],
        "compose.yaml",
    );
    let scalar = format!(
        "services: {{web: {{image: \"{}\"}}}}\n",
        "a".repeat(7 << 20)
    );
    plan_refused(
        "huge-scalar",
        &[("compose.yaml", scalar.into_bytes())],
        "compose.yaml",
    );
    let big = format!(
        "services: {{web: {{image: \"{}\"}}}}\n",
        "a".repeat(9 << 20)
    );
    plan_refused(
        "over-the-limit",
        &[("compose.yaml", big.into_bytes())],
        "compose.yaml",
    );
}

/// bundle.json's project names a path: `verify` and `up` stage the compose files in a
/// directory named after the project.
fn project_names_that_are_paths_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let escape = w.join("escaped-project");
    for project in [escape.display().to_string(), "../../escaped".to_string()] {
        let meta = META.replace(r#""project":"p""#, &format!(r#""project":"{project}""#));
        let bundle = w.join("project.tar");
        write_members(
            &bundle,
            &[
                ("airlock/bundle.json".into(), meta.into_bytes()),
                (
                    "airlock/compose/compose.yaml".into(),
                    b"services:\n  web:\n    image: redis:7\n".to_vec(),
                ),
            ],
        );
        refused(w, &bundle, &project);
        assert!(!escape.exists());
    }
}
