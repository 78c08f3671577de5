//! `compose::load` on our synthetic fixtures (`tests/data/compose/`) and on every real compose
//! file under `$AIRLOCK_FIXTURES` (run as each expected list's header says).

use airlock::compose::{self, Error, LoadOptions, Project};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/compose")
        .join(rel)
}

fn env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Load `files` (relative to tests/data/compose) with an empty process environment.
fn load_files(files: &[&str]) -> Result<Project, Error> {
    compose::load(&LoadOptions {
        files: files.iter().map(|f| data(f)).collect(),
        environment: env(&[]),
        ..LoadOptions::default()
    })
}

fn env_of<'a>(p: &'a Project, service: &str, key: &str) -> Option<&'a str> {
    p.services[service].environment.get(key)?.as_deref()
}

#[test]
fn include_short_and_long_form_with_own_env_and_directory() {
    let p = load_files(&["include/compose.yaml"]).unwrap();
    assert_eq!(p.name, "include");
    let names: Vec<&str> = p.services.keys().map(String::as_str).collect();
    assert_eq!(names, ["cache", "db", "web"]);
    // lib/.env gives PG_VERSION; the including project's SHARED wins over lib/.env.
    assert_eq!(
        p.services["db"].image.as_deref(),
        Some("postgres:16-from-main")
    );
    assert_eq!(p.services["cache"].image.as_deref(), Some("redis:7-alpine"));
    assert_eq!(p.services["web"].image.as_deref(), Some("web:1"));
    // Relative paths resolve against each included project's directory.
    let db = &p.services["db"];
    assert_eq!(
        db.build.as_ref().unwrap().context.as_deref(),
        Some(data("include/lib/ctx").as_path())
    );
    assert_eq!(
        db.volumes[0].source.as_deref(),
        Some(data("include/lib/data").to_str().unwrap())
    );
    assert_eq!(db.volumes[0].kind, "bind");
    let cache = &p.services["cache"];
    assert_eq!(
        cache.build.as_ref().unwrap().context.as_deref(),
        Some(data("include/other/ctx").as_path())
    );
    // The included override file merged.
    assert_eq!(env_of(&p, "cache", "FROM_OVERRIDE"), Some("1"));
    assert_eq!(cache.file, data("include/other/compose.override.yaml"));
    assert_eq!(db.file, data("include/lib/db.yaml"));
    for f in [
        "include/compose.yaml",
        "include/lib/db.yaml",
        "include/other/compose.yaml",
        "include/other/compose.override.yaml",
    ] {
        assert!(p.files.contains(&data(f)), "{f} not in {:?}", p.files);
    }
    for f in [
        "include/.env",
        "include/lib/.env",
        "include/other/custom.env",
    ] {
        assert!(
            p.env_files.contains(&data(f)),
            "{f} not in {:?}",
            p.env_files
        );
    }
}

#[test]
fn include_cycle_is_an_error_naming_the_chain() {
    let e = load_files(&["include-cycle/a.yaml"]).unwrap_err();
    let Error::IncludeCycle { chain } = &e else {
        panic!("{e}")
    };
    assert_eq!(
        chain,
        &[
            data("include-cycle/a.yaml"),
            data("include-cycle/b.yaml"),
            data("include-cycle/a.yaml")
        ]
    );
    assert!(e.to_string().contains("b.yaml"), "{e}");
}

#[test]
fn extends_same_file_nested_and_other_file() {
    let p = load_files(&["extends/compose.yaml"]).unwrap();
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("base:1"));
    assert_eq!(web.command, ["web"]);
    assert_eq!(env_of(&p, "web", "A"), Some("1"));
    assert_eq!(env_of(&p, "web", "B"), Some("2"));
    // worker extends web which extends base.
    let worker = &p.services["worker"];
    assert_eq!(worker.command, ["web"]);
    assert_eq!(worker.ports[0].target, 80);
    assert_eq!(env_of(&p, "worker", "B"), Some("2"));
    // api extends app in common/base.yaml, which extends core there: paths from common/.
    let api = &p.services["api"];
    assert_eq!(api.image.as_deref(), Some("api:2"));
    assert_eq!(
        api.build.as_ref().unwrap().context.as_deref(),
        Some(data("extends/common/src").as_path())
    );
    assert_eq!(
        api.volumes[0].source.as_deref(),
        Some(data("extends/common/conf").to_str().unwrap())
    );
    assert!(api.volumes[0].read_only);
    assert_eq!(env_of(&p, "api", "CORE"), Some("1"));
    assert!(p.files.contains(&data("extends/common/base.yaml")));
    assert!(api.raw.get("extends").is_none());
}

