//! The model: one linear layer, z = x·w + b, in the autograd crate's orientation.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::data::splitmix64;
use crate::error::Result;
use crate::host::HostTensor;

/// Names of the model's parameters, in the order every list of parameters (and the autograd
/// crate's variable ids) follows.
pub const PARAM_NAMES: [&str; 2] = ["w", "b"];

/// Shape of the linear model.
#[derive(Config, Debug)]
pub struct LinearRegressionConfig {
    /// Input features.
    #[config(default = 1)]
    pub d_in: usize,
    /// Outputs.
    #[config(default = 1)]
    pub d_out: usize,
}

/// z = x·w + b.
///
/// # Shapes
/// - `w`: `[d_in, d_out]` (the autograd crate's orientation, and burn's `nn::Linear` weight's)
/// - `b`: `[1, d_out]` (the autograd crate's bias shape)
/// - input `x`: `[batch, d_in]`, output: `[batch, d_out]`
#[derive(Module, Debug)]
pub struct LinearRegression {
    /// The weight.
    pub w: Param<Tensor<2>>,
    /// The bias.
    pub b: Param<Tensor<2>>,
}

impl LinearRegressionConfig {
    /// The initial w, row-major: uniform in [-1, 1) from `seed`, drawn on the host.
    pub fn initial_weights(&self, seed: u64) -> Vec<f32> {
        let mut state = seed ^ 0x005E_ED0F_1A17_u64;
        (0..self.d_in * self.d_out)
            .map(|_| {
                state = splitmix64(state);
                // 24 random bits -> [0, 1) exactly representable in f32.
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A fresh model: w uniform in [-1, 1) from `seed` (drawn on the host, so every backend starts
    /// from the same weights), b zero.
    pub fn init(&self, seed: u64, device: &Device) -> LinearRegression {
        let w = self.initial_weights(seed);
        LinearRegression::from_host(
            &[
                HostTensor::new(vec![self.d_in, self.d_out], w),
                HostTensor::new(vec![1, self.d_out], vec![0.0; self.d_out]),
            ],
            device,
        )
    }
}

impl LinearRegression {
    /// Builds the model from host values of `[w, b]` (in [`PARAM_NAMES`] order).
    pub fn from_host(params: &[HostTensor; 2], device: &Device) -> Self {
        let [w, b] = params;
        Self {
            w: Param::from_tensor(w.to_tensor(device)),
            b: Param::from_tensor(b.to_tensor(device)),
        }
    }

    /// Copies `[w, b]` to the host.
    pub fn to_host(&self) -> Result<[HostTensor; 2]> {
        Ok([
            HostTensor::from_tensor(self.w.val())?,
            HostTensor::from_tensor(self.b.val())?,
        ])
    }

    /// z = x·w + b.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.w.val()) + self.b.val()
    }
}

/// Mean squared error, mean((z − y)²), as a one-element tensor.
pub fn mse(z: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    (z - y).square().mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, BackendKind};

    #[test]
    fn forward_is_x_times_w_plus_b() {
        let device = Backend::open(BackendKind::compiled()[0]).unwrap().device;
        let model = LinearRegression::from_host(
            &[
                HostTensor::new(vec![1, 1], vec![2.0]),
                HostTensor::new(vec![1, 1], vec![-1.0]),
            ],
            &device,
        );
        let x = Tensor::<2>::from_floats([[0.0], [1.0], [3.0]], &device);
        let z = HostTensor::from_tensor(model.forward(x)).unwrap();
        assert_eq!(z.data, vec![-1.0, 1.0, 5.0]);
        let y = Tensor::<2>::from_floats([[0.0], [1.0], [1.0]], &device);
        let z = model.forward(Tensor::<2>::from_floats([[0.0], [1.0], [3.0]], &device));
        // ((−1)² + 0² + 4²) / 3
        let loss: f32 = mse(z, y).into_scalar();
        assert!((loss - 17.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn init_is_a_pure_function_of_the_seed() {
        let device = Backend::open(BackendKind::compiled()[0]).unwrap().device;
        let config = LinearRegressionConfig::new();
        let a = config.init(7, &device).to_host().unwrap();
        let b = config.init(7, &device).to_host().unwrap();
        let c = config.init(8, &device).to_host().unwrap();
        assert_eq!(a, b);
        assert_ne!(a[0], c[0]);
        assert!(a[0].data[0].abs() <= 1.0);
        assert_eq!(a[1].data, vec![0.0]);
    }
}
