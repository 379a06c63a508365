//! Checkpoints: the trained parameters, Adam's state and burnfit's metadata, independent of the
//! backend they came from, and the files they are kept in.
//!
//! Formats, chosen by file extension (or explicitly):
//! - `.json`: the autograd crate's results.json ([`autograd_json`]), with Adam's state;
//! - `.safetensors`: SafeTensors ([`safetensors_file`]), the model only;
//! - `.bpk`: burn's burnpack ([`burnpack_file`]), the model and Adam's state.

mod atomic;
pub mod autograd_json;
pub mod burnpack_file;
pub mod metadata;
pub mod safetensors_file;
mod writer;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use atomic::{
    write_atomically, write_atomically_locked, write_atomically_with, write_new_temp_file,
};
pub use writer::CheckpointWriter;

use crate::config::TrainingConfig;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::model::{Activation, ModelSpec};
use metadata::MetadataDoc;

/// The version of burnfit's metadata this build writes; files with a newer one are refused.
pub const FORMAT_VERSION: u32 = 1;

/// The key burnfit's [`Metadata`] is kept under, in every format.
pub const METADATA_KEY: &str = "burnfit";

/// A model's state on the host: what a checkpoint file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The model's architecture (read from the parameters' names and shapes).
    pub spec: ModelSpec,
    /// The parameters' values, in [`ModelSpec::param_names`] order.
    pub params: Vec<HostTensor>,
    /// Adam's state, when the file has it.
    pub adam: Option<AdamSnapshot>,
    /// burnfit's own metadata; absent in files written by the autograd crate.
    pub meta: Option<Metadata>,
}

/// Adam's state on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamSnapshot {
    /// Updates applied so far (the autograd crate stores this plus one as `t`).
    pub updates: u64,
    /// `(m, v)` for each parameter, in [`ModelSpec::param_names`] order.
    pub moments: Vec<(HostTensor, HostTensor)>,
}

/// burnfit's metadata, kept under the key `"burnfit"` of every format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The burnfit version that wrote the file.
    pub crate_version: String,
    /// The backend the model was trained on.
    pub backend: String,
    /// Optimizer steps taken in total, across resumes.
    pub step: u64,
    /// The data stream's seed (also inside `config`).
    pub seed: u64,
    /// The loss at the last step whose loss was read back.
    pub final_loss: Option<f32>,
    /// The resolved training config.
    pub config: TrainingConfig,
    /// Adam's exact update count. The formats keep Adam's `t` as an f32, as the autograd crate
    /// does, which counts exactly only up to 2^24; past that, this is the count, and the file's
    /// `t` must be its f32 rounding. Absent in files without Adam's state and in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adam_updates: Option<u64>,
    /// The engine that wrote the file: `autodiff` or `fused` (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The CSV file the model was fitted to, for a `--data` run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRecord>,
}

/// What a checkpoint records of the CSV file it was trained on: enough to predict from the
/// right columns, to undo nothing (the parameters are in the data's own units), and to resume
/// in the same scaled space on the same rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRecord {
    /// The file's name as given to `--data`.
    pub file: String,
    /// Data rows read (after any dropped ones).
    pub rows: usize,
    /// Rows skipped by `--drop-invalid-rows`.
    pub dropped_rows: usize,
    /// The file's content hash (16 hex digits; detects changes, not cryptographic).
    pub hash: String,
    /// The feature columns, in the model's input order.
    pub features: Vec<String>,
    /// The target column.
    pub target: String,
    /// Rows in the training split.
    pub train_rows: usize,
    /// Rows in the validation split.
    pub val_rows: usize,
    /// The standardization used while training: per feature mean and standard deviation over
    /// the training rows. The checkpoint's parameters are in the data's units regardless.
    pub scaling: Option<ScalingRecord>,
    /// With standardization: the values, in the scaled space the model trains in, of the
    /// parameters the scaling changes (the first and last layer), by name. Converting the data's
    /// units back rounds in f32; with these a resume continues bit for bit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_space: Option<std::collections::BTreeMap<String, Vec<f32>>>,
}

