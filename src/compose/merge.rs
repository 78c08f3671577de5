//! Compose merge rules (compose-spec 13-merge.md, compose-go `override`): how a later `-f`
//! file, a local `extends` definition or a local definition over an `include`d one combines
//! with what came before. Mappings merge key-wise, sequences append; `command`, `entrypoint`
//! and `healthcheck.test` are replaced; `ports`, `volumes`, `secrets`, `configs` are unique by
//! key; `environment`, `labels`, build `args`... merge as mappings; `!override` replaces and
//! `!reset` removes (the reset node is kept until `strip_marks` so that later merges of the
//! same path also drop the inherited value). Used by `loader`.

use super::yaml::{Mark, Node, Value};
use std::collections::HashMap;

/// Where in the model a value sits: decides its merge rule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// A whole file: children are top-level keys.
    File,
    /// A top-level key (`services`, `name`, `x-...`).
    Top,
    /// A top-level section such as `services` or `volumes` (name -> definition).
    Section,
    Service,
    Build,
    Healthcheck,
    Other,
}

/// Merge a whole compose file `over` onto `base`.
pub fn merge_file(base: Node, over: Node) -> Node {
    merge(Some(base), over, At::File, "")
}

/// Merge a service definition `over` (the local one) onto `base` (extends base, earlier file).
pub fn merge_service(base: Node, over: Node) -> Node {
    merge(Some(base), over, At::Section, "")
}

fn merge(base: Option<Node>, over: Node, at: At, key: &str) -> Node {
    let base = match base {
        Some(b) if b.mark != Mark::Reset && over.mark == Mark::None => b,
        _ => return over,
    };
    // A null in a later file does not erase what an earlier one set (use `!reset` for that).
    if over.is_null() {
        return base;
    }
    match at {
        At::Service => match key {
            "command" | "entrypoint" | "extends" => over,
            "build" => merge_maps(build_map(base), build_map(over), At::Build),
            "healthcheck" => merge_maps_or_replace(base, over, At::Healthcheck),
            // Logging options merge only when both sides use the same driver (or one has none).
            "logging" => {
                let driver = |n: &Node| n.get("driver").and_then(Node::text);
                match (driver(&base), driver(&over)) {
                    (Some(a), Some(b)) if a != b => over,
                    _ => merge_maps_or_replace(base, over, At::Other),
                }
            }
            "environment" | "labels" | "annotations" | "sysctls" => merge_mappings(base, over),
            "depends_on" => merge_maps(list_to_map(base, true), list_to_map(over, true), At::Other),
            "networks" => merge_maps(
                list_to_map(base, false),
                list_to_map(over, false),
                At::Other,
            ),
            "ports" => unique_by(base, over, port_key),
            "volumes" => unique_by(base, over, volume_key),
            "secrets" | "configs" => unique_by(base, over, source_key),
            "env_file" => unique_by(one_or_list(base), one_or_list(over), env_file_key),
            _ => generic(base, over),
        },
        At::Build => match key {
            "args" | "labels" => merge_mappings(base, over),
            "additional_contexts" => merge_mappings(base, over),
            _ => generic(base, over),
        },
        At::Healthcheck => match key {
            "test" => over,
            _ => generic(base, over),
        },
        At::Top => match key {
            "services" | "volumes" | "networks" | "secrets" | "configs" => {
                merge_maps_or_replace(base, over, At::Section)
            }
            _ => generic(base, over),
        },
        At::File => merge_maps_or_replace(base, over, At::Top),
        At::Section => merge_maps_or_replace(base, over, At::Service),
        At::Other => generic(base, over),
    }
}

/// Maps merge key-wise (children get the rule of `child`), sequences append, scalars replace.
fn generic(base: Node, over: Node) -> Node {
    match (&base.value, &over.value) {
        (Value::Map(_), Value::Map(_)) => merge_maps(base, over, At::Other),
        (Value::Seq(_), Value::Seq(_)) => unique_by(base, over, |n| Some(n.to_json().to_string())),
        _ => over,
    }
}

