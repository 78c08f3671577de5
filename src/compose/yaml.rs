//! YAML for the Compose loader: turns a file's text into a tree of `Node`s with line:column
//! positions, anchors/aliases expanded, YAML 1.1 merge keys (`<<`) applied and the Compose
//! tags `!reset`/`!override` kept as marks. Used by `compose::loader`, `merge`, `convert`.
//!
//! Built on the event parser that `serde-saphyr` re-exports (`granit_parser`) rather than on
//! serde deserialisation: the loader needs every node's position, the scalar style (quoted
//! `"1.0"` stays a string), custom tags on any node kind, and its own alias budget; a serde
//! `Value` would lose all four.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use std::collections::{HashMap, HashSet};

/// Most nodes one file may expand to (aliases included): stops alias bombs.
pub const MAX_NODES: usize = 250_000;
/// Most scalar bytes one file may expand to (aliases included).
pub const MAX_BYTES: usize = 64 << 20;
/// Deepest nesting of collections after alias expansion.
pub const MAX_DEPTH: usize = 200;

/// One YAML node with its 1-based position in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    pub col: usize,
    pub mark: Mark,
}

/// Compose merge tags on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    None,
    /// `!reset`: remove the value inherited from earlier files or the `extends` base.
    Reset,
    /// `!override`: replace the inherited value instead of merging.
    Override,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A plain integer or float, kept as written (`1.10` stays `1.10` when used as text).
    Number(String),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in source order; keys are scalars (non-scalar keys are rejected).
    Map(Vec<(String, Node)>),
}

/// A YAML problem at a position (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Node {
    pub fn new(value: Value, line: usize, col: usize) -> Node {
        Node {
            value,
            line,
            col,
            mark: Mark::None,
        }
    }

    pub fn map(entries: Vec<(String, Node)>, at: &Node) -> Node {
        Node::new(Value::Map(entries), at.line, at.col)
    }

    pub fn as_map(&self) -> Option<&Vec<(String, Node)>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Vec<(String, Node)>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&Vec<Node>> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Replace the value under `key`, or append it.
    pub fn insert(&mut self, key: &str, node: Node) {
        if let Some(m) = self.as_map_mut() {
            match m.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = node,
                None => m.push((key.to_string(), node)),
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let m = self.as_map_mut()?;
        let i = m.iter().position(|(k, _)| k == key)?;
        Some(m.remove(i).1)
    }

    /// The text of a scalar (`true`, `8080`, `redis:7`); `None` for null and collections.
    pub fn text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) | Value::Number(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// Kind name for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// JSON form (for `Service::raw` and `healthcheck`). Numbers become JSON numbers when
    /// they fit, otherwise strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(s) => number_json(s),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn number_json(s: &str) -> serde_json::Value {
    let clean = s.replace('_', "");
    if let Ok(i) = clean.parse::<i64>() {
        return serde_json::Value::from(i);
    }
    if let Some(hex) = clean
        .strip_prefix("0x")
        .and_then(|h| i64::from_str_radix(h, 16).ok())
    {
        return serde_json::Value::from(hex);
    }
    if let Some(oct) = clean
        .strip_prefix("0o")
        .and_then(|h| i64::from_str_radix(h, 8).ok())
    {
        return serde_json::Value::from(oct);
    }
    match clean
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Some(n) => serde_json::Value::Number(n),
        None => serde_json::Value::String(s.to_string()),
    }
}

/// Parse every document of `text`. An empty file gives no documents.
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    let options = serde_saphyr::granit_parser::options! { emit_comments: false };
    let mut c = Composer {
        parser: Parser::new_from_str_with_options(text, options),
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = c.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                c.anchors.clear();
                let (event, span) = c.next()?;
                docs.push(c.node(event, span, 0)?);
            }
            _ => return Err(at(span, "unexpected YAML event outside a document")),
        }
    }
    Ok(docs)
}

/// What an anchor expands to, with its cost (nodes, bytes, height) for the budget.
struct Anchored {
    node: Node,
    nodes: usize,
    bytes: usize,
    height: usize,
}

struct Composer<'a> {
    parser: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    anchors: HashMap<usize, Anchored>,
    nodes: usize,
    bytes: usize,
}

fn at(span: Span, message: impl Into<String>) -> YamlError {
    YamlError {
        line: span.start.line(),
        col: span.start.col() + 1,
        message: message.into(),
    }
}