/// Feature means and standard deviations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingRecord {
    /// Per feature mean.
    pub mean: Vec<f64>,
    /// Per feature standard deviation.
    pub std: Vec<f64>,
    /// The target's mean over the training rows (the model trained on the scaled target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_mean: Option<f64>,
    /// The target's standard deviation over the training rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_std: Option<f64>,
}

/// What a run on `backend` with `engine` has to say about itself after `step` steps and
/// `adam_updates` Adam updates: the metadata every checkpoint written by this build carries.
pub struct RunRecord<'a> {
    /// The resolved config.
    pub config: &'a TrainingConfig,
    /// The backend's name.
    pub backend: &'a str,
    /// The engine's name.
    pub engine: &'a str,
    /// Steps taken, across resumes.
    pub step: u64,
    /// Adam's updates.
    pub adam_updates: u64,
    /// The last loss read back.
    pub final_loss: Option<f32>,
    /// The CSV file, for a `--data` run.
    pub data: Option<DataRecord>,
}

impl From<RunRecord<'_>> for Metadata {
    fn from(run: RunRecord<'_>) -> Metadata {
        Metadata {
            format_version: FORMAT_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: run.backend.to_string(),
            step: run.step,
            seed: run.config.seed,
            final_loss: run.final_loss,
            config: run.config.clone(),
            adam_updates: Some(run.adam_updates),
            engine: Some(run.engine.to_string()),
            data: run.data,
        }
    }
}

/// A checkpoint file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The autograd crate's results.json (`.json`).
    Json,
    /// SafeTensors (`.safetensors`); holds no optimizer state.
    Safetensors,
    /// burn's burnpack (`.bpk`).
    Bpk,
}

impl Format {
    /// The format a file name's extension names.
    pub fn from_path(path: &Path) -> Result<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Ok(Format::Json),
            Some("safetensors") => Ok(Format::Safetensors),
            Some("bpk") => Ok(Format::Bpk),
            _ => Err(Error::CheckpointFormat {
                path: path.to_owned(),
            }),
        }
    }

    /// The format a file's first bytes show: burnpack's magic number, SafeTensors' 8-byte
    /// header length followed by its JSON header, or a JSON object. `None` when none matches.
    pub fn detect(bytes: &[u8]) -> Option<Format> {
        const BURNPACK_MAGIC: u32 = 0x4255_524E; // "BURN", little-endian in the file
        if bytes.len() >= 4
            && u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == BURNPACK_MAGIC
        {
            return Some(Format::Bpk);
        }
        if bytes.len() >= 9 {
            let header = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
            if header
                .checked_add(8)
                .is_some_and(|end| end <= bytes.len() as u64)
                && bytes[8] == b'{'
            {
                return Some(Format::Safetensors);
            }
        }
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Some(Format::Json),
            _ => None,
        }
    }

    /// Whether files of this format keep Adam's state.
    pub fn keeps_optimizer(self) -> bool {
        !matches!(self, Format::Safetensors)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "autograd results.json",
            Format::Safetensors => "SafeTensors",
            Format::Bpk => "burnpack",
        })
    }
}

pub use crate::host::NamedTensor;

/// What a SafeTensors or burnpack file holds, before it is read as a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Contents {
    /// Every tensor, sorted by name.
    pub tensors: Vec<NamedTensor>,
    /// The metadata JSON under [`METADATA_KEY`], if any.
    pub metadata: Option<String>,
}

/// Names of Adam's tensors in SafeTensors and burnpack files: `adam.<param>.m` / `.v`, and
/// `adam.t` ([1], = updates + 1 as in the autograd crate).
fn adam_name(param: &str, moment: &str) -> String {
    format!("adam.{param}.{moment}")
}
const ADAM_T: &str = "adam.t";