fn merge_maps_or_replace(base: Node, over: Node, child: At) -> Node {
    if base.as_map().is_some() && over.as_map().is_some() {
        merge_maps(base, over, child)
    } else {
        over
    }
}

/// Merge two mappings: keys of `over` merge into `base` in place, new keys append; `child`
/// is the rule for the values. If either side is not a mapping, `over` wins.
fn merge_maps(base: Node, over: Node, child: At) -> Node {
    let (line, col, mark) = (base.line, base.col, base.mark);
    let (o_line, o_col, o_mark) = (over.line, over.col, over.mark);
    let (mut entries, over_entries) = match (base.value, over.value) {
        (Value::Map(a), Value::Map(b)) => (a, b),
        (_, value) => {
            return Node {
                value,
                line: o_line,
                col: o_col,
                mark: o_mark,
            };
        }
    };
    let mut index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    for (k, v) in over_entries {
        match index.get(&k).copied() {
            // Extension fields are replaced whole, as compose-go does.
            Some(i) if k.starts_with("x-") => entries[i].1 = v,
            Some(i) => {
                let old = std::mem::replace(&mut entries[i].1, Node::new(Value::Null, 0, 0));
                entries[i].1 = merge(Some(old), v, child, &k);
            }
            None => {
                index.insert(k.clone(), entries.len());
                entries.push((k, v));
            }
        }
    }
    Node {
        value: Value::Map(entries),
        line,
        col,
        mark,
    }
}

/// `environment`/`labels`/`args`: list (`K=V`, `K`) or mapping; merged as mappings.
fn merge_mappings(base: Node, over: Node) -> Node {
    match (to_mapping(base), to_mapping(over)) {
        (Some(b), Some(o)) => {
            let (line, col, mark) = (b.line, b.col, b.mark);
            let mut entries = match b.value {
                Value::Map(e) => e,
                _ => Vec::new(),
            };
            if let Value::Map(oe) = o.value {
                upsert_all(&mut entries, oe);
            }
            Node {
                value: Value::Map(entries),
                line,
                col,
                mark,
            }
        }
        (_, Some(o)) => o,
        (Some(b), None) => b,
        (None, None) => Node::new(Value::Null, 0, 0),
    }
}

/// Set each pair in `entries`, replacing an equal key in place, else appending.
fn upsert_all(entries: &mut Vec<(String, Node)>, pairs: Vec<(String, Node)>) {
    let mut index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    for (k, v) in pairs {
        match index.get(&k) {
            Some(&i) => entries[i].1 = v,
            None => {
                index.insert(k.clone(), entries.len());
                entries.push((k, v));
            }
        }
    }
}

/// A `K=V` list or a mapping as a mapping; `None` for other shapes (left to validation).
pub fn to_mapping(node: Node) -> Option<Node> {
    match node.value {
        Value::Map(_) => Some(node),
        Value::Seq(items) => {
            let mut pairs: Vec<(String, Node)> = Vec::with_capacity(items.len());
            for item in items {
                let text = item.text()?;
                let (line, col) = (item.line, item.col);
                pairs.push(match text.split_once('=') {
                    Some((k, v)) => (
                        k.to_string(),
                        Node::new(Value::Str(v.to_string()), line, col),
                    ),
                    None => (text, Node::new(Value::Null, line, col)),
                });
            }
            let mut entries = Vec::new();
            upsert_all(&mut entries, pairs);
            Some(Node {
                value: Value::Map(entries),
                line: node.line,
                col: node.col,
                mark: node.mark,
            })
        }
        _ => None,
    }
}

/// `build: ./dir` as `{context: ./dir}`.
fn build_map(node: Node) -> Node {
    match node.value {
        Value::Map(_) => node,
        _ => {
            let entries = vec![("context".to_string(), node.clone())];
            Node {
                value: Value::Map(entries),
                line: node.line,
                col: node.col,
                mark: node.mark,
            }
        }
    }
}

