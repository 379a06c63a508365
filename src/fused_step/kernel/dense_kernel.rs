//! The dense network's fused step on the GPU: ONE workgroup runs a chunk of steps in one
//! dispatch — the batch (drawn with the line's Philox twin, or gathered from a table on the
//! device), forward layer by layer, the errors, backward layer by layer, every parameter's
//! gradient and Adam — with the units sharing each phase's outputs (a sample's neuron, a
//! parameter) and a storage barrier between phases. Activations and gradients at the layers'
//! outputs live in a scratch buffer of the device; parameters and Adam's moments in the state
//! buffer, each updated by the one unit that owns it.
//!
//! Sums run in a fixed order (over a neuron's inputs, over the batch's samples), so a run is
//! reproducible; they are not the CPU step's order, and the GPU's `exp` and `sin` are not the
//! host's, so CPU and GPU agree to rounding, not bit for bit.

use burn_cubecl::cubecl;
use cubecl::{cube, prelude::*};

use super::kernels::{adam_update, is_finite, line_pair, pow_by_squaring};

/// Fields per layer in the layout buffer: fan_in, fan_out, offset of w, offset of b, and the
/// layer's input's offset in the activations (in rows of the batch).
pub const LAYOUT_FIELDS: usize = 5;

/// The data source: the synthetic line.
pub const SOURCE_LINE: u32 = 0;
/// The data source: the sine task (the line's x, y = sin x).
pub const SOURCE_SINE: u32 = 1;
/// The data source: a table's rows on the device.
pub const SOURCE_TABLE: u32 = 2;

/// The loss: mean absolute error (MSE is 0).
pub const LOSS_MAE: u32 = 1;
/// The loss: Huber's.
pub const LOSS_HUBER: u32 = 2;

/// The activation: tanh (0) or relu (1).
#[cube]
pub fn activate(z: f32, relu: u32) -> f32 {
    let mut out = z;
    if relu == 1u32 {
        if z < 0.0f32 {
            out = 0.0f32;
        }
    } else {
        // tanh |z| = (1 − e) / (1 + e), e = exp(−2|z|); NaN stays NaN.
        let e = f32::exp(-2.0f32 * f32::abs(z));
        let t = (1.0f32 - e) / (1.0f32 + e);
        out = t;
        if z < 0.0f32 {
            out = -t;
        }
    }
    out
}

/// The activation's derivative at an output `a`.
#[cube]
pub fn derivative(a: f32, relu: u32) -> f32 {
    let mut d = 1.0f32 - a * a;
    if relu == 1u32 {
        d = 0.0f32;
        if a > 0.0f32 {
            d = 1.0f32;
        }
    }
    d
}