impl Checkpoint {
    /// Training steps taken before this checkpoint: burnfit's metadata says; an autograd file's
    /// count is its Adam's updates.
    pub fn step(&self) -> u64 {
        match (&self.meta, &self.adam) {
            (Some(meta), _) => meta.step,
            (None, Some(adam)) => adam.updates,
            (None, None) => 0,
        }
    }

    /// The value of a 1×1 parameter by name (`"w"` or `"b"`), for display.
    pub fn scalar_param(&self, name: &str) -> Option<f32> {
        let index = self.spec.param_names().iter().position(|n| n == name)?;
        self.params[index].data.first().copied()
    }

    /// The parameters with their names.
    pub fn named_params(&self) -> Vec<NamedTensor> {
        self.spec
            .param_names()
            .into_iter()
            .zip(&self.params)
            .map(|(name, value)| NamedTensor {
                name,
                value: value.clone(),
            })
            .collect()
    }

    /// A checkpoint from named parameters (as [`ModelSpec::infer`] returns them).
    pub fn from_named(
        spec: ModelSpec,
        params: Vec<NamedTensor>,
        adam: Option<AdamSnapshot>,
        meta: Option<Metadata>,
    ) -> Checkpoint {
        Checkpoint {
            spec,
            params: params.into_iter().map(|p| p.value).collect(),
            adam,
            meta,
        }
    }

    /// Every tensor under the name SafeTensors and burnpack files give it.
    pub fn named_tensors(&self) -> Vec<NamedTensor> {
        let names = self.spec.param_names();
        let mut all = self.named_params();
        if let Some(adam) = &self.adam {
            for (name, (m, v)) in names.iter().zip(&adam.moments) {
                for (moment, value) in [("m", m), ("v", v)] {
                    all.push(NamedTensor {
                        name: adam_name(name, moment),
                        value: value.clone(),
                    });
                }
            }
            all.push(NamedTensor {
                name: ADAM_T.into(),
                value: HostTensor::new(vec![1], vec![adam.t_as_f32()]),
            });
        }
        all
    }

    /// Reads a checkpoint out of the tensors of a SafeTensors or burnpack file. Tensors that are
    /// neither the model's nor its Adam's are ignored ([`inspect`] lists them).
    pub fn from_contents(contents: &Contents) -> Result<Checkpoint, String> {
        let find = |name: &str| {
            contents
                .tensors
                .iter()
                .find(|t| t.name == name)
                .map(|t| &t.value)
        };
        let meta = contents
            .metadata
            .as_deref()
            .map(|text| MetadataDoc::from_json(text).and_then(MetadataDoc::into_metadata))
            .transpose()?;
        let (spec, named) = ModelSpec::infer(find, activation_of(meta.as_ref()))?;
        let names = spec.param_names();
        let params: Vec<HostTensor> = named.into_iter().map(|p| p.value).collect();
        let moments: Vec<Option<(HostTensor, HostTensor)>> = names
            .iter()
            .map(|p| {
                Some((
                    find(&adam_name(p, "m"))?.clone(),
                    find(&adam_name(p, "v"))?.clone(),
                ))
            })
            .collect();
        let t = find(ADAM_T);
        let adam = match (
            moments.iter().all(Option::is_some),
            moments.iter().any(Option::is_some),
            t,
        ) {
            (true, _, Some(t)) => {
                let moments: Vec<(HostTensor, HostTensor)> =
                    moments.into_iter().flatten().collect();
                for ((name, (m, v)), param) in names.iter().zip(&moments).zip(&params) {
                    check_moments(name, m, v, param)?;
                }
                Some(AdamSnapshot {
                    updates: parse_t(ADAM_T, &t.data)? - 1,
                    moments,
                })
            }
            (false, false, None) => None,
            _ => {
                let needed: Vec<String> = names
                    .iter()
                    .flat_map(|p| [adam_name(p, "m"), adam_name(p, "v")])
                    .chain([ADAM_T.to_string()])
                    .collect();
                return Err(format!(
                    "Adam state is incomplete (needs {})",
                    needed.join(", ")
                ));
            }
        };
        let checkpoint = Checkpoint {
            spec,
            params,
            adam,
            meta,
        };
        checkpoint.check_against_metadata()?;
        Ok(checkpoint)
    }

