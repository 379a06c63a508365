//! The dense network's fused step on the GPU, in phases — the batch (drawn with the line's
//! Philox twin, or gathered from a table on the device), forward layer by layer, the errors,
//! backward layer by layer, every parameter's gradient, Adam — with the units sharing each
//! phase's outputs (a sample's neuron, a parameter) and a storage barrier between phases.
//! Activations and gradients at the layers' outputs live in a scratch buffer of the device;
//! parameters and Adam's moments in the state buffer, each updated by the one unit that owns
//! it. Each phase works on a slice of the batch's samples, so the phases serve two layouts:
//!
//! - [`dense_chunk_kernel`]: ONE workgroup runs a whole chunk of steps in one dispatch (small
//!   batches: no dispatch per step at all);
//! - [`dense_grad_kernel`] then [`dense_adam_kernel`]: two dispatches per step for large
//!   batches — every workgroup takes a slice of the batch and writes its slice's gradient sums
//!   and loss sum, then the parameters are shared among workgroups, each summing its
//!   parameters' partials over the slices in order and applying Adam.
//!
//! Sums run in a fixed order (over a neuron's inputs, over the batch's samples, over the
//! slices), so a run is reproducible; they are not the CPU step's order, the two layouts'
//! orders differ, and the GPU's `exp` and `sin` are not the host's, so CPU and GPU agree to
//! rounding, not bit for bit.

// In `#[cube]` code a `Copy` struct is still cloned where it is used twice (the macro's expanded
// form moves it), and `div_ceil` is written out (the kernel language lacks it).
#![allow(clippy::clone_on_copy, clippy::manual_div_ceil)]

use burn_cubecl::cubecl;
use cubecl::{cube, prelude::*};

use super::kernels::{adam_update, is_finite, line_pair, pow_by_squaring};

/// Fields per layer in the layout buffer: fan_in, fan_out, offset of w, offset of b, and the
/// layer's input's offset in the activations (in rows of the batch).
pub const LAYOUT_FIELDS: usize = 5;

/// Values after the state in a chunk's output: the last loss, the steps run, the loss that
/// was not finite, whether the chunk stopped for it, and whether every loop ran to its end
/// (1) or lavapipe's loop limit cut one short (0; see [`loops_complete`]).
pub const TAIL: usize = 5;

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

/// Scratch positions of a step: where the gradients (`deltas`) and the targets start.
#[derive(CubeType, Clone, Copy)]
#[expand(derive(Clone))]
pub struct Scratch {
    /// Offset of the gradients at each layer's outputs.
    pub deltas: u32,
    /// Offset of the batch's targets.
    pub targets: u32,
}

/// The samples of a step that one workgroup works on: `[begin, end)` of `rows` in the batch.
#[derive(CubeType, Clone, Copy)]
#[expand(derive(Clone))]
pub struct Slice {
    /// First sample.
    pub begin: u32,
    /// One past the last sample.
    pub end: u32,
    /// Samples in the whole step (the loss's divisor).
    pub rows: u32,
}

/// The data of a step: its source and where it starts.
#[derive(CubeType, Clone, Copy)]
#[expand(derive(Clone))]
pub struct StepData {
    /// [`SOURCE_LINE`], [`SOURCE_SINE`] or [`SOURCE_TABLE`].
    pub source: u32,
    /// Features.
    pub d_in: u32,
    /// A table's training rows.
    pub table_rows: u32,
    /// A table's step: its first position in the epoch's order.
    pub start: u32,
    /// A table's step: its first position in the order buffer (which may hold several
    /// epochs' orders, one after the other).
    pub order_at: u32,
    /// The synthetic sources' global step, low and high words.
    pub step_lo: u32,
    pub step_hi: u32,
}

/// The line's stream (the synthetic sources).
#[derive(CubeType, Clone, Copy)]
#[expand(derive(Clone))]
pub struct Stream {
    pub k0: u32,
    pub k1: u32,
    pub x_low: f32,
    pub x_span: f32,
    pub true_w: f32,
    pub true_b: f32,
    pub noise: f32,
}

