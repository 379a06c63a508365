//! The training configuration: every setting of a run, with its default, in one place.
//!
//! The CLI and the `--config FILE` (JSON, or TOML for a `.toml` file: the same keys) override
//! these defaults; the resolved config is saved inside every checkpoint.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::loss::{DEFAULT_HUBER_DELTA, LossKind};
use crate::optim::{OptimizerKind, ScheduleKind};

use crate::error::{Error, Result};
use crate::model::{Activation, ModelSpec};

/// What the model is fitted to when no `--data` file is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// y = true_w·x + true_b + noise, x ~ U(x_low, x_high): the seed workload.
    #[default]
    Line,
    /// y = sin x, x ~ U(0, 10): the autograd crate's `sine` example.
    Sine,
}

/// Which model is trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// z = x·w + b.
    #[default]
    Linear,
    /// A multi-layer perceptron: dense layers of widths `hidden` with `activation` between.
    Mlp,
}

/// A CSV file to fit instead of a synthetic task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The CSV file, as given.
    pub path: String,
    /// The column to predict.
    pub target: String,
    /// The feature columns, in order; `None`: every column but the target.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// The field delimiter (one ASCII character).
    #[serde(default = "TableConfig::default_delimiter")]
    pub delimiter: char,
    /// Scale each feature to mean 0, std 1 over the training rows while training.
    #[serde(default = "TableConfig::default_standardize")]
    pub standardize: bool,
    /// Fraction of the rows held out for validation (a seeded random split).
    #[serde(default = "TableConfig::default_val_frac")]
    pub val_frac: f64,
    /// Skip rows with a cell that is not a finite number, instead of stopping.
    #[serde(default)]
    pub drop_invalid_rows: bool,
    /// Train out of core (rows streamed from a binary cache on disk) even when the table would
    /// fit in memory; a table that would not fit goes out of core anyway. Saved as `true` in a
    /// checkpoint of an out-of-core run, so that a resume reads the same batches.
    #[serde(default, skip_serializing_if = "is_false")]
    pub out_of_core: bool,
    /// Where an out-of-core run keeps its cache; `None`: beside the data file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<String>,
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl TableConfig {
    fn default_delimiter() -> char {
        ','
    }
    fn default_standardize() -> bool {
        true
    }
    fn default_val_frac() -> f64 {
        0.2
    }

    /// A CSV fit of `target` in `path` with every default.
    pub fn new(path: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            target: target.into(),
            features: None,
            delimiter: Self::default_delimiter(),
            standardize: Self::default_standardize(),
            val_frac: Self::default_val_frac(),
            drop_invalid_rows: false,
            out_of_core: false,
            cache_dir: None,
        }
    }
}

/// Every setting of a training run. `Default` is the seed workload: a noisy line
/// y = 2.5·x − 1 + N(0, 0.5²), one neuron, Adam, batch 64, 1000 steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Number of optimizer steps (one fresh batch each).
    pub steps: u64,
    /// Samples per batch.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Adam's first-moment decay.
    pub beta1: f32,
    /// Adam's second-moment decay.
    pub beta2: f32,
    /// Adam's epsilon (burn's own default is 1e-5; PyTorch and the autograd crate use 1e-8).
    pub epsilon: f32,
    /// Seed of the data stream and of the initial weight.
    pub seed: u64,
    /// Slope of the line the data is drawn from.
    pub true_w: f32,
    /// Intercept of the line the data is drawn from.
    pub true_b: f32,
    /// Standard deviation of the Gaussian noise added to y.
    pub noise: f32,
    /// x is drawn uniformly from [x_low, x_high).
    pub x_low: f32,
    /// Upper end of the x range (exclusive).
    pub x_high: f32,
    /// Read the loss back and log it every this many steps (a read-back syncs the device).
    pub log_every: u64,
    /// The synthetic task, when no `data` file is given.
    pub task: Task,
    /// The model.
    pub model: ModelKind,
    /// Widths of the MLP's hidden layers.
    pub hidden: Vec<usize>,
    /// The MLP's activation.
    pub activation: Activation,
    /// A CSV file to fit instead of the synthetic task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<TableConfig>,
    /// The loss minimised (left out of saved configs when it is the default, MSE).
    #[serde(skip_serializing_if = "LossKind::is_mse")]
    pub loss: LossKind,
    /// Huber's threshold, in the target's units (saved only with `loss: huber`).
    #[serde(skip_serializing_if = "is_default_huber_delta")]
    pub huber_delta: f32,
    /// Ridge penalty λ: the objective adds λ·Σw² over every weight (not the biases), in the
    /// space the model trains in (standardized features and target on a standardized table).
    /// Saved only when not 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub l2: f32,
    /// The optimizer (saved only when not Adam).
    #[serde(skip_serializing_if = "OptimizerKind::is_adam")]
    pub optimizer: OptimizerKind,
    /// SGD's and RMSProp's momentum.
    #[serde(skip_serializing_if = "is_zero")]
    pub momentum: f32,
    /// RMSProp's smoothing constant α.
    #[serde(skip_serializing_if = "is_default_rmsprop_alpha")]
    pub rmsprop_alpha: f32,
    /// AdamW's decoupled weight decay.
    #[serde(skip_serializing_if = "is_zero")]
    pub weight_decay: f32,
    /// The learning-rate schedule.
    #[serde(skip_serializing_if = "ScheduleKind::is_constant")]
    pub lr_schedule: ScheduleKind,
    /// Steps of linear warm-up from 0 to `lr`.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub warmup_steps: u64,
    /// The step schedule's interval.
    #[serde(skip_serializing_if = "is_default_step_every")]
    pub lr_step_every: u64,
    /// The step schedule's factor.
    #[serde(skip_serializing_if = "is_default_gamma")]
    pub lr_gamma: f32,
}