    /// A file's parameters must be the model its metadata's config describes.
    pub(crate) fn check_against_metadata(&self) -> Result<(), String> {
        let Some(meta) = &self.meta else {
            return Ok(());
        };
        let d_in = meta.data.as_ref().map_or(1, |d| d.features.len());
        let expected = meta.config.model_spec(d_in);
        if expected != self.spec {
            return Err(format!(
                "the parameters are a {} model, the metadata's config describes a {} model",
                self.spec.describe(),
                expected.describe()
            ));
        }
        Ok(())
    }

    /// The same checkpoint with another activation, for files that do not record theirs (the
    /// autograd crate's): `--activation` says which.
    pub fn with_activation(mut self, activation: Activation) -> Checkpoint {
        if self.meta.is_none() && !self.spec.is_linear() {
            self.spec.activation = activation;
        }
        self
    }

    /// Refuses NaN and infinities: JSON cannot hold them and no loader reads them back.
    pub fn check_finite(&self) -> Result<()> {
        for tensor in self.named_tensors() {
            if let Some(value) = tensor.value.first_non_finite() {
                let name = match tensor
                    .name
                    .strip_prefix("adam.")
                    .and_then(|n| n.split_once('.'))
                {
                    Some((param, moment)) => format!("Adam {moment} of {param}"),
                    None => tensor.name,
                };
                return Err(Error::NonFinite { name, value });
            }
        }
        Ok(())
    }

    /// The bytes of this checkpoint in `format`. A format that cannot keep Adam's state refuses a
    /// checkpoint that has it (drop it first: see [`Checkpoint::without_optimizer`]).
    pub fn to_bytes(&self, format: Format) -> Result<Vec<u8>, String> {
        if self.adam.is_some() && !format.keeps_optimizer() {
            return Err(format!("{format} cannot hold the optimizer state"));
        }
        let metadata = self
            .meta
            .as_ref()
            .map(|m| serde_json::to_string(m).expect("metadata serialises"));
        match format {
            Format::Json => Ok(autograd_json::to_bytes(self)),
            Format::Safetensors => safetensors_file::to_bytes(&self.named_tensors(), metadata),
            Format::Bpk => burnpack_file::to_bytes(&self.named_tensors(), metadata),
        }
    }

    /// The same checkpoint without Adam's state.
    /// The recorded data file's path (relative to this process's working directory, as the
    /// user gave it) re-expressed relative to the directory the checkpoint `out` is saved in,
    /// where a resume looks for it first: resuming from another directory still finds it. An
    /// absolute path, or one that cannot be resolved, is kept as it is. A relative cache
    /// directory (`--cache-dir`) is recorded absolute: the cache belongs to this machine.
    pub fn with_data_path_beside(self, out: &Path) -> Checkpoint {
        self.with_cache_dir_absolute()
            .data_path_relative_to(out, false)
    }

    /// A relative `--cache-dir` made absolute (the cache belongs to this machine; a resume from
    /// another directory finds it).
    fn with_cache_dir_absolute(mut self) -> Checkpoint {
        if let Some(data) = self.meta.as_mut().and_then(|m| m.config.data.as_mut())
            && let Some(dir) = &data.cache_dir
            && Path::new(dir).is_relative()
            && let Ok(absolute) = std::path::absolute(dir)
        {
            data.cache_dir = Some(absolute.display().to_string());
        }
        self
    }

