//! Waiting for the project: until every service is settled, and whether every service is
//! up (running and healthy, or exited 0).

use crate::engine::Engine;
use crate::progress::Reporter;
use std::time::{Duration, Instant};

/// Poll the project's containers until every service is settled (running and healthy or
/// without healthcheck, exited, unhealthy, or crash-looping) and, unless every container
/// reports healthy, nothing changed for 2 s.
pub async fn wait_settled(
    engine: &Engine,
    project: &str,
    services: &[String],
    timeout: Duration,
    reporter: &dyn Reporter,
) -> crate::error::Result<bool> {
    let mut settle = Settle::new(timeout);
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
        // Every container reporting healthy is settled as it stands; otherwise (a container
        // without healthcheck, or one that exited and may be restarted) nothing may change
        // for 2 s, to catch one that dies right after starting.
        let mine: Vec<_> = containers
            .iter()
            .filter(|c| !c.one_off && services.contains(&c.service))
            .collect();
        let all_healthy = !mine.is_empty()
            && mine
                .iter()
                .all(|c| c.state == "running" && c.health.as_deref() == Some("healthy"));
        let hold = if all_healthy { Duration::ZERO } else { HOLD };
        if let Some(done) = settle.observe(&pending, snapshot, hold, reporter).await {
            return Ok(done);
        }
    }
}

/// How long nothing may change before a project without healthchecks counts as settled.
pub const HOLD: Duration = Duration::from_secs(2);

/// The tail of a wait loop, polled every 500 ms: settled once nothing is pending and the
/// snapshot has not changed for `hold` (at once when `hold` is zero); the pending list
/// reported when it changes; given up at the timeout.
pub struct Settle<T> {
    start: Instant,
    timeout: Duration,
    last: Option<(T, Instant)>,
    last_line: String,
}

impl<T: PartialEq> Settle<T> {
    pub fn new(timeout: Duration) -> Self {
        Settle {
            start: Instant::now(),
            timeout,
            last: None,
            last_line: String::new(),
        }
    }

    /// One poll's outcome: `Some(true)` settled, `Some(false)` timed out, `None` poll again
    /// (after the 500 ms pause this call takes).
    pub async fn observe(
        &mut self,
        pending: &[String],
        snapshot: T,
        hold: Duration,
        reporter: &dyn Reporter,
    ) -> Option<bool> {
        if pending.is_empty() && hold.is_zero() {
            return Some(true);
        }
        if pending.is_empty() {
            match &self.last {
                Some((prev, since)) if prev == &snapshot => {
                    if since.elapsed() >= hold {
                        return Some(true);
                    }
                }
                _ => self.last = Some((snapshot, Instant::now())),
            }
        } else {
            self.last = None;
            let line = format!("waiting for {}", pending.join(", "));
            if line != self.last_line {
                reporter.step(&line);
                self.last_line = line;
            }
        }
        if self.start.elapsed() >= self.timeout {
            return Some(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        None
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
