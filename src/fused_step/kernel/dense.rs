//! The dense network's fused step on wgpu, host side: the model's layout and a table's rows
//! uploaded once, the row orders of the epochs a chunk reaches uploaded together, and chunks of
//! steps run by
//! [`super::dense_kernel::dense_chunk_kernel`] — one dispatch of one workgroup each — or, for
//! large batches, two dispatches per step over many workgroups; the state (parameters and
//! Adam's moments) uploaded and read back once per chunk.

use burn::backend::Dispatch;
use burn::tensor::{Device, Tensor, TensorData};

use super::FusedOps;
use super::dense_kernel::{
    LAYOUT_FIELDS, LOSS_HUBER, LOSS_MAE, SOURCE_LINE, SOURCE_SINE, SOURCE_TABLE, TAIL, TILE,
};
use crate::fused_step::dense::Loss;
use crate::loss::LossKind;
use crate::model::{Activation, ModelSpec};
use crate::optim::Adam;
use crate::rng::philox::LineStream;

/// Units of the workgroup on a GPU (WebGPU's default limit).
const UNITS: u32 = 256;

/// Units of the workgroup on a CPU adapter, which runs a workgroup on one core, a few units
/// per vector instruction: the fewest of these with which a dispatch still runs at least 4
/// steps (fewer units spend less time in barriers: on lavapipe the diabetes table's step takes
/// 88 µs with 16 units, 107 with 64, 138 with 256; the sine MLP's 3.5 ms with 16 or 64).
const CPU_ADAPTER_UNITS: [u32; 3] = [16, 64, 256];

/// Loop iterations one invocation may spend per dispatch on a CPU adapter: below lavapipe's
/// 65,535, which silently ends every loop past it (see the module notes in `kernel`).
const CPU_ADAPTER_LOOP_BUDGET: u64 = 60_000;

/// On a real GPU: about this many loop iterations per dispatch, so a dispatch stays well
/// within a display driver's watchdog.
const GPU_LOOP_BUDGET: u64 = 4_000_000;

/// On a GPU, batches above this run two dispatches per step over many workgroups; at most this,
/// one workgroup runs a whole chunk per dispatch. (An estimate: one workgroup does ~2 M
/// multiply-adds a step for the 1-64-64-1 MLP at 256, and a dispatch costs ~18 µs on the
/// H200; not yet measured on a real GPU.)
const GPU_ONE_WORKGROUP_MAX_BATCH: usize = 256;

/// Samples each workgroup takes at least in the two-dispatch path on a GPU.
const GPU_SLICE: usize = 64;

/// Most workgroups of the two-dispatch path (their partials are summed per parameter).
const MAX_GROUPS: usize = 1_024;

/// On a CPU adapter, a step of more loop iterations than this (in one workgroup) runs on one
/// workgroup per core, two dispatches a step; a smaller one on one workgroup, many steps a
/// dispatch. Measured on lavapipe, 2 cores, µs per step: the sine MLP 1-64-64-1 (thousands of
/// iterations at batch 64 by [`DenseGpu::iterations_per_step`]) one workgroup 3,921, two 2,291;
/// at 1,024: 50,854 and 24,346; the diabetes table's linear model (~230 iterations at batch 64)
/// 88 in one workgroup, where two dispatches alone would cost more. (Measured before the 4 × 4
/// tiles; the tiles cut both kinds of step about 3×.)
const CPU_ADAPTER_GRID_MIN_ITERATIONS: u64 = 2_000;

/// Steps one extension-op call records in the two-dispatch path.
const GRID_MAX_CHUNK_STEPS: u64 = 1_024;

/// The same on a CPU adapter: 15 steps are 31 launches with the state's copy, within the 32
/// tasks cubecl queues for its device thread (`cubecl-common`'s `CHANNEL_MAX_TASK`). A longer
/// chunk fills that queue, and the thread queueing the launches then spins until there is
/// room: on a software adapter that spinning thread takes a core from the workgroups (perf,
/// sine MLP at batch 64, 2 cores: ~30 % of the CPU time in `submit_inner`'s spin loop). Measured
/// on lavapipe, µs per step of the sine MLP 1-64-64-1 at batch 64 / 256: 1,136 / ~2,600 at
/// 1,024 steps a call; 780–975 / 1,930–1,960 at 15, 12 or 8 (the read-back per chunk costs
/// less than the spin did).
const CPU_ADAPTER_GRID_MAX_CHUNK_STEPS: u64 = 15;

