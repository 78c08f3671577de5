//! Bundles: owns the bundle file format (docs/bundle-format.md). `write` is the sink `pack`
//! uses (blobs from any `source::Source`); `read` walks a bundle in tar order and `source`
//! adds the blob-offset index and makes a bundle a `source::Source`: together the one reader
//! behind `verify`, `inspect`, `load`, `up`, `serve` and `push`. `signature` checks a signed
//! bundle (with `crate::sign`), `delta` bundles over a base, `parts` split bundles.

pub mod delta;
pub mod meta;
pub mod parts;
pub mod patched;
pub mod read;
pub mod signature;
pub mod source;
pub mod verify;
pub mod write;
