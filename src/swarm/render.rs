//! The stack file `up --swarm` hands to `docker stack deploy`: the loaded project (after
//! interpolation, merging, `extends`, profiles and env files) written in compose file format
//! 3.8, which every `docker stack deploy` since Docker 19.03 reads. Each service's image is
//! its digest-pinned name on the registry the nodes pull from; `restart:` becomes
//! `deploy.restart_policy`; ports and volumes are written in long syntax (host paths
//! absolute); configs and secrets as the services write them, their top-level definitions
//! from `swarm::objects`; the keys the format has no place for, or Swarm ignores, are left
//! out (the list is `plan::swarm::DROPPED`, which `plan --swarm` reports). Pure: no engine,
//! no files.

use super::objects::Objects;
use crate::compose::Project;
use crate::plan::swarm::{KEPT, port_mode, restart_condition};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The compose file format version written.
pub const VERSION: &str = "3.8";

/// Keys of a top-level network and volume that compose file format 3.8 reads.
const NETWORK_KEYS: &[&str] = &[
    "driver",
    "driver_opts",
    "ipam",
    "external",
    "internal",
    "attachable",
    "labels",
    "name",
];
const VOLUME_KEYS: &[&str] = &["driver", "driver_opts", "external", "labels", "name"];

/// A top-level definition with only the keys format 3.8 reads (`{}` when none is written).
fn definition(def: Option<&Value>, keys: &[&str]) -> Value {
    match def {
        Some(Value::Object(m)) => Value::Object(
            m.iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// The stack file for `project`, every service's image replaced by `images[service]`, the
/// configs and secrets it uses defined as `objects` says.
pub fn stack_file(
    project: &Project,
    images: &BTreeMap<String, String>,
    objects: &Objects,
) -> Value {
    let top = &project.definitions;
    let mut services = Map::new();
    let mut networks: BTreeSet<String> = BTreeSet::new();
    for (name, svc) in &project.services {
        let raw = svc.raw.as_object().cloned().unwrap_or_default();
        let mut out = Map::new();
        if let Some(image) = images.get(name).or(svc.image.as_ref()) {
            out.insert("image".into(), Value::String(image.clone()));
        }
        for key in KEPT {
            if let Some(v) = raw.get(*key) {
                out.insert((*key).to_string(), v.clone());
            }
        }
        if let Some(Value::Object(hc)) = out.get_mut("healthcheck") {
            // `start_interval` came after format 3.8.
            hc.remove("start_interval");
        }
        if !svc.environment.is_empty() {
            let env: Map<String, Value> = svc
                .environment
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.clone().map(Value::String).unwrap_or(Value::Null),
                    )
                })
                .collect();
            out.insert("environment".into(), Value::Object(env));
        }
        if !svc.ports.is_empty() {
            let ports: Vec<Value> = svc
                .ports
                .iter()
                .map(|p| {
                    let mut port = Map::new();
                    port.insert("target".into(), json!(p.target));
                    if let Some(published) = &p.published {
                        port.insert(
                            "published".into(),
                            published
                                .parse::<u16>()
                                .map(|n| json!(n))
                                .unwrap_or_else(|_| json!(published)),
                        );
                    }
                    port.insert("protocol".into(), json!(p.protocol));
                    port.insert("mode".into(), json!(port_mode(&svc.raw, p.target)));
                    Value::Object(port)
                })
                .collect();
            out.insert("ports".into(), Value::Array(ports));
        }
        let mounts: Vec<Value> = svc
            .volumes
            .iter()
            .filter(|m| matches!(m.kind.as_str(), "bind" | "volume" | "tmpfs"))
            .map(|m| {
                let mut mount = Map::new();
                mount.insert("type".into(), json!(m.kind));
                if let Some(s) = &m.source {
                    mount.insert("source".into(), json!(s));
                }
                mount.insert("target".into(), json!(m.target));
                if m.read_only {
                    mount.insert("read_only".into(), json!(true));
                }
                Value::Object(mount)
            })
            .collect();
        if !mounts.is_empty() {
            out.insert("volumes".into(), Value::Array(mounts));
        }
        if let Some(restart) = &svc.restart {
            let deploy = out
                .entry("deploy")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(d) = deploy
                && !d.contains_key("restart_policy")
            {
                d.insert(
                    "restart_policy".into(),
                    json!({"condition": restart_condition(restart)}),
                );
            }
        }
        // A one-shot job's new task exits during the update's monitor period, which Swarm
        // counts as a failed update and pauses (`update paused due to failure or early
        // termination of task`): its updates continue instead, unless the file says otherwise.
        if let Some(Value::Object(d)) = out.get_mut("deploy")
            && d.get("restart_policy")
                .and_then(|r| r.get("condition"))
                .and_then(|c| c.as_str())
                == Some("none")
        {
            let update = d
                .entry("update_config")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(u) = update {
                u.entry("failure_action")
                    .or_insert_with(|| json!("continue"));
            }
        }
        for section in ["configs", "secrets"] {
            if let Some(v) = raw.get(section) {
                out.insert(section.into(), v.clone());
            }
        }
        match raw.get("networks") {
            Some(Value::Array(list)) => {
                networks.extend(list.iter().filter_map(|n| n.as_str().map(str::to_string)))
            }
            Some(Value::Object(map)) => networks.extend(map.keys().cloned()),
            _ => {}
        }
        services.insert(name.clone(), Value::Object(out));
    }
    let mut file = Map::new();
    file.insert("version".into(), json!(VERSION));
    file.insert("services".into(), Value::Object(services));
    networks.remove("default");
    if !networks.is_empty() {
        file.insert(
            "networks".into(),
            Value::Object(
                networks
                    .into_iter()
                    .map(|n| {
                        let def = definition(top.networks.get(&n), NETWORK_KEYS);
                        (n, def)
                    })
                    .collect(),
            ),
        );
    }
    let used: BTreeSet<&str> = project
        .services
        .values()
        .flat_map(|s| s.volumes.iter())
        .filter(|m| m.kind == "volume")
        .filter_map(|m| m.source.as_deref())
        .collect();
    let volumes: Map<String, Value> = project
        .volumes
        .iter()
        .filter(|v| used.contains(v.as_str()))
        .map(|v| (v.clone(), definition(top.volumes.get(v), VOLUME_KEYS)))
        .collect();
    if !volumes.is_empty() {
        file.insert("volumes".into(), Value::Object(volumes));
    }
    for (section, defs) in [("configs", &objects.configs), ("secrets", &objects.secrets)] {
        if !defs.is_empty() {
            file.insert(section.into(), Value::Object(defs.clone()));
        }
    }
    Value::Object(file)
}

