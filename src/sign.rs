//! Signed bundles: owns minisign key pairs (`airlock key generate`), reading a secret key
//! (password from `AIRLOCK_KEY_PASSWORD`, a prompt only on a terminal), signing
//! `airlock/SHA256SUMS` for `bundle::write` (stored as `airlock/SHA256SUMS.minisig`), and
//! checking such a signature (`check`; `bundle::signature` finds the two members in a bundle
//! for `cli::verify`, `load`, `up` and `serve` with `--key`). The signature covers
//! SHA256SUMS, and SHA256SUMS covers every other file (checked by `bundle::verify`), so a good
//! signature plus a clean verify authenticates the whole bundle. Knows nothing of bundles:
//! `bundle` calls it, never the reverse. Files are in minisign's own format: the standard
//! `minisign -V -p KEY.pub -x SHA256SUMS.minisig -m SHA256SUMS` checks them too.

use crate::error::{Class, Classify};
use minisign::{PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};
use std::io::{Cursor, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Environment variable holding the secret key's password.
pub const PASSWORD_ENV: &str = "AIRLOCK_KEY_PASSWORD";

/// Largest key or signature file read (minisign files are a few hundred bytes).
const SMALL_LIMIT: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("Cannot read key `{}`", path.display())]
    KeyRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Key `{}` is not a minisign {kind} key: {reason}", path.display())]
    KeyFormat {
        path: PathBuf,
        kind: &'static str,
        reason: String,
    },
    #[error(
        "Secret key `{}` is password-protected: set {PASSWORD_ENV} (stdin is not a terminal, so airlock does not prompt)", path.display()
    )]
    NoPassword { path: PathBuf },
    #[error("Cannot decrypt secret key `{}`: {reason} (wrong password in {PASSWORD_ENV}?)", path.display())]
    WrongPassword { path: PathBuf, reason: String },
    #[error(
        "No password for the new secret key: set {PASSWORD_ENV}, run on a terminal to be asked, or pass --unencrypted"
    )]
    NeedPassword,
    #[error("`{}` exists; pass --force to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("Cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot generate or use a key: {reason}")]
    Crypto { reason: String },
    #[error(
        "Bundle `{}` is signed by key {signed_by}, not by key {expected} of `{}`; refusing it", bundle.display(), key.display()
    )]
    WrongKey {
        bundle: PathBuf,
        key: PathBuf,
        signed_by: String,
        expected: String,
    },
    #[error("Bundle `{}` has a BAD signature (`{member}`): {reason}; refusing it", bundle.display())]
    BadSignature {
        bundle: PathBuf,
        member: String,
        reason: String,
    },
}

impl Classify for SignError {
    fn class(&self) -> Class {
        match self {
            // A bundle failing its signature check is a failed check, like a digest mismatch.
            SignError::WrongKey { .. } | SignError::BadSignature { .. } => Class::Failed,
            SignError::Write { .. } | SignError::Crypto { .. } => Class::Environment,
            _ => Class::Input,
        }
    }
}

fn crypto(e: minisign::PError) -> SignError {
    SignError::Crypto {
        reason: e.to_string(),
    }
}

/// Key id as minisign prints it (16 upper-case hex digits of the little-endian key number).
fn key_id(keynum: &[u8]) -> String {
    let mut b = [0u8; 8];
    let n = keynum.len().min(8);
    b[..n].copy_from_slice(&keynum[..n]);
    format!("{:016X}", u64::from_le_bytes(b))
}

fn read_limited(path: &Path) -> Result<String, SignError> {
    let read_err = |source| SignError::KeyRead {
        path: path.to_path_buf(),
        source,
    };
    let file = fs_err::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(SMALL_LIMIT)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    Ok(text)
}

/// The password from `AIRLOCK_KEY_PASSWORD`; `None` when unset.
fn password_from_env() -> Option<String> {
    std::env::var(PASSWORD_ENV).ok()
}

