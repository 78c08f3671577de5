//! Hostile bundles crafted with raw tar headers (no engine needed): `..`, absolute paths,
//! symlinks, hard links, devices, duplicate names, a 100 MB `manifest.json`/`bundle.json`
//! (a sparse file: refused by its header size, never read). Each is refused by `verify` and
//! `inspect` with a message naming the entry, a non-zero exit, and nothing written outside.

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
