//! Progress of a run: on a terminal, one live line per step (tasks done, running, failed) that
//! task output scrolls above; otherwise a plain line as each step finishes.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

#[derive(Default, Clone, Copy)]
struct Counts {
    total: u64,
    done: u64,
    running: u64,
    failed: u64,
}

/// Reports a run's progress and prints task output without tearing the live lines.
pub struct Progress {
    bars: Option<MultiProgress>,
    lines: Mutex<HashMap<String, (Option<ProgressBar>, Counts)>>,
    quiet: bool,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("live", &self.bars.is_some())
            .field("quiet", &self.quiet)
            .finish()
    }
}

impl Progress {
    /// Live lines when stderr is a terminal (and not `quiet`), plain lines otherwise.
    pub fn new(quiet: bool) -> Progress {
        let live = !quiet && std::io::stderr().is_terminal();
        let bars = live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            bars,
            lines: Mutex::new(HashMap::new()),
            quiet,
        }
    }

    fn update(&self, step: &str, f: impl FnOnce(&mut Counts)) {
        let mut lines = self.lines.lock().expect("progress lock");
        let (bar, counts) = lines.entry(step.to_string()).or_insert_with(|| {
            let bar = self.bars.as_ref().map(|m| {
                let bar = m.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>16} {bar:24} {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(step.to_string());
                bar
            });
            (bar, Counts::default())
        });
        f(counts);
        let c = *counts;
        let message = format!(
            "{}/{} done, {} running, {} failed",
            c.done, c.total, c.running, c.failed
        );
        match bar {
            Some(bar) => {
                bar.set_length(c.total);
                bar.set_position(c.done);
                bar.set_message(message);
            }
            None if !self.quiet
                && c.total > 0
                && c.done + c.failed == c.total
                && c.running == 0 =>
            {
                eprintln!("[progress] {step}: {message}");
            }
            None => {}
        }
    }

    /// A step will run `tasks` more tasks.
    pub fn planned(&self, step: &str, tasks: u64) {
        self.update(step, |c| c.total += tasks);
    }

    /// A task of `step` started.
    pub fn started(&self, step: &str) {
        self.update(step, |c| c.running += 1);
    }

    /// A task of `step` ended, for good or for a retry.
    pub fn ended(&self, step: &str, ok: bool, final_attempt: bool) {
        self.update(step, |c| {
            c.running = c.running.saturating_sub(1);
            if ok {
                c.done += 1;
            } else if final_attempt {
                c.failed += 1;
            }
        });
    }

    /// Prints a line of task output (or a note) above the live lines. A closed stdout (`run |
    /// head`) is not a reason to fail the run, so write errors are ignored.
    pub fn println(&self, line: &str, to_stderr: bool) {
        use std::io::Write;
        let write = || {
            let _ = if to_stderr {
                writeln!(std::io::stderr(), "{line}")
            } else {
                writeln!(std::io::stdout(), "{line}")
            };
        };
        match &self.bars {
            Some(m) if to_stderr => {
                let _ = m.println(line);
            }
            Some(m) => m.suspend(write),
            None => write(),
        }
    }

    /// Leaves the final state of the lines on screen.
    pub fn finish(&self) {
        for (bar, _) in self.lines.lock().expect("progress lock").values() {
            if let Some(bar) = bar {
                bar.finish();
            }
        }
    }
}
