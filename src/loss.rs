//! The training losses (`--loss`): mean squared error (the default), mean absolute error and
//! Huber's loss, as per-sample values and derivatives for the fused steps and as tensors for
//! the autodiff engine. Every engine minimises the mean of the per-sample loss over the batch.
//!
//! With e = z − y and Huber's δ:
//! - mse: e², derivative 2e;
//! - mae: |e|, derivative sign(e) (0 at e = 0, as burn's `abs` gives);
//! - huber: ½e² where |e| ≤ δ, else δ(|e| − ½δ); derivative e clamped to [−δ, δ]. As
//!   PyTorch's `HuberLoss`, and statsmodels' `HuberT` norm.
//!
//! On a standardized table the model trains on the target divided by its std s: δ is given in
//! the target's units and trains as δ / s, and the loss shown is the training loss times s²
//! (mse, huber) or s (mae) — the same value as the loss of the model in the target's units.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Which loss a run minimises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Mean squared error.
    #[default]
    Mse,
    /// Mean absolute error.
    Mae,
    /// Huber's loss with threshold `--huber-delta`.
    Huber,
}

impl LossKind {
    /// Its name on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Mse => "mse",
            LossKind::Mae => "mae",
            LossKind::Huber => "huber",
        }
    }

    /// Whether this is the default (MSE): then configs leave the key out, so files written
    /// before losses existed and after are the same.
    pub fn is_mse(&self) -> bool {
        *self == LossKind::Mse
    }

    /// The loss of one error `e`, in f64.
    pub fn value(self, e: f64, delta: f64) -> f64 {
        match self {
            LossKind::Mse => e * e,
            LossKind::Mae => e.abs(),
            LossKind::Huber => {
                let a = e.abs();
                if a <= delta {
                    0.5 * e * e
                } else {
                    delta * (a - 0.5 * delta)
                }
            }
        }
    }

    /// The derivative of the mean loss over `n` samples with respect to one output, at error
    /// `e`: `scale` = 1/n. MSE keeps its historic form (2/n)·e, bit for bit.
    #[inline(always)]
    pub fn gradient(self, e: f32, delta: f32, one_over_n: f32, two_over_n: f32) -> f32 {
        match self {
            LossKind::Mse => two_over_n * e,
            LossKind::Mae => {
                let sign = if e > 0.0 {
                    1.0
                } else if e < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                one_over_n * sign
            }
            LossKind::Huber => one_over_n * e.clamp(-delta, delta),
        }
    }

    /// How the loss scales when the target is scaled by s: s^power.
    pub fn scale_power(self) -> i32 {
        match self {
            LossKind::Mae => 1,
            LossKind::Mse | LossKind::Huber => 2,
        }
    }

    /// The mean loss of a batch as a one-element tensor (for autodiff).
    pub fn of_tensors(self, z: Tensor<2>, y: Tensor<2>, delta: f32) -> Tensor<1> {
        let e = z - y;
        match self {
            LossKind::Mse => e.square().mean(),
            LossKind::Mae => e.abs().mean(),
            // q = min(|e|, δ): q·(|e| − q/2) is ½e² inside the threshold and δ(|e| − δ/2) out.
            LossKind::Huber => {
                let a = e.abs();
                let q = a.clone().clamp_max(delta);
                (q.clone() * (a - q.div_scalar(2.0))).mean()
            }
        }
    }
}

/// The default Huber threshold (PyTorch's and statsmodels' default is 1.0 and 1.345).
pub const DEFAULT_HUBER_DELTA: f32 = 1.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_gradients_agree_with_their_definitions() {
        let n = 4.0f32;
        for kind in [LossKind::Mse, LossKind::Mae, LossKind::Huber] {
            for e in [-3.0f32, -0.5, 0.0, 0.25, 2.0] {
                let delta = 1.0;
                // The derivative matches a central difference of the value (away from kinks).
                let h = 1e-4;
                let numeric = (kind.value(f64::from(e) + h, 1.0)
                    - kind.value(f64::from(e) - h, 1.0))
                    / (2.0 * h)
                    / f64::from(n);
                let g = kind.gradient(e, delta, 1.0 / n, 2.0 / n);
                if e != 0.0 {
                    assert!(
                        (f64::from(g) - numeric).abs() < 1e-4,
                        "{kind:?} at {e}: {g} vs {numeric}"
                    );
                }
            }
        }
        assert_eq!(LossKind::Huber.value(0.5, 1.0), 0.125);
        assert_eq!(LossKind::Huber.value(-3.0, 1.0), 2.5);
        assert_eq!(LossKind::Mae.gradient(0.0, 1.0, 0.25, 0.5), 0.0);
    }
}
