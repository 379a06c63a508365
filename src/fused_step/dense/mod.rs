//! The fused step of a dense network (an MLP, or the linear model over any inputs) on the CPU:
//! forward, MSE, backward and Adam in one pass over the batch, block by block, with the
//! parameters, their gradients and one block's activations in cache and no batch-sized tensor.
//!
//! The batch is cut into blocks of [`BLOCK_ROWS`] rows (the activations of a block of a 64-wide
//! network fit in L1) and groups of [`GROUP_ROWS`] rows. Within a group, gradients are summed
//! row by row in batch order; the groups' sums are then added in group order. Groups are what
//! threads share out ([`team`]), and their boundaries depend on the batch size alone, so a run
//! gives the same bits with any number of threads and on any x86-64 instruction set (see
//! [`math`]).
//!
//! Widths are padded to a multiple of [`math::TILE`] with zero weights: a padded unit's output
//! is 0, its gradients are exactly 0, and Adam leaves a zero parameter with zero gradient at 0,
//! so the padding never changes a real value.

mod linear_rows;
pub mod math;
mod team;

use crate::fused_step::host::InstructionSet;
use crate::host::HostTensor;
use crate::loss::LossKind;
use crate::model::{Activation, ModelSpec};
use crate::optim::{Adam, Optimizer, pow_by_squaring};
use math::TILE;

pub use linear_rows::BatchRows;
pub use team::threads_for;

/// The objective a step minimises: the mean loss, Huber's δ (in the training space), and the
/// ridge penalty λ·Σw² over the weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// Which loss.
    pub kind: LossKind,
    /// Huber's threshold.
    pub delta: f32,
    /// The ridge penalty's λ (0: none).
    pub l2: f32,
}

impl Default for Loss {
    fn default() -> Self {
        Self {
            kind: LossKind::Mse,
            delta: crate::loss::DEFAULT_HUBER_DELTA,
            l2: 0.0,
        }
    }
}

/// Rows per block.
pub const BLOCK_ROWS: usize = 64;
/// Rows per group: the unit of work a thread takes, and of the fixed summation order.
pub const GROUP_ROWS: usize = 256;

/// Where one layer's parameters sit in the padded parameter vector.
#[derive(Clone, Copy, Debug)]
struct Layer {
    /// Inputs as stored (padded, except the first layer's, which are the data's).
    fan_in: usize,
    /// Outputs as stored: padded for a hidden layer, 1 for the output layer.
    fan_out: usize,
    /// The real sizes.
    real_in: usize,
    real_out: usize,
    /// Offsets of `w` (`fan_in × fan_out`, row-major) and `b` (`fan_out`).
    w: usize,
    b: usize,
}

/// A dense network's parameters laid out for the step: hidden layers padded to whole tiles.
#[derive(Clone, Debug)]
pub struct DenseLayout {
    activation: Activation,
    d_in: usize,
    /// Hidden layers, then the output layer.
    layers: Vec<Layer>,
    len: usize,
}

impl DenseLayout {
    /// The layout of `spec`.
    pub fn new(spec: &ModelSpec) -> Self {
        let mut layers = Vec::new();
        let mut len = 0;
        let mut fan_in = spec.d_in;
        let mut real_in = spec.d_in;
        let outputs = spec.hidden.iter().map(|h| (h.div_ceil(TILE) * TILE, *h));
        for (fan_out, real_out) in outputs.chain([(1, 1)]) {
            let w = len;
            let b = w + fan_in * fan_out;
            len = b + fan_out;
            layers.push(Layer {
                fan_in,
                fan_out,
                real_in,
                real_out,
                w,
                b,
            });
            (fan_in, real_in) = (fan_out, real_out);
        }
        Self {
            activation: spec.activation,
            d_in: spec.d_in,
            layers,
            len,
        }
    }

    /// Values in the padded layout.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no parameters (never: a model has at least w and b).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inputs per row.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// The model's tensors (in [`ModelSpec::param_names`] order and shapes) in the padded
    /// layout.
    pub fn pack(&self, tensors: &[HostTensor]) -> Vec<f32> {
        let mut packed = vec![0.0; self.len];
        for (layer, pair) in self.layers.iter().zip(tensors.chunks(2)) {
            for k in 0..layer.real_in {
                let row = &pair[0].data[k * layer.real_out..][..layer.real_out];
                packed[layer.w + k * layer.fan_out..][..layer.real_out].copy_from_slice(row);
            }
            packed[layer.b..][..layer.real_out].copy_from_slice(&pair[1].data);
        }
        packed
    }

