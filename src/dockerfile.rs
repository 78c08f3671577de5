//! Dockerfile analysis: owns reading the image references out of a Dockerfile the way
//! BuildKit's parser and `dockerfile2llb` see them: parser directives (`# syntax=`,
//! `# escape=`), continuations, comments, heredocs, global `ARG`s, `FROM` stages, the stages
//! a target needs, `COPY --from=` and `RUN --mount=...,from=`. Used by `plan`.
//! Hand-written: no Rust crate parses FROM/ARG/stage semantics (the parsers we found stop at
//! tokenising instructions), and the rules are short.

use crate::platform::Platform;
use std::collections::{BTreeMap, BTreeSet};

/// Settings that change which images a Dockerfile names. `Default`: no build args, the last
/// stage as target, `linux/amd64` as both target and build platform.
#[derive(Debug, Clone)]
pub struct Options {
    /// Build args as given on the command line or by Compose (`--build-arg KEY=VALUE`).
    pub build_args: BTreeMap<String, String>,
    /// Stage to build (`--target`); `None` = the last stage. Matched case-insensitively.
    pub target: Option<String>,
    /// Platform the image is built for: sets `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT`.
    pub platform: Platform,
    /// Platform of the builder: sets `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`, `BUILDVARIANT`.
    pub build_platform: Platform,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::linux_amd64(),
            build_platform: Platform::linux_amd64(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum Error {
    #[error("line {line}: {message}")]
    Directive { line: usize, message: String },
    #[error(
        "line {line}: unterminated heredoc `{word}` (no line `{word}` before the end of the file)"
    )]
    UnterminatedHeredoc { line: usize, word: String },
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("line {line}: `{text}`: {message}")]
    Substitution {
        line: usize,
        text: String,
        message: String,
    },
    #[error(
        "line {line}: the base image `{raw}` is empty after substituting build args (pass it as a build arg or give the ARG a default)"
    )]
    EmptyBase { line: usize, raw: String },
    #[error("line {line}: stage index {index} does not name an earlier stage")]
    BadStageIndex { line: usize, index: String },
    #[error("target stage `{target}` not found (stages: {stages})")]
    TargetNotFound { target: String, stages: String },
    #[error("the Dockerfile has no FROM instruction")]
    NoFrom,
}

impl crate::error::Classify for Error {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Input
    }
}

/// How a Dockerfile uses an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Use {
    /// `FROM <image>` of a stage the target needs.
    From,
    /// `COPY --from=<image>` / `RUN --mount=from=<image>` in a stage the target needs.
    CopyFrom,
    /// `FROM` / `COPY --from` / `RUN --mount=from` image of a stage the target does not need.
    UnusedStage,
    /// BuildKit frontend named by `# syntax=` (or the `BUILDKIT_SYNTAX` build arg).
    Syntax,
}

/// One image a Dockerfile names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    pub kind: Use,
    /// After substitution: what BuildKit would pull.
    pub reference: String,
    /// As written in the Dockerfile.
    pub raw: String,
    /// 1-based line of the instruction (0 for the `BUILDKIT_SYNTAX` build arg).
    pub line: usize,
    /// Index of the stage it appears in (`None` for the syntax frontend).
    pub stage: Option<usize>,
    /// `FROM --platform=` after substitution.
    pub platform: Option<String>,
}

/// What a stage is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference after substitution.
    Image(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    pub base: Base,
    /// 1-based line of the FROM instruction.
    pub line: usize,
    /// Whether the target needs this stage.
    pub needed: bool,
}

/// The result of `analyze`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    pub stages: Vec<Stage>,
    /// Index of the target stage.
    pub target: usize,
    /// Every image use, in file order (the syntax frontend first).
    pub images: Vec<ImageUse>,
}

/// One instruction after continuations are joined, comments dropped and heredocs skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper-cased keyword (`FROM`, `ARG`, ...).
    pub keyword: String,
    /// Everything after the keyword, continuations joined.
    pub args: String,
    /// 1-based line where the instruction starts.
    pub line: usize,
}

/// A Dockerfile split into parser directives and instructions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// `# syntax=` value and its line.
    pub syntax: Option<(String, usize)>,
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

const KNOWN_DIRECTIVES: [&str; 3] = ["syntax", "escape", "check"];

/// `# name = value`: BuildKit's directive regex `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    if name.is_empty() || !name.as_bytes()[0].is_ascii_alphabetic() {
        return None;
    }
    let value = rest[name_len..].trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

/// Strip a trailing escape character (continuation), allowing trailing blanks after it.
fn continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(body) => (body, true),
        None => (line, false),
    }
}

