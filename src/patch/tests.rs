//! Round trips of generated tars (files changed, renamed, deleted, added; hardlinks,
//! symlinks, whiteouts, GNU and pax long names; not a tar at all), corrupt and truncated
//! patches, and wrong bases. DIFF_CHUNK is 4 KiB in tests so files span several chunks.

use super::*;
use proptest::prelude::*;
use std::io::Cursor;

/// xorshift64*: a deterministic generator driven by proptest's seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Bytes that compress a little (words from a small vocabulary) or not at all.
    fn content(&mut self, len: usize) -> Vec<u8> {
        if self.below(3) == 0 {
            return (0..len).map(|_| self.next() as u8).collect();
        }
        let words: [&[u8]; 6] = [
            b"def ", b"return ", b"self.", b"import ", b"\n    ", b"x = 1",
        ];
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            if self.below(8) == 0 {
                v.extend(format!("{}", self.next() % 1000).bytes());
            } else {
                v.extend_from_slice(words[self.below(6) as usize]);
            }
        }
        v.truncate(len);
        v
    }
}

#[derive(Clone, Debug)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
}

#[derive(Clone, Debug)]
struct Spec {
    path: String,
    kind: Kind,
    mtime: u64,
    pax: bool,
}

fn tar_of(specs: &[Spec]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for s in specs {
        if s.pax {
            b.append_pax_extensions([("airlock.test", s.path.as_bytes())])
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_mtime(s.mtime);
        h.set_uid(0);
        h.set_gid(0);
        match &s.kind {
            Kind::File(data) => {
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, &s.path, &data[..]).unwrap();
            }
            Kind::Dir => {
                h.set_mode(0o755);
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, &s.path, io::empty()).unwrap();
            }
            Kind::Symlink(t) | Kind::Hardlink(t) => {
                h.set_mode(0o777);
                h.set_entry_type(if matches!(s.kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, &s.path, t).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A base layer of `n` files in a few directories, and its next version: files kept,
/// changed (bytes replaced, inserted, removed), deleted (with a whiteout), renamed by a
/// version bump, added; links, long names, and new mtimes.
fn pair(seed: u64, n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let dirs = ["app", "app/pkg-1.2.3.dist-info", "usr/lib"];
    let mut base = vec![];
    for d in dirs {
        base.push(Spec {
            path: format!("{d}/"),
            kind: Kind::Dir,
            mtime: 1000,
            pax: false,
        });
    }
    for i in 0..n {
        let len = [0, 10, 700, 5000, 13000][rng.below(5) as usize];
        let len = len + rng.below(300) as usize;
        let dir = dirs[rng.below(3) as usize];
        let long = rng.below(6) == 0;
        let name = if long {
            format!("{dir}/{}/f{i}.py", "deep/".repeat(25))
        } else {
            format!("{dir}/f{i}.py")
        };
        base.push(Spec {
            path: name,
            kind: Kind::File(rng.content(len)),
            mtime: 1000 + rng.below(50),
            pax: rng.below(8) == 0,
        });
    }
    if let Some(f) = base.iter().find(|s| matches!(s.kind, Kind::File(_))) {
        let target = f.path.clone();
        base.push(Spec {
            path: "usr/lib/hard".into(),
            kind: Kind::Hardlink(target),
            mtime: 1000,
            pax: false,
        });
    }
    let mut next = vec![];
    for s in &base {
        let mut t = s.clone();
        t.mtime += rng.below(3) * 7;
        if let Kind::File(data) = &s.kind {
            match rng.below(7) {
                0 => {
                    let (dir, name) = t.path.rsplit_once('/').unwrap();
                    next.push(Spec {
                        path: format!("{dir}/.wh.{name}"),
                        kind: Kind::File(vec![]),
                        mtime: t.mtime,
                        pax: false,
                    });
                    continue;
                }
                1 | 2 => {
                    let mut d = data.clone();
                    for _ in 0..1 + rng.below(3) {
                        let at = rng.below(d.len() as u64 + 1) as usize;
                        match rng.below(3) {
                            0 if at < d.len() => d[at] ^= 0x5a,
                            1 => {
                                let k = 1 + rng.below(200) as usize;
                                let ins = rng.content(k);
                                d.splice(at..at, ins);
                            }
                            _ => {
                                let end = (at + rng.below(100) as usize).min(d.len());
                                d.drain(at..end);
                            }
                        }
                    }
                    t.kind = Kind::File(d);
                }
                _ => {}
            }
        }
        t.path = t.path.replace("pkg-1.2.3", "pkg-1.2.4");
        next.push(t);
    }
    for i in 0..rng.below(4) {
        let len = rng.below(9000) as usize;
        next.push(Spec {
            path: format!("app/new{i}.py"),
            kind: Kind::File(rng.content(len)),
            mtime: 2000,
            pax: false,
        });
    }
    next.push(Spec {
        path: "app/link".into(),
        kind: Kind::Symlink("new0.py".into()),
        mtime: 2000,
        pax: false,
    });
    (tar_of(&base), tar_of(&next))
}

struct Pair {
    _dir: tempfile::TempDir,
    base: PathBuf,
    new: PathBuf,
    base_id: Digest,
    new_id: Digest,
    new_bytes: Vec<u8>,
}

fn files(base: &[u8], new: &[u8]) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (b, n) = (dir.path().join("base.tar"), dir.path().join("new.tar"));
    fs_err::write(&b, base).unwrap();
    fs_err::write(&n, new).unwrap();
    Pair {
        _dir: dir,
        base: b,
        new: n,
        base_id: Digest::of(base),
        new_id: Digest::of(new),
        new_bytes: new.to_vec(),
    }
}

fn patch_of(p: &Pair) -> (Vec<u8>, Stats) {
    let mut out = Vec::new();
    let stats = build(&p.base, &p.base_id, &p.new, &p.new_id, &mut out).unwrap();
    assert_eq!(stats.patch_bytes, out.len() as u64);
    (out, stats)
}

fn rebuild(p: &Pair, patch: &[u8]) -> Result<(Header, Vec<u8>), PatchError> {
    let mut out = Vec::new();
    let h = apply(&p.base, &mut Cursor::new(patch), &mut out)?;
    Ok((h, out))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn rebuilds_byte_for_byte(seed: u64, n in 0usize..14) {
        let (base, new) = pair(seed, n);
        let p = files(&base, &new);
        let (patch, stats) = patch_of(&p);
        let (h, out) = rebuild(&p, &patch).unwrap();
        prop_assert!(out == new, "rebuilt tar differs");
        prop_assert_eq!(&h.diff_id, &p.new_id);
        prop_assert_eq!(h.size, new.len() as u64);
        prop_assert_eq!(stats.copied + stats.diffed + stats.literal, new.len() as u64);
        prop_assert_eq!(header(&mut Cursor::new(&patch)).unwrap(), h);
    }

    #[test]
    fn corrupt_or_truncated_patches_never_panic(seed: u64, at: prop::sample::Index, flip in 1u8.., cut: bool) {
        let (base, new) = pair(seed, 8);
        let p = files(&base, &new);
        let (mut patch, _) = patch_of(&p);
        let i = at.index(patch.len());
        if cut {
            patch.truncate(i);
        } else {
            patch[i] ^= flip;
        }
        match rebuild(&p, &patch) {
            // A change that keeps the patch valid (e.g. in an unused field) must still
            // rebuild the layer exactly.
            Ok((_, out)) => prop_assert!(out == p.new_bytes),
            // (WrongBase: a changed base_diff_id in the header.)
            Err(PatchError::NotAPatch | PatchError::Corrupt(_) | PatchError::Mismatch { .. } | PatchError::WrongBase { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn any_bytes_round_trip(base in prop::collection::vec(any::<u8>(), 0..3000), new in prop::collection::vec(any::<u8>(), 0..3000)) {
        let p = files(&base, &new);
        let (patch, _) = patch_of(&p);
        prop_assert!(rebuild(&p, &patch).unwrap().1 == new);
    }
}

#[test]
fn unchanged_files_are_copied_and_cost_little() {
    let (base, _) = pair(7, 30);
    let p = files(&base, &base);
    let (patch, stats) = patch_of(&p);
    let files = tar::Archive::new(&base[..])
        .entries()
        .unwrap()
        .filter(|e| {
            let e = e.as_ref().unwrap();
            e.header().entry_type().is_file() && e.size() > 0
        })
        .count() as u64;
    assert_eq!(stats.files_same, files);
    assert_eq!(stats.files_changed + stats.files_new, 0);
    let alone = zstd::encode_all(&base[..], 19).unwrap();
    assert!(
        patch.len() * 10 < alone.len(),
        "patch {} bytes, the tar alone {} compressed",
        patch.len(),
        alone.len()
    );
    assert_eq!(rebuild(&p, &patch).unwrap().1, base);
}

#[test]
fn changed_and_renamed_files_are_diffed() {
    let big = Rng::new(3).content(20_000);
    let mut changed = big.clone();
    changed[10_000] ^= 1;
    let spec = |path: &str, data: &[u8]| Spec {
        path: path.into(),
        kind: Kind::File(data.to_vec()),
        mtime: 5,
        pax: false,
    };
    let base = tar_of(&[
        spec("a/big.py", &big),
        spec("lib-1.0.dist-info/RECORD", &big[..3000]),
    ]);
    let mut record = big[..3000].to_vec();
    record[5] ^= 1;
    let new = tar_of(&[
        spec("a/big.py", &changed),
        spec("lib-1.1.dist-info/RECORD", &record),
    ]);
    let p = files(&base, &new);
    let (patch, stats) = patch_of(&p);
    assert_eq!(stats.files_changed, 2, "{stats:?}");
    assert!(stats.diffed >= 23_000, "{stats:?}");
    assert!(patch.len() < 2000, "patch of {} bytes", patch.len());
    assert_eq!(rebuild(&p, &patch).unwrap().1, new);
}

#[test]
fn a_wrong_base_is_refused_naming_it() {
    let (base, new) = pair(11, 6);
    let p = files(&base, &new);
    let (patch, _) = patch_of(&p);
    // Applied to another base (here: the target itself).
    let mut out = Vec::new();
    match apply(&p.new, &mut Cursor::new(&patch), &mut out) {
        Err(e @ PatchError::WrongBase { .. }) => {
            assert!(e.to_string().contains("new.tar"), "{e}");
            assert_eq!(e.class(), Class::Failed);
        }
        other => panic!("expected WrongBase, got {other:?}"),
    }
    assert!(out.is_empty(), "nothing is written for a wrong base");
    // Built with a base that is not the diff_id given.
    let err = build(&p.new, &p.base_id, &p.new, &p.new_id, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, PatchError::WrongBase { .. }), "{err:?}");
    let err = build(&p.base, &p.base_id, &p.base, &p.new_id, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, PatchError::WrongTarget { .. }), "{err:?}");
}

#[test]
fn header_alone_and_not_a_patch() {
    let (base, new) = pair(5, 3);
    let p = files(&base, &new);
    let (patch, _) = patch_of(&p);
    let h = header(&mut &patch[..]).unwrap();
    assert_eq!(h.method, METHOD);
    assert_eq!(h.base_diff_id, p.base_id);
    assert!(matches!(
        header(&mut &b"hello"[..]),
        Err(PatchError::NotAPatch)
    ));
    assert!(matches!(rebuild(&p, &new), Err(PatchError::NotAPatch)));
    // Bytes after the end of the zstd stream.
    let mut longer = patch.clone();
    longer.extend_from_slice(b"extra");
    assert!(rebuild(&p, &longer).is_err());
}

#[test]
fn helpers() {
    assert_eq!(window_log_for(0), 10);
    assert_eq!(window_log_for(1 << 20), 20);
    assert_eq!(window_log_for((1 << 20) + 1), 21);
    assert_eq!(window_log_for(u64::MAX), DIFF_WINDOW_LOG_MAX);
    let c = DIFF_CHUNK;
    assert_eq!(prefix_window(10 * c, 0), (0, c + c / 8));
    assert_eq!(prefix_window(10 * c, 2), (2 * c - c / 8, 3 * c + c / 8));
    assert_eq!(prefix_window(c, 5), (0, c));
    assert_eq!(prefix_window(3 * c, 9), (3 * c - c - c / 4, 3 * c));
    assert_eq!(prefix_window(3 * c, u64::MAX), (3 * c - c - c / 4, 3 * c));
}
