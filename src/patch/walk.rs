//! Tar segmentation for layer patches: splits an uncompressed tar into entries (header
//! blocks, data, padding) and a tail, while hashing every byte of it. The rules are part of
//! the patch format (docs/bundle-format.md, "Layer patches"): `apply` walks the base with
//! the same rules as `build` did and refers to its entries by index, so they must never
//! depend on anything but the bytes. Whatever the walk does not understand ends it: the
//! rest is the tail, carried as literal bytes, so any tar (or any file) still round-trips.

use crate::digest::{Digest, Hasher};
use sha2::{Digest as _, Sha256};
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Largest extension header (pax `x`, GNU `L`/`K`) data the walk reads; a larger one ends it.
const EXT_LIMIT: u64 = 1 << 20;

/// One tar entry: its header blocks (extension headers included), data and padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// First byte of the entry's header blocks.
    pub start: u64,
    /// First byte of its data (the end of its header blocks).
    pub data: u64,
    /// Bytes of data.
    pub size: u64,
    /// After the padding to 512 bytes.
    pub end: u64,
    /// A regular file (type `0`, NUL or `7`): its data is file content.
    pub file: bool,
    /// The entry's path (pax `path`, else GNU long name, else ustar prefix/name); empty
    /// unless the walk keeps details.
    pub path: Box<[u8]>,
    /// sha256 of the data of a regular file; zero unless the walk keeps details.
    pub sha: [u8; 32],
}

impl Entry {
    pub fn header_len(&self) -> u64 {
        self.data - self.start
    }
    pub fn pad_len(&self) -> u64 {
        self.end - self.data - self.size
    }
}

/// A walked tar: its entries, its length and its sha256.
pub(super) struct Index {
    pub entries: Vec<Entry>,
    pub len: u64,
    pub digest: Digest,
}

impl Index {
    /// First byte of the tail (after the last entry).
    pub fn tail(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.end)
    }
}

/// Walk the tar at `path`. With `detail`, keep each entry's path and each file's sha256.
pub(super) fn index(path: &Path, detail: bool) -> io::Result<Index> {
    let file = fs_err::File::open(path)?;
    walk(file, detail)
}

/// Walk a tar read from `r` (see [`index`]).
pub(super) fn walk(r: impl Read, detail: bool) -> io::Result<Index> {
    let mut scan = Scan {
        r: BufReader::with_capacity(256 * 1024, r),
        hasher: Hasher::new(),
        pos: 0,
    };
    let mut entries = Vec::new();
    let mut block = [0u8; 512];
    'entries: loop {
        let start = scan.pos;
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut long_name: Option<Vec<u8>> = None;
        loop {
            if scan.fill(&mut block)? < 512 || block.iter().all(|&b| b == 0) || !checksum_ok(&block)
            {
                break 'entries;
            }
            let Some(size) = parse_num(&block[124..136]) else {
                break 'entries;
            };
            let kind = block[156];
            if matches!(kind, b'x' | b'L' | b'K') {
                if size > EXT_LIMIT {
                    break 'entries;
                }
                let mut data = vec![0u8; size as usize];
                if scan.fill(&mut data)? < data.len() || scan.skip(pad(size))? < pad(size) {
                    break 'entries;
                }
                match kind {
                    b'x' => parse_pax(&data, &mut pax_path, &mut pax_size),
                    b'L' => long_name = Some(cstr(&data).to_vec()),
                    _ => {}
                }
                continue;
            }
            let size = pax_size.unwrap_or(size);
            let data = scan.pos;
            let file = matches!(kind, b'0' | 0 | b'7');
            let (got, sha) = if file && detail {
                scan.hash(size)?
            } else {
                (scan.skip(size)?, [0u8; 32])
            };
            if got < size || scan.skip(pad(size))? < pad(size) {
                break 'entries;
            }
            let path = if detail {
                normalize(pax_path.or(long_name).unwrap_or_else(|| ustar_path(&block)))
            } else {
                Vec::new()
            }
            .into_boxed_slice();
            entries.push(Entry {
                start,
                data,
                size,
                end: scan.pos,
                file,
                path,
                sha,
            });
            break;
        }
    }
    scan.skip(u64::MAX)?;
    Ok(Index {
        entries,
        len: scan.pos,
        digest: scan.hasher.finish(),
    })
}

/// Padding after `size` bytes of data.
pub(super) fn pad(size: u64) -> u64 {
    (512 - size % 512) % 512
}

struct Scan<R> {
    r: BufReader<R>,
    hasher: Hasher,
    pos: u64,
}

impl<R: Read> Scan<R> {
    /// Read as much of `buf` as there is (short only at the end of the input).
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.hasher.update(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }

    /// Read up to `n` bytes (fewer only at the end), calling `f` on each chunk.
    fn consume(&mut self, n: u64, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
        let mut left = n;
        let mut buf = [0u8; 64 * 1024];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let got = self.fill(&mut buf[..want])?;
            f(&buf[..got]);
            left -= got as u64;
            if got < want {
                break;
            }
        }
        Ok(n - left)
    }

    fn skip(&mut self, n: u64) -> io::Result<u64> {
        self.consume(n, |_| {})
    }

    fn hash(&mut self, n: u64) -> io::Result<(u64, [u8; 32])> {
        let mut sha = Sha256::new();
        let got = self.consume(n, |b| sha.update(b))?;
        Ok((got, sha.finalize().into()))
    }
}