/// Split into words the way BuildKit's lexer does with raw quotes: white space outside quotes
/// separates words; quotes and escapes are kept in the words.
pub fn split_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut cur));
                in_word = false;
            }
            continue;
        }
        in_word = true;
        cur.push(c);
        if c == escape {
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == '\'' || c == '"' {
            for q in chars.by_ref() {
                cur.push(q);
                if q == c {
                    break;
                }
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<'EOF'`: the terminator word and whether leading tabs are stripped.
fn heredoc(word: &str) -> Option<(String, bool)> {
    let rest = word
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name: String = rest.chars().filter(|c| *c != '"' && *c != '\'').collect();
    if name.is_empty() {
        None
    } else {
        Some((name, chomp))
    }
}

/// Split a Dockerfile into directives and instructions.
pub fn parse(text: &str) -> Result<Parsed, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut parsed = Parsed {
        escape: '\\',
        ..Parsed::default()
    };
    let mut seen = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((name, value)) = directive(line) else {
            break;
        };
        if !KNOWN_DIRECTIVES.contains(&name.as_str()) {
            // An unknown directive is a comment, and a comment ends the directives.
            break;
        }
        if !seen.insert(name.clone()) {
            return Err(Error::Directive {
                line: i + 1,
                message: format!("only one `{name}` parser directive can be used"),
            });
        }
        match name.as_str() {
            "syntax" => parsed.syntax = Some((value, i + 1)),
            "escape" => {
                parsed.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(Error::Directive {
                            line: i + 1,
                            message: format!(
                                "invalid escape token `{value}` (use `\\` or `` ` ``)"
                            ),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    let escape = parsed.escape;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let start = i + 1;
        i += 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (body, mut more) = continuation(trimmed, escape);
        let mut joined = body.to_string();
        while more && i < lines.len() {
            let next = lines[i];
            i += 1;
            let t = next.trim_start();
            // Comment and empty lines inside a continuation are dropped (BuildKit warns about empty ones).
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (body, m) = continuation(next, escape);
            joined.push_str(body);
            more = m;
        }
        let joined = joined.trim();
        if joined.is_empty() {
            continue;
        }
        let (keyword, args) = match joined.split_once(char::is_whitespace) {
            Some((k, a)) => (k.to_ascii_uppercase(), a.trim().to_string()),
            None => (joined.to_ascii_uppercase(), String::new()),
        };
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (word, chomp) in split_words(&args, escape).iter().filter_map(|w| heredoc(w)) {
                let mut terminated = false;
                while i < lines.len() {
                    let content = lines[i];
                    i += 1;
                    let candidate = if chomp {
                        content.trim_start_matches('\t')
                    } else {
                        content
                    };
                    if candidate == word {
                        terminated = true;
                        break;
                    }
                }
                if !terminated {
                    return Err(Error::UnterminatedHeredoc { line: start, word });
                }
            }
        }
        parsed.instructions.push(Instruction {
            keyword,
            args,
            line: start,
        });
    }
    Ok(parsed)
}

/// Variables visible to a substitution: name -> value (absent = unset).
type Env = BTreeMap<String, String>;

