//! Progress reporting: owns the `Reporter` trait through which the core tells what it is
//! doing. Only `cli` draws bars or prints lines; tests use `Silent`.

use crate::digest::Digest;

/// Events of long-running work. Every method has a no-op default so reporters pick
/// what they show. Implementations must be cheap and thread-safe.
pub trait Reporter: Send + Sync {
    /// A blob transfer starts (`resumed_at` > 0 when a partial download continues).
    fn blob_start(&self, _digest: &Digest, _size: u64, _label: &str, _resumed_at: u64) {}
    /// `bytes` more bytes of the blob were transferred.
    fn blob_progress(&self, _digest: &Digest, _bytes: u64) {}
    /// The blob is complete and verified.
    fn blob_done(&self, _digest: &Digest) {}
    /// The blob was already present (store, engine, target registry): nothing transferred.
    fn blob_skipped(&self, _digest: &Digest, _size: u64, _label: &str) {}
    /// Total bytes expected for the whole job, once known.
    fn total(&self, _bytes: u64) {}
    /// A step of the job, as one line (`resolving redis:6.2-alpine`).
    fn step(&self, _message: &str) {}
    /// Something the user should know that does not stop the job.
    fn warn(&self, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;
impl Reporter for Silent {}
