//! The lock pipeline (`airlock lock`): `select` -> `registry::resolve` (manifests only, no
//! layers) -> `airlock.lock` (each reference -> top digest, platform manifest digest,
//! platform; plus the creation time `pack --locked` reuses). Images built locally
//! (`build-tag`) are not locked: they come from the engine.

use super::{SelectOptions, resolve_all, select};
use crate::lock::Lock;
use crate::progress::Reporter;
use crate::registry::{Client, PullStats};
use crate::store::Store;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What `lock` wrote.
#[derive(Debug)]
pub struct Locked {
    pub path: PathBuf,
    pub lock: Lock,
}

/// Resolve every registry image `opts` selects and write the lock file.
pub fn lock(opts: &SelectOptions, reporter: Arc<dyn Reporter>) -> crate::error::Result<Locked> {
    // Build-tag images are skipped rather than refused: the lock covers registry images only.
    let selection = select(opts, true)?;
    let refs = selection.registry_refs();
    let path = opts.lock_path(selection.project.as_ref());
    let store = Store::open(Store::default_root()?)?;
    let client = Client::new(opts.registry.clone(), reporter)?;
    let rt = crate::runtime::build(crate::runtime::Workers::Two)?;
    let stats = PullStats::default();
    let resolved = rt.block_on(resolve_all(&client, &store, &refs, &HashMap::new(), &stats))?;
    let lock = Lock::from_images(&resolved, &opts.platform, crate::time::now_rfc3339());
    lock.write(&path)?;
    Ok(Locked { path, lock })
}
