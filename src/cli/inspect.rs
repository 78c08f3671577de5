//! `airlock inspect BUNDLE`: bundle::read::open_meta (only the metadata at the start of the
//! tar) -> images, references, platform, sizes, compose files, creation data; or JSON.

use super::output::Output;
use crate::bundle::read::Bundle;
use crate::error::Context;
use clap::Args;
use indicatif::HumanBytes;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The bundle file (plain tar, or compressed with gzip or zstd).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
}

pub fn run(args: InspectArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let bundle = Bundle::open(&args.bundle)?;
    let meta = bundle
        .open_meta()
        .with_context(|| format!("Cannot inspect `{}`", args.bundle.display()))?;
    let m = &meta.meta;
    if out.json {
        out.json(&serde_json::json!({
            "bundle": bundle.path,
            "id": meta.id(),
            "file_size": bundle.file_len,
            "compression": bundle.compression,
            "format": m.format,
            "airlock_version": m.airlock_version,
            "created": m.created,
            "project": m.project,
            "platform": m.platform.to_string(),
            "compose": {
                "files": m.compose.files,
                "env_files": m.compose.env_files,
                "profiles": m.compose.profiles,
                "run_files": m.compose.run_files,
                "members": meta.compose_files.keys().collect::<Vec<_>>(),
            },
            "images": m.images,
            "blobs": m.blobs,
            "size": m.size,
            "uncompressed_size": m.uncompressed_size,
            "base": m.base,
            "patches": m.patches(),
            "signed": meta.signed,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    out.print(&format!(
        "bundle    {} ({}{})",
        bundle.path.display(),
        HumanBytes(bundle.file_len),
        match bundle.compression {
            crate::bundle::read::Compression::None => String::new(),
            c => format!(", {c:?} compressed").to_lowercase(),
        }
    ));
    out.print(&format!("project   {}", m.project));
    out.print(&format!("platform  {}", m.platform));
    out.print(&format!(
        "created   {} by airlock {}",
        m.created, m.airlock_version
    ));
    out.print(&format!(
        "content   {} images, {} blobs, {} stored, {} uncompressed{}",
        m.images.len(),
        m.blobs,
        HumanBytes(m.size),
        HumanBytes(m.uncompressed_size),
        if meta.signed { ", signed" } else { "" }
    ));
    if let Some(base) = &m.base {
        out.print(&format!(
            "delta     on base {} ({} blobs assumed present)",
            base.id,
            base.assumed.len()
        ));
        for p in &base.patches {
            out.print(&format!(
                "patched   layer {} of {}: {} patch for a {} layer ({} unpacked), against layer {} of {}",
                p.index,
                p.image,
                HumanBytes(p.patch.size),
                HumanBytes(p.layer_size),
                HumanBytes(p.size),
                p.base.index,
                p.base.image
            ));
        }
    }
    out.print(&format!("compose   {}", m.compose.files.join(", ")));
    if !m.compose.env_files.is_empty() {
        out.print(&format!("env files {}", m.compose.env_files.join(", ")));
    }
    if !m.compose.profiles.is_empty() {
        out.print(&format!("profiles  {}", m.compose.profiles.join(", ")));
    }
    if !m.compose.run_files.is_empty() {
        out.print(&format!("run files {}", m.compose.run_files.join(", ")));
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(["IMAGE", "SERVICES", "CONFIG", "LAYERS", "SIZE", "UNPACKED"]);
    for img in &m.images {
        table.add_row([
            img.reference.to_string(),
            img.services.join(","),
            img.config.digest.short().to_string(),
            img.layers.len().to_string(),
            HumanBytes(img.size).to_string(),
            HumanBytes(img.uncompressed_size).to_string(),
        ]);
    }
    out.print(&format!("\n{table}"));
    Ok(ExitCode::SUCCESS)
}
