//! `airlock lock`: compose::load -> plan::plan -> registry::resolve (manifests only, no
//! layers) -> `airlock.lock` (each reference -> top digest, platform manifest digest,
//! platform; plus the creation time `pack --locked` reuses). Images built locally
//! (`build-tag`) are not locked: they come from the engine.

use super::ProjectArgs;
use super::output::Output;
use super::pack::{self, RegistryArgs};
use super::progress::Progress;
use crate::lock::Lock;
use crate::progress::Reporter;
use crate::registry::PullStats;
use crate::store::Store;
use clap::Args;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct LockArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: LockArgs, out: &Output) -> crate::error::Result<ExitCode> {
    // Build-tag images are skipped rather than refused: the lock covers registry images only.
    let selection = pack::select(&args.project, &args.registry, true)?;
    let platform = args.registry.platform.clone();
    let refs = selection.registry_refs(&platform);
    let path = pack::lock_path(&args.registry, selection.project.as_ref());
    let store = Store::open(Store::default_root()?)?;
    let progress = Arc::new(Progress::new(out));
    let reporter: Arc<dyn Reporter> = progress.clone();
    let client = pack::client(&args.registry, reporter)?;
    let rt = pack::runtime()?;
    let stats = PullStats::default();
    let resolved = rt.block_on(pack::resolve_all(
        &client,
        &store,
        &refs,
        &HashMap::new(),
        &stats,
    ));
    progress.finish();
    let resolved = resolved?;
    let lock = Lock::from_images(&resolved, &platform, crate::lock::now_rfc3339());
    lock.write(&path)?;
    if out.json {
        out.json(&serde_json::json!({ "path": path, "lock": lock }))?;
    } else {
        for (r, l) in &lock.images {
            out.print(&format!("{r}  {}  {}", l.top.digest, l.platform));
        }
        out.print(&format!(
            "\nLocked {} image{} in {}",
            lock.images.len(),
            if lock.images.len() == 1 { "" } else { "s" },
            path.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
