//! The fused training step of the one-input linear model, below any engine: what one chunk of
//! steps computes ([`ChunkSpec`] → [`ChunkResult`]), and where it runs — [`host`], one
//! vectorisable pass per step on the CPU backends (threads from [`helpers`] for large batches),
//! the reference the GPU is held to; and on wgpu [`kernel`], CubeCL kernels added to burn
//! through its backend-extension mechanism (many steps per dispatch when one workgroup can take
//! the batch, two dispatches per step above that), which also draws the autodiff engine's
//! batches on the GPU ([`line_batch_on_gpu`]).

pub mod helpers;
pub mod host;
#[cfg(feature = "wgpu-backend")]
pub mod kernel;

use burn::tensor::{Device, Tensor};

use crate::backend::Backend;
use crate::optim::Adam;
use crate::rng::philox::LineStream;

/// The model and Adam's moments: all the state of a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedState {
    /// The weight.
    pub w: f32,
    /// The bias.
    pub b: f32,
    /// Adam's first moments of `[w, b]`.
    pub m: [f32; 2],
    /// Adam's second moments of `[w, b]`.
    pub v: [f32; 2],
}

impl FusedState {
    /// A model with fresh (zero) Adam moments.
    pub fn new(w: f32, b: f32) -> Self {
        Self {
            w,
            b,
            m: [0.0; 2],
            v: [0.0; 2],
        }
    }

    /// The state after Adam's update number `t` with gradients `[dL/dw, dL/db]`.
    #[inline]
    pub fn adam_step(self, adam: &Adam, grads: [f32; 2], t: u64) -> Self {
        let (w, mw, vw) = adam.update_scalar(self.w, grads[0], self.m[0], self.v[0], t);
        let (b, mb, vb) = adam.update_scalar(self.b, grads[1], self.m[1], self.v[1], t);
        Self {
            w,
            b,
            m: [mw, mb],
            v: [vw, vb],
        }
    }
}

/// What one chunk of steps computes.
#[derive(Clone, Copy, Debug)]
pub struct ChunkSpec {
    /// The data stream.
    pub stream: LineStream,
    /// Adam's hyper-parameters.
    pub adam: Adam,
    /// Samples per step.
    pub batch: usize,
    /// The 1-based step number of the chunk's first step (it picks the batch).
    pub first_step: u64,
    /// Adam updates applied before the chunk (the first step is update `updates_before + 1`).
    pub updates_before: u64,
    /// Steps in the chunk.
    pub steps: u64,
}

/// What a chunk did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkResult {
    /// The state after the last step run.
    pub state: FusedState,
    /// Steps run: `spec.steps`, or fewer when one diverged.
    pub steps_run: u64,
    /// The loss of the last step run (before its update); NaN when none ran.
    pub last_loss: f32,
    /// The first step whose loss was not finite, and that loss.
    pub diverged: Option<(u64, f32)>,
}

/// Where the chunks run.
pub enum Executor {
    /// The CPU loop.
    Host,
    /// The GPU kernels.
    #[cfg(feature = "wgpu-backend")]
    Gpu(kernel::GpuExecutor),
}

impl Executor {
    /// Where `backend` runs chunks.
    pub fn for_backend(backend: &Backend) -> crate::error::Result<Self> {
        match backend.kind {
            #[cfg(feature = "wgpu-backend")]
            crate::backend::BackendKind::Wgpu => {
                let cpu_adapter = backend.adapter.as_ref().is_some_and(|a| !a.is_real_gpu());
                Ok(Executor::Gpu(kernel::GpuExecutor::new(
                    &backend.device,
                    cpu_adapter,
                )))
            }
            _ => Ok(Executor::Host),
        }
    }

    /// Runs one chunk from `state`.
    pub fn run_chunk(
        &mut self,
        state: FusedState,
        spec: &ChunkSpec,
    ) -> Result<ChunkResult, String> {
        match self {
            Executor::Host => Ok(host::run_chunk(state, spec)),
            #[cfg(feature = "wgpu-backend")]
            Executor::Gpu(gpu) => gpu.run_chunk(state, spec),
        }
    }

    /// The most steps one chunk should take for `batch` samples per step.
    pub fn max_chunk_steps(&self, batch: usize) -> u64 {
        // The host loop draws and fits about 200 million samples a second on one core.
        let samples = 20_000_000u64;
        let by_time = (samples / batch.max(1) as u64).max(1);
        match self {
            Executor::Host => by_time,
            #[cfg(feature = "wgpu-backend")]
            Executor::Gpu(gpu) => by_time.min(gpu.max_chunk_steps(batch)),
        }
    }
}

/// The batch of `step` drawn on the GPU by [`kernel`], as `[batch, 1]` tensors on `device`
/// (an autodiff device of the wgpu backend, or the plain one).
pub fn line_batch_on_gpu(
    stream: &LineStream,
    step: u64,
    batch: usize,
    backend: &Backend,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    #[cfg(feature = "wgpu-backend")]
    {
        // The kernel runs on the plain device; the batch joins the autodiff graph as a constant.
        let (x, y) = kernel::line_batch(stream, step, batch, &backend.device);
        if device.is_autodiff() {
            (x.autodiff(), y.autodiff())
        } else {
            (x, y)
        }
    }
    #[cfg(not(feature = "wgpu-backend"))]
    {
        let _ = (stream, step, batch, device);
        unreachable!("backend {} is not wgpu", backend.kind)
    }
}
