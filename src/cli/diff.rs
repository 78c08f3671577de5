//! `airlock diff A B`: bundle::delta::load_base (A and B: bundles, split bundles, their
//! bundle.json, or lock files whose manifests are in the cache) -> bundle::delta::diff ->
//! images added, removed and changed (old -> new digest), layers shared, and the bytes a
//! delta of B over A saves. Reads only metadata.

use super::output::Output;
use crate::bundle::delta::{self, Diff};
use crate::error::Context;
use clap::Args;
use indicatif::HumanBytes;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The earlier bundle (or its parts file, bundle.json, or airlock.lock).
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The later bundle (or its parts file, bundle.json, or airlock.lock).
    #[arg(value_name = "B")]
    pub b: PathBuf,
}

pub fn run(args: DiffArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let store = crate::store::Store::open(crate::store::Store::default_root()?).ok();
    let a = delta::load_base(&args.a, store.as_ref())
        .with_context(|| format!("Cannot read `{}`", args.a.display()))?;
    let b = delta::load_base(&args.b, store.as_ref())
        .with_context(|| format!("Cannot read `{}`", args.b.display()))?;
    let diff = delta::diff(&a, &b);
    if out.json {
        out.json(&serde_json::json!({
            "a": {"path": args.a, "id": a.id},
            "b": {"path": args.b, "id": b.id},
            "added": diff.added,
            "removed": diff.removed,
            "changed": diff.changed,
            "unchanged": diff.unchanged,
            "layers": diff.layers,
            "new_layers": diff.new_layers,
        }))?;
    } else {
        print_human(&diff, out);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_human(diff: &Diff, out: &Output) {
    for (label, colour, images) in [
        ("added  ", "32", &diff.added),
        ("removed", "31", &diff.removed),
    ] {
        for i in images {
            out.print(&format!(
                "{}  {}  {}",
                out.paint(label, colour),
                i.reference,
                i.digest
            ));
        }
    }
    for c in &diff.changed {
        out.print(&format!(
            "{}  {}  {} -> {}  ({} layers shared, {} new)",
            out.paint("changed", "33"),
            if c.old_ref == c.reference {
                c.reference.clone()
            } else {
                format!("{} -> {}", c.old_ref, c.reference)
            },
            c.old,
            c.new,
            c.layers_shared,
            c.layers_new
        ));
    }
    for i in &diff.unchanged {
        out.print(&format!("same     {}  {}", i.reference, i.digest));
    }
    for n in &diff.new_layers {
        out.print(&format!(
            "new layer {} of {}  {}  {}{}",
            n.index,
            n.reference,
            n.digest.short(),
            HumanBytes(n.size),
            match n.patch_size {
                Some(p) => format!(" as a layer, {} as a patch", HumanBytes(p)),
                None => String::new(),
            }
        ));
    }
    let l = &diff.layers;
    out.print(&format!(
        "\nlayers of B: {} shared with A ({}), {} new ({}); a delta carries {} of {} layer bytes and saves {}",
        l.shared,
        HumanBytes(l.shared_bytes),
        l.new,
        HumanBytes(l.new_bytes),
        HumanBytes(l.new_bytes),
        HumanBytes(l.total_bytes),
        HumanBytes(l.delta_saves)
    ));
    if l.patched > 0 {
        out.print(&format!(
            "{} new layer(s) of {} are carried as patches of {}",
            l.patched,
            HumanBytes(l.patched_layer_bytes),
            HumanBytes(l.patch_bytes)
        ));
    }
}
