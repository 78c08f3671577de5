//! `airlock key generate [--out PREFIX] [--unencrypted] [--force]`: a minisign key pair for
//! signed bundles (`pack --sign`, `verify/load/up/serve --key`). The work is in `crate::sign`.

use super::output::Output;
use crate::error::Context as _;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Write a minisign key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub (public).
    /// The secret key is encrypted with the password in AIRLOCK_KEY_PASSWORD (asked on a
    /// terminal when unset; never asked when stdin is not a terminal).
    Generate(GenerateArgs),
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Path prefix of the two files.
    #[arg(long, short = 'o', value_name = "PREFIX", default_value = "airlock")]
    pub out: PathBuf,
    /// Store the secret key without a password (for automation; protect the file instead).
    #[arg(long)]
    pub unencrypted: bool,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: KeyArgs, out: &Output) -> crate::error::Result<ExitCode> {
    match args.command {
        KeyCommand::Generate(g) => {
            let generated = crate::sign::generate(&g.out, g.unencrypted, g.force)
                .context("Cannot generate a key pair")?;
            if out.json {
                out.json(&generated)?;
            } else {
                out.print(&format!(
                    "key {}: secret key `{}`{}, public key `{}`\n\
                     sign:   airlock pack --sign {} ...\n\
                     verify: airlock verify --key {} BUNDLE",
                    generated.key_id,
                    generated.secret_key.display(),
                    if generated.encrypted {
                        " (password-protected)"
                    } else {
                        " (NOT password-protected)"
                    },
                    generated.public_key.display(),
                    generated.secret_key.display(),
                    generated.public_key.display(),
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
<<<<<<< HEAD
=======

/// `--key PUB` of `verify`, `load`, `up`, `serve`: check the bundle's signature before
/// anything else; a missing or bad signature is an error of class Failed (exit 1).
pub fn check(
    bundle: &std::path::Path,
    key: Option<&std::path::Path>,
    out: &Output,
) -> anyhow::Result<()> {
    let Some(key) = key else {
        return Ok(());
    };
    let checked = crate::bundle::signature::check(bundle, key)?;
    out.status(&format!(
        "signature ok: `{}` is signed by key {} ({})",
        bundle.display(),
        checked.key_id,
        checked.trusted_comment
    ));
    Ok(())
}
>>>>>>> ac5000b (Break the bundle import cycles: sign.rs checks a signature and knows no bundle (bundle::signature finds the members), engine::load owns the delta-vs-engine check (bundle::delta no longer imports engine), disk::output_dir serves write and parts)