/// A chunk of `steps` steps of a dense network in ONE workgroup.
///
/// `state_in` = params, m, v (`n_params` each, in the model's parameter order, unpadded);
/// `state` (out) = the same, then `[last_loss, steps_run, bad_loss, stopped]`. `layout` holds
/// [`LAYOUT_FIELDS`] values per layer. `scratch` holds `batch × width_sum` activations (the
/// input, then each layer's outputs), as many gradients, and `batch` targets. For a table,
/// `data` is its training rows (`table_rows × d_in`) then their targets, `order` the epoch's
/// row order, and the chunk lies within one epoch, its first step the epoch's minibatch number
/// `epoch_index`; for the synthetic sources both are unused.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn dense_chunk_kernel(
    state_in: &Tensor<f32>,
    state: &mut Tensor<f32>,
    layout: &Tensor<f32>,
    data: &Tensor<f32>,
    order: &Tensor<f32>,
    scratch: &mut Tensor<f32>,
    source: u32,
    layers: u32,
    d_in: u32,
    width_sum: u32,
    n_params: u32,
    relu: u32,
    loss_kind: u32,
    huber: f32,
    l2: f32,
    k0: u32,
    k1: u32,
    first_lo: u32,
    first_hi: u32,
    upd_lo: u32,
    upd_hi: u32,
    steps: u32,
    batch: u32,
    table_rows: u32,
    epoch_index: u32,
    x_low: f32,
    x_span: f32,
    true_w: f32,
    true_b: f32,
    noise: f32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    #[comptime] units: usize,
) {
    let u = UNIT_POS;
    let stride = CUBE_DIM;
    let mut red = Shared::<[f32]>::new_slice(units);
    // [stopped]
    let mut ctl = Shared::<[f32]>::new_slice(1usize);
    let np = n_params as usize;
    // The state to the output buffer, where the chunk updates it in place.
    let mut i = u;
    while i < 3u32 * n_params {
        state[i as usize] = state_in[i as usize];
        i += stride;
    }
    if u == 0u32 {
        ctl[0] = 0.0f32;
    }
    let deltas = batch * width_sum;
    let targets = 2u32 * batch * width_sum;
    let mut last_loss = 0.0f32;
    let mut bad_loss = 0.0f32;
    let mut run = 0u32;
    sync_storage();

    for k in 0..steps {
        let step_lo = first_lo + k;
        let mut step_hi = first_hi;
        if step_lo < first_lo {
            step_hi += 1u32;
        }
        // Rows this step: the batch, or a table's shorter last minibatch; none once stopped.
        let mut nb = batch;
        let mut start = 0u32;
        if source == SOURCE_TABLE {
            // The step's minibatch of its epoch (the chunk lies within one epoch).
            start = (epoch_index + k) * batch;
            nb = table_rows - start;
            if nb > batch {
                nb = batch;
            }
        }
        if ctl[0] != 0.0f32 {
            nb = 0u32;
        }
        // The batch: inputs to the activations' first rows, targets after the gradients.
        if source == SOURCE_TABLE {
            let mut idx = u;
            while idx < nb * d_in {
                let s = idx / d_in;
                let c = idx % d_in;
                let row = u32::cast_from(order[(start + s) as usize]);
                scratch[idx as usize] = data[(row * d_in + c) as usize];
                idx += stride;
            }
            let mut s = u;
            while s < nb {
                let row = u32::cast_from(order[(start + s) as usize]);
                scratch[(targets + s) as usize] = data[(table_rows * d_in + row) as usize];
                s += stride;
            }
        } else {
            let mut j = u;
            while 2u32 * j < nb {
                let p = line_pair(
                    k0, k1, step_lo, step_hi, j, x_low, x_span, true_w, true_b, noise,
                );
                let mut y0 = p.y0;
                let mut y1 = p.y1;
                if source == SOURCE_SINE {
                    y0 = f32::sin(p.x0);
                    y1 = f32::sin(p.x1);
                }
                scratch[(2u32 * j) as usize] = p.x0;
                scratch[(targets + 2u32 * j) as usize] = y0;
                if 2u32 * j + 1u32 < nb {
                    scratch[(2u32 * j + 1u32) as usize] = p.x1;
                    scratch[(targets + 2u32 * j + 1u32) as usize] = y1;
                }
                j += stride;
            }
        }
        sync_storage();

        // Forward: each unit takes (sample, neuron) outputs.
        for l in 0..layers {
            let base = (l * 5u32) as usize;
            let fan_in = u32::cast_from(layout[base]);
            let fan_out = u32::cast_from(layout[base + 1]);
            let w_off = u32::cast_from(layout[base + 2]);
            let b_off = u32::cast_from(layout[base + 3]);
            let a_in = u32::cast_from(layout[base + 4]) * batch;
            let a_out = a_in + batch * fan_in;
            let mut idx = u;
            while idx < nb * fan_out {
                let s = idx / fan_out;
                let j = idx % fan_out;
                let mut z = state[(b_off + j) as usize];
                for c in 0..fan_in {
                    z += scratch[(a_in + s * fan_in + c) as usize]
                        * state[(w_off + c * fan_out + j) as usize];
                }
                if l + 1u32 < layers {
                    z = activate(z, relu);
                }
                scratch[(a_out + idx) as usize] = z;
                idx += stride;
            }
            sync_storage();
        }

        // The errors at the output (one column), their gradient and the loss.
        let last = ((layers - 1u32) * 5u32) as usize;
        let out_at = (u32::cast_from(layout[last + 4]) + u32::cast_from(layout[last])) * batch;
        let mut n = f32::cast_from(nb);
        if nb == 0u32 {
            n = 1.0f32;
        }
        let mut sq = 0.0f32;
        let mut s = u;
        while s < nb {
            let e = scratch[(out_at + s) as usize] - scratch[(targets + s) as usize];
            let a = f32::abs(e);
            // The loss and its derivative (twins of `LossKind::value` and `::gradient`).
            let mut value = e * e;
            let mut grad = 2.0f32 * e / n;
            if loss_kind == LOSS_MAE {
                value = a;
                grad = 0.0f32;
                if e > 0.0f32 {
                    grad = 1.0f32 / n;
                }
                if e < 0.0f32 {
                    grad = -1.0f32 / n;
                }
            }
            if loss_kind == LOSS_HUBER {
                value = 0.5f32 * e * e;
                let mut c = e;
                if a > huber {
                    value = huber * (a - 0.5f32 * huber);
                    c = huber;
                    if e < 0.0f32 {
                        c = -huber;
                    }
                }
                grad = c / n;
            }
            sq += value;
            scratch[(deltas + out_at + s) as usize] = grad;
            s += stride;
        }
        red[u as usize] = sq;
        sync_cube();
        let mut half = CUBE_DIM / 2u32;
        while half > 0u32 {
            if u < half {
                red[u as usize] += red[(u + half) as usize];
            }
            sync_cube();
            half /= 2u32;
        }
        let loss = red[0] / n;
        let live = nb > 0u32;
        let finite = is_finite(loss);
        sync_storage();

        // Backward: the gradient at each hidden layer's outputs, from the layer above.
        let mut l = layers - 1u32;
        while l > 0u32 && live && finite {
            let base = (l * 5u32) as usize;
            let fan_in = u32::cast_from(layout[base]);
            let fan_out = u32::cast_from(layout[base + 1]);
            let w_off = u32::cast_from(layout[base + 2]);
            let a_in = u32::cast_from(layout[base + 4]) * batch;
            let a_out = a_in + batch * fan_in;
            let mut idx = u;
            while idx < nb * fan_in {
                let s = idx / fan_in;
                let c = idx % fan_in;
                let mut g = 0.0f32;
                for j in 0..fan_out {
                    g += scratch[(deltas + a_out + s * fan_out + j) as usize]
                        * state[(w_off + c * fan_out + j) as usize];
                }
                let a = scratch[(a_in + idx) as usize];
                scratch[(deltas + a_in + idx) as usize] = g * derivative(a, relu);
                idx += stride;
            }
            sync_storage();
            l -= 1u32;
        }

        // Every parameter's gradient over the batch, then Adam, by the unit that owns it.
        if live && finite {
            let t_lo = upd_lo + run + 1u32;
            let mut t_hi = upd_hi;
            if t_lo < upd_lo {
                t_hi += 1u32;
            }
            let pow1 = pow_by_squaring(beta1, t_lo, t_hi);
            let pow2 = pow_by_squaring(beta2, t_lo, t_hi);
            let mut p = u;
            while p < n_params {
                // The layer the parameter belongs to.
                let mut layer = 0u32;
                for q in 1..layers {
                    if p >= u32::cast_from(layout[(q * 5u32 + 2u32) as usize]) {
                        layer = q;
                    }
                }
                let base = (layer * 5u32) as usize;
                let fan_in = u32::cast_from(layout[base]);
                let fan_out = u32::cast_from(layout[base + 1]);
                let w_off = u32::cast_from(layout[base + 2]);
                let b_off = u32::cast_from(layout[base + 3]);
                let a_in = u32::cast_from(layout[base + 4]) * batch;
                let d_out = deltas + a_in + batch * fan_in;
                let mut g = 0.0f32;
                if p >= b_off {
                    let j = p - b_off;
                    for s in 0..nb {
                        g += scratch[(d_out + s * fan_out + j) as usize];
                    }
                } else {
                    let c = (p - w_off) / fan_out;
                    let j = (p - w_off) % fan_out;
                    for s in 0..nb {
                        g += scratch[(a_in + s * fan_in + c) as usize]
                            * scratch[(d_out + s * fan_out + j) as usize];
                    }
                    // The ridge penalty's gradient, on the weights only.
                    g += 2.0f32 * l2 * state[p as usize];
                }
                let pi = p as usize;
                let o = adam_update(
                    state[pi],
                    g,
                    state[np + pi],
                    state[2 * np + pi],
                    lr,
                    beta1,
                    beta2,
                    epsilon,
                    pow1,
                    pow2,
                );
                state[pi] = o.p;
                state[np + pi] = o.m;
                state[2 * np + pi] = o.v;
                p += stride;
            }
            last_loss = loss;
            run += 1u32;
        }
        if live && !finite && u == 0u32 {
            bad_loss = loss;
            ctl[0] = 1.0f32;
        }
        sync_storage();
    }

    if u == 0u32 {
        state[3 * np] = last_loss;
        state[3 * np + 1] = f32::cast_from(run);
        state[3 * np + 2] = bad_loss;
        state[3 * np + 3] = ctl[0];
    }
}