/// The slice's inputs to the activations' first rows, its targets after the gradients.
/// A slice of a synthetic source starts at an even sample (samples come in Philox pairs).
#[cube]
pub fn load_batch(
    scratch: &mut Tensor<f32>,
    data: &Tensor<f32>,
    order: &Tensor<f32>,
    at: Scratch,
    step: StepData,
    stream: Stream,
    slice: Slice,
) {
    let u = UNIT_POS;
    let stride = CUBE_DIM;
    let d_in = step.d_in;
    if step.source == SOURCE_TABLE {
        let mut idx = slice.begin * d_in + u;
        while idx < slice.end * d_in {
            let s = idx / d_in;
            let c = idx % d_in;
            let row = u32::cast_from(order[(step.order_at + s) as usize]);
            scratch[idx as usize] = data[(row * d_in + c) as usize];
            idx += stride;
        }
        let mut s = slice.begin + u;
        while s < slice.end {
            let row = u32::cast_from(order[(step.order_at + s) as usize]);
            scratch[(at.targets + s) as usize] = data[(step.table_rows * d_in + row) as usize];
            s += stride;
        }
    } else {
        let mut j = slice.begin / 2u32 + u;
        while 2u32 * j < slice.end {
            let p = line_pair(
                stream.k0,
                stream.k1,
                step.step_lo,
                step.step_hi,
                j,
                stream.x_low,
                stream.x_span,
                stream.true_w,
                stream.true_b,
                stream.noise,
            );
            let mut y0 = p.y0;
            let mut y1 = p.y1;
            if step.source == SOURCE_SINE {
                y0 = f32::sin(p.x0);
                y1 = f32::sin(p.x1);
            }
            scratch[(2u32 * j) as usize] = p.x0;
            scratch[(at.targets + 2u32 * j) as usize] = y0;
            if 2u32 * j + 1u32 < slice.end {
                scratch[(2u32 * j + 1u32) as usize] = p.x1;
                scratch[(at.targets + 2u32 * j + 1u32) as usize] = y1;
            }
            j += stride;
        }
    }
    sync_storage();
}

/// Rows and columns of the register tile each unit computes: [`TILE`] × [`TILE`] outputs.
pub const TILE: u32 = 4;

/// Accumulates a [`TILE`] × [`TILE`] tile of products into `acc` (row-major): for each `m` in
/// `0..m_len`, in order, `acc[i·TILE + k] += a[rows[i] + m·a_step] · b[cols[k] + m·b_step]`.
/// Each value loaded serves [`TILE`] multiply-adds (a unit per output loads two per one).
/// `rows` and `cols` are valid indices (a tile's rows and columns past the edge repeat the last
/// one, and their outputs are not stored).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn tile_products(
    a: &mut Tensor<f32>,
    b: &mut Tensor<f32>,
    rows: &Array<u32>,
    cols: &Array<u32>,
    a_step: u32,
    b_step: u32,
    m_len: u32,
    acc: &mut Array<f32>,
) {
    let mut av = Array::<f32>::new(4usize);
    let mut bv = Array::<f32>::new(4usize);
    for m in 0..m_len {
        #[unroll]
        for i in 0..4u32 {
            av[i as usize] = a[(rows[i as usize] + m * a_step) as usize];
            bv[i as usize] = b[(cols[i as usize] + m * b_step) as usize];
        }
        accumulate_outer(&av, &bv, acc);
    }
}

/// [`tile_products`] with both factors in one tensor (the weights' gradients: activations
/// times gradients, both in the scratch).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn tile_products_within(
    t: &mut Tensor<f32>,
    rows: &Array<u32>,
    cols: &Array<u32>,
    a_step: u32,
    b_step: u32,
    m_len: u32,
    acc: &mut Array<f32>,
) {
    let mut av = Array::<f32>::new(4usize);
    let mut bv = Array::<f32>::new(4usize);
    for m in 0..m_len {
        #[unroll]
        for i in 0..4u32 {
            av[i as usize] = t[(rows[i as usize] + m * a_step) as usize];
            bv[i as usize] = t[(cols[i as usize] + m * b_step) as usize];
        }
        accumulate_outer(&av, &bv, acc);
    }
}

