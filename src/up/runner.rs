//! Starting the project with the Compose CLI `compose_cli::chosen` picks: the compose-file keys
//! docker-compose 1.x cannot read (caught before anything changes), the `up -d` command line
//! (never pulling: `--pull never` from Compose v2.8), and running it with its last error
//! lines kept.

use crate::compose_cli::ComposeCli;
use crate::error::Context as _;
use std::path::{Path, PathBuf};

/// `up --pull` arrived in Compose v2.8.
fn supports_pull_flag(cli: &ComposeCli) -> bool {
    let mut parts = cli
        .version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    cli.v2 && (major > 2 || (major == 2 && minor >= 8))
}

/// The `up -d` command line of `cli` (program first).
pub fn up_command(
    cli: &ComposeCli,
    project: &str,
    dir: &Path,
    files: &[String],
    env_files: &[PathBuf],
    profiles: &[String],
) -> Vec<String> {
    let mut cmd = cli.program.clone();
    cmd.extend([
        "--project-name".into(),
        project.into(),
        "--project-directory".into(),
        dir.display().to_string(),
    ]);
    for f in files {
        cmd.extend(["-f".into(), dir.join(f).display().to_string()]);
    }
    for e in env_files {
        cmd.extend(["--env-file".into(), e.display().to_string()]);
    }
    for p in profiles {
        cmd.extend(["--profile".into(), p.clone()]);
    }
    cmd.extend(["up".into(), "-d".into()]);
    if supports_pull_flag(cli) {
        cmd.extend(["--pull".into(), "never".into()]);
    }
    cmd
}

/// Top-level keys docker-compose 1.x reads (its schemas allow nothing else but `x-*`).
const V1_TOP_LEVEL: &[&str] = &[
    "version", "services", "networks", "volumes", "secrets", "configs",
];

/// Under docker-compose 1.x: the first top-level key of `files` (name, text) it cannot read
/// (`name:`, `include:`, ...), as (file, key). `None` under Compose v2.
pub fn unreadable_key<'a>(
    cli: &ComposeCli,
    files: &[(&'a str, &str)],
) -> Option<(&'a str, String)> {
    if cli.v2 {
        return None;
    }
    files.iter().find_map(|(file, text)| {
        top_level_keys(text)
            .into_iter()
            .find(|k| !k.starts_with("x-") && !V1_TOP_LEVEL.contains(&k.as_str()))
            .map(|k| (*file, k))
    })
}

/// The top-level mapping keys of a compose file, in order (block style, as compose files are
/// written: a key at column 0 followed by `:`; comments, document markers, sequences and flow
/// style are skipped).
fn top_level_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with([' ', '\t', '#', '-', '{', '[', '.']))
        .filter_map(|l| {
            let (key, _) = l.split_once(':')?;
            let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
            (!key.is_empty()).then(|| key.to_string())
        })
        .collect()
}

/// What Compose did: its exit status and the last lines it wrote on stderr.
pub struct Ran {
    pub status: std::process::ExitStatus,
    /// Compose's own last lines (its errors, when it failed), at most `KEEP_LINES`.
    pub last_lines: Vec<String>,
}

/// Lines of Compose's stderr kept for the error message.
const KEEP_LINES: usize = 12;

/// Run `cmd` (program first) in `dir`: its output goes on to stderr as it comes (stdout is
/// for airlock's report), and its last stderr lines are kept for the error message.
pub fn run(cmd: &[String], dir: &Path) -> crate::error::Result<Ran> {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .current_dir(dir)
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("Cannot run `{}`", cmd[0]))?;
    let mut last = std::collections::VecDeque::new();
    if let Some(stderr) = child.stderr.take() {
        let mut own = std::io::stderr();
        for line in std::io::BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            let _ = own.write_all(&line);
            let _ = own.write_all(b"\n");
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if !text.trim().is_empty() {
                if last.len() == KEEP_LINES {
                    last.pop_front();
                }
                last.push_back(text);
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("Cannot wait for `{}`", cmd[0]))?;
    Ok(Ran {
        status,
        last_lines: last.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::up::OVERRIDE;

    fn v1() -> ComposeCli {
        ComposeCli {
            program: vec!["docker-compose".into()],
            v2: false,
            version: "1.29.2".into(),
        }
    }
    fn v2() -> ComposeCli {
        ComposeCli {
            program: vec!["docker".into(), "compose".into()],
            v2: true,
            version: "2.27.0".into(),
        }
    }

    #[test]
    fn v1_cannot_read_name_or_include() {
        let name = "# the stack\nname: shop\nservices:\n  web:\n    image: nginx\n";
        let include = "version: \"3.8\"\ninclude:\n  - other.yaml\nservices: {}\n";
        let fine = "version: \"3.8\"\nservices:\n  web:\n    image: nginx\n    name: x\nx-common: &c {}\nvolumes: {}\n";
        assert_eq!(
            unreadable_key(&v1(), &[("compose.yaml", name)]),
            Some(("compose.yaml", "name".to_string()))
        );
        assert_eq!(
            unreadable_key(&v1(), &[("a.yaml", fine), ("b.yaml", include)]),
            Some(("b.yaml", "include".to_string()))
        );
        assert_eq!(unreadable_key(&v1(), &[("a.yaml", fine)]), None);
        assert_eq!(unreadable_key(&v2(), &[("compose.yaml", name)]), None);
        assert_eq!(
            top_level_keys("\"name\": q\n---\nservices:\n- a\n"),
            ["name", "services"]
        );
    }

    #[test]
    fn v2_command_never_pulls() {
        let cmd = up_command(
            &v2(),
            "demo",
            Path::new("/srv/demo"),
            &["compose.yaml".into(), OVERRIDE.into()],
            &[PathBuf::from("/e/prod.env")],
            &["web".into()],
        );
        assert_eq!(
            cmd.join(" "),
            "docker compose --project-name demo --project-directory /srv/demo -f /srv/demo/compose.yaml -f /srv/demo/airlock.override.yml --env-file /e/prod.env --profile web up -d --pull never"
        );
    }

    #[test]
    fn v1_command_has_no_pull_flag() {
        let cmd = up_command(
            &v1(),
            "demo",
            Path::new("/srv/demo"),
            &["compose.yaml".into()],
            &[],
            &[],
        );
        assert_eq!(
            cmd.join(" "),
            "docker-compose --project-name demo --project-directory /srv/demo -f /srv/demo/compose.yaml up -d"
        );
    }

    #[test]
    fn old_v2_has_no_pull_flag() {
        let t = ComposeCli {
            version: "2.6.1".into(),
            ..v2()
        };
        assert!(
            !up_command(&t, "p", Path::new("/d"), &[], &[], &[]).contains(&"--pull".to_string())
        );
    }
}
