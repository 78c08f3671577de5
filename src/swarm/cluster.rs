//! The Swarm as the engine reports it: whether this engine is a manager (`manager`), the
//! services of a stack with their tasks, each task's node, state and error (`stack`), the
//! logs of a service (`service_logs`), and the wait until every service has its replicas
//! running or its one-shot tasks completed (`wait_converged`). Read through the engine API
//! (bollard), so `DOCKER_HOST` is honoured as everywhere else.

use super::SwarmError;
use crate::engine::Engine;
use crate::progress::Reporter;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Docker's label naming a service's stack.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";

/// What a manager knows of its swarm.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwarmNode {
    pub node_id: String,
    pub node_addr: String,
    pub nodes: i64,
    pub managers: i64,
}

/// Fail unless the engine is an active Swarm manager.
pub async fn manager(engine: &Engine) -> crate::error::Result<SwarmNode> {
    let info = engine
        .docker
        .info()
        .await
        .map_err(|e| crate::engine::request_error(&engine.host, "GET /info", e))?;
    let swarm = info.swarm.unwrap_or_default();
    let state = swarm
        .local_node_state
        .map(|s| s.to_string())
        .unwrap_or_default();
    if state != "active" {
        return Err(SwarmError::NotInSwarm {
            host: engine.host.clone(),
            state: if state.is_empty() {
                "inactive".into()
            } else {
                state
            },
        }
        .into());
    }
    if swarm.control_available != Some(true) {
        return Err(SwarmError::NotManager {
            host: engine.host.clone(),
        }
        .into());
    }
    Ok(SwarmNode {
        node_id: swarm.node_id.unwrap_or_default(),
        node_addr: swarm.node_addr.unwrap_or_default(),
        nodes: swarm.nodes.unwrap_or(0),
        managers: swarm.managers.unwrap_or(0),
    })
}

/// One task of a service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskInfo {
    pub id: String,
    /// Replica number (replicated services).
    pub slot: Option<i64>,
    /// Host name of the node (its ID when the node is gone).
    pub node: String,
    /// The node's ID (two nodes may share a host name).
    pub node_id: String,
    /// `new` ... `running`, `complete`, `failed`, `rejected`, `shutdown`, `orphaned`.
    pub state: String,
    /// What Swarm wants: `running`, `shutdown`, `complete`.
    pub desired_state: String,
    /// The image the task runs (as in the service spec).
    pub image: String,
    /// The task's status message (`started`, `finished`, ...).
    pub message: String,
    /// Why it failed (`No such image: ...`, `task: non-zero exit (1)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// When the state was last changed (the engine's RFC 3339 time).
    pub timestamp: String,
}

/// A published port of a service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServicePort {
    pub target: i64,
    pub published: i64,
    pub protocol: String,
    /// `ingress` or `host`.
    pub mode: String,
}

/// One service of a stack.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceInfo {
    pub id: String,
    /// `<stack>_<service>`.
    pub name: String,
    /// The service's name in the compose file.
    pub service: String,
    /// `replicated` or `global`.
    pub mode: String,
    /// Replicas wanted (global: tasks Swarm wants running).
    pub desired: u64,
    /// Tasks of the current spec running now.
    pub running: u64,
    /// Tasks that completed (exit 0) with restart condition `none`.
    pub completed: u64,
    /// `deploy.restart_policy.condition: none`: a job that runs once.
    pub one_shot: bool,
    pub image: String,
    /// `updating`, `completed`, `rollback_completed`, `paused`, ... when an update ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_message: Option<String>,
    pub ports: Vec<ServicePort>,
    /// Newest first.
    pub tasks: Vec<TaskInfo>,
}

impl ServiceInfo {
    /// Running its replicas (or, for a job, every task completed), with no update in flight.
    pub fn converged(&self) -> bool {
        let updating = matches!(
            self.update_state.as_deref(),
            Some("updating" | "rollback_started")
        );
        let done = if self.one_shot {
            self.completed >= self.desired.max(1)
        } else {
            self.running >= self.desired
        };
        done && !updating
    }

    /// Failed or rejected tasks of the current image.
    pub fn failures(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.image == self.image && matches!(t.state.as_str(), "failed" | "rejected"))
            .count()
    }
}

fn api(
    engine: &Engine,
    action: &str,
) -> impl FnOnce(bollard::errors::Error) -> crate::error::Error {
    let host = engine.host.clone();
    let action = action.to_string();
    move |e| crate::engine::request_error(&host, action, e).into()
}

