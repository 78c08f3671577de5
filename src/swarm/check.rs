//! `check --swarm`: a deployed stack checked as `check` checks a Compose project. Each
//! service's desired and running replicas (or completed one-shot tasks), its update state,
//! its recent tasks with their node, state and error, `docker service logs` scanned for the
//! failure signatures of `check::scan_logs`, HTTP probes through published ports, and the
//! `airlock serve` the nodes pull from (a stack whose registry is down runs until a task is
//! restarted or placed on a node without the image).

use super::cluster::{self, ServiceInfo, TaskInfo};
use super::serving::{self, Serving};
use crate::check::{Probe, Signature, Status};
use crate::engine::Engine;
use std::time::Duration;

/// What to check.
#[derive(Debug, Clone)]
pub struct SwarmCheckOptions {
    pub stack: String,
    /// Services the stack file defines (compose names); `None`: whatever the stack has.
    pub services: Option<Vec<String>>,
    /// The `airlock serve` the stack's images come from, when `up --swarm` started one.
    pub serving: Option<Serving>,
    /// The registry the images were pushed to (`--registry`), when not served.
    pub registry: Option<String>,
    /// URLs to probe; empty: the first published port of a frontend-like service.
    pub http: Vec<String>,
    /// Log lines read per service (default 200).
    pub log_tail: usize,
    /// Lines shown for a failing service (default 20).
    pub show_lines: usize,
    /// Tasks listed per service (default 5, newest first).
    pub tasks_shown: usize,
    /// How long each HTTP probe keeps retrying (default 10 s).
    pub probe_timeout: Duration,
}

impl Default for SwarmCheckOptions {
    /// No stack, every service, no serve, default probe, 200 log lines, 20 shown, 5 tasks, 10 s.
    fn default() -> Self {
        SwarmCheckOptions {
            stack: String::new(),
            services: None,
            serving: None,
            registry: None,
            http: Vec::new(),
            log_tail: 200,
            show_lines: 20,
            tasks_shown: 5,
            probe_timeout: Duration::from_secs(10),
        }
    }
}

/// One service, checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwarmServiceCheck {
    pub service: String,
    pub status: Status,
    /// `replicated` or `global`.
    pub mode: String,
    pub desired: u64,
    pub running: u64,
    pub completed: u64,
    pub one_shot: bool,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_state: Option<String>,
    /// The newest tasks, with their node, state and error.
    pub tasks: Vec<TaskInfo>,
    pub problems: Vec<String>,
    pub signatures: Vec<Signature>,
    /// The last log lines, for failing services.
    pub last_lines: Vec<String>,
}

/// The registry the stack pulls from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistryCheck {
    /// `serve` (airlock serve on the manager) or `registry` (`--registry`).
    pub kind: String,
    /// `host:port` in the image names.
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub up: bool,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SwarmReport {
    pub stack: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryCheck>,
    pub services: Vec<SwarmServiceCheck>,
    pub probes: Vec<Probe>,
}