/// `depends_on: [a]` / `networks: [a]` as mappings.
fn list_to_map(node: Node, depends: bool) -> Node {
    match node.value {
        Value::Seq(items) => {
            let entries = items
                .into_iter()
                .filter_map(|i| {
                    let name = i.text()?;
                    let value = if depends {
                        let cond = Node::new(Value::Str("service_started".into()), i.line, i.col);
                        Node::map(vec![("condition".into(), cond)], &i)
                    } else {
                        Node::new(Value::Null, i.line, i.col)
                    };
                    Some((name, value))
                })
                .collect();
            Node {
                value: Value::Map(entries),
                line: node.line,
                col: node.col,
                mark: node.mark,
            }
        }
        Value::Map(_) => node,
        _ => Node {
            value: Value::Map(Vec::new()),
            line: node.line,
            col: node.col,
            mark: node.mark,
        },
    }
}

fn one_or_list(node: Node) -> Node {
    match node.value {
        Value::Seq(_) => node,
        _ => Node {
            value: Value::Seq(vec![node.clone()]),
            line: node.line,
            col: node.col,
            mark: node.mark,
        },
    }
}

/// Append `over` to `base`; an item of `over` whose key equals an earlier item's key
/// replaces it in place. Non-sequences: `over` wins.
fn unique_by(base: Node, over: Node, key: impl Fn(&Node) -> Option<String>) -> Node {
    let (line, col, mark) = (base.line, base.col, base.mark);
    let (mut items, over_items) = match (base.value, over.value) {
        (Value::Seq(a), Value::Seq(b)) => (a, b),
        (_, value) => {
            return Node {
                value,
                line: over.line,
                col: over.col,
                mark: over.mark,
            };
        }
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(k) = key(item) {
            index.entry(k).or_insert(i);
        }
    }
    for item in over_items {
        match key(&item) {
            Some(k) => match index.get(&k) {
                Some(&i) => items[i] = item,
                None => {
                    index.insert(k, items.len());
                    items.push(item);
                }
            },
            None => items.push(item),
        }
    }
    Node {
        value: Value::Seq(items),
        line,
        col,
        mark,
    }
}

/// Ports are unique by host ip, published port, target and protocol.
fn port_key(n: &Node) -> Option<String> {
    if let Some(t) = n.text() {
        return Some(t);
    }
    let f = |k: &str| n.get(k).and_then(Node::text).unwrap_or_default();
    let proto = n
        .get("protocol")
        .and_then(Node::text)
        .unwrap_or_else(|| "tcp".into());
    Some(format!(
        "{}:{}:{}/{}",
        f("host_ip"),
        f("published"),
        f("target"),
        proto
    ))
}

/// Volumes are unique by their container path.
fn volume_key(n: &Node) -> Option<String> {
    if let Some(t) = n.text() {
        let parts: Vec<&str> = t.split(':').collect();
        return Some(if parts.len() >= 2 {
            parts[1].to_string()
        } else {
            t
        });
    }
    n.get("target").and_then(Node::text)
}

fn source_key(n: &Node) -> Option<String> {
    n.text().or_else(|| n.get("source").and_then(Node::text))
}

fn env_file_key(n: &Node) -> Option<String> {
    n.text().or_else(|| n.get("path").and_then(Node::text))
}

