//! `airlock lock`: the flags of `pack::lock` and the rendering of what it locked.

use super::ProjectArgs;
use super::output::Output;
use super::progress::Progress;
use super::shared::RegistryArgs;
use crate::progress::Reporter;
use clap::Args;
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
    let progress = Arc::new(Progress::new(out));
    let reporter: Arc<dyn Reporter> = progress.clone();
    let locked = crate::pack::lock(&args.registry.select_options(&args.project), reporter);
    progress.finish();
    let crate::pack::Locked { path, lock } = locked?;
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