    /// [`Checkpoint::with_data_path_beside`], also for an absolute path when `absolute_too`.
    fn data_path_relative_to(mut self, out: &Path, absolute_too: bool) -> Checkpoint {
        // A pipe or device (`/dev/stdout`) has no directory to be relative to.
        if std::fs::metadata(out).is_ok_and(|m| !m.is_file()) {
            return self;
        }
        if let Some(data) = self
            .meta
            .as_mut()
            .and_then(|m| m.config.data.as_mut())
            .filter(|d| absolute_too || Path::new(&d.path).is_relative())
            && let Some(relative) = relative_path(Path::new(&data.path), out)
        {
            data.path = relative.display().to_string();
        }
        self
    }

    /// The model's prediction for one input row (its features in the model's order, in the
    /// data's units), computed on the host in f64.
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.spec.forward_host(&self.named_params(), row)
    }

    /// Refuses to continue this checkpoint with another model than it holds.
    pub fn check_model(&self, spec: &ModelSpec) -> Result<()> {
        if self.spec == *spec {
            return Ok(());
        }
        Err(Error::ModelMismatch {
            checkpoint: self.spec.describe(),
            requested: spec.describe(),
        })
    }

    /// The recorded data file's relative path, as read from the checkpoint file `from` (relative
    /// to `from`'s real directory, or for older checkpoints to this process's working
    /// directory), re-expressed relative to the real directory of `to` (`convert` into another
    /// directory). A path whose file is not found is kept as it is.
    pub fn with_data_path_moved(self, from: &Path, to: &Path) -> Checkpoint {
        let was_relative = self
            .meta
            .as_ref()
            .and_then(|m| m.config.data.as_ref())
            .is_some_and(|d| Path::new(&d.path).is_relative());
        let found = self.with_data_path_found_from(from);
        if was_relative {
            found.data_path_relative_to(to, true)
        } else {
            found
        }
    }

    fn with_data_path_found_from(mut self, from: &Path) -> Checkpoint {
        if let Some(data) = self
            .meta
            .as_mut()
            .and_then(|m| m.config.data.as_mut())
            .filter(|d| Path::new(&d.path).is_relative())
        {
            let recorded = Path::new(&data.path);
            let beside = real_dir(from).map(|dir| dir.join(recorded));
            let found = beside
                .into_iter()
                .chain(std::iter::once(recorded.to_path_buf()))
                .find(|p| p.is_file())
                .and_then(|p| std::fs::canonicalize(p).ok());
            if let Some(found) = found {
                data.path = found.display().to_string();
            }
        }
        self
    }

    /// The recorded data file's relative path (relative to this process's working directory)
    /// made absolute, for a checkpoint saved where no relative path would lead back.
    pub fn with_data_path_absolute(self) -> Checkpoint {
        let mut this = self.with_cache_dir_absolute();
        if let Some(data) = this
            .meta
            .as_mut()
            .and_then(|m| m.config.data.as_mut())
            .filter(|d| Path::new(&d.path).is_relative())
            && let Ok(absolute) = std::fs::canonicalize(&data.path)
        {
            data.path = absolute.display().to_string();
        }
        this
    }

    /// This checkpoint without its optimizer state.
    pub fn without_optimizer(mut self) -> Checkpoint {
        self.adam = None;
        if let Some(meta) = &mut self.meta {
            meta.adam_updates = None;
        }
        self
    }

    /// Takes Adam's exact update count from the metadata where the file's f32 `t` cannot hold
    /// it (past 2^24), after checking that the two agree.
    fn with_exact_updates(mut self) -> Result<Checkpoint, String> {
        if let (Some(meta), Some(adam)) = (&self.meta, &self.adam) {
            let updates = meta.adam_updates.unwrap_or(adam.updates);
            if updates > meta.step {
                return Err(format!(
                    "Adam has {updates} updates but the metadata says {} steps were taken",
                    meta.step
                ));
            }
        }
        let exact = self.meta.as_ref().and_then(|m| m.adam_updates);
        match (&mut self.adam, exact) {
            (Some(adam), Some(exact)) => {
                let exact_t = AdamSnapshot {
                    updates: exact,
                    ..adam.clone()
                }
                .t_as_f32();
                if exact_t != adam.t_as_f32() {
                    return Err(format!(
                        "Adam's t ({}) disagrees with the metadata's adam_updates ({exact}, t = {})",
                        adam.t_as_f32(),
                        exact.saturating_add(1)
                    ));
                }
                adam.updates = exact;
            }
            (None, Some(_)) => {
                return Err("the metadata has adam_updates but the file has no Adam state".into());
            }
            _ => {}
        }
        Ok(self)
    }

    /// Writes the checkpoint to `path` in `format`, atomically: the file is either the complete
    /// new checkpoint or, on any error, exactly what it was before.
    pub fn save_as(&self, path: &Path, format: Format) -> Result<()> {
        self.save_replacing(path, format, false)
    }

    /// [`Checkpoint::save_as`], replacing a write-protected file too when `force` is set.
    pub fn save_replacing(&self, path: &Path, format: Format, force: bool) -> Result<()> {
        self.check_finite()?;
        let bytes = self
            .to_bytes(format)
            .map_err(|message| Error::CheckpointWrite {
                path: path.to_owned(),
                message,
            })?;
        write_atomically(path, &bytes, force)
    }

    /// Writes the checkpoint to `path` in the format its extension names.
    pub fn save(&self, path: &Path) -> Result<()> {
        check_destination(path, false)?;
        self.save_as(path, Format::from_path(path)?)
    }

    /// Reads a checkpoint written by burnfit (any format) or by the autograd crate.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let (format, bytes) = read_file(path)?;
        Checkpoint::from_bytes(&bytes, format).map_err(|message| read_error(path, message))
    }

    /// Reads a checkpoint from the bytes of a file in `format`; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8], format: Format) -> Result<Checkpoint, String> {
        let checkpoint = match format {
            Format::Json => autograd_json::from_bytes(bytes),
            Format::Safetensors => {
                safetensors_file::read(bytes).and_then(|c| Checkpoint::from_contents(&c))
            }
            Format::Bpk => burnpack_file::read(bytes).and_then(|c| Checkpoint::from_contents(&c)),
        }?;
        checkpoint.with_exact_updates()
    }
}