fn is_default_rmsprop_alpha(v: &f32) -> bool {
    *v == 0.99
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_default_step_every(v: &u64) -> bool {
    *v == 1000
}

fn is_default_gamma(v: &f32) -> bool {
    *v == 0.1
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

fn is_default_huber_delta(delta: &f32) -> bool {
    *delta == DEFAULT_HUBER_DELTA
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch: 64,
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            seed: 42,
            true_w: 2.5,
            true_b: -1.0,
            noise: 0.5,
            x_low: -10.0,
            x_high: 10.0,
            log_every: 100,
            task: Task::Line,
            model: ModelKind::Linear,
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            data: None,
            loss: LossKind::Mse,
            huber_delta: DEFAULT_HUBER_DELTA,
            l2: 0.0,
            optimizer: OptimizerKind::Adam,
            momentum: 0.0,
            rmsprop_alpha: 0.99,
            weight_decay: 0.0,
            lr_schedule: ScheduleKind::Constant,
            warmup_steps: 0,
            lr_step_every: 1000,
            lr_gamma: 0.1,
        }
    }
}

/// The largest batch: sample indices stay in 32 bits (the GPU's Philox counter), and 2^31
/// samples already need tens of GB.
pub const MAX_BATCH: usize = 1 << 31;

/// The largest config file read: a config is a few hundred bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Whether a config file is read as TOML: its name ends in `.toml` (any case).
fn is_toml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

/// A TOML parse error on one line: `line L, column C: what` (the toml crate's own message
/// spans several lines, with the source quoted).
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

