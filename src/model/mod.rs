//! The models: a linear regression (z = x·w + b) and a multi-layer perceptron, both as one
//! [`Network`] of dense layers whose architecture a [`ModelSpec`] describes.

pub mod linear;
pub mod spec;

use burn::tensor::{Device, Tensor, activation};

pub use linear::{LinearRegression, LinearRegressionConfig};
pub use spec::{Activation, ModelSpec};

use crate::error::Result;
use crate::host::{HostTensor, NamedTensor};

/// Dense layers on a device: z = x·w + b for the linear model; for an MLP the same per layer,
/// with the activation between layers (not after the last).
///
/// # Shapes
/// - `params`: `w_l` `[fan_in, fan_out]` (the autograd crate's orientation, and burn's
///   `nn::Linear` weight's), `b_l` `[1, fan_out]`, in [`ModelSpec::param_names`] order
/// - input `x`: `[batch, d_in]`, output: `[batch, 1]`
#[derive(Clone, Debug)]
pub struct Network {
    /// The architecture.
    pub spec: ModelSpec,
    /// The parameters, in [`ModelSpec::param_names`] order.
    pub params: Vec<Tensor<2>>,
}

impl Network {
    /// A fresh model: [`ModelSpec::init`] from `seed`, uploaded to `device`.
    pub fn init(spec: &ModelSpec, seed: u64, device: &Device) -> Network {
        Self::from_host(spec, &spec.init(seed), device)
    }

    /// Builds the model from host values, in [`ModelSpec::param_names`] order (callers check
    /// the shapes when reading files: see [`ModelSpec::infer`]).
    pub fn from_host(spec: &ModelSpec, params: &[HostTensor], device: &Device) -> Network {
        Network {
            spec: spec.clone(),
            params: params.iter().map(|p| p.to_tensor(device)).collect(),
        }
    }

    /// Copies the parameters to the host, named.
    pub fn to_host(&self) -> Result<Vec<NamedTensor>> {
        self.spec
            .param_names()
            .into_iter()
            .zip(&self.params)
            .map(|(name, value)| {
                Ok(NamedTensor {
                    name,
                    value: HostTensor::from_tensor(value.clone())?,
                })
            })
            .collect()
    }

    /// The model's output for a batch.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let layers = self.params.len() / 2;
        let mut h = x;
        for (l, pair) in self.params.chunks(2).enumerate() {
            h = h.matmul(pair[0].clone()) + pair[1].clone();
            if l + 1 < layers {
                h = match self.spec.activation {
                    Activation::Tanh => h.tanh(),
                    Activation::Relu => activation::relu(h),
                };
            }
        }
        h
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

    fn device() -> Device {
        Backend::open(BackendKind::compiled()[0]).unwrap().device
    }

    #[test]
    fn forward_is_x_times_w_plus_b() {
        let device = device();
        let model = Network::from_host(
            &ModelSpec::linear(1),
            &[
                HostTensor::new(vec![1, 1], vec![2.0]),
                HostTensor::new(vec![1, 1], vec![-1.0]),
            ],
            &device,
        );
        let x = Tensor::<2>::from_floats([[0.0], [1.0], [3.0]], &device);
        let z = HostTensor::from_tensor(model.forward(x.clone())).unwrap();
        assert_eq!(z.data, vec![-1.0, 1.0, 5.0]);
        let y = Tensor::<2>::from_floats([[0.0], [1.0], [1.0]], &device);
        // ((−1)² + 0² + 4²) / 3
        let loss: f32 = mse(model.forward(x), y).into_scalar();
        assert!((loss - 17.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn the_device_forward_matches_the_host_forward() {
        let device = device();
        for activation in [Activation::Tanh, Activation::Relu] {
            let spec = ModelSpec {
                d_in: 3,
                hidden: vec![5, 4],
                activation,
            };
            let model = Network::init(&spec, 9, &device);
            let rows = [[0.5f32, -1.0, 2.0], [3.0, 0.25, -0.75]];
            let x = Tensor::<2>::from_floats(rows, &device);
            let z = HostTensor::from_tensor(model.forward(x)).unwrap();
            let params = model.to_host().unwrap();
            for (row, z) in rows.iter().zip(&z.data) {
                let row: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
                let expected = spec.forward_host(&params, &row);
                assert!((expected - f64::from(*z)).abs() < 1e-5, "{expected} vs {z}");
            }
        }
    }
}
