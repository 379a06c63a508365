//! The fused engine on wgpu: CubeCL kernels added to burn through its backend-extension
//! mechanism (`#[backend_extension]`, one [`FusedOps`] trait for burn's Cube backend, wrapped
//! by Fusion when burn's `fusion` feature is on).
//!
//! - [`line_batch`]: one dispatch draws a whole batch (one unit per Philox pair).
//! - [`GpuExecutor::run_chunk`], small batches (at most [`SMALL_MAX_PAIRS`] pairs; on a CPU
//!   adapter such as lavapipe up to [`CPU_ADAPTER_MAX_PAIRS`]): ONE dispatch of ONE workgroup
//!   runs every step of the chunk — draw, forward, the three sums, a shared-memory tree
//!   reduction, Adam in unit 0, a barrier, the next step.
//! - larger batches: ONE dispatch per step over many workgroups ([`step_kernel`]): each
//!   workgroup first sums the previous step's partials in a fixed order and applies Adam (all
//!   reach the same state), then writes its partial sums of this step; states and partials
//!   alternate between two buffers, so no workgroup waits for another. A chunk of n steps is
//!   n + 1 dispatches recorded by one extension-op call, and one read-back of the state.
//!
//! Every `#[cube]` function here is the twin of a host function (`rng/philox.rs`,
//! `optim.rs`) with the same operation order, so the integer part (Philox, the 24-bit
//! uniforms) is bit-identical and the float part agrees to the last bit wherever the GPU's
//! `+`/`*` are IEEE (cubecl emits `fma` for `a*b + c`, and division and `sqrt` may differ by an
//! ulp on Vulkan: bit-identical on lavapipe, within ~1e-6 elsewhere).
//!
//! Pitfall designed around: lavapipe (Mesa's software Vulkan) silently ends every loop of an
//! invocation once the loops of that invocation have run 65,535 iterations in total. The
//! one-workgroup kernel reports how many steps it ran and [`GpuExecutor::max_chunk_steps`]
//! keeps a dispatch well below the limit; a short run is an error, never silently accepted.
//! Plane (subgroup) operations are not used: lavapipe has none.

#[cfg(feature = "wgpu")]
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor};
use burn::tensor::{Device, Shape, Tensor, TensorData};

use super::chunk::{ChunkResult, ChunkSpec, FusedState};
use crate::rng::philox::LineStream;

/// Units of the one-workgroup kernel (at most) and of every workgroup of the one-dispatch-per-step path:
/// a power of two (tree reduction), and within WebGPU's default limit of 256.
pub const UNITS: u32 = 256;

/// Batches of at most this many Philox pairs (two samples each) run the one-workgroup kernel.
pub const SMALL_MAX_PAIRS: u64 = 16 * UNITS as u64;

/// On a CPU adapter with several cores, batches of at most this many pairs (65,536 samples)
/// run the one-workgroup kernel (see [`GpuExecutor::new`]).
pub const CPU_ADAPTER_MAX_PAIRS: u64 = 1 << 15;

/// Loop iterations one invocation may spend per dispatch: well below lavapipe's 65,535.
const LOOP_BUDGET: u64 = 40_000;

/// Steps one extension-op call of the one-dispatch-per-step path records.
const LARGE_MAX_CHUNK_STEPS: u64 = 4_096;

/// Pairs each unit takes at least in the one-dispatch-per-step kernel before another
/// workgroup is added.
const LARGE_PAIRS_PER_UNIT: u64 = 4;

/// Most workgroups of the one-dispatch-per-step kernel (each reduces all their partials).
const LARGE_MAX_GROUPS: u64 = 1_024;

/// Length of the state buffer a chunk returns:
/// `[w, b, m_w, m_b, v_w, v_b, last_loss, steps_run, bad_loss, stopped]`.
pub const STATE_OUT_LEN: usize = 10;

// ------------------------------------------------------------------------------------------
// #[cube] twins of rng/philox.rs and optim.rs
// ------------------------------------------------------------------------------------------

/// The `#[cube]` functions and kernels (a module of their own: cubecl's `Tensor` is not burn's).
#[allow(missing_docs)] // the items `#[cube]` and `CubeType` generate
pub mod kernels;

pub use kernels::*;

/// The dense network's one-workgroup kernel.
#[allow(missing_docs)] // the items `#[cube]` generates
pub mod dense_kernel;

/// The dense network's chunks on the GPU, host side.
pub mod dense;

// ------------------------------------------------------------------------------------------
// The burn extension
// ------------------------------------------------------------------------------------------

