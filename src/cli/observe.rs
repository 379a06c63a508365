//! What `train` does while the loop runs, one concern per type: [`Display`] (the loss lines and
//! the progress bar), [`MetricsRecorder`] (a row per logged step, to the metrics file and for
//! `--plot`, and as TensorBoard scalars to `--tensorboard`'s event file), [`PeriodicSave`]
//! (`--save-every`), and [`TrainObserver`], which holds them and stops the run on Ctrl-C.

use std::io::Write;
use std::time::Instant;

use crate::checkpoint::CheckpointWriter;
use crate::console::{Console, escape_controls};
use crate::engine::{Engine, Flow, LossPoint, Observer};
use crate::error::{Error, Result};
use crate::metrics_log::{MetricsLog, MetricsRow, VAL_LOSS};
use crate::progress::Progress;
use crate::signals;
use crate::tensorboard::EventWriter;

/// The loss lines on stdout and the progress bar on stderr.
pub struct Display {
    /// Standard output.
    pub console: Console,
    /// The bar (drawn only when enabled).
    pub progress: Progress,
    /// No per-step lines.
    pub quiet: bool,
}

impl Display {
    /// A line printed without tearing the bar.
    pub fn line(&mut self, text: impl std::fmt::Display) {
        let console = &mut self.console;
        self.progress.suspend(|| console.line(text));
    }

    fn on_loss(&mut self, p: LossPoint) {
        // The position of the step whose loss the bar shows.
        self.progress.set_position(p.step);
        self.progress.set_message(format!("loss {:.6}", p.loss));
        if !self.quiet {
            self.line(format_args!("step {:>6}  loss {:.6}", p.step, p.loss));
        }
    }
}

/// One row per logged step: appended to the metrics file (when there is one) and kept for
/// `--plot`.
pub struct MetricsRecorder {
    /// The metrics file; dropped (with a warning) when a write fails.
    pub log: Option<MetricsLog>,
    /// The TensorBoard event file (`--tensorboard`); dropped (with a warning) when a write
    /// fails.
    pub tensorboard: Option<EventWriter>,
    /// Every row of this run.
    pub rows: Vec<MetricsRow>,
    /// Whether rows carry the validation loss.
    pub with_val: bool,
    /// The loss read back at the last logged step, waiting for its row.
    pending: Option<LossPoint>,
    started: Instant,
}

impl MetricsRecorder {
    /// Rows to `log` (or only kept), with the validation loss when `with_val`.
    pub fn new(log: Option<MetricsLog>, with_val: bool) -> Self {
        Self {
            log,
            tensorboard: None,
            rows: Vec::new(),
            with_val,
            pending: None,
            started: Instant::now(),
        }
    }

    /// Also writes every row as TensorBoard scalars to `events`.
    pub fn with_tensorboard(mut self, events: Option<EventWriter>) -> Self {
        self.tensorboard = events;
        self
    }

    /// The row of the pending logged step. The metrics are a side channel: a failure to write
    /// them must not cost the run, so it becomes a warning and the file is dropped.
    fn after_step(&mut self, trainer: &dyn Engine) {
        let Some(point) = self.pending.take() else {
            return;
        };
        let rows = self.rows.len();
        if let Err(problem) = self.record(point, trainer)
            && self.log.is_some()
        {
            let message = escape_controls(&problem.to_string());
            let _ = writeln!(
                std::io::stderr(),
                "warning: {message}; training goes on without the metrics file"
            );
            self.log = None;
        }
        if let (Some(events), Some(row)) = (&mut self.tensorboard, self.rows.get(rows)) {
            let mut scalars = vec![
                ("loss", f64::from(row.loss)),
                ("lr", f64::from(row.lr)),
                ("elapsed_s", row.elapsed_s),
            ];
            if let Some(val) = row.get(VAL_LOSS) {
                scalars.push((VAL_LOSS, val));
            }
            if let Err(problem) = events.scalars(row.step, &scalars) {
                let message = escape_controls(&problem.to_string());
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: {message}; training goes on without the TensorBoard events"
                );
                self.tensorboard = None;
            }
        }
    }

    fn record(&mut self, point: LossPoint, trainer: &dyn Engine) -> Result<()> {
        let mut extra = Vec::new();
        if self.with_val
            && let Some(table) = trainer.table()
        {
            let (spec, params) = trainer.model_in_data_units()?;
            let config = trainer.config();
            let val_loss =
                table.mean_loss(&spec, &params, &table.val, config.loss, config.huber_delta);
            extra.push((VAL_LOSS.to_string(), val_loss));
        }
        let row = MetricsRow {
            step: point.step,
            loss: point.loss,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            lr: trainer.config().optimizer().lr_at(point.step),
            extra,
        };
        if let Some(log) = &mut self.log {
            log.append(&row)?;
        }
        self.rows.push(row);
        Ok(())
    }
}

/// `--save-every K`: the checkpoint at every K-th step but the last (saved once, after the run).
pub struct PeriodicSave {
    /// Where checkpoints go.
    pub writer: CheckpointWriter,
    /// K.
    pub every: Option<u64>,
}

impl PeriodicSave {
    /// A failed save must not end the run: the checkpoint goes to the fallback file, a warning
    /// says so, and training goes on (the next save tries `--out` again).
    fn after_step(&mut self, trainer: &dyn Engine, display: &mut Display) -> Result<()> {
        let Some(k) = self.every else {
            return Ok(());
        };
        if !trainer.step().is_multiple_of(k) || trainer.step() >= trainer.config().steps {
            return Ok(());
        }
        match self.writer.save(trainer.checkpoint()?) {
            Ok(()) => {
                let out = self.writer.out().display();
                display.line(format_args!("saved {out} at step {}", trainer.step()));
                Ok(())
            }
            Err(rescued @ Error::SavedElsewhere { .. }) => {
                let message = escape_controls(&rescued.to_string());
                let _ = writeln!(std::io::stderr(), "warning: {message}; training goes on");
                Ok(())
            }
            Err(other) => Err(other),
        }
    }
}

/// `train`'s observer: the three above, and a stop on Ctrl-C, SIGTERM or SIGHUP.
pub struct TrainObserver {
    /// Lines and the bar.
    pub display: Display,
    /// The metrics rows.
    pub metrics: MetricsRecorder,
    /// Periodic saves (and the writer of the final one).
    pub save: PeriodicSave,
}

impl Observer for TrainObserver {
    fn on_loss(&mut self, p: LossPoint) {
        self.metrics.pending = Some(p);
        self.display.on_loss(p);
    }

    fn checkpoint_every(&self) -> Option<u64> {
        self.save.every
    }

    fn after_step(&mut self, trainer: &dyn Engine) -> Result<Flow> {
        self.display.progress.set_position(trainer.step());
        self.metrics.after_step(trainer);
        if signals::received().is_some() {
            return Ok(Flow::Stop);
        }
        self.save.after_step(trainer, &mut self.display)?;
        Ok(Flow::Continue)
    }
}
