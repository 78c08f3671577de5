//! Swarm findings (`airlock plan --swarm`, and the refusal of `airlock up --swarm`): what
//! `docker stack deploy` ignores, refuses or runs differently from Compose in a project, each
//! with one line on what to do. Errors are what `up --swarm` refuses before deploying
//! anything (`swarm-unsupported`); warnings and infos say what changes. Reads the loaded
//! project only; the keys airlock drops when it renders the stack file are the ones
//! `swarm::render` drops (`DROPPED`), so that the two never disagree.

use super::{Finding, Level};
use crate::compose::Project;

/// Service keys the stack file (compose file format 3.8) has no place for, or that Swarm
/// ignores: `swarm::render` leaves them out, and `plan --swarm` names them.
pub const DROPPED: &[(&str, &str)] = &[
    (
        "build",
        "Swarm runs images only: the image the bundle carries is deployed",
    ),
    (
        "container_name",
        "Swarm names tasks `<stack>_<service>.<slot>.<id>`; other services reach it by its service name",
    ),
    (
        "depends_on",
        "Swarm starts every service at once and ignores start order and conditions: give services a healthcheck and a restart policy so they wait by retrying",
    ),
    (
        "restart",
        "Swarm ignores `restart:`; airlock writes it as `deploy.restart_policy` (no -> none, on-failure -> on-failure, always/unless-stopped -> any)",
    ),
    (
        "pull_policy",
        "Swarm nodes pull by digest from the registry airlock serves or pushed to",
    ),
    (
        "platform",
        "Swarm places tasks by the image's platform; use deploy.placement.constraints (node.platform.arch) to pin",
    ),
    (
        "profiles",
        "profiles are applied when airlock renders the stack file",
    ),
    (
        "env_file",
        "its variables are written into `environment:` of the stack file",
    ),
    (
        "links",
        "Swarm ignores links: services reach each other by service name on a shared network",
    ),
    ("external_links", "Swarm ignores external_links"),
    ("mem_limit", "use deploy.resources.limits.memory"),
    ("memswap_limit", "not supported by Swarm"),
    (
        "mem_reservation",
        "use deploy.resources.reservations.memory",
    ),
    ("cpus", "use deploy.resources.limits.cpus"),
    ("cpu_shares", "use deploy.resources"),
    ("cpuset", "not supported by Swarm"),
    ("oom_kill_disable", "not supported by Swarm"),
    ("oom_score_adj", "not supported by Swarm"),
    (
        "pids_limit",
        "use deploy.resources.limits.pids (newer engines)",
    ),
    ("scale", "use deploy.replicas"),
];

/// Service keys the stack file keeps as written (compose file format 3.8).
pub const KEPT: &[&str] = &[
    "cap_add",
    "cap_drop",
    "cgroup_parent",
    "command",
    "credential_spec",
    "deploy",
    "devices",
    "dns",
    "dns_search",
    "domainname",
    "entrypoint",
    "expose",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "init",
    "ipc",
    "isolation",
    "labels",
    "logging",
    "mac_address",
    "networks",
    "pid",
    "privileged",
    "read_only",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "working_dir",
];

/// Keys rendered from the typed service (`image`, `environment`, `ports`, `volumes`), as
/// Swarm objects (`configs`, `secrets`: `swarm::objects`), or reported as unsupported
/// (`network_mode`, ...).
const HANDLED: &[&str] = &[
    "image",
    "environment",
    "ports",
    "volumes",
    "network_mode",
    "configs",
    "secrets",
    "develop",
    "annotations",
    "attach",
    "post_start",
    "pre_stop",
    "provider",
    "models",
    "gpus",
    "use_api_socket",
    "storage_opt",
    "volumes_from",
    "uts",
    "runtime",
    "blkio_config",
    "device_cgroup_rules",
    "group_add",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpuset",
    "label_file",
    "lifecycle_hooks",
];

fn finding(level: Level, code: &str, service: &str, message: String, fix: &str) -> Finding {
    Finding {
        level,
        code: code.to_string(),
        service: Some(service.to_string()),
        message,
        fix: fix.to_string(),
    }
}