/// Training rows a table may have here: row numbers travel as f32, exact to 2^24.
pub const MAX_TABLE_ROWS: usize = 1 << 24;

/// An epoch's row order (the engine's: `epoch_permutation` of the table's rows and the seed).
pub type EpochOrder = Box<dyn Fn(u64) -> Vec<u32> + Send>;

/// Where the batches come from.
pub enum GpuBatches {
    /// The line's stream (its x and y).
    Line(LineStream),
    /// The line's stream's x, y = sin x.
    Sine(LineStream),
    /// A table's training rows, in the order `order(epoch)` gives each epoch.
    Table {
        /// Training rows.
        rows: usize,
        /// The rows of an epoch, in order.
        order: EpochOrder,
    },
}

/// The row orders of consecutive epochs on the device, one after the other: a chunk of steps
/// may cross epochs as far as they reach (a small table's epoch is a few steps; one dispatch and
/// read-back per epoch would cost more than its steps).
struct EpochOrders {
    /// The first epoch.
    first: u64,
    /// Epochs held.
    count: u64,
    /// Their orders (`count × rows` row numbers).
    tensor: Tensor<1>,
}

/// Row numbers the order buffer holds at most (several epochs of a small table, one of a
/// large one).
const MAX_ORDER_ENTRIES: usize = 1 << 20;

/// What a chunk did.
#[derive(Clone, Debug)]
pub struct DenseChunk {
    /// Steps run (updates applied).
    pub steps_run: u64,
    /// The last step's loss (NaN when none ran).
    pub last_loss: f32,
    /// The step whose loss was not finite, and that loss: the chunk stopped before its update.
    pub diverged: Option<(u64, f32)>,
}

/// A dense network's fused steps on one wgpu device.
pub struct DenseGpu {
    device: Device,
    spec: ModelSpec,
    batches: GpuBatches,
    layout: Tensor<1>,
    data: Tensor<1>,
    order: Option<EpochOrders>,
    width_sum: u32,
    budget: u64,
    cpu_adapter: bool,
    loss: Loss,
    /// Set by tests: the workgroups of every chunk.
    forced_groups: Option<u32>,
    /// This machine's cores (a CPU adapter's threads); looked up once, as it reads files.
    cores: usize,
    /// Steps a chunk may run at most, set when a chunk's loops were cut short.
    steps_cap: Option<u64>,
}

