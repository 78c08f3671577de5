//! The one tokio runtime builder: every command that talks to a registry, the engine or the
//! network (`pack`, `lock`, `push`, `up`, `load`, `check`, `serve`) starts its runtime here.
//! Short jobs take two worker threads (they wait on I/O; the writer and hashing threads are
//! their own); `serve` takes one per CPU, for many concurrent pulls. Also owns the one wait
//! for Ctrl-C or SIGTERM.

use crate::error::{Class, Classify};

/// How many worker threads the runtime gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Workers {
    /// Two: enough for the I/O of one command (the default).
    #[default]
    Two,
    /// One per CPU: for the server.
    PerCpu,
}

#[derive(Debug, thiserror::Error)]
#[error("Cannot start the async runtime")]
pub struct RuntimeError(#[source] pub std::io::Error);

impl Classify for RuntimeError {
    fn class(&self) -> Class {
        Class::Environment
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM. Used by `pack`
/// (cancel, keeping partial downloads) and `serve` (graceful shutdown).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// A multi-threaded runtime with I/O and timers enabled.
pub fn build(workers: Workers) -> Result<tokio::runtime::Runtime, RuntimeError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers == Workers::Two {
        builder.worker_threads(2);
    }
    builder.enable_all().build().map_err(RuntimeError)
}
