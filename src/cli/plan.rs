//! `airlock plan`: compose::load -> plan::plan -> table or JSON.

use super::output::Output;
use super::ProjectArgs;
use clap::Args;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub project: ProjectArgs,
}

pub fn run(_args: PlanArgs, out: &Output) -> anyhow::Result<ExitCode> {
    out.print("plan: not yet wired");
    Ok(ExitCode::SUCCESS)
}
