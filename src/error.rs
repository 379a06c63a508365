//! The one error type of the library. Every message names the flag, file or value at fault.

use std::path::PathBuf;

/// Everything that can go wrong in burnfit, with messages meant to be shown to a user as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A backend was asked for that this build does not contain.
    #[error(
        "backend `{backend}` is not compiled into this build; rebuild with `--features {feature}`"
    )]
    BackendNotCompiled {
        /// The backend's name as given on the command line.
        backend: &'static str,
        /// The cargo feature that compiles it in.
        feature: &'static str,
    },

    /// wgpu is compiled in but no adapter could be opened.
    #[error("backend `wgpu`: no usable adapter ({reason}); {advice}", reason = .0, advice = wgpu_advice())]
    NoWgpuAdapter(String),

    /// A training setting is out of range.
    #[error("invalid {name} = {value}: {expected}")]
    InvalidSetting {
        /// The flag / config key, e.g. `--lr`.
        name: &'static str,
        /// The offending value, formatted.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },

    /// A batch too large for the device's memory, found before allocating it.
    #[error(
        "--batch {batch} needs ~{}, more than the {} {place}; use a smaller --batch{}",
        size_against(*.needed_bytes, *.room_bytes),
        size_against(*.room_bytes, *.needed_bytes),
        if *.fused_would_fit { ", or --engine fused (it holds no batch-sized tensors)" } else { "" }
    )]
    BatchTooLarge {
        /// Whether the fused engine trains this run (it holds no batch-sized tensors).
        fused_would_fit: bool,
        /// The batch asked for.
        batch: usize,
        /// What it needs, in bytes.
        needed_bytes: u64,
        /// What there is, in bytes.
        room_bytes: u64,
        /// Where: "memory available" or the device's largest buffer.
        place: String,
    },

    /// The config file cannot be read or is not a valid burnfit config.
    #[error("config file {}: {message}", path.display())]
    ConfigParse {
        /// The file given to `--config`.
        path: PathBuf,
        /// What is wrong, from the JSON parser.
        message: String,
    },

    /// A data file (`--data`) cannot be read or does not hold a usable table of numbers.
    #[error("data file {}: {message}", path.display())]
    Data {
        /// The file as given.
        path: PathBuf,
        /// What is wrong, naming the line and column where there is one.
        message: String,
    },

    /// The binary cache of a data file for out-of-core training could not be written or read.
    #[error("data cache {}: {message}", path.display())]
    Cache {
        /// The cache file (or its directory).
        path: PathBuf,
        /// What went wrong, and what would help.
        message: String,
    },

    /// A checkpoint could not be read or is not a valid checkpoint.
    #[error("checkpoint {}: {message}", path.display())]
    CheckpointRead {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A checkpoint path whose extension names no known format.
    #[error("checkpoint {}: unknown format; use a .json, .safetensors or .bpk file name (or --format)", path.display())]
    CheckpointFormat {
        /// The path.
        path: PathBuf,
    },

    /// A conversion would lose the optimizer state.
    #[error("{} holds Adam's state, which {to} cannot keep; pass --drop-optimizer to convert without it", from.display())]
    LossyConversion {
        /// The source checkpoint.
        from: PathBuf,
        /// The destination format.
        to: String,
    },

    /// `convert` onto its own input would drop variables that are not the model's.
    #[error("{}: converting it onto itself would drop {others} (not the model's nor its Adam's); write to another file", path.display())]
    ConvertInPlaceDrops {
        /// The checkpoint.
        path: PathBuf,
        /// The variables that would be left out.
        others: String,
    },

    /// A checkpoint resumed or used with another model than it holds.
    #[error(
        "the checkpoint holds a {checkpoint} model, but this run asks for {requested}; match --model/--hidden/--activation/--data to the checkpoint"
    )]
    ModelMismatch {
        /// The checkpoint's model.
        checkpoint: String,
        /// The model the run's settings describe.
        requested: String,
    },

    /// A setting the chosen engine does not support.
    #[error("--engine {engine} {message}")]
    EngineUnsupported {
        /// The engine.
        engine: &'static str,
        /// What it does not support.
        message: String,
    },

    /// A resumed CSV run whose data file is not the one it was trained on.
    #[error(
        "data file {path} is not the one the checkpoint was trained on ({what}); pass --allow-data-change to train on it anyway"
    )]
    DataChanged {
        /// The file.
        path: String,
        /// What differs.
        what: String,
    },

    /// A model too large or malformed (its `--hidden` widths, or its inputs times them).
    #[error("invalid model for --hidden: {message}")]
    InvalidModel {
        /// What is wrong, from [`crate::model::ModelSpec::validate`].
        message: String,
    },

    /// A resumed run asks to change what its checkpoint was trained on.
    #[error("cannot resume with {what}")]
    ResumeChange {
        /// The setting and what the checkpoint has instead.
        what: String,
    },

    /// Two flags name the same file, so one would overwrite the other.
    #[error("{first} and {second} both name {}; give each its own file", path.display())]
    SamePath {
        /// The first flag.
        first: String,
        /// The second flag.
        second: String,
        /// The file.
        path: PathBuf,
    },

    /// A flag given where it does not apply, or missing where it is needed.
    #[error("{flag} {message}")]
    Misused {
        /// The flag, e.g. `--epochs`.
        flag: &'static str,
        /// What is wrong, in words.
        message: String,
    },

    /// Bad input to `predict`.
    #[error("invalid input {what}: {message}")]
    InvalidInput {
        /// Where the input came from (`--x`, `stdin line 3`).
        what: String,
        /// What is wrong.
        message: String,
    },

    /// A stop signal (Ctrl-C, SIGTERM, SIGHUP) came while the data file was read, before
    /// training: nothing was trained, nothing saved, and a half-built cache was removed.
    #[error("interrupted by {} while reading {}; nothing was trained or saved", signal_name(*signal), path.display())]
    ReadInterrupted {
        /// The file being read.
        path: PathBuf,
        /// The signal's number.
        signal: i32,
    },

    /// A stop signal came after the data was read but before the first training step (while
    /// the backend or the engine was set up): nothing was trained or saved.
    #[error("interrupted by {} before training; nothing was trained or saved", signal_name(*signal))]
    InterruptedBeforeTraining {
        /// The signal's number.
        signal: i32,
    },

    /// `bench` skipped every row it was asked for.
    #[error("bench measured nothing: every row was skipped (the notes above say why){unwritten}")]
    NothingMeasured {
        /// What was asked for and not written (`; no --json written`), or nothing.
        unwritten: String,
    },

    /// Training was stopped by a signal (Ctrl-C, SIGTERM, SIGHUP).
    #[error("interrupted at step {step} by {}{}", signal_name(*signal), saved.as_ref().map_or(String::new(), |p| format!("; saved checkpoint {}", p.display())))]
    Interrupted {
        /// The last completed step.
        step: u64,
        /// Where the final checkpoint was saved.
        saved: Option<PathBuf>,
        /// The signal's number.
        signal: i32,
    },

    /// A file (a checkpoint, a report, a plot, the metrics log) could not be written. A file
    /// written whole is untouched by the failure; the metrics log keeps the rows before it.
    #[error("cannot write {}: {message}", path.display())]
    CheckpointWrite {
        /// The destination.
        path: PathBuf,
        /// Why.
        message: String,
    },

    /// A value about to be saved is NaN or infinite; nothing was written.
    #[error("refusing to save {name}: it holds a non-finite value ({value})")]
    NonFinite {
        /// Which variable.
        name: String,
        /// The value.
        value: f32,
    },

    /// The loss became NaN or infinite.
    #[error("training diverged at step {step}: loss is {loss} ({hint})")]
    Diverged {
        /// The step at which the loss was seen to be non-finite.
        step: u64,
        /// The loss value.
        loss: f32,
        /// What to change: the learning rate, or (at a fresh run's first step) the data.
        hint: String,
    },

    /// The final save failed; the checkpoint was saved to a fallback path instead.
    #[error("{original}; saved the checkpoint to {} instead", rescued.display())]
    SavedElsewhere {
        /// Why the requested destination could not be written.
        original: Box<Error>,
        /// Where the checkpoint is.
        rescued: PathBuf,
    },

    /// Standard input could not be read.
    #[error("cannot read stdin: {0}")]
    Stdin(String),

    /// Standard output could not be written (other than a closed pipe).
    #[error("cannot write to stdout: {0}")]
    Stdout(String),

    /// Copying a tensor from the device to the host failed.
    #[error("reading a tensor back from the device failed: {0}")]
    ReadBack(String),

    /// The device failed while running or reading back a computation.
    #[error("device error on backend `{backend}`: {message}")]
    Device {
        /// The backend in use.
        backend: &'static str,
        /// The message from burn.
        message: String,
    },

    /// A training metrics file has the wrong name or content, or does not match the run that
    /// would continue it.
    #[error("metrics file {}: {message}", path.display())]
    Metrics {
        /// The metrics file.
        path: PathBuf,
        /// What is wrong, with the line number when it is about one line.
        message: String,
    },

    /// A chart cannot be drawn: the output is not a `.svg` file, or there is nothing to plot.
    #[error("plot {}: {message}", path.display())]
    Plot {
        /// The chart's output file, or the input file the chart was to be drawn from.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// The process exit code for this error: 2 for a usage problem (a flag, a config value, a
    /// backend missing from the build), 1 for everything that went wrong while running.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BackendNotCompiled { .. }
            | Error::InvalidSetting { .. }
            | Error::BatchTooLarge { .. }
            | Error::ConfigParse { .. }
            | Error::Data { .. }
            | Error::Cache { .. }
            | Error::CheckpointFormat { .. }
            | Error::ConvertInPlaceDrops { .. }
            | Error::LossyConversion { .. }
            | Error::ModelMismatch { .. }
            | Error::EngineUnsupported { .. }
            | Error::DataChanged { .. }
            | Error::InvalidInput { .. }
            | Error::SamePath { .. }
            | Error::Misused { .. }
            | Error::ResumeChange { .. }
            | Error::InvalidModel { .. }
            | Error::Metrics { .. }
            | Error::Plot { .. } => 2,
            Error::Interrupted { signal, .. }
            | Error::ReadInterrupted { signal, .. }
            | Error::InterruptedBeforeTraining { signal } => 128 + signal,
            _ => 1,
        }
    }
}

