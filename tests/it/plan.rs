//! `airlock plan` end to end, through the real binary: every compose file and combo of
//! `$AIRLOCK_FIXTURES` against its expected (kind, image) list, bad input (exit 2, one clear
//! line), the Frappe example (file and built-in), and the `--json` shape as an insta snapshot.

use crate::harness::fixtures;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `airlock plan` with an empty environment (PATH and HOME only), like the fixtures' headers ask.
fn plan_cmd(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("airlock").expect("airlock binary");
    cmd.env_clear().current_dir(dir).arg("plan");
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd
}

struct Case {
    expected: PathBuf,
    /// Project folder (first directory under the fixtures root).
    folder: PathBuf,
    files: Vec<PathBuf>,
    env_file: Option<PathBuf>,
    want: BTreeSet<(String, String)>,
    unresolved: bool,
}

fn expected_lists(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(".expected-images.txt") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Read an expected list's header; `None` for override fragments.
fn case(root: &Path, expected: &Path) -> Option<Case> {
    let text = std::fs::read_to_string(expected).unwrap();
    if text
        .lines()
        .any(|l| l.starts_with("# features:") && l.contains("fragment"))
    {
        return None;
    }
    let rel = expected.strip_prefix(root).unwrap();
    let folder = root.join(rel.components().next().unwrap());
    let first = text.lines().next().unwrap_or_default();
    let files = if let Some((_, order)) = first.split_once("files merged in this order (") {
        // `(docker compose -f a.yml -f b.yml):`
        let words: Vec<&str> = order.trim_end_matches("):").split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "-f")
            .map(|w| folder.join(w[1]))
            .collect()
    } else {
        vec![PathBuf::from(
            expected
                .to_string_lossy()
                .trim_end_matches(".expected-images.txt"),
        )]
    };
    let env_file = text
        .lines()
        .find_map(|l| l.strip_prefix("# env file used for interpolation: "))
        .and_then(|v| v.split_whitespace().next())
        .filter(|v| *v != "none")
        .map(|v| folder.join(v));
    let mut want = BTreeSet::new();
    let mut unresolved = false;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut cols = line.split('\t');
        let kind = cols.next().unwrap().to_string();
        let image = cols.next().unwrap_or_default().to_string();
        if kind == "unresolved" {
            unresolved = true;
        } else {
            want.insert((kind, image));
        }
    }
    Some(Case {
        expected: expected.to_path_buf(),
        folder,
        files,
        env_file,
        want,
        unresolved,
    })
}