/// What Swarm ignores, refuses or does differently in `project`, service by service.
/// The names of the configs or secrets a service's `configs:`/`secrets:` uses (short or long
/// syntax).
pub fn used_objects(used: Option<&serde_json::Value>) -> Vec<&str> {
    match used {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                serde_json::Value::String(s) => Some(s.as_str()),
                serde_json::Value::Object(o) => o.get("source").and_then(|s| s.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What `up --swarm` does with a config or secret a service uses: a `file:` becomes a Swarm
/// object named by its content (`swarm::objects`); an `external` one must exist; one from
/// `environment:` or `content:`, or not defined at all, cannot be deployed.
fn object_finding(
    stack: &str,
    service: &str,
    kind: &str,
    source: &str,
    def: Option<&serde_json::Value>,
) -> Finding {
    let sections = format!("{kind}s");
    let Some(def) = def else {
        return finding(
            Level::Error,
            "swarm-unsupported",
            service,
            format!("`{service}` uses {kind} `{source}`, which no top-level `{sections}:` defines"),
            &format!("define it under the top-level `{sections}:` with `file:`"),
        );
    };
    let external = def
        .get("external")
        .is_some_and(|e| e.as_bool() == Some(true) || e.is_object());
    let explicit = def.get("name").and_then(|n| n.as_str());
    if external {
        return finding(
            Level::Info,
            "swarm-object",
            service,
            format!(
                "`{service}` uses the external {kind} `{}`: it must exist in the swarm before the deploy",
                explicit.unwrap_or(source)
            ),
            &format!("create it on a manager: docker {kind} create NAME FILE"),
        );
    }
    match def.get("file").and_then(|f| f.as_str()) {
        Some(file) => match explicit {
            Some(n) => finding(
                Level::Warning,
                "swarm-object",
                service,
                format!(
                    "`{service}` uses {kind} `{source}` (file `{file}`) named `{n}`: Swarm {sections} cannot change, so a deploy that changes the file under the same name fails"
                ),
                &format!(
                    "remove `name:` from the {kind}: airlock then names it by its content, and an upgrade creates a new one"
                ),
            ),
            None => finding(
                Level::Info,
                "swarm-object",
                service,
                format!(
                    "`{service}` uses {kind} `{source}` (file `{file}`): `up --swarm` creates the Swarm {kind} `{stack}_{source}_<first 12 hex digits of its sha256>`, named by content, so an upgrade that changes the file creates a new one (Swarm {sections} cannot change)"
                ),
                &format!("nothing to do; old versions stay in the swarm until `docker {kind} rm`"),
            ),
        },
        None => {
            let from = ["environment", "content"]
                .into_iter()
                .find(|k| def.get(*k).is_some())
                .unwrap_or("no `file:`");
            finding(
                Level::Error,
                "swarm-unsupported",
                service,
                format!(
                    "`{service}` uses {kind} `{source}` from `{from}`, which `docker stack deploy` cannot create"
                ),
                &format!("write the value to a file in the project and give the {kind} `file:`"),
            )
        }
    }
}

pub fn findings(project: &Project) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, svc) in &project.services {
        let raw = svc.raw.as_object();
        if svc.build.is_some() {
            out.push(finding(
                Level::Warning,
                "swarm-build",
                name,
                format!("`{name}` has `build:`, which `docker stack deploy` ignores"),
                "set `image:` and pack the built image (`airlock pack` builds it); `up --swarm` deploys the image the bundle carries",
            ));
        }
        if svc.image.is_none() && svc.build.is_none() {
            out.push(finding(
                Level::Error,
                "swarm-unsupported",
                name,
                format!("`{name}` has no `image:`; a Swarm service needs one"),
                "set `image:`",
            ));
        }
        if let Some(c) = &svc.container_name {
            out.push(finding(
                Level::Warning,
                "swarm-container-name",
                name,
                format!("`{name}` sets `container_name: {c}`, which Swarm ignores (tasks are named `<stack>_{name}.<slot>.<id>`)"),
                "reach the service by its service name (`{name}`) instead of the container name; remove container_name",
            ));
        }
        if !svc.depends_on.is_empty() {
            let deps: Vec<String> = svc
                .depends_on
                .iter()
                .map(|(d, c)| format!("{d} ({})", c.condition))
                .collect();
            out.push(finding(
                Level::Warning,
                "swarm-depends-on",
                name,
                format!(
                    "`{name}` depends on {}: Swarm ignores the order and the conditions and starts every service at once",
                    deps.join(", ")
                ),
                "make the service retry until its dependencies answer (deploy.restart_policy, a healthcheck); one-shot jobs need `restart: \"no\"` or deploy.restart_policy.condition: none",
            ));
        }
        let policy = svc
            .raw
            .get("deploy")
            .and_then(|d| d.get("restart_policy"))
            .is_some();
        match (&svc.restart, policy) {
            (Some(r), false) => out.push(finding(
                Level::Info,
                "swarm-restart",
                name,
                format!(
                    "`{name}` has `restart: {r}`, which Swarm ignores; the stack file gets deploy.restart_policy.condition: {}",
                    restart_condition(r)
                ),
                "set deploy.restart_policy yourself to choose delay, attempts and window",
            )),
            (Some(r), true) => out.push(finding(
                Level::Info,
                "swarm-restart",
                name,
                format!("`{name}` has both `restart: {r}` and deploy.restart_policy; Swarm uses deploy.restart_policy"),
                "remove `restart:`",
            )),
            (None, false) => out.push(finding(
                Level::Info,
                "swarm-restart",
                name,
                format!("`{name}` sets no restart policy: Swarm restarts its tasks whenever they exit (condition: any), where Compose would not restart them"),
                "one-shot jobs need `restart: \"no\"` or deploy.restart_policy.condition: none",
            )),
            (None, true) => {}
        }
        for m in &svc.volumes {
            match m.kind.as_str() {
                "bind" => out.push(finding(
                    Level::Warning,
                    "swarm-bind-mount",
                    name,
                    format!(
                        "`{name}` bind-mounts host path `{}`: it must exist on every node that may run the service, or its tasks are rejected there",
                        m.source.as_deref().unwrap_or("?")
                    ),
                    "copy the path to every node, pin the service to the nodes that have it (deploy.placement.constraints: node.hostname == ...), or use a volume or a config",
                )),
                "volume" | "tmpfs" => {}
                other => out.push(finding(
                    Level::Error,
                    "swarm-unsupported",
                    name,
                    format!("`{name}` mounts a `{other}` volume at `{}`, which the stack file format has no place for", m.target),
                    "use a named volume or a bind mount",
                )),
            }
            if m.kind == "volume" && m.source.is_some() {
                out.push(finding(
                    Level::Info,
                    "swarm-local-volume",
                    name,
                    format!(
                        "`{name}` keeps `{}` in a named volume: with the local driver each node has its own copy, so a task rescheduled on another node starts empty",
                        m.source.as_deref().unwrap_or("?")
                    ),
                    "pin stateful services to one node (deploy.placement.constraints) or use a shared volume driver",
                ));
            }
        }
        for p in &svc.ports {
            let mode = port_mode(&svc.raw, p.target);
            let published = p.published.as_deref().unwrap_or("(random)");
            if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                out.push(finding(
                    Level::Warning,
                    "swarm-port-mode",
                    name,
                    format!("`{name}` publishes port {published} on `{ip}` only; Swarm cannot bind an address and publishes it on every address of every node"),
                    "firewall the port, or publish it in `mode: host` and constrain the service to the node that should answer",
                ));
            }
            if mode == "host" {
                out.push(finding(
                    Level::Info,
                    "swarm-port-mode",
                    name,
                    format!("`{name}` publishes {published}->{} in host mode: only nodes running a task answer, and two replicas cannot share a node", p.target),
                    "use deploy.mode: global or placement constraints so each node runs one task",
                ));
            } else {
                out.push(finding(
                    Level::Info,
                    "swarm-port-mode",
                    name,
                    format!("`{name}` publishes {published}->{} through the ingress routing mesh: every node answers and forwards to a task (the mesh needs the overlay ports 7946 and 4789 open between nodes)", p.target),
                    "publish in `mode: host` (long port syntax) to answer directly on the node running the task",
                ));
            }
        }
        if let Some(nm) = svc.raw.get("network_mode").and_then(|v| v.as_str()) {
            out.push(finding(
                Level::Error,
                "swarm-unsupported",
                name,
                format!("`{name}` has `network_mode: {nm}`, which Swarm does not support"),
                "attach the service to a network instead (networks:)",
            ));
        }
        for (kind, used, defined) in [
            (
                "config",
                svc.raw.get("configs"),
                &project.definitions.configs,
            ),
            (
                "secret",
                svc.raw.get("secrets"),
                &project.definitions.secrets,
            ),
        ] {
            for source in used_objects(used) {
                out.push(object_finding(
                    &project.name,
                    name,
                    kind,
                    source,
                    defined.get(source),
                ));
            }
        }
        let dropped: Vec<&str> = raw
            .map(|m| {
                m.keys()
                    .map(String::as_str)
                    .filter(|k| {
                        !k.starts_with("x-")
                            && !KEPT.contains(k)
                            && !HANDLED.contains(k)
                            && !matches!(*k, "build" | "container_name" | "depends_on" | "restart")
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !dropped.is_empty() {
            let why: Vec<String> = dropped
                .iter()
                .map(|k| match DROPPED.iter().find(|(d, _)| d == k) {
                    Some((_, why)) => format!("`{k}` ({why})"),
                    None => format!("`{k}`"),
                })
                .collect();
            out.push(finding(
                Level::Info,
                "swarm-dropped",
                name,
                format!("`{name}`: the stack file leaves out {}", why.join(", ")),
                "move what matters under deploy:, or accept that Swarm runs without it",
            ));
        }
    }
    out
}

/// `deploy.restart_policy.condition` for a Compose `restart:` value.
pub fn restart_condition(restart: &str) -> &'static str {
    match restart {
        "no" | "false" => "none",
        r if r.starts_with("on-failure") => "on-failure",
        _ => "any",
    }
}

/// `mode:` of the long-syntax port whose target is `target` (`ingress` otherwise).
pub fn port_mode(raw: &serde_json::Value, target: u16) -> String {
    raw.get("ports")
        .and_then(|p| p.as_array())
        .and_then(|ports| {
            ports.iter().find_map(|p| {
                let t = p.get("target")?;
                let t = t
                    .as_u64()
                    .or_else(|| t.as_str().and_then(|s| s.parse().ok()))?;
                (t == u64::from(target)).then(|| p.get("mode")?.as_str().map(str::to_string))?
            })
        })
        .unwrap_or_else(|| "ingress".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Project {
        crate::compose::load_text(tempfile::tempdir().unwrap().path(), text)
    }

    fn codes(p: &Project) -> Vec<(String, String, Level)> {
        findings(p)
            .into_iter()
            .map(|f| (f.service.unwrap_or_default(), f.code, f.level))
            .collect()
    }

    #[test]
    fn names_what_swarm_ignores() {
        let p = load(
            "services:\n  web:\n    image: nginx:1\n    build: .\n    container_name: w\n    restart: unless-stopped\n    depends_on: [db]\n    mem_limit: 1g\n    ports:\n      - 127.0.0.1:8080:80\n      - target: 81\n        published: 8081\n        mode: host\n    volumes:\n      - ./conf:/etc/nginx/conf.d\n  db:\n    image: postgres:16\n    network_mode: host\n    volumes: [data:/var/lib/postgresql/data]\nvolumes:\n  data: {}\n",
        );
        let c = codes(&p);
        let has = |s: &str, code: &str, l: Level| c.contains(&(s.into(), code.into(), l));
        assert!(has("web", "swarm-build", Level::Warning), "{c:?}");
        assert!(has("web", "swarm-container-name", Level::Warning));
        assert!(has("web", "swarm-depends-on", Level::Warning));
        assert!(has("web", "swarm-restart", Level::Info));
        assert!(has("web", "swarm-bind-mount", Level::Warning));
        assert!(has("web", "swarm-port-mode", Level::Warning));
        assert!(has("web", "swarm-port-mode", Level::Info));
        assert!(has("web", "swarm-dropped", Level::Info));
        assert!(has("db", "swarm-unsupported", Level::Error));
        assert!(has("db", "swarm-local-volume", Level::Info));
        let f = findings(&p);
        let dropped = f.iter().find(|f| f.code == "swarm-dropped").unwrap();
        assert!(
            dropped
                .message
                .contains("`mem_limit` (use deploy.resources.limits.memory)"),
            "{}",
            dropped.message
        );
        assert_eq!(restart_condition("no"), "none");
        assert_eq!(restart_condition("on-failure:3"), "on-failure");
        assert_eq!(port_mode(&p.services["web"].raw, 81), "host");
        assert_eq!(port_mode(&p.services["web"].raw, 80), "ingress");
    }

    #[test]
    fn configs_and_secrets_from_files_deploy_others_do_not() {
        let p = load(
            "name: shop\nservices:\n  web:\n    image: nginx:1\n    configs: [motd, {source: pinned, target: /etc/p}]\n    secrets: [token, ext, envd, nowhere]\nconfigs:\n  motd: {file: ./motd.txt}\n  pinned: {file: ./p.txt, name: shop-p}\nsecrets:\n  token: {file: ./token}\n  ext: {external: true}\n  envd: {environment: TOKEN}\n",
        );
        let f = findings(&p);
        let about = |what: &str| {
            f.iter()
                .filter(|f| f.code.starts_with("swarm-") && f.message.contains(what))
                .map(|f| (f.code.as_str(), f.level))
                .collect::<Vec<_>>()
        };
        assert_eq!(about("config `motd`"), [("swarm-object", Level::Info)]);
        let motd = f
            .iter()
            .find(|f| f.message.contains("config `motd`"))
            .unwrap();
        assert!(
            motd.message.contains("`shop_motd_<first 12"),
            "{}",
            motd.message
        );
        assert!(
            motd.message
                .contains(&p.directory.join("motd.txt").display().to_string())
        );
        assert_eq!(about("config `pinned`"), [("swarm-object", Level::Warning)]);
        assert_eq!(about("secret `token`"), [("swarm-object", Level::Info)]);
        assert_eq!(
            about("external secret `ext`"),
            [("swarm-object", Level::Info)]
        );
        assert_eq!(
            about("secret `envd` from `environment`"),
            [("swarm-unsupported", Level::Error)]
        );
        assert_eq!(
            about("secret `nowhere`"),
            [("swarm-unsupported", Level::Error)]
        );
    }
}
