//! Building a `tar-zstd-v1` patch: walks both tars, matches each target entry to a base
//! entry (same path, else the same path with its numbers and hashes ignored, else for a
//! file the same file name, numbers and hashes ignored, with the closest size) and writes the op stream through one zstd stream.

use super::walk::{self, Entry, Index};
use super::wire::{self, COPY, COPYPAD, DIFF, END, HDR, LIT};
use super::{
    CountingWriter, DIFF_CHUNK, DIFF_LEVEL, FAST_LEVEL, HIGH_LEVEL_LIMIT, Header, METHOD,
    OUTER_LEVEL, OUTER_WINDOW_LOG, PatchError, Stats, prefix_window, read_at, window_log_for,
    write_header,
};
use crate::digest::Digest;
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use zstd::zstd_safe::{self, CParameter};

/// Candidates looked at for a match by file name; a more common name is not matched so.
const NAME_CANDIDATES: usize = 64;

pub(super) fn build(
    base_tar: &Path,
    base_diff_id: &Digest,
    new_tar: &Path,
    diff_id: &Digest,
    out: &mut dyn Write,
) -> Result<Stats, PatchError> {
    let base = walk::index(base_tar, true)?;
    if &base.digest != base_diff_id {
        return Err(PatchError::WrongBase {
            path: base_tar.to_path_buf(),
            expected: base_diff_id.clone(),
            found: base.digest,
        });
    }
    let new = walk::index(new_tar, true)?;
    if &new.digest != diff_id {
        return Err(PatchError::WrongTarget {
            path: new_tar.to_path_buf(),
            expected: diff_id.clone(),
            found: new.digest,
        });
    }
    let header = Header {
        base_diff_id: base_diff_id.clone(),
        diff_id: diff_id.clone(),
        size: new.len,
        method: METHOD.into(),
    };
    let mut counter = CountingWriter { inner: out, n: 0 };
    write_header(&mut counter, &header)?;
    let maps = Maps::of(&base);
    // What the target's file data will be: copied, diffed or literal, to choose the levels.
    let (mut diff_bytes, mut lit_bytes) = (0u64, 0u64);
    for e in new.entries.iter().filter(|e| e.file && e.size > 0) {
        let m = maps.matching(&base, e);
        if maps.same(&base, e, m).is_some() {
            continue;
        }
        if m.is_some_and(|(k, _)| base.entries[k].file && base.entries[k].size > 0) {
            diff_bytes += e.size;
        } else {
            lit_bytes += e.size;
        }
    }
    let level = |bytes: u64, high: i32| {
        if bytes <= HIGH_LEVEL_LIMIT {
            high
        } else {
            FAST_LEVEL
        }
    };
    let mut enc = zstd::stream::write::Encoder::new(&mut counter, level(lit_bytes, OUTER_LEVEL))?;
    enc.window_log(OUTER_WINDOW_LOG)?;
    enc.include_checksum(false)?;
    let stats = {
        let mut b = Builder {
            w: BufWriter::with_capacity(128 * 1024, &mut enc),
            base_file: fs_err::File::open(base_tar)?,
            new_file: fs_err::File::open(new_tar)?,
            base: &base,
            maps,
            diff_level: level(diff_bytes, DIFF_LEVEL),
            lit: (0, 0),
            cur: -1,
            stats: Stats::default(),
            bufs: Bufs::default(),
        };
        for e in &new.entries {
            b.entry(e)?;
        }
        b.literal(new.tail(), new.len)?;
        b.flush_lit()?;
        b.w.write_all(&[END])?;
        b.w.flush()?;
        b.stats
    };
    enc.finish()?;
    Ok(Stats {
        patch_bytes: counter.n,
        ..stats
    })
}

/// Base entries by content, path, path without digits, and file name.
struct Maps<'a> {
    by_sha: HashMap<[u8; 32], usize>,
    by_path: HashMap<&'a [u8], usize>,
    /// Keyed by a 64-bit hash of the path without numbers: a collision costs only a worse
    /// match, and a layer of many small files keeps no second copy of every path.
    by_norm: HashMap<u64, usize>,
    by_name: HashMap<u64, Vec<usize>>,
}

