//! Rebuilding a target tar from its base and a `tar-zstd-v1` patch: checks the base's
//! sha256 first (walking it with the rules `build` used, so base entries are found by
//! index), then runs the op stream, every length bounded by the header's size, the base
//! and `DIFF_CHUNK`, hashing what it writes.

use super::walk::{self, Index};
use super::wire::{self, COPY, COPYPAD, DIFF, END, HDR, LIT, ReadErr};
use super::{
    DIFF_CHUNK, DIFF_WINDOW_LOG_MAX, Header, METHOD, OUTER_WINDOW_LOG_MAX, PatchError,
    prefix_window, read_at,
};
use crate::digest::HashingWriter;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use zstd::zstd_safe::{self, DParameter};

pub(super) fn apply(
    base_tar: &Path,
    patch: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<Header, PatchError> {
    let header = super::header(patch)?;
    if header.method != METHOD {
        return Err(PatchError::Corrupt(format!(
            "unknown method `{}` (this airlock reads `{METHOD}`)",
            header.method
        )));
    }
    let base = walk::index(base_tar, false)?;
    if base.digest != header.base_diff_id {
        return Err(PatchError::WrongBase {
            path: base_tar.to_path_buf(),
            expected: header.base_diff_id,
            found: base.digest,
        });
    }
    let base_file = fs_err::File::open(base_tar)?;
    let mut src = Tracked {
        inner: patch,
        failed: false,
    };
    let mut w = HashingWriter::new(out);
    let result = {
        let mut dec = zstd::stream::read::Decoder::new(&mut src)?;
        dec.window_log_max(OUTER_WINDOW_LOG_MAX)?;
        let mut r = BufReader::with_capacity(64 * 1024, dec);
        Ops {
            r: &mut r,
            w: &mut w,
            base: &base,
            base_file: &base_file,
            size: header.size,
            written: 0,
            cur: -1,
        }
        .run()
    };
    match result {
        Ok(()) => {}
        Err(Fault::Read(ReadErr::Corrupt(what))) => {
            return Err(PatchError::Corrupt(what.into()));
        }
        // A failed read of the patch itself, or of its zstd stream (corrupt).
        Err(Fault::Read(ReadErr::Io(e))) if src.failed => return Err(PatchError::Io(e)),
        Err(Fault::Read(ReadErr::Io(e))) => return Err(PatchError::Corrupt(e.to_string())),
        Err(Fault::Io(e)) => return Err(PatchError::Io(e)),
    }
    let (_, found, _) = w.finish();
    if found != header.diff_id {
        return Err(PatchError::Mismatch {
            expected: header.diff_id,
            found,
        });
    }
    Ok(header)
}

/// Remembers whether a read of the patch failed (an I/O error, not a corrupt patch).
struct Tracked<'a> {
    inner: &'a mut dyn Read,
    failed: bool,
}

impl Read for Tracked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed = true;
            }
        })
    }
}

enum Fault {
    /// Reading the op stream.
    Read(ReadErr),
    /// Reading the base or writing the output.
    Io(io::Error),
}

impl From<ReadErr> for Fault {
    fn from(e: ReadErr) -> Self {
        Fault::Read(e)
    }
}

fn corrupt(what: &'static str) -> Fault {
    Fault::Read(ReadErr::Corrupt(what))
}

struct Ops<'a, R: Read, W: Write> {
    r: &'a mut R,
    w: &'a mut W,
    base: &'a Index,
    base_file: &'a fs_err::File,
    size: u64,
    written: u64,
    cur: i64,
}