/// `acc[i·TILE + k] += av[i] · bv[k]`.
#[cube]
pub fn accumulate_outer(av: &Array<f32>, bv: &Array<f32>, acc: &mut Array<f32>) {
    #[unroll]
    for i in 0..4u32 {
        #[unroll]
        for k in 0..4u32 {
            acc[(i * 4u32 + k) as usize] += av[i as usize] * bv[k as usize];
        }
    }
}

/// The smaller of `v` and `limit − 1`: a tile's index past an edge reads the last valid one.
#[cube]
pub fn clamp_to(v: u32, limit: u32) -> u32 {
    let mut out = v;
    if v >= limit {
        out = limit - 1u32;
    }
    out
}

/// Forward: each unit takes [`TILE`] × [`TILE`] tiles of (sample, neuron) outputs of the
/// slice, layer by layer; each output is its bias plus its inputs' products in input order.
#[cube]
pub fn forward(
    scratch: &mut Tensor<f32>,
    state: &mut Tensor<f32>,
    layout: &Tensor<f32>,
    layers: u32,
    relu: u32,
    batch: u32,
    slice: Slice,
) {
    let u = UNIT_POS;
    let stride = CUBE_DIM;
    let mut rows = Array::<u32>::new(4usize);
    let mut cols = Array::<u32>::new(4usize);
    let mut acc = Array::<f32>::new(16usize);
    let samples = slice.end - slice.begin;
    for l in 0..layers {
        let base = (l * 5u32) as usize;
        let fan_in = u32::cast_from(layout[base]);
        let fan_out = u32::cast_from(layout[base + 1]);
        let w_off = u32::cast_from(layout[base + 2]);
        let b_off = u32::cast_from(layout[base + 3]);
        let a_in = u32::cast_from(layout[base + 4]) * batch;
        let a_out = a_in + batch * fan_in;
        let tiles_k = (fan_out + 3u32) / 4u32;
        let tiles = ((samples + 3u32) / 4u32) * tiles_k;
        let mut t = u;
        while t < tiles {
            let s0 = slice.begin + (t / tiles_k) * 4u32;
            let j0 = (t % tiles_k) * 4u32;
            #[unroll]
            for i in 0..4u32 {
                rows[i as usize] = a_in + clamp_to(s0 + i, slice.end) * fan_in;
                cols[i as usize] = w_off + clamp_to(j0 + i, fan_out);
            }
            #[unroll]
            for i in 0..4u32 {
                #[unroll]
                for k in 0..4u32 {
                    acc[(i * 4u32 + k) as usize] =
                        state[(b_off + clamp_to(j0 + k, fan_out)) as usize];
                }
            }
            tile_products(
                scratch, state, &rows, &cols, 1u32, fan_out, fan_in, &mut acc,
            );
            #[unroll]
            for i in 0..4u32 {
                #[unroll]
                for k in 0..4u32 {
                    if s0 + i < slice.end && j0 + k < fan_out {
                        let mut z = acc[(i * 4u32 + k) as usize];
                        if l + 1u32 < layers {
                            z = activate(z, relu);
                        }
                        scratch[(a_out + (s0 + i) * fan_out + j0 + k) as usize] = z;
                    }
                }
            }
            t += stride;
        }
        sync_storage();
    }
}

/// The errors at the output (one column) of the slice's samples: their gradients into the
/// scratch, and the slice's loss sum, the same in every unit of the workgroup.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn output_errors(
    scratch: &mut Tensor<f32>,
    layout: &Tensor<f32>,
    red: &mut Shared<[f32]>,
    layers: u32,
    batch: u32,
    loss_kind: u32,
    huber: f32,
    at: Scratch,
    slice: Slice,
) -> f32 {
    let u = UNIT_POS;
    let stride = CUBE_DIM;
    let last = ((layers - 1u32) * 5u32) as usize;
    let out_at = (u32::cast_from(layout[last + 4]) + u32::cast_from(layout[last])) * batch;
    let mut n = f32::cast_from(slice.rows);
    if slice.rows == 0u32 {
        n = 1.0f32;
    }
    let mut sum = 0.0f32;
    let mut s = slice.begin + u;
    while s < slice.end {
        let e = scratch[(out_at + s) as usize] - scratch[(at.targets + s) as usize];
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
        sum += value;
        scratch[(at.deltas + out_at + s) as usize] = grad;
        s += stride;
    }
    let total = tree_sum(red, sum);
    sync_storage();
    total
}

