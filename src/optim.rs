//! Adam, written as the autograd crate writes it, with its state in plain tensors so that it can
//! be saved to and restored from any checkpoint format.
//!
//! Per element, with gradient g at update number t (1-based):
//! m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;
//! p −= lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε)

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub epsilon: f32,
}

/// Adam's running moments for one parameter, shaped like it.
#[derive(Clone, Debug)]
pub struct Moments {
    /// First moment (running mean of the gradient).
    pub m: Tensor<2>,
    /// Second moment (running mean of the squared gradient).
    pub v: Tensor<2>,
}

impl Moments {
    /// Zero moments shaped like `param`: the state before the first update.
    pub fn zeros_like(param: &Tensor<2>) -> Self {
        Self {
            m: param.zeros_like(),
            v: param.zeros_like(),
        }
    }
}

impl Adam {
    /// One update of one parameter; `t` is the 1-based number of this update.
    /// Returns the new parameter value and moments.
    pub fn update(
        &self,
        param: Tensor<2>,
        grad: Tensor<2>,
        moments: Moments,
        t: u64,
    ) -> (Tensor<2>, Moments) {
        let m = moments.m.mul_scalar(self.beta1) + grad.clone().mul_scalar(1.0 - self.beta1);
        let v = moments.v.mul_scalar(self.beta2) + grad.square().mul_scalar(1.0 - self.beta2);
        let m_hat = m.clone().div_scalar(1.0 - pow_by_squaring(self.beta1, t));
        let v_hat = v.clone().div_scalar(1.0 - pow_by_squaring(self.beta2, t));
        let step = m_hat
            .div(v_hat.sqrt().add_scalar(self.epsilon))
            .mul_scalar(self.lr);
        (param - step, Moments { m, v })
    }
}

impl Adam {
    /// One update of one scalar parameter: `(p, m, v)` after update number `t` (1-based) with
    /// gradient `g` — the same arithmetic as [`Adam::update`], for the fused engine.
    #[inline]
    pub fn update_scalar(&self, p: f32, g: f32, m: f32, v: f32, t: u64) -> (f32, f32, f32) {
        let m = self.beta1 * m + (1.0 - self.beta1) * g;
        let v = self.beta2 * v + (1.0 - self.beta2) * (g * g);
        let m_hat = m / (1.0 - pow_by_squaring(self.beta1, t));
        let v_hat = v / (1.0 - pow_by_squaring(self.beta2, t));
        (p - self.lr * (m_hat / (v_hat.sqrt() + self.epsilon)), m, v)
    }
}

/// Which optimizer (`--optimizer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam, as the autograd crate writes it (the default).
    #[default]
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter; PyTorch's `AdamW`).
    Adamw,
    /// Stochastic gradient descent, with `--momentum` (PyTorch's `SGD`, no dampening).
    Sgd,
    /// RMSProp (PyTorch's `RMSprop`, not centred), with `--momentum`.
    Rmsprop,
}

impl OptimizerKind {
    /// Its name on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Rmsprop => "rmsprop",
        }
    }

    /// Whether this is the default (Adam): configs then leave the key out.
    pub fn is_adam(&self) -> bool {
        *self == OptimizerKind::Adam
    }
}

/// How the learning rate changes over a run (`--lr-schedule`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// `--lr` throughout (after any warm-up).
    #[default]
    Constant,
    /// Down in a straight line from `--lr` towards 0 over the run's steps (the last at lr/N).
    Linear,
    /// Half a cosine from `--lr` towards 0 over the run's steps.
    Cosine,
    /// `--lr` times `--lr-gamma` every `--lr-step-every` steps.
    Step,
}

impl ScheduleKind {
    /// Whether this is the default (constant): configs then leave the key out.
    pub fn is_constant(&self) -> bool {
        *self == ScheduleKind::Constant
    }
}

/// An optimizer with its hyper-parameters and learning-rate schedule.
///
/// Update number t (1-based) of a parameter p with gradient g, learning rate lr_t =
/// [`Optimizer::lr_at`]`(t)`; the two state slots `s1`, `s2` (saved where Adam's m and v are):
/// - adam: s1 = m, s2 = v, as [`Adam::update_scalar`];
/// - adamw: p ← p·(1 − lr_t·wd) for weights (not biases), then Adam;
/// - sgd: s1 = μ·s1 + g, p ← p − lr_t·s1 (s2 unused, 0);
/// - rmsprop: s2 = α·s2 + (1 − α)·g², u = g / (√s2 + ε); with μ > 0 s1 = μ·s1 + u and
///   p ← p − lr_t·s1, else p ← p − lr_t·u.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimizer {
    /// Which one.
    pub kind: OptimizerKind,
    /// Adam's hyper-parameters (its `lr` is the base rate of every optimizer, its ε RMSProp's).
    pub adam: Adam,
    /// SGD's and RMSProp's momentum μ.
    pub momentum: f32,
    /// RMSProp's smoothing α.
    pub rmsprop_alpha: f32,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// The schedule.
    pub schedule: ScheduleKind,
    /// Steps of linear warm-up from 0 to `lr`.
    pub warmup: u64,
    /// The run's last step (linear and cosine head for 0 there).
    pub total: u64,
    /// The step schedule's interval.
    pub step_every: u64,
    /// The step schedule's factor.
    pub gamma: f32,
}