#[test]
fn extends_cycle_is_an_error() {
    let e = load_files(&["extends-cycle/compose.yaml"]).unwrap_err();
    assert!(matches!(e, Error::ExtendsCycle { .. }), "{e}");
    assert!(
        e.to_string().contains(":a") && e.to_string().contains(":b"),
        "{e}"
    );
}

#[test]
fn extends_unknown_service_is_an_error() {
    let e = load_files(&["extends/unknown.yaml"]).unwrap_err();
    let Error::ExtendsUnknown { service, base, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((service.as_str(), base.as_str()), ("a", "nope"));
}

#[test]
fn reset_and_override_tags() {
    let p = load_files(&["reset/compose.yaml", "reset/compose.override.yaml"]).unwrap();
    let app = &p.services["app"];
    assert!(app.ports.is_empty(), "{:?}", app.ports);
    assert!(app.command.is_empty());
    let env: Vec<&str> = app.environment.keys().map(String::as_str).collect();
    assert_eq!(env, ["C"]);
    // volumes merge by target: the override's `other` replaces `data` for /data.
    assert_eq!(app.volumes.len(), 1);
    assert_eq!(app.volumes[0].source.as_deref(), Some("other"));
}

#[test]
fn every_interpolation_form() {
    let p = compose::load(&LoadOptions {
        files: vec![data("interpolation/compose.yaml")],
        environment: env(&[
            ("PROCESS_VAR", "from-process"),
            ("OVERRIDDEN", "from-process"),
        ]),
        ..LoadOptions::default()
    })
    .unwrap();
    let s = &p.services["forms"];
    assert_eq!(s.image.as_deref(), Some("img:1.25"));
    let want = [
        ("UNBRACED", "1.25"),
        ("BRACED", "1.25"),
        ("SOFT_DEFAULT_UNSET", "soft"),
        ("SOFT_DEFAULT_EMPTY", "soft"),
        ("HARD_DEFAULT_UNSET", "hard"),
        ("HARD_DEFAULT_EMPTY", "[]"),
        ("ALT_SET", "alt"),
        ("ALT_EMPTY", "[]"),
        ("ALT_SET_PLUS", "alt"),
        ("REQUIRED_SET", "1.25"),
        ("REQUIRED_EMPTY_OK", "[]"),
        ("NESTED", "1.25"),
        ("ESCAPED", "$TAG and ${TAG}"),
        ("LONE", "cost $ 5"),
        ("FROM_PROCESS", "from-process"),
        ("PROCESS_BEATS_DOTENV", "from-process"),
        ("MISSING", "[]"),
        ("KEY_${TAG}", "keys are not interpolated"),
    ];
    for (k, v) in want {
        assert_eq!(env_of(&p, "forms", k), Some(v), "{k}");
    }
    let unset: Vec<&str> = p
        .warnings
        .iter()
        .filter(|w| w.code == "unset-variable")
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(unset.len(), 1, "{unset:?}");
    assert!(unset[0].contains("NOT_SET_ANYWHERE"));
    assert_eq!(p.env_files, [data("interpolation/.env")]);
}

#[test]
fn env_files_repeatable_and_from_compose_env_files() {
    let with = |env_files: Vec<PathBuf>, process: &[(&str, &str)]| {
        compose::load(&LoadOptions {
            files: vec![data("interpolation/compose.yaml")],
            env_files,
            environment: env(process),
            ..LoadOptions::default()
        })
        .unwrap()
    };
    let both = vec![data("interpolation/.env"), data("interpolation/extra.env")];
    let p = with(both.clone(), &[]);
    assert_eq!(p.services["forms"].image.as_deref(), Some("img:2.0"));
    assert_eq!(p.env_files, both);
    // COMPOSE_ENV_FILES (comma separated) when no --env-file is given.
    let list = format!(
        "{},{}",
        data("interpolation/extra.env").display(),
        data("interpolation/.env").display()
    );
    let p = with(Vec::new(), &[("COMPOSE_ENV_FILES", &list)]);
    assert_eq!(p.services["forms"].image.as_deref(), Some("img:1.25"));
    // COMPOSE_DISABLE_ENV_FILE: no .env, so TAG is unset.
    let p = with(
        Vec::new(),
        &[
            ("COMPOSE_DISABLE_ENV_FILE", "true"),
            ("TAG", "from-process"),
        ],
    );
    assert_eq!(
        p.services["forms"].image.as_deref(),
        Some("img:from-process")
    );
    assert!(p.env_files.is_empty());
}

#[test]
fn required_variable_error_names_variable_message_and_file() {
    let e = load_files(&["interpolation/required.yaml"]).unwrap_err();
    let Error::RequiredVariable {
        variable,
        message,
        file,
        line,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(variable, "APP_VERSION");
    assert_eq!(message, "set APP_VERSION in .env");
    assert_eq!(file, &data("interpolation/required.yaml"));
    assert_eq!(*line, 3);
    let text = e.to_string();
    assert!(
        text.contains("required.yaml:3:") && text.contains("APP_VERSION"),
        "{text}"
    );
    // In a label it is only a warning: the images can still be planned.
    let p = load_files(&["interpolation/required-label.yaml"]).unwrap();
    let w = p
        .warnings
        .iter()
        .find(|w| w.code == "required-variable")
        .expect("warning");
    assert!(
        w.message.contains("required-label.yaml:6:") && w.message.contains("RULE not set"),
        "{}",
        w.message
    );
    // The whole value is left empty.
    assert_eq!(p.services["app"].raw["labels"][0], "");
}

#[test]
fn profiles_from_compose_profiles_in_dotenv() {
    let p = load_files(&["profiles/compose.yaml"]).unwrap();
    let names: Vec<&str> = p.services.keys().map(String::as_str).collect();
    assert_eq!(names, ["app", "debug"]);
    assert_eq!(p.disabled_services, ["docs", "needs-docs"]);
    assert_eq!(p.profiles, ["debug"]);
}

#[test]
fn profiles_star_and_flags() {
    let load = |profiles: &[&str]| {
        compose::load(&LoadOptions {
            files: vec![data("profiles/compose.yaml")],
            profiles: profiles.iter().map(|s| s.to_string()).collect(),
            environment: env(&[("COMPOSE_DISABLE_ENV_FILE", "1")]),
            ..LoadOptions::default()
        })
    };
    let all = load(&["*"]).unwrap();
    assert_eq!(all.services.len(), 4);
    assert_eq!(all.profiles, ["all", "debug", "docs", "strict"]);
    let docs = load(&["docs"]).unwrap();
    assert_eq!(
        docs.services.keys().cloned().collect::<Vec<_>>(),
        ["app", "docs"]
    );
    let e = load(&["strict"]).unwrap_err();
    assert!(
        matches!(&e, Error::Dependency { dependency, .. } if dependency == "docs"),
        "{e}"
    );
    assert!(e.to_string().contains("--profile docs"), "{e}");
}

#[test]
fn anchors_merge_keys_and_extension_fields() {
    let p = load_files(&["anchors/compose.yaml"]).unwrap();
    assert_eq!(p.services["one"].restart.as_deref(), Some("unless-stopped"));
    // `<<: [*limits, *common]`: the first mapping listed wins.
    assert_eq!(p.services["two"].restart.as_deref(), Some("always"));
    assert_eq!(p.services["two"].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(env_of(&p, "two", "LOG"), Some("info"));
    assert_eq!(env_of(&p, "two", "EXTRA"), Some("1"));
    assert_eq!(env_of(&p, "three", "LOG"), Some("info"));
    assert_eq!(p.services.len(), 3);
}

#[test]
fn broken_yaml_reports_file_line_column() {
    let e = load_files(&["broken/unclosed.yaml"]).unwrap_err();
    let Error::Yaml {
        path, line, column, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(path, &data("broken/unclosed.yaml"));
    assert!(*line >= 3 && *column >= 1, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:{line}:{column}: ", path.display())),
        "{e}"
    );
    let e = load_files(&["broken/duplicate-key.yaml"]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Yaml {
                line: 4,
                column: 3,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_types_name_file_and_service() {
    let e = load_files(&["broken/services-list.yaml"]).unwrap_err();
    assert!(
        matches!(&e, Error::Invalid { path, .. } if path == "services"),
        "{e}"
    );
    let e = load_files(&["broken/bad-ports.yaml"]).unwrap_err();
    let Error::Invalid {
        path,
        service,
        line,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (path.as_str(), service.as_deref(), *line),
        ("services.web.ports", Some("web"), 4)
    );
    // An undefined dependency (an override file loaded alone) is a warning, not an error.
    let p = load_files(&["broken/unknown-dependency.yaml"]).unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.code == "undefined-dependency" && w.message.contains("ghost")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn missing_file_and_env_file_are_named() {
    let e = load_files(&["nope/compose.yaml"]).unwrap_err();
    assert!(
        matches!(&e, Error::FileNotFound { path } if path.ends_with("nope/compose.yaml")),
        "{e}"
    );
    let e = compose::load(&LoadOptions {
        files: vec![data("anchors/compose.yaml")],
        env_files: vec![data("anchors/missing.env")],
        environment: env(&[]),
        ..LoadOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(&e, Error::EnvFileNotFound { path } if path.ends_with("missing.env")),
        "{e}"
    );
}

#[test]
fn non_utf8_and_alias_bomb_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("compose.yaml");
    std::fs::write(&bad, b"services:\n  web:\n    image: caf\xe9\n").unwrap();
    let e = compose::load(&LoadOptions {
        files: vec![bad.clone()],
        environment: env(&[]),
        ..LoadOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotUtf8 {
                line: 3,
                column: 15,
                offset: 31,
                ..
            }
        ),
        "{e}"
    );

    let mut bomb = String::from("x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        bomb += &format!(
            "x{i}: &x{i} [{}]\n",
            vec![format!("*x{}", i - 1); 9].join(", ")
        );
    }
    bomb += "services:\n  web:\n    image: web\n    labels: *x11\n";
    std::fs::write(&bad, bomb).unwrap();
    let started = Instant::now();
    let e = compose::load(&LoadOptions {
        files: vec![bad],
        environment: env(&[]),
        ..LoadOptions::default()
    })
    .unwrap_err();
    assert!(matches!(e, Error::Yaml { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn discovery_walks_up_and_adds_the_override() {
    let p = compose::load(&LoadOptions {
        working_dir: Some(data("discovery/sub/deeper")),
        environment: env(&[]),
        ..LoadOptions::default()
    })
    .unwrap();
    assert_eq!(
        p.files,
        [
            data("discovery/compose.yaml"),
            data("discovery/compose.override.yaml")
        ]
    );
    assert_eq!(p.services["found"].image.as_deref(), Some("found:override"));
    assert_eq!(p.name, "discovery");
    assert_eq!(p.directory, data("discovery"));
}

#[test]
fn compose_file_and_project_name_from_dotenv() {
    let p = compose::load(&LoadOptions {
        working_dir: Some(data("envfile")),
        environment: env(&[]),
        ..LoadOptions::default()
    })
    .unwrap();
    assert_eq!(
        p.files,
        [data("envfile/one.yaml"), data("envfile/two.yaml")]
    );
    assert_eq!(p.name, "my_project-name");
    // COMPOSE_PATH_SEPARATOR and -p win.
    let p = compose::load(&LoadOptions {
        working_dir: Some(data("envfile")),
        environment: env(&[
            ("COMPOSE_FILE", "one.yaml;two.yaml"),
            ("COMPOSE_PATH_SEPARATOR", ";"),
        ]),
        project_name: Some("given".into()),
        ..LoadOptions::default()
    })
    .unwrap();
    assert_eq!(p.services.len(), 2);
    assert_eq!(p.name, "given");
    // Compose v2 refuses a `-p` or COMPOSE_PROJECT_NAME that is not already a valid name
    // (only `name:` and the directory name are normalised).
    for (given, var) in [(Some("Given"), None), (None, Some("My_Project.Name"))] {
        let err = compose::load(&LoadOptions {
            working_dir: Some(data("envfile")),
            environment: env(&var
                .map(|v| ("COMPOSE_PROJECT_NAME", v))
                .into_iter()
                .collect::<Vec<_>>()),
            project_name: given.map(String::from),
            ..LoadOptions::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::ProjectName { .. }), "{err}");
    }
}

#[test]
fn every_typed_field_in_both_syntaxes() {
    let p = compose::load(&LoadOptions {
        files: vec![data("fields/compose.yaml")],
        environment: env(&[("FROM_ENV", "env-value")]),
        ..LoadOptions::default()
    })
    .unwrap();
    let s = &p.services["built"];
    let b = s.build.as_ref().unwrap();
    assert_eq!(b.context.as_deref(), Some(data("fields/app").as_path()));
    assert_eq!(b.context_raw, "./app");
    assert_eq!(b.dockerfile.as_deref(), Some("Dockerfile.prod"));
    assert_eq!(b.args["VERSION"].as_deref(), Some("1.2"));
    assert_eq!(b.args["FROM_ENV"].as_deref(), Some("env-value"));
    assert_eq!(b.args["NOT_SET"], None);
    assert_eq!(b.target.as_deref(), Some("runtime"));
    assert_eq!(b.platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(b.additional_contexts["base"], "docker-image://alpine:3.20");
    assert_eq!(b.additional_contexts["src"], "./src");
    assert_eq!(b.pull, Some(true));
    assert_eq!(s.image.as_deref(), Some("registry.local/built:1"));
    assert_eq!(s.pull_policy.as_deref(), Some("build"));
    assert_eq!(s.platform.as_deref(), Some("linux/arm64/v8"));
    assert_eq!(s.restart.as_deref(), Some("unless-stopped"));
    assert_eq!(s.container_name.as_deref(), Some("the-built"));
    assert_eq!(s.command, ["sh", "-c", "echo \"hello world\""]);
    assert_eq!(s.entrypoint, ["/bin/tini", "--"]);
    assert_eq!(s.healthcheck.as_ref().unwrap()["interval"], "10s");
    assert_eq!(s.environment["PLAIN"].as_deref(), Some("1"));
    assert_eq!(s.environment["INHERIT"], None);
    let db = &s.depends_on["db"];
    assert_eq!(
        (db.condition.as_str(), db.required, db.restart),
        ("service_healthy", true, true)
    );
    assert!(!s.depends_on["optional"].required);
    let ports: Vec<String> = s
        .ports
        .iter()
        .map(|p| {
            format!(
                "{:?} {:?} {} {}",
                p.host_ip, p.published, p.target, p.protocol
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            r#"Some("127.0.0.1") Some("8080") 80 tcp"#,
            r#"Some("0.0.0.0") Some("8443") 443 tcp"#,
            "None None 9000 tcp"
        ]
    );
    let mounts: Vec<String> = s
        .volumes
        .iter()
        .map(|m| format!("{} {:?} {} {}", m.kind, m.source, m.target, m.read_only))
        .collect();
    let abs = |rel: &str| data(rel).to_string_lossy().into_owned();
    assert_eq!(
        mounts,
        [
            format!("bind Some({:?}) /data true", abs("fields/data")),
            r#"volume Some("named") /named false"#.to_string(),
            "volume None /anonymous false".to_string(),
            r#"image Some("models/llm:1") /models false"#.to_string(),
            format!("bind Some({:?}) /conf true", abs("fields/conf")),
            "tmpfs None /tmp false".to_string(),
        ]
    );
    assert_eq!(s.image_volumes, ["models/llm:1"]);
    assert_eq!(s.file, data("fields/compose.yaml"));
    assert_eq!(s.raw["container_name"], "the-built");
    // A remote context has no directory; `build: dir` is the context.
    let db = p.services["db"].build.as_ref().unwrap();
    assert_eq!(
        (db.context.as_ref(), db.context_raw.as_str()),
        (None, "https://github.com/example/db.git#main:docker")
    );
    let inline = p.services["inline"].build.as_ref().unwrap();
    assert_eq!(
        inline.dockerfile_inline.as_deref(),
        Some("FROM busybox:1.36\n")
    );
    assert_eq!(inline.context.as_deref(), Some(data("fields").as_path()));
    let short = p.services["short-build"].build.as_ref().unwrap();
    assert_eq!(
        short.context.as_deref(),
        Some(data("fields/short").as_path())
    );
    assert_eq!(p.volumes, ["named"]);
}

#[test]
fn reset_can_remove_a_whole_service() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "services:\n  a: {image: a}\n  b: {image: b}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.yaml"), "services:\n  b: !reset null\n").unwrap();
    let p = compose::load(&LoadOptions {
        files: vec![dir.path().join("a.yaml"), dir.path().join("b.yaml")],
        environment: env(&[]),
        ..LoadOptions::default()
    })
    .unwrap();
    assert_eq!(p.services.keys().collect::<Vec<_>>(), ["a"]);
}

// ---- the real compose files of $AIRLOCK_FIXTURES ----

fn fixtures() -> PathBuf {
    match std::env::var_os("AIRLOCK_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/compose"),
    }
}

fn expected_lists(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            expected_lists(&p, out);
        } else if p.to_string_lossy().ends_with(".expected-images.txt") {
            out.push(p);
        }
    }
}

/// One runnable case from an expected list's header.
struct Case {
    list: PathBuf,
    files: Vec<PathBuf>,
    env_file: Option<PathBuf>,
    services: BTreeSet<String>,
    /// (kind, ref, services)
    lines: Vec<(String, String, Vec<String>)>,
}

fn case_of(root: &Path, list: &Path) -> Option<Case> {
    let text = std::fs::read_to_string(list).unwrap();
    let rel = list.strip_prefix(root).unwrap();
    let project = root.join(rel.components().next().unwrap());
    let header: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    let name = list
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".expected-images.txt", "");
    let files = if name.starts_with("combo-") {
        let first = header[0];
        let start = first.find("docker compose ").unwrap() + "docker compose ".len();
        let end = first[start..].find(')').unwrap() + start;
        first[start..end]
            .split_whitespace()
            .filter(|w| *w != "-f")
            .map(|f| project.join(f))
            .collect()
    } else {
        let features = header
            .iter()
            .find(|l| l.starts_with("# features:"))
            .copied()
            .unwrap_or("");
        if features.contains("fragment") {
            return None;
        }
        vec![list.with_file_name(&name)]
    };
    let env_line = header
        .iter()
        .find(|l| l.starts_with("# env file used"))
        .unwrap();
    let env_file = env_line
        .split(": ")
        .nth(1)
        .and_then(|v| v.split(' ').next())
        .filter(|v| *v != "none")
        .map(|v| project.join(v));
    let services = header
        .iter()
        .find(|l| l.starts_with("# services:"))
        .and_then(|l| {
            Some(
                l[l.find('(')? + 1..l.rfind(')')?]
                    .split(", ")
                    .map(String::from)
                    .collect(),
            )
        })
        .unwrap_or_default();
    let lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let svcs = cols
                .get(2)
                .and_then(|w| w.strip_prefix("services="))
                .map(|s| {
                    s.split(',')
                        .map(|x| x.split(' ').next().unwrap_or(x).to_string())
                        .collect()
                })
                .unwrap_or_default();
            (cols[0].to_string(), cols[1].to_string(), svcs)
        })
        .collect();
    Some(Case {
        list: list.to_path_buf(),
        files,
        env_file,
        services,
        lines,
    })
}

fn load_case(c: &Case) -> Result<Project, Error> {
    compose::load(&LoadOptions {
        files: c.files.clone(),
        env_files: c.env_file.iter().cloned().collect(),
        profiles: vec!["*".into()],
        environment: env(&[]),
        ..LoadOptions::default()
    })
}

#[test]
fn every_real_fixture_loads_as_expected() {
    let root = fixtures();
    let mut lists = Vec::new();
    expected_lists(&root, &mut lists);
    lists.sort();
    assert!(
        lists.len() >= 70,
        "expected the fixture set under {}, found {} lists",
        root.display(),
        lists.len()
    );
    let mut checked = 0;
    let mut failures = Vec::new();
    for list in &lists {
        let Some(case) = case_of(&root, list) else {
            continue;
        };
        checked += 1;
        let unresolved: Vec<&String> = case
            .lines
            .iter()
            .filter(|(k, ..)| k == "unresolved")
            .map(|(_, r, _)| r)
            .collect();
        match load_case(&case) {
            Err(e) if !unresolved.is_empty() => {
                if !matches!(e, Error::RequiredVariable { .. }) {
                    failures.push(format!(
                        "{}: expected a required-variable error, got {e}",
                        case.list.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.list.display())),
            Ok(_) if !unresolved.is_empty() => failures.push(format!(
                "{}: loaded, but {unresolved:?} should fail",
                case.list.display()
            )),
            Ok(p) => {
                let got: BTreeSet<String> = p.services.keys().cloned().collect();
                if !case.services.is_empty() && got != case.services {
                    failures.push(format!(
                        "{}: services {got:?}, expected {:?}",
                        case.list.display(),
                        case.services
                    ));
                }
                for (kind, reference, services) in &case.lines {
                    for s in services {
                        let Some(svc) = p.services.get(s) else {
                            failures.push(format!("{}: service {s} missing", case.list.display()));
                            continue;
                        };
                        let ok = match kind.as_str() {
                            "image" => {
                                svc.image.as_deref() == Some(reference.as_str())
                                    && svc.build.is_none()
                            }
                            "build-tag" => {
                                svc.image.as_deref() == Some(reference.as_str())
                                    && svc.build.is_some()
                            }
                            k if k.starts_with("build-") => svc.build.is_some(),
                            _ => true,
                        };
                        if !ok {
                            failures.push(format!(
                                "{}: {kind} {reference} for {s}: got image {:?}, build {}",
                                case.list.display(),
                                svc.image,
                                svc.build.is_some()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 60, "only {checked} runnable fixtures");
}

/// The largest fixture loads (its load time is measured by `bench/plan.sh`, not here).
#[test]
fn largest_fixture_loads() {
    let root = fixtures();
    let mut lists = Vec::new();
    expected_lists(&root, &mut lists);
    let cases: Vec<Case> = lists.iter().filter_map(|l| case_of(&root, l)).collect();
    let size = |c: &Case| {
        c.files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum::<u64>()
    };
    let largest = cases.iter().max_by_key(|c| size(c)).expect("fixtures");
    let p = load_case(largest).unwrap();
    assert!(
        p.services.len() >= 5,
        "{}: {:?}",
        largest.list.display(),
        p.services.keys()
    );
}

/// Write a project of `n` services (each extending `base`) plus an override of all of them.
fn big_project(dir: &Path, n: usize) -> LoadOptions {
    let mut base = String::from("services:\n  base:\n    image: base\n    ports: ['80']\n");
    let mut over = String::from("services:\n");
    for i in 0..n {
        base += &format!("  s{i}:\n    extends: base\n    environment: [A=1]\n");
        over += &format!(
            "  s{i}:\n    environment: {{B: 2}}\n    ports: ['{}:80']\n",
            1000 + i
        );
    }
    std::fs::write(dir.join("compose.yaml"), base).unwrap();
    std::fs::write(dir.join("override.yaml"), over).unwrap();
    LoadOptions {
        files: vec![dir.join("compose.yaml"), dir.join("override.yaml")],
        environment: env(&[]),
        ..LoadOptions::default()
    }
}

/// 2000 services, each extending one base and overridden by a second file, merge correctly
/// (the time it takes, and that it grows linearly, is measured by `bench/plan.sh`).
#[test]
fn many_services_with_extends_and_overrides_load() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2000;
    let p = compose::load(&big_project(dir.path(), n)).unwrap();
    assert_eq!(p.services.len(), n + 1);
    for i in [0, n / 2, n - 1] {
        let s = format!("s{i}");
        assert_eq!(env_of(&p, &s, "A"), Some("1"));
        assert_eq!(env_of(&p, &s, "B"), Some("2"));
        assert_eq!(p.services[&s].ports.len(), 2);
    }
}

#[test]
fn run_files_lists_env_files_bind_sources_configs_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(
        d.join("compose.yaml"),
        "include:\n  - sub/compose.yaml\n\
         services:\n  web:\n    image: nginx:1\n    env_file: [web.env, {path: ./optional.env, required: false}]\n    \
         volumes:\n      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n      - data:/data\n      \
         - {type: bind, source: ./conf.d, target: /etc/nginx/conf.d}\n    \
         configs: [app_config]\n    secrets: [{source: db_pw}]\n  \
         db:\n    image: postgres:16\n    env_file: db.env\n    profiles: [off]\n\
         configs:\n  app_config: {file: ./app.conf}\n\
         secrets:\n  db_pw: {file: secrets/db.txt}\n  unused: {file: nope.txt}\n\
         volumes:\n  data: {}\n",
    )
    .unwrap();
    std::fs::write(d.join("sub/compose.yaml"), "services:\n  worker:\n    image: busybox:1\n    env_file: worker.env\n    volumes: [\"./work:/work\"]\n").unwrap();
    let p = compose::load(&LoadOptions {
        working_dir: Some(d.clone()),
        environment: env(&[]),
        ..LoadOptions::default()
    })
    .unwrap();
    let got: Vec<(String, String, Vec<String>, bool)> = p
        .run_files
        .iter()
        .map(|f| {
            let rel = f
                .path
                .strip_prefix(&d)
                .unwrap()
                .to_string_lossy()
                .to_string();
            (rel, f.kind.clone(), f.services.clone(), f.required)
        })
        .collect();
    let row = |path: &str, kind: &str, svc: &str, required: bool| {
        (
            path.to_string(),
            kind.to_string(),
            vec![svc.to_string()],
            required,
        )
    };
    assert_eq!(
        got,
        vec![
            row("app.conf", "config", "web", true),
            row("conf.d", "bind", "web", true),
            row("nginx.conf", "bind", "web", true),
            row("optional.env", "env_file", "web", false),
            row("secrets/db.txt", "secret", "web", true),
            row("sub/work", "bind", "worker", true),
            row("sub/worker.env", "env_file", "worker", true),
            row("web.env", "env_file", "web", true),
        ]
    );
}

/// `sources` names the file that set a service's image, not the last file that touched it.
#[test]
fn sources_name_the_file_that_set_the_image() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  web: {image: nginx:1.27}\n  db: {image: postgres:16}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("compose.override.yaml"),
        "services:\n  web: {environment: {A: \"1\"}}\n  db: {image: postgres:17}\n",
    )
    .unwrap();
    let p = compose::load(&LoadOptions {
        working_dir: Some(dir.path().to_path_buf()),
        environment: env(&[]),
        ..LoadOptions::default()
    })
    .unwrap();
    assert_eq!(
        p.services["web"].file,
        dir.path().join("compose.override.yaml")
    );
    assert_eq!(
        p.services["web"].image_file,
        dir.path().join("compose.yaml")
    );
    let plan = airlock::plan::plan(&p, &airlock::plan::PlanOptions::default()).unwrap();
    let sources: BTreeMap<String, Vec<String>> = plan
        .images
        .iter()
        .map(|i| (i.reference.to_string(), i.sources.clone()))
        .collect();
    assert_eq!(sources["nginx:1.27"], ["compose.yaml"]);
    assert_eq!(sources["postgres:17"], ["compose.override.yaml"]);
}
