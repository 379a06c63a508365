//! `burnfit bench`: the training loop timed on every backend, side by side with the autograd
//! crate, for a sweep of batch sizes.
//!
//! Per (system, batch): a warm-up run (its first step — kernel compilation, autotune, first
//! allocations — is reported as `warmup_ms`), then `repeat` timed runs of `steps` steps. A run's
//! time ends with a device sync, and the loss is read back only at its last step.

use std::time::Duration;

use serde::Serialize;

use std::sync::Arc;

use crate::backend::{Backend, BackendKind};
use crate::config::{ModelKind, Task, TrainingConfig};
use crate::data::PreparedTable;
use crate::engine::EngineKind;
use crate::error::{Error, Result};

/// The burn version burnfit is pinned to (Cargo.toml pins `=0.22.1`; a test keeps them equal).
pub const BURN_VERSION: &str = "0.22.1";

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// burn backends to time (each must be compiled in).
    pub backends: Vec<BackendKind>,
    /// Engines to time on each backend.
    pub engines: Vec<EngineKind>,
    /// Batch sizes of the sweep.
    pub batches: Vec<usize>,
    /// Steps per timed run.
    pub steps: u64,
    /// Timed runs per (system, batch).
    pub repeat: usize,
    /// Skip a measurement whose estimated duration exceeds this.
    pub budget: Duration,
    /// Also time the autograd crate (needs the `autograd-ref` feature; the seed workload only).
    pub autograd: bool,
    /// What is trained: the task or table, the model and its settings (`batch` and `steps` come
    /// from the sweep). The default is the seed workload.
    pub workload: TrainingConfig,
}

impl BenchOptions {
    /// Whether the workload is the seed's (the line, the linear model), which the autograd
    /// crate's reference row runs.
    pub fn is_seed_workload(&self) -> bool {
        let w = &self.workload;
        w.task == Task::Line && w.model == ModelKind::Linear && w.data.is_none()
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            backends: BackendKind::compiled(),
            engines: EngineKind::ALL.to_vec(),
            batches: vec![64, 4096, 65_536, 1_048_576],
            steps: 1000,
            repeat: 3,
            budget: Duration::from_secs(120),
            autograd: cfg!(feature = "autograd-ref"),
            workload: TrainingConfig::default(),
        }
    }
}

/// One line of the results table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchRow {
    /// `burnfit/<backend>/<engine>` or `autograd`.
    pub system: String,
    /// The engine of a burnfit row; absent for the autograd crate.
    pub engine: Option<EngineKind>,
    /// The device: `cpu` or the wgpu adapter's name and type.
    pub device: String,
    /// Samples per step.
    pub batch: usize,
    /// Steps per timed run.
    pub steps: u64,
    /// First step of the warm-up run, in ms.
    pub warmup_ms: f64,
    /// Median of the timed runs, in ms.
    pub median_ms: f64,
    /// Fastest timed run, in ms.
    pub min_ms: f64,
    /// Slowest timed run, in ms.
    pub max_ms: f64,
    /// median_ms / steps, in µs.
    pub us_per_step: f64,
    /// batch · steps / median seconds.
    pub samples_per_s: f64,
    /// The autograd crate's median over this row's median at the same batch: above 1 means
    /// faster than autograd. Absent when autograd was not measured at this batch.
    pub speedup_vs_autograd: Option<f64>,
    /// Why the row has no timings, when it was skipped.
    pub note: Option<String>,
}

/// The machine a benchmark ran on.
#[derive(Clone, Debug, Serialize)]
pub struct MachineInfo {
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical cores.
    pub cores: usize,
    /// The wgpu adapter, when wgpu was measured.
    pub adapter: Option<String>,
    /// The version of the fused engine's CPU loop this CPU runs (its instruction set).
    pub fused_cpu_loop: String,
    /// burnfit's version.
    pub burnfit_version: String,
    /// burn's version.
    pub burn_version: String,
}

/// The whole benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Where it ran.
    pub machine: MachineInfo,
    /// What was trained: `line task, linear, 1 input`, `sine task, mlp 1-64-64-1, tanh`, or a
    /// table's file, target and rows with the model.
    pub workload: String,
    /// One row per (system, batch), in the order measured.
    pub rows: Vec<BenchRow>,
}