/// Every compose file and combo of the fixtures: `plan --json` gives exactly the expected
/// (kind, ref) set; `unresolved` cases exit 2.
#[test]
fn fixtures_walk() {
    let root = fixtures();
    let lists = expected_lists(&root);
    assert!(
        !lists.is_empty(),
        "no *.expected-images.txt under {}",
        root.display()
    );
    let cases: Vec<Case> = lists.iter().filter_map(|e| case(&root, e)).collect();
    let mut mismatches = Vec::new();
    for c in &cases {
        let mut cmd = plan_cmd(&c.folder);
        cmd.arg("--json").args(["--profile", "*"]);
        for f in &c.files {
            cmd.arg("-f").arg(f);
        }
        if let Some(e) = &c.env_file {
            cmd.arg("--env-file").arg(e);
        }
        let out = cmd.output().unwrap();
        let name = c
            .expected
            .strip_prefix(&root)
            .unwrap()
            .display()
            .to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if c.unresolved {
            if out.status.code() != Some(2) {
                mismatches.push(format!(
                    "{name}: expected exit 2 (unresolved), got {:?}; stderr: {stderr}",
                    out.status.code()
                ));
            }
            continue;
        }
        if !out.status.success() {
            mismatches.push(format!("{name}: exit {:?}: {stderr}", out.status.code()));
            continue;
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let got: BTreeSet<(String, String)> = json["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().unwrap().to_string(),
                    i["ref"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        if got != c.want {
            let missing: Vec<_> = c.want.difference(&got).collect();
            let extra: Vec<_> = got.difference(&c.want).collect();
            mismatches.push(format!(
                "{name}:\n    missing {missing:?}\n    extra   {extra:?}"
            ));
        }
    }
    eprintln!(
        "plan fixtures: {} cases ({} lists, fragments skipped), {} mismatches",
        cases.len(),
        lists.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} fixture cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}

/// Write `files` (name, content) into a fresh directory.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

/// Run plan in `dir`, expect exit 2 and exactly one non-empty line on stderr; return it.
fn fails_with_one_line(dir: &Path, args: &[&str]) -> String {
    let out = plan_cmd(dir).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_string()
}

#[test]
fn invalid_yaml_reports_file_line_column() {
    let dir = project(&[("compose.yaml", "services:\n  web:\n    image: [nginx\n")]);
    let line = fails_with_one_line(dir.path(), &[]);
    let re_ok = line.contains("compose.yaml:")
        && line.split("compose.yaml:").nth(1).is_some_and(|rest| {
            let mut parts = rest.split(':');
            parts.next().is_some_and(|l| l.parse::<u32>().is_ok())
                && parts.next().is_some_and(|c| c.parse::<u32>().is_ok())
        });
    assert!(re_ok, "no file:line:col in {line}");
}

#[test]
fn missing_file_is_one_line() {
    let dir = project(&[]);
    let line = fails_with_one_line(dir.path(), &["-f", "nope.yaml"]);
    assert!(line.contains("nope.yaml"), "{line}");
}

#[test]
fn include_cycle_is_one_line() {
    let dir = project(&[
        (
            "compose.yaml",
            "include:\n  - b.yaml\nservices:\n  a:\n    image: nginx:1\n",
        ),
        (
            "b.yaml",
            "include:\n  - compose.yaml\nservices:\n  b:\n    image: redis:7\n",
        ),
    ]);
    let line = fails_with_one_line(dir.path(), &[]);
    assert!(line.to_lowercase().contains("cycle"), "{line}");
}

#[test]
fn invalid_reference_is_one_line_naming_the_service() {
    let dir = project(&[("compose.yaml", "services:\n  web:\n    image: Nginx:1.25\n")]);
    let line = fails_with_one_line(dir.path(), &[]);
    assert!(
        line.contains("`web`") && line.contains("Nginx:1.25") && line.contains("compose.yaml"),
        "{line}"
    );
    let dir = project(&[
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
        ("Dockerfile", "ARG BASE=Debian\nFROM ${BASE}\n"),
    ]);
    let line = fails_with_one_line(dir.path(), &[]);
    assert!(
        line.contains("`app`") && line.contains("Dockerfile:2`") && line.contains("Debian"),
        "{line}"
    );
}

#[test]
fn unresolved_required_variable_exits_2() {
    let dir = project(&[(
        "compose.yaml",
        "services:\n  web:\n    image: nginx:${TAG:?set TAG}\n",
    )]);
    let line = fails_with_one_line(dir.path(), &[]);
    assert!(line.contains("TAG"), "{line}");
}

#[test]
fn bad_dockerfile_exits_2() {
    let dir = project(&[
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
        ("Dockerfile", "FROM alpine\nRUN <<EOF\necho never closed\n"),
    ]);
    let line = fails_with_one_line(dir.path(), &[]);
    assert!(
        line.contains("heredoc") && line.contains("Dockerfile"),
        "{line}"
    );
}

#[test]
fn missing_dockerfile_is_a_finding() {
    let dir = project(&[("compose.yaml", "services:\n  app:\n    build: ./app\n")]);
    let out = plan_cmd(dir.path()).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "dockerfile-missing")
        .unwrap();
    assert_eq!(f["level"], "error");
    assert!(
        f["message"].as_str().unwrap().contains("app/Dockerfile"),
        "{f}"
    );
}

#[test]
fn run_files_are_listed_and_the_ones_not_carried_are_findings() {
    let dir = project(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: nginx:1.25\n    env_file: [web.env, {path: gone.env, required: false}, needed.env]\n    \
             volumes: [\"./conf:/etc/nginx/conf.d:ro\", \"/etc/ssl/certs:/certs:ro\", \"./data:/data\"]\n",
        ),
        ("web.env", "A=1\n"),
        ("conf/default.conf", "server {}\n"),
    ]);
    let out = plan_cmd(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Run files the bundle carries (2): conf/ (1 file), web.env"),
        "{text}"
    );

    let out = plan_cmd(dir.path()).arg("--json").output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<(String, bool, Option<String>)> = json["run_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["carried"] == true,
                f["reason"].as_str().map(String::from),
            )
        })
        .collect();
    let row = |p: &str, carried: bool, reason: Option<&str>| {
        (p.to_string(), carried, reason.map(String::from))
    };
    assert_eq!(
        files,
        vec![
            row("/etc/ssl/certs", false, Some("outside")),
            row("conf", true, None),
            row("data", false, Some("missing")),
            row("gone.env", false, Some("missing")),
            row("needed.env", false, Some("missing")),
            row("web.env", true, None),
        ]
    );
    let findings: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"].as_str().unwrap().starts_with("run-file"))
        .map(|f| {
            (
                f["level"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The missing required env file is an error, the missing bind source an info (Docker
    // creates the directory), the optional env file nothing, the outside path a warning.
    assert_eq!(findings.len(), 3, "{findings:?}");
    assert!(
        findings
            .iter()
            .any(|(l, m)| l == "error" && m.contains("`needed.env`")),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|(l, m)| l == "info" && m.contains("`data`")),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|(l, m)| l == "warning" && m.contains("`/etc/ssl/certs`")),
        "{findings:?}"
    );
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/frappe/compose.yaml")
}

fn images_of(json: &serde_json::Value) -> Vec<String> {
    json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {} {}",
                i["kind"].as_str().unwrap(),
                i["ref"].as_str().unwrap(),
                i["services"]
            )
        })
        .collect()
}

