//! Starting the project with the Compose CLI `compose_cli::chosen` picks: the `up -d` command
//! line (never pulling: `--pull never` from Compose v2.8) and running it.

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

/// Run `cmd` (program first) in `dir`, its output on stderr (stdout is for airlock's report).
pub fn run(cmd: &[String], dir: &Path) -> crate::error::Result<std::process::ExitStatus> {
    std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .current_dir(dir)
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("Cannot run `{}`", cmd[0]))
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
