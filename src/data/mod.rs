//! The synthetic data: a fresh batch of points on a noisy line for every step.
//!
//! The batch of step `k` is a pure function of `(seed, k)` — sample `i` of it a pure function of
//! `(seed, k, i)` — drawn from one counter-based generator, [`philox`], on every backend and by
//! both engines. A resumed run therefore sees exactly the batches the uninterrupted run saw, and
//! every backend trains on the same data.

pub mod cache;
pub mod delimiter_hint;
pub mod out_of_core;
pub mod predict_csv;
pub mod predictions;
pub mod prepared;
pub mod sine;
pub mod source;
pub mod streamed_batches;
pub mod table;

use burn::tensor::{Device, Tensor, TensorData};

use crate::backend::{Backend, BackendKind};
use crate::config::TrainingConfig;
pub use crate::rng::philox::LineStream;
pub use out_of_core::Split;
pub use prepared::PreparedTable;
pub use source::DataSource;

/// y = true_w·x + true_b + N(0, noise²), x ~ U(x_low, x_high), drawn batch by batch.
#[derive(Clone, Debug)]
pub struct LineData {
    stream: LineStream,
    batch: usize,
}

impl LineData {
    /// The data stream a config describes.
    pub fn new(config: &TrainingConfig) -> Self {
        Self {
            stream: config.line_stream(),
            batch: config.batch,
        }
    }

    /// The batch of step `step` (1-based), as `(x, y)` of shape `[batch, 1]` each, on `device`
    /// (which may be an autodiff device of `backend`). On wgpu it is drawn by a kernel on the
    /// GPU; on the CPU backends on the host, straight into the tensors' memory.
    pub fn batch(&self, step: u64, backend: &Backend, device: &Device) -> (Tensor<2>, Tensor<2>) {
        if backend.kind == BackendKind::Wgpu {
            return crate::fused_step::line_batch_on_gpu(
                &self.stream,
                step,
                self.batch,
                backend,
                device,
            );
        }
        let (x, y) = self.stream.batch(step, self.batch);
        let shape = [self.batch, 1];
        (
            Tensor::from_data(TensorData::new(x, shape), device),
            Tensor::from_data(TensorData::new(y, shape), device),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostTensor;

    fn cpu() -> Backend {
        Backend::open(BackendKind::compiled()[0]).unwrap()
    }

    #[test]
    fn a_step_always_gets_the_same_batch_and_steps_differ() {
        let backend = cpu();
        let data = LineData::new(&TrainingConfig::default());
        let read = |step| {
            let (x, y) = data.batch(step, &backend, &backend.device);
            (
                HostTensor::from_tensor(x).unwrap(),
                HostTensor::from_tensor(y).unwrap(),
            )
        };
        let (x3, y3) = read(3);
        let _ = read(4);
        assert_eq!(read(3), (x3.clone(), y3));
        assert_ne!(read(4).0, x3);
        assert_eq!(x3.shape, vec![64, 1]);
    }

    #[test]
    fn batches_follow_the_line() {
        let backend = cpu();
        let config = TrainingConfig {
            batch: 4096,
            ..Default::default()
        };
        let (x, y) = LineData::new(&config).batch(1, &backend, &backend.device);
        let x = HostTensor::from_tensor(x).unwrap().data;
        let y = HostTensor::from_tensor(y).unwrap().data;
        assert!(x.iter().all(|v| (-10.0..10.0).contains(v)));
        let residuals: Vec<f32> = x.iter().zip(&y).map(|(x, y)| y - (2.5 * x - 1.0)).collect();
        let n = residuals.len() as f32;
        let mean = residuals.iter().sum::<f32>() / n;
        let std = (residuals.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / n).sqrt();
        assert!(mean.abs() < 0.05, "noise mean {mean}");
        assert!((std - 0.5).abs() < 0.05, "noise std {std}");
    }
}
