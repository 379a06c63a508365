//! What `train` does while the loop runs, one concern per type: [`Display`] (the loss lines and
//! the progress bar), [`MetricsRecorder`] (a row per logged step, to the metrics file and for
//! `--plot`, and as TensorBoard scalars to `--tensorboard`'s event file), [`PeriodicSave`]
//! (`--save-every`), [`Validation`] (`--patience` and `--keep-best`: early stopping and the best
//! model), and [`TrainObserver`], which holds them and stops the run on Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
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

    /// The row of the pending logged step, with its validation loss (computed once by
    /// [`TrainObserver`], which early stopping shares). The metrics are a side channel: a
    /// failure to write them must not cost the run, so it becomes a warning and the file is
    /// dropped.
    fn after_step(&mut self, trainer: &dyn Engine, val_loss: Option<f64>) {
        let Some(point) = self.pending.take() else {
            return;
        };
        let rows = self.rows.len();
        if let Err(problem) = self.record(point, trainer, val_loss)
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

    fn record(
        &mut self,
        point: LossPoint,
        trainer: &dyn Engine,
        val_loss: Option<f64>,
    ) -> Result<()> {
        let mut extra = Vec::new();
        if self.with_val
            && let Some(val_loss) = val_loss
        {
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

/// The model's loss (the run's `--loss`, in the target's units) on the validation rows of a CSV
/// run: `val_loss`. `None` without validation rows.
fn validation_loss(trainer: &dyn Engine) -> Result<Option<f64>> {
    let Some(table) = trainer.table().filter(|t| t.val_rows() > 0) else {
        return Ok(None);
    };
    let (spec, params) = trainer.model_in_data_units()?;
    let config = trainer.config();
    Ok(Some(table.mean_loss(
        &spec,
        &params,
        crate::data::Split::Val,
        config.loss,
        config.huber_delta,
    )?))
}

/// The lowest validation loss of the run, and where the checkpoint holding it went.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Best {
    /// The logged step it was reached at.
    pub step: u64,
    /// `val_loss` there.
    pub val_loss: f64,
    /// The file holding that model (`--keep-best`, or the fallback file a failed save went to);
    /// `None` without `--keep-best` or when its save failed altogether.
    pub saved: Option<PathBuf>,
}

/// The early stop: where, and after how many evaluations without improvement.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct EarlyStop {
    /// The step training stopped after.
    pub step: u64,
    /// `--patience`.
    pub patience: u64,
    /// `--min-delta`.
    pub min_delta: f64,
}

/// `--patience N` (with `--min-delta`) and `--keep-best PATH`, on the validation loss of every
/// logged step. An evaluation improves when it is below the reference by more than `min_delta`
/// (the reference is the last such improvement, as in Keras and Lightning); after `patience`
/// evaluations in a row without one, the run stops. The best model is the lowest `val_loss`
/// seen, whatever `min_delta`: `--keep-best` is saved each time it falls. A resumed run starts
/// both afresh: the checkpoint keeps no validation history.
pub struct Validation {
    /// `--patience`: evaluations without improvement before stopping.
    pub patience: Option<u64>,
    /// `--min-delta`.
    pub min_delta: f64,
    /// `--keep-best`'s writer.
    pub keep_best: Option<CheckpointWriter>,
    /// The lowest validation loss so far.
    pub best: Option<Best>,
    /// The loss an evaluation must beat by more than `min_delta` to count as an improvement.
    reference: f64,
    /// Evaluations since the last improvement.
    waited: u64,
    /// Set when patience ran out.
    pub stopped: Option<EarlyStop>,
}

impl Validation {
    /// Watches for `patience` (and `min_delta`) and saves the best model to `keep_best`.
    pub fn new(patience: Option<u64>, min_delta: f64, keep_best: Option<CheckpointWriter>) -> Self {
        Self {
            patience,
            min_delta,
            keep_best,
            best: None,
            reference: f64::INFINITY,
            waited: 0,
            stopped: None,
        }
    }

    /// Whether it needs the validation loss at all.
    pub fn is_active(&self) -> bool {
        self.patience.is_some() || self.keep_best.is_some()
    }

    /// One evaluation, `val_loss` at the trainer's step: saves a new best, counts patience.
    fn evaluate(
        &mut self,
        trainer: &dyn Engine,
        val_loss: f64,
        display: &mut Display,
    ) -> Result<Flow> {
        let step = trainer.step();
        if self.best.as_ref().is_none_or(|b| val_loss < b.val_loss) {
            let saved = match &mut self.keep_best {
                None => None,
                Some(writer) => match writer.save(trainer.checkpoint()?) {
                    Ok(()) => Some(writer.out().to_owned()),
                    Err(Error::SavedElsewhere { original, rescued }) => {
                        let message = escape_controls(&format!(
                            "{original}; the best model so far went to {} instead",
                            rescued.display()
                        ));
                        let _ = writeln!(std::io::stderr(), "warning: {message}; training goes on");
                        Some(rescued)
                    }
                    Err(other) => return Err(other),
                },
            };
            self.best = Some(Best {
                step,
                val_loss,
                saved,
            });
        }
        // NaN is never an improvement.
        if val_loss < self.reference - self.min_delta {
            self.reference = val_loss;
            self.waited = 0;
        } else {
            self.waited += 1;
        }
        match self.patience {
            Some(patience) if self.waited >= patience => {
                self.stopped = Some(EarlyStop {
                    step,
                    patience,
                    min_delta: self.min_delta,
                });
                display.progress.set_position(step);
                Ok(Flow::Stop)
            }
            _ => Ok(Flow::Continue),
        }
    }
}

/// `train`'s observer: the four above, and a stop on Ctrl-C, SIGTERM or SIGHUP.
pub struct TrainObserver {
    /// Lines and the bar.
    pub display: Display,
    /// The metrics rows.
    pub metrics: MetricsRecorder,
    /// Periodic saves (and the writer of the final one).
    pub save: PeriodicSave,
    /// Early stopping and the best model.
    pub validation: Validation,
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
        // Computed once per logged step, for the metrics row and for early stopping.
        let val_loss = match self.metrics.pending {
            Some(_) if self.metrics.with_val || self.validation.is_active() => {
                validation_loss(trainer)?
            }
            _ => None,
        };
        self.metrics.after_step(trainer, val_loss);
        if signals::received().is_some() {
            return Ok(Flow::Stop);
        }
        self.save.after_step(trainer, &mut self.display)?;
        if let Some(val_loss) = val_loss.filter(|_| self.validation.is_active()) {
            return self
                .validation
                .evaluate(trainer, val_loss, &mut self.display);
        }
        Ok(Flow::Continue)
    }
}
