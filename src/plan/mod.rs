//! The image plan: turns a loaded Compose project into the exact set of images it needs and
//! the offline-readiness findings. This module owns the edge between Compose and the plan:
//! each service's `image:`, image-volume sources and `platform:` are parsed here, once, into
//! `Reference` and `Platform` values (`Target`), and nothing downstream parses them again.
//! `images` discovers the images (service images, build tags, Dockerfile bases, `COPY --from`
//! images, BuildKit frontends, `docker-image://` contexts); `findings` says what may break
//! offline. Reads `compose::Project`; read by `cli::plan`, `pack`, `lock`, `up` and `verify`.

mod findings;
mod images;
pub mod swarm;

pub use findings::{Finding, Level};
pub use images::{Kind, PlanImage};

use crate::compose::{Project, Service};
use crate::dockerfile;
use crate::platform::Platform;
use crate::reference::{Reference, ReferenceError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Settings of a plan. `Default`: target `linux/amd64`, builds run on the target platform.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Platform the offline host runs (`--platform`); a service's `platform:` overrides it for that service.
    pub platform: Platform,
    /// Platform of the engine that builds (`BUILDPLATFORM`); `None` = the service's target platform,
    /// which is what an offline host that builds for itself uses.
    pub build_platform: Option<Platform>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            platform: Platform::linux_amd64(),
            build_platform: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("service `{service}` in `{}{}`: {source}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    InvalidReference {
        service: String,
        file: PathBuf,
        /// Line in a Dockerfile.
        line: Option<usize>,
        reference: String,
        #[source]
        source: Box<ReferenceError>,
    },
    #[error("service `{service}`: `{}`: {source}", file.display())]
    Dockerfile {
        service: String,
        file: PathBuf,
        #[source]
        source: Box<dockerfile::Error>,
    },
    #[error("service `{service}`: failed to read the Dockerfile `{}`", path.display())]
    Read {
        service: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("service `{service}` in `{}`: {source}", file.display())]
    Platform {
        service: String,
        file: PathBuf,
        #[source]
        source: crate::platform::PlatformError,
    },
}

impl crate::error::Classify for Error {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Input
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub project: String,
    /// Target platform of the plan.
    #[serde(serialize_with = "display")]
    pub platform: Platform,
    pub images: Vec<PlanImage>,
    pub findings: Vec<Finding>,
    /// Host files the services read at run time, and whether a bundle carries them.
    pub run_files: Vec<crate::run_files::Assessed>,
}

fn display<S: serde::Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Plan {
    /// Images that must come from a registry (everything but build tags and local bases), one per
    /// normalised reference.
    pub fn pulled(&self) -> Vec<&PlanImage> {
        let mut seen = BTreeSet::new();
        self.images
            .iter()
            .filter(|i| i.kind.pulled() && seen.insert(i.normalized()))
            .collect()
    }
}

/// An enabled service with its Compose strings parsed: the edge between Compose and the plan.
struct Target<'a> {
    service: &'a Service,
    /// `image:`.
    image: Option<Reference>,
    /// Sources of `volumes: - type: image`.
    volume_images: Vec<Reference>,
    /// The service's `platform:`, else the plan's.
    platform: Platform,
    /// Whether `platform` came from the service.
    declared_platform: bool,
    /// `build.platforms`: a build makes the image for each, so it needs their bases.
    build_platforms: Vec<Platform>,
}