/// What [`run`] reports as it goes.
#[derive(Debug)]
pub enum BenchEvent<'a> {
    /// A row's measurement begins: its system (`burnfit/<backend>/<engine>` or `autograd`) and
    /// batch.
    Starting {
        /// The system measured.
        system: String,
        /// The batch size.
        batch: usize,
    },
    /// A row was measured (or skipped, with a note).
    Measured(&'a BenchRow),
    /// Something about the rows to come that is not a row: a batch that runs as another.
    Note(String),
}

/// Runs the benchmark; `on_event` hears of each row as it starts and as soon as it is measured.
pub fn run(options: &BenchOptions, on_event: &mut dyn FnMut(BenchEvent)) -> Result<BenchReport> {
    let mut rows = Vec::new();
    let mut adapter = None;
    let mut autograd_ms: Vec<(usize, f64)> = Vec::new();
    let table = match &options.workload.data {
        Some(data) => Some(Arc::new(PreparedTable::load(data, options.workload.seed)?)),
        None => None,
    };
    // A table's batch is at most its training rows (as in `train`): a larger one runs as that.
    // (effective batch, the batch asked for when it was measured)
    let mut effective_batches: Vec<(usize, usize)> = Vec::new();
    for &asked in &options.batches {
        let batch = table.as_ref().map_or(asked, |t| asked.min(t.train_rows()));
        let config = workload(options, batch);
        config.validate()?;
        if let Some(&(_, first)) = effective_batches.iter().find(|(b, _)| *b == batch) {
            let note = if asked != batch {
                format!(
                    "skipped: the table has {batch} training rows, so --batches {asked} runs as batch {batch} (measured above)"
                )
            } else if first == batch {
                format!("skipped: batch {batch} is listed twice in --batches (measured above)")
            } else {
                format!(
                    "skipped: batch {batch} was measured above, as --batches {first} (the table has {batch} training rows)"
                )
            };
            if options.autograd && options.is_seed_workload() {
                let mut row = empty_row("autograd".into(), "cpu".into(), &config, Duration::ZERO);
                row.note = Some(note.clone());
                on_event(BenchEvent::Measured(&row));
                rows.push(row);
            }
            for &kind in &options.backends {
                for &engine in &options.engines {
                    let system = format!("burnfit/{}/{}", kind.name(), engine.name());
                    let mut row = empty_row(system, String::new(), &config, Duration::ZERO);
                    row.engine = Some(engine);
                    row.note = Some(note.clone());
                    on_event(BenchEvent::Measured(&row));
                    rows.push(row);
                }
            }
            continue;
        }
        effective_batches.push((batch, asked));
        if asked != batch {
            on_event(BenchEvent::Note(format!(
                "the table has {batch} training rows: --batches {asked} runs as batch {batch}"
            )));
        }
        if options.autograd && options.is_seed_workload() {
            on_event(BenchEvent::Starting {
                system: "autograd".into(),
                batch,
            });
            let row =
                match crate::backend::check_host_memory(batch as u64, AUTOGRAD_BYTES_PER_SAMPLE) {
                    Err(too_large) => {
                        let mut row =
                            empty_row("autograd".into(), "cpu".into(), &config, Duration::ZERO);
                        row.note = Some(format!("skipped: {too_large}"));
                        row
                    }
                    Ok(()) => measure_autograd(&config, options)?,
                };
            if row.note.is_none() {
                autograd_ms.push((batch, row.median_ms));
            }
            on_event(BenchEvent::Measured(&row));
            rows.push(row);
        }
        for &kind in &options.backends {
            let backend = Backend::open(kind)?;
            if let Some(a) = &backend.adapter {
                adapter = Some(format!("{} ({}, {})", a.name, a.device_type, a.api));
            }
            for &engine in &options.engines {
                on_event(BenchEvent::Starting {
                    system: format!("burnfit/{}/{}", kind.name(), engine.name()),
                    batch,
                });
                let mut row = measure_burn(&backend, engine, &config, table.clone(), options)?;
                row.speedup_vs_autograd = autograd_ms
                    .iter()
                    .find(|(b, _)| *b == batch)
                    .filter(|_| row.note.is_none())
                    .map(|(_, ms)| ms / row.median_ms);
                on_event(BenchEvent::Measured(&row));
                rows.push(row);
            }
        }
    }
    Ok(BenchReport {
        machine: MachineInfo {
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            adapter,
            fused_cpu_loop: crate::fused_step::host::InstructionSet::best().to_string(),
            burnfit_version: env!("CARGO_PKG_VERSION").to_string(),
            burn_version: BURN_VERSION.to_string(),
        },
        workload: describe_workload(&options.workload, table.as_deref()),
        rows,
    })
}

