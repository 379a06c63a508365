//! The autodiff engine's line batches drawn on the GPU by the fused step's sampler kernel.

use burn::tensor::{Device, Tensor};

#[cfg(feature = "wgpu-backend")]
use super::kernel;
use crate::backend::Backend;
use crate::rng::philox::LineStream;

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
