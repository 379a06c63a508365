//! The autograd crate's `sine` task: y = sin x with x ~ U(0, 10), a fresh batch per step.
//!
//! x comes from the same Philox stream as the line's (so a step's batch is a pure function of
//! `(seed, step)` and resume is exact); y is computed on the host with the platform's `sin`.

use burn::tensor::{Device, Tensor, TensorData};

use super::LineStream;
use crate::config::TrainingConfig;

/// The range x is drawn from.
pub const SINE_X_RANGE: (f32, f32) = (0.0, 10.0);

/// y = sin x, x ~ U(0, 10), drawn batch by batch.
#[derive(Clone, Debug)]
pub struct SineData {
    stream: LineStream,
    batch: usize,
}

impl SineData {
    /// The stream a config describes (its seed and batch; the line's settings do not apply).
    pub fn new(config: &TrainingConfig) -> Self {
        let x_only = TrainingConfig {
            x_low: SINE_X_RANGE.0,
            x_high: SINE_X_RANGE.1,
            true_w: 0.0,
            true_b: 0.0,
            noise: 0.0,
            ..config.clone()
        };
        Self {
            stream: x_only.line_stream(),
            batch: config.batch,
        }
    }

    /// The Philox stream x is drawn from (its y is unused).
    pub fn stream(&self) -> LineStream {
        self.stream
    }

    /// The batch of step `step` on the host: `(x, y)`, `batch` values each.
    pub fn host_batch(&self, step: u64) -> (Vec<f32>, Vec<f32>) {
        let (x, _) = self.stream.batch(step, self.batch);
        let y = x.iter().map(|x| x.sin()).collect();
        (x, y)
    }

    /// The batch of step `step` as `[batch, 1]` tensors on `device`.
    pub fn batch(&self, step: u64, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let (x, y) = self.host_batch(step);
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

    #[test]
    fn points_lie_on_the_sine_in_range() {
        let data = SineData::new(&TrainingConfig {
            batch: 1000,
            ..Default::default()
        });
        let (x, y) = data.host_batch(1);
        assert!(x.iter().all(|x| (0.0..10.0).contains(x)));
        assert!(x.iter().zip(&y).all(|(x, y)| *y == x.sin()));
        let mean = x.iter().sum::<f32>() / 1000.0;
        assert!((mean - 5.0).abs() < 0.3, "{mean}");
        assert_eq!(data.host_batch(1), (x.clone(), y));
        assert_ne!(data.host_batch(2).0, x);
    }
}
