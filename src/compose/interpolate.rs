//! Compose variable interpolation (compose-go `template` semantics): `$VAR`, `${VAR}`,
//! `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`, `${VAR:+a}`, `${VAR+a}`, nesting in the
//! argument (`${A:-${B:-x}}`) and `$$` for a literal `$`. Used by `loader` on every scalar
//! value of a compose file and by `dotenv` on unquoted and double-quoted values.

/// Deepest `${...}` nesting accepted inside one value.
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `${VAR:?message}` / `${VAR?message}` with VAR missing (or empty for `:?`).
    #[error("required variable `{variable}` is missing a value: {message}")]
    Required { variable: String, message: String },
    /// `${` not followed by a name and a known operator, or never closed.
    #[error("invalid interpolation format `{template}`")]
    Invalid { template: String },
    #[error("interpolation `{template}` nests deeper than {MAX_NESTING} levels")]
    TooDeep { template: String },
}

/// Substitute variables in `template`. Returns the result and the names of variables that
/// were used without a default while unset (in order, possibly repeated).
///
/// As in compose-go, the argument of an operator is interpolated whether or not it is used,
/// so `${A:-${B:?}}` fails when B is unset even if A is set.
pub fn interpolate(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), InterpolationError> {
    let mut unset = Vec::new();
    let out = substitute(template, template, lookup, &mut unset, 0)?;
    Ok((out, unset))
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_name_char(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// Index of the `}` closing the `${` at `start` (counts nested `${`, like compose-go).
fn closing_brace(s: &str, start: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut open = 0usize;
    let mut i = start;
    while i < b.len() {
        if b[i] == b'}' {
            open = open.saturating_sub(1);
            if open == 0 {
                return Some(i);
            }
        } else if b[i] == b'$' && b.get(i + 1) == Some(&b'{') {
            open += 1;
            i += 1;
        }
        i += 1;
    }
    None
}

fn substitute(
    s: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    depth: usize,
) -> Result<String, InterpolationError> {
    if depth > MAX_NESTING {
        return Err(InterpolationError::TooDeep {
            template: whole.to_string(),
        });
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(off) = s[i..].find('$') {
        let p = i + off;
        out.push_str(&s[i..p]);
        match b.get(p + 1) {
            Some(b'$') => {
                out.push('$');
                i = p + 2;
            }
            Some(b'{') => {
                let close = closing_brace(s, p).ok_or_else(|| InterpolationError::Invalid {
                    template: whole.to_string(),
                })?;
                out.push_str(&braced(&s[p + 2..close], whole, lookup, unset, depth)?);
                i = close + 1;
            }
            Some(&c) if is_name_start(c) => {
                let end = b[p + 1..]
                    .iter()
                    .position(|&c| !is_name_char(c))
                    .map_or(b.len(), |n| p + 1 + n);
                let name = &s[p + 1..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => unset.push(name.to_string()),
                }
                i = end;
            }
            // A lone `$` (end of text, `$1`, `$ `) stays literal, as in compose v2.
            _ => {
                out.push('$');
                i = p + 1;
            }
        }
    }
    out.push_str(&s[i..]);
    Ok(out)
}

/// Evaluate the inside of `${...}`.
fn braced(
    inner: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
    depth: usize,
) -> Result<String, InterpolationError> {
    let invalid = || InterpolationError::Invalid {
        template: whole.to_string(),
    };
    let b = inner.as_bytes();
    if !b.first().is_some_and(|&c| is_name_start(c)) {
        return Err(invalid());
    }
    let name_len = b.iter().position(|&c| !is_name_char(c)).unwrap_or(b.len());
    let (name, rest) = inner.split_at(name_len);
    if rest.is_empty() {
        return Ok(match lookup(name) {
            Some(v) => v,
            None => {
                unset.push(name.to_string());
                String::new()
            }
        });
    }
    let (op, arg) = ["-", "?", "+", ":-", ":?", ":+"]
        .into_iter()
        .rev()
        .find_map(|op| rest.strip_prefix(op).map(|arg| (op, arg)))
        .ok_or_else(invalid)?;
    let arg = substitute(arg, whole, lookup, unset, depth + 1)?;
    let value = lookup(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    Ok(match op {
        ":-" if set_nonempty => value.unwrap_or_default(),
        ":-" => arg,
        "-" => value.unwrap_or(arg),
        ":?" | "?" => {
            let ok = if op == ":?" {
                set_nonempty
            } else {
                value.is_some()
            };
            if !ok {
                return Err(InterpolationError::Required {
                    variable: name.to_string(),
                    message: arg,
                });
            }
            value.unwrap_or_default()
        }
        ":+" if set_nonempty => arg,
        "+" if value.is_some() => arg,
        _ => value.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "TAG" => Some("1.25".into()),
            "lower_case" => Some("low".into()),
            _ => None,
        }
    }

    fn run(t: &str) -> Result<String, InterpolationError> {
        interpolate(t, &env).map(|(s, _)| s)
    }

    macro_rules! case {
        ($name:ident, $t:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(run($t).as_deref(), Ok($want));
            }
        };
    }
    macro_rules! fails {
        ($name:ident, $t:expr, $pat:pat) => {
            #[test]
            fn $name() {
                let r = run($t);
                assert!(matches!(r, Err($pat)), "{r:?}");
            }
        };
    }

    case!(plain_text, "redis:7", "redis:7");
    case!(unbraced, "nginx:$TAG", "nginx:1.25");
    case!(unbraced_stops_at_non_name, "$SET-x", "value-x");
    case!(braced, "${SET}", "value");
    case!(lower_case_name, "${lower_case}", "low");
    case!(unset_is_empty, "a${NOPE}b", "ab");
    case!(unbraced_unset_is_empty, "a$NOPE", "a");
    case!(dollar_dollar, "$$SET", "$SET");
    case!(dollar_dollar_braced, "$${SET}", "${SET}");
    case!(lone_dollar_at_end, "cost$", "cost$");
    case!(dollar_digit, "$1", "$1");
    case!(dollar_space, "a $ b", "a $ b");
    case!(colon_dash_unset, "${NOPE:-d}", "d");
    case!(colon_dash_empty, "${EMPTY:-d}", "d");
    case!(colon_dash_set, "${SET:-d}", "value");
    case!(dash_unset, "${NOPE-d}", "d");
    case!(dash_empty, "${EMPTY-d}", "");
    case!(dash_set, "${SET-d}", "value");
    case!(
        dash_default_with_dash,
        "netbox:${NOPE-v4.1-3.0.2}",
        "netbox:v4.1-3.0.2"
    );
    case!(colon_plus_set, "${SET:+alt}", "alt");
    case!(colon_plus_empty, "${EMPTY:+alt}", "");
    case!(colon_plus_unset, "${NOPE:+alt}", "");
    case!(plus_empty, "${EMPTY+alt}", "alt");
    case!(plus_unset, "${NOPE+alt}", "");
    case!(question_set, "${SET?err}", "value");
    case!(question_empty, "${EMPTY?err}", "");
    case!(colon_question_set, "${SET:?err}", "value");
    case!(nested_default, "${NOPE:-${SET:-x}}", "value");
    case!(nested_twice, "${NOPE:-${ALSO_NOPE:-x}}", "x");
    case!(nested_then_text, "${NOPE:-${SET}}:${TAG}", "value:1.25");
    case!(default_with_dollar_dollar, "${NOPE:-$$x}", "$x");
    case!(default_with_colon, "${NOPE:-a:b}", "a:b");
    case!(empty_default, "${NOPE:-}", "");
    case!(utf8_around, "é${SET}ü", "évalueü");
    fails!(
        colon_question_unset,
        "${NOPE:?need it}",
        InterpolationError::Required { .. }
    );
    fails!(
        colon_question_empty,
        "${EMPTY:?need it}",
        InterpolationError::Required { .. }
    );
    fails!(
        question_unset,
        "${NOPE?need it}",
        InterpolationError::Required { .. }
    );
    fails!(
        nested_required,
        "${SET:-${NOPE:?x}}",
        InterpolationError::Required { .. }
    );
    fails!(unclosed, "${SET", InterpolationError::Invalid { .. });
    fails!(empty_braces, "${}", InterpolationError::Invalid { .. });
    fails!(
        bad_operator,
        "${SET:=x}",
        InterpolationError::Invalid { .. }
    );
    fails!(bad_name, "${1A}", InterpolationError::Invalid { .. });
    fails!(
        space_in_name,
        "${SET X}",
        InterpolationError::Invalid { .. }
    );

    #[test]
    fn required_message_is_kept() {
        let e = run("${NOPE:?set NOPE in .env}").unwrap_err();
        assert_eq!(
            e,
            InterpolationError::Required {
                variable: "NOPE".into(),
                message: "set NOPE in .env".into()
            }
        );
    }

    #[test]
    fn unset_variables_are_reported() {
        let (_, unset) = interpolate("$A ${B} ${C:-x} ${SET} ${D:+y}", &env).unwrap();
        assert_eq!(unset, ["A", "B"]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let t = "${A:-".repeat(10_000) + &"}".repeat(10_000);
        assert!(matches!(run(&t), Err(InterpolationError::TooDeep { .. })));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = run(&s);
        }

        #[test]
        fn never_panics_on_template_alphabet(s in "[$\\{\\}:?+\\-a-zA-Z_0-9 ]{0,60}") {
            let _ = run(&s);
        }

        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]{0,200}") {
            prop_assert_eq!(run(&s), Ok(s.clone()));
        }

        #[test]
        fn escaped_dollars_round_trip(s in ".{0,200}") {
            let escaped = s.replace('$', "$$");
            prop_assert_eq!(run(&escaped), Ok(s.clone()));
        }
    }
}
