//! The op stream of a `tar-zstd-v1` patch body: op tags and LEB128 numbers (see
//! docs/bundle-format.md, "Layer patches").

use std::io::{self, Read, Write};

/// End of the op stream.
pub(super) const END: u8 = 0;
/// `LIT len`, then `len` bytes of the target.
pub(super) const LIT: u8 = 1;
/// `HDR dk`, then as many bytes as the base entry's header blocks: the target's header
/// blocks are those bytes XOR the base entry's header blocks.
pub(super) const HDR: u8 = 2;
/// `COPY dk`: the base entry's data.
pub(super) const COPY: u8 = 3;
/// `COPYPAD dk`: the base entry's data and padding.
pub(super) const COPYPAD: u8 = 4;
/// `DIFF dk len`, then per chunk of at most `DIFF_CHUNK` target bytes `frame_len` and a
/// zstd frame compressed with a window of the base entry's data as reference prefix.
pub(super) const DIFF: u8 = 5;

pub(super) fn put(w: &mut impl Write, mut v: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut n = 0;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = b;
            n += 1;
            break;
        }
        buf[n] = b | 0x80;
        n += 1;
    }
    w.write_all(&buf[..n])
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Why reading the op stream stopped: the bytes are not a valid op stream, or reading
/// them failed.
pub(super) enum ReadErr {
    Corrupt(&'static str),
    Io(io::Error),
}

pub(super) fn get_u8(r: &mut impl Read) -> Result<u8, ReadErr> {
    let mut b = [0u8; 1];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(b[0]),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadErr::Corrupt("truncated")),
        Err(e) => Err(ReadErr::Io(e)),
    }
}

pub(super) fn get(r: &mut impl Read) -> Result<u64, ReadErr> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = get_u8(r)?;
        if i == 9 && b > 1 {
            break;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ReadErr::Corrupt("number too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn numbers_round_trip(v: u64, d: i64) {
            let mut buf = Vec::new();
            put(&mut buf, v).unwrap();
            prop_assert!(buf.len() <= 10);
            let mut r = &buf[..];
            prop_assert_eq!(get(&mut r).ok(), Some(v));
            prop_assert!(r.is_empty());
            prop_assert_eq!(unzigzag(zigzag(d)), d);
        }
    }

    #[test]
    fn too_large_is_corrupt() {
        let buf = [0xffu8; 11];
        assert!(matches!(get(&mut &buf[..]), Err(ReadErr::Corrupt(_))));
        assert!(matches!(get(&mut &[0x80u8][..]), Err(ReadErr::Corrupt(_))));
    }
}