/// The services of stack `stack` (by `com.docker.stack.namespace`), sorted by name, with
/// their tasks (newest first).
pub async fn stack(engine: &Engine, stack: &str) -> crate::error::Result<Vec<ServiceInfo>> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{STACK_LABEL}={stack}")])]);
    let services = engine
        .docker
        .list_services(Some(bollard::query_parameters::ListServicesOptions {
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .map_err(api(engine, "GET /services"))?;
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let tasks = engine
        .docker
        .list_tasks(Some(bollard::query_parameters::ListTasksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(api(engine, "GET /tasks"))?;
    let nodes: HashMap<String, String> = engine
        .docker
        .list_nodes(None)
        .await
        .map_err(api(engine, "GET /nodes"))?
        .into_iter()
        .filter_map(|n| {
            Some((
                n.id?,
                n.description.and_then(|d| d.hostname).unwrap_or_default(),
            ))
        })
        .collect();
    let mut by_service: HashMap<String, Vec<TaskInfo>> = HashMap::new();
    for t in tasks {
        let Some(service_id) = t.service_id.clone() else {
            continue;
        };
        let status = t.status.clone().unwrap_or_default();
        let node_id = t.node_id.clone().unwrap_or_default();
        let container = status.container_status.clone().unwrap_or_default();
        by_service.entry(service_id).or_default().push(TaskInfo {
            id: t.id.clone().unwrap_or_default(),
            slot: t.slot,
            node: nodes
                .get(&node_id)
                .filter(|h| !h.is_empty())
                .cloned()
                .unwrap_or_else(|| node_id.clone()),
            node_id,
            state: status.state.map(|s| s.to_string()).unwrap_or_default(),
            desired_state: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
            image: t
                .spec
                .as_ref()
                .and_then(|s| s.container_spec.as_ref())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            message: status.message.clone().unwrap_or_default(),
            error: status.err.clone().filter(|e| !e.is_empty()),
            exit_code: container.exit_code,
            container_id: container.container_id.filter(|c| !c.is_empty()),
            timestamp: status.timestamp.map(|d| d.to_string()).unwrap_or_default(),
        });
    }
    let mut out = Vec::new();
    for s in services {
        let id = s.id.clone().unwrap_or_default();
        let spec = s.spec.clone().unwrap_or_default();
        let name = spec.name.clone().unwrap_or_default();
        let template = spec.task_template.clone().unwrap_or_default();
        let image = template
            .container_spec
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let one_shot = template
            .restart_policy
            .as_ref()
            .and_then(|r| r.condition)
            .is_some_and(|c| c.to_string() == "none");
        let mode = spec.mode.clone().unwrap_or_default();
        let global = mode.global.is_some();
        let mut tasks = by_service.remove(&id).unwrap_or_default();
        tasks.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
        let current: Vec<&TaskInfo> = tasks.iter().filter(|t| t.image == image).collect();
        let running = current
            .iter()
            .filter(|t| t.state == "running" && t.desired_state == "running")
            .count() as u64;
        let completed = current.iter().filter(|t| t.state == "complete").count() as u64;
        let desired = if global {
            tasks
                .iter()
                .filter(|t| t.desired_state == "running")
                .count() as u64
        } else {
            mode.replicated
                .as_ref()
                .and_then(|r| r.replicas)
                .unwrap_or(1)
                .max(0) as u64
        };
        let ports = s
            .endpoint
            .as_ref()
            .and_then(|e| e.ports.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                Some(ServicePort {
                    target: p.target_port?,
                    published: p.published_port?,
                    protocol: p
                        .protocol
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "tcp".into()),
                    mode: p
                        .publish_mode
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "ingress".into()),
                })
            })
            .collect();
        let update = s.update_status.clone();
        out.push(ServiceInfo {
            id,
            // `docker stack deploy` names each service `<stack>_<service>`.
            service: name
                .strip_prefix(&format!("{stack}_"))
                .unwrap_or(&name)
                .to_string(),
            name,
            mode: if global {
                "global".into()
            } else {
                "replicated".into()
            },
            desired,
            running,
            completed,
            one_shot,
            image,
            update_state: update
                .as_ref()
                .and_then(|u| u.state)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty()),
            update_message: update.and_then(|u| u.message).filter(|m| !m.is_empty()),
            ports,
            tasks,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The last `tail` lines of every task of service `id` (`docker service logs`).
pub async fn service_logs(
    engine: &Engine,
    id: &str,
    tail: usize,
) -> crate::error::Result<Vec<String>> {
    let opts = bollard::query_parameters::LogsOptions {
        stdout: true,
        stderr: true,
        tail: tail.to_string(),
        ..Default::default()
    };
    let mut stream = engine.docker.service_logs(id, Some(opts));
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => text.push_str(&String::from_utf8_lossy(chunk.as_ref())),
            Err(e) if crate::engine::is_not_found(&e) => break,
            Err(e) => return Err(api(engine, &format!("GET /services/{id}/logs"))(e)),
        }
    }
    Ok(text.lines().map(str::to_string).collect())
}

/// Poll the stack until every service (of `expected`, by compose name) is converged and
/// nothing changed for 2 s, or a service keeps failing (3 failed or rejected tasks of its
/// current image, none running), or `timeout`. True when every service converged.
pub async fn wait_converged(
    engine: &Engine,
    stack_name: &str,
    expected: &[String],
    timeout: Duration,
    reporter: &dyn Reporter,
) -> crate::error::Result<bool> {
    let mut settle = crate::up::wait::Settle::new(timeout);
    loop {
        let services = stack(engine, stack_name).await?;
        let by_name: BTreeMap<&str, &ServiceInfo> =
            services.iter().map(|s| (s.service.as_str(), s)).collect();
        let mut pending = Vec::new();
        let mut stuck = Vec::new();
        for name in expected {
            match by_name.get(name.as_str()) {
                None => pending.push(format!("{name} (no service)")),
                Some(s) if !s.converged() => {
                    if s.failures() >= 3 && s.running == 0 {
                        stuck.push(name.clone());
                    }
                    pending.push(format!(
                        "{name} ({}/{})",
                        s.running + s.completed,
                        s.desired
                    ));
                }
                Some(_) => {}
            }
        }
        let snapshot: String = services
            .iter()
            .flat_map(|s| s.tasks.iter().map(|t| format!("{}:{};", t.id, t.state)))
            .collect();
        if !stuck.is_empty() && stuck.len() == pending.len() {
            return Ok(false);
        }
        if let Some(done) = settle
            .observe(&pending, snapshot, crate::up::wait::HOLD, reporter)
            .await
        {
            return Ok(done);
        }
    }
}
