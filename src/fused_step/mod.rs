//! The fused training step of the one-input linear model, below any engine: what one chunk of
//! steps computes ([`ChunkSpec`] → [`ChunkResult`]), and where it runs — [`host`], one
//! vectorisable pass per step on the CPU backends (threads from [`helpers`] for large batches),
//! the reference the GPU is held to; and on wgpu [`kernel`], CubeCL kernels added to burn
//! through its backend-extension mechanism (many steps per dispatch when one workgroup can take
//! the batch, one dispatch per step over many workgroups above that), which also draws the autodiff engine's
//! batches on the GPU ([`line_batch_on_gpu`]).

pub mod chunk;
pub mod dense;
pub mod executor;
pub mod helpers;
pub mod host;
#[cfg(feature = "wgpu-backend")]
pub mod kernel;
pub mod sampler;

pub use chunk::{ChunkResult, ChunkSpec, FusedState};
pub use executor::Executor;
pub use sampler::line_batch_on_gpu;