/// The sum of every unit's `value` (a shared-memory tree of `CUBE_DIM`, a power of two), the
/// same in every unit. Every unit must call it (it holds barriers).
#[cube]
pub fn tree_sum(red: &mut Shared<[f32]>, value: f32) -> f32 {
    let u = UNIT_POS;
    red[u as usize] = value;
    sync_cube();
    let mut half = CUBE_DIM / 2u32;
    while half > 0u32 {
        if u < half {
            red[u as usize] += red[(u + half) as usize];
        }
        sync_cube();
        half /= 2u32;
    }
    let total = red[0];
    sync_cube();
    total
}

/// Backward: the gradient at each hidden layer's outputs of the slice, from the layer above,
/// in [`TILE`] × [`TILE`] tiles of (sample, input): the products over the layer's outputs in
/// order, times the activation's derivative.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn backward(
    scratch: &mut Tensor<f32>,
    state: &mut Tensor<f32>,
    layout: &Tensor<f32>,
    layers: u32,
    relu: u32,
    batch: u32,
    at: Scratch,
    slice: Slice,
) {
    let u = UNIT_POS;
    let stride = CUBE_DIM;
    let mut rows = Array::<u32>::new(4usize);
    let mut cols = Array::<u32>::new(4usize);
    let mut acc = Array::<f32>::new(16usize);
    let samples = slice.end - slice.begin;
    let mut l = layers - 1u32;
    while l > 0u32 {
        let base = (l * 5u32) as usize;
        let fan_in = u32::cast_from(layout[base]);
        let fan_out = u32::cast_from(layout[base + 1]);
        let w_off = u32::cast_from(layout[base + 2]);
        let a_in = u32::cast_from(layout[base + 4]) * batch;
        let a_out = a_in + batch * fan_in;
        let tiles_k = (fan_in + 3u32) / 4u32;
        let tiles = ((samples + 3u32) / 4u32) * tiles_k;
        let mut t = u;
        while t < tiles {
            let s0 = slice.begin + (t / tiles_k) * 4u32;
            let c0 = (t % tiles_k) * 4u32;
            #[unroll]
            for i in 0..4u32 {
                rows[i as usize] = at.deltas + a_out + clamp_to(s0 + i, slice.end) * fan_out;
                cols[i as usize] = w_off + clamp_to(c0 + i, fan_in) * fan_out;
            }
            #[unroll]
            for i in 0..16u32 {
                acc[i as usize] = 0.0f32;
            }
            tile_products(scratch, state, &rows, &cols, 1u32, 1u32, fan_out, &mut acc);
            #[unroll]
            for i in 0..4u32 {
                #[unroll]
                for k in 0..4u32 {
                    if s0 + i < slice.end && c0 + k < fan_in {
                        let idx = a_in + (s0 + i) * fan_in + c0 + k;
                        let a = scratch[idx as usize];
                        scratch[(at.deltas + idx) as usize] =
                            acc[(i * 4u32 + k) as usize] * derivative(a, relu);
                    }
                }
            }
            t += stride;
        }
        sync_storage();
        l -= 1u32;
    }
}

/// The layer parameter `p` belongs to.
#[cube]
pub fn layer_of(p: u32, layout: &Tensor<f32>, layers: u32) -> u32 {
    let mut layer = 0u32;
    for q in 1..layers {
        if p >= u32::cast_from(layout[(q * 5u32 + 2u32) as usize]) {
            layer = q;
        }
    }
    layer
}