    /// The padded values as the model's tensors.
    pub fn unpack(&self, packed: &[f32]) -> Vec<HostTensor> {
        let mut tensors = Vec::with_capacity(2 * self.layers.len());
        for layer in &self.layers {
            let mut w = Vec::with_capacity(layer.real_in * layer.real_out);
            for k in 0..layer.real_in {
                w.extend_from_slice(&packed[layer.w + k * layer.fan_out..][..layer.real_out]);
            }
            tensors.push(HostTensor::new(vec![layer.real_in, layer.real_out], w));
            let b = packed[layer.b..][..layer.real_out].to_vec();
            tensors.push(HostTensor::new(vec![1, layer.real_out], b));
        }
        tensors
    }

    /// The hidden layers (all but the output layer).
    fn hidden(&self) -> &[Layer] {
        &self.layers[..self.layers.len() - 1]
    }

    fn output(&self) -> Layer {
        *self.layers.last().expect("an output layer")
    }
}

/// One worker's buffers for a block.
pub struct Scratch {
    /// Each hidden layer's activations, `BLOCK_ROWS × fan_out`.
    acts: Vec<Vec<f32>>,
    /// The gradient at a layer's output, and at its input.
    delta: Vec<f32>,
    delta_in: Vec<f32>,
}

impl Scratch {
    /// Buffers for `layout`.
    pub fn new(layout: &DenseLayout) -> Self {
        let widest = layout.layers.iter().map(|l| l.fan_in.max(l.fan_out)).max();
        let widest = widest.unwrap_or(1);
        Self {
            acts: layout
                .hidden()
                .iter()
                .map(|l| vec![0.0; BLOCK_ROWS * l.fan_out])
                .collect(),
            delta: vec![0.0; BLOCK_ROWS * widest],
            delta_in: vec![0.0; BLOCK_ROWS * widest],
        }
    }
}

/// What every block of one step reads: the layout, the parameters, the hidden weights
/// transposed (for the backward pass), the batch and the instruction set.
pub struct StepInputs<'a> {
    /// Where the parameters sit.
    pub layout: &'a DenseLayout,
    /// The parameters, padded.
    pub params: &'a [f32],
    /// `transposed[l]`: hidden layer l's `w` as `fan_out × fan_in` (empty for the first layer,
    /// whose input gradient is not needed).
    pub transposed: &'a [Vec<f32>],
    /// The batch's inputs (rows × d_in, row-major) and targets.
    pub x: &'a [f32],
    /// The batch's targets.
    pub y: &'a [f32],
    /// The instructions the blocks run with.
    pub isa: InstructionSet,
    /// The loss.
    pub loss: Loss,
}

impl StepInputs<'_> {
    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    /// Groups in the batch.
    pub fn groups(&self) -> usize {
        self.rows().div_ceil(GROUP_ROWS)
    }

    /// Group `group`'s gradient sum (into `grads`, overwritten) and its squared-error sum.
    pub fn group(&self, group: usize, grads: &mut [f32], scratch: &mut Scratch) -> f64 {
        grads.fill(0.0);
        let start = group * GROUP_ROWS;
        let end = (start + GROUP_ROWS).min(self.rows());
        let mut loss = 0.0;
        let mut row = start;
        while row < end {
            let rows = (end - row).min(BLOCK_ROWS);
            loss += self.block(row, rows, grads, scratch);
            row += rows;
        }
        loss
    }

    /// One block's squared errors (summed) and its gradients added to `grads`.
    fn block(&self, row: usize, rows: usize, grads: &mut [f32], scratch: &mut Scratch) -> f64 {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            InstructionSet::Avx512 if self.isa.is_available() => {
                // SAFETY: the CPU has AVX-512F, checked just above.
                unsafe { block_avx512(self, row, rows, grads, scratch) }
            }
            #[cfg(target_arch = "x86_64")]
            InstructionSet::Avx2 if avx2_with_fma() => {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                unsafe { block_avx2(self, row, rows, grads, scratch) }
            }
            _ => block_rows(self, row, rows, grads, scratch),
        }
    }
}

/// [`block_rows`] compiled for AVX-512 (16 lanes, 32 registers); the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(
    inputs: &StepInputs,
    row: usize,
    rows: usize,
    grads: &mut [f32],
    scratch: &mut Scratch,
) -> f64 {
    block_rows(inputs, row, rows, grads, scratch)
}