fn workload(options: &BenchOptions, batch: usize) -> TrainingConfig {
    TrainingConfig {
        batch,
        steps: options.steps,
        log_every: options.steps,
        ..options.workload.clone()
    }
}

/// One line saying what a benchmark trains.
pub fn describe_workload(config: &TrainingConfig, table: Option<&PreparedTable>) -> String {
    match (&config.data, table) {
        (Some(data), Some(table)) => format!(
            "{} → `{}` ({} training rows{}), {}",
            data.path,
            data.target,
            table.train_rows(),
            if table.is_out_of_core() {
                ", out of core"
            } else {
                ""
            },
            config.model_spec(table.d()).describe()
        ),
        _ => {
            let task = match config.task {
                Task::Line => "line",
                Task::Sine => "sine",
            };
            format!("{task} task, {}", config.model_spec(1).describe())
        }
    }
}

/// Host memory the autograd crate's step takes per sample: the batch drawn on the host, fed to
/// its graph, and the graph's batch-sized tensors.
const AUTOGRAD_BYTES_PER_SAMPLE: u64 = 64;

/// Steps of the warm-up run; its per-step time also estimates whether the row fits the budget.
const WARMUP_STEPS: u64 = 5;

fn measure_burn(
    backend: &Backend,
    engine: EngineKind,
    config: &TrainingConfig,
    table: Option<Arc<PreparedTable>>,
    options: &BenchOptions,
) -> Result<BenchRow> {
    let opened =
        crate::session::open_engine_with(engine, config.clone(), backend.clone(), table, None);
    let mut trainer = match opened {
        // A row this engine or backend cannot run is skipped, saying why.
        Err(e @ (Error::BatchTooLarge { .. } | Error::EngineUnsupported { .. })) => {
            let mut row = empty_row(
                format!("burnfit/{}/{engine}", backend.kind),
                device_name(backend),
                config,
                Duration::ZERO,
            );
            row.engine = Some(engine);
            row.note = Some(format!("skipped: {e}"));
            return Ok(row);
        }
        other => other?,
    };
    let warm = trainer.run(WARMUP_STEPS, &mut ())?;
    let mut row = empty_row(
        format!("burnfit/{}/{engine}", backend.kind),
        device_name(backend),
        config,
        warm.first_step,
    );
    // The estimate comes from a second short run: on wgpu the warm-up's later steps still
    // autotune kernels and are ten times slower than the steady state.
    let probe = trainer.run(WARMUP_STEPS, &mut ())?;
    let per_step = probe.total / WARMUP_STEPS as u32;
    row.engine = Some(engine);
    if let Some(note) = over_budget(per_step, options) {
        row.note = Some(note);
        return Ok(row);
    }
    let mut times = Vec::with_capacity(options.repeat);
    for _ in 0..options.repeat {
        times.push(trainer.run(options.steps, &mut ())?.total);
    }
    fill_timings(&mut row, &mut times);
    Ok(row)
}

#[cfg(feature = "autograd-ref")]
fn measure_autograd(config: &TrainingConfig, options: &BenchOptions) -> Result<BenchRow> {
    use crate::autograd_reference::train_autograd;
    let warm = train_autograd(
        &TrainingConfig {
            steps: WARMUP_STEPS,
            ..config.clone()
        },
        0.0,
    );
    let mut row = empty_row("autograd".into(), "cpu".into(), config, warm.first_step);
    let per_step = (warm.total - warm.first_step) / (WARMUP_STEPS - 1) as u32;
    if let Some(note) = over_budget(per_step, options) {
        row.note = Some(note);
        return Ok(row);
    }
    let mut times: Vec<Duration> = (0..options.repeat)
        .map(|_| train_autograd(config, 0.0).total)
        .collect();
    fill_timings(&mut row, &mut times);
    Ok(row)
}

#[cfg(not(feature = "autograd-ref"))]
fn measure_autograd(_: &TrainingConfig, _: &BenchOptions) -> Result<BenchRow> {
    Err(crate::error::Error::BackendNotCompiled {
        backend: "autograd",
        feature: "autograd-ref",
    })
}