/// Whether parameter `p` is a weight (not a bias): the ridge penalty's business.
#[cube]
pub fn is_weight(p: u32, layout: &Tensor<f32>, layers: u32) -> bool {
    let layer = layer_of(p, layout, layers);
    p < u32::cast_from(layout[(layer * 5u32 + 3u32) as usize])
}

/// Every parameter's gradient summed over the slice's samples, in sample order (without the
/// ridge penalty), into `dest[dest_base + p]`: each weight matrix in [`TILE`] × [`TILE`] tiles
/// of (input, output), the biases one per unit.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn gradients(
    dest: &mut Tensor<f32>,
    dest_base: u32,
    scratch: &mut Tensor<f32>,
    layout: &Tensor<f32>,
    layers: u32,
    batch: u32,
    at: Scratch,
    slice: Slice,
) {
    let u = UNIT_POS;
    let stride = CUBE_DIM;
    let mut rows = Array::<u32>::new(4usize);
    let mut cols = Array::<u32>::new(4usize);
    let mut acc = Array::<f32>::new(16usize);
    let samples = slice.end - slice.begin;
    for l in 0..layers {
        let base = (l * 5u32) as usize;
        let fan_in = u32::cast_from(layout[base]);
        let fan_out = u32::cast_from(layout[base + 1]);
        let w_off = u32::cast_from(layout[base + 2]);
        let b_off = u32::cast_from(layout[base + 3]);
        let a_in = u32::cast_from(layout[base + 4]) * batch;
        let d_out = at.deltas + a_in + batch * fan_in;
        let tiles_k = (fan_out + 3u32) / 4u32;
        let tiles = ((fan_in + 3u32) / 4u32) * tiles_k;
        let mut t = u;
        while t < tiles {
            let c0 = (t / tiles_k) * 4u32;
            let j0 = (t % tiles_k) * 4u32;
            #[unroll]
            for i in 0..4u32 {
                rows[i as usize] = a_in + slice.begin * fan_in + clamp_to(c0 + i, fan_in);
                cols[i as usize] = d_out + slice.begin * fan_out + clamp_to(j0 + i, fan_out);
            }
            #[unroll]
            for i in 0..16u32 {
                acc[i as usize] = 0.0f32;
            }
            tile_products_within(scratch, &rows, &cols, fan_in, fan_out, samples, &mut acc);
            #[unroll]
            for i in 0..4u32 {
                #[unroll]
                for k in 0..4u32 {
                    if c0 + i < fan_in && j0 + k < fan_out {
                        let p = w_off + (c0 + i) * fan_out + j0 + k;
                        dest[(dest_base + p) as usize] = acc[(i * 4u32 + k) as usize];
                    }
                }
            }
            t += stride;
        }
        let mut j = u;
        while j < fan_out {
            let mut g = 0.0f32;
            for s in slice.begin..slice.end {
                g += scratch[(d_out + s * fan_out + j) as usize];
            }
            dest[(dest_base + b_off + j) as usize] = g;
            j += stride;
        }
    }
}

/// Adam's update of parameter `p` (params, m, v at `p`, `np + p`, `2np + p` of `state`).
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn adam_in_place(
    state: &mut Tensor<f32>,
    p: u32,
    np: u32,
    g: f32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    pow1: f32,
    pow2: f32,
) {
    let pi = p as usize;
    let npu = np as usize;
    let o = adam_update(
        state[pi],
        g,
        state[npu + pi],
        state[2 * npu + pi],
        lr,
        beta1,
        beta2,
        epsilon,
        pow1,
        pow2,
    );
    state[pi] = o.p;
    state[npu + pi] = o.m;
    state[2 * npu + pi] = o.v;
}

/// The rows of a step: the batch, or a table's shorter last minibatch of its epoch.
#[cube]
pub fn step_rows(source: u32, batch: u32, table_rows: u32, start: u32) -> u32 {
    let mut nb = batch;
    if source == SOURCE_TABLE {
        nb = table_rows - start;
        if nb > batch {
            nb = batch;
        }
    }
    nb
}