/// The header checksum (bytes 148..156, octal) matches the header, summed as unsigned or
/// signed bytes with the checksum field taken as spaces.
fn checksum_ok(block: &[u8; 512]) -> bool {
    let Some(want) = parse_octal(&block[148..156]) else {
        return false;
    };
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    want as i64 == unsigned || want as i64 == signed
}

/// A numeric header field: octal (leading spaces/NULs, ended by a space or NUL; empty is 0)
/// or GNU base-256 (high bit of the first byte set; positive values of up to 63 bits).
fn parse_num(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return None;
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            if v >> 55 != 0 {
                return None;
            }
            v = (v << 8) | u64::from(b);
        }
        return Some(v);
    }
    parse_octal(field)
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let digits = field
        .iter()
        .skip_while(|&&b| b == b' ' || b == 0)
        .take_while(|&&b| b != b' ' && b != 0);
    let mut v: u64 = 0;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) || v >> 60 != 0 {
            return None;
        }
        v = (v << 3) | u64::from(b - b'0');
    }
    Some(v)
}

/// pax records `LEN key=value\n`: keeps `path` and `size`; stops at the first malformed one.
fn parse_pax(mut data: &[u8], path: &mut Option<Vec<u8>>, size: &mut Option<u64>) {
    while !data.is_empty() {
        let Some(sp) = data.iter().position(|&b| b == b' ') else {
            return;
        };
        let Some(len) = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            return;
        };
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return;
        }
        let record = &data[sp + 1..len - 1];
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" => *path = Some(value.to_vec()),
                b"size" => {
                    *size = std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                }
                _ => {}
            }
        }
        data = &data[len..];
    }
}

fn cstr(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// The name field, after the POSIX ustar prefix field when there is one.
fn ustar_path(block: &[u8; 512]) -> Vec<u8> {
    let name = cstr(&block[0..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            let mut p = prefix.to_vec();
            p.push(b'/');
            p.extend_from_slice(name);
            return p;
        }
    }
    name.to_vec()
}

/// Without a leading `./` or `/` and a trailing `/`, so `./a/` and `a` match.
fn normalize(mut p: Vec<u8>) -> Vec<u8> {
    let lead = if p.starts_with(b"./") {
        2
    } else if p.starts_with(b"/") {
        1
    } else {
        0
    };
    p.drain(..lead);
    while p.last() == Some(&b'/') {
        p.pop();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn walks_entries_and_hashes_the_whole_tar() {
        let long = "d/".repeat(80) + "long.txt";
        let tar = tar_of(&[("a.txt", b"hello"), (&long, b"x"), ("empty", b"")]);
        let idx = walk(&tar[..], true).unwrap();
        assert_eq!(idx.digest, Digest::of(&tar));
        assert_eq!(idx.len, tar.len() as u64);
        let paths: Vec<_> = idx.entries.iter().map(|e| e.path.to_vec()).collect();
        assert_eq!(
            paths,
            vec![b"a.txt".to_vec(), long.into_bytes(), b"empty".to_vec()]
        );
        let a = &idx.entries[0];
        assert_eq!(&tar[a.data as usize..(a.data + a.size) as usize], b"hello");
        assert_eq!(a.sha, <[u8; 32]>::from(Sha256::digest(b"hello")));
        // The long name's GNU `L` header belongs to its entry.
        assert_eq!(idx.entries[1].header_len(), 3 * 512);
        assert!(idx.tail() < idx.len);
        // Without detail: the same segmentation.
        let bare = walk(&tar[..], false).unwrap();
        let seg = |i: &Index| {
            i.entries
                .iter()
                .map(|e| (e.start, e.data, e.size, e.end, e.file))
                .collect::<Vec<_>>()
        };
        assert_eq!(seg(&bare), seg(&idx));
    }

    #[test]
    fn anything_else_is_tail() {
        let idx = walk(&b"not a tar at all"[..], true).unwrap();
        assert!(idx.entries.is_empty());
        assert_eq!(idx.len, 16);
        let mut tar = tar_of(&[("a", b"1")]);
        tar[600] ^= 1; // inside the data: still an entry
        tar[100] ^= 1; // header checksum broken: no entry
        assert!(walk(&tar[..], true).unwrap().entries.is_empty());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_num(b"00000000012\0"), Some(10));
        assert_eq!(parse_num(b"     12 \0\0\0\0"), Some(10));
        assert_eq!(parse_num(b"\0\0\0\0\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(parse_num(b"0000000009\0\0"), None);
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[11] = 7;
        b256[10] = 1;
        assert_eq!(parse_num(&b256), Some(263));
        b256[0] = 0xff;
        assert_eq!(parse_num(&b256), None);
    }
}