impl<'a> Maps<'a> {
    fn of(base: &'a Index) -> Self {
        let mut m = Maps {
            by_sha: HashMap::new(),
            by_path: HashMap::new(),
            by_norm: HashMap::new(),
            by_name: HashMap::new(),
        };
        for (i, e) in base.entries.iter().enumerate() {
            m.by_path.insert(&e.path, i);
            m.by_norm.insert(key(&e.path), i);
            if e.file && e.size > 0 {
                m.by_sha.entry(e.sha).or_insert(i);
                m.by_name
                    .entry(key(file_name(&e.path)))
                    .or_default()
                    .push(i);
            }
        }
        m
    }

    /// The base entry that `e` replaces, and whether its path is the same.
    fn matching(&self, base: &Index, e: &Entry) -> Option<(usize, bool)> {
        if let Some(&k) = self.by_path.get(&e.path[..]) {
            return Some((k, true));
        }
        if let Some(&k) = self.by_norm.get(&key(&e.path)) {
            return Some((k, false));
        }
        if !e.file || e.size == 0 {
            return None;
        }
        let candidates = self.by_name.get(&key(file_name(&e.path)))?;
        if candidates.len() > NAME_CANDIDATES {
            return None;
        }
        candidates
            .iter()
            .min_by_key(|&&k| base.entries[k].size.abs_diff(e.size))
            .map(|&k| (k, false))
    }

    /// A base file with the content of target file `e` (`m` first, when it has it).
    fn same(&self, base: &Index, e: &Entry, m: Option<(usize, bool)>) -> Option<usize> {
        match m {
            Some((k, _)) if base.entries[k].file && base.entries[k].sha == e.sha => Some(k),
            _ => self.by_sha.get(&e.sha).copied(),
        }
        .filter(|&k| base.entries[k].size == e.size)
    }
}

/// The path with every number and every hash-like word (8 or more hex digits, one of them
/// a digit) replaced by `#`: `Django-5.1.3.dist-info/RECORD` and
/// `Django-5.1.4.dist-info/RECORD` are the same, and so are `librustc_driver-6108105c.so`
/// and `librustc_driver-b5a96548.so`.
fn without_digits(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for word in path.split_inclusive(|b| !b.is_ascii_alphanumeric()) {
        let (alnum, sep) = match word.last() {
            Some(b) if !b.is_ascii_alphanumeric() => word.split_at(word.len() - 1),
            _ => (word, &[][..]),
        };
        let number = !alnum.is_empty() && alnum.iter().all(u8::is_ascii_digit);
        let hash = alnum.len() >= 8
            && alnum.iter().all(u8::is_ascii_hexdigit)
            && alnum.iter().any(u8::is_ascii_digit);
        if number || hash {
            out.push(b'#');
        } else {
            // Digits inside a word (`x86_64`, `py311`) count as one number.
            for &b in alnum {
                if !b.is_ascii_digit() {
                    out.push(b);
                } else if out.last() != Some(&b'#') {
                    out.push(b'#');
                }
            }
        }
        out.extend_from_slice(sep);
    }
    out
}

/// The hash of the path without numbers.
fn key(path: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    without_digits(path).hash(&mut h);
    h.finish()
}

fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

#[derive(Default)]
struct Bufs {
    target: Vec<u8>,
    prefix: Vec<u8>,
    frame: Vec<u8>,
    alone: Vec<u8>,
}

struct Builder<'a, W: Write> {
    w: BufWriter<W>,
    base_file: fs_err::File,
    new_file: fs_err::File,
    base: &'a Index,
    maps: Maps<'a>,
    /// zstd level of DIFF frames.
    diff_level: i32,
    /// Pending literal range of the target, written before the next other op.
    lit: (u64, u64),
    /// The base entry of the last `HDR` op (-1 before the first).
    cur: i64,
    stats: Stats,
    bufs: Bufs,
}

