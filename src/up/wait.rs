//! Waiting for the project: until every service is settled, and whether every service is
//! up (running and healthy, or exited 0).

use crate::engine::Engine;
use crate::progress::Reporter;
use std::time::{Duration, Instant};

/// Poll the project's containers until every service is settled (running and healthy or
/// without healthcheck, exited, unhealthy, or crash-looping) and nothing changed for 2 s.
pub async fn wait_settled(
    engine: &Engine,
    project: &str,
    services: &[String],
    timeout: Duration,
    reporter: &dyn Reporter,
) -> crate::error::Result<bool> {
    let start = Instant::now();
    let mut last: Option<(Vec<String>, Instant)> = None;
    let mut last_line = String::new();
    loop {
        let containers = engine.containers(project).await?;
        let mut pending = Vec::new();
        for s in services {
            let cs: Vec<_> = containers
                .iter()
                .filter(|c| &c.service == s && !c.one_off)
                .collect();
            if cs.is_empty() {
                pending.push(format!("{s} (no container)"));
            }
            for c in cs {
                let settled = match c.state.as_str() {
                    "running" => !matches!(c.health.as_deref(), Some("starting")),
                    "exited" | "dead" => true,
                    "restarting" => c.restarts >= 2,
                    _ => false,
                };
                if !settled {
                    pending.push(format!(
                        "{s} ({}{})",
                        c.state,
                        c.health
                            .as_deref()
                            .map(|h| format!(", {h}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        let snapshot: Vec<String> = containers
            .iter()
            .map(|c| format!("{}:{}:{:?}:{}", c.name, c.state, c.health, c.restarts))
            .collect();
        if pending.is_empty() {
            match &last {
                Some((prev, since)) if prev == &snapshot => {
                    if since.elapsed() >= Duration::from_secs(2) {
                        return Ok(true);
                    }
                }
                _ => last = Some((snapshot, Instant::now())),
            }
        } else {
            last = None;
            let line = format!("waiting for {}", pending.join(", "));
            if line != last_line {
                reporter.step(&line);
                last_line = line;
            }
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every service has a container that is running (healthy or without healthcheck) or exited 0.
pub async fn all_up(
    engine: &Engine,
    project: &str,
    services: &[String],
) -> crate::error::Result<bool> {
    let containers = engine.containers(project).await?;
    Ok(services.iter().all(|s| {
        let cs: Vec<_> = containers
            .iter()
            .filter(|c| &c.service == s && !c.one_off)
            .collect();
        !cs.is_empty()
            && cs.iter().all(|c| {
                (c.state == "running" && matches!(c.health.as_deref(), None | Some("healthy")))
                    || (c.state == "exited" && c.exit_code == Some(0))
            })
    }))
}
