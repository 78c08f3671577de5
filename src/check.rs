//! The validation checklist of a running Compose project: owns `check`, which reads each
//! service's containers from the engine (state, health, restarts, exit code, OOM kills),
//! scans their logs for known failure signatures, probes HTTP endpoints (given URLs, or the
//! first published loopback port of a frontend-like service) and evaluates the guide's
//! production checklist rows. Uses `engine` and the `plan` findings of `compose`
//! projects; called by `cli::check` and `up`.

use crate::engine::{ContainerInfo, Engine, EngineError};
use std::collections::BTreeMap;
use std::time::Duration;

/// Options of `check`, with their defaults.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Compose project name (the `com.docker.compose.project` label).
    pub project: String,
    /// Services the project defines (enabled ones); `None` = whatever containers exist.
    pub services: Option<Vec<String>>,
    /// One-shot services (a `service_completed_successfully` dependency of another service,
    /// or `restart: "no"` jobs): exit 0 is success.
    pub one_shot: Vec<String>,
    /// Image references the services use as Compose will resolve them (after overrides).
    pub images: BTreeMap<String, String>,
    /// URLs to probe; empty = probe the first published loopback port of a frontend-like service.
    pub http: Vec<String>,
    /// Log lines read per container (default 200).
    pub log_tail: usize,
    /// Lines shown for a failing service (default 20).
    pub show_lines: usize,
    /// How long each HTTP probe keeps retrying (default 10 s).
    pub probe_timeout: Duration,
    /// Plan findings of the project (for the depends_on and volume rows), when known.
    pub findings: Vec<crate::plan::Finding>,
}

impl CheckOptions {
    /// Check options for a loaded project: services, one-shot jobs, images as Compose resolves them.
    pub fn for_project(
        project: &crate::compose::Project,
        findings: Vec<crate::plan::Finding>,
        image_overrides: &BTreeMap<String, String>,
    ) -> CheckOptions {
        let mut images = BTreeMap::new();
        let mut one_shot = Vec::new();
        for (name, svc) in &project.services {
            if let Some(img) = image_overrides.get(name).or(svc.image.as_ref()) {
                images.insert(name.clone(), img.clone());
            }
            for (dep, d) in &svc.depends_on {
                if d.condition == "service_completed_successfully" && !one_shot.contains(dep) {
                    one_shot.push(dep.clone());
                }
            }
        }
        CheckOptions {
            project: project.name.clone(),
            services: Some(project.services.keys().cloned().collect()),
            one_shot,
            images,
            findings,
            ..CheckOptions::default()
        }
    }
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            project: String::new(),
            services: None,
            one_shot: Vec::new(),
            images: BTreeMap::new(),
            http: Vec::new(),
            log_tail: 200,
            show_lines: 20,
            probe_timeout: Duration::from_secs(10),
            findings: Vec::new(),
        }
    }
}

/// A known failure signature in logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    /// Stable code: `dns-upstream`, `dns`, `pull-denied`, `connection-refused`, `oom`.
    pub code: &'static str,
    /// How many lines matched.
    pub count: usize,
    /// The first matching line.
    pub line: String,
    pub hint: &'static str,
}

struct Pattern {
    code: &'static str,
    needles: &'static [&'static str],
    /// Matches needed before it counts (a single refused connection during start-up is normal).
    min: usize,
    hint: &'static str,
}

const PATTERNS: &[Pattern] = &[
    Pattern {
        code: "dns-upstream",
        needles: &["host not found in upstream"],
        min: 1,
        hint: "nginx cannot resolve an upstream: is that service defined, running and on the same network?",
    },
    Pattern {
        code: "dns",
        needles: &[
            "no such host",
            "bad address",
            "name or service not known",
            "temporary failure in name resolution",
            "could not resolve host",
            "getaddrinfo",
        ],
        min: 1,
        hint: "a host name does not resolve: check the service name, its network, and that it is running",
    },
    Pattern {
        code: "pull-denied",
        needles: &[
            "pull access denied",
            "manifest unknown",
            "failed to resolve reference",
            "error pulling image",
        ],
        min: 1,
        hint: "something tried to pull an image: load every image first (`airlock load`) and use the exact references",
    },
    Pattern {
        code: "connection-refused",
        needles: &["connection refused", "econnrefused"],
        min: 3,
        hint: "a dependency keeps refusing connections: is it running and listening? add depends_on with a healthcheck",
    },
    Pattern {
        code: "oom",
        needles: &[
            "out of memory",
            "oom-kill",
            "oomkilled",
            "cannot allocate memory",
        ],
        min: 1,
        hint: "the container ran out of memory: raise its memory limit",
    },
];