impl<W: Write> Builder<'_, W> {
    fn entry(&mut self, e: &Entry) -> Result<(), PatchError> {
        let m = self.maps.matching(self.base, e);
        // Header blocks: XOR against the matching entry's when they are as long.
        match m {
            Some((k, _)) if self.base.entries[k].header_len() == e.header_len() => {
                self.flush_lit()?;
                self.w.write_all(&[HDR])?;
                wire::put(&mut self.w, wire::zigzag(k as i64 - (self.cur + 1)))?;
                self.cur = k as i64;
                self.xor(self.base.entries[k].start, e.start, e.header_len())?;
                self.stats.diffed += e.header_len();
            }
            _ => self.literal(e.start, e.data)?,
        }
        if !e.file || e.size == 0 {
            return self.literal(e.data, e.end);
        }
        // The same content in the base: copy it.
        if let Some(k) = self.maps.same(self.base, e, m) {
            let b = &self.base.entries[k];
            let with_pad = b.pad_len() == e.pad_len() && self.same_pad(b, e)?;
            self.flush_lit()?;
            self.w.write_all(&[if with_pad { COPYPAD } else { COPY }])?;
            wire::put(&mut self.w, wire::zigzag(k as i64 - self.cur))?;
            self.stats.files_same += 1;
            if with_pad {
                self.stats.copied += e.end - e.data;
                return Ok(());
            }
            self.stats.copied += e.size;
            return self.literal(e.data + e.size, e.end);
        }
        // Changed: each chunk against a window of the matching file's data, or literal.
        match m {
            Some((k, exact)) if self.base.entries[k].file && self.base.entries[k].size > 0 => {
                let mut diffed = false;
                let mut off = 0;
                let mut j = 0;
                while off < e.size {
                    let len = (e.size - off).min(DIFF_CHUNK);
                    diffed |= self.chunk(e, k, exact, j, off, len)?;
                    off += len;
                    j += 1;
                }
                if diffed {
                    self.stats.files_changed += 1;
                } else {
                    self.stats.files_new += 1;
                }
            }
            _ => {
                self.stats.files_new += 1;
                self.literal(e.data, e.data + e.size)?;
            }
        }
        self.literal(e.data + e.size, e.end)
    }

    /// One chunk of a changed file: a `DIFF` op when the frame is worth it, else literal.
    fn chunk(
        &mut self,
        e: &Entry,
        k: usize,
        exact: bool,
        j: u64,
        off: u64,
        len: u64,
    ) -> Result<bool, PatchError> {
        let b = &self.base.entries[k];
        let (lo, hi) = prefix_window(b.size, j);
        let bufs = &mut self.bufs;
        bufs.target.resize(len as usize, 0);
        read_at(&self.new_file, &mut bufs.target, e.data + off)?;
        bufs.prefix.resize((hi - lo) as usize, 0);
        read_at(&self.base_file, &mut bufs.prefix, b.data + lo)?;
        compress(&bufs.prefix, &bufs.target, self.diff_level, &mut bufs.frame)?;
        // Worth it when smaller than the chunk, and for a file matched by another path
        // clearly smaller than the chunk compressed on its own.
        let mut worth = (bufs.frame.len() as u64) < len;
        if worth && !exact {
            compress(&[], &bufs.target, 3, &mut bufs.alone)?;
            worth = bufs.frame.len() * 10 < bufs.alone.len() * 8;
        }
        if !worth {
            self.literal(e.data + off, e.data + off + len)?;
            return Ok(false);
        }
        self.flush_lit()?;
        self.w.write_all(&[DIFF])?;
        wire::put(&mut self.w, wire::zigzag(k as i64 - self.cur))?;
        wire::put(&mut self.w, j)?;
        wire::put(&mut self.w, len)?;
        wire::put(&mut self.w, self.bufs.frame.len() as u64)?;
        self.w.write_all(&self.bufs.frame)?;
        self.stats.diffed += len;
        Ok(true)
    }

    /// Target bytes `a..b` are literal.
    fn literal(&mut self, a: u64, b: u64) -> Result<(), PatchError> {
        if a == b {
            return Ok(());
        }
        if self.lit.1 != a {
            self.flush_lit()?;
            self.lit = (a, a);
        }
        self.lit.1 = b;
        Ok(())
    }

    fn flush_lit(&mut self) -> Result<(), PatchError> {
        let (a, b) = self.lit;
        if a == b {
            return Ok(());
        }
        self.w.write_all(&[LIT])?;
        wire::put(&mut self.w, b - a)?;
        let mut buf = vec![0u8; 128 * 1024];
        let mut pos = a;
        while pos < b {
            let n = (b - pos).min(buf.len() as u64) as usize;
            read_at(&self.new_file, &mut buf[..n], pos)?;
            self.w.write_all(&buf[..n])?;
            pos += n as u64;
        }
        self.stats.literal += b - a;
        self.lit = (b, b);
        Ok(())
    }

    /// Write target bytes `t..t+len` XOR base bytes `b..b+len`.
    fn xor(&mut self, b: u64, t: u64, len: u64) -> Result<(), PatchError> {
        let mut bb = [0u8; 16 * 1024];
        let mut tb = [0u8; 16 * 1024];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(bb.len() as u64) as usize;
            read_at(&self.base_file, &mut bb[..n], b + done)?;
            read_at(&self.new_file, &mut tb[..n], t + done)?;
            for (x, y) in tb[..n].iter_mut().zip(&bb[..n]) {
                *x ^= y;
            }
            self.w.write_all(&tb[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    fn same_pad(&self, b: &Entry, e: &Entry) -> Result<bool, PatchError> {
        let n = e.pad_len() as usize;
        let (mut x, mut y) = ([0u8; 512], [0u8; 512]);
        read_at(&self.base_file, &mut x[..n], b.data + b.size)?;
        read_at(&self.new_file, &mut y[..n], e.data + e.size)?;
        Ok(x[..n] == y[..n])
    }
}

/// One zstd frame of `src` at `level` with `prefix` as reference prefix, into `out`.
fn compress(prefix: &[u8], src: &[u8], level: i32, out: &mut Vec<u8>) -> io::Result<()> {
    let zerr = |code: usize| io::Error::other(zstd_safe::get_error_name(code));
    let mut cctx = zstd_safe::CCtx::try_create()
        .ok_or_else(|| io::Error::other("cannot create a zstd context"))?;
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .map_err(zerr)?;
    cctx.set_parameter(CParameter::WindowLog(window_log_for(
        (prefix.len() + src.len()) as u64,
    )))
    .map_err(zerr)?;
    cctx.set_parameter(CParameter::ChecksumFlag(false))
        .map_err(zerr)?;
    if !prefix.is_empty() {
        cctx.ref_prefix(prefix).map_err(zerr)?;
    }
    out.clear();
    out.reserve(zstd_safe::compress_bound(src.len()));
    cctx.compress2(out, src).map_err(zerr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_without_digits() {
        assert_eq!(
            without_digits(b"Django-5.1.3.dist-info/RECORD"),
            without_digits(b"Django-5.1.14.dist-info/RECORD")
        );
        assert_eq!(without_digits(b"a1b22c"), b"a#b#c".to_vec());
        assert_eq!(
            without_digits(b"lib/librustc_driver-6108105cd7e839cf.so"),
            without_digits(b"lib/librustc_driver-b5a965480ee51f9a.so")
        );
        assert_eq!(
            without_digits(b"lib/deadbeef.so"),
            b"lib/deadbeef.so".to_vec()
        );
        assert_eq!(without_digits(b"x-1.2/"), b"x-#.#/".to_vec());
        assert_eq!(file_name(b"a/b/c.py"), b"c.py");
        assert_eq!(file_name(b"c.py"), b"c.py");
    }
}
