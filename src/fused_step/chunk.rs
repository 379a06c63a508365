//! What one chunk of fused steps computes and returns: the values the CPU loop and the GPU
//! kernels share.

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
