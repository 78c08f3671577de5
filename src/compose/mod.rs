//! Compose project loading: owns discovery of compose files, `.env` files, interpolation,
//! YAML (anchors, merge keys, `!reset`/`!override`), merging of `-f` files, `include`,
//! `extends` and profiles, producing `model::Project`. Read by `plan`, `check` and `cli`.
//! Hand-written where no crate fits: there is no maintained Rust implementation of the
//! Compose loader rules.

pub mod model;
pub use model::*;