/// Expand one word like BuildKit's shell lexer: quotes removed, escapes honoured, `$v`,
/// `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`, `${v:?m}`, `${v?m}`; unset variables
/// expand to nothing.
pub fn expand(word: &str, env: &Env, escape: char) -> Result<String, String> {
    let mut lx = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        env,
    };
    let out = lx.word(false)?;
    Ok(out)
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a Env,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Process until the end (or, inside `${...}`, until the closing `}`, which is left unread).
    fn word(&mut self, in_braces: bool) -> Result<String, String> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if in_braces && c == '}' {
                return Ok(out);
            }
            self.pos += 1;
            if c == self.escape {
                match self.peek() {
                    Some(n) => {
                        out.push(n);
                        self.pos += 1;
                    }
                    None => out.push(c),
                }
            } else if c == '\'' {
                loop {
                    match self.peek() {
                        Some('\'') => {
                            self.pos += 1;
                            break;
                        }
                        Some(q) => {
                            out.push(q);
                            self.pos += 1;
                        }
                        None => {
                            return Err(
                                "unexpected end of text while looking for a matching `'`".into()
                            );
                        }
                    }
                }
            } else if c == '"' {
                loop {
                    match self.peek() {
                        Some('"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(e) if e == self.escape => {
                            self.pos += 1;
                            match self.peek() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    out.push(n);
                                    self.pos += 1;
                                }
                                _ => out.push(e),
                            }
                        }
                        Some('$') => {
                            self.pos += 1;
                            out.push_str(&self.dollar()?);
                        }
                        Some(q) => {
                            out.push(q);
                            self.pos += 1;
                        }
                        None => {
                            return Err(
                                "unexpected end of text while looking for a matching `\"`".into()
                            );
                        }
                    }
                }
            } else if c == '$' {
                out.push_str(&self.dollar()?);
            } else {
                out.push(c);
            }
        }
        if in_braces {
            return Err("missing `}` in a `${...}` substitution".into());
        }
        Ok(out)
    }

    fn name(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                if !self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                {
                    return Err("bad substitution: expected a variable name after `${`".into());
                }
                let name = self.name();
                let value = self.env.get(&name).cloned();
                let op = match self.peek() {
                    Some('}') => {
                        self.pos += 1;
                        return Ok(value.unwrap_or_default());
                    }
                    Some(':') => {
                        self.pos += 1;
                        match self.peek() {
                            Some(c @ ('-' | '+' | '?')) => {
                                self.pos += 1;
                                format!(":{c}")
                            }
                            _ => return Err(format!("unsupported modifier after `${{{name}:`")),
                        }
                    }
                    Some(c @ ('-' | '+' | '?')) => {
                        self.pos += 1;
                        c.to_string()
                    }
                    Some(c) => {
                        return Err(format!("unsupported modifier `{c}` in `${{{name}...}}`"));
                    }
                    None => return Err("missing `}` in a `${...}` substitution".into()),
                };
                let word = self.word(true)?;
                self.pos += 1; // the closing `}`
                let set = value.is_some();
                let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
                Ok(match op.as_str() {
                    ":-" => {
                        if non_empty {
                            value.unwrap_or_default()
                        } else {
                            word
                        }
                    }
                    "-" => {
                        if set {
                            value.unwrap_or_default()
                        } else {
                            word
                        }
                    }
                    ":+" => {
                        if non_empty {
                            word
                        } else {
                            String::new()
                        }
                    }
                    "+" => {
                        if set {
                            word
                        } else {
                            String::new()
                        }
                    }
                    ":?" if !non_empty => {
                        return Err(format!(
                            "{name}: {}",
                            if word.is_empty() { "is not set" } else { &word }
                        ));
                    }
                    "?" if !set => {
                        return Err(format!(
                            "{name}: {}",
                            if word.is_empty() { "is not set" } else { &word }
                        ));
                    }
                    _ => value.unwrap_or_default(),
                })
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.env.get(&name).cloned().unwrap_or_default())
            }
            _ => Ok("$".to_string()),
        }
    }
}

/// The `ARG` values BuildKit predefines from the platforms.
fn platform_args(opts: &Options) -> Env {
    let mut env = Env::new();
    for (prefix, p) in [("TARGET", &opts.platform), ("BUILD", &opts.build_platform)] {
        env.insert(format!("{prefix}PLATFORM"), p.to_string());
        env.insert(format!("{prefix}OS"), p.os.clone());
        env.insert(format!("{prefix}ARCH"), p.architecture.clone());
        env.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    env
}

/// `ARG a=1 b` -> [("a", Some("1")), ("b", None)], values raw.
fn arg_words(args: &str, escape: char) -> Vec<(String, Option<String>)> {
    split_words(args, escape)
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect()
}

/// Leading `--name=value` flags of an instruction (raw values).
fn flags(args: &str, escape: char) -> Vec<(String, String)> {
    split_words(args, escape)
        .into_iter()
        .take_while(|w| w.starts_with("--"))
        .map(|w| match w[2..].split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), v.to_string()),
            None => (w[2..].to_ascii_lowercase(), String::new()),
        })
        .collect()
}