fn scan_error(e: ScanError) -> YamlError {
    YamlError {
        line: e.marker().line(),
        col: e.marker().col() + 1,
        message: e.info(),
    }
}

impl<'a> Composer<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        loop {
            match self.parser.next() {
                Some(Ok((Event::Comment(..), _))) | Some(Ok((Event::Anchor(..), _))) => continue,
                Some(Ok(pair)) => return Ok(pair),
                Some(Err(e)) => return Err(scan_error(e)),
                None => {
                    return Err(YamlError {
                        line: 0,
                        col: 0,
                        message: "unexpected end of input".into(),
                    });
                }
            }
        }
    }

    fn count(&mut self, span: Span, nodes: usize, bytes: usize) -> Result<(), YamlError> {
        self.nodes += nodes;
        self.bytes += bytes;
        if self.nodes > MAX_NODES || self.bytes > MAX_BYTES {
            return Err(at(
                span,
                format!(
                    "document expands to more than {MAX_NODES} nodes or {} MiB (alias bomb?)",
                    MAX_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Build the node that starts with `event`; `depth` is its nesting level.
    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, YamlError> {
        if depth > MAX_DEPTH {
            return Err(at(span, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let (line, col) = (span.start.line(), span.start.col() + 1);
        match event {
            Event::Alias(id) => {
                let Some(a) = self.anchors.get(&id) else {
                    return Err(at(
                        span,
                        "alias refers to a node that contains it (recursive alias)",
                    ));
                };
                if depth + a.height > MAX_DEPTH {
                    return Err(at(
                        span,
                        format!("alias nests deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let (n, b) = (a.nodes, a.bytes);
                self.count(span, n, b)?;
                let mut node = self.anchors[&id].node.clone();
                node.line = line;
                node.col = col;
                Ok(node)
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(span, 1, text.len())?;
                let mark = mark_of(tag.as_deref());
                let value = scalar(&text, style, tag.as_deref());
                let node = Node {
                    value,
                    line,
                    col,
                    mark,
                };
                self.remember(anchor, &node, 1, text.len(), 0);
                Ok(node)
            }
            Event::SequenceStart(_, anchor, tag) => {
                self.count(span, 1, 0)?;
                let (n0, b0) = (self.nodes, self.bytes);
                let mut items = Vec::new();
                let mut height = 0;
                loop {
                    let (ev, sp) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let item = self.node(ev, sp, depth + 1)?;
                    height = height.max(1 + height_of(&item));
                    items.push(item);
                }
                let node = Node {
                    value: Value::Seq(items),
                    line,
                    col,
                    mark: mark_of(tag.as_deref()),
                };
                let (n, b) = (self.nodes - n0 + 1, self.bytes - b0);
                self.remember(anchor, &node, n, b, height);
                Ok(node)
            }
            Event::MappingStart(_, anchor, tag) => {
                self.count(span, 1, 0)?;
                let (n0, b0) = (self.nodes, self.bytes);
                let node = self.mapping(line, col, depth, mark_of(tag.as_deref()))?;
                let (n, b) = (self.nodes - n0 + 1, self.bytes - b0);
                let height = height_of(&node);
                self.remember(anchor, &node, n, b, height);
                Ok(node)
            }
            _ => Err(at(span, "unexpected YAML event")),
        }
    }

    fn mapping(
        &mut self,
        line: usize,
        col: usize,
        depth: usize,
        mark: Mark,
    ) -> Result<Node, YamlError> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut merges: Vec<Node> = Vec::new();
        loop {
            let (ev, sp) = self.next()?;
            if matches!(ev, Event::MappingEnd) {
                break;
            }
            let is_merge =
                matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
            let key = self.node(ev, sp, depth + 1)?;
            let (ev, vsp) = self.next()?;
            let value = self.node(ev, vsp, depth + 1)?;
            if is_merge {
                match &value.value {
                    Value::Map(_) => merges.push(value),
                    Value::Seq(items) if items.iter().all(|i| i.as_map().is_some()) => {
                        merges.extend(items.iter().cloned())
                    }
                    _ => {
                        return Err(at(
                            vsp,
                            "merge key `<<` needs a mapping or a list of mappings",
                        ));
                    }
                }
                continue;
            }
            let name = match &key.value {
                Value::Str(s) | Value::Number(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Null => "null".to_string(),
                Value::Seq(_) | Value::Map(_) => {
                    return Err(YamlError {
                        line: key.line,
                        col: key.col,
                        message: "mapping key must be a scalar".into(),
                    });
                }
            };
            if !seen.insert(name.clone()) {
                return Err(YamlError {
                    line: key.line,
                    col: key.col,
                    message: format!("mapping key `{name}` already defined"),
                });
            }
            entries.push((name, value));
        }
        // Merge keys: explicit keys win wherever they appear; among merged mappings the
        // first one listed wins (YAML 1.1 merge key semantics, as yaml.v3 applies them).
        for merged in merges {
            if let Value::Map(m) = merged.value {
                for (k, v) in m {
                    if seen.insert(k.clone()) {
                        entries.push((k, v));
                    }
                }
            }
        }
        Ok(Node {
            value: Value::Map(entries),
            line,
            col,
            mark,
        })
    }

    fn remember(&mut self, anchor: usize, node: &Node, nodes: usize, bytes: usize, height: usize) {
        if anchor != 0 {
            self.anchors.insert(
                anchor,
                Anchored {
                    node: node.clone(),
                    nodes,
                    bytes,
                    height,
                },
            );
        }
    }
}

fn height_of(node: &Node) -> usize {
    // Only called on nodes whose children were built with their height checked, so the
    // recursion depth is bounded by MAX_DEPTH.
    match &node.value {
        Value::Seq(items) => items.iter().map(|i| 1 + height_of(i)).max().unwrap_or(0),
        Value::Map(entries) => entries
            .iter()
            .map(|(_, v)| 1 + height_of(v))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

fn mark_of(tag: Option<&Tag>) -> Mark {
    match tag {
        Some(t) if t.handle() == "!" && t.suffix() == "reset" => Mark::Reset,
        Some(t) if t.handle() == "!" && t.suffix() == "override" => Mark::Override,
        _ => Mark::None,
    }
}

/// Resolve a scalar with the YAML 1.2 core schema (what Compose's yaml.v3 does for untyped
/// values): quoted and block scalars are strings; `!!str` forces a string.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(t) = tag
        && t.is_yaml_core_schema()
    {
        match t.suffix() {
            "str" => return Value::Str(text.to_string()),
            "null" => return Value::Null,
            _ => {}
        }
    }
    if style != ScalarStyle::Plain {
        return Value::Str(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if is_number(text) => Value::Number(text.to_string()),
        _ => Value::Str(text.to_string()),
    }
}

fn is_number(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    if let Some(h) = body.strip_prefix("0x") {
        return !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(o) = body.strip_prefix("0o") {
        return !o.is_empty() && o.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // [0-9]* ( . [0-9]* )? ( [eE] [-+]? [0-9]+ )?  with at least one digit before the exponent
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mut parts = mant.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) {
        return false;
    }
    if int.is_empty() && frac.is_none_or(str::is_empty) {
        return false;
    }
    match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        parse(text).unwrap().remove(0)
    }

    #[test]
    fn scalars_are_typed_by_the_core_schema() {
        let n = one(
            "a: 1\nb: '1'\nc: 1.10\nd: true\ne: ~\nf: redis:7\ng: 0x1f\nh: 1e3\ni: .5\nj: 1.2.3",
        );
        let kinds: Vec<_> = n.as_map().unwrap().iter().map(|(_, v)| v.kind()).collect();
        assert_eq!(
            kinds,
            [
                "a number",
                "a string",
                "a number",
                "a boolean",
                "null",
                "a string",
                "a number",
                "a number",
                "a number",
                "a string"
            ]
        );
        assert_eq!(n.get("c").unwrap().text().as_deref(), Some("1.10"));
    }

    #[test]
    fn merge_keys_follow_yaml_rules() {
        let n = one("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 3\n");
        let c = n.get("c").unwrap();
        assert_eq!(c.get("x").unwrap().text().as_deref(), Some("3"));
        assert_eq!(c.get("y").unwrap().text().as_deref(), Some("1"));
        assert_eq!(c.get("z").unwrap().text().as_deref(), Some("2"));
    }

    #[test]
    fn tags_become_marks() {
        let n = one("a: !reset []\nb: !override {x: 1}\nc: !!str 1");
        assert_eq!(n.get("a").unwrap().mark, Mark::Reset);
        assert_eq!(n.get("b").unwrap().mark, Mark::Override);
        assert_eq!(n.get("c").unwrap().kind(), "a string");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text += &format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            );
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("alias bomb"), "{e:?}");
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 1));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(10_000);
        assert!(parse(&text).is_err());
    }
}
