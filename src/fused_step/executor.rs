//! Where a backend runs chunks: the CPU loop, or the GPU kernels on wgpu.

use super::chunk::{ChunkResult, ChunkSpec, FusedState};
use super::host;
#[cfg(feature = "wgpu-backend")]
use super::kernel;
use crate::backend::Backend;

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