/// Fails early, before any work, when `path` cannot receive a file: a directory, a special file
/// that is not a character device or FIFO, a missing directory, or one this process cannot
/// create files in.
/// A write-protected file is refused unless `force`.
pub fn check_destination(path: &Path, force: bool) -> Result<()> {
    atomic::check_destination(path, force)
}

/// `file`'s path from the directory holding `out` (both resolved through the file system).
fn relative_path(file: &Path, out: &Path) -> Option<std::path::PathBuf> {
    let file = std::fs::canonicalize(file).ok()?;
    let dir = real_dir(out)?;
    let common = file
        .components()
        .zip(dir.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut relative = std::path::PathBuf::new();
    for _ in dir.components().skip(common) {
        relative.push("..");
    }
    for part in file.components().skip(common) {
        relative.push(part);
    }
    Some(relative)
}

/// The directory that really holds the file `path` names: symlinks followed (a dangling one to
/// where its target would be), the directory resolved. `None` when it does not exist.
pub fn real_dir(path: &Path) -> Option<std::path::PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&current).ok()?;
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => break,
        }
    }
    let dir = match current.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir).ok()
}

fn read_error(path: &Path, message: String) -> Error {
    Error::CheckpointRead {
        path: path.to_owned(),
        message,
    }
}

