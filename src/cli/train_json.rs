//! `train --json`: the final report as one JSON object on stdout (schema in
//! docs/json-output.md; the human lines go to stderr).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::{Checkpoint, Format};
use crate::engine::{Engine, RunReport};
use crate::report::{FitComparison, SplitQuality};

/// The report.
#[derive(Debug, Serialize)]
pub struct TrainJson {
    /// The backend's name (`ndarray`, `flex`, `wgpu`).
    pub backend: &'static str,
    /// Its device, in words.
    pub device: String,
    /// `autodiff` or `fused`.
    pub engine: &'static str,
    /// The model, as `inspect` describes it (`linear, 3 inputs`, `mlp 1-64-64-1, tanh`).
    pub model: String,
    /// The steps this run took and where it ended.
    pub steps: StepsJson,
    /// Batch size, learning rate and seed of the run.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// The run's seed.
    pub seed: u64,
    /// The saved model's parameters (for CSV data: in the data's units), in the model's order.
    pub parameters: Vec<ParameterJson>,
    /// The training loss (MSE) at each logged step of this run and at its last step.
    pub losses: Vec<LossJson>,
    /// The last of them.
    pub final_loss: Option<f32>,
    /// The data file (CSV runs only).
    pub data: Option<DataJson>,
    /// The fit's quality next to the closed form's (CSV runs only).
    pub fit_quality: Option<FitJson>,
    /// Wall times of this run.
    pub timings: TimingsJson,
    /// Every file written.
    pub files: FilesJson,
    /// With `--patience` or `--keep-best`: the lowest validation loss, and the early stop.
    pub validation: Option<ValidationJson>,
}

/// `--patience` and `--keep-best`.
#[derive(Debug, Serialize)]
pub struct ValidationJson {
    /// The lowest `val_loss` of the run: `step`, `val_loss`, `saved` (the `--keep-best` file).
    pub best: Option<super::observe::Best>,
    /// Where patience ran out: `step`, `patience`, `min_delta`; `null` when it did not.
    pub early_stop: Option<super::observe::EarlyStop>,
}

/// Steps.
#[derive(Debug, Serialize)]
pub struct StepsJson {
    /// Steps this run took.
    pub run: u64,
    /// The step count reached (across resumes).
    pub last: u64,
    /// Whether this run continued a checkpoint.
    pub resumed: bool,
}

/// One parameter tensor.
#[derive(Debug, Serialize)]
pub struct ParameterJson {
    /// Its name (`w`, `b`, `w1`, ...).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// One logged loss.
#[derive(Debug, Serialize)]
pub struct LossJson {
    /// The step (1-based, across resumes).
    pub step: u64,
    /// That step's batch loss.
    pub loss: f32,
}

/// The data file of a CSV run.
#[derive(Debug, Serialize)]
pub struct DataJson {
    /// The file as given.
    pub file: String,
    /// Rows read, then split.
    pub rows: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Validation rows.
    pub val_rows: usize,
    /// Rows skipped for an invalid cell.
    pub dropped_rows: usize,
    /// The feature columns.
    pub features: Vec<String>,
    /// The target column.
    pub target: String,
    /// The cache an out-of-core run trained from (left out in memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_core: Option<OutOfCoreJson>,
}

/// The cache of an out-of-core run.
#[derive(Debug, Serialize)]
pub struct OutOfCoreJson {
    /// The cache file.
    pub cache: String,
    /// Seconds this run took to build it; `null` when it was current already.
    pub built_s: Option<f64>,
}

/// A CSV fit's quality.
#[derive(Debug, Serialize)]
pub struct FitJson {
    /// The trained model's MSE, RMSE, MAE, R² on the training and validation rows.
    pub model: SplitQuality,
    /// The closed-form least-squares fit's, on the same rows (`null` when there is none).
    pub ols: Option<SplitQuality>,
    /// Why there is no closed-form fit (collinear features), else `null`.
    pub ols_error: Option<String>,
    /// The model's training MSE relative to the closed form's (0.004: 0.4 % above it).
    pub train_gap: Option<f64>,
    /// The closed form's weights (one per feature) and intercept.
    pub ols_coefficients: Option<CoefficientsJson>,
}

/// A linear fit's coefficients.
#[derive(Debug, Serialize)]
pub struct CoefficientsJson {
    /// One per feature, in order.
    pub weights: Vec<f64>,
    /// The intercept.
    pub bias: f64,
}

/// Wall times.
#[derive(Debug, Serialize)]
pub struct TimingsJson {
    /// The whole run, in seconds.
    pub total_s: f64,
    /// Its first step (kernel compilation and autotune included), in seconds.
    pub first_step_s: f64,
    /// Steps per second over the run.
    pub steps_per_s: f64,
}

/// The files written.
#[derive(Debug, Serialize)]
pub struct FilesJson {
    /// The checkpoint (`--out`).
    pub checkpoint: PathBuf,
    /// Its format: `json`, `safetensors` or `bpk`.
    pub format: &'static str,
    /// `--metrics`.
    pub metrics: Option<PathBuf>,
    /// `--plot`.
    pub plot: Option<PathBuf>,
    /// `--plot-fit`.
    pub plot_fit: Option<PathBuf>,
    /// The TensorBoard event file written in `--tensorboard DIR`.
    pub tensorboard: Option<PathBuf>,
    /// `--keep-best`.
    pub keep_best: Option<PathBuf>,
}

/// What a finished run hands to [`TrainJson::of`].
pub struct Finished<'a> {
    /// The engine after the run.
    pub trainer: &'a dyn Engine,
    /// The saved checkpoint.
    pub checkpoint: &'a Checkpoint,
    /// The run's losses and timings.
    pub run: &'a RunReport,
    /// The CSV fit's comparison, when there is one.
    pub comparison: Option<&'a FitComparison>,
    /// Whether the run resumed a checkpoint.
    pub resumed: bool,
}