/// Failure signatures in `lines`.
pub fn scan_logs(lines: &[String]) -> Vec<Signature> {
    let mut out = Vec::new();
    for p in PATTERNS {
        let matching: Vec<&String> = lines
            .iter()
            .filter(|l| {
                let lower = l.to_ascii_lowercase();
                p.needles.iter().any(|n| lower.contains(n))
            })
            .collect();
        // `host not found in upstream` also matches nothing else; keep `dns` from repeating it.
        if matching.len() >= p.min
            && !(p.code == "dns" && out.iter().any(|s: &Signature| s.code == "dns-upstream"))
        {
            out.push(Signature {
                code: p.code,
                count: matching.len(),
                line: matching[0].trim().to_string(),
                hint: p.hint,
            });
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// A service's verdict: its log signatures become problems; any problem fails it, else any
/// warning warns. `problems` ends as the problems, then the signatures, then the warnings.
pub fn verdict(problems: &mut Vec<String>, signatures: &[Signature], warns: Vec<String>) -> Status {
    for s in signatures {
        problems.push(format!(
            "log signature `{}` ({}x): {}",
            s.code, s.count, s.line
        ));
    }
    let status = if !problems.is_empty() {
        Status::Fail
    } else if !warns.is_empty() {
        Status::Warn
    } else {
        Status::Ok
    };
    problems.extend(warns);
    status
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceCheck {
    pub service: String,
    pub status: Status,
    pub containers: Vec<ContainerInfo>,
    /// Why the service is not ok.
    pub problems: Vec<String>,
    pub signatures: Vec<Signature>,
    /// The last log lines, for failing services.
    pub last_lines: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    pub url: String,
    /// The service whose port it is (auto-probes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub status: Option<u16>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One row of the production checklist.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Stable code: `images-present`, `no-pull-needed`, `depends-on`, `state-volumes`, `logs-clean`, `http`.
    pub code: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub project: String,
    pub ok: bool,
    pub services: Vec<ServiceCheck>,
    pub probes: Vec<Probe>,
    pub checklist: Vec<Row>,
}

const FRONTEND_WORDS: &[&str] = &[
    "frontend", "front", "web", "nginx", "proxy", "ui", "gateway", "caddy", "traefik", "http",
    "app",
];

/// Whether a service looks like the entry point users browse to.
pub fn frontend_like(service: &str, ports: &[crate::engine::PublishedPort]) -> bool {
    let s = service.to_ascii_lowercase();
    FRONTEND_WORDS.iter().any(|w| s.contains(w))
        || ports
            .iter()
            .any(|p| matches!(p.container_port, 80 | 443 | 8080 | 8000 | 3000))
}

/// Evaluate one service from its containers and their logs.
async fn service_check(
    engine: &Engine,
    service: &str,
    containers: Vec<ContainerInfo>,
    opts: &CheckOptions,
) -> Result<ServiceCheck, EngineError> {
    let mut problems = Vec::new();
    let mut warns = Vec::new();
    let mut signatures: Vec<Signature> = Vec::new();
    let mut tail: Vec<String> = Vec::new();
    let one_shot = opts.one_shot.iter().any(|s| s == service);
    if containers.is_empty() {
        problems.push("no container: the service was never created (did `up` run with this project name and profiles?)".to_string());
    }
    for c in &containers {
        let lines = engine.logs(&c.id, opts.log_tail).await?;
        for s in scan_logs(&lines) {
            if !signatures.iter().any(|x| x.code == s.code) {
                signatures.push(s);
            }
        }
        match c.state.as_str() {
            "running" => match c.health.as_deref() {
                Some("unhealthy") => problems.push(format!(
                    "`{}` is unhealthy{}",
                    c.name,
                    c.health_log
                        .as_deref()
                        .map(|l| format!(": {}", l.lines().last().unwrap_or(l)))
                        .unwrap_or_default()
                )),
                Some("starting") => warns.push(format!("`{}` health check still starting", c.name)),
                _ => {}
            },
            "restarting" => problems.push(format!(
                "`{}` is restarting (crash loop, {} restarts, last exit code {})",
                c.name,
                c.restarts,
                c.exit_code
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "?".into())
            )),
            "exited" | "dead" => match c.exit_code {
                Some(0) if one_shot || c.restarts == 0 => {}
                Some(code) => problems.push(format!("`{}` exited with code {code}", c.name)),
                None => problems.push(format!("`{}` is {}", c.name, c.state)),
            },
            "created" => problems.push(format!(
                "`{}` was created but never started (a dependency failed?)",
                c.name
            )),
            "paused" => warns.push(format!("`{}` is paused", c.name)),
            other => problems.push(format!("`{}` is {other}", c.name)),
        }
        if c.state == "running" && c.restarts >= 3 {
            problems.push(format!("`{}` restarted {} times", c.name, c.restarts));
        } else if c.restarts > 0 && c.state == "running" {
            warns.push(format!("`{}` restarted {} times", c.name, c.restarts));
        }
        if c.oom_killed {
            problems.push(format!("`{}` was killed for running out of memory", c.name));
        }
        if tail.is_empty() || c.state != "running" {
            let from = lines.len().saturating_sub(opts.show_lines);
            tail = lines[from..].to_vec();
        }
    }
    let status = verdict(&mut problems, &signatures, warns);
    if status == Status::Ok {
        tail.clear();
    }
    Ok(ServiceCheck {
        service: service.to_string(),
        status,
        containers,
        problems,
        signatures,
        last_lines: tail,
    })
}

/// GET `url`, retrying connection errors until `timeout`; 2xx and 3xx are success.
pub async fn probe(url: &str, timeout: Duration) -> Probe {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return Probe {
                url: url.to_string(),
                service: None,
                status: None,
                ok: false,
                error: Some(e.to_string()),
            };
        }
    };
    let start = std::time::Instant::now();
    loop {
        match client.get(url).send().await {
            Ok(resp) => {
                let code = resp.status();
                let ok = code.is_success() || code.is_redirection();
                if ok || start.elapsed() >= timeout {
                    return Probe {
                        url: url.to_string(),
                        service: None,
                        status: Some(code.as_u16()),
                        ok,
                        error: None,
                    };
                }
            }
            Err(e) if start.elapsed() >= timeout => {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg = format!("{msg}: {s}");
                    src = s.source();
                }
                return Probe {
                    url: url.to_string(),
                    service: None,
                    status: None,
                    ok: false,
                    error: Some(msg),
                };
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Run the checklist against the engine.
pub async fn check(engine: &Engine, opts: &CheckOptions) -> Result<CheckReport, EngineError> {
    let containers = engine.containers(&opts.project).await?;
    let mut by_service: BTreeMap<String, Vec<ContainerInfo>> = BTreeMap::new();
    for c in containers.into_iter().filter(|c| !c.one_off) {
        by_service.entry(c.service.clone()).or_default().push(c);
    }
    if let Some(services) = &opts.services {
        for s in services {
            by_service.entry(s.clone()).or_default();
        }
    }
    let mut services = Vec::new();
    for (name, cs) in by_service {
        services.push(service_check(engine, &name, cs, opts).await?);
    }

    // HTTP probes
    let mut targets: Vec<(String, Option<String>)> =
        opts.http.iter().map(|u| (u.clone(), None)).collect();
    if targets.is_empty() {
        let auto = services.iter().find_map(|s| {
            let ports: Vec<_> = s
                .containers
                .iter()
                .filter(|c| c.state == "running")
                .flat_map(|c| c.ports.iter().cloned())
                .collect();
            if !frontend_like(&s.service, &ports) {
                return None;
            }
            ports
                .iter()
                .find(|p| {
                    p.protocol == "tcp"
                        && matches!(
                            p.host_ip.as_str(),
                            "127.0.0.1" | "0.0.0.0" | "" | "::" | "::1"
                        )
                })
                .map(|p| {
                    let scheme = if p.container_port == 443 {
                        "https"
                    } else {
                        "http"
                    };
                    (
                        format!("{scheme}://127.0.0.1:{}/", p.host_port),
                        Some(s.service.clone()),
                    )
                })
        });
        targets.extend(auto);
    }
    let mut probes = Vec::new();
    for (url, service) in targets {
        let mut p = probe(&url, opts.probe_timeout).await;
        p.service = service;
        probes.push(p);
    }

    // Checklist
    let mut checklist = Vec::new();
    let mut missing = Vec::new();
    for (service, reference) in &opts.images {
        if engine.image_id(reference).await?.is_none() {
            missing.push(format!("{service}: {reference}"));
        }
    }
    let container_images_missing: Vec<String> = {
        let mut v = Vec::new();
        for s in &services {
            if s.containers.is_empty() && !opts.images.contains_key(&s.service) {
                v.push(format!("{}: no container", s.service));
            }
        }
        v
    };
    checklist.push(Row {
        code: "images-present",
        title: "every image is on the engine",
        status: if missing.is_empty() && container_images_missing.is_empty() {
            Status::Ok
        } else {
            Status::Fail
        },
        detail: if missing.is_empty() && container_images_missing.is_empty() {
            format!(
                "{} service images present",
                opts.images.len().max(services.len())
            )
        } else {
            [missing.clone(), container_images_missing]
                .concat()
                .join(", ")
        },
    });
    let pulled: Vec<String> = services
        .iter()
        .filter(|s| s.signatures.iter().any(|x| x.code == "pull-denied"))
        .map(|s| s.service.clone())
        .collect();
    checklist.push(Row {
        code: "no-pull-needed",
        title: "nothing needs a registry",
        status: if missing.is_empty() && pulled.is_empty() {
            Status::Ok
        } else {
            Status::Fail
        },
        detail: if missing.is_empty() && pulled.is_empty() {
            "every reference resolves locally".into()
        } else {
            format!("would pull: {}", [missing, pulled].concat().join(", "))
        },
    });
    let finding_row = |code: &'static str, title: &'static str, finding: &str, fine: &str| {
        let hits: Vec<String> = opts
            .findings
            .iter()
            .filter(|f| f.code == finding)
            .map(|f| f.message.clone())
            .collect();
        Row {
            code,
            title,
            status: if hits.is_empty() {
                Status::Ok
            } else {
                Status::Warn
            },
            detail: if hits.is_empty() {
                fine.to_string()
            } else {
                hits.join("; ")
            },
        }
    };
    if opts.services.is_some() {
        checklist.push(finding_row(
            "depends-on",
            "depends_on where services talk to each other",
            "undeclared-dependency",
            "every service that names another depends on it",
        ));
        checklist.push(finding_row(
            "state-volumes",
            "volumes for stateful services",
            "stateful-no-volume",
            "stateful services keep their data in volumes",
        ));
    }
    let noisy: Vec<String> = services
        .iter()
        .filter(|s| !s.signatures.is_empty())
        .map(|s| s.service.clone())
        .collect();
    checklist.push(Row {
        code: "logs-clean",
        title: "logs free of failure signatures",
        status: if noisy.is_empty() {
            Status::Ok
        } else {
            Status::Fail
        },
        detail: if noisy.is_empty() {
            "no known failure signature".into()
        } else {
            format!("signatures in: {}", noisy.join(", "))
        },
    });
    checklist.push(Row {
        code: "http",
        title: "HTTP endpoints answer 2xx/3xx",
        status: if probes.iter().all(|p| p.ok) {
            if probes.is_empty() {
                Status::Warn
            } else {
                Status::Ok
            }
        } else {
            Status::Fail
        },
        detail: if probes.is_empty() {
            "nothing to probe (no --http URL and no published frontend port)".into()
        } else {
            probes
                .iter()
                .map(|p| {
                    format!(
                        "{} -> {}",
                        p.url,
                        p.status
                            .map(|s| s.to_string())
                            .or(p.error.clone())
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    });
    let ok = services.iter().all(|s| s.status != Status::Fail)
        && checklist.iter().all(|r| r.status != Status::Fail)
        && !services.is_empty();
    Ok(CheckReport {
        project: opts.project.clone(),
        ok,
        services,
        probes,
        checklist,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(lines: &[&str]) -> Vec<&'static str> {
        scan_logs(&lines.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .into_iter()
            .map(|s| s.code)
            .collect()
    }

    #[test]
    fn nginx_upstream() {
        assert_eq!(
            codes(&[
                "2026/11/27 [emerg] 1#1: host not found in upstream \"backend:8080\" in /etc/nginx/conf.d/default.conf:3"
            ]),
            ["dns-upstream"]
        );
    }
    #[test]
    fn busybox_wget_dns() {
        assert_eq!(codes(&["wget: bad address 'backend:8080'"]), ["dns"]);
    }
    #[test]
    fn go_no_such_host() {
        assert_eq!(
            codes(&["dial tcp: lookup db on 127.0.0.11:53: no such host"]),
            ["dns"]
        );
    }
    #[test]
    fn one_refusal_is_normal() {
        assert!(codes(&["connect: connection refused"]).is_empty());
        assert_eq!(
            codes(&["connection refused", "Connection refused", "ECONNREFUSED"]),
            ["connection-refused"]
        );
    }
    #[test]
    fn pull_denied() {
        assert_eq!(
            codes(&["Error response from daemon: pull access denied for foo"]),
            ["pull-denied"]
        );
    }
    #[test]
    fn oom() {
        assert_eq!(codes(&["fatal error: runtime: out of memory"]), ["oom"]);
    }
    #[test]
    fn clean() {
        assert!(codes(&["listening on :8080", "GET / 200"]).is_empty());
    }
}