#[test]
fn frappe_example() {
    let out = plan_cmd(Path::new(env!("CARGO_MANIFEST_DIR")))
        .arg("--json")
        .arg("-f")
        .arg(example())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["project"], "frappe");
    assert_eq!(
        images_of(&json),
        [
            r#"image frappe/erpnext:v15.93.2 ["backend","configurator","create-site","frontend","queue-long","queue-short","scheduler","websocket"]"#,
            r#"image mariadb:10.6 ["db"]"#,
            r#"image redis:6.2-alpine ["redis-cache","redis-queue"]"#,
        ]
    );
    // Our own example is offline-ready: no warnings or errors.
    assert_eq!(
        json["findings"],
        serde_json::json!([]),
        "{}",
        json["findings"]
    );

    // ERPNEXT_VERSION moves the erpnext tag.
    let out = plan_cmd(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env("ERPNEXT_VERSION", "v15.1.0")
        .args(["--json", "-f"])
        .arg(example())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["images"][0]["ref"], "frappe/erpnext:v15.1.0");
}

#[test]
fn built_in_example_without_compose_file() {
    let dir = project(&[]);
    let out = plan_cmd(dir.path()).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no compose file here; showing the built-in Frappe example"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["project"], "frappe");
    assert_eq!(json["images"].as_array().unwrap().len(), 3);
    // The human table lists the same images.
    let out = plan_cmd(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for image in [
        "frappe/erpnext:v15.93.2",
        "mariadb:10.6",
        "redis:6.2-alpine",
    ] {
        assert!(stdout.contains(image), "{stdout}");
    }
}

#[test]
fn table_groups_by_image_and_lists_findings() {
    let dir = project(&[
        (
            "compose.yaml",
            "services:\n  web:\n    image: nginx\n    pull_policy: always\n  app:\n    build: .\n",
        ),
        ("Dockerfile", "FROM nginx AS base\nFROM base\n"),
    ]);
    let out = plan_cmd(dir.path()).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // nginx appears once in the image column: the build-from row continues its group.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('│') && !l.contains("pinned"))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!(stdout.matches("nginx ").count(), 1, "{stdout}");
    for code in ["moving-tag", "pull-policy", "built-service"] {
        assert!(stdout.contains(code), "{code} missing in {stdout}");
    }
    assert!(stdout.contains("fix: "), "{stdout}");
}

#[test]
fn platform_flag_sets_target_args() {
    let dir = project(&[
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
        (
            "Dockerfile",
            "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM base-${TARGETARCH}:1\nCOPY --from=build / /\n",
        ),
    ]);
    let out = plan_cmd(dir.path())
        .args(["--json", "--platform", "linux/arm64"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["platform"], "linux/arm64");
    let refs: Vec<&str> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["base-arm64:1", "golang:1.22"]);
    let out = plan_cmd(dir.path())
        .args(["--platform", "linux"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The `--json` document is the user-facing contract: snapshot it (temporary paths filtered).
#[test]
fn json_shape_snapshot() {
    let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let compose = format!(
        "name: shape\n\
         services:\n\
         \x20 web:\n\
         \x20   image: nginx\n\
         \x20   pull_policy: daily\n\
         \x20   environment:\n\
         \x20     DB_URL: postgres://db:5432/app\n\
         \x20 db:\n\
         \x20   image: postgres:16@{digest}\n\
         \x20 app:\n\
         \x20   image: acme/app:1.0\n\
         \x20   build:\n\
         \x20     context: ./app\n\
         \x20     target: runtime\n\
         \x20     args:\n\
         \x20       PY: \"3.12\"\n\
         \x20   volumes:\n\
         \x20     - type: image\n\
         \x20       source: acme/assets:2\n\
         \x20       target: /assets\n\
         \x20 gone:\n\
         \x20   build: ./gone\n\
         \x20 arm:\n\
         \x20   image: redis:7\n\
         \x20   platform: linux/arm64\n\
         \x20   volumes: [\"cache:/data\"]\n\
         volumes:\n\
         \x20 cache: {{}}\n"
    );
    let dockerfile = "# syntax=docker/dockerfile:1.7\n\
                      ARG PY=3.11\n\
                      FROM python:${PY}-slim AS runtime\n\
                      COPY --from=ghcr.io/astral-sh/uv:0.5 /uv /bin/\n\
                      FROM runtime AS test\n\
                      RUN --mount=type=bind,from=busybox:1.36,target=/b true\n";
    let dir = project(&[("compose.yaml", &compose), ("app/Dockerfile", dockerfile)]);
    let out = plan_cmd(dir.path()).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let text = text
        .replace(&root.display().to_string(), "[PROJECT]")
        .replace(&dir.path().display().to_string(), "[PROJECT]");
    insta::assert_snapshot!("plan_json_shape", text);
}