/// A checkpoint format's name, as `--format` takes it.
pub fn format_name(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Safetensors => "safetensors",
        Format::Bpk => "bpk",
    }
}

impl TrainJson {
    /// The report of a finished run; `files`: what it wrote.
    pub fn of(done: Finished<'_>, files: FilesJson) -> TrainJson {
        let Finished {
            trainer,
            checkpoint,
            run,
            comparison,
            resumed,
        } = done;
        let config = trainer.config();
        let total_s = run.total.as_secs_f64();
        TrainJson {
            backend: trainer.backend().kind.name(),
            device: trainer.backend().describe(),
            engine: trainer.kind().name(),
            model: checkpoint.spec.describe(),
            steps: StepsJson {
                run: run.steps,
                last: trainer.step(),
                resumed,
            },
            batch: config.batch,
            lr: config.lr,
            seed: config.seed,
            parameters: checkpoint
                .named_params()
                .into_iter()
                .map(|p| ParameterJson {
                    name: p.name,
                    shape: p.value.shape,
                    values: p.value.data,
                })
                .collect(),
            losses: run
                .losses
                .iter()
                .map(|p| LossJson {
                    step: p.step,
                    loss: p.loss,
                })
                .collect(),
            final_loss: run.final_loss(),
            data: trainer.table().map(|table| DataJson {
                file: table.file_name().to_owned(),
                rows: table.rows(),
                train_rows: table.train_rows(),
                val_rows: table.val_rows(),
                dropped_rows: table.dropped_rows(),
                features: table.feature_names().to_vec(),
                target: table.target_name().to_owned(),
                out_of_core: table.out_of_core().map(|rows| OutOfCoreJson {
                    cache: rows.cache.path().display().to_string(),
                    built_s: match rows.origin {
                        crate::data::cache::CacheOrigin::Built { took } => Some(took.as_secs_f64()),
                        crate::data::cache::CacheOrigin::Reused => None,
                    },
                }),
            }),
            fit_quality: comparison.map(|c| FitJson {
                model: c.model,
                ols: c.ols.as_ref().ok().map(|(_, q)| *q),
                ols_error: c.ols.as_ref().err().cloned(),
                train_gap: c.train_gap(),
                ols_coefficients: c.ols.as_ref().ok().map(|(fit, _)| CoefficientsJson {
                    weights: fit.weights.clone(),
                    bias: fit.bias,
                }),
            }),
            timings: TimingsJson {
                total_s,
                first_step_s: run.first_step.as_secs_f64(),
                steps_per_s: if total_s > 0.0 {
                    run.steps as f64 / total_s
                } else {
                    0.0
                },
            },
            files,
            validation: None,
        }
    }
}

/// `Some(path)` as a path buffer.
pub fn owned(path: Option<&Path>) -> Option<PathBuf> {
    path.map(Path::to_owned)
}