/// A size for a message: `1.5 GiB`, `12.0 MiB`, `3.2 KiB`, `100 bytes`.
pub(crate) fn bytes_text(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    UNITS
        .iter()
        .find(|(_, size)| bytes >= *size)
        .map_or(format!("{bytes} bytes"), |(unit, size)| {
            format!("{:.1} {unit}", bytes as f64 / *size as f64)
        })
}

/// `bytes` for a message that sets it against `other`: as [`bytes_text`] writes it, or in
/// bytes where the two would read the same ("128.0 MiB, more than the 128.0 MiB").
pub(crate) fn size_against(bytes: u64, other: u64) -> String {
    if bytes != other && bytes_text(bytes) == bytes_text(other) {
        format!("{bytes} bytes")
    } else {
        bytes_text(bytes)
    }
}

/// A number for a message: as Rust prints it (`1`, `0.5`), or in the shortest exponent form
/// that reads back to it when that is long (`1e-300`, not 300 digits).
pub(crate) fn shown<T: std::fmt::Display + std::fmt::Debug>(value: T) -> String {
    let text = value.to_string();
    if text.len() <= 24 {
        text
    } else {
        format!("{value:?}")
    }
}

/// [`Error::InvalidSetting`]: `name` = `value` is not what `expected` says.
pub(crate) fn invalid(name: &'static str, value: impl ToString, expected: &'static str) -> Error {
    Error::InvalidSetting {
        name,
        value: value.to_string(),
        expected,
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to do when wgpu finds no adapter: fix the override if one is set, else install a driver.
fn wgpu_advice() -> String {
    match std::env::var("CUBECL_WGPU_DEFAULT_DEVICE") {
        Ok(value) => {
            // Examples other than the value that just failed.
            let others: Vec<String> = ["DiscreteGpu(0)", "IntegratedGpu(0)", "Cpu"]
                .iter()
                .filter(|example| value.trim() != **example)
                .take(2)
                .map(|example| format!("`{example}`"))
                .collect();
            format!(
                "CUBECL_WGPU_DEFAULT_DEVICE={value:?} picks no adapter here: unset it, or use e.g. {}",
                others.join(" or ")
            )
        }
        Err(_) => "install a Vulkan driver (e.g. Debian's mesa-vulkan-drivers) or pick `--backend ndarray`".into(),
    }
}

/// A stop signal's name, for messages.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
