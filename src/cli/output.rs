//! Output conventions for every command: JSON documents on stdout with `--json`,
//! human text otherwise, `--quiet`, colour only on a terminal and without `NO_COLOR`.
//! Everything on stdout goes through [`stdout_line`]: when the reader closes the pipe
//! (`airlock inspect b.tar | head -3`) the process ends quietly with exit 0, as ripgrep
//! does, instead of panicking. Lines on stderr never panic either.

use super::Global;
use std::io::{self, IsTerminal, Write};

/// Write `text` and a newline on stdout. A closed pipe ends the process quietly with exit 0
/// (the reader has what it wanted); another write error (a full disk behind `>`) is reported
/// and exits 3.
pub fn stdout_line(text: &str) {
    let mut stdout = io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        stderr_line(&format!("error: cannot write to standard output: {e}"));
        std::process::exit(crate::error::Class::Environment.exit_code().into());
    }
}

/// Write `text` and a newline on stderr; a closed stderr is ignored.
pub fn stderr_line(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub color: bool,
    /// stderr is a terminal: progress bars may be drawn.
    pub interactive: bool,
}

impl Output {
    pub fn new(g: &Global) -> Self {
        let no_color = g.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let interactive = std::io::stderr().is_terminal();
        Output {
            json: g.json,
            quiet: g.quiet,
            color: !no_color && interactive,
            interactive,
        }
    }

    /// Print a JSON document on stdout (pretty, one trailing newline).
    pub fn json<T: serde::Serialize>(&self, value: &T) -> crate::error::Result<()> {
        stdout_line(&serde_json::to_string_pretty(value)?);
        Ok(())
    }

    /// Human output on stdout (suppressed by --quiet and --json).
    pub fn print(&self, text: &str) {
        if !self.quiet && !self.json {
            stdout_line(text);
        }
    }

    /// A progress or status line on stderr (suppressed by --quiet).
    pub fn status(&self, text: &str) {
        if !self.quiet {
            stderr_line(text);
        }
    }

    pub fn warn(&self, text: &str) {
        if !self.quiet {
            stderr_line(&format!("{} {text}", self.paint("warning:", "33")));
        }
    }

    /// `error: <message>`, a `caused by:` line per source not already in the message, then
    /// the hint after a blank line.
    pub fn error(&self, err: &crate::error::Error) {
        let mut chain = err.chain();
        let first = chain.next().map(|e| e.to_string()).unwrap_or_default();
        stderr_line(&format!("{} {first}", self.paint("error:", "31;1")));
        for cause in chain {
            let text = cause.to_string();
            if !first.contains(&text) {
                stderr_line(&format!("  caused by: {text}"));
            }
        }
        if let Some(hint) = err.hint() {
            stderr_line(&format!("\n{} {hint}", self.paint("hint:", "36")));
        }
    }

    /// Wrap text in an ANSI colour when colour is on.
    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}