fn over_budget(per_step: Duration, options: &BenchOptions) -> Option<String> {
    // In f64: steps × repeat can exceed u32 (and Duration's range).
    let estimate = per_step.as_secs_f64() * options.steps as f64 * options.repeat as f64;
    (estimate > options.budget.as_secs_f64()).then(|| {
        format!(
            "skipped: estimated {:.0} s ({:.1} ms/step) exceeds the {} s budget",
            estimate,
            per_step.as_secs_f64() * 1e3,
            options.budget.as_secs()
        )
    })
}

fn empty_row(
    system: String,
    device: String,
    config: &TrainingConfig,
    warmup: Duration,
) -> BenchRow {
    BenchRow {
        system,
        engine: None,
        device,
        batch: config.batch,
        steps: config.steps,
        warmup_ms: warmup.as_secs_f64() * 1e3,
        median_ms: f64::NAN,
        min_ms: f64::NAN,
        max_ms: f64::NAN,
        us_per_step: f64::NAN,
        samples_per_s: f64::NAN,
        speedup_vs_autograd: None,
        note: None,
    }
}

fn fill_timings(row: &mut BenchRow, times: &mut [Duration]) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    row.median_ms = ms(times[times.len() / 2]);
    row.min_ms = ms(times[0]);
    row.max_ms = ms(times[times.len() - 1]);
    row.us_per_step = row.median_ms * 1e3 / row.steps as f64;
    row.samples_per_s = (row.batch as f64 * row.steps as f64) / (row.median_ms / 1e3);
}

fn device_name(backend: &Backend) -> String {
    match &backend.adapter {
        Some(a) => format!("{} ({})", a.name, a.device_type),
        None => "cpu".into(),
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The table `burnfit bench` prints: a header and one line per row.
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut out = format!(
        "{:<25} {:<28} {:>9} {:>6} {:>10} {:>24} {:>10} {:>13} {:>10}\n",
        "system",
        "device",
        "batch",
        "steps",
        "warmup ms",
        "median ms (min-max)",
        "us/step",
        "samples/s",
        "vs autograd"
    );
    for r in rows {
        let device: String = r.device.chars().take(28).collect();
        if let Some(note) = &r.note {
            out += &format!(
                "{:<25} {:<28} {:>9} {:>6} {:>10.1} {}\n",
                r.system, device, r.batch, r.steps, r.warmup_ms, note
            );
            continue;
        }
        let speedup = r
            .speedup_vs_autograd
            .map_or("-".to_string(), |s| format!("{s:.2}x"));
        out += &format!(
            "{:<25} {:<28} {:>9} {:>6} {:>10.1} {:>24} {:>10.1} {:>13.3e} {:>10}\n",
            r.system,
            device,
            r.batch,
            r.steps,
            r.warmup_ms,
            format!("{:.1} ({:.1}-{:.1})", r.median_ms, r.min_ms, r.max_ms),
            r.us_per_step,
            r.samples_per_s,
            speedup
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_version_matches_the_cargo_pin() {
        let manifest = include_str!("../Cargo.toml");
        assert!(manifest.contains(&format!("burn = {{ version = \"={BURN_VERSION}\"")));
    }

    #[test]
    fn timings_are_summarised_from_the_measured_runs() {
        let config = TrainingConfig {
            batch: 100,
            steps: 10,
            ..Default::default()
        };
        let mut row = empty_row("x".into(), "cpu".into(), &config, Duration::from_millis(5));
        let mut times = [30, 10, 20].map(Duration::from_millis);
        fill_timings(&mut row, &mut times);
        assert_eq!((row.min_ms, row.median_ms, row.max_ms), (10.0, 20.0, 30.0));
        assert_eq!(row.us_per_step, 2000.0);
        assert_eq!(row.samples_per_s, 100.0 * 10.0 / 0.02);
        assert_eq!(row.warmup_ms, 5.0);
    }

    #[test]
    fn rows_over_budget_are_skipped_with_a_note() {
        let options = BenchOptions {
            steps: 1000,
            repeat: 3,
            budget: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(over_budget(Duration::from_micros(100), &options).is_none());
        let note = over_budget(Duration::from_millis(1), &options).unwrap();
        assert!(note.contains("estimated 3 s"), "{note}");
    }
}