impl<'a> Target<'a> {
    fn parse(service: &'a Service, opts: &PlanOptions) -> Result<Self, Error> {
        let declared = match &service.platform {
            Some(p) => Some(p.parse::<Platform>().map_err(|source| Error::Platform {
                service: service.name.clone(),
                file: service.file.clone(),
                source,
            })?),
            None => None,
        };
        let image = match &service.image {
            Some(i) => Some(parse_ref(i, service, &service.file)?),
            None => None,
        };
        let volume_images = service
            .image_volumes
            .iter()
            .map(|r| parse_ref(r, service, &service.file))
            .collect::<Result<_, _>>()?;
        let build_platforms = service
            .build
            .iter()
            .flat_map(|b| b.platforms.iter())
            .map(|p| {
                p.parse::<Platform>().map_err(|source| Error::Platform {
                    service: service.name.clone(),
                    file: service.file.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Target {
            service,
            build_platforms,
            image,
            volume_images,
            declared_platform: declared.is_some(),
            platform: declared.unwrap_or_else(|| opts.platform.clone()),
        })
    }
}

fn parse_ref(reference: &str, service: &Service, file: &Path) -> Result<Reference, Error> {
    Reference::parse(reference).map_err(|source| Error::InvalidReference {
        service: service.name.clone(),
        file: file.to_path_buf(),
        line: None,
        reference: reference.to_string(),
        source: Box::new(source),
    })
}

/// `path` relative to the project directory, for messages and `sources`.
fn rel(project: &Project, path: &Path) -> String {
    path.strip_prefix(&project.directory)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Build the plan of `project`.
pub fn plan(project: &Project, opts: &PlanOptions) -> Result<Plan, Error> {
    let targets = project
        .services
        .values()
        .map(|s| Target::parse(s, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let discovery = images::discover(project, &targets, opts)?;
    let run_files = crate::run_files::assess(project);
    let findings = findings::collect(project, &targets, &discovery, &run_files, opts);
    Ok(Plan {
        project: project.name.clone(),
        platform: opts.platform.clone(),
        images: discovery.images,
        findings,
        run_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Build, DependsOn, Mount};

    fn dir() -> PathBuf {
        std::env::temp_dir()
    }

    fn service(name: &str, image: Option<&str>) -> Service {
        Service {
            name: name.to_string(),
            image: image.map(str::to_string),
            file: dir().join("compose.yaml"),
            ..Service::default()
        }
    }

    fn project(services: Vec<Service>) -> Project {
        Project {
            name: "demo".to_string(),
            directory: dir(),
            services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
            ..Project::default()
        }
    }

    fn inline(name: &str, image: Option<&str>, dockerfile: &str) -> Service {
        Service {
            build: Some(Build {
                dockerfile_inline: Some(dockerfile.to_string()),
                context: Some(dir()),
                ..Build::default()
            }),
            ..service(name, image)
        }
    }

    fn kinds(p: &Plan) -> Vec<String> {
        p.images
            .iter()
            .map(|i| {
                format!(
                    "{} {} {}",
                    i.kind.as_str(),
                    i.reference,
                    i.services.join(",")
                )
            })
            .collect()
    }

    fn codes(p: &Plan) -> Vec<String> {
        p.findings
            .iter()
            .map(|f| format!("{} {}", f.code, f.service.clone().unwrap_or_default()))
            .collect()
    }

    fn run(services: Vec<Service>) -> Plan {
        plan(&project(services), &PlanOptions::default()).unwrap()
    }

    #[test]
    fn service_images_and_build_tags() {
        let p = run(vec![
            service("db", Some("postgres:16")),
            service("cache", Some("redis:7")),
            inline("web", Some("acme/web:1"), "FROM python:3.12\n"),
        ]);
        assert_eq!(
            kinds(&p),
            [
                "build-tag acme/web:1 web",
                "image postgres:16 db",
                "build-from python:3.12 web",
                "image redis:7 cache"
            ]
        );
        let pg = p
            .images
            .iter()
            .find(|i| i.reference.original() == "postgres:16")
            .unwrap();
        assert_eq!(pg.normalized(), "docker.io/library/postgres:16");
        assert_eq!(pg.pinned(), crate::reference::Pinned::Tag);
    }

    #[test]
    fn shared_image_lists_every_service() {
        let p = run(vec![
            service("a", Some("redis:7")),
            service("b", Some("redis:7")),
        ]);
        assert_eq!(kinds(&p), ["image redis:7 a,b"]);
    }

    #[test]
    fn build_from_local() {
        let p = run(vec![
            inline("base", Some("acme/base:1"), "FROM debian:12\n"),
            inline(
                "app",
                None,
                "FROM acme/base:1\nCOPY --from=demo-tools /x /\n",
            ),
            inline("tools", None, "FROM busybox:1.36\n"),
        ]);
        assert_eq!(
            kinds(&p),
            [
                "build-tag acme/base:1 base",
                "build-from-local acme/base:1 app",
                "build-from busybox:1.36 tools",
                "build-from debian:12 base",
                "build-from-local demo-tools app",
            ]
        );
        assert_eq!(p.pulled().len(), 2);
    }

    #[test]
    fn dockerfile_kinds_and_build_args() {
        let mut s = inline(
            "app",
            None,
            "# syntax=docker/dockerfile:1.7\nARG BASE=alpine:3.19\nFROM ${BASE} AS dev\nFROM dev AS envs\nCOPY --from=tools:1 / /\nFROM nginx:1.27\nCOPY --from=busybox:1.36 / /\n",
        );
        let b = s.build.as_mut().unwrap();
        b.args.insert("BASE".into(), Some("debian:12".into()));
        b.args.insert("UNSET".into(), None);
        b.target = Some("dev".into());
        let p = run(vec![s]);
        assert_eq!(
            kinds(&p),
            [
                "build-from-unused-stage busybox:1.36 app",
                "build-from debian:12 app",
                "build-syntax docker/dockerfile:1.7 app",
                "build-from-unused-stage nginx:1.27 app",
                "build-from-unused-stage tools:1 app",
            ]
        );
        assert!(codes(&p).contains(&"unused-stage-base app".to_string()));
        assert!(codes(&p).contains(&"built-service app".to_string()));
    }

    #[test]
    fn copy_from_in_needed_stage() {
        let p = run(vec![inline(
            "app",
            None,
            "FROM alpine:3\nRUN --mount=from=cache:1,target=/c true\n",
        )]);
        assert_eq!(
            kinds(&p),
            ["build-from alpine:3 app", "build-copy-from cache:1 app"]
        );
    }

    #[test]
    fn dockerfile_from_context() {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::create_dir(tmp.path().join("app")).unwrap();
        fs_err::write(tmp.path().join("app/Dockerfile.prod"), "FROM node:22\n").unwrap();
        let mut s = service("app", None);
        s.build = Some(Build {
            context: Some(tmp.path().join("app")),
            dockerfile: Some("Dockerfile.prod".into()),
            ..Build::default()
        });
        let mut p = project(vec![s]);
        p.directory = tmp.path().to_path_buf();
        let plan = plan(&p, &PlanOptions::default()).unwrap();
        assert_eq!(kinds(&plan), ["build-from node:22 app"]);
        assert_eq!(plan.images[0].sources, ["app/Dockerfile.prod:1"]);
    }

    #[test]
    fn endless_dockerfile_is_refused_at_the_limit() {
        let mut zero = service("z", None);
        zero.build = Some(Build {
            context: Some(PathBuf::from("/dev")),
            dockerfile: Some("zero".into()),
            ..Build::default()
        });
        let err = plan(&project(vec![zero]), &PlanOptions::default()).unwrap_err();
        let text = format!("{err} {:?}", std::error::Error::source(&err));
        assert!(
            text.contains("/dev/zero") && text.contains("are refused"),
            "{text}"
        );
    }

    #[test]
    fn missing_dockerfile_and_remote_context_are_findings() {
        let mut missing = service("a", None);
        missing.build = Some(Build {
            context: Some(dir().join("airlock-no-such-dir")),
            ..Build::default()
        });
        let mut remote = service("b", None);
        remote.build = Some(Build {
            context: None,
            context_raw: "https://github.com/acme/app.git#main".into(),
            ..Build::default()
        });
        let p = run(vec![missing, remote]);
        assert!(p.images.is_empty());
        let f = p
            .findings
            .iter()
            .find(|f| f.code == "dockerfile-missing")
            .unwrap();
        assert_eq!(f.level, Level::Error);
        assert!(f.message.contains("airlock-no-such-dir"), "{}", f.message);
        assert!(codes(&p).contains(&"remote-build-context b".to_string()));
        // Neither says "its base images are in this plan".
        assert!(
            !p.findings.iter().any(|f| f.code == "built-service"),
            "{:?}",
            codes(&p)
        );
    }

    #[test]
    fn additional_contexts() {
        let mut s = inline(
            "app",
            None,
            "FROM base\nFROM alpine:3 AS x\nCOPY --from=src / /\n",
        );
        let b = s.build.as_mut().unwrap();
        b.additional_contexts
            .insert("base".into(), "docker-image://debian:12".into());
        b.additional_contexts.insert("src".into(), "./src".into());
        b.additional_contexts
            .insert("extra".into(), "docker-image://busybox:1.36".into());
        let p = run(vec![s]);
        assert_eq!(
            kinds(&p),
            [
                "build-from alpine:3 app",
                "build-from busybox:1.36 app",
                "build-from-unused-stage debian:12 app"
            ]
        );
    }

    #[test]
    fn image_volumes() {
        let mut s = service("app", Some("nginx:1.27"));
        s.image_volumes = vec!["acme/assets:3".into()];
        assert_eq!(
            kinds(&run(vec![s])),
            ["image acme/assets:3 app", "image nginx:1.27 app"]
        );
    }

    #[test]
    fn invalid_reference_is_an_error_naming_the_service() {
        let err = plan(
            &project(vec![service("web", Some("Nginx:1"))]),
            &PlanOptions::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`web`") && text.contains("compose.yaml") && text.contains("Nginx:1"),
            "{text}"
        );
        let err = plan(
            &project(vec![inline("app", None, "ARG B=UPPER\nFROM ${B}\n")]),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("(dockerfile_inline):2`: invalid image reference `UPPER`"),
            "{err}"
        );
        let err = plan(
            &project(vec![inline("app", None, "ARG B\nFROM ${B}\n")]),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Dockerfile { .. }), "{err}");
    }

    #[test]
    fn tag_findings() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let p = run(vec![
            service("a", Some("nginx")),
            service("b", Some("nginx:latest")),
            service("c", Some(&format!("redis@{d}"))),
            inline("d", Some("acme/d"), "FROM alpine\n"),
        ]);
        assert_eq!(
            codes(&p)
                .into_iter()
                .filter(|c| !c.starts_with("built") && !c.starts_with("stateful"))
                .collect::<Vec<_>>(),
            [
                "digest-pinned c",
                "moving-tag a",
                "moving-tag b",
                "moving-tag d"
            ]
        );
    }

    #[test]
    fn pull_policy_and_platform() {
        let mut a = service("a", Some("nginx:1"));
        a.pull_policy = Some("always".into());
        let mut b = service("b", Some("nginx:1"));
        b.pull_policy = Some("every_12h".into());
        let mut c = service("c", Some("nginx:1"));
        c.pull_policy = Some("missing".into());
        let mut d = service("d", Some("nginx:1"));
        d.platform = Some("linux/arm64".into());
        let mut e = service("e", Some("nginx:1"));
        e.platform = Some("linux/x86_64".into());
        let p = run(vec![a, b, c, d, e]);
        assert_eq!(
            codes(&p),
            ["platform-mismatch d", "pull-policy a", "pull-policy b"]
        );
        let platforms: Vec<String> = p.images[0]
            .platforms
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        let mut bad = service("x", Some("nginx:1"));
        bad.platform = Some("linux".into());
        assert!(matches!(
            plan(&project(vec![bad]), &PlanOptions::default()),
            Err(Error::Platform { .. })
        ));
    }

    fn mount(kind: &str, target: &str) -> Mount {
        Mount {
            kind: kind.into(),
            source: Some("data".into()),
            target: target.into(),
            read_only: false,
        }
    }

    #[test]
    fn stateful_without_volume() {
        let mut ok = service("db", Some("mariadb:10.6"));
        ok.volumes = vec![mount("volume", "/var/lib/mysql")];
        let mut tmpfs = service("db2", Some("mysql:8"));
        tmpfs.volumes = vec![mount("tmpfs", "/var/lib/mysql")];
        let none = service("pg", Some("postgres:16"));
        let mut pgdata = service("pg2", Some("postgres:16"));
        pgdata
            .environment
            .insert("PGDATA".into(), Some("/pg".into()));
        pgdata.volumes = vec![mount("bind", "/pg")];
        let mut sub = service("pg3", Some("docker.io/library/postgres:16"));
        sub.volumes = vec![mount("volume", "/var/lib/postgresql/data/pgdata")];
        let mut bitnami = service("r", Some("bitnami/redis:7"));
        bitnami.volumes = vec![mount("volume", "/bitnami/redis/data")];
        let cache = service("c", Some("redis:7-alpine"));
        let p = run(vec![ok, tmpfs, none, pgdata, sub, bitnami, cache]);
        assert_eq!(
            codes(&p),
            [
                "stateful-no-volume c",
                "stateful-no-volume db2",
                "stateful-no-volume pg"
            ]
        );
        assert!(
            p.findings[0].fix.contains("c-data:/data"),
            "{}",
            p.findings[0].fix
        );
    }

    #[test]
    fn undeclared_dependency() {
        let db = service("db", Some("mariadb:10.6"));
        let cache = service("redis-cache", Some("redis:7"));
        let mut web = service("web", Some("acme/web:1"));
        web.environment.insert("DB_HOST".into(), Some("db".into()));
        web.environment.insert("DATABASE".into(), Some("db".into()));
        web.environment
            .insert("CACHE".into(), Some("redis://redis-cache:6379/0".into()));
        let mut worker = service("worker", Some("acme/web:1"));
        worker.depends_on.insert(
            "web".into(),
            DependsOn {
                condition: "service_started".into(),
                required: true,
                restart: false,
            },
        );
        worker.command = vec![
            "wait-for".into(),
            "--host".into(),
            "db".into(),
            "redis-cache-2:1".into(),
        ];
        let mut job = service("job", Some("acme/web:1"));
        job.command = vec!["run".into(), "--db-host=db".into()];
        let mut plain = service("plain", Some("acme/web:1"));
        plain
            .environment
            .insert("MYSQL_DATABASE".into(), Some("db".into()));
        plain
            .environment
            .insert("NAME".into(), Some("mydb:1".into()));
        let started = DependsOn {
            condition: "service_started".into(),
            required: true,
            restart: false,
        };
        let mut mid = service("mid", Some("acme/web:1"));
        mid.depends_on.insert("db".into(), started.clone());
        let mut top = service("top", Some("acme/web:1"));
        top.depends_on.insert("mid".into(), started);
        top.environment.insert("DB_HOST".into(), Some("db".into()));
        let p = run(vec![db, cache, web, worker, job, plain, mid, top]);
        let found: Vec<String> = codes(&p)
            .into_iter()
            .filter(|c| c.starts_with("undeclared"))
            .collect();
        assert_eq!(
            found,
            [
                "undeclared-dependency job",
                "undeclared-dependency web",
                "undeclared-dependency web",
                "undeclared-dependency worker"
            ]
        );
    }

    #[test]
    fn loader_warnings_become_findings() {
        let mut p = project(vec![service("a", Some("nginx:1"))]);
        p.warnings.push(crate::compose::Warning {
            code: "unset-variable".into(),
            message: "`TAG` is not set; using an empty string".into(),
            file: Some(dir().join("compose.yaml")),
            service: Some("a".into()),
        });
        let plan = plan(&p, &PlanOptions::default()).unwrap();
        let f = &plan.findings[0];
        assert_eq!(
            (f.level, f.code.as_str()),
            (Level::Warning, "unset-variable")
        );
        assert!(f.message.contains("in `compose.yaml`"), "{}", f.message);
    }

    #[test]
    fn json_shape() {
        let p = run(vec![service("db", Some("redis:6.2-alpine"))]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["project"], "demo");
        let img = &v["images"][0];
        assert_eq!(img["ref"], "redis:6.2-alpine");
        assert_eq!(img["normalized"], "docker.io/library/redis:6.2-alpine");
        assert_eq!(img["kind"], "image");
        assert_eq!(img["services"], serde_json::json!(["db"]));
        assert_eq!(img["pinned"], "tag");
        let f = &v["findings"][0];
        assert_eq!(
            (
                f["level"].as_str(),
                f["code"].as_str(),
                f["service"].as_str()
            ),
            (Some("warning"), Some("stateful-no-volume"), Some("db"))
        );
        assert!(f["fix"].is_string() && f["message"].is_string());
    }

    fn started() -> DependsOn {
        DependsOn {
            condition: "service_started".into(),
            required: true,
            restart: false,
        }
    }

    /// dify: services that name each other, and one that waits for the other: no advice makes
    /// a `depends_on` cycle, even followed in full; a shell's `-c` is not a setting name.
    #[test]
    fn dependency_advice_never_makes_a_cycle() {
        let mut api = service("api", Some("acme/api:1"));
        api.environment
            .insert("PLUGIN_URL".into(), Some("http://plugin:5002".into()));
        let mut plugin = service("plugin", Some("acme/plugin:1"));
        plugin
            .environment
            .insert("API_URL".into(), Some("http://api:5001".into()));
        let mut worker = service("worker", Some("acme/api:1"));
        worker
            .environment
            .insert("API_URL".into(), Some("http://api:5001".into()));
        let mut db = service("db", Some("postgres:16"));
        db.volumes.push(mount("volume", "/var/lib/postgresql/data"));
        // db is waited for by api, and names api (a callback URL): advising db -> api is a cycle.
        db.environment
            .insert("CALLBACK".into(), Some("http://api:5001/hook".into()));
        api.depends_on.insert("db".into(), started());
        // worker's command reaches api through `sh -c`.
        worker.command = vec!["sh".into(), "-c".into(), "wait-for api:5001 && run".into()];
        let p = run(vec![api, plugin, worker, db]);
        let advice: Vec<(String, String)> = p
            .findings
            .iter()
            .filter(|f| f.code == "undeclared-dependency")
            .map(|f| (f.service.clone().unwrap(), f.fix.clone()))
            .collect();
        assert_eq!(
            advice,
            [
                (
                    "api".to_string(),
                    "add `depends_on: [plugin]` to `api`".to_string()
                ),
                (
                    "worker".to_string(),
                    "add `depends_on: [api]` to `worker`".to_string()
                ),
            ]
        );
        let worker = p
            .findings
            .iter()
            .find(|f| f.service.as_deref() == Some("worker"))
            .unwrap();
        assert!(
            worker.message.contains("(in `API_URL`)") || worker.message.contains("(in `command`)"),
            "{}",
            worker.message
        );
    }

    /// etcd `--data-dir /etcd` with /etcd bind-mounted: the data is on a volume.
    #[test]
    fn data_directory_set_by_a_flag() {
        let mut etcd = service("etcd", Some("quay.io/coreos/etcd:v3.5.9"));
        etcd.command = vec!["etcd".into(), "--data-dir".into(), "/etcd".into()];
        etcd.volumes.push(mount("bind", "/etcd"));
        let mut eq = service("etcd2", Some("quay.io/coreos/etcd:v3.5.9"));
        eq.command = vec!["etcd".into(), "--data-dir=/etcd".into()];
        eq.volumes.push(mount("volume", "/etcd"));
        let mut bare = service("etcd3", Some("quay.io/coreos/etcd:v3.5.9"));
        bare.command = vec!["etcd".into(), "--data-dir".into(), "/etcd".into()];
        let p = run(vec![etcd, eq, bare]);
        let found: Vec<String> = codes(&p)
            .into_iter()
            .filter(|c| c.starts_with("stateful"))
            .collect();
        assert_eq!(found, ["stateful-no-volume etcd3"]);
        assert!(p.findings.iter().any(|f| f.message.contains("`/etcd`")));
    }

    /// `.:/app` is the project directory itself: named `.`, not an absolute path "outside".
    #[test]
    fn bind_mount_of_the_project_directory() {
        let mut p = project(vec![service("app", Some("node:22"))]);
        p.run_files.push(crate::compose::RunFile {
            kind: "bind".into(),
            path: p.directory.clone(),
            services: vec!["app".into()],
            required: true,
        });
        let plan = plan(&p, &PlanOptions::default()).unwrap();
        let f = plan
            .findings
            .iter()
            .find(|f| f.code.starts_with("run-file"))
            .unwrap();
        assert_eq!(f.code, "run-file-not-carried");
        assert!(
            f.message.starts_with("`.` (bind mount of app)"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("project directory itself"),
            "{}",
            f.message
        );
        assert_eq!(plan.run_files[0].path, ".");
    }

    /// Every service behind a profile: say so, with the flag to use.
    #[test]
    fn every_service_behind_a_profile() {
        let mut p = project(vec![]);
        p.disabled_services = vec!["web".into(), "worker".into()];
        let plan = plan(&p, &PlanOptions::default()).unwrap();
        assert!(plan.images.is_empty());
        let f = &plan.findings[0];
        assert_eq!(f.code, "all-services-disabled");
        assert!(f.fix.contains("--profile"), "{}", f.fix);
    }

    /// A service that mounts docker.sock and names images in its environment pulls them at run time.
    #[test]
    fn runtime_images_of_a_docker_socket_service() {
        let mut ex = service("executor", Some("openruntimes/executor:0.6"));
        ex.volumes.push(Mount {
            kind: "bind".into(),
            source: Some("/var/run/docker.sock".into()),
            target: "/var/run/docker.sock".into(),
            read_only: false,
        });
        ex.environment.insert(
            "OPR_EXECUTOR_IMAGES".into(),
            Some("openruntimes/node:v4-18.0,openruntimes/php:v4-8.1".into()),
        );
        ex.environment
            .insert("OPR_EXECUTOR_IMAGE_PULL".into(), Some("enabled".into()));
        ex.environment.insert(
            "DOCKER_HUB_URL".into(),
            Some("https://hub.docker.com".into()),
        );
        let mut plain = service("web", Some("nginx:1"));
        plain
            .environment
            .insert("IMAGE".into(), Some("acme/x:1".into()));
        let p = run(vec![ex, plain]);
        let f: Vec<&Finding> = p
            .findings
            .iter()
            .filter(|f| f.code == "runtime-image")
            .collect();
        assert_eq!(f.len(), 1, "{:?}", codes(&p));
        assert_eq!(f[0].service.as_deref(), Some("executor"));
        assert_eq!(
            f[0].fix,
            "add them to the bundle: `airlock pack --image openruntimes/node:v4-18.0 --image openruntimes/php:v4-8.1`"
        );
    }

    /// `build.platforms`: the build makes the image for each platform, so the plan holds the
    /// bases of each (a `TARGETARCH` base differs per platform).
    #[test]
    fn build_platforms_need_the_bases_of_each() {
        let mut s = inline(
            "app",
            Some("acme/app:1"),
            "ARG TARGETARCH\nFROM --platform=$BUILDPLATFORM golang:1.22 AS tools\nFROM base-${TARGETARCH}:1\nCOPY --from=tools /x /x\n",
        );
        s.build.as_mut().unwrap().platforms = vec!["linux/amd64".into(), "linux/arm64".into()];
        let p = run(vec![s]);
        let found: Vec<String> = p
            .images
            .iter()
            .filter(|i| i.kind == Kind::BuildFrom && i.reference.original().starts_with("base-"))
            .map(|i| {
                let ps: Vec<String> = i.platforms.iter().map(|p| p.to_string()).collect();
                format!("{} {}", i.reference, ps.join(","))
            })
            .collect();
        assert_eq!(
            found,
            ["base-amd64:1 linux/amd64", "base-arm64:1 linux/arm64"]
        );
        let mut bad = inline("bad", None, "FROM busybox\n");
        bad.build.as_mut().unwrap().platforms = vec!["linux".into()];
        assert!(matches!(
            plan(&project(vec![bad]), &PlanOptions::default()),
            Err(Error::Platform { .. })
        ));
    }

    /// `additional_contexts: {base: service:other}`: the base is the image `other` builds.
    #[test]
    fn service_context_is_a_local_build() {
        let mut s = inline("app", Some("acme/app:1"), "FROM base\nRUN true\n");
        s.build
            .as_mut()
            .unwrap()
            .additional_contexts
            .insert("base".into(), "service:builder".into());
        let builder = inline("builder", None, "FROM debian:12\n");
        let p = run(vec![s, builder]);
        assert!(
            kinds(&p).contains(&"build-from-local demo-builder app".to_string()),
            "{:?}",
            kinds(&p)
        );
        assert!(
            !kinds(&p).iter().any(|k| k.contains(" base ")),
            "{:?}",
            kinds(&p)
        );
    }
}