/// Remove `!reset` nodes and clear `!override` marks once every merge is done.
pub fn strip_marks(node: &mut Node) {
    node.mark = Mark::None;
    match &mut node.value {
        Value::Map(entries) => {
            entries.retain(|(_, v)| v.mark != Mark::Reset);
            for (_, v) in entries {
                strip_marks(v);
            }
        }
        Value::Seq(items) => {
            items.retain(|v| v.mark != Mark::Reset);
            for v in items {
                strip_marks(v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::yaml::parse;

    fn doc(t: &str) -> Node {
        parse(t).unwrap().remove(0)
    }

    fn merged(a: &str, b: &str) -> serde_json::Value {
        let mut n = merge_file(doc(a), doc(b));
        strip_marks(&mut n);
        n.get("services").unwrap().get("s").unwrap().to_json()
    }

    macro_rules! case {
        ($name:ident, $a:expr, $b:expr, $key:expr, $want:expr) => {
            #[test]
            fn $name() {
                let s = merged(
                    concat!("services:\n  s:\n", $a),
                    concat!("services:\n  s:\n", $b),
                );
                let want: serde_json::Value = serde_json::from_str($want).unwrap();
                assert_eq!(
                    s.get($key).cloned().unwrap_or(serde_json::Value::Null),
                    want
                );
            }
        };
    }

    case!(
        scalar_replaced,
        "    image: a\n",
        "    image: b\n",
        "image",
        r#""b""#
    );
    case!(
        null_keeps_base,
        "    image: a\n",
        "    image:\n",
        "image",
        r#""a""#
    );
    case!(
        command_replaced,
        "    command: [a, b]\n",
        "    command: [c]\n",
        "command",
        r#"["c"]"#
    );
    case!(
        entrypoint_replaced,
        "    entrypoint: [a]\n",
        "    entrypoint: b\n",
        "entrypoint",
        r#""b""#
    );
    case!(
        sequence_appended,
        "    dns: [a]\n",
        "    dns: [b, a]\n",
        "dns",
        r#"["a","b"]"#
    );
    case!(
        env_list_and_map,
        "    environment: [A=1, B=2]\n",
        "    environment: {B: 3}\n",
        "environment",
        r#"{"A":"1","B":3}"#
    );
    case!(
        ports_unique,
        "    ports: ['80:80', '443:443']\n",
        "    ports: ['80:80', '8080:80']\n",
        "ports",
        r#"["80:80","443:443","8080:80"]"#
    );
    case!(
        volumes_by_target,
        "    volumes: ['a:/data', 'b:/logs']\n",
        "    volumes: ['c:/data']\n",
        "volumes",
        r#"["c:/data","b:/logs"]"#
    );
    case!(
        build_string_and_map,
        "    build: ./a\n",
        "    build: {target: t}\n",
        "build",
        r#"{"context":"./a","target":"t"}"#
    );
    case!(
        build_args_merge,
        "    build: {args: [A=1]}\n",
        "    build: {args: {B: 2}}\n",
        "build",
        r#"{"args":{"A":"1","B":2}}"#
    );
    case!(
        healthcheck_test_replaced,
        "    healthcheck: {test: [a, b], interval: 1s}\n",
        "    healthcheck: {test: [c]}\n",
        "healthcheck",
        r#"{"test":["c"],"interval":"1s"}"#
    );
    case!(
        depends_on_list_and_map,
        "    depends_on: [a]\n",
        "    depends_on: {b: {condition: service_healthy}}\n",
        "depends_on",
        r#"{"a":{"condition":"service_started"},"b":{"condition":"service_healthy"}}"#
    );
    case!(
        reset_removes,
        "    ports: ['80:80']\n",
        "    ports: !reset []\n",
        "ports",
        "null"
    );
    case!(
        override_replaces,
        "    environment: {A: 1}\n",
        "    environment: !override {B: 2}\n",
        "environment",
        r#"{"B":2}"#
    );
    case!(
        labels_merge,
        "    labels: {a: 1}\n",
        "    labels: [b=2]\n",
        "labels",
        r#"{"a":1,"b":"2"}"#
    );
    case!(
        logging_other_driver_replaces,
        "    logging: {driver: a, options: {x: 1}}\n",
        "    logging: {driver: b}\n",
        "logging",
        r#"{"driver":"b"}"#
    );
    case!(
        logging_same_driver_merges,
        "    logging: {driver: a, options: {x: 1}}\n",
        "    logging: {options: {y: 2}}\n",
        "logging",
        r#"{"driver":"a","options":{"x":1,"y":2}}"#
    );
    case!(
        extension_field_replaced,
        "    x-meta: {a: 1}\n",
        "    x-meta: {b: 2}\n",
        "x-meta",
        r#"{"b":2}"#
    );
}
