//! `.env` files as Compose reads them (compose-go `dotenv`): `KEY=value`, optional `export `,
//! `#` comments (in unquoted values only after white space), single quotes literal, double
//! quotes with `\n`-style escapes and interpolation, unquoted values interpolated and trimmed,
//! `KEY` alone inherits from the environment. Used by `loader` for `.env`, `--env-file` and the
//! `env_file` of `include`.

use super::interpolate::{InterpolationError, interpolate};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("line {line}: {source}")]
    Interpolation {
        line: usize,
        #[source]
        source: InterpolationError,
    },
}

impl DotenvError {
    pub fn line(&self) -> usize {
        match self {
            DotenvError::Syntax { line, .. } | DotenvError::Interpolation { line, .. } => *line,
        }
    }
}

/// Parse a dotenv text. Variables are interpolated with `lookup` first (the process
/// environment wins), then with the values defined earlier in the same text.
pub fn parse_dotenv(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, DotenvError> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser {
        c: &chars,
        i: 0,
        line: 1,
    };
    loop {
        p.skip_while(|c| c.is_whitespace());
        let Some(c) = p.peek() else { break };
        if c == '#' {
            p.skip_while(|c| c != '\n');
            continue;
        }
        let line = p.line;
        let syntax = |message: String| DotenvError::Syntax { line, message };
        let mut key = p.take_while(|c| !matches!(c, '=' | ':' | '\n' | '#') && !c.is_whitespace());
        if key == "export" && p.peek().is_some_and(|c| c == ' ' || c == '\t') {
            p.skip_while(|c| c == ' ' || c == '\t');
            key = p.take_while(|c| !matches!(c, '=' | ':' | '\n' | '#') && !c.is_whitespace());
        }
        if key.is_empty() {
            return Err(syntax(format!(
                "unexpected character `{}` where a variable name was expected",
                p.peek().unwrap_or(' ')
            )));
        }
        if let Some(bad) = key
            .chars()
            .find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')))
        {
            return Err(syntax(format!(
                "unexpected character `{bad}` in variable name `{key}`"
            )));
        }
        p.skip_while(|c| c == ' ' || c == '\t' || c == '\r');
        match p.peek() {
            None | Some('\n') | Some('#') => {
                // `KEY` alone: inherit from the environment, or leave unset.
                p.skip_while(|c| c != '\n');
                if let Some(v) = lookup(&key).or_else(|| vars.get(&key).cloned()) {
                    vars.insert(key, v);
                }
                continue;
            }
            Some('=') | Some(':') => p.i += 1,
            Some(other) => {
                return Err(syntax(format!(
                    "unexpected character `{other}` after variable name `{key}`"
                )));
            }
        }
        p.skip_while(|c| c == ' ' || c == '\t');
        let value = match p.peek() {
            Some('\'') => {
                p.i += 1;
                let v = p.take_while(|c| c != '\'');
                if p.peek() != Some('\'') {
                    return Err(syntax(format!(
                        "unterminated single-quoted value of `{key}`"
                    )));
                }
                p.i += 1;
                p.skip_while(|c| c != '\n');
                v
            }
            Some('"') => {
                p.i += 1;
                let template = p.double_quoted().ok_or_else(|| {
                    syntax(format!("unterminated double-quoted value of `{key}`"))
                })?;
                p.skip_while(|c| c != '\n');
                expand(&template, lookup, &vars, line)?
            }
            _ => {
                let raw = p.take_while(|c| c != '\n');
                let raw = match raw
                    .char_indices()
                    .find(|&(i, c)| c == '#' && (i == 0 || raw[..i].ends_with([' ', '\t'])))
                {
                    Some((i, _)) => &raw[..i],
                    None => &raw[..],
                };
                expand(raw.trim(), lookup, &vars, line)?
            }
        };
        vars.insert(key, value);
    }
    Ok(vars)
}

fn expand(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    vars: &BTreeMap<String, String>,
    line: usize,
) -> Result<String, DotenvError> {
    let both = |name: &str| lookup(name).or_else(|| vars.get(name).cloned());
    interpolate(template, &both)
        .map(|(s, _)| s)
        .map_err(|source| DotenvError::Interpolation { line, source })
}