/// The largest checkpoint file burnfit reads: far above any real one (a few hundred bytes plus
/// metadata), low enough that a wrong file cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// The format and bytes of a checkpoint file, with the common problems named. The format is
/// detected from the content ([`Format::detect`]), else taken from the extension.
fn read_file(path: &Path) -> Result<(Format, Vec<u8>)> {
    let bytes =
        crate::input::read_regular_file(path, MAX_FILE_BYTES).map_err(|m| read_error(path, m))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(read_error(path, "file is empty".into()));
    }
    let format = match Format::detect(&bytes) {
        Some(format) => format,
        // An extension names the format to report a damaged file's problem in; without one,
        // the file is none of them (`--format` picks only what is written).
        None => Format::from_path(path).map_err(|_| {
            read_error(
                path,
                "not a checkpoint file: its content is none of JSON, SafeTensors, burnpack".into(),
            )
        })?,
    };
    Ok((format, bytes))
}

/// The activation a file's metadata records; files without metadata get the default (the
/// caller may override it: [`Checkpoint::with_activation`]).
pub(crate) fn activation_of(meta: Option<&Metadata>) -> Activation {
    meta.map_or_else(Activation::default, |m| m.config.activation)
}

/// Adam's moments must be shaped like their parameter, finite, and v non-negative.
pub(crate) fn check_moments(
    name: &str,
    m: &HostTensor,
    v: &HostTensor,
    param: &HostTensor,
) -> Result<(), String> {
    for (what, value) in [("m", m), ("v", v)] {
        if value.shape != param.shape {
            return Err(format!(
                "Adam {what} of `{name}` has shape {:?}, `{name}` has {:?}",
                value.shape, param.shape
            ));
        }
        if let Some(bad) = value.first_non_finite() {
            return Err(format!(
                "Adam {what} of `{name}` holds a non-finite value ({bad})"
            ));
        }
    }
    if v.data.iter().any(|x| *x < 0.0) {
        return Err(format!("Adam v of `{name}` is negative"));
    }
    Ok(())
}

/// Adam's t (updates + 1) as a file stores it: one whole number ≥ 1 below 2^64. Past 2^24 the
/// f32 is a rounding of the true count, which the metadata then holds (see
/// [`Metadata::adam_updates`]).
pub(crate) fn parse_t(name: &str, data: &[f32]) -> Result<u64, String> {
    const TWO_POW_64: f32 = 18_446_744_073_709_551_616.0;
    match data {
        [t] if t.is_finite() && *t >= 1.0 && t.fract() == 0.0 && *t < TWO_POW_64 => Ok(*t as u64),
        [t] => Err(format!(
            "Adam {name} is {t}, expected a whole number from 1 to 2^64 − 1"
        )),
        other => Err(format!(
            "Adam {name} holds {} values, expected one",
            other.len()
        )),
    }
}

impl AdamSnapshot {
    /// Adam's t (updates + 1) as the files store it: an f32, exact up to 2^24.
    pub fn t_as_f32(&self) -> f32 {
        self.updates.saturating_add(1) as f32
    }
}

/// What `burnfit inspect` shows of a checkpoint file.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The file's format.
    pub format: String,
    /// Namespaces (autograd files) — empty for other formats.
    pub namespaces: Vec<String>,
    /// Every variable: name, shape and first values.
    pub variables: Vec<VariableSummary>,
    /// The model found in the file: `[w, b]` for a one-input linear model.
    pub model: Option<[f32; 2]>,
    /// The model's architecture, e.g. `linear, 3 inputs` or `mlp 1-64-64-1, tanh`.
    pub architecture: Option<String>,
    /// Why the file does not load as a model, when it does not.
    pub model_error: Option<String>,
    /// Adam's state found: its update count, when present.
    pub optimizer_updates: Option<u64>,
    /// Variables that are neither the model's nor its optimizer's.
    pub others: Vec<String>,
    /// burnfit's metadata, when present and readable.
    pub metadata: Option<serde_json::Value>,
    /// Why the metadata block present in the file cannot be read.
    pub metadata_error: Option<String>,
}

/// One variable of an [`Inspection`].
#[derive(Clone, Debug, Serialize)]
pub struct VariableSummary {
    /// Its full name (`namespace/name` for autograd files).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Up to its first 4 values.
    pub first_values: Vec<f32>,
}