/// What `generate` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Generated {
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    pub key_id: String,
    pub encrypted: bool,
}

/// Write a new key pair to `PREFIX.key` (mode 0600) and `PREFIX.pub`. Encrypted with the
/// password of `AIRLOCK_KEY_PASSWORD` (or one asked on a terminal) unless `unencrypted`.
pub fn generate(prefix: &Path, unencrypted: bool, force: bool) -> Result<Generated, SignError> {
    let with_ext = |ext: &str| {
        let mut s = prefix.as_os_str().to_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    let sk_path = with_ext(".key");
    let pk_path = with_ext(".pub");
    for p in [&sk_path, &pk_path] {
        if !force && p.exists() {
            return Err(SignError::Exists { path: p.clone() });
        }
    }
    let pair = if unencrypted {
        minisign::KeyPair::generate_unencrypted_keypair().map_err(crypto)?
    } else {
        let password = match password_from_env() {
            Some(p) => Some(p),
            None if std::io::stdin().is_terminal() => None, // minisign asks twice
            None => return Err(SignError::NeedPassword),
        };
        minisign::KeyPair::generate_encrypted_keypair(password).map_err(crypto)?
    };
    let id = key_id(pair.pk.keynum());
    let sk_text = pair
        .sk
        .to_box(Some(&format!("airlock secret key {id}")))
        .map_err(crypto)?
        .into_string();
    let pk_text = pair.pk.to_box().map_err(crypto)?.into_string();
    write_atomic(&sk_path, sk_text.as_bytes(), 0o600)?;
    write_atomic(&pk_path, pk_text.as_bytes(), 0o644)?;
    Ok(Generated {
        secret_key: sk_path,
        public_key: pk_path,
        key_id: id,
        encrypted: !unencrypted,
    })
}

/// Write to a temporary name in the same directory with `mode`, then rename.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignError> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    let write_err = |source| SignError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".into());
    let tmp = path.with_file_name(format!(".{name}.airlock-partial-{}", std::process::id()));
    let result = (|| {
        let mut f = fs_err::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs_err::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(&tmp);
    }
    result.map_err(write_err)
}

/// A loaded secret key, ready to sign. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Signer {
    sk: SecretKey,
    pub key_id: String,
    pub path: PathBuf,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}, {})", self.key_id, self.path.display())
    }
}

impl Signer {
    /// Read a secret key file; an encrypted one needs `AIRLOCK_KEY_PASSWORD` (or a terminal).
    pub fn load(path: &Path) -> Result<Signer, SignError> {
        let text = read_limited(path)?;
        let format_err = |reason: String| SignError::KeyFormat {
            path: path.to_path_buf(),
            kind: "secret",
            reason,
        };
        let sk_box = SecretKeyBox::from_string(&text).map_err(|e| format_err(e.to_string()))?;
        // An unencrypted key decodes without a password; minisign says "might be encrypted"
        // for a key that has a KDF.
        let sk = match sk_box.clone().into_unencrypted_secret_key() {
            Ok(sk) => sk,
            Err(e) if !e.to_string().contains("encrypted") => {
                return Err(format_err(e.to_string()));
            }
            Err(_) => {
                let password = match password_from_env() {
                    Some(p) => Some(p),
                    None if std::io::stdin().is_terminal() => None,
                    None => {
                        return Err(SignError::NoPassword {
                            path: path.to_path_buf(),
                        });
                    }
                };
                sk_box
                    .into_secret_key(password)
                    .map_err(|e| SignError::WrongPassword {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })?
            }
        };
        Ok(Signer {
            key_id: key_id(sk.keynum()),
            sk,
            path: path.to_path_buf(),
        })
    }

    /// The minisign signature file (`.minisig` text) of `data`.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> Result<Vec<u8>, SignError> {
        let sig = minisign::sign(
            None,
            &self.sk,
            Cursor::new(data),
            Some(trusted_comment),
            Some(&format!("signature from airlock key {}", self.key_id)),
        )
        .map_err(crypto)?;
        Ok(sig.into_string().into_bytes())
    }
}

