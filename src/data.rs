//! The synthetic data: a fresh batch of points on a noisy line for every step, drawn on the
//! training device.
//!
//! The batch of step `k` is a pure function of `(seed, k)`: the device RNG is re-seeded from both
//! before each draw. A resumed run therefore sees exactly the batches the uninterrupted run saw.

use std::sync::Mutex;

use burn::tensor::{Device, Distribution, Tensor};

use crate::config::TrainingConfig;

/// ndarray and flex keep one RNG per process: two threads training at once would otherwise
/// interleave their seed and their draws.
static DEVICE_RNG: Mutex<()> = Mutex::new(());

/// y = true_w·x + true_b + N(0, noise²), x ~ U(x_low, x_high).
#[derive(Clone, Debug)]
pub struct LineData {
    seed: u64,
    batch: usize,
    true_w: f32,
    true_b: f32,
    noise: f32,
    x_low: f32,
    x_high: f32,
}

impl LineData {
    /// The data stream a config describes.
    pub fn new(config: &TrainingConfig) -> Self {
        Self {
            seed: config.seed,
            batch: config.batch,
            true_w: config.true_w,
            true_b: config.true_b,
            noise: config.noise,
            x_low: config.x_low,
            x_high: config.x_high,
        }
    }

    /// The batch of step `step` (1-based), as `(x, y)` of shape `[batch, 1]` each.
    pub fn batch(&self, step: u64, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let shape = [self.batch, 1];
        let (x, noise) = {
            let _guard = DEVICE_RNG
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            device.seed(splitmix64(self.seed ^ splitmix64(step)));
            let x = Tensor::<2>::random(
                shape,
                Distribution::Uniform(self.x_low.into(), self.x_high.into()),
                device,
            );
            let noise =
                Tensor::<2>::random(shape, Distribution::Normal(0.0, self.noise.into()), device);
            (x, noise)
        };
        let y = x.clone().mul_scalar(self.true_w).add_scalar(self.true_b) + noise;
        (x, y)
    }
}

/// SplitMix64: a well-mixed 64-bit hash, used to derive independent seeds.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, BackendKind};
    use crate::host::HostTensor;

    fn cpu() -> Device {
        Backend::open(BackendKind::compiled()[0]).unwrap().device
    }

    #[test]
    fn a_step_always_gets_the_same_batch_and_steps_differ() {
        let device = cpu();
        let data = LineData::new(&TrainingConfig::default());
        let read = |step| {
            let (x, y) = data.batch(step, &device);
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
        let device = cpu();
        let config = TrainingConfig {
            batch: 4096,
            ..Default::default()
        };
        let (x, y) = LineData::new(&config).batch(1, &device);
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