struct Parser<'a> {
    c: &'a [char],
    i: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.i;
        self.skip_while(f);
        self.c[start..self.i].iter().collect()
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            if c == '\n' {
                self.line += 1;
            }
            self.i += 1;
        }
    }

    /// Read a double-quoted value (after the opening quote) up to the closing quote, turning
    /// escapes into characters. `\$` becomes `$$` so interpolation leaves a literal `$`.
    fn double_quoted(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                '"' => return Some(out),
                '\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        '\\' => out.push('\\'),
                        '"' => out.push('"'),
                        '\'' => out.push('\''),
                        '$' => out.push_str("$$"),
                        '\n' => self.line += 1,
                        other => {
                            out.push('\\');
                            out.push(other);
                        }
                    }
                }
                '\n' => {
                    self.line += 1;
                    out.push('\n');
                }
                other => out.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "OS_WINS" => Some("os".into()),
            _ => None,
        }
    }

    fn get(text: &str, key: &str) -> Option<String> {
        parse_dotenv(text, &env).unwrap().get(key).cloned()
    }

    macro_rules! case {
        ($name:ident, $text:expr, $key:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(get($text, $key).as_deref(), $want);
            }
        };
    }

    case!(simple, "A=b", "A", Some("b"));
    case!(export_prefix, "export A=b", "A", Some("b"));
    case!(spaces_around, "  A  =  b  ", "A", Some("b"));
    case!(empty_value, "A=", "A", Some(""));
    case!(comment_line, "# A=x\nA=b", "A", Some("b"));
    case!(inline_comment, "A=b # note", "A", Some("b"));
    case!(hash_without_space_kept, "A=b#c", "A", Some("b#c"));
    case!(
        single_quotes_literal,
        "A='$HOME \\n #x'",
        "A",
        Some("$HOME \\n #x")
    );
    case!(
        double_quotes_escapes,
        "A=\"a\\nb\\t\\\"c\\\"\"",
        "A",
        Some("a\nb\t\"c\"")
    );
    case!(
        double_quotes_interpolate,
        "A=\"${HOME}/x\"",
        "A",
        Some("/home/u/x")
    );
    case!(
        double_quotes_escaped_dollar,
        "A=\"\\$HOME\"",
        "A",
        Some("$HOME")
    );
    case!(double_quotes_comment_after, "A=\"b\" # c", "A", Some("b"));
    case!(
        double_quotes_multiline,
        "A=\"x\ny\"\nB=1",
        "A",
        Some("x\ny")
    );
    case!(unquoted_interpolates, "A=$HOME/x", "A", Some("/home/u/x"));
    case!(default_form, "A=${NOPE:-def}", "A", Some("def"));
    case!(earlier_value_used, "A=1\nB=${A}2", "B", Some("12"));
    case!(
        environment_wins_in_expansion,
        "OS_WINS=file\nB=$OS_WINS",
        "B",
        Some("os")
    );
    case!(inherit_set, "HOME", "HOME", Some("/home/u"));
    case!(inherit_unset, "NOPE", "NOPE", None);
    case!(yaml_style, "A: b", "A", Some("b"));
    case!(crlf, "A=b\r\nB=c\r\n", "A", Some("b"));
    case!(later_wins, "A=1\nA=2", "A", Some("2"));
    case!(dotted_key, "a.b-c=1", "a.b-c", Some("1"));

    #[test]
    fn bad_key_is_an_error_with_line() {
        let e = parse_dotenv("A=1\nB C=2\n", &env).unwrap_err();
        assert_eq!(e.line(), 2);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(parse_dotenv("A='x", &env).is_err());
        assert!(parse_dotenv("A=\"x", &env).is_err());
    }

    #[test]
    fn required_variable_is_an_error() {
        let e = parse_dotenv("A=${NOPE:?missing}", &env).unwrap_err();
        assert!(
            matches!(e, DotenvError::Interpolation { line: 1, .. }),
            "{e:?}"
        );
    }
}
