//! A live progress bar on the terminal (stderr), for `train` and `bench`.
//!
//! It is drawn only when asked for (`--progress always`) or when both stdout and stderr are
//! terminals (`auto`), never with `--quiet` or `--progress never`, so piped and CI output stays
//! exactly the log lines. It adds no device work: the position comes from the host's step
//! counter, and the loss shown is the last one read back for logging anyway.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// When to show the progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// When stdout and stderr are both terminals.
    #[default]
    Auto,
    /// Whenever stderr is a terminal, even with stdout redirected.
    Always,
    /// Never.
    Never,
}

impl ProgressMode {
    /// Whether a bar is drawn in this process.
    pub fn enabled(self, quiet: bool) -> bool {
        let stderr = std::io::stderr().is_terminal();
        match self {
            _ if quiet => false,
            ProgressMode::Never => false,
            ProgressMode::Always => stderr,
            ProgressMode::Auto => stderr && std::io::stdout().is_terminal(),
        }
    }
}

/// A progress bar, or nothing.
#[derive(Debug, Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over training steps `done..total`, showing steps per second, ETA and the loss.
    pub fn steps(enabled: bool, done: u64, total: u64) -> Progress {
        Self::new(
            enabled,
            total,
            done,
            "{bar:32} {pos}/{len} steps  {rate}  ETA {left}  {msg}",
        )
    }

    /// A bar over benchmark rows.
    pub fn rows(enabled: bool, total: u64) -> Progress {
        Self::new(enabled, total, 0, "{bar:32} row {pos}/{len}  {msg}")
    }

    fn new(enabled: bool, total: u64, position: u64, template: &str) -> Progress {
        if !enabled {
            return Progress::default();
        }
        // The rate and the time left from the steps done since the bar appeared. (indicatif
        // 0.17.1's own estimate is fed only by its ticks, which a steady ticker skips: it
        // showed `0/s  ETA 0s` between log steps.)
        let rate = move |state: &indicatif::ProgressState| {
            let seconds = state.elapsed().as_secs_f64();
            let done = state.pos().saturating_sub(position);
            (seconds > 0.0 && done > 0).then(|| done as f64 / seconds)
        };
        let style = ProgressStyle::with_template(template)
            .expect("a valid template")
            .with_key(
                "rate",
                move |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = match rate(state) {
                        Some(per_s) => write!(out, "{per_s:.0}/s"),
                        None => write!(out, "–/s"),
                    };
                },
            )
            .with_key(
                "left",
                move |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                    let left = state.len().unwrap_or(0).saturating_sub(state.pos());
                    let _ = match rate(state) {
                        Some(per_s) => write!(
                            out,
                            "{:#}",
                            indicatif::HumanDuration(Duration::from_secs_f64(
                                (left as f64 / per_s).min(1e9)
                            ))
                        ),
                        None => write!(out, "–"),
                    };
                },
            )
            .progress_chars("=> ");
        let bar =
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10))
                .with_style(style)
                .with_position(position);
        bar.reset_eta();
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    /// Whether a bar is shown.
    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Moves the bar to `position`.
    pub fn set_position(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }

    /// The text after the bar (the last loss, the row running).
    pub fn set_message(&self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    /// Runs `print` (which writes to stdout) with the bar cleared, so lines and bar do not mix.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_and_quiet_disable_the_bar() {
        assert!(!ProgressMode::Never.enabled(false));
        assert!(!ProgressMode::Always.enabled(true));
        assert!(!ProgressMode::Auto.enabled(true));
        let hidden = Progress::steps(false, 0, 10);
        assert!(!hidden.is_shown());
        assert_eq!(hidden.suspend(|| 7), 7);
    }
}