impl Optimizer {
    /// `adam` alone, at a constant rate.
    pub fn adam(adam: Adam) -> Self {
        Self {
            kind: OptimizerKind::Adam,
            adam,
            momentum: 0.0,
            rmsprop_alpha: 0.99,
            weight_decay: 0.0,
            schedule: ScheduleKind::Constant,
            warmup: 0,
            total: 0,
            step_every: 1,
            gamma: 1.0,
        }
    }

    /// Plain Adam at a constant rate: what the synthetic line's fused loop and the fused GPU
    /// kernels run.
    pub fn is_plain_adam(&self) -> bool {
        self.kind == OptimizerKind::Adam && self.schedule.is_constant() && self.warmup == 0
    }

    /// The learning rate of update `t` (1-based).
    pub fn lr_at(&self, t: u64) -> f32 {
        let lr = self.adam.lr;
        if t <= self.warmup {
            return (f64::from(lr) * t as f64 / self.warmup as f64) as f32;
        }
        // Update `since` (1-based) of the `span` after warm-up: the first runs at the full rate,
        // as PyTorch's schedulers stepped after each update do.
        let since = t - self.warmup;
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((since - 1) as f64 / span as f64).min(1.0);
        let factor = match self.schedule {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => 1.0 - progress,
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            ScheduleKind::Step => {
                f64::from(self.gamma).powf(((since - 1) / self.step_every.max(1)) as f64)
            }
        };
        (f64::from(lr) * factor) as f32
    }

    /// One value's update at learning rate `lr` with Adam's bias-correction powers
    /// ([`Optimizer::powers`]); `weight`: a weight (not a bias), for AdamW's decay. Returns
    /// (p, s1, s2).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn update_scalar(
        &self,
        p: f32,
        g: f32,
        s1: f32,
        s2: f32,
        lr: f32,
        pow1: f32,
        pow2: f32,
        weight: bool,
    ) -> (f32, f32, f32) {
        let a = &self.adam;
        match self.kind {
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                let p = if self.kind == OptimizerKind::Adamw && weight {
                    p * (1.0 - lr * self.weight_decay)
                } else {
                    p
                };
                let m = a.beta1 * s1 + (1.0 - a.beta1) * g;
                let v = a.beta2 * s2 + (1.0 - a.beta2) * (g * g);
                let m_hat = m / (1.0 - pow1);
                let v_hat = v / (1.0 - pow2);
                (p - lr * (m_hat / (v_hat.sqrt() + a.epsilon)), m, v)
            }
            OptimizerKind::Sgd => {
                let buf = self.momentum * s1 + g;
                (p - lr * buf, buf, 0.0)
            }
            OptimizerKind::Rmsprop => {
                let sq = self.rmsprop_alpha * s2 + (1.0 - self.rmsprop_alpha) * (g * g);
                let u = g / (sq.sqrt() + a.epsilon);
                if self.momentum > 0.0 {
                    let buf = self.momentum * s1 + u;
                    (p - lr * buf, buf, sq)
                } else {
                    (p - lr * u, s1, sq)
                }
            }
        }
    }

    /// β1ᵗ and β2ᵗ for Adam's bias corrections (computed once per step).
    pub fn powers(&self, t: u64) -> (f32, f32) {
        (
            pow_by_squaring(self.adam.beta1, t),
            pow_by_squaring(self.adam.beta2, t),
        )
    }

    /// Update number `t` of one parameter tensor (for the autodiff engine); `weight`: a weight
    /// matrix (AdamW decays those only).
    pub fn update(
        &self,
        param: Tensor<2>,
        grad: Tensor<2>,
        moments: Moments,
        t: u64,
        weight: bool,
    ) -> (Tensor<2>, Moments) {
        let lr = self.lr_at(t);
        let a = Adam { lr, ..self.adam };
        match self.kind {
            OptimizerKind::Adam => a.update(param, grad, moments, t),
            OptimizerKind::Adamw => {
                let param = if weight {
                    param.mul_scalar(1.0 - lr * self.weight_decay)
                } else {
                    param
                };
                a.update(param, grad, moments, t)
            }
            OptimizerKind::Sgd => {
                let buf = moments.m.mul_scalar(self.momentum) + grad;
                let v = moments.v;
                (param - buf.clone().mul_scalar(lr), Moments { m: buf, v })
            }
            OptimizerKind::Rmsprop => {
                let alpha = self.rmsprop_alpha;
                let sq =
                    moments.v.mul_scalar(alpha) + grad.clone().square().mul_scalar(1.0 - alpha);
                let u = grad.div(sq.clone().sqrt().add_scalar(self.adam.epsilon));
                if self.momentum > 0.0 {
                    let buf = moments.m.mul_scalar(self.momentum) + u;
                    (
                        param - buf.clone().mul_scalar(lr),
                        Moments { m: buf, v: sq },
                    )
                } else {
                    (
                        param - u.mul_scalar(lr),
                        Moments {
                            m: moments.m,
                            v: sq,
                        },
                    )
                }
            }
        }
    }
}

