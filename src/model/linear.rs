//! The linear model as a burn `Module`: what a burn program declares to load burnfit's
//! SafeTensors and burnpack files with burn's own stores (`BurnpackStore`, `SafetensorsStore`).
//! burnfit itself trains every model as a [`super::Network`].

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::host::HostTensor;
use crate::model::ModelSpec;

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
    /// The initial w, row-major: uniform in [-1, 1) from `seed` (the values
    /// [`ModelSpec::init`] gives burnfit's own linear model when `d_out` is 1).
    pub fn initial_weights(&self, seed: u64) -> Vec<f32> {
        let spec = ModelSpec::linear(self.d_in * self.d_out);
        spec.init(seed)[0].data.clone()
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
