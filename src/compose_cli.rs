//! The Compose CLIs that run projects: owns finding them (`docker compose`, the Compose v2 CLI
//! plugin; `docker-compose`, 1.x or a standalone v2), their versions, and which one airlock
//! uses (`AIRLOCK_COMPOSE=v1|v2`; default: Compose v2 when it runs, else docker-compose).
//! Used by `up` and `doctor`.

use std::process::{Command, Stdio};

/// One Compose CLI found here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComposeCli {
    /// `["docker", "compose"]` or `["docker-compose"]`.
    pub program: Vec<String>,
    /// Major version 2+ (Compose v2/v5 CLI semantics) or 1 (docker-compose 1.x, python).
    pub v2: bool,
    /// `2.40.3`, `1.29.2`.
    pub version: String,
}

/// The environment variable that picks the Compose CLI.
pub const CHOICE_VAR: &str = "AIRLOCK_COMPOSE";

/// `PROGRAM version --short`, when it runs.
fn try_version(program: &[&str]) -> Option<ComposeCli> {
    let out = Command::new(program[0])
        .args(&program[1..])
        .args(["version", "--short"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches('v')
        .to_string();
    (!version.is_empty()).then(|| ComposeCli {
        program: program.iter().map(|s| s.to_string()).collect(),
        v2: !version.starts_with("1."),
        version,
    })
}

/// Every Compose CLI that runs here: the Docker CLI plugin first, then `docker-compose`.
pub fn installed() -> Vec<ComposeCli> {
    [&["docker", "compose"][..], &["docker-compose"][..]]
        .into_iter()
        .filter_map(try_version)
        .collect()
}

/// The Compose CLI airlock runs: the one `AIRLOCK_COMPOSE` names (`v1` or `v2`), else Compose
/// v2 when it runs, else docker-compose. `Err` names what was asked for and is missing.
pub fn chosen() -> Result<Option<ComposeCli>, String> {
    let found = installed();
    match std::env::var(CHOICE_VAR).ok().as_deref().map(str::trim) {
        None | Some("") => Ok(found.iter().find(|c| c.v2).or(found.first()).cloned()),
        Some(want @ ("v1" | "v2")) => {
            let v2 = want == "v2";
            found
                .iter()
                .find(|c| c.v2 == v2)
                .cloned()
                .map(Some)
                .ok_or_else(|| {
                    format!(
                        "{CHOICE_VAR}={want}, but no Compose {want} runs here (found: {})",
                        describe(&found)
                    )
                })
        }
        Some(other) => Err(format!(
            "{CHOICE_VAR}={other}: expected v1 (docker-compose 1.x) or v2 (Compose v2)"
        )),
    }
}

/// `docker compose 2.40.3, docker-compose 1.29.2`, or `none`.
pub fn describe(found: &[ComposeCli]) -> String {
    if found.is_empty() {
        return "none".into();
    }
    found
        .iter()
        .map(|c| format!("{} {}", c.program.join(" "), c.version))
        .collect::<Vec<_>>()
        .join(", ")
}