fn task_line(t: &TaskInfo) -> String {
    let mut s = format!("task {} on {}: {}", short(&t.id), t.node, t.state);
    if let Some(e) = &t.error {
        s.push_str(&format!(": {e}"));
    } else if !t.message.is_empty() && t.state != "running" {
        s.push_str(&format!(" ({})", t.message));
    }
    s
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

async fn service_check(
    engine: &Engine,
    s: &ServiceInfo,
    opts: &SwarmCheckOptions,
) -> crate::error::Result<SwarmServiceCheck> {
    let mut problems = Vec::new();
    let mut warns = Vec::new();
    let failed: Vec<&TaskInfo> = s
        .tasks
        .iter()
        .filter(|t| matches!(t.state.as_str(), "failed" | "rejected"))
        .collect();
    if s.one_shot {
        if s.completed < s.desired.max(1) {
            if failed.iter().any(|t| t.image == s.image) {
                problems.push(format!(
                    "one-shot job completed {}/{}",
                    s.completed,
                    s.desired.max(1)
                ));
            } else {
                warns.push(format!(
                    "one-shot job still running ({}/{} completed)",
                    s.completed,
                    s.desired.max(1)
                ));
            }
        }
    } else if s.running < s.desired {
        problems.push(format!("{}/{} replicas running", s.running, s.desired));
    }
    match s.update_state.as_deref() {
        Some("paused" | "rollback_started" | "rollback_paused" | "rollback_completed") => problems
            .push(format!(
                "update {}{}",
                s.update_state.as_deref().unwrap_or_default(),
                s.update_message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )),
        Some("updating") => warns.push("update in progress".into()),
        _ => {}
    }
    // The newest failures, with their node: why the replicas are missing.
    let current_failed: Vec<&&TaskInfo> = failed
        .iter()
        .filter(|t| t.image == s.image)
        .take(3)
        .collect();
    if !problems.is_empty() {
        problems.extend(current_failed.iter().map(|t| task_line(t)));
    } else if !current_failed.is_empty() {
        warns.push(format!(
            "{} task(s) failed before: {}",
            failed.iter().filter(|t| t.image == s.image).count(),
            task_line(current_failed[0])
        ));
    }
    let lines = cluster::service_logs(engine, &s.id, opts.log_tail).await?;
    let signatures = crate::check::scan_logs(&lines);
    let status = crate::check::verdict(&mut problems, &signatures, warns);
    let last_lines = if status == Status::Ok {
        Vec::new()
    } else {
        lines[lines.len().saturating_sub(opts.show_lines)..].to_vec()
    };
    Ok(SwarmServiceCheck {
        service: s.service.clone(),
        status,
        mode: s.mode.clone(),
        desired: s.desired,
        running: s.running,
        completed: s.completed,
        one_shot: s.one_shot,
        image: s.image.clone(),
        update_state: s.update_state.clone(),
        tasks: s.tasks.iter().take(opts.tasks_shown).cloned().collect(),
        problems,
        signatures,
        last_lines,
    })
}

/// Check stack `opts.stack` on the manager `engine` talks to.
pub async fn check(engine: &Engine, opts: &SwarmCheckOptions) -> crate::error::Result<SwarmReport> {
    let stack = cluster::stack(engine, &opts.stack).await?;
    let mut services = Vec::new();
    for s in &stack {
        services.push(service_check(engine, s, opts).await?);
    }
    for name in opts.services.iter().flatten() {
        if !services.iter().any(|s| &s.service == name) {
            services.push(SwarmServiceCheck {
                service: name.clone(),
                status: Status::Fail,
                mode: String::new(),
                desired: 0,
                running: 0,
                completed: 0,
                one_shot: false,
                image: String::new(),
                update_state: None,
                tasks: Vec::new(),
                problems: vec![format!(
                    "no service `{}_{name}`: the stack was not deployed, or without this service",
                    opts.stack
                )],
                signatures: Vec::new(),
                last_lines: Vec::new(),
            });
        }
    }
    services.sort_by(|a, b| a.service.cmp(&b.service));

    let registry = match (&opts.serving, &opts.registry) {
        (Some(sv), _) => {
            let own = sv.pid != 0;
            let running = !own || serving::alive(sv.pid);
            let up = running && serving::answers(&sv.listen).await;
            Some(RegistryCheck {
                kind: "serve".into(),
                address: sv.advertise.clone(),
                pid: own.then_some(sv.pid),
                up,
                status: if up { Status::Ok } else { Status::Fail },
                detail: if up {
                    format!(
                        "airlock serve answers on {} ({} bundle(s))",
                        sv.listen,
                        sv.bundles.len()
                    )
                } else {
                    format!(
                        "airlock serve {}on {} is down: the stack runs, but a task restarted or placed on a node without its image cannot pull it; run `airlock up --swarm` again (it restarts serve), or install the unit (`airlock up --swarm --print-unit`). Log: {}",
                        if own {
                            format!("(pid {}) ", sv.pid)
                        } else {
                            String::new()
                        },
                        sv.listen,
                        sv.log.display()
                    )
                },
            })
        }
        (None, Some(r)) => {
            let up = serving::answers(r).await || answers_https(r).await;
            Some(RegistryCheck {
                kind: "registry".into(),
                address: r.clone(),
                pid: None,
                up,
                status: if up { Status::Ok } else { Status::Fail },
                detail: if up {
                    format!("registry {r} answers")
                } else {
                    format!(
                        "registry {r} does not answer: tasks restarted or placed on another node cannot pull"
                    )
                },
            })
        }
        (None, None) => None,
    };

    // HTTP probes: the given URLs, else the first published port of a frontend-like service.
    let mut targets: Vec<(String, Option<String>)> =
        opts.http.iter().map(|u| (u.clone(), None)).collect();
    if targets.is_empty()
        && let Some((url, svc)) = stack.iter().find_map(|s| {
            let p = s
                .ports
                .iter()
                .find(|p| p.protocol == "tcp" && p.published > 0)?;
            let looks = crate::check::frontend_like(
                &s.service,
                &[crate::engine::PublishedPort {
                    host_ip: String::new(),
                    host_port: u16::try_from(p.published).ok()?,
                    container_port: u16::try_from(p.target).ok()?,
                    protocol: p.protocol.clone(),
                }],
            );
            let scheme = if p.target == 443 { "https" } else { "http" };
            looks.then(|| {
                (
                    format!("{scheme}://127.0.0.1:{}/", p.published),
                    s.service.clone(),
                )
            })
        })
    {
        targets.push((url, Some(svc)));
    }
    let mut probes = Vec::new();
    for (url, service) in targets {
        let mut p = crate::check::probe(&url, opts.probe_timeout).await;
        p.service = service;
        probes.push(p);
    }
    let ok = !services.is_empty()
        && services.iter().all(|s| s.status != Status::Fail)
        && registry.as_ref().is_none_or(|r| r.up)
        && probes.iter().all(|p| p.ok);
    Ok(SwarmReport {
        stack: opts.stack.clone(),
        ok,
        registry,
        services,
        probes,
    })
}

async fn answers_https(addr: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
    else {
        return false;
    };
    client
        .get(format!("https://{addr}/v2/"))
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() < 500)
}
