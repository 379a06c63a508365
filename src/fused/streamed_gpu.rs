//! The fused engine's steps on wgpu for an out-of-core table. The GPU kernel
//! ([`DenseGpu`]) trains on a table it holds on the device, in an order it is given; here each
//! chunk of steps gets a table of its own: the chunk's batches, read on the host from the cache
//! ([`StreamedBatches`], in the out-of-core order) one after the other, uploaded at once and
//! visited in that order. So the GPU sees exactly the batches the CPU backends see, and a chunk's
//! upload is at most [`CHUNK_BYTES`] whatever the file's size. The cache is read ahead by the
//! batches' own reader thread; the upload itself waits for the previous chunk to finish.

use burn::tensor::Device;

use crate::backend::Backend;
use crate::data::streamed_batches::StreamedBatches;
use crate::engine::EngineKind;
use crate::error::{Error, Result};
use crate::fused_step::dense::Loss;
use crate::fused_step::kernel::dense::{DenseChunk, DenseGpu, GpuBatches};
use crate::model::ModelSpec;
use crate::optim::Adam;

/// The most rows' values uploaded for one chunk of steps.
pub const CHUNK_BYTES: usize = 64 << 20;

/// An out-of-core table's batches, uploaded to the GPU kernel a chunk of steps at a time.
pub struct StreamedGpu {
    batches: Box<StreamedBatches>,
    device: Device,
    backend: &'static str,
    spec: ModelSpec,
    loss: Loss,
    cpu_adapter: bool,
    x: Vec<f32>,
    y: Vec<f32>,
}

impl StreamedGpu {
    /// The kernel's inputs for `spec` on `backend`; a batch too large for one dispatch on this
    /// adapter is refused now, not mid-run.
    pub fn new(
        backend: &Backend,
        spec: &ModelSpec,
        batches: StreamedBatches,
        loss: Loss,
    ) -> Result<StreamedGpu> {
        let cpu_adapter = backend.adapter.as_ref().is_some_and(|a| !a.is_real_gpu());
        let streamed = StreamedGpu {
            device: backend.device.clone(),
            backend: backend.kind.name(),
            spec: spec.clone(),
            loss,
            cpu_adapter,
            x: Vec::new(),
            y: Vec::new(),
            batches: Box::new(batches),
        };
        let batch = streamed.batches.batch();
        // One batch's rows are the probe's table: refused first if even that cannot be uploaded.
        super::gpu_limits::check_table_fits(backend, 4 * (batch * (spec.d_in + 1)) as u64)?;
        let probe = streamed.kernel(&vec![0.0; batch * spec.d_in], &vec![0.0; batch])?;
        probe
            .max_chunk_steps(batch)
            .map_err(|message| Error::EngineUnsupported {
                engine: EngineKind::Fused.name(),
                message,
            })?;
        let room = backend
            .adapter
            .as_ref()
            .map_or(u64::MAX, |a| a.max_buffer_bytes);
        super::gpu_limits::check_batch_fits(backend, &probe, batch, room)?;
        Ok(streamed)
    }

    /// A kernel whose table is `x`, `y`, visited in order.
    fn kernel(&self, x: &[f32], y: &[f32]) -> Result<DenseGpu> {
        let rows = y.len();
        let order = Box::new(move |_| (0..rows as u32).collect());
        DenseGpu::new(
            &self.device,
            &self.spec,
            GpuBatches::Table { rows, order },
            Some((x, y)),
            self.loss,
            self.cpu_adapter,
        )
        .map_err(|message| Error::Device {
            backend: self.backend,
            message,
        })
    }

    /// Runs steps `first_step + 1 ..= first_step + steps` (global, 1-based) from `state`
    /// (params, m, v), Adam's updates continuing from `updates_before`; stops before a step
    /// whose loss is not finite (its global step in `diverged`).
    pub fn run(
        &mut self,
        state: &mut [f32],
        first_step: u64,
        updates_before: u64,
        steps: u64,
        adam: &Adam,
    ) -> Result<DenseChunk> {
        let batch = self.batches.batch();
        let per_epoch = self.batches.steps_per_epoch();
        let row_bytes = 4 * (self.batches.d() + 1);
        let most = ((CHUNK_BYTES / row_bytes) / batch).max(1) as u64;
        // One table per chunk, within one epoch: its last batch may be the epoch's short one,
        // which the kernel takes as it takes an in-memory table's.
        let steps = steps.min(per_epoch - first_step % per_epoch).min(most);
        self.x.clear();
        self.y.clear();
        for step in first_step + 1..=first_step + steps {
            self.batches.append(step, &mut self.x, &mut self.y)?;
        }
        let mut kernel = self.kernel(&self.x, &self.y)?;
        let mut done = 0;
        let mut last_loss = f32::NAN;
        while done < steps {
            let chunk = kernel
                .run(
                    state,
                    done,
                    updates_before + done,
                    steps - done,
                    batch,
                    adam,
                )
                .map_err(|message| Error::Device {
                    backend: self.backend,
                    message,
                })?;
            done += chunk.steps_run;
            if let Some((_, bad)) = chunk.diverged {
                return Ok(DenseChunk {
                    steps_run: done,
                    last_loss: bad,
                    diverged: Some((first_step + done + 1, bad)),
                });
            }
            last_loss = chunk.last_loss;
        }
        Ok(DenseChunk {
            steps_run: done,
            last_loss,
            diverged: None,
        })
    }
}
