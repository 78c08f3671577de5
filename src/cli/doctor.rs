//! `airlock doctor`: connect to the engine (`DOCKER_HOST`), then print what this host can take
//! (doctor::examine) as a table or `--json`. Exit 3 when no engine answers.

use super::output::Output;
use crate::doctor::{Report, Store};
use clap::Args;
use indicatif::HumanBytes;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DoctorArgs {}

pub fn run(_args: DoctorArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let rt = crate::runtime::build(crate::runtime::Workers::Two)?;
    let report = rt.block_on(async {
        let engine = crate::engine::connect().await?;
        crate::doctor::examine(&engine).await
    })?;
    if out.json {
        out.json(&report)?;
    } else {
        print(&report, out);
    }
    Ok(ExitCode::SUCCESS)
}

fn print(r: &Report, out: &Output) {
    let e = &r.engine;
    out.print(&format!(
        "engine     {} {} (API {}, {}/{}) at {}",
        e.product, e.version, e.api_version, e.os, e.arch, e.host
    ));
    let store = match e.store {
        Store::Classic => format!("classic (graphdriver {})", e.storage_driver),
        Store::Containerd => format!("containerd image store ({})", e.storage_driver),
        Store::Podman => format!("podman containers/storage ({})", e.storage_driver),
    };
    out.print(&format!("store      {store}"));
    match (&e.data_root, e.free_bytes) {
        (Some(root), Some(free)) => {
            out.print(&format!("data root  {root}: {} free", HumanBytes(free)))
        }
        (Some(root), None) => out.print(&format!(
            "data root  {root} (free space unknown: not on this machine)"
        )),
        _ => out.print("data root  unknown"),
    }
    if r.compose.is_empty() {
        out.print("compose    none: install Compose v2 (`docker compose`) or docker-compose 1.x for `airlock up`");
    }
    for c in &r.compose {
        out.print(&format!(
            "compose    {} {} ({}){}",
            c.cli.program.join(" "),
            c.cli.version,
            if c.cli.v2 { "v2" } else { "v1" },
            if c.used_by_up {
                ", used by `airlock up`"
            } else {
                ""
            }
        ));
    }
    out.print("");
    for c in &r.capabilities {
        let mark = match c.status {
            "yes" => out.paint("yes    ", "32"),
            "no" => out.paint("no     ", "31"),
            _ => out.paint("partial", "33"),
        };
        out.print(&format!("{mark}  {:<45} {}", c.title, c.detail));
    }
}
