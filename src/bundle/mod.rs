//! Bundles: owns the bundle file format (docs/bundle-format.md). `write` is the sink used by
//! `pack`; `read` is the source used by `verify`, `inspect`, `load`, `up` and `serve`.

pub mod delta;
pub mod meta;
pub mod parts;
pub mod read;
pub mod signature;
pub mod source;
pub mod verify;
pub mod write;