/// Whether this CPU has AVX2 and FMA (every AVX2 CPU but a few has both; without FMA the
/// products' `mul_add` would be a library call per value).
#[cfg(target_arch = "x86_64")]
fn avx2_with_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// [`block_rows`] compiled for AVX2 with FMA (8 lanes); the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(
    inputs: &StepInputs,
    row: usize,
    rows: usize,
    grads: &mut [f32],
    scratch: &mut Scratch,
) -> f64 {
    block_rows(inputs, row, rows, grads, scratch)
}

/// Rows `row..row + rows` of the batch: forward, squared errors, and the gradients of the mean
/// squared error over the whole batch added to `grads`.
#[inline(always)]
fn block_rows(
    inputs: &StepInputs,
    row: usize,
    rows: usize,
    grads: &mut [f32],
    scratch: &mut Scratch,
) -> f64 {
    let StepInputs {
        layout, params, y, ..
    } = *inputs;
    let d_in = layout.d_in;
    let x = &inputs.x[row * d_in..(row + rows) * d_in];
    let y = &y[row..row + rows];
    let hidden = layout.hidden();
    let activation = layout.activation;
    // Forward through the hidden layers.
    for (l, layer) in hidden.iter().enumerate() {
        let (before, rest) = scratch.acts.split_at_mut(l);
        let input: &[f32] = if l == 0 { x } else { &before[l - 1] };
        let z = &mut rest[0][..rows * layer.fan_out];
        let bias = &params[layer.b..][..layer.fan_out];
        for out in z.chunks_exact_mut(layer.fan_out) {
            out.copy_from_slice(bias);
        }
        let w = &params[layer.w..][..layer.fan_in * layer.fan_out];
        math::gemm_acc(z, input, w, rows, layer.fan_in, layer.fan_out);
        math::activate(activation, z);
    }
    // The output layer, the errors, and its gradients.
    let out = layout.output();
    let last: &[f32] = match scratch.acts.last() {
        Some(acts) => &acts[..rows * out.fan_in],
        None => x,
    };
    let w_out = &params[out.w..][..out.fan_in];
    let b_out = params[out.b];
    let n = inputs.rows() as f32;
    let (one_over_n, two_over_n) = (1.0 / n, 2.0 / n);
    let Loss {
        kind, delta: huber, ..
    } = inputs.loss;
    let mut loss = 0.0f64;
    let delta = &mut scratch.delta[..rows];
    for ((d, a), y) in delta.iter_mut().zip(last.chunks_exact(out.fan_in)).zip(y) {
        let e = math::dot(a, w_out) + b_out - y;
        loss += kind.value(f64::from(e), f64::from(huber));
        *d = kind.gradient(e, huber, one_over_n, two_over_n);
    }
    for (d, a) in delta.iter().zip(last.chunks_exact(out.fan_in)) {
        math::axpy(&mut grads[out.w..][..out.fan_in], *d, a);
        grads[out.b] += d;
    }
    let Some(top) = hidden.last() else {
        return loss;
    };
    // The gradient at the last hidden layer's output.
    let mut delta = std::mem::take(&mut scratch.delta);
    let mut delta_in = std::mem::take(&mut scratch.delta_in);
    for i in (0..rows).rev() {
        let d = delta[i];
        for (o, w) in delta[i * top.fan_out..][..top.fan_out]
            .iter_mut()
            .zip(w_out)
        {
            *o = d * w;
        }
    }
    math::times_derivative(
        activation,
        &mut delta[..rows * top.fan_out],
        &scratch.acts[hidden.len() - 1][..rows * top.fan_out],
    );
    // Backward through the hidden layers.
    for (l, layer) in hidden.iter().enumerate().rev() {
        let input: &[f32] = if l == 0 { x } else { &scratch.acts[l - 1] };
        let d = &delta[..rows * layer.fan_out];
        let g_w = &mut grads[layer.w..][..layer.fan_in * layer.fan_out];
        math::gemm_acc_transposed(g_w, input, d, rows, layer.fan_in, layer.fan_out);
        let g_b = &mut grads[layer.b..][..layer.fan_out];
        for d in d.chunks_exact(layer.fan_out) {
            math::axpy(g_b, 1.0, d);
        }
        if l > 0 {
            let d_in = &mut delta_in[..rows * layer.fan_in];
            d_in.fill(0.0);
            math::gemm_acc(
                d_in,
                d,
                &inputs.transposed[l],
                rows,
                layer.fan_out,
                layer.fan_in,
            );
            math::times_derivative(
                activation,
                d_in,
                &scratch.acts[l - 1][..rows * layer.fan_in],
            );
            std::mem::swap(&mut delta, &mut delta_in);
        }
    }
    scratch.delta = delta;
    scratch.delta_in = delta_in;
    loss
}

