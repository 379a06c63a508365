//! A model's architecture: how many layers of what width, the names and shapes of their
//! parameters, and their initial values.
//!
//! One mechanism serves both models: a linear regression is a network with no hidden layer.
//! Parameters are listed in one order everywhere (model, optimizer, checkpoint files):
//! `w, b` for the linear model (the autograd seed program's names), `w1, b1, …, wL, bL` for a
//! network with hidden layers (the autograd crate's `sine` example's), with `w_l` of shape
//! `[fan_in, fan_out]` and `b_l` of shape `[1, fan_out]`.

use serde::{Deserialize, Serialize};

use crate::host::{HostTensor, NamedTensor};
use crate::rng::splitmix64;

/// The non-linearity between the layers of a multi-layer perceptron.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// tanh(x).
    #[default]
    Tanh,
    /// max(x, 0).
    Relu,
}

impl Activation {
    /// Its name on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
        }
    }

    /// The activation of one value, in f64 (for evaluation on the host).
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(0.0),
        }
    }
}

/// The widest hidden layer accepted: far above what this workload needs, low enough that a typo
/// (`--hidden 6400000`) is an error rather than an allocation failure.
pub const MAX_HIDDEN_WIDTH: usize = 16_384;
/// The most hidden layers accepted.
pub const MAX_HIDDEN_LAYERS: usize = 64;
/// The most parameters accepted: 100 million (400 MB of f32, 1.6 GB with gradients and Adam's
/// moments, and a checkpoint in JSON of several GB).
pub const MAX_PARAMETERS: u64 = 100_000_000;

/// A model's shape: `d_in` inputs, then the hidden layers, then one output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// Input features.
    pub d_in: usize,
    /// Widths of the hidden layers; empty for the linear model.
    pub hidden: Vec<usize>,
    /// The non-linearity after each hidden layer.
    pub activation: Activation,
}

impl ModelSpec {
    /// z = x·w + b with `d_in` inputs.
    pub fn linear(d_in: usize) -> Self {
        Self {
            d_in,
            hidden: Vec::new(),
            activation: Activation::default(),
        }
    }

    /// Whether this is the linear model (no hidden layer).
    pub fn is_linear(&self) -> bool {
        self.hidden.is_empty()
    }

    /// Number of layers (weight matrices).
    pub fn layers(&self) -> usize {
        self.hidden.len() + 1
    }