/// Read a public key: a minisign `.pub` file, or the bare base64 key (`RW...`) itself.
pub fn load_public_key(path: &Path) -> Result<PublicKey, SignError> {
    let format_err = |reason: String| SignError::KeyFormat {
        path: path.to_path_buf(),
        kind: "public",
        reason,
    };
    let raw = path.to_string_lossy();
    // A bare key (`RW...`, 56 base64 characters, which may include `/`) when no such file exists.
    let bare_key = raw.len() == 56
        && raw.starts_with("RW")
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if bare_key && !path.exists() {
        return PublicKey::from_base64(&raw).map_err(|e| format_err(e.to_string()));
    }
    let text = read_limited(path)?;
    let result = if text.trim_start().starts_with("untrusted comment:") {
        PublicKeyBox::from_string(&text).and_then(|b| b.into_public_key())
    } else {
        PublicKey::from_base64(text.trim())
    };
    result.map_err(|e| format_err(e.to_string()))
}

/// A bundle whose signature checked out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    pub key_id: String,
    pub trusted_comment: String,
}

/// Check a minisign signature `sig` (the text of a `.minisig` file) of `signed` (the bytes
/// of `SHA256SUMS`) against `pk`, the public key read from `key` (`load_public_key`).
/// `bundle` and `member` (where the signature is stored) only name the culprit in errors. A
/// signature by another key, or a bad signature, is refused.
pub fn check(
    pk: &PublicKey,
    key: &Path,
    bundle: &Path,
    member: &str,
    signed: &[u8],
    sig: Vec<u8>,
) -> Result<Checked, SignError> {
    let bad = |reason: String| SignError::BadSignature {
        bundle: bundle.to_path_buf(),
        member: member.to_string(),
        reason,
    };
    let text = String::from_utf8(sig).map_err(|_| bad("not UTF-8 text".into()))?;
    let sig_box = SignatureBox::from_string(&text).map_err(|e| bad(e.to_string()))?;
    let signed_by = key_id(sig_box.keynum());
    let expected = key_id(pk.keynum());
    if signed_by != expected {
        return Err(SignError::WrongKey {
            bundle: bundle.to_path_buf(),
            key: key.to_path_buf(),
            signed_by,
            expected,
        });
    }
    minisign::verify(pk, &sig_box, Cursor::new(signed), true, false, false)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Checked {
        key_id: expected,
        trusted_comment: sig_box.trusted_comment().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_public_key_with_slashes_is_a_key_not_a_path() {
        let key = "RWTnTAzCrBfo3V3BJH86oZyETZvia/3UIIkaN8cmqVVzX/YIqv6jRhJ5";
        assert!(load_public_key(Path::new(key)).is_ok());
        assert!(matches!(
            load_public_key(Path::new("no/such/key.pub")),
            Err(SignError::KeyRead { .. })
        ));
    }

    #[test]
    fn sign_and_verify_roundtrip_in_memory() {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let signer = Signer {
            key_id: key_id(pair.sk.keynum()),
            sk: pair.sk,
            path: PathBuf::from("mem"),
        };
        let sig = signer.sign(b"abc  x\n", "t").unwrap();
        let sig_box = SignatureBox::from_string(std::str::from_utf8(&sig).unwrap()).unwrap();
        assert!(
            minisign::verify(
                &pair.pk,
                &sig_box,
                Cursor::new(b"abc  x\n"),
                true,
                false,
                false
            )
            .is_ok()
        );
        assert!(
            minisign::verify(
                &pair.pk,
                &sig_box,
                Cursor::new(b"abd  x\n"),
                true,
                false,
                false
            )
            .is_err()
        );
        assert_eq!(
            format!("{signer:?}"),
            format!("Signer({}, mem)", signer.key_id)
        );
    }
}