impl<R: Read, W: Write> Ops<'_, R, W> {
    fn run(&mut self) -> Result<(), Fault> {
        let mut bufs = (Vec::new(), Vec::new(), Vec::new());
        loop {
            match wire::get_u8(self.r)? {
                END => break,
                LIT => {
                    let len = wire::get(self.r)?;
                    let len = self.room(len)?;
                    self.literal(len)?;
                }
                HDR => {
                    let k = self.entry(1)?;
                    self.cur = k as i64;
                    let e = &self.base.entries[k];
                    self.room(e.header_len())?;
                    self.xor(e.start, e.header_len())?;
                }
                tag @ (COPY | COPYPAD) => {
                    let pad = tag == COPYPAD;
                    let k = self.entry(0)?;
                    let e = &self.base.entries[k];
                    let len = if pad { e.end - e.data } else { e.size };
                    self.room(len)?;
                    self.copy_base(e.data, len)?;
                }
                DIFF => {
                    let k = self.entry(0)?;
                    let j = wire::get(self.r)?;
                    let len = wire::get(self.r)?;
                    let len = self.room(len)?;
                    let e = &self.base.entries[k];
                    if len == 0 || len > DIFF_CHUNK || e.size == 0 {
                        return Err(corrupt("a DIFF op out of bounds"));
                    }
                    let frame_len = wire::get(self.r)?;
                    if frame_len > zstd_safe::compress_bound(DIFF_CHUNK as usize) as u64 {
                        return Err(corrupt("a DIFF frame out of bounds"));
                    }
                    let (lo, hi) = prefix_window(e.size, j);
                    let (frame, prefix, target) = &mut bufs;
                    frame.resize(frame_len as usize, 0);
                    read_exact(self.r, frame)?;
                    prefix.resize((hi - lo) as usize, 0);
                    read_at(self.base_file, prefix, e.data + lo).map_err(Fault::Io)?;
                    decompress(prefix, frame, len as usize, target)?;
                    self.w.write_all(target).map_err(Fault::Io)?;
                    self.written += len;
                }
                _ => return Err(corrupt("an unknown op")),
            }
        }
        if self.written != self.size {
            return Err(corrupt("it ends before the layer does"));
        }
        let mut one = [0u8; 1];
        match self.r.read(&mut one) {
            Ok(0) => Ok(()),
            Ok(_) => Err(corrupt("bytes after its end")),
            Err(e) => Err(Fault::Read(ReadErr::Io(e))),
        }
    }

    /// `len` when the target has room for it.
    fn room(&self, len: u64) -> Result<u64, Fault> {
        if len > self.size - self.written {
            return Err(corrupt("an op past the layer's size"));
        }
        Ok(len)
    }

    /// The base entry an op refers to: `cur + bias + delta`.
    fn entry(&mut self, bias: i64) -> Result<usize, Fault> {
        let delta = wire::unzigzag(wire::get(self.r)?);
        self.cur
            .checked_add(bias)
            .and_then(|v| v.checked_add(delta))
            .and_then(|k| usize::try_from(k).ok())
            .filter(|&k| k < self.base.entries.len())
            .ok_or_else(|| corrupt("an op referring to no base entry"))
    }

    fn literal(&mut self, len: u64) -> Result<(), Fault> {
        let mut buf = [0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            read_exact(self.r, &mut buf[..n])?;
            self.w.write_all(&buf[..n]).map_err(Fault::Io)?;
            left -= n as u64;
        }
        self.written += len;
        Ok(())
    }

    fn xor(&mut self, at: u64, len: u64) -> Result<(), Fault> {
        let mut pb = [0u8; 16 * 1024];
        let mut bb = [0u8; 16 * 1024];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(pb.len() as u64) as usize;
            read_exact(self.r, &mut pb[..n])?;
            read_at(self.base_file, &mut bb[..n], at + done).map_err(Fault::Io)?;
            for (x, y) in pb[..n].iter_mut().zip(&bb[..n]) {
                *x ^= y;
            }
            self.w.write_all(&pb[..n]).map_err(Fault::Io)?;
            done += n as u64;
        }
        self.written += len;
        Ok(())
    }

    fn copy_base(&mut self, at: u64, len: u64) -> Result<(), Fault> {
        let mut buf = vec![0u8; 128 * 1024];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            read_at(self.base_file, &mut buf[..n], at + done).map_err(Fault::Io)?;
            self.w.write_all(&buf[..n]).map_err(Fault::Io)?;
            done += n as u64;
        }
        self.written += len;
        Ok(())
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), Fault> {
    r.read_exact(buf).map_err(|e| {
        Fault::Read(if e.kind() == io::ErrorKind::UnexpectedEof {
            ReadErr::Corrupt("truncated")
        } else {
            ReadErr::Io(e)
        })
    })
}

/// Decompress one DIFF frame with `prefix` as reference prefix into `out`, which must come
/// to exactly `len` bytes.
fn decompress(prefix: &[u8], frame: &[u8], len: usize, out: &mut Vec<u8>) -> Result<(), Fault> {
    let bad = |_| corrupt("a DIFF frame that does not decompress");
    let mut dctx = zstd_safe::DCtx::try_create()
        .ok_or_else(|| Fault::Io(io::Error::other("cannot create a zstd context")))?;
    dctx.set_parameter(DParameter::WindowLogMax(DIFF_WINDOW_LOG_MAX))
        .map_err(bad)?;
    dctx.ref_prefix(prefix).map_err(bad)?;
    out.clear();
    out.reserve_exact(len);
    let n = dctx.decompress(out, frame).map_err(bad)?;
    if n != len || out.len() != len {
        return Err(corrupt("a DIFF frame of the wrong size"));
    }
    Ok(())
}
