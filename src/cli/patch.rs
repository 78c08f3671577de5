//! `airlock patch build|apply` (hidden): the layer patch of `crate::patch` on two tars on
//! disk, for benchmarks (bench/patch.sh) and debugging; bundles get their patches from
//! `pack --since`. Writes OUT through a temporary file renamed on success.

use super::output::Output;
use crate::error::Context as _;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct PatchArgs {
    #[command(subcommand)]
    pub command: PatchCommand,
}

#[derive(Subcommand, Debug)]
pub enum PatchCommand {
    /// Write the patch that turns the uncompressed layer tar BASE into NEW.
    Build {
        base: PathBuf,
        new: PathBuf,
        out: PathBuf,
    },
    /// Rebuild a layer tar from BASE and PATCH, checked against the patch's diff_id.
    Apply {
        base: PathBuf,
        patch: PathBuf,
        out: PathBuf,
    },
}

pub fn run(args: PatchArgs, out: &Output) -> crate::error::Result<ExitCode> {
    let started = Instant::now();
    match args.command {
        PatchCommand::Build { base, new, out: to } => {
            let base_id = diff_id(&base)?;
            let new_id = diff_id(&new)?;
            let stats = write_via_temp(&to, |w| {
                crate::patch::build(&base, &base_id, &new, &new_id, w)
            })?;
            let seconds = started.elapsed().as_secs_f64();
            if out.json {
                out.json(&serde_json::json!({"stats": stats, "seconds": seconds}))?;
            } else {
                out.print(&format!(
                    "patch `{}`: {} bytes (copied {}, diffed {}, literal {}; files same {}, changed {}, new {}) in {seconds:.1} s",
                    to.display(),
                    stats.patch_bytes,
                    stats.copied,
                    stats.diffed,
                    stats.literal,
                    stats.files_same,
                    stats.files_changed,
                    stats.files_new
                ));
            }
        }
        PatchCommand::Apply {
            base,
            patch,
            out: to,
        } => {
            let mut file = fs_err::File::open(&patch)?;
            let header = write_via_temp(&to, |w| crate::patch::apply(&base, &mut file, w))?;
            let seconds = started.elapsed().as_secs_f64();
            if out.json {
                out.json(&serde_json::json!({"header": header, "seconds": seconds}))?;
            } else {
                out.print(&format!(
                    "rebuilt `{}`: {} ({} bytes) in {seconds:.1} s",
                    to.display(),
                    header.diff_id,
                    header.size
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn diff_id(path: &Path) -> crate::error::Result<crate::digest::Digest> {
    let file = fs_err::File::open(path)?;
    Ok(crate::digest::hash_reader(std::io::BufReader::new(file))
        .with_context(|| format!("Cannot read `{}`", path.display()))?
        .0)
}

fn write_via_temp<T>(
    to: &Path,
    f: impl FnOnce(&mut dyn std::io::Write) -> Result<T, crate::patch::PatchError>,
) -> crate::error::Result<T> {
    let dir = to
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("Cannot write in `{}`", dir.display()))?;
    let value = {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        let value = f(&mut w)?;
        std::io::Write::flush(&mut w)
            .with_context(|| format!("Cannot write `{}`", to.display()))?;
        value
    };
    tmp.persist(to)
        .map_err(|e| e.error)
        .with_context(|| format!("Cannot write `{}`", to.display()))?;
    Ok(value)
}
