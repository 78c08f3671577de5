//! Signed bundles: `airlock key generate` (unencrypted, password from AIRLOCK_KEY_PASSWORD,
//! never a prompt without a terminal), `pack --sign` (signature right after SHA256SUMS, the
//! standard `minisign` tool accepts it), `verify/load --key` refusing unsigned bundles, other
//! keys and changed SHA256SUMS with exit 1 before anything else happens.

use crate::harness::{Registry, TestImages, airlock, require_docker};
use crate::pack::{member, members};
use std::path::Path;
use std::process::Output;

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Copy the tar at `src` to `dst`, passing each member's bytes through `edit`.
fn rewrite(src: &Path, dst: &Path, mut edit: impl FnMut(&str, Vec<u8>) -> Vec<u8>) {
    let mut archive = tar::Archive::new(std::fs::File::open(src).unwrap());
    let mut b = tar::Builder::new(std::fs::File::create(dst).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        let data = edit(&name, data);
        let mut h = e.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, &name, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn key_generate_without_terminal_needs_a_password_source() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let prefix = work.path().join("k");
    // stdin is not a terminal and no password: refused, nothing written, no prompt
    let out = airlock(&cache)
        .env_remove("AIRLOCK_KEY_PASSWORD")
        .args(["key", "generate", "--out"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("AIRLOCK_KEY_PASSWORD"),
        "{}",
        text(&out)
    );
    assert!(!work.path().join("k.key").exists());
    // with the password: an encrypted minisign key, secret key mode 0600
    let out = airlock(&cache)
        .env("AIRLOCK_KEY_PASSWORD", "correct horse")
        .args(["key", "generate", "--json", "--out"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["encrypted"], true);
    assert_eq!(doc["key_id"].as_str().unwrap().len(), 16);
    let sk = std::fs::read_to_string(work.path().join("k.key")).unwrap();
    assert!(sk.starts_with("untrusted comment:"), "{sk}");
    let pk = std::fs::read_to_string(work.path().join("k.pub")).unwrap();
    assert!(pk.lines().nth(1).unwrap().starts_with("RW"), "{pk}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(work.path().join("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // no overwrite without --force
    let out = airlock(&cache)
        .args(["key", "generate", "--unencrypted", "--out"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(work.path().join("k.pub")).unwrap(),
        pk
    );
    // pack --sign with the encrypted key and no password: refused at once (exit 2)
    let out = airlock(&cache)
        .env_remove("AIRLOCK_KEY_PASSWORD")
        .args(["pack", "--image", "127.0.0.1:1/none:1", "-o"])
        .arg(work.path().join("x.tar"))
        .arg("--sign")
        .arg(work.path().join("k.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("password-protected"), "{}", text(&out));
    // wrong password: refused, naming the key
    let out = airlock(&cache)
        .env("AIRLOCK_KEY_PASSWORD", "wrong")
        .args(["pack", "--image", "127.0.0.1:1/none:1", "-o"])
        .arg(work.path().join("x.tar"))
        .arg("--sign")
        .arg(work.path().join("k.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("k.key"), "{}", text(&out));
    assert!(!work.path().join("x.tar").exists());
}

#[test]
fn signed_bundle_verifies_and_tampering_or_other_keys_are_refused() {
    if !require_docker() {
        return;
    }
    let images = TestImages::build("sign");
    let reg = Registry::start();
    let [base, _, _] = images.push(&reg);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let cache = w.join("cache");
    for (prefix, pw) in [("a", None), ("b", Some("pw-b"))] {
        let mut cmd = airlock(&cache);
        cmd.args(["key", "generate", "--out"]).arg(w.join(prefix));
        match pw {
            Some(p) => cmd.env("AIRLOCK_KEY_PASSWORD", p),
            None => cmd.arg("--unencrypted"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let pack = |key: Option<(&str, Option<&str>)>, name: &str| {
        let mut cmd = airlock(&cache);
        cmd.current_dir(w)
            .args(["pack", "--image", &base, "-o", name]);
        if let Some((k, pw)) = key {
            cmd.arg("--sign").arg(w.join(k));
            if let Some(pw) = pw {
                cmd.env("AIRLOCK_KEY_PASSWORD", pw);
            }
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        w.join(name)
    };
    let signed = pack(Some(("a.key", None)), "signed.tar");
    let signed_b = pack(Some(("b.key", Some("pw-b"))), "signed-b.tar");
    let unsigned = pack(None, "unsigned.tar");

    // the signature is right after SHA256SUMS and is the only member SHA256SUMS does not list
    let names = members(&signed);
    assert_eq!(
        &names[..3],
        [
            "airlock/bundle.json",
            "airlock/SHA256SUMS",
            "airlock/SHA256SUMS.minisig"
        ]
    );
    let sums = member(&signed, "airlock/SHA256SUMS");
    let sums_text = String::from_utf8_lossy(&sums).to_string();
    assert!(!sums_text.contains("minisig"));
    assert_eq!(sums_text.lines().count(), names.len() - 2, "{sums_text}");
    assert!(!members(&unsigned).iter().any(|n| n.ends_with(".minisig")));

    let verify = |bundle: &Path, key: &str| {
        airlock(&cache)
            .args(["verify", "--key"])
            .arg(w.join(key))
            .arg(bundle)
            .output()
            .unwrap()
    };
    let ok = verify(&signed, "a.pub");
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("signature ok"), "{}", text(&ok));
    let ok = verify(&signed_b, "b.pub");
    assert!(ok.status.success(), "{}", text(&ok));
    // the bare public key string works as --key too
    let pk_line = std::fs::read_to_string(w.join("a.pub"))
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let ok = airlock(&cache)
        .current_dir(w)
        .args(["verify", "--key", &pk_line])
        .arg(&signed)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", text(&ok));

    // other key, unsigned: exit 1 with a clear message
    let other = verify(&signed, "b.pub");
    assert_eq!(other.status.code(), Some(1), "{}", text(&other));
    assert!(
        text(&other).contains("is signed by key"),
        "{}",
        text(&other)
    );
    let none = verify(&unsigned, "a.pub");
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    assert!(text(&none).contains("is not signed"), "{}", text(&none));
    // without --key an unsigned bundle still verifies
    let plain = airlock(&cache)
        .arg("verify")
        .arg(&unsigned)
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", text(&plain));

    // load --key refuses before the engine is contacted (an unreachable engine would be exit 3)
    let load = airlock(&cache)
        .env(
            "DOCKER_HOST",
            format!("unix://{}", w.join("no-engine.sock").display()),
        )
        .args(["load", "--key"])
        .arg(w.join("a.pub"))
        .arg(&unsigned)
        .output()
        .unwrap();
    assert_eq!(load.status.code(), Some(1), "{}", text(&load));
    assert!(text(&load).contains("is not signed"), "{}", text(&load));

    // SHA256SUMS changed (a blob swapped and its line updated): the signature fails
    let tampered = w.join("tampered.tar");
    rewrite(&signed, &tampered, |name, data| {
        if name == "airlock/SHA256SUMS" {
            let mut t = String::from_utf8(data).unwrap();
            t.push_str(&format!("{}  extra\n", "0".repeat(64)));
            t.into_bytes()
        } else {
            data
        }
    });
    let bad = verify(&tampered, "a.pub");
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("BAD signature"), "{}", text(&bad));
    // a changed signature byte: refused too
    let garbled = w.join("garbled.tar");
    rewrite(&signed, &garbled, |name, data| {
        if name == "airlock/SHA256SUMS.minisig" {
            let t = String::from_utf8(data).unwrap();
            let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
            let sig = &mut lines[1];
            let c = if sig.as_bytes()[20] == b'A' { "B" } else { "A" };
            sig.replace_range(20..21, c);
            (lines.join("\n") + "\n").into_bytes()
        } else {
            data
        }
    });
    let bad = verify(&garbled, "a.pub");
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("BAD signature"), "{}", text(&bad));
    // a blob changed but SHA256SUMS and its signature kept: signature ok, verify names the blob
    let swapped = w.join("swapped.tar");
    let mut changed = String::new();
    rewrite(&signed, &swapped, |name, mut data| {
        if name.starts_with("blobs/sha256/") && changed.is_empty() {
            data.push(b'\n');
            changed = name.to_string();
        }
        data
    });
    let bad = verify(&swapped, "a.pub");
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("signature ok"), "{}", text(&bad));
    assert!(text(&bad).contains(&changed), "{}", text(&bad));

    // the standard minisign tool accepts the signature (scripts/install-deps installs it; CI
    // sets AIRLOCK_REQUIRE_DOCKER, and then a missing tool is a failure, not a skip)
    if !which("minisign") {
        assert!(
            std::env::var_os("AIRLOCK_REQUIRE_DOCKER").is_none(),
            "minisign is not installed (Debian package minisign; scripts/install-deps installs it)"
        );
        eprintln!("minisign not installed: the standard tool check was skipped");
        return;
    }
    std::fs::write(
        w.join("SHA256SUMS.minisig"),
        member(&signed, "airlock/SHA256SUMS.minisig"),
    )
    .unwrap();
    let minisign = |sums: &[u8]| {
        std::fs::write(w.join("SHA256SUMS"), sums).unwrap();
        std::process::Command::new("minisign")
            .current_dir(w)
            .args([
                "-V",
                "-p",
                "a.pub",
                "-m",
                "SHA256SUMS",
                "-x",
                "SHA256SUMS.minisig",
            ])
            .output()
            .unwrap()
    };
    let out = minisign(&sums);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("airlock bundle"), "{}", text(&out));
    let out = minisign(format!("{sums_text}x").as_bytes());
    assert!(!out.status.success(), "{}", text(&out));
}

fn which(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