/// Output metadata of [`FusedOps::line_batch`] for Fusion: two `[batch, 1]` tensors.
#[cfg(feature = "wgpu")]
#[allow(clippy::too_many_arguments)]
fn line_batch_meta(
    anchor: &TensorSpec,
    _k0: &u32,
    _k1: &u32,
    _step: &u64,
    batch: &u32,
    _x_low: &f32,
    _x_span: &f32,
    _true_w: &f32,
    _true_b: &f32,
    _noise: &f32,
) -> (TensorSpec, TensorSpec) {
    let shape = Shape::from([*batch as usize, 1]);
    (
        TensorSpec::new(shape.clone(), anchor.dtype),
        TensorSpec::new(shape, anchor.dtype),
    )
}

/// The shape of a chunk's output state.
pub fn state_out_shape(_state: &Shape) -> Shape {
    Shape::from([STATE_OUT_LEN])
}

/// The shape of a dense chunk's output: the state (params, m, v) and 4 values.
pub fn dense_out_shape(state: &Shape) -> Shape {
    Shape::from([state.num_elements() + dense_kernel::TAIL])
}

/// The shape of the Philox test words.
pub fn words_shape(_anchor: &Shape) -> Shape {
    Shape::from([32usize])
}

/// The fused engine's operations, added to burn's Cube backend (and its Fusion wrapper).
/// Call them with tensors of a plain (not autodiff) wgpu device.
#[backend_extension(Cube: cfg(feature = "wgpu-backend"), Fusion: cfg(feature = "wgpu"))]
pub trait FusedOps: Backend {
    /// The batch of global step `step`: `(x, y)`, `[batch, 1]` each; `anchor` only routes.
    #[fusion(meta = line_batch_meta)]
    #[allow(clippy::too_many_arguments)]
    fn line_batch(
        anchor: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        step: u64,
        batch: u32,
        x_low: f32,
        x_span: f32,
        true_w: f32,
        true_b: f32,
        noise: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `steps` training steps from `state` = [w, b, m_w, m_b, v_w, v_b]; returns
    /// `[w, b, m_w, m_b, v_w, v_b, last_loss, steps_run, bad_loss, stopped]`.
    /// `units` > 0 picks the one-workgroup kernel with that many units; 0 the one-dispatch-per-
    /// step path over `groups` workgroups.
    #[fusion(dtype = state, shape = state_out_shape(state))]
    #[allow(clippy::too_many_arguments)]
    fn fused_chunk(
        state: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        first_step: u64,
        updates_before: u64,
        steps: u32,
        batch: u32,
        units: u32,
        groups: u32,
        x_low: f32,
        x_span: f32,
        true_w: f32,
        true_b: f32,
        noise: f32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        epsilon: f32,
    ) -> FloatTensor<Self>;

    /// `steps` training steps of a dense network: with `groups` = 0 in one dispatch of one
    /// workgroup of `units` units ([`dense_kernel::dense_chunk_kernel`]), else two dispatches
    /// per step over `groups` workgroups ([`dense_kernel::dense_grad_kernel`], then
    /// [`dense_kernel::dense_adam_kernel`]); returns the state then
    /// `[last_loss, steps_run, bad_loss, stopped, loops_complete]`. `scratch_len` floats of scratch are
    /// allocated for it.
    #[fusion(dtype = state, shape = dense_out_shape(state))]
    #[allow(clippy::too_many_arguments)]
    fn dense_chunk(
        state: FloatTensor<Self>,
        layout: FloatTensor<Self>,
        data: FloatTensor<Self>,
        order: FloatTensor<Self>,
        scratch_len: u32,
        source: u32,
        layers: u32,
        d_in: u32,
        width_sum: u32,
        relu: u32,
        loss_kind: u32,
        huber: f32,
        l2: f32,
        k0: u32,
        k1: u32,
        first_step: u64,
        updates_before: u64,
        steps: u32,
        batch: u32,
        table_rows: u32,
        epoch_index: u32,
        x_low: f32,
        x_span: f32,
        true_w: f32,
        true_b: f32,
        noise: f32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        epsilon: f32,
        units: u32,
        groups: u32,
    ) -> FloatTensor<Self>;

    /// Philox words of 4 blocks with counters (c0 + u, c1, c2, c3) as 32 f32 16-bit halves
    /// (for tests); `anchor` only routes.
    #[fusion(dtype = anchor, shape = words_shape(anchor))]
    #[allow(clippy::too_many_arguments)]
    fn philox_words(
        anchor: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        c0: u32,
        c1: u32,
        c2: u32,
        c3: u32,
    ) -> FloatTensor<Self>;
}

#[cfg(feature = "wgpu-backend")]
mod cube_impl;

// ------------------------------------------------------------------------------------------
// Host side
// ------------------------------------------------------------------------------------------

/// Units of the one-workgroup kernel for `pairs` pairs: the next power of two, at most
/// [`UNITS`].
fn small_units(pairs: u64) -> u32 {
    pairs.clamp(1, u64::from(UNITS)).next_power_of_two() as u32
}

/// Workgroups of the one-dispatch-per-step kernel for a batch: enough that each unit takes
/// [`LARGE_PAIRS_PER_UNIT`] pairs, at most `max_groups`.
fn large_groups(batch: u64, max_groups: u64) -> u32 {
    let pairs = batch.div_ceil(2);
    pairs
        .div_ceil(u64::from(UNITS) * LARGE_PAIRS_PER_UNIT)
        .clamp(1, max_groups) as u32
}

/// Runs fused chunks on a wgpu device.
pub struct GpuExecutor {
    device: Device,
    /// Batches of at most this many pairs run the one-workgroup kernel.
    one_workgroup_max_pairs: u64,
    /// Most workgroups of the one-dispatch-per-step kernel.
    max_groups: u64,
}

impl GpuExecutor {
    /// An executor on `device` (the plain wgpu device; an autodiff one is stripped).
    /// `cpu_adapter`: the device is a software rasterizer (lavapipe), which runs each workgroup
    /// on one of this machine's cores, pays for every barrier of every workgroup and ~0.1 ms
    /// per dispatch: there one workgroup running many steps per dispatch is the fastest up to
    /// [`CPU_ADAPTER_MAX_PAIRS`], and above it one workgroup per core (measured on lavapipe,
    /// 2 cores, ms per step: batch 65,536: one workgroup 0.166, 2 workgroups 0.175, 1,024
    /// workgroups 0.83; batch 2^20: 2.36, 1.42 and 13.1).
    pub fn new(device: &Device, cpu_adapter: bool) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let (one_workgroup_max_pairs, max_groups) = match (cpu_adapter, cores) {
            (false, _) => (SMALL_MAX_PAIRS, LARGE_MAX_GROUPS),
            (true, 1) => (u64::MAX, 1),
            (true, cores) => (CPU_ADAPTER_MAX_PAIRS, cores),
        };
        Self {
            device: device.clone().without_autodiff(),
            one_workgroup_max_pairs,
            max_groups,
        }
    }