impl DenseGpu {
    /// The kernel for `spec` on the plain wgpu `device`; `table`: a table's training rows
    /// (row-major) and targets. `cpu_adapter`: a software adapter (lavapipe), where a
    /// dispatch's loops are capped. `loss`: what the steps minimise.
    pub fn new(
        device: &Device,
        spec: &ModelSpec,
        batches: GpuBatches,
        table: Option<(&[f32], &[f32])>,
        loss: Loss,
        cpu_adapter: bool,
    ) -> Result<Self, String> {
        let device = device.clone().without_autodiff();
        let mut layout = Vec::new();
        let (mut offset, mut rows_before) = (0usize, 0usize);
        for pair in spec.widths().windows(2) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            layout.extend([
                fan_in,
                fan_out,
                offset,
                offset + fan_in * fan_out,
                rows_before,
            ]);
            offset += (fan_in + 1) * fan_out;
            rows_before += fan_in;
        }
        let exact = |v: usize| v < 1 << 24;
        if !layout.iter().all(|v| exact(*v)) {
            return Err("the model is too large for the fused GPU kernel".into());
        }
        debug_assert_eq!(layout.len(), LAYOUT_FIELDS * (spec.widths().len() - 1));
        let layout: Vec<f32> = layout.into_iter().map(|v| v as f32).collect();
        let len = layout.len();
        let data = match table {
            Some((x, y)) => {
                if y.len() > MAX_TABLE_ROWS {
                    return Err(format!(
                        "the fused GPU kernel takes tables of at most {MAX_TABLE_ROWS} training rows"
                    ));
                }
                let values: Vec<f32> = x.iter().chain(y).copied().collect();
                let n = values.len();
                Tensor::from_data(TensorData::new(values, [n]), &device)
            }
            None => Tensor::zeros([1], &device),
        };
        Ok(Self {
            layout: Tensor::from_data(TensorData::new(layout, [len]), &device),
            data,
            order: None,
            width_sum: spec.widths().iter().sum::<usize>() as u32,
            budget: if cpu_adapter {
                CPU_ADAPTER_LOOP_BUDGET
            } else {
                GPU_LOOP_BUDGET
            },
            cpu_adapter,
            loss,
            forced_groups: None,
            steps_cap: None,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            spec: spec.clone(),
            batches,
            device,
        })
    }

    /// Workgroups of the two-dispatch path at `batch`, or 0: one workgroup runs a whole chunk.
    /// At least one per core on a CPU adapter, one per [`GPU_SLICE`] samples on a GPU, and as
    /// many more as a slice needs to fit the loop budget (up to [`MAX_GROUPS`]).
    fn groups(&self, batch: usize) -> u32 {
        if let Some(groups) = self.forced_groups {
            return groups;
        }
        let mut groups = if self.cpu_adapter {
            let cores = self.cores;
            let units = self.one_workgroup_units(batch);
            let small = self.iterations_per_step(batch, units) <= CPU_ADAPTER_GRID_MIN_ITERATIONS;
            if self.one_workgroup_fits(batch) && (small || cores == 1) {
                return 0;
            }
            cores
        } else if batch <= GPU_ONE_WORKGROUP_MAX_BATCH {
            return 0;
        } else {
            batch.div_ceil(GPU_SLICE)
        };
        groups = groups.clamp(1, MAX_GROUPS);
        while groups < MAX_GROUPS
            && self.iterations_per_step(Self::slice_len(batch, groups as u32), UNITS) > self.budget
        {
            groups = (2 * groups).min(MAX_GROUPS);
        }
        groups as u32
    }

    /// Whether one workgroup can run at least one step at `batch` within the loop budget.
    fn one_workgroup_fits(&self, batch: usize) -> bool {
        let units = self.one_workgroup_units(batch);
        let copy = (3 * self.spec.parameter_count()).div_ceil(u64::from(units)) + 1;
        self.iterations_per_step(batch, units) + copy <= self.budget
    }

    /// Runs every batch on `groups` workgroups (0: one workgroup), whatever the batch (tests).
    #[cfg(test)]
    pub(crate) fn force_groups(&mut self, groups: u32) {
        self.forced_groups = Some(groups);
    }

    /// Plans chunks for a loop budget of `budget` iterations (tests: past lavapipe's limit, a
    /// chunk is cut short).
    #[cfg(test)]
    pub(crate) fn force_budget(&mut self, budget: u64) {
        self.budget = budget;
    }

    /// The estimate of a step's loop iterations at `batch` (tests).
    #[cfg(test)]
    pub(crate) fn estimated_iterations(&self, batch: usize) -> u64 {
        self.iterations_per_step(batch, self.units(batch))
    }

    /// Whether a chunk was cut short and later chunks capped (tests).
    #[cfg(test)]
    pub(crate) fn was_cut_short(&self) -> bool {
        self.steps_cap.is_some()
    }

    /// Samples per workgroup in the two-dispatch path (even: samples are drawn in pairs).
    fn slice_len(batch: usize, groups: u32) -> usize {
        batch.div_ceil(groups as usize).next_multiple_of(2)
    }

    /// The workgroup's units at `batch`.
    fn units(&self, batch: usize) -> u32 {
        if self.groups(batch) > 0 {
            return UNITS;
        }
        self.one_workgroup_units(batch)
    }

    /// The one-workgroup kernel's units at `batch`.
    fn one_workgroup_units(&self, batch: usize) -> u32 {
        if !self.cpu_adapter {
            return UNITS;
        }
        let fits = |units: u32| 4 * self.iterations_per_step(batch, units) <= self.budget;
        CPU_ADAPTER_UNITS
            .into_iter()
            .find(|u| fits(*u))
            .unwrap_or(UNITS)
    }

    /// Loop iterations of the busiest unit in one step at `batch` with `units` units: an upper
    /// bound — a dispatch may run fewer steps than it could, never more. Each loop is counted
    /// as lavapipe counts it, its iterations and one more for its exit test, every time it is
    /// entered: a loop of `T` passes around an inner loop of `k` iterations costs `T·(k + 2) + 1`.
    /// Each phase adds its busiest unit's count (a unit may be the busiest in every phase). The
    /// tiles put a narrow layer's work on a few units: the linear model's weight gradients are
    /// one tile per 4 inputs, each a loop over the whole batch.
    fn iterations_per_step(&self, batch: usize, units: u32) -> u64 {
        let units = u64::from(units);
        let b = batch as u64;
        let per = |items: u64| items.div_ceil(units);
        let tiles = |n: u64| n.div_ceil(u64::from(TILE));
        // `passes` passes of a loop around an inner loop of `inner` iterations (one more than
        // the rule above gives: measured, see below).
        let nest = |passes: u64, inner: u64| passes * (inner + 2) + 2;
        let widths: Vec<u64> = self.spec.widths().iter().map(|w| *w as u64).collect();
        let layers = widths.len() as u64 - 1;
        let params = self.spec.parameter_count();
        // The batch's gather (inputs, then targets; a synthetic draw is one shorter loop).
        let mut n = per(b * widths[0]) + 1 + per(b) + 1;
        // The errors, the loss's tree.
        n += per(b) + 1 + u64::from(units.trailing_zeros()) + 1;
        // Adam over the parameters, each finding its layer in a loop over the layers.
        n += nest(per(params), layers.saturating_sub(1));
        // The layer loops of forward, backward and the gradients; the step loop; slack.
        n += (layers + 1) + layers + (layers + 1) + 1 + 8;
        for (l, pair) in widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            // Forward: (sample, output) tiles, each a loop over the inputs.
            n += nest(per(tiles(b) * tiles(fan_out)), fan_in);
            // Backward (below the last layer): (sample, input) tiles over the outputs.
            if l > 0 {
                n += nest(per(tiles(b) * tiles(fan_in)), fan_out);
            }
            // Weight gradients: (input, output) tiles over the samples; the biases' sums.
            n += nest(per(tiles(fan_in) * tiles(fan_out)), b);
            n += nest(per(fan_out), b);
        }
        // 5 % more: measured on lavapipe (`loop_counts_estimated_against_lavapipe`), the counts
        // above fall up to 3 % short for wide layers (1-64-64-1 at batch 2: 1,489 a step against
        // 1,458). A chunk cut short anyway is seen and run again in shorter chunks (`run`).
        n + n / 20
    }

    /// The largest buffer the kernel allocates at `batch`, in bytes: the scratch (activations,
    /// their gradients and the targets), the two-dispatch path's partial sums, or the state.
    pub fn largest_buffer_bytes(&self, batch: usize) -> u64 {
        let params = self.spec.parameter_count();
        let scratch = (2 * u64::from(self.width_sum) + 1) * batch as u64;
        let partials = u64::from(self.groups(batch)) * (params + 1);
        let state = 3 * params + TAIL as u64;
        4 * scratch.max(partials).max(state)
    }

    /// The most steps one chunk runs at `batch`; an error when not even one step fits.
    pub fn max_chunk_steps(&self, batch: usize) -> Result<u64, String> {
        let units = self.units(batch);
        let groups = self.groups(batch);
        if groups > 0 {
            // Each dispatch runs one step of one slice.
            let slice = Self::slice_len(batch, groups);
            if self.iterations_per_step(slice, units) > self.budget {
                let limit = if self.cpu_adapter {
                    "on this software adapter (its loop limit"
                } else {
                    "in one dispatch (a driver's watchdog"
                };
                return Err(format!(
                    "cannot run a step of {} at batch {batch} {limit}, even over {groups} workgroups); use a smaller --batch, --backend flex, or --engine autodiff",
                    self.spec.describe()
                ));
            }
            return Ok(if self.cpu_adapter {
                CPU_ADAPTER_GRID_MAX_CHUNK_STEPS
            } else {
                GRID_MAX_CHUNK_STEPS
            });
        }
        let per_step = self.iterations_per_step(batch, units);
        let copy = (3 * self.spec.parameter_count()).div_ceil(u64::from(units)) + 1;
        if per_step + copy > self.budget {
            let limit = if self.cpu_adapter {
                "on this software adapter (its loop limit)"
            } else {
                "in one dispatch of the fused kernel's single workgroup (a driver's watchdog would kill it)"
            };
            return Err(format!(
                "cannot run a step of {} at batch {batch} {limit}; use a smaller --batch, --backend flex, or --engine autodiff",
                self.spec.describe()
            ));
        }
        Ok(((self.budget - copy) / per_step).max(1))
    }

    /// Runs steps `first_step + 1 ..= first_step + steps` (global, 1-based) from `state`
    /// (params, m, v in the model's parameter order, unpadded), updated in place; Adam's
    /// updates continue from `updates_before`. A chunk may be cut short (by
    /// [`Self::max_chunk_steps`], or for a table where its order buffer ends), and stops before
    /// a step whose loss is not finite. A chunk whose loops lavapipe's loop limit cut short
    /// (the host's estimate of them was too low) is run again with half as many steps, and so
    /// are the chunks after it (one workgroup); an error when even one step is cut short (or in
    /// the two-dispatch path, where each dispatch is one step).
    pub fn run(
        &mut self,
        state: &mut [f32],
        first_step: u64,
        updates_before: u64,
        steps: u64,
        batch: usize,
        adam: &Adam,
    ) -> Result<DenseChunk, String> {
        loop {
            match self.attempt(state, first_step, updates_before, steps, batch, adam)? {
                Attempt::Ran(chunk) => return Ok(chunk),
                Attempt::CutShort { steps } if steps > 1 && self.groups(batch) == 0 => {
                    self.steps_cap = Some(steps / 2);
                }
                Attempt::CutShort { .. } => {
                    return Err(format!(
                        "cannot run a step of {} at batch {batch} within this adapter's loop limit (the fused kernel's loops were cut short); use a smaller --batch, --backend flex, or --engine autodiff",
                        self.spec.describe()
                    ));
                }
            }
        }
    }

    /// [`Self::run`] once.
    fn attempt(
        &mut self,
        state: &mut [f32],
        first_step: u64,
        updates_before: u64,
        steps: u64,
        batch: usize,
        adam: &Adam,
    ) -> Result<Attempt, String> {
        let max = self.max_chunk_steps(batch)?;
        let steps = steps.min(max).min(self.steps_cap.unwrap_or(u64::MAX));
        let (source, stream, table_rows, epoch_index) = match &self.batches {
            GpuBatches::Line(stream) => (SOURCE_LINE, *stream, 0, 0),
            GpuBatches::Sine(stream) => (SOURCE_SINE, *stream, 0, 0),
            GpuBatches::Table { rows, order } => {
                let rows = *rows;
                let per_epoch = rows.div_ceil(batch) as u64;
                let epoch = first_step / per_epoch;
                // The epochs this chunk reaches, as many as the order buffer may hold.
                let last = (first_step + steps.max(1) - 1) / per_epoch;
                let count = (last - epoch + 1).min((MAX_ORDER_ENTRIES / rows).max(1) as u64);
                let covered =
                    |o: &EpochOrders| o.first <= epoch && epoch + count <= o.first + o.count;
                if !self.order.as_ref().is_some_and(covered) {
                    let values: Vec<f32> = (epoch..epoch + count)
                        .flat_map(order)
                        .map(|r| r as f32)
                        .collect();
                    let len = values.len();
                    self.order = Some(EpochOrders {
                        first: epoch,
                        count,
                        tensor: Tensor::from_data(TensorData::new(values, [len]), &self.device),
                    });
                }
                let orders = self.order.as_ref().expect("set above");
                let index = first_step - orders.first * per_epoch;
                let stream = LineStream::new(0, 0.0, 1.0, 0.0, 0.0, 0.0);
                (SOURCE_TABLE, stream, rows as u32, index as u32)
            }
        };
        let steps = match (&self.batches, &self.order) {
            // As far as the order buffer reaches.
            (&GpuBatches::Table { rows, .. }, Some(orders)) => {
                let reach = orders.count * rows.div_ceil(batch) as u64;
                steps.min(reach - u64::from(epoch_index))
            }
            _ => steps,
        };
        let n = state.len();
        let input = Tensor::<1>::from_data(TensorData::new(state.to_vec(), [n]), &self.device);
        let order = match &self.order {
            Some(orders) => orders.tensor.clone(),
            None => self.data.clone(),
        };
        let relu = u32::from(self.spec.activation == Activation::Relu);
        let scratch = (2 * self.width_sum as usize + 1) * batch;
        let out = <Dispatch as FusedOps>::dense_chunk(
            input.into_dispatch(),
            self.layout.clone().into_dispatch(),
            self.data.clone().into_dispatch(),
            order.into_dispatch(),
            u32::try_from(scratch)
                .map_err(|_| "the batch is too large for the fused GPU kernel")?,
            source,
            (self.spec.widths().len() - 1) as u32,
            self.spec.d_in as u32,
            self.width_sum,
            relu,
            match self.loss.kind {
                LossKind::Mse => 0,
                LossKind::Mae => LOSS_MAE,
                LossKind::Huber => LOSS_HUBER,
            },
            self.loss.delta,
            self.loss.l2,
            stream.key[0],
            stream.key[1],
            first_step + 1,
            updates_before,
            steps as u32,
            batch as u32,
            table_rows,
            epoch_index,
            stream.x_low,
            stream.x_span,
            stream.true_w,
            stream.true_b,
            stream.noise,
            adam.lr,
            adam.beta1,
            adam.beta2,
            adam.epsilon,
            self.units(batch),
            self.groups(batch),
        );
        let values = Tensor::<1>::from_dispatch(out)
            .try_into_data()
            .map_err(|e| format!("reading the fused kernel's result: {e:?}"))?
            .try_into_vec::<f32>()
            .map_err(|e| format!("reading the fused kernel's result: {e:?}"))?;
        if values.len() != n + TAIL {
            return Err(format!(
                "the fused kernel returned {} values, expected {}",
                values.len(),
                n + TAIL
            ));
        }
        let (new_state, tail) = values.split_at(n);
        if tail[4] != 1.0 {
            // lavapipe's loop limit cut the chunk short: its state is not a state of the run.
            return Ok(Attempt::CutShort { steps });
        }
        let (last_loss, run, bad_loss, stopped) = (tail[0], tail[1], tail[2], tail[3]);
        let plausible = (stopped == 0.0 || stopped == 1.0)
            && run.fract() == 0.0
            && (0.0..=steps as f32).contains(&run);
        if !plausible {
            return Err(format!(
                "the fused kernel returned an impossible state {tail:?} (did it run at all?)"
            ));
        }
        let steps_run = run as u64;
        if stopped == 0.0 && steps_run != steps {
            return Err(format!(
                "the fused kernel ran {steps_run} of {steps} steps without a reason (a driver loop limit?)"
            ));
        }
        state.copy_from_slice(new_state);
        Ok(Attempt::Ran(DenseChunk {
            steps_run,
            last_loss: if steps_run > 0 { last_loss } else { f32::NAN },
            diverged: (stopped != 0.0).then(|| (first_step + steps_run + 1, bad_loss)),
        }))
    }
}

/// What one try at a chunk gave.
enum Attempt {
    /// It ran (or stopped at a loss that was not finite).
    Ran(DenseChunk),
    /// lavapipe's loop limit cut a loop of this many steps short: nothing was kept.
    CutShort { steps: u64 },
}