/// Split a `--mount` value on commas outside double quotes.
fn csv_fields(value: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// A stage's reference to another stage or image by `--from`.
#[derive(Debug, Clone)]
struct FromRef {
    value: String,
    raw: String,
    line: usize,
}

struct RawStage {
    name: Option<String>,
    base: Base,
    base_raw: String,
    platform: Option<String>,
    line: usize,
    froms: Vec<FromRef>,
}

/// Analyse a Dockerfile: stages, the stages the target needs, and every image it names.
pub fn analyze(text: &str, opts: &Options) -> Result<Analysis, Error> {
    let parsed = parse(text)?;
    let escape = parsed.escape;
    let predefined = platform_args(opts);
    let subst = |raw: &str, env: &Env, line: usize| {
        expand(raw, env, escape).map_err(|message| Error::Substitution {
            line,
            text: raw.to_string(),
            message,
        })
    };

    // Global scope: the predefined platform args and the ARGs before the first FROM.
    let mut meta = predefined.clone();
    let mut stages: Vec<RawStage> = Vec::new();
    // Stage scope: variables declared by ARG inside the current stage.
    let mut stage_env = Env::new();
    for ins in &parsed.instructions {
        match ins.keyword.as_str() {
            "ARG" => {
                for (key, default) in arg_words(&ins.args, escape) {
                    if stages.is_empty() {
                        let value = match (opts.build_args.get(&key), default) {
                            (Some(v), _) => Some(v.clone()),
                            (None, Some(d)) => Some(subst(&d, &meta, ins.line)?),
                            (None, None) => predefined.get(&key).cloned(),
                        };
                        match value {
                            Some(v) => meta.insert(key, v),
                            None => meta.remove(&key),
                        };
                    } else {
                        let value = match (opts.build_args.get(&key), default) {
                            (Some(v), _) => Some(v.clone()),
                            (None, Some(d)) => Some(subst(&d, &stage_env, ins.line)?),
                            (None, None) => meta.get(&key).or(predefined.get(&key)).cloned(),
                        };
                        if let Some(v) = value {
                            stage_env.insert(key, v);
                        }
                    }
                }
            }
            "FROM" => {
                let words: Vec<&str> = ins.args.split_whitespace().collect();
                let mut platform = None;
                let mut rest = &words[..];
                while let Some(flag) = rest.first().and_then(|w| w.strip_prefix("--")) {
                    match flag.split_once('=') {
                        Some((k, v)) if k.eq_ignore_ascii_case("platform") => {
                            platform = Some(subst(v, &meta, ins.line)?);
                        }
                        _ => {
                            return Err(Error::Syntax {
                                line: ins.line,
                                message: format!("unknown flag `--{flag}` on FROM"),
                            });
                        }
                    }
                    rest = &rest[1..];
                }
                let (raw, name) = match rest {
                    [image] => (*image, None),
                    [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                        (*image, Some(name.to_ascii_lowercase()))
                    }
                    _ => {
                        return Err(Error::Syntax {
                            line: ins.line,
                            message: "FROM takes `[--platform=<p>] <image> [AS <name>]`".into(),
                        });
                    }
                };
                let image = subst(raw, &meta, ins.line)?;
                if image.is_empty() {
                    return Err(Error::EmptyBase {
                        line: ins.line,
                        raw: raw.to_string(),
                    });
                }
                let lower = image.to_ascii_lowercase();
                let base = if lower == "scratch" {
                    Base::Scratch
                } else if let Some(i) = stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(lower.as_str()))
                {
                    Base::Stage(i)
                } else {
                    Base::Image(image)
                };
                stages.push(RawStage {
                    name,
                    base,
                    base_raw: raw.to_string(),
                    platform,
                    line: ins.line,
                    froms: Vec::new(),
                });
                // Inside a stage only the ARGs declared in it are visible (the predefined
                // platform ones too must be declared again).
                stage_env = Env::new();
            }
            "COPY" | "RUN" => {
                let Some(stage) = stages.last_mut() else {
                    return Err(Error::Syntax {
                        line: ins.line,
                        message: format!("{} before the first FROM", ins.keyword),
                    });
                };
                for (name, value) in flags(&ins.args, escape) {
                    if ins.keyword == "COPY" && name == "from" {
                        let v = subst(&value, &stage_env, ins.line)?;
                        stage.froms.push(FromRef {
                            value: v,
                            raw: value,
                            line: ins.line,
                        });
                    } else if ins.keyword == "RUN" && name == "mount" {
                        for field in csv_fields(&value) {
                            if let Some((k, v)) = field.split_once('=')
                                && k.trim().eq_ignore_ascii_case("from")
                            {
                                let expanded = subst(v, &stage_env, ins.line)?;
                                stage.froms.push(FromRef {
                                    value: expanded,
                                    raw: v.to_string(),
                                    line: ins.line,
                                });
                            }
                        }
                    }
                }
            }
            _ => {
                if stages.is_empty() && ins.keyword != "ARG" {
                    return Err(Error::Syntax {
                        line: ins.line,
                        message: format!(
                            "{} before the first FROM (only ARG may come first)",
                            ins.keyword
                        ),
                    });
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(Error::NoFrom);
    }

    let target = match &opts.target {
        None => stages.len() - 1,
        Some(t) => {
            let t_lower = t.to_ascii_lowercase();
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t_lower.as_str()))
                .ok_or_else(|| Error::TargetNotFound {
                    target: t.clone(),
                    stages: stages
                        .iter()
                        .enumerate()
                        .map(|(i, s)| s.name.clone().unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?
        }
    };

    // Resolve each `--from` to a stage or an image.
    enum Dep {
        Stage(usize),
        Image,
    }
    let mut deps: Vec<Vec<(Dep, FromRef)>> = Vec::with_capacity(stages.len());
    for (si, s) in stages.iter().enumerate() {
        let mut d = Vec::new();
        for f in &s.froms {
            let lower = f.value.to_ascii_lowercase();
            if !f.value.is_empty() && f.value.bytes().all(|b| b.is_ascii_digit()) {
                match f.value.parse::<usize>() {
                    Ok(i) if i < si => d.push((Dep::Stage(i), f.clone())),
                    _ => {
                        return Err(Error::BadStageIndex {
                            line: f.line,
                            index: f.value.clone(),
                        });
                    }
                }
            } else if let Some(i) = stages
                .iter()
                .position(|x| x.name.as_deref() == Some(lower.as_str()))
            {
                d.push((Dep::Stage(i), f.clone()));
            } else if f.value.is_empty() {
                return Err(Error::Syntax {
                    line: f.line,
                    message: format!("`--from={}` is empty after substitution", f.raw),
                });
            } else {
                d.push((Dep::Image, f.clone()));
            }
        }
        deps.push(d);
    }

    // Stages the target needs: its base chain and `--from` stages, transitively.
    let mut needed = vec![false; stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        if let Base::Stage(b) = stages[i].base {
            todo.push(b);
        }
        for (dep, _) in &deps[i] {
            if let Dep::Stage(s) = dep {
                todo.push(*s);
            }
        }
    }

    let mut images = Vec::new();
    let syntax = match opts.build_args.get("BUILDKIT_SYNTAX") {
        Some(v) if !v.is_empty() => Some((v.clone(), v.clone(), 0)),
        _ => parsed
            .syntax
            .as_ref()
            .map(|(v, line)| (v.clone(), v.clone(), *line)),
    };
    if let Some((reference, raw, line)) = syntax {
        images.push(ImageUse {
            kind: Use::Syntax,
            reference,
            raw,
            line,
            stage: None,
            platform: None,
        });
    }
    for (i, s) in stages.iter().enumerate() {
        if let Base::Image(image) = &s.base {
            images.push(ImageUse {
                kind: if needed[i] {
                    Use::From
                } else {
                    Use::UnusedStage
                },
                reference: image.clone(),
                raw: s.base_raw.clone(),
                line: s.line,
                stage: Some(i),
                platform: s.platform.clone(),
            });
        }
        for (dep, f) in &deps[i] {
            if let Dep::Image = dep {
                images.push(ImageUse {
                    kind: if needed[i] {
                        Use::CopyFrom
                    } else {
                        Use::UnusedStage
                    },
                    reference: f.value.clone(),
                    raw: f.raw.clone(),
                    line: f.line,
                    stage: Some(i),
                    platform: None,
                });
            }
        }
    }
    let stages = stages
        .into_iter()
        .enumerate()
        .map(|(i, s)| Stage {
            name: s.name,
            base: s.base,
            line: s.line,
            needed: needed[i],
        })
        .collect();
    Ok(Analysis {
        stages,
        target,
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(u: Use) -> &'static str {
        match u {
            Use::From => "from",
            Use::CopyFrom => "copy",
            Use::UnusedStage => "unused",
            Use::Syntax => "syntax",
        }
    }

    /// `kind:reference` strings, sorted and unique, for compact comparisons.
    fn uses(text: &str, opts: &Options) -> Vec<String> {
        let mut v: Vec<String> = analyze(text, opts)
            .unwrap()
            .images
            .into_iter()
            .map(|u| format!("{}:{}", label(u.kind), u.reference))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn with(args: &[(&str, &str)], target: Option<&str>) -> Options {
        Options {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: target.map(str::to_string),
            ..Options::default()
        }
    }

    fn d() -> Options {
        Options::default()
    }

    /// One-line case: Dockerfile text, options, expected sorted `kind:ref` list.
    macro_rules! case {
        ($name:ident, $text:expr, $opts:expr, [$($want:expr),* $(,)?]) => {
            #[test]
            fn $name() {
                let want: Vec<String> = vec![$($want.to_string()),*];
                assert_eq!(uses($text, &$opts), want);
            }
        };
    }
    macro_rules! fails {
        ($name:ident, $text:expr, $opts:expr, $pat:pat) => {
            #[test]
            fn $name() {
                let r = analyze($text, &$opts);
                assert!(matches!(r, Err($pat)), "{r:?}");
            }
        };
    }

    #[rustfmt::skip]
    mod cases {
        use super::*;

        case!(plain, "FROM alpine:3.19\n", d(), ["from:alpine:3.19"]);
        case!(lower_case_keyword, "from alpine as base\nrun true\n", d(), ["from:alpine"]);
        case!(scratch_excluded, "FROM scratch\nCOPY x /\n", d(), []);
        case!(stage_excluded, "FROM golang:1.22 AS build\nFROM build\n", d(), ["from:golang:1.22"]);
        case!(stage_case_insensitive, "FROM golang:1.22 AS Build\nFROM BUILD AS x\n", d(), ["from:golang:1.22"]);
        case!(later_stage_name_is_an_image, "FROM later\nFROM alpine AS later\n", with(&[], Some("later")), ["from:alpine", "unused:later"]);
        case!(meta_arg_default, "ARG V=3.19\nFROM alpine:${V}\n", d(), ["from:alpine:3.19"]);
        case!(meta_arg_unbraced, "ARG V=3.19\nFROM alpine:$V\n", d(), ["from:alpine:3.19"]);
        case!(meta_arg_build_arg, "ARG V=3.19\nFROM alpine:${V}\n", with(&[("V", "3.20")], None), ["from:alpine:3.20"]);
        case!(meta_arg_default_form, "ARG V\nFROM alpine:${V:-edge}\n", d(), ["from:alpine:edge"]);
        case!(meta_arg_dash_form, "ARG V=\nFROM alpine:${V-edge}x\n", d(), ["from:alpine:x"]);
        case!(meta_arg_plus_form, "ARG V=1\nFROM alpine${V:+:3.19}\n", d(), ["from:alpine:3.19"]);
        case!(meta_arg_plus_unset, "ARG V\nFROM alpine${V:+:3.19}\n", d(), ["from:alpine"]);
        case!(meta_arg_chain, "ARG A=3\nARG B=${A}.19\nFROM alpine:${B}\n", d(), ["from:alpine:3.19"]);
        case!(meta_arg_quoted, "ARG V=\"3.19\"\nFROM alpine:${V}\n", d(), ["from:alpine:3.19"]);
        case!(meta_arg_several, "ARG R=docker.io T=1\nFROM ${R}/x/y:${T}\n", d(), ["from:docker.io/x/y:1"]);
        case!(stage_arg_does_not_reach_from, "ARG V=1\nFROM a:${V} AS s\nARG V=2\nFROM b:${V}\n", d(), ["from:b:1", "unused:a:1"]);
        case!(undeclared_build_arg_ignored, "FROM alpine:${V:-x}\n", with(&[("V", "y")], None), ["from:alpine:x"]);
        case!(nested_default, "ARG A\nARG B\nFROM alpine:${A:-${B:-3.19}}\n", d(), ["from:alpine:3.19"]);
        case!(target_platform_predefined, "FROM --platform=$TARGETPLATFORM img:${TARGETARCH}\n", d(), ["from:img:amd64"]);
        case!(build_platform_flag, "FROM --platform=$BUILDPLATFORM golang AS b\nFROM alpine\nCOPY --from=b / /\n", d(), ["from:alpine", "from:golang"]);
        case!(target_arch_from_options, "FROM img:${TARGETARCH}${TARGETVARIANT}\n", Options { platform: "linux/arm/v7".parse().unwrap(), ..d() }, ["from:img:armv7"]);
        case!(copy_from_image, "FROM alpine\nCOPY --from=busybox:1.36 /bin/busybox /\n", d(), ["copy:busybox:1.36", "from:alpine"]);
        case!(copy_from_stage_index, "FROM golang AS b\nFROM alpine\nCOPY --from=0 /x /\n", d(), ["from:alpine", "from:golang"]);
        case!(copy_from_with_other_flags, "FROM alpine\nCOPY --link --chown=1:1 --from=nginx /x /\n", d(), ["copy:nginx", "from:alpine"]);
        case!(copy_from_arg, "FROM alpine\nARG SRC=tools:1\nCOPY --from=${SRC} /x /\n", d(), ["copy:tools:1", "from:alpine"]);
        case!(add_has_no_from, "FROM alpine\nADD --chown=1 x /\n", d(), ["from:alpine"]);
        case!(run_mount_from_image, "FROM alpine\nRUN --mount=type=bind,from=cache-img:2,target=/c true\n", d(), ["copy:cache-img:2", "from:alpine"]);
        case!(run_mount_from_stage, "FROM node AS deps\nFROM alpine\nRUN --mount=type=cache,target=/c,from=deps true\n", d(), ["from:alpine", "from:node"]);
        case!(run_two_mounts, "FROM a\nRUN --mount=from=b --mount=type=bind,from=c true\n", d(), ["copy:b", "copy:c", "from:a"]);
        case!(unused_stage, "FROM node AS dev\nFROM nginx AS prod\n", with(&[], Some("dev")), ["from:node", "unused:nginx"]);
        case!(unused_copy_from, "FROM node AS dev\nFROM dev AS envs\nCOPY --from=gloursdocker/docker / /\n", with(&[], Some("dev")), ["from:node", "unused:gloursdocker/docker"]);
        case!(target_case_insensitive, "FROM node AS Dev\nFROM nginx\n", with(&[], Some("DEV")), ["from:node", "unused:nginx"]);
        case!(copy_from_pulls_in_stage, "FROM golang AS b\nFROM debian AS x\nFROM alpine\nCOPY --from=b / /\n", d(), ["from:alpine", "from:golang", "unused:debian"]);
        case!(syntax, "# syntax=docker/dockerfile:1.4\nFROM alpine\n", d(), ["from:alpine", "syntax:docker/dockerfile:1.4"]);
        case!(syntax_spaces, "#  syntax = docker/dockerfile:1\nFROM alpine\n", d(), ["from:alpine", "syntax:docker/dockerfile:1"]);
        case!(syntax_upper, "# SYNTAX=docker/dockerfile:1\nFROM alpine\n", d(), ["from:alpine", "syntax:docker/dockerfile:1"]);
        case!(syntax_after_escape, "# escape=`\n# syntax=docker/dockerfile:1\nFROM alpine\n", d(), ["from:alpine", "syntax:docker/dockerfile:1"]);
        case!(syntax_after_blank_is_comment, "\n# syntax=docker/dockerfile:1\nFROM alpine\n", d(), ["from:alpine"]);
        case!(syntax_after_comment_is_comment, "# hello\n# syntax=docker/dockerfile:1\nFROM alpine\n", d(), ["from:alpine"]);
        case!(syntax_after_unknown_directive, "# foo=bar\n# syntax=docker/dockerfile:1\nFROM alpine\n", d(), ["from:alpine"]);
        case!(syntax_build_arg, "FROM alpine\n", with(&[("BUILDKIT_SYNTAX", "docker/dockerfile:1.7")], None), ["from:alpine", "syntax:docker/dockerfile:1.7"]);
        case!(continuation, "FROM \\\n  alpine:3.19 \\\n  AS base\nFROM base\n", d(), ["from:alpine:3.19"]);
        case!(continuation_trailing_blank, "FROM \\  \nalpine\n", d(), ["from:alpine"]);
        case!(continuation_comment_inside, "ARG \\\n# a comment\n  V=1\nFROM a:${V}\n", d(), ["from:a:1"]);
        case!(continuation_empty_line_inside, "FROM \\\n\nalpine\n", d(), ["from:alpine"]);
        case!(escape_backtick, "# escape=`\nFROM `\n  alpine\nRUN dir c:\\\n", d(), ["from:alpine"]);
        case!(crlf, "ARG V=1\r\nFROM a:${V} AS x\r\nFROM x\r\n", d(), ["from:a:1"]);
        case!(bom, "\u{feff}# syntax=docker/dockerfile:1\nFROM a\n", d(), ["from:a", "syntax:docker/dockerfile:1"]);
        case!(indented_comment, "FROM a\n   # FROM b c d e\n", d(), ["from:a"]);
        case!(heredoc_skipped, "FROM alpine\nRUN <<EOF\nFROM evil\nEOF\nFROM b\n", d(), ["from:b", "unused:alpine"]);
        case!(heredoc_dash, "FROM alpine\nRUN <<-EOF\n\tFROM evil\n\tEOF\n", d(), ["from:alpine"]);
        case!(heredoc_quoted, "FROM alpine\nCOPY <<'EOF' /x\nFROM evil\nEOF\n", d(), ["from:alpine"]);
        case!(heredoc_double_quoted, "FROM alpine\nRUN cat <<\"END\" > /x\nFROM evil\nEND\n", d(), ["from:alpine"]);
        case!(heredoc_two, "FROM alpine\nRUN <<A cat - <<B\nFROM x\nA\nFROM y\nB\n", d(), ["from:alpine"]);
        case!(heredoc_fd, "FROM alpine\nRUN 3<<EOF cat\nFROM x\nEOF\n", d(), ["from:alpine"]);
        case!(heredoc_after_continuation, "FROM alpine\nRUN \\\n  cat <<EOF\nFROM x\nEOF\n", d(), ["from:alpine"]);
        case!(heredoc_not_in_quotes, "FROM alpine\nRUN echo \"<<EOF\"\nFROM b\n", d(), ["from:b", "unused:alpine"]);
        case!(here_string_is_not_heredoc, "FROM alpine\nRUN cat <<<hi\nFROM b\n", d(), ["from:b", "unused:alpine"]);
        case!(heredoc_only_on_run_copy_add, "FROM alpine\nLABEL a=<<EOF\nFROM b\n", d(), ["from:b", "unused:alpine"]);
        case!(digest_ref, "FROM alpine@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n", d(), ["from:alpine@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]);
        case!(escaped_dollar, "FROM a\\$b\n", d(), ["from:a$b"]);
        case!(single_quotes_literal, "ARG V=1\nFROM 'a:${V}'\n", d(), ["from:a:${V}"]);
        case!(double_quotes_expand, "ARG V=1\nFROM \"a:${V}\"\n", d(), ["from:a:1"]);

        fails!(empty_base, "ARG FROM\nFROM ${FROM}\n", d(), Error::EmptyBase { line: 2, .. });
        fails!(required_arg, "ARG V\nFROM a:${V:?required}\n", d(), Error::Substitution { line: 2, .. });
        fails!(unterminated_heredoc, "FROM a\nRUN <<EOF\necho\n", d(), Error::UnterminatedHeredoc { line: 2, .. });
        fails!(unknown_target, "FROM a AS x\n", with(&[], Some("y")), Error::TargetNotFound { .. });
        fails!(bad_index, "FROM a\nCOPY --from=3 / /\n", d(), Error::BadStageIndex { line: 2, .. });
        fails!(own_index, "FROM a\nCOPY --from=0 / /\n", d(), Error::BadStageIndex { line: 2, .. });
        fails!(no_from, "ARG A=1\n", d(), Error::NoFrom);
        fails!(run_before_from, "RUN true\nFROM a\n", d(), Error::Syntax { line: 1, .. });
        fails!(bad_from, "FROM a b c d\n", d(), Error::Syntax { line: 1, .. });
        fails!(trailing_comment_is_an_argument, "FROM alpine # x\n", d(), Error::Syntax { line: 1, .. });
        fails!(bad_flag, "FROM --pull=1 a\n", d(), Error::Syntax { line: 1, .. });
        fails!(bad_escape, "# escape=x\nFROM a\n", d(), Error::Directive { line: 1, .. });
        fails!(two_syntax, "# syntax=a\n# syntax=b\nFROM a\n", d(), Error::Directive { line: 2, .. });
        fails!(unterminated_brace, "FROM a:${V\n", d(), Error::Substitution { .. });
        fails!(unsupported_modifier, "ARG V=a\nFROM ${V%a}\n", d(), Error::Substitution { .. });
    }

    #[test]
    fn stages_and_lines() {
        let text = "# syntax=docker/dockerfile:1\nARG V=1\nFROM a:${V} AS one\nFROM one AS two\nFROM scratch\n";
        let a = analyze(text, &with(&[], Some("two"))).unwrap();
        assert_eq!(a.target, 1);
        assert_eq!(a.stages[1].base, Base::Stage(0));
        assert_eq!(a.stages[2].base, Base::Scratch);
        assert_eq!(
            a.stages.iter().map(|s| s.needed).collect::<Vec<_>>(),
            [true, true, false]
        );
        let from = a.images.iter().find(|u| u.kind == Use::From).unwrap();
        assert_eq!(
            (from.line, from.raw.as_str(), from.reference.as_str()),
            (3, "a:${V}", "a:1")
        );
        assert_eq!((a.images[0].kind, a.images[0].line), (Use::Syntax, 1));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "",
            "\\",
            "FROM",
            "FROM ${",
            "FROM $",
            "ARG =",
            "COPY --from",
            "RUN --mount=from",
            "FROM a\nRUN <<",
            "# escape=`\n`",
            "FROM a\nCOPY --from= /",
            "FROM a:${V:",
            "FROM \"a",
            "FROM 'a",
            "FROM a\nRUN <<-",
        ] {
            let _ = analyze(text, &d());
        }
    }

    /// Every `*.expected-from.txt` of the shared fixtures: the (kind, image) set must match exactly.
    #[test]
    fn fixtures_expected_from() {
        let root = std::env::var_os("AIRLOCK_FIXTURES")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/compose")
            });
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = fs_err::read_dir(&dir).unwrap_or_else(|e| {
                panic!(
                    "fixtures folder `{}`: {e} (set AIRLOCK_FIXTURES)",
                    dir.display()
                )
            });
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.to_string_lossy().ends_with(".expected-from.txt") {
                    files.push(path);
                }
            }
        }
        assert!(
            !files.is_empty(),
            "no *.expected-from.txt under {}",
            root.display()
        );
        let kind = |k: &str| match k {
            "build-from" => "from",
            "build-copy-from" => "copy",
            "build-from-unused-stage" => "unused",
            "build-syntax" => "syntax",
            other => panic!("unexpected kind {other}"),
        };
        let mut failures = Vec::new();
        for expected in &files {
            let text = fs_err::read_to_string(expected).unwrap();
            let dockerfile = std::path::PathBuf::from(
                expected
                    .to_string_lossy()
                    .trim_end_matches(".expected-from.txt"),
            );
            let mut opts = Options::default();
            // `# build args: {"FROM": "docker.io/ubuntu:24.04"}; target: (last stage)`
            for line in text
                .lines()
                .filter_map(|l| l.strip_prefix("# build args: "))
            {
                let (args, target) = line.split_once("; target: ").unwrap();
                opts.build_args = serde_json::from_str(args).unwrap();
                if !target.starts_with('(') {
                    opts.target = Some(target.trim().to_string());
                }
            }
            let mut want: Vec<String> = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| {
                    let mut cols = l.split('\t');
                    format!("{}:{}", kind(cols.next().unwrap()), cols.next().unwrap())
                })
                .collect();
            want.sort();
            want.dedup();
            let got = uses(&fs_err::read_to_string(&dockerfile).unwrap(), &opts);
            if got != want {
                failures.push(format!(
                    "{}: got {got:?}, want {want:?}",
                    dockerfile.display()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} Dockerfiles differ:\n{}",
            failures.len(),
            files.len(),
            failures.join("\n")
        );
        #[allow(clippy::disallowed_macros)] // test output
        {
            eprintln!("{} Dockerfiles checked", files.len());
        }
    }
}