    /// An executor with explicit limits (tests and timings of each path).
    #[cfg(test)]
    pub(crate) fn with_limits(
        device: &Device,
        one_workgroup_max_pairs: u64,
        max_groups: u64,
    ) -> Self {
        Self {
            device: device.clone().without_autodiff(),
            one_workgroup_max_pairs,
            max_groups,
        }
    }

    /// Same contract as `host::run_chunk`: runs `spec.steps` steps from `state`, stops before
    /// the first step whose loss is not finite (its update not applied), and reports it.
    /// Long chunks are cut into dispatches of at most [`Self::max_chunk_steps`] steps.
    pub fn run_chunk(
        &mut self,
        state: FusedState,
        spec: &ChunkSpec,
    ) -> Result<ChunkResult, String> {
        let batch = u32::try_from(spec.batch)
            .ok()
            .filter(|b| *b > 0 && *b < u32::MAX)
            .ok_or_else(|| {
                format!(
                    "batch {} is outside 1..2^32-1 for the wgpu kernels",
                    spec.batch
                )
            })?;
        let max = self.max_chunk_steps(spec.batch);
        let mut result = ChunkResult {
            state,
            steps_run: 0,
            last_loss: f32::NAN,
            diverged: None,
        };
        while result.steps_run < spec.steps {
            let done = result.steps_run;
            let n = (spec.steps - done).min(max);
            let sub = ChunkSpec {
                first_step: spec.first_step.wrapping_add(done),
                updates_before: spec.updates_before.wrapping_add(done),
                steps: n,
                ..*spec
            };
            let part = self.dispatch(result.state, &sub, batch)?;
            result.state = part.state;
            result.steps_run += part.steps_run;
            if part.steps_run > 0 {
                result.last_loss = part.last_loss;
            }
            if part.diverged.is_some() {
                result.diverged = part.diverged;
                break;
            }
        }
        Ok(result)
    }