/// Whether this unit's loops all ran to their end: lavapipe ends every loop of an invocation
/// at once after 65,535 iterations in all, so a last loop of `trips` (a runtime value, not
/// unrolled) passes runs fewer times when the limit was reached before it or in it. The host
/// keeps a chunk well below the limit by its estimate; this makes a chunk that reached it
/// anyway an error the host sees, never a state it accepts.
#[cube]
pub fn loops_complete(trips: u32) -> bool {
    let mut passes = 0u32;
    for _ in 0..trips {
        passes += 1u32;
    }
    passes == trips
}

/// (lo, hi) + k as a 64-bit count: the high word.
#[cube]
pub fn carry_hi(lo: u32, hi: u32, k: u32) -> u32 {
    let mut out = hi;
    // lo + k wraps past 2³² − 1.
    if lo > 0xffff_ffffu32 - k {
        out += 1u32;
    }
    out
}

/// A chunk of `steps` steps of a dense network in ONE workgroup.
///
/// `state_in` = params, m, v (`n_params` each, in the model's parameter order, unpadded);
/// `state` (out) = the same, then the [`TAIL`]: `[last_loss, steps_run, bad_loss, stopped,
/// loops_complete]`. `layout` holds
/// [`LAYOUT_FIELDS`] values per layer. `scratch` holds `batch × width_sum` activations (the
/// input, then each layer's outputs), as many gradients, and `batch` targets. For a table,
/// `data` is its training rows (`table_rows × d_in`) then their targets, `order` the row
/// orders of one or more consecutive epochs (`table_rows` each), and the chunk's first step is
/// minibatch number `epoch_index` counted from the start of `order` (the chunk may cross
/// epochs, as far as `order` reaches); for the synthetic sources both are unused. `grads`
/// holds a step's gradients (`n_params`).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn dense_chunk_kernel(
    state_in: &Tensor<f32>,
    state: &mut Tensor<f32>,
    layout: &Tensor<f32>,
    data: &Tensor<f32>,
    order: &Tensor<f32>,
    scratch: &mut Tensor<f32>,
    grads: &mut Tensor<f32>,
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
    // [stopped, loops complete]
    let mut ctl = Shared::<[f32]>::new_slice(2usize);
    let np = n_params as usize;
    // The state to the output buffer, where the chunk updates it in place.
    let mut i = u;
    while i < 3u32 * n_params {
        state[i as usize] = state_in[i as usize];
        i += stride;
    }
    if u == 0u32 {
        ctl[0] = 0.0f32;
        ctl[1] = 1.0f32;
    }
    let at = Scratch {
        deltas: batch * width_sum,
        targets: 2u32 * batch * width_sum,
    };
    let stream = Stream {
        k0,
        k1,
        x_low,
        x_span,
        true_w,
        true_b,
        noise,
    };
    let mut last_loss = 0.0f32;
    let mut bad_loss = 0.0f32;
    let mut run = 0u32;
    sync_storage();

    // A table's minibatches per epoch (the last one may be short).
    let mut per_epoch = 1u32;
    if source == SOURCE_TABLE {
        per_epoch = (table_rows + batch - 1u32) / batch;
    }
    for k in 0..steps {
        // The step's minibatch: the `i`-th of the `e`-th epoch in the order buffer.
        let q = epoch_index + k;
        let e = q / per_epoch;
        let i = q % per_epoch;
        let start = i * batch;
        let mut nb = step_rows(source, batch, table_rows, start);
        // None once stopped.
        if ctl[0] != 0.0f32 {
            nb = 0u32;
        }
        let step = StepData {
            source,
            d_in,
            table_rows,
            start,
            order_at: e * table_rows + start,
            step_lo: first_lo + k,
            step_hi: carry_hi(first_lo, first_hi, k),
        };
        let slice = Slice {
            begin: 0u32,
            end: nb,
            rows: nb,
        };
        load_batch(
            scratch,
            data,
            order,
            at.clone(),
            step.clone(),
            stream.clone(),
            slice.clone(),
        );
        forward(scratch, state, layout, layers, relu, batch, slice.clone());
        let mut n = f32::cast_from(nb);
        if nb == 0u32 {
            n = 1.0f32;
        }
        let loss = output_errors(
            scratch,
            layout,
            &mut red,
            layers,
            batch,
            loss_kind,
            huber,
            at.clone(),
            slice.clone(),
        ) / n;
        let live = nb > 0u32;
        let finite = is_finite(loss);
        if live && finite {
            backward(
                scratch,
                state,
                layout,
                layers,
                relu,
                batch,
                at.clone(),
                slice.clone(),
            );
            // Every parameter's gradient over the batch, then Adam, by the unit that owns it.
            let t_lo = upd_lo + run + 1u32;
            let t_hi = carry_hi(upd_lo, upd_hi, run + 1u32);
            let pow1 = pow_by_squaring(beta1, t_lo, t_hi);
            let pow2 = pow_by_squaring(beta2, t_lo, t_hi);
            gradients(
                grads,
                0u32,
                scratch,
                layout,
                layers,
                batch,
                at.clone(),
                slice.clone(),
            );
            sync_storage();
            let mut p = u;
            while p < n_params {
                let mut g = grads[p as usize];
                if is_weight(p, layout, layers) {
                    g += 2.0f32 * l2 * state[p as usize];
                }
                adam_in_place(state, p, n_params, g, lr, beta1, beta2, epsilon, pow1, pow2);
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

    if !loops_complete(layers + 1u32) {
        ctl[1] = 0.0f32;
    }
    sync_cube();
    if u == 0u32 {
        state[3 * np] = last_loss;
        state[3 * np + 1] = f32::cast_from(run);
        state[3 * np + 2] = bad_loss;
        state[3 * np + 3] = ctl[0];
        state[3 * np + 4] = ctl[1];
    }
}

/// Large batches, dispatch 1 of a step (many workgroups): workgroup g takes samples
/// `[g·slice, (g+1)·slice)` of the step and writes its slice's gradient sums of every
/// parameter to `partials[g·(n_params+1) ..]`, then its loss sum. `state` is the chunk's
/// state buffer (params, m, v, then the [`TAIL`]); once
/// stopped, the slices are empty. (`state` is only read; it is `mut` because the phases
/// shared with [`dense_chunk_kernel`] take it so.)
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn dense_grad_kernel(
    state: &mut Tensor<f32>,
    layout: &Tensor<f32>,
    data: &Tensor<f32>,
    order: &Tensor<f32>,
    scratch: &mut Tensor<f32>,
    partials: &mut Tensor<f32>,
    source: u32,
    layers: u32,
    d_in: u32,
    width_sum: u32,
    n_params: u32,
    relu: u32,
    loss_kind: u32,
    huber: f32,
    k0: u32,
    k1: u32,
    step_lo: u32,
    step_hi: u32,
    batch: u32,
    slice_len: u32,
    table_rows: u32,
    start: u32,
    order_at: u32,
    x_low: f32,
    x_span: f32,
    true_w: f32,
    true_b: f32,
    noise: f32,
    #[comptime] units: usize,
) {
    let u = UNIT_POS;
    let g = CUBE_POS_X;
    let mut red = Shared::<[f32]>::new_slice(units);
    let at = Scratch {
        deltas: batch * width_sum,
        targets: 2u32 * batch * width_sum,
    };
    let stream = Stream {
        k0,
        k1,
        x_low,
        x_span,
        true_w,
        true_b,
        noise,
    };
    let mut nb = step_rows(source, batch, table_rows, start);
    if state[3 * (n_params as usize) + 3] != 0.0f32 {
        nb = 0u32;
    }
    let mut begin = g * slice_len;
    if begin > nb {
        begin = nb;
    }
    let mut end = begin + slice_len;
    if end > nb {
        end = nb;
    }
    let slice = Slice {
        begin,
        end,
        rows: nb,
    };
    let step = StepData {
        source,
        d_in,
        table_rows,
        start,
        order_at,
        step_lo,
        step_hi,
    };
    load_batch(
        scratch,
        data,
        order,
        at.clone(),
        step.clone(),
        stream.clone(),
        slice.clone(),
    );
    forward(scratch, state, layout, layers, relu, batch, slice.clone());
    let loss_sum = output_errors(
        scratch,
        layout,
        &mut red,
        layers,
        batch,
        loss_kind,
        huber,
        at.clone(),
        slice.clone(),
    );
    backward(
        scratch,
        state,
        layout,
        layers,
        relu,
        batch,
        at.clone(),
        slice.clone(),
    );
    let base = g * (n_params + 1u32);
    gradients(
        partials,
        base,
        scratch,
        layout,
        layers,
        batch,
        at.clone(),
        slice.clone(),
    );
    if u == 0u32 {
        partials[(base + n_params) as usize] = loss_sum;
    }
    // The state's copy set it to 1; a unit whose loops were cut short clears it.
    if !loops_complete(layers + 1u32) {
        state[3 * (n_params as usize) + 4] = 0.0f32;
    }
}

/// Large batches, dispatch 2 of a step (parameters shared among workgroups): every workgroup
/// sums the `groups` loss sums in the same fixed order (so all see the same loss); if the step
/// is live and its loss finite, each unit sums its parameter's partials over the slices in
/// order, adds the ridge penalty's gradient and applies Adam's update `(t_lo, t_hi)`.
/// Workgroup 0's unit 0 alone keeps `[last_loss, steps_run, bad_loss, stopped]`; a unit of
/// [`dense_grad_kernel`] whose loops were cut short clears the tail's last value.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn dense_adam_kernel(
    state: &mut Tensor<f32>,
    layout: &Tensor<f32>,
    partials: &Tensor<f32>,
    layers: u32,
    n_params: u32,
    groups: u32,
    rows: u32,
    l2: f32,
    t_lo: u32,
    t_hi: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    #[comptime] units: usize,
) {
    let u = UNIT_POS;
    let np = n_params as usize;
    let mut red = Shared::<[f32]>::new_slice(units);
    let stride = n_params + 1u32;
    let mut part = 0.0f32;
    let mut g = u;
    while g < groups {
        part += partials[(g * stride + n_params) as usize];
        g += CUBE_DIM;
    }
    let mut n = f32::cast_from(rows);
    if rows == 0u32 {
        n = 1.0f32;
    }
    let loss = tree_sum(&mut red, part) / n;
    let stopped = state[3 * np + 3] != 0.0f32;
    let live = rows > 0u32 && !stopped;
    let finite = is_finite(loss);
    if live && finite {
        let pow1 = pow_by_squaring(beta1, t_lo, t_hi);
        let pow2 = pow_by_squaring(beta2, t_lo, t_hi);
        let p = CUBE_POS_X * CUBE_DIM + u;
        if p < n_params {
            let mut grad = 0.0f32;
            for q in 0..groups {
                grad += partials[(q * stride + p) as usize];
            }
            if is_weight(p, layout, layers) {
                grad += 2.0f32 * l2 * state[p as usize];
            }
            adam_in_place(
                state, p, n_params, grad, lr, beta1, beta2, epsilon, pow1, pow2,
            );
        }
    }
    if CUBE_POS_X == 0u32 && u == 0u32 && live {
        if finite {
            state[3 * np] = loss;
            state[3 * np + 1] += 1.0f32;
        } else {
            state[3 * np + 2] = loss;
            state[3 * np + 3] = 1.0f32;
        }
    }
}

/// Copies `state_in` (params, m, v) to `state` and starts the [`TAIL`] values after them:
/// zeros, and 1 for "loops complete".
#[cube(launch)]
pub fn dense_state_copy_kernel(state_in: &Tensor<f32>, state: &mut Tensor<f32>) {
    let i = ABSOLUTE_POS;
    let n = state_in.len();
    if i < n {
        state[i] = state_in[i];
    } else if i < n + 4 {
        state[i] = 0.0f32;
    } else if i == n + 4 {
        state[i] = 1.0f32;
    }
}