/// The variables of a file before it is read as a checkpoint, for [`inspect`].
struct Listing {
    /// Display name and value of every variable.
    variables: Vec<(String, HostTensor)>,
    /// The metadata block, read, or why it cannot be.
    metadata: Option<Result<Metadata, String>>,
    namespaces: Vec<String>,
    /// Display names of the model's and its Adam's variables.
    known: Vec<String>,
}

impl Listing {
    fn autograd(bytes: &[u8]) -> Result<Listing, String> {
        let (vars, metadata) = autograd_json::variables(bytes)?;
        let metadata = metadata.map(MetadataDoc::into_metadata);
        let mut namespaces: Vec<String> = vars.iter().map(|v| v.namespace.clone()).collect();
        namespaces.sort();
        namespaces.dedup();
        Ok(Listing {
            known: autograd_json::model_variable_names(&vars),
            variables: vars
                .into_iter()
                .map(|v| (autograd_json::display_name(&v.namespace, &v.name), v.value))
                .collect(),
            metadata,
            namespaces,
        })
    }

    fn named(contents: Contents) -> Listing {
        let find = |name: &str| {
            contents
                .tensors
                .iter()
                .find(|t| t.name == name)
                .map(|t| &t.value)
        };
        let names = ModelSpec::infer(find, Activation::default())
            .map(|(spec, _)| spec.param_names())
            .unwrap_or_default();
        let mut known = names.clone();
        for param in &names {
            known.push(adam_name(param, "m"));
            known.push(adam_name(param, "v"));
        }
        known.push(ADAM_T.into());
        Listing {
            metadata: contents
                .metadata
                .as_deref()
                .map(|m| MetadataDoc::from_json(m).and_then(MetadataDoc::into_metadata)),
            variables: contents
                .tensors
                .into_iter()
                .map(|t| (t.name, t.value))
                .collect(),
            namespaces: vec![],
            known,
        }
    }
}

/// Looks inside a checkpoint file without requiring it to be a loadable model.
pub fn inspect(path: &Path) -> Result<Inspection> {
    let (format, bytes) = read_file(path)?;
    let listing = match format {
        Format::Json => Listing::autograd(&bytes),
        Format::Safetensors => safetensors_file::read(&bytes).map(Listing::named),
        Format::Bpk => burnpack_file::read(&bytes).map(Listing::named),
    }
    .map_err(|message| read_error(path, message))?;
    let Listing {
        variables,
        metadata,
        namespaces,
        known,
    } = listing;
    let checkpoint = Checkpoint::from_bytes(&bytes, format);
    Ok(Inspection {
        format: format.to_string(),
        namespaces,
        others: variables
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !known.contains(n))
            .collect(),
        variables: variables
            .into_iter()
            .map(|(name, value)| VariableSummary {
                name,
                shape: value.shape,
                first_values: value.data.into_iter().take(4).collect(),
            })
            .collect(),
        model: checkpoint
            .as_ref()
            .ok()
            .filter(|c| c.spec == ModelSpec::linear(1))
            .map(|c| [c.params[0].data[0], c.params[1].data[0]]),
        architecture: checkpoint.as_ref().ok().map(|c| {
            if c.meta.is_none() && !c.spec.is_linear() {
                let widths: Vec<String> = c.spec.widths().iter().map(|w| w.to_string()).collect();
                format!(
                    "mlp {} (the file does not record its activation: pass --activation to predict or resume)",
                    widths.join("-")
                )
            } else {
                c.spec.describe()
            }
        }),
        model_error: checkpoint.as_ref().err().cloned(),
        optimizer_updates: checkpoint
            .as_ref()
            .ok()
            .and_then(|c| c.adam.as_ref())
            .map(|a| a.updates),
        metadata_error: metadata.as_ref().and_then(|m| m.as_ref().err().cloned()),
        metadata: metadata
            .and_then(Result::ok)
            .map(|m| serde_json::to_value(m).expect("metadata serialises")),
    })
}