/// A dense network's training state on the host: parameters and Adam's moments in the padded
/// layout, and the buffers a step uses.
pub struct DenseStep {
    layout: DenseLayout,
    /// Parameters, padded.
    pub params: Vec<f32>,
    /// Adam's first moments, padded.
    pub m: Vec<f32>,
    /// Adam's second moments, padded.
    pub v: Vec<f32>,
    transposed: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    scratch: Scratch,
    isa: InstructionSet,
    loss: Loss,
    /// Which padded values are weights (not biases): AdamW decays those only.
    is_weight: Vec<bool>,
}

impl DenseStep {
    /// The state for `spec` from its tensors and moments (unpadded, in parameter order).
    pub fn new(
        spec: &ModelSpec,
        params: &[HostTensor],
        moments: Option<(&[HostTensor], &[HostTensor])>,
        loss: Loss,
    ) -> Self {
        let layout = DenseLayout::new(spec);
        let zeros = vec![0.0; layout.len()];
        let (m, v) = match moments {
            Some((m, v)) => (layout.pack(m), layout.pack(v)),
            None => (zeros.clone(), zeros),
        };
        let transposed = layout
            .hidden()
            .iter()
            .enumerate()
            .map(|(l, layer)| match l {
                0 => Vec::new(),
                _ => vec![0.0; layer.fan_in * layer.fan_out],
            })
            .collect();
        Self {
            params: layout.pack(params),
            m,
            v,
            transposed,
            grads: Vec::new(),
            scratch: Scratch::new(&layout),
            isa: InstructionSet::best(),
            loss,
            is_weight: (0..layout.len())
                .map(|i| layout.layers.iter().any(|l| (l.w..l.b).contains(&i)))
                .collect(),
            layout,
        }
    }

    /// The layout.
    pub fn layout(&self) -> &DenseLayout {
        &self.layout
    }

    /// Uses `isa` (the portable code where the CPU lacks it): for tests.
    pub fn set_instruction_set(&mut self, isa: InstructionSet) {
        self.isa = isa;
    }

    /// One step on the batch `x` (rows × d_in, row-major), `y`: returns its mean loss
    /// and, when it is finite, applies Adam's update number `t`. Uses up to `threads` threads.
    pub fn step(
        &mut self,
        x: &[f32],
        y: &[f32],
        optimizer: &Optimizer,
        t: u64,
        threads: usize,
    ) -> f32 {
        let loss = self.loss_and_gradients(x, y, threads);
        if loss.is_finite() {
            self.update(optimizer, t);
        }
        loss
    }

    /// Whether [`Self::step_rows`] can take this model's batches with rows of `stride` floats:
    /// a linear model, rows as a table's lie in memory (see [`linear_rows`]).
    pub fn takes_whole_rows(&self, stride: usize) -> bool {
        self.layout.hidden().is_empty()
            && linear_rows::is_row_stride(stride)
            && self.layout.d_in() < stride
    }

    /// [`Self::step`] for a linear model ([`Self::takes_whole_rows`]) on a batch of whole rows:
    /// `stride` floats a row, its features, its target, zeros (see [`linear_rows`]).
    pub fn step_rows(
        &mut self,
        rows: BatchRows<'_>,
        stride: usize,
        optimizer: &Optimizer,
        t: u64,
    ) -> f32 {
        debug_assert!(self.takes_whole_rows(stride));
        let out = self.layout.output();
        let d = out.fan_in;
        let n = rows.len(stride);
        if self.grads.is_empty() {
            self.grads.push(vec![0.0; self.layout.len()]);
        }
        let grads = &mut self.grads[0];
        grads.fill(0.0);
        let w = &self.params[out.w..][..d];
        let b = self.params[out.b];
        let grad = &mut grads[out.w..][..d];
        let sums = linear_rows::row_sums(self.isa, rows, stride, w, b, self.loss, grad);
        grads[out.b] = sums.bias;
        let loss = (sums.loss / n as f64) as f32;
        if loss.is_finite() {
            self.update(optimizer, t);
        }
        loss
    }