/// The stack file as YAML, under a comment saying where it came from.
pub fn to_yaml(file: &Value, comment: &str) -> String {
    let mut out = String::new();
    for line in comment.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    // JSON is YAML: one value per line keeps it readable and leaves no quoting question
    // (`"no"`, `"8080"` and `"3.8"` stay strings).
    out.push_str(&serde_json::to_string_pretty(file).unwrap_or_default());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_pinned_long_syntax_and_restart_policy() {
        let dir = tempfile::tempdir().unwrap();
        let p = crate::compose::load_text(
            dir.path(),
            "services:\n  web:\n    image: nginx:1\n    container_name: w\n    restart: \"no\"\n    depends_on: [db]\n    environment: {A: \"no\", B: \"8080\"}\n    ports: [\"8080:80\", {target: 81, published: 8081, mode: host}]\n    volumes: [\"./conf:/etc/conf:ro\", \"data:/data\"]\n    healthcheck: {test: [\"CMD\", \"true\"], start_interval: 1s}\n    networks: [back]\n  db:\n    image: postgres:16\n    deploy: {restart_policy: {condition: on-failure}}\n    restart: always\nvolumes:\n  data: {driver: local, x-note: a}\nnetworks:\n  back: {external: true, name: \"${NET_NAME:-host}\", enable_ipv6: false}\n",
        );
        let images = BTreeMap::from([(
            "web".to_string(),
            "127.0.0.1:5000/library/nginx@sha256:aa".to_string(),
        )]);
        let v = stack_file(&p, &images, &Objects::default());
        let web = &v["services"]["web"];
        assert_eq!(v["version"], "3.8");
        assert_eq!(web["image"], "127.0.0.1:5000/library/nginx@sha256:aa");
        assert_eq!(v["services"]["db"]["image"], "postgres:16");
        assert!(web.get("container_name").is_none() && web.get("depends_on").is_none());
        assert_eq!(web["deploy"]["restart_policy"]["condition"], "none");
        assert_eq!(web["deploy"]["update_config"]["failure_action"], "continue");
        assert!(v["services"]["db"]["deploy"].get("update_config").is_none());
        assert_eq!(
            v["services"]["db"]["deploy"]["restart_policy"]["condition"],
            "on-failure"
        );
        assert_eq!(web["environment"]["A"], "no");
        assert_eq!(
            web["ports"][0],
            json!({"target": 80, "published": 8080, "protocol": "tcp", "mode": "ingress"})
        );
        assert_eq!(web["ports"][1]["mode"], "host");
        let conf = dir.path().join("conf");
        assert_eq!(
            web["volumes"][0],
            json!({"type": "bind", "source": conf.to_str().unwrap(), "target": "/etc/conf", "read_only": true})
        );
        assert_eq!(
            web["volumes"][1],
            json!({"type": "volume", "source": "data", "target": "/data"})
        );
        assert!(web["healthcheck"].get("start_interval").is_none());
        assert_eq!(
            v["networks"],
            json!({"back": {"external": true, "name": "host"}})
        );
        assert_eq!(v["volumes"], json!({"data": {"driver": "local"}}));
        let y = to_yaml(&v, "a\nb");
        assert!(y.starts_with("# a\n# b\n{"));
    }
}