/// βᵗ by exponentiation by squaring: a pure function of (β, t), whichever chunk of a run or
/// which device computes it (a running product would depend on where the run was resumed).
/// Past t = 2^32 it is 0 for every β < 1 in f32 (the GPU twin uses 32-bit t).
pub fn pow_by_squaring(beta: f32, t: u64) -> f32 {
    if t >> 32 != 0 {
        return 0.0;
    }
    let mut t = t as u32;
    let mut base = beta;
    let mut result = 1.0f32;
    while t != 0 {
        if t & 1 == 1 {
            result *= base;
        }
        base *= base;
        t >>= 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, BackendKind};
    use crate::host::HostTensor;

    /// The default hyper-parameters (`TrainingConfig::default().adam()`).
    fn adam() -> Adam {
        Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }

    #[test]
    fn first_update_moves_each_weight_by_about_lr_against_the_gradient() {
        let device = Backend::open(BackendKind::compiled()[0]).unwrap().device;
        let adam = adam();
        let p = Tensor::<2>::from_floats([[1.0, -2.0]], &device);
        let g = Tensor::<2>::from_floats([[0.5, -3.0]], &device);
        let (p1, m) = adam.update(p.clone(), g, Moments::zeros_like(&p), 1);
        let p1 = HostTensor::from_tensor(p1).unwrap().data;
        // After bias correction m̂ = g and v̂ = g², so the step is lr·g/(|g| + ε).
        assert!((p1[0] - 0.99).abs() < 1e-6, "{p1:?}");
        assert!((p1[1] - -1.99).abs() < 1e-6, "{p1:?}");
        let m = HostTensor::from_tensor(m.m).unwrap().data;
        assert!(
            (m[0] - 0.05).abs() < 1e-7 && (m[1] - -0.3).abs() < 1e-7,
            "{m:?}"
        );
    }

    #[test]
    fn powers_by_squaring_are_as_accurate_as_a_running_product() {
        // Each squaring doubles the relative error: about t ulps at t, as for β·β·…·β.
        for beta in [0.9f32, 0.999] {
            for t in [0u64, 1, 2, 3, 10, 999, 1000, 4321] {
                let ours = f64::from(pow_by_squaring(beta, t));
                let exact = f64::from(beta).powf(t as f64);
                let tolerance = (t as f64 + 4.0) * f64::from(f32::EPSILON) * exact + 1e-44;
                assert!(
                    (ours - exact).abs() <= tolerance,
                    "{beta}^{t}: {ours} vs {exact}"
                );
            }
        }
        assert_eq!(pow_by_squaring(0.9, 1 << 40), 0.0);
    }

    #[test]
    fn scalar_update_matches_the_tensor_update() {
        let device = Backend::open(BackendKind::compiled()[0]).unwrap().device;
        let adam = adam();
        let p = Tensor::<2>::from_floats([[0.7]], &device);
        let moments = Moments {
            m: Tensor::from_floats([[0.2]], &device),
            v: Tensor::from_floats([[0.3]], &device),
        };
        let (p1, m1) = adam.update(p, Tensor::from_floats([[-1.5]], &device), moments, 17);
        let (sp, sm, sv) = adam.update_scalar(0.7, -1.5, 0.2, 0.3, 17);
        let read = |t: Tensor<2>| HostTensor::from_tensor(t).unwrap().data[0];
        assert!((read(p1) - sp).abs() < 1e-7);
        assert!((read(m1.m) - sm).abs() < 1e-7 && (read(m1.v) - sv).abs() < 1e-7);
    }

    #[test]
    fn matches_a_hand_computed_second_update() {
        let device = Backend::open(BackendKind::compiled()[0]).unwrap().device;
        let adam = Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        };
        let p = Tensor::<2>::from_floats([[0.0]], &device);
        let (p, mo) = adam.update(
            p.clone(),
            Tensor::from_floats([[1.0]], &device),
            Moments::zeros_like(&p),
            1,
        );
        let (p, _) = adam.update(p, Tensor::from_floats([[2.0]], &device), mo, 2);
        let (b1, b2) = (0.9f64, 0.999f64);
        let m = (1.0 - b1) * 1.0 * b1 + (1.0 - b1) * 2.0;
        let v = (1.0 - b2) * 1.0 * b2 + (1.0 - b2) * 4.0;
        let expected = -0.1 - 0.1 * (m / (1.0 - b1 * b1)) / ((v / (1.0 - b2 * b2)).sqrt() + 1e-8);
        let got = HostTensor::from_tensor(p).unwrap().data[0] as f64;
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }
}