    /// The penalty's gradient added to `self.grads[0]`, then the optimizer's update number `t`.
    fn update(&mut self, optimizer: &Optimizer, t: u64) {
        if self.loss.l2 != 0.0 {
            // The penalty's gradient 2λw, on the weights only (padding stays 0).
            let two_l2 = 2.0 * self.loss.l2;
            for layer in &self.layout.layers {
                let w = layer.w..layer.w + layer.fan_in * layer.fan_out;
                for (g, p) in self.grads[0][w.clone()].iter_mut().zip(&self.params[w]) {
                    *g += two_l2 * p;
                }
            }
        }
        let grads = &self.grads[0];
        let weights = &self.is_weight;
        if optimizer.kind == crate::optim::OptimizerKind::Adam {
            // Adam (any schedule) in the vectorised loop.
            let adam = Adam {
                lr: optimizer.lr_at(t),
                ..optimizer.adam
            };
            adam_update(
                self.isa,
                &adam,
                t,
                &mut self.params,
                grads,
                &mut self.m,
                &mut self.v,
            );
        } else {
            let lr = optimizer.lr_at(t);
            let (pow1, pow2) = optimizer.powers(t);
            for i in 0..self.params.len() {
                let (p, s1, s2) = optimizer.update_scalar(
                    self.params[i],
                    grads[i],
                    self.m[i],
                    self.v[i],
                    lr,
                    pow1,
                    pow2,
                    weights[i],
                );
                (self.params[i], self.m[i], self.v[i]) = (p, s1, s2);
            }
        }
    }

    /// The batch's mean loss, and its gradient (padded) in `self.grads[0]`.
    fn loss_and_gradients(&mut self, x: &[f32], y: &[f32], threads: usize) -> f32 {
        for (l, layer) in self.layout.hidden().iter().enumerate().skip(1) {
            let w = &self.params[layer.w..][..layer.fan_in * layer.fan_out];
            math::transpose(&mut self.transposed[l], w, layer.fan_in, layer.fan_out);
        }
        let inputs = StepInputs {
            layout: &self.layout,
            params: &self.params,
            transposed: &self.transposed,
            x,
            y,
            isa: self.isa,
            loss: self.loss,
        };
        let groups = inputs.groups();
        if self.grads.len() < groups {
            self.grads
                .resize_with(groups, || vec![0.0; self.layout.len()]);
        }
        let grads = &mut self.grads[..groups];
        let loss = if threads > 1 && groups > 1 {
            team::run_groups(&inputs, grads, &mut self.scratch, threads)
        } else {
            let mut loss = 0.0;
            for (group, grads) in grads.iter_mut().enumerate() {
                loss += inputs.group(group, grads, &mut self.scratch);
            }
            loss
        };
        let (first, rest) = grads.split_first_mut().expect("a group");
        for other in rest.iter() {
            for (g, o) in first.iter_mut().zip(other) {
                *g += o;
            }
        }
        (loss / y.len() as f64) as f32
    }
}

/// Adam's update number `t` of every parameter, with the instructions `isa` names (the same
/// bits with any).
fn adam_update(
    isa: InstructionSet,
    adam: &Adam,
    t: u64,
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx512 if isa.is_available() => {
            // SAFETY: the CPU has AVX-512F, checked just above.
            unsafe { adam_avx512(adam, t, params, grads, m, v) }
        }
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx2 if isa.is_available() => {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { adam_avx2(adam, t, params, grads, m, v) }
        }
        _ => adam_lanes(adam, t, params, grads, m, v),
    }
}

/// [`adam_lanes`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn adam_avx512(adam: &Adam, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_lanes(adam, t, p, g, m, v)
}

/// [`adam_lanes`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_avx2(adam: &Adam, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_lanes(adam, t, p, g, m, v)
}

/// Adam's update number `t` of every parameter: the arithmetic of [`Adam::update_scalar`], with
/// the bias corrections computed once.
#[inline(always)]
fn adam_lanes(
    adam: &Adam,
    t: u64,
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let c1 = 1.0 - pow_by_squaring(adam.beta1, t);
    let c2 = 1.0 - pow_by_squaring(adam.beta2, t);
    for (((p, g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
        *m = adam.beta1 * *m + (1.0 - adam.beta1) * g;
        *v = adam.beta2 * *v + (1.0 - adam.beta2) * (g * g);
        let m_hat = *m / c1;
        let v_hat = *v / c2;
        *p -= adam.lr * (m_hat / (v_hat.sqrt() + adam.epsilon));
    }
}

#[cfg(test)]
mod tests;