impl TrainingConfig {
    /// Reads a config file (JSON, or TOML when its name ends in `.toml`) over the defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::default().overlay_file(path)
    }

    /// This config with the keys of a config file laid over it: JSON, or TOML when the file
    /// name ends in `.toml` (the same keys; the `data` block is a `[data]` table). Keys the file
    /// does not name keep their value here; unknown keys are an error (a typo must not
    /// silently train with a default).
    pub fn overlay_file(self, path: &Path) -> Result<Self> {
        let parse_error = |message: String| Error::ConfigParse {
            path: path.to_owned(),
            message,
        };
        let bytes = crate::input::read_regular_file(path, MAX_CONFIG_BYTES).map_err(parse_error)?;
        let text = String::from_utf8(bytes).map_err(|_| parse_error("is not UTF-8 text".into()))?;
        let overrides: crate::input::UniqueMap<serde_json::Value> = if is_toml(path) {
            toml::from_str(&text).map_err(|e| {
                parse_error(format!(
                    "not a TOML table of settings ({})",
                    toml_error(&text, &e)
                ))
            })?
        } else {
            serde_json::from_str(&text)
                .map_err(|e| parse_error(format!("not a JSON object of settings ({e})")))?
        };
        let overrides: Vec<(String, serde_json::Value)> = overrides.0;
        // TOML has no null: one here is a float JSON cannot hold (`inf`, `nan`), which serde
        // would report as "invalid type: null".
        if is_toml(path) {
            fn non_finite(v: &serde_json::Value) -> bool {
                match v {
                    serde_json::Value::Null => true,
                    serde_json::Value::Array(items) => items.iter().any(non_finite),
                    _ => false,
                }
            }
            let in_data = overrides
                .iter()
                .filter(|(k, _)| k == "data")
                .filter_map(|(_, v)| v.as_object())
                .flat_map(|block| block.iter().map(|(k, v)| (format!("data.{k}"), v)));
            if let Some((key, _)) = overrides
                .iter()
                .map(|(k, v)| (k.clone(), v))
                .chain(in_data)
                .find(|(_, v)| non_finite(v))
            {
                return Err(parse_error(format!(
                    "key `{key}`: inf and nan are not settings; give a finite number"
                )));
            }
        }
        let base = match serde_json::to_value(self).expect("config serialises") {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a struct serialises to an object"),
        };
        let with = |pairs: &mut dyn Iterator<Item = (&String, &serde_json::Value)>| {
            let mut merged = base.clone();
            merged.extend(pairs.map(|(k, v)| (k.clone(), v.clone())));
            serde_json::from_value::<Self>(serde_json::Value::Object(merged))
        };
        let pairs = || overrides.iter().map(|(k, v)| (k, v));
        let config = with(&mut pairs()).map_err(|error| {
            // serde does not say which key a bad value belongs to: find it.
            let culprit = pairs().find(|pair| with(&mut std::iter::once(*pair)).is_err());
            match culprit {
                // An unknown key's error names it already (one inside `data` is `data`'s).
                Some((key, _))
                    if !error
                        .to_string()
                        .starts_with(&format!("unknown field `{key}`")) =>
                {
                    parse_error(format!("key `{key}`: {error}"))
                }
                _ => parse_error(error.to_string()),
            }
        })?;
        // A value out of range is reported under the file's key, as the file wrote it (not
        // under the flag's name, nor after rounding to f32: `1e-50` is not `0`).
        // Keys of the `data` block are looked for inside it, and named `data.KEY`.
        let data_pairs: Vec<(String, &serde_json::Value)> = pairs()
            .filter(|(k, _)| k.as_str() == "data")
            .filter_map(|(_, v)| v.as_object())
            .flat_map(|block| block.iter().map(|(k, v)| (format!("data.{k}"), v)))
            .collect();
        match config.validate() {
            Err(Error::InvalidSetting { name, expected, .. }) => {
                let keys: Vec<&str> = name
                    .split('/')
                    .map(|k| k.trim_start_matches("--"))
                    .collect();
                let matches = |k: &str| {
                    let k = k.strip_prefix("data.").unwrap_or(k);
                    keys.contains(&k.replace('_', "-").as_str()) || keys.contains(&k)
                };
                let written = pairs()
                    .map(|(k, v)| (k.clone(), v))
                    .chain(data_pairs.iter().map(|(k, v)| (k.clone(), *v)))
                    .find(|(k, _)| matches(k));
                match written {
                    Some((key, value)) => {
                        Err(parse_error(format!("key `{key}` = {value}: {expected}")))
                    }
                    None => config.validate().map(|()| config),
                }
            }
            Err(Error::InvalidModel { message }) if pairs().any(|(k, _)| k == "hidden") => {
                Err(parse_error(format!("key `hidden`: {message}")))
            }
            _ => Ok(config),
        }
    }

    /// Checks every setting, naming the first one that is out of range.
    pub fn validate(&self) -> Result<()> {
        fn bad(name: &'static str, value: impl ToString, expected: &'static str) -> Result<()> {
            Err(Error::InvalidSetting {
                name,
                value: value.to_string(),
                expected,
            })
        }
        if self.steps == 0 {
            return bad("--steps", self.steps, "must be at least 1");
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return bad("--batch", self.batch, "must be from 1 to 2^31");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(
                "--lr",
                crate::error::shown(self.lr),
                "must be a finite number above 0",
            );
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad(
                "--beta1",
                crate::error::shown(self.beta1),
                "must be in [0, 1)",
            );
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad(
                "--beta2",
                crate::error::shown(self.beta2),
                "must be in [0, 1)",
            );
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad(
                "--epsilon",
                crate::error::shown(self.epsilon),
                "must be a finite number above 0",
            );
        }
        if !self.true_w.is_finite() {
            return bad(
                "--true-w",
                crate::error::shown(self.true_w),
                "must be a finite number",
            );
        }
        if !self.true_b.is_finite() {
            return bad(
                "--true-b",
                crate::error::shown(self.true_b),
                "must be a finite number",
            );
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad(
                "--noise",
                crate::error::shown(self.noise),
                "must be a finite number, 0 or more",
            );
        }
        if !(self.x_low.is_finite()
            && self.x_high.is_finite()
            && self.x_low < self.x_high
            && (self.x_high - self.x_low).is_finite())
        {
            return bad(
                "--x-low/--x-high",
                format!(
                    "{}..{}",
                    crate::error::shown(self.x_low),
                    crate::error::shown(self.x_high)
                ),
                "must be finite with --x-low < --x-high and a span between them that f32 holds",
            );
        }
        if !(self.huber_delta.is_finite() && self.huber_delta > 0.0) {
            return bad(
                "--huber-delta",
                crate::error::shown(self.huber_delta),
                "must be a finite number above 0",
            );
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(
                "--l2",
                crate::error::shown(self.l2),
                "must be a finite number, 0 or more",
            );
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "--momentum",
                crate::error::shown(self.momentum),
                "must be in [0, 1)",
            );
        }
        if !(0.0..1.0).contains(&self.rmsprop_alpha) {
            return bad(
                "--rmsprop-alpha",
                crate::error::shown(self.rmsprop_alpha),
                "must be in [0, 1)",
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "--weight-decay",
                crate::error::shown(self.weight_decay),
                "must be a finite number, 0 or more",
            );
        }
        if self.lr_step_every == 0 {
            return bad("--lr-step-every", 0, "must be at least 1");
        }
        if !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0) {
            return bad(
                "--lr-gamma",
                crate::error::shown(self.lr_gamma),
                "must be a finite number above 0",
            );
        }
        // Settings of another optimizer, schedule or loss would be saved and silently ignored:
        // a config file naming them is refused as the flags are.
        let unused = |key: &'static str, value: String, what: &'static str| bad(key, value, what);
        use crate::optim::OptimizerKind::{Adamw, Rmsprop, Sgd};
        if self.momentum != 0.0 && !matches!(self.optimizer, Sgd | Rmsprop) {
            return unused(
                "momentum",
                crate::error::shown(self.momentum),
                "applies to optimizer sgd or rmsprop only",
            );
        }
        if self.rmsprop_alpha != 0.99 && self.optimizer != Rmsprop {
            return unused(
                "rmsprop_alpha",
                crate::error::shown(self.rmsprop_alpha),
                "applies to optimizer rmsprop only",
            );
        }
        if self.weight_decay != 0.0 && self.optimizer != Adamw {
            return unused(
                "weight_decay",
                crate::error::shown(self.weight_decay),
                "applies to optimizer adamw only",
            );
        }
        if (self.lr_step_every != 1000 || self.lr_gamma != 0.1)
            && self.lr_schedule != ScheduleKind::Step
        {
            return unused(
                "lr_step_every/lr_gamma",
                format!(
                    "{}/{}",
                    self.lr_step_every,
                    crate::error::shown(self.lr_gamma)
                ),
                "apply to lr_schedule step only",
            );
        }
        if self.huber_delta != DEFAULT_HUBER_DELTA && self.loss != LossKind::Huber {
            return unused(
                "huber_delta",
                crate::error::shown(self.huber_delta),
                "applies to loss huber only",
            );
        }
        if self.log_every == 0 {
            return bad("--log-every", self.log_every, "must be at least 1");
        }
        if self.model == ModelKind::Mlp {
            if self.hidden.is_empty() {
                return Err(Error::InvalidModel {
                    message: "an MLP needs at least one hidden width".into(),
                });
            }
            self.model_spec(1)
                .validate()
                .map_err(|message| Error::InvalidModel { message })?;
        }
        if let Some(data) = &self.data {
            if self.task != Task::Line {
                return bad(
                    "--task",
                    "sine",
                    "trains on its own x and y, not on a table (--data, or the one a resumed checkpoint was trained on)",
                );
            }
            if !(0.0..1.0).contains(&data.val_frac) {
                return bad(
                    "--val-frac",
                    crate::error::shown(data.val_frac),
                    "must be in [0, 1)",
                );
            }
            if !data.delimiter.is_ascii() {
                return bad("--delimiter", data.delimiter, "must be one ASCII character");
            }
        }
        Ok(())
    }

    /// The line task's sample stream this config describes.
    pub fn line_stream(&self) -> crate::rng::philox::LineStream {
        crate::rng::philox::LineStream::new(
            self.seed,
            self.x_low,
            self.x_high,
            self.true_w,
            self.true_b,
            self.noise,
        )
    }

    /// The optimizer this config asks for.
    pub fn adam(&self) -> crate::optim::Adam {
        crate::optim::Adam {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
        }
    }

    /// The optimizer and schedule this config asks for (the schedule ends at `steps`).
    pub fn optimizer(&self) -> crate::optim::Optimizer {
        crate::optim::Optimizer {
            kind: self.optimizer,
            adam: self.adam(),
            momentum: self.momentum,
            rmsprop_alpha: self.rmsprop_alpha,
            weight_decay: self.weight_decay,
            schedule: self.lr_schedule,
            warmup: self.warmup_steps,
            total: self.steps,
            step_every: self.lr_step_every,
            gamma: self.lr_gamma,
        }
    }

    /// The model this config trains on data with `d_in` features.
    pub fn model_spec(&self, d_in: usize) -> ModelSpec {
        match self.model {
            // A linear model has no activation: `activation` and `hidden` do not apply.
            ModelKind::Linear => ModelSpec::linear(d_in),
            ModelKind::Mlp => ModelSpec {
                d_in,
                hidden: self.hidden.clone(),
                activation: self.activation,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_workload() {
        let c = TrainingConfig::default();
        assert_eq!((c.steps, c.batch, c.log_every), (1000, 64, 100));
        assert_eq!(
            (c.lr, c.epsilon, c.beta1, c.beta2),
            (0.01, 1e-8, 0.9, 0.999)
        );
        assert_eq!((c.true_w, c.true_b, c.noise), (2.5, -1.0, 0.5));
        c.validate().unwrap();
    }

    #[test]
    fn partial_json_keeps_defaults_and_unknown_keys_are_refused() {
        let c: TrainingConfig = serde_json::from_str(r#"{"steps": 7, "lr": 0.5}"#).unwrap();
        assert_eq!((c.steps, c.lr, c.batch), (7, 0.5, 64));
        let err = serde_json::from_str::<TrainingConfig>(r#"{"stepz": 7}"#).unwrap_err();
        assert!(err.to_string().contains("stepz"), "{err}");
    }

    #[test]
    fn a_file_overlays_only_the_keys_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"lr": 0.5}"#).unwrap();
        let base = TrainingConfig {
            seed: 9,
            ..Default::default()
        };
        let c = base.overlay_file(&path).unwrap();
        assert_eq!((c.lr, c.seed, c.steps), (0.5, 9, 1000));
        std::fs::write(&path, r#"{"lrr": 0.5}"#).unwrap();
        let err = TrainingConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("lrr") && err.contains("c.json"), "{err}");
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(
            TrainingConfig::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("not a JSON object")
        );
    }

    #[test]
    fn a_toml_file_takes_the_same_keys_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(
            &path,
            "lr = 0.5\nsteps = 7\n\n[data]\npath = \"d.csv\"\ntarget = \"y\"\nval_frac = 0.1\n",
        )
        .unwrap();
        let c = TrainingConfig::from_file(&path).unwrap();
        assert_eq!((c.lr, c.steps, c.batch), (0.5, 7, 64));
        let data = c.data.unwrap();
        assert_eq!((data.target.as_str(), data.val_frac), ("y", 0.1));
        let error = |text: &str| {
            std::fs::write(&path, text).unwrap();
            TrainingConfig::from_file(&path).unwrap_err().to_string()
        };
        let e = error("lrr = 0.5\n");
        assert!(e.contains("lrr") && e.contains("run.toml"), "{e}");
        let e = error("steps = 0\n");
        assert!(e.ends_with("key `steps` = 0: must be at least 1"), "{e}");
        let e = error("lr = \"fast\"\n");
        assert!(e.contains("key `lr`"), "{e}");
        let e = error("steps = 5\nsteps = 6\n");
        assert!(
            e.contains("not a TOML table of settings (line 2, column 1"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = error("steps = \n");
        assert!(e.contains("line 1, column"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn validation_names_the_setting() {
        let c = TrainingConfig {
            lr: -1.0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("--lr"));
        let c = TrainingConfig {
            batch: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("--batch"));
        let c = TrainingConfig {
            noise: f32::NAN,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("--noise"));
    }
}
