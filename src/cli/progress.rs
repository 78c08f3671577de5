//! Terminal progress for transfers: owns the `Reporter` implementation `cli` commands use.
//! On a terminal (stderr) it draws one bar per blob in flight plus a total bar (bytes, rate,
//! ETA) with indicatif; otherwise it prints plain lines (one per blob started, resumed and
//! done, and each step; "uploading" for `push`); with `--quiet` only nothing. Warnings always
//! go to stderr.

use super::output::{Output, stderr_line};
use crate::digest::Digest;
use crate::progress::Reporter;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;

enum Mode {
    Bars {
        multi: MultiProgress,
        total: ProgressBar,
        bars: Mutex<HashMap<Digest, ProgressBar>>,
    },
    Lines,
    Quiet,
}

pub struct Progress {
    mode: Mode,
    color: bool,
    quiet: bool,
    /// Transfers are uploads (`push`): lines say "uploading", and blobs the target already
    /// has are listed as "present" and count toward the total.
    uploads: bool,
}

impl Progress {
    pub fn new(out: &Output) -> Self {
        let mode = if out.quiet {
            Mode::Quiet
        } else if out.interactive && !out.json {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            let total = multi.add(ProgressBar::new(0));
            total.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            total.set_prefix("total");
            Mode::Bars {
                multi,
                total,
                bars: Mutex::default(),
            }
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            color: out.color,
            quiet: out.quiet,
            uploads: false,
        }
    }

    /// Progress of uploads (`push`).
    pub fn uploads(out: &Output) -> Self {
        Progress {
            uploads: true,
            ..Progress::new(out)
        }
    }

    /// Remove every bar (before the summary is printed).
    pub fn finish(&self) {
        if let Mode::Bars { multi, total, bars } = &self.mode {
            for (_, b) in bars.lock().unwrap_or_else(|e| e.into_inner()).drain() {
                b.finish_and_clear();
            }
            total.finish_and_clear();
            let _ = multi.clear();
        }
    }

    fn line(&self, text: &str) {
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(text);
            }
            Mode::Lines => stderr_line(text),
            Mode::Quiet => {}
        }
    }
}

impl Reporter for Progress {
    fn blob_start(&self, digest: &Digest, size: u64, label: &str, resumed_at: u64) {
        match &self.mode {
            Mode::Bars { multi, total, bars } => {
                let bar = multi.insert_before(total, ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(digest.short()[..8].to_string());
                bar.set_message(label.to_string());
                bar.set_position(resumed_at);
                total.inc(resumed_at);
                if let Some(old) = bars
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(digest.clone(), bar)
                {
                    old.finish_and_clear();
                }
            }
            Mode::Lines if resumed_at > 0 && !self.uploads => stderr_line(&format!(
                "fetching {} ({label}, {}), resuming at {}",
                digest.short(),
                HumanBytes(size),
                HumanBytes(resumed_at)
            )),
            Mode::Lines => stderr_line(&format!(
                "{} {} ({label}, {})",
                if self.uploads {
                    "uploading"
                } else {
                    "fetching"
                },
                digest.short(),
                HumanBytes(size)
            )),
            Mode::Quiet => {}
        }
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        if let Mode::Bars { total, bars, .. } = &self.mode {
            if let Some(b) = bars.lock().unwrap_or_else(|e| e.into_inner()).get(digest) {
                b.inc(bytes);
            }
            total.inc(bytes);
        }
    }

    fn blob_done(&self, digest: &Digest) {
        match &self.mode {
            Mode::Bars { bars, .. } => {
                if let Some(b) = bars
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(digest)
                {
                    b.finish_and_clear();
                }
            }
            Mode::Lines if self.uploads => stderr_line(&format!("uploaded  {}", digest.short())),
            Mode::Lines => stderr_line(&format!("fetched  {}", digest.short())),
            Mode::Quiet => {}
        }
    }

    fn blob_skipped(&self, digest: &Digest, size: u64, label: &str) {
        if !self.uploads {
            return;
        }
        if let Mode::Lines = self.mode {
            stderr_line(&format!("present   {} ({label})", digest.short()));
        }
        self.blob_progress(digest, size);
    }

    fn total(&self, bytes: u64) {
        if let Mode::Bars { total, .. } = &self.mode {
            total.set_length(bytes);
        }
    }

    fn step(&self, message: &str) {
        self.line(message);
    }

    fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        let label = if self.color {
            "\x1b[33mwarning:\x1b[0m"
        } else {
            "warning:"
        };
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(format!("{label} {message}"));
            }
            _ => stderr_line(&format!("{label} {message}")),
        }
    }
}