    /// One extension-op call and one read-back.
    fn dispatch(
        &self,
        state: FusedState,
        spec: &ChunkSpec,
        batch: u32,
    ) -> Result<ChunkResult, String> {
        let pairs = u64::from(batch).div_ceil(2);
        let (units, groups) = if pairs <= self.one_workgroup_max_pairs {
            (small_units(pairs), 0)
        } else {
            (0, large_groups(u64::from(batch), self.max_groups))
        };
        let steps =
            u32::try_from(spec.steps).map_err(|_| "too many steps in one dispatch".to_string())?;
        let input = Tensor::<1>::from_data(
            TensorData::new(
                vec![
                    state.w, state.b, state.m[0], state.m[1], state.v[0], state.v[1],
                ],
                [6],
            ),
            &self.device,
        );
        let s = &spec.stream;
        let a = &spec.adam;
        let out = <Dispatch as FusedOps>::fused_chunk(
            input.into_dispatch(),
            s.key[0],
            s.key[1],
            spec.first_step,
            spec.updates_before,
            steps,
            batch,
            units,
            groups,
            s.x_low,
            s.x_span,
            s.true_w,
            s.true_b,
            s.noise,
            a.lr,
            a.beta1,
            a.beta2,
            a.epsilon,
        );
        let v = read(Tensor::<1>::from_dispatch(out))?;
        if v.len() != STATE_OUT_LEN {
            return Err(format!(
                "the fused kernel returned {} values, expected {STATE_OUT_LEN}",
                v.len()
            ));
        }
        let out_state = FusedState {
            w: v[0],
            b: v[1],
            m: [v[2], v[3]],
            v: [v[4], v[5]],
        };
        // The output buffer may be reused memory: accept only what the kernel can have written.
        let plausible = (v[9] == 0.0 || v[9] == 1.0)
            && v[7].fract() == 0.0
            && (0.0..=spec.steps as f32).contains(&v[7])
            && (v[9] == 1.0 || v[..6].iter().all(|x| x.is_finite()));
        if !plausible {
            return Err(format!(
                "the fused kernel returned an impossible state {v:?} (did it run at all?)"
            ));
        }
        let steps_run = v[7] as u64;
        let stopped = v[9] != 0.0;
        let diverged = stopped.then(|| (spec.first_step.wrapping_add(steps_run), v[8]));
        if !stopped && steps_run != spec.steps {
            return Err(format!(
                "the fused kernel ran {steps_run} of {} steps without a reason (a driver loop limit?)",
                spec.steps
            ));
        }
        Ok(ChunkResult {
            state: out_state,
            steps_run,
            last_loss: if steps_run > 0 { v[6] } else { f32::NAN },
            diverged,
        })
    }

    /// The most steps one dispatch of the one-workgroup kernel may run for `batch` without
    /// nearing lavapipe's loop limit; for the one-dispatch-per-step path, a bound on what one op call
    /// records.
    pub fn max_chunk_steps(&self, batch: usize) -> u64 {
        let pairs = (batch as u64).div_ceil(2);
        if pairs > self.one_workgroup_max_pairs {
            return LARGE_MAX_CHUNK_STEPS;
        }
        let units = u64::from(small_units(pairs));
        let per_unit = pairs.div_ceil(units);
        let per_step = per_unit + u64::from(units.trailing_zeros()) + 3;
        (LOOP_BUDGET / per_step).max(1)
    }
}

/// Reads a float tensor back as a vector, errors as text.
fn read(t: Tensor<1>) -> Result<Vec<f32>, String> {
    t.try_into_data()
        .map_err(|e| format!("reading the fused kernel's result: {e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("reading the fused kernel's result: {e:?}"))
}

/// The batch of `step` drawn on the GPU, x and y as `[batch, 1]` tensors on the plain wgpu
/// `device`, equal to [`LineStream::batch`] up to transcendental rounding.
pub fn line_batch(
    stream: &LineStream,
    step: u64,
    batch: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    // The op needs one tensor input to route on; one per thread and device serves every step
    // (a fresh one would cost an allocation and a fill dispatch per step).
    thread_local! {
        static ANCHOR: std::cell::RefCell<Option<Tensor<1>>> = const { std::cell::RefCell::new(None) };
    }
    let device = device.clone().without_autodiff();
    let anchor = ANCHOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        match cell.as_ref() {
            Some(anchor) if anchor.device() == device => anchor.clone(),
            _ => cell.insert(Tensor::<1>::zeros([1], &device)).clone(),
        }
    });
    let (x, y) = <Dispatch as FusedOps>::line_batch(
        anchor.into_dispatch(),
        stream.key[0],
        stream.key[1],
        step,
        batch as u32,
        stream.x_low,
        stream.x_span,
        stream.true_w,
        stream.true_b,
        stream.noise,
    );
    (Tensor::from_dispatch(x), Tensor::from_dispatch(y))
}

/// The Philox words of 4 blocks (counters c0 + u, c1, c2, c3 for u in 0..4) computed on the GPU.
pub fn philox_words_on_gpu(
    device: &Device,
    key: [u32; 2],
    counter: [u32; 4],
) -> Result<Vec<u32>, String> {
    let anchor = Tensor::<1>::zeros([1], &device.clone().without_autodiff());
    let t = <Dispatch as FusedOps>::philox_words(
        anchor.into_dispatch(),
        key[0],
        key[1],
        counter[0],
        counter[1],
        counter[2],
        counter[3],
    );
    let halves = read(Tensor::<1>::from_dispatch(t))?;
    Ok(halves
        .chunks(2)
        .map(|h| (h[0] as u32) | ((h[1] as u32) << 16))
        .collect())
}

#[cfg(test)]
mod tests;
