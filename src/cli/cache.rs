//! `airlock cache ls|prune`: the content store shared by every pack (`store::Store`).
//! `ls` lists blobs (table or `--json`); `prune` removes partial downloads, blobs unused for
//! a while (`--older-than`), or everything (`--all`).

use super::output::Output;
use crate::store::Store;
use clap::{Args, Subcommand};
use indicatif::HumanBytes;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// List the blobs in the cache ($AIRLOCK_CACHE, $XDG_CACHE_HOME/airlock or ~/.cache/airlock).
    Ls,
    /// Remove partial downloads; with --older-than also blobs unused for that long; with --all everything.
    Prune {
        /// Remove every blob.
        #[arg(long, conflicts_with = "older_than")]
        all: bool,
        /// Remove blobs no pack used for this long (`30d`, `12h`, `90m`, `2w`).
        #[arg(long, value_name = "AGE", value_parser = crate::time::parse_duration)]
        older_than: Option<Duration>,
    },
}

pub fn run(args: CacheArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let root = Store::default_root()?;
    let store = Store::open(&root)?;
    match args.command {
        CacheCommand::Ls => {
            let entries = store.list()?;
            let partials = store.partials()?;
            let total: u64 = entries.iter().map(|e| e.size).sum();
            if out.json {
                out.json(&serde_json::json!({
                    "root": root,
                    "blobs": entries,
                    "size": total,
                    "partials": partials.iter().map(|(p, n)| serde_json::json!({"path": p, "size": n})).collect::<Vec<_>>(),
                }))?;
            } else {
                let mut table = comfy_table::Table::new();
                table.load_style(comfy_table::presets::NOTHING);
                table.set_header(["DIGEST", "SIZE", "UNCOMPRESSED", "LAST USED"]);
                for e in &entries {
                    table.add_row([
                        e.digest.to_string(),
                        HumanBytes(e.size).to_string(),
                        e.layer
                            .as_ref()
                            .map(|l| HumanBytes(l.uncompressed_size).to_string())
                            .unwrap_or_default(),
                        crate::time::rfc3339(e.last_used),
                    ]);
                }
                if !entries.is_empty() {
                    out.print(&table.to_string());
                }
                out.print(&format!(
                    "{} blob{}, {} in {}; {} partial download{}",
                    entries.len(),
                    if entries.len() == 1 { "" } else { "s" },
                    HumanBytes(total),
                    root.display(),
                    partials.len(),
                    if partials.len() == 1 { "" } else { "s" },
                ));
            }
        }
        CacheCommand::Prune { all, older_than } => {
            let (partials, partial_bytes) = store.prune_partials()?;
            let (blobs, bytes) = if all {
                store.prune(None)?
            } else if let Some(age) = older_than {
                store.prune(Some(age))?
            } else {
                (0, 0)
            };
            if out.json {
                out.json(&serde_json::json!({
                    "removed_blobs": blobs, "removed_bytes": bytes,
                    "removed_partials": partials, "removed_partial_bytes": partial_bytes,
                }))?;
            } else {
                out.print(&format!(
                    "Removed {blobs} blob{} ({}) and {partials} partial download{} ({})",
                    if blobs == 1 { "" } else { "s" },
                    HumanBytes(bytes),
                    if partials == 1 { "" } else { "s" },
                    HumanBytes(partial_bytes)
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
