//! airlock: carry Docker Compose deployments across an air gap.
//!
//! Data flows one way: compose project -> `plan` (image references) -> `registry`
//! resolve (digests per platform) -> `store` (content-addressed, verified) -> sinks
//! (`bundle` file, registry push, `engine` load). A bundle is itself a source.

pub mod bundle;
pub mod check;
pub mod cli;
pub mod compose;
pub mod compose_cli;
pub mod compose_override;
pub mod digest;
pub mod disk;
pub mod dockerfile;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod image;
pub mod lock;
pub mod pack;
pub mod patch;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod push;
pub mod reference;
pub mod registry;
pub mod run_files;
pub mod runtime;
pub mod serve;
pub mod sign;
pub mod source;
pub mod stage;
pub mod store;
pub mod swarm;
pub mod time;
pub mod up;
