//! The error surface as users see it (no engine needed): output into a closed pipe ends
//! quietly with exit 0, a file that is not a tar is called so (not "truncated"), and a
//! hint is printed after its message with the error's exit class.

use crate::harness::airlock;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The crafted valid bundle of `hostile` (also the fuzz seed): verifies, inspects, diffs.
fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/bundle_read/crafted.bundle")
}

/// Run airlock in `dir` with stdout the write end of a pipe whose reader is already gone:
/// every write to stdout fails with EPIPE. Returns (exit code, stderr).
fn into_closed_pipe(dir: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(assert_cmd::cargo::cargo_bin("airlock"))
        .current_dir(dir)
        .env("AIRLOCK_CACHE", dir.join("cache"))
        .env("NO_COLOR", "1")
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed();
    let s = seed.as_os_str();
    // No compose file in `dir`: plan prints the built-in example.
    let runs: Vec<Vec<&std::ffi::OsStr>> = vec![
        vec!["plan".as_ref()],
        vec!["plan".as_ref(), "--json".as_ref()],
        vec!["inspect".as_ref(), s],
        vec!["inspect".as_ref(), "--json".as_ref(), s],
        vec!["verify".as_ref(), s],
        vec!["diff".as_ref(), s, s],
        vec!["docker-cli-plugin-metadata".as_ref()],
    ];
    for args in runs {
        let (code, stderr) = into_closed_pipe(dir.path(), &args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }

    // A real reader that takes one byte and goes away (`| head -c 1`).
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("airlock"))
        .current_dir(dir.path())
        .env("AIRLOCK_CACHE", dir.path().join("cache"))
        .args(["plan"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_file_that_is_not_a_tar_is_not_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, this is not a tar archive\n").unwrap();
    // Longer than a tar header, with garbage where the header's checksum would be.
    let junk = dir.path().join("junk.bin");
    std::fs::write(
        &junk,
        (0..4096u32).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    for file in [&text, &junk] {
        let o = airlock(&dir.path().join("cache"))
            .args(["inspect".as_ref(), file.as_os_str()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("is not a bundle (not a tar archive)"),
            "{stderr}"
        );
        assert!(!stderr.contains("truncated"), "{stderr}");

        let o = airlock(&dir.path().join("cache"))
            .args(["verify".as_ref(), file.as_os_str()])
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(1), "{all}");
        assert!(all.contains("is not a bundle (not a tar archive)"), "{all}");
    }

    // A bundle cut short is still truncated.
    let bytes = std::fs::read(seed()).unwrap();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = airlock(&dir.path().join("cache"))
        .args(["verify".as_ref(), cut.as_os_str()])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(
        all.contains("truncated") && !all.contains("not a tar"),
        "{all}"
    );
}

#[test]
fn the_hint_follows_the_message_and_the_class_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("stack.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &std::fs::read(seed()).unwrap()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let o = airlock(&dir.path().join("cache"))
        .args([
            "push".as_ref(),
            gz.as_os_str(),
            "--to".as_ref(),
            "127.0.0.1:9".as_ref(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(stderr.contains("Gzip-compressed"), "{stderr}");
    // The message does not carry the hint; the hint comes last, after a blank line.
    let hint = lines
        .iter()
        .position(|l| l.starts_with("hint: "))
        .expect(&stderr);
    assert_eq!(hint, lines.len() - 1, "{stderr}");
    assert_eq!(lines[hint - 1], "", "{stderr}");
    assert!(
        lines[hint].contains("decompress it first (`gzip -d"),
        "{stderr}"
    );
}
