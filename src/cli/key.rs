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