    /// `[d_in, hidden…, 1]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut widths = Vec::with_capacity(self.hidden.len() + 2);
        widths.push(self.d_in);
        widths.extend(&self.hidden);
        widths.push(1);
        widths
    }

    /// A one-line description: `linear, 3 inputs` or `mlp 1-64-64-1, tanh`.
    pub fn describe(&self) -> String {
        if self.is_linear() {
            let s = if self.d_in == 1 { "" } else { "s" };
            format!("linear, {} input{s}", self.d_in)
        } else {
            let widths: Vec<String> = self.widths().iter().map(|w| w.to_string()).collect();
            format!("mlp {}, {}", widths.join("-"), self.activation.name())
        }
    }

    /// The parameters' names, in the one order every list of parameters follows.
    pub fn param_names(&self) -> Vec<String> {
        if self.is_linear() {
            return vec!["w".into(), "b".into()];
        }
        (1..=self.layers())
            .flat_map(|l| [format!("w{l}"), format!("b{l}")])
            .collect()
    }

    /// The parameters' shapes, in [`ModelSpec::param_names`] order.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.widths()
            .windows(2)
            .flat_map(|pair| [vec![pair[0], pair[1]], vec![1, pair[1]]])
            .collect()
    }

    /// Checks the sizes: at least one input, hidden widths from 1 to [`MAX_HIDDEN_WIDTH`].
    pub fn validate(&self) -> Result<(), String> {
        if self.d_in == 0 {
            return Err("the model needs at least one input".into());
        }
        if self.hidden.len() > MAX_HIDDEN_LAYERS {
            return Err(format!(
                "{} hidden layers; at most {MAX_HIDDEN_LAYERS} are supported",
                self.hidden.len()
            ));
        }
        if let Some(bad) = self
            .hidden
            .iter()
            .find(|w| **w == 0 || **w > MAX_HIDDEN_WIDTH)
        {
            return Err(format!(
                "hidden width {bad}; each must be from 1 to {MAX_HIDDEN_WIDTH}"
            ));
        }
        let parameters = self.parameter_count();
        if parameters > MAX_PARAMETERS {
            return Err(format!(
                "{parameters} parameters; at most {MAX_PARAMETERS} are supported"
            ));
        }
        Ok(())
    }

    /// Weights and biases in all layers.
    pub fn parameter_count(&self) -> u64 {
        self.widths()
            .windows(2)
            .map(|pair| (pair[0] as u64 + 1) * pair[1] as u64)
            .sum()
    }

    /// Initial parameters, a pure function of `seed`, drawn on the host so that every backend
    /// and engine starts from the same values. The linear model's w is uniform in [-1, 1) (the
    /// seed workload's start); a hidden network's weights are Glorot-uniform,
    /// U(±√(6 / (fan_in + fan_out))), so tanh layers start in their linear range. Biases are 0.
    pub fn init(&self, seed: u64) -> Vec<HostTensor> {
        let mut state = seed ^ 0x005E_ED0F_1A17_u64;
        let mut uniform = || {
            state = splitmix64(state);
            // 24 random bits -> [0, 1) exactly representable in f32, then [-1, 1).
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let linear = self.is_linear();
        self.param_shapes()
            .into_iter()
            .enumerate()
            .map(|(i, shape)| {
                let len = shape.iter().product();
                if i % 2 == 1 {
                    return HostTensor::new(shape, vec![0.0; len]);
                }
                let scale = if linear {
                    1.0
                } else {
                    (6.0 / (shape[0] + shape[1]) as f32).sqrt()
                };
                let data = (0..len).map(|_| uniform() * scale).collect();
                HostTensor::new(shape, data)
            })
            .collect()
    }

    /// The architecture that a file's parameters describe: `w` and `b` (the linear model), or
    /// `w1, b1, …, wL, bL` with shapes that chain into one output. `activation` is taken as
    /// given (files without burnfit's metadata do not record it). Returns the parameters in
    /// order with the spec.
    pub fn infer<'a>(
        find: impl Fn(&str) -> Option<&'a HostTensor>,
        activation: Activation,
    ) -> Result<(ModelSpec, Vec<NamedTensor>), String> {
        let names: Vec<String> = if find("w").is_some() || find("b").is_some() {
            vec!["w".into(), "b".into()]
        } else if find("w1").is_some() || find("b1").is_some() {
            let mut names = Vec::new();
            let mut l = 1;
            while find(&format!("w{l}")).is_some() || find(&format!("b{l}")).is_some() {
                names.push(format!("w{l}"));
                names.push(format!("b{l}"));
                l += 1;
            }
            if names.len() == 2 {
                return Err(
                    "`w1`/`b1` without `w2`: a model of one layer is the linear model, named `w` and `b`"
                        .into(),
                );
            }
            names
        } else {
            return Err("no model parameters (expected `w` and `b`, or `w1`, `b1`, …)".into());
        };
        let mut params = Vec::with_capacity(names.len());
        for name in names {
            let value = find(&name).ok_or_else(|| format!("no tensor `{name}`"))?;
            if let Some(bad) = value.first_non_finite() {
                return Err(format!("`{name}` holds a non-finite value ({bad})"));
            }
            params.push(NamedTensor {
                name,
                value: value.clone(),
            });
        }
        let first = &params[0].value.shape;
        let d_in = match first.as_slice() {
            [d_in, _] if *d_in > 0 => *d_in,
            _ => {
                return Err(format!(
                    "`{}` has shape {first:?}, expected [inputs, outputs]",
                    params[0].name
                ));
            }
        };
        // Each hidden width is the fan-out of the layer before it.
        let weights: Vec<&NamedTensor> = params.iter().step_by(2).collect();
        let hidden: Vec<usize> = weights[..weights.len() - 1]
            .iter()
            .map(|p| p.value.shape.get(1).copied().unwrap_or(0))
            .collect();
        // A linear model has no activation: keep the default, so specs compare equal.
        let activation = if hidden.is_empty() {
            Activation::default()
        } else {
            activation
        };
        let spec = ModelSpec {
            d_in,
            hidden,
            activation,
        };
        spec.validate()?;
        for (param, shape) in params.iter().zip(spec.param_shapes()) {
            if param.value.shape != shape {
                return Err(format!(
                    "`{}` has shape {:?}, the model ({}) needs {shape:?}",
                    param.name,
                    param.value.shape,
                    spec.describe()
                ));
            }
        }
        Ok((spec, params))
    }

    /// The model's output for one input row, in f64 on the host (for evaluation and for
    /// predictions that must not depend on a device).
    pub fn forward_host(&self, params: &[NamedTensor], row: &[f64]) -> f64 {
        let mut input: Vec<f64> = row.to_vec();
        let layers = params.chunks(2).collect::<Vec<_>>();
        for (l, pair) in layers.iter().enumerate() {
            let (w, b) = (&pair[0].value, &pair[1].value);
            let fan_out = w.shape[1];
            let mut output: Vec<f64> = b.data.iter().map(|v| f64::from(*v)).collect();
            for (i, x) in input.iter().enumerate() {
                let row = &w.data[i * fan_out..(i + 1) * fan_out];
                for (o, wv) in output.iter_mut().zip(row) {
                    *o += x * f64::from(*wv);
                }
            }
            if l + 1 < layers.len() {
                output
                    .iter_mut()
                    .for_each(|o| *o = self.activation.apply(*o));
            }
            input = output;
        }
        input[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp() -> ModelSpec {
        ModelSpec {
            d_in: 2,
            hidden: vec![3, 4],
            activation: Activation::Tanh,
        }
    }

    #[test]
    fn names_and_shapes_follow_the_layers() {
        assert_eq!(ModelSpec::linear(3).param_names(), ["w", "b"]);
        assert_eq!(
            ModelSpec::linear(3).param_shapes(),
            [vec![3, 1], vec![1, 1]]
        );
        assert_eq!(mlp().param_names(), ["w1", "b1", "w2", "b2", "w3", "b3"]);
        assert_eq!(
            mlp().param_shapes(),
            [
                vec![2, 3],
                vec![1, 3],
                vec![3, 4],
                vec![1, 4],
                vec![4, 1],
                vec![1, 1]
            ]
        );
        assert_eq!(mlp().describe(), "mlp 2-3-4-1, tanh");
    }

    #[test]
    fn the_linear_init_is_the_seed_workloads() {
        let params = ModelSpec::linear(1).init(42);
        assert_eq!(params.len(), 2);
        assert!(params[0].data[0].abs() <= 1.0);
        assert_eq!(params[1].data, [0.0]);
        assert_eq!(params, ModelSpec::linear(1).init(42));
        assert_ne!(params, ModelSpec::linear(1).init(43));
    }

    #[test]
    fn glorot_init_stays_in_its_bounds() {
        let params = mlp().init(1);
        let bound = (6.0f32 / 7.0).sqrt();
        assert!(params[2].data.iter().all(|v| v.abs() <= bound));
        assert!(params[2].data.iter().any(|v| v.abs() > bound / 2.0));
        assert!(params[3].data.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn infer_reads_back_the_architecture_and_names_bad_shapes() {
        let spec = mlp();
        let named: Vec<NamedTensor> = spec
            .param_names()
            .into_iter()
            .zip(spec.init(3))
            .map(|(name, value)| NamedTensor { name, value })
            .collect();
        let find = |n: &str| named.iter().find(|t| t.name == n).map(|t| &t.value);
        let (inferred, params) = ModelSpec::infer(find, Activation::Tanh).unwrap();
        assert_eq!((inferred, params), (spec, named.clone()));

        let mut broken = named.clone();
        broken[2].value = HostTensor::new(vec![2, 4], vec![0.0; 8]);
        let find = |n: &str| broken.iter().find(|t| t.name == n).map(|t| &t.value);
        let err = ModelSpec::infer(find, Activation::Tanh).unwrap_err();
        assert!(err.contains("`w2` has shape [2, 4]"), "{err}");

        let missing: Vec<NamedTensor> = named.into_iter().filter(|t| t.name != "b2").collect();
        let find = |n: &str| missing.iter().find(|t| t.name == n).map(|t| &t.value);
        assert!(
            ModelSpec::infer(find, Activation::Tanh)
                .unwrap_err()
                .contains("`b2`")
        );
        let none = |_: &str| None;
        assert!(
            ModelSpec::infer(none, Activation::Tanh)
                .unwrap_err()
                .contains("no model")
        );
    }

    #[test]
    fn forward_host_computes_the_layers() {
        // 1 input → 2 hidden (relu) → 1: w1 = [1, -1], b1 = [0, 1], w2 = [2, 3], b2 = 0.5.
        let spec = ModelSpec {
            d_in: 1,
            hidden: vec![2],
            activation: Activation::Relu,
        };
        let t = |shape: Vec<usize>, data: Vec<f32>| HostTensor::new(shape, data);
        let params: Vec<NamedTensor> = spec
            .param_names()
            .into_iter()
            .zip([
                t(vec![1, 2], vec![1.0, -1.0]),
                t(vec![1, 2], vec![0.0, 1.0]),
                t(vec![2, 1], vec![2.0, 3.0]),
                t(vec![1, 1], vec![0.5]),
            ])
            .map(|(name, value)| NamedTensor { name, value })
            .collect();
        // x = 2: hidden = relu([2, -1]) = [2, 0]; out = 4 + 0 + 0.5.
        assert_eq!(spec.forward_host(&params, &[2.0]), 4.5);
        // x = -3: hidden = relu([-3, 4]) = [0, 4]; out = 12.5.
        assert_eq!(spec.forward_host(&params, &[-3.0]), 12.5);
    }

    #[test]
    fn absurd_widths_are_refused() {
        let mut spec = mlp();
        spec.hidden = vec![64, 0];
        assert!(spec.validate().unwrap_err().contains("hidden width 0"));
        spec.hidden = vec![1 << 30];
        assert!(spec.validate().is_err());
    }
}
