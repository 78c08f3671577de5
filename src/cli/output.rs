//! Output conventions for every command: JSON documents on stdout with `--json`,
//! human text otherwise, `--quiet`, colour only on a terminal and without `NO_COLOR`.

use super::Global;
use std::io::{IsTerminal, Write};

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
        Output { json: g.json, quiet: g.quiet, color: !no_color && interactive, interactive }
    }

    /// Print a JSON document on stdout (pretty, one trailing newline).
    pub fn json<T: serde::Serialize>(&self, value: &T) -> crate::error::Result<()> {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, value)?;
        writeln!(stdout)?;
        Ok(())
    }

    /// Human output on stdout (suppressed by --quiet and --json).
    pub fn print(&self, text: &str) {
        if !self.quiet && !self.json {
            println!("{text}");
        }
    }

    /// A progress or status line on stderr (suppressed by --quiet).
    pub fn status(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    pub fn warn(&self, text: &str) {
        if !self.quiet {
            eprintln!("{} {text}", self.paint("warning:", "33"));
        }
    }

    /// `error: <message>`, a `caused by:` line per source not already in the message, then
    /// the hint after a blank line.
    pub fn error(&self, err: &crate::error::Error) {
        let mut chain = err.chain();
        let first = chain.next().map(|e| e.to_string()).unwrap_or_default();
        eprintln!("{} {first}", self.paint("error:", "31;1"));
        for cause in chain {
            let text = cause.to_string();
            if !first.contains(&text) {
                eprintln!("  caused by: {text}");
            }
        }
        if let Some(hint) = err.hint() {
            eprintln!("\n{} {hint}", self.paint("hint:", "36"));
        }
    }

    /// Wrap text in an ANSI colour when colour is on.
    pub fn paint(&self, text: &str, code: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
}
