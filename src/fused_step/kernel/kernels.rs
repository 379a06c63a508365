//! The `#[cube]` functions and kernels: twins of the host's Philox, sampling and Adam
//! (`rng/philox.rs`, `optim.rs`), the batch sampler, and the fused step in one or two
//! dispatches. A module of its own: cubecl's `Tensor` is not burn's.

use burn_cubecl::cubecl;
use cubecl::{cube, prelude::*};

// The constants of `ln_unit` and `sin_cos_turns`, evaluated by rustc exactly as the host code
// evaluates them, so both sides multiply by the same f32 values.
const LN_C3: f32 = 2.0 / 3.0;
const LN_C5: f32 = 2.0 / 5.0;
const LN_C7: f32 = 2.0 / 7.0;
const LN_C9: f32 = 2.0 / 9.0;
const SQRT_2: f32 = std::f32::consts::SQRT_2;
const LN_2: f32 = std::f32::consts::LN_2;
const INV_2_24: f32 = crate::rng::philox::INV_2_24;

const TURN_STEP: f32 = std::f32::consts::FRAC_PI_2 / 4_194_304.0;
const FRAC_PI_4: f32 = std::f32::consts::FRAC_PI_4;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const S3: f32 = -1.0 / 6.0;
const S5: f32 = 1.0 / 120.0;
const S7: f32 = -1.0 / 5040.0;
const S9: f32 = 1.0 / 362_880.0;
const C4: f32 = 1.0 / 24.0;
const C6: f32 = -1.0 / 720.0;
const C8: f32 = 1.0 / 40_320.0;
const C10: f32 = -1.0 / 3_628_800.0;

/// The four output words of one Philox4x32-10 block.
#[derive(CubeType)]
pub struct Words {
    /// Word 0.
    pub r0: u32,
    /// Word 1.
    pub r1: u32,
    /// Word 2.
    pub r2: u32,
    /// Word 3.
    pub r3: u32,
}

/// Twin of `philox::philox4x32_10`: u32 wrapping `*`, `mul_hi` and `^` only.
#[cube]
pub fn philox4x32_10(k0: u32, k1: u32, c0: u32, c1: u32, c2: u32, c3: u32) -> Words {
    let m0 = 0xD251_1F53u32;
    let m1 = 0xCD9E_8D57u32;
    let w0 = 0x9E37_79B9u32;
    let w1 = 0xBB67_AE85u32;
    let mut x0 = c0;
    let mut x1 = c1;
    let mut x2 = c2;
    let mut x3 = c3;
    let mut y0 = k0;
    let mut y1 = k1;
    #[unroll]
    for _ in 0..10u32 {
        let lo0 = x0 * m0;
        let hi0 = u32::mul_hi(x0, m0);
        let lo1 = x2 * m1;
        let hi1 = u32::mul_hi(x2, m1);
        x0 = hi1 ^ x1 ^ y0;
        x1 = lo1;
        x2 = hi0 ^ x3 ^ y1;
        x3 = lo0;
        y0 += w0;
        y1 += w1;
    }
    Words {
        r0: x0,
        r1: x1,
        r2: x2,
        r3: x3,
    }
}

/// Twin of `philox::ln_unit`.
#[cube]
pub fn ln_unit(u: f32) -> f32 {
    let bits = u32::reinterpret(u);
    let mut e = f32::cast_from((bits >> 23u32) & 0xffu32) - 127.0f32;
    let mut m = f32::reinterpret((bits & 0x007f_ffffu32) | 0x3f80_0000u32);
    if m > SQRT_2 {
        m *= 0.5f32;
        e += 1.0f32;
    }
    let s = (m - 1.0f32) / (m + 1.0f32);
    let s2 = s * s;
    let series = s * (2.0f32 + s2 * (LN_C3 + s2 * (LN_C5 + s2 * (LN_C7 + s2 * LN_C9))));
    e * LN_2 + series
}

/// (sin, cos) as a pair.
#[derive(CubeType)]
pub struct SinCos {
    /// sin θ.
    pub sin: f32,
    /// cos θ.
    pub cos: f32,
}

/// Twin of `philox::sin_cos_turns`.
#[cube]
pub fn sin_cos_turns(word: u32) -> SinCos {
    let k = word >> 8u32;
    let quadrant = k >> 22u32;
    let within = f32::cast_from(k & 0x3f_ffffu32) * TURN_STEP;
    let psi = within - FRAC_PI_4;
    let p2 = psi * psi;
    let sin_psi = psi * (1.0f32 + p2 * (S3 + p2 * (S5 + p2 * (S7 + p2 * S9))));
    let cos_psi = 1.0f32 + p2 * (-0.5f32 + p2 * (C4 + p2 * (C6 + p2 * (C8 + p2 * C10))));
    let s = (sin_psi + cos_psi) * FRAC_1_SQRT_2;
    let c = (cos_psi - sin_psi) * FRAC_1_SQRT_2;
    let mut out_s = -c;
    let mut out_c = s;
    if quadrant == 0u32 {
        out_s = s;
        out_c = c;
    } else if quadrant == 1u32 {
        out_s = c;
        out_c = -s;
    } else if quadrant == 2u32 {
        out_s = -s;
        out_c = -c;
    }
    SinCos {
        sin: out_s,
        cos: out_c,
    }
}

/// Samples 2j and 2j + 1 of one step.
#[derive(CubeType)]
pub struct Pair {
    /// x of sample 2j.
    pub x0: f32,
    /// y of sample 2j.
    pub y0: f32,
    /// x of sample 2j + 1.
    pub x1: f32,
    /// y of sample 2j + 1.
    pub y1: f32,
}

/// Twin of `LineStream::pair`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn line_pair(
    k0: u32,
    k1: u32,
    step_lo: u32,
    step_hi: u32,
    pair: u32,
    x_low: f32,
    x_span: f32,
    true_w: f32,
    true_b: f32,
    noise: f32,
) -> Pair {
    let r = philox4x32_10(k0, k1, step_lo, step_hi, pair, 0u32);
    let radius = f32::sqrt(-2.0f32 * ln_unit(f32::cast_from((r.r2 >> 8u32) + 1u32) * INV_2_24));
    let sc = sin_cos_turns(r.r3);
    let x0 = x_low + x_span * (f32::cast_from(r.r0 >> 8u32) * INV_2_24);
    let x1 = x_low + x_span * (f32::cast_from(r.r1 >> 8u32) * INV_2_24);
    Pair {
        x0,
        y0: true_w * x0 + true_b + noise * (radius * sc.cos),
        x1,
        y1: true_w * x1 + true_b + noise * (radius * sc.sin),
    }
}

/// Twin of `optim::pow_by_squaring` with t = (t_lo, t_hi); unrolled over the 32 bits (the
/// squarings past t's top bit never reach the result), so it costs no loop iterations.
#[cube]
pub fn pow_by_squaring(beta: f32, t_lo: u32, t_hi: u32) -> f32 {
    let mut result = 1.0f32;
    let mut base = beta;
    let mut t = t_lo;
    #[unroll]
    for _ in 0..32u32 {
        if (t & 1u32) == 1u32 {
            result *= base;
        }
        base *= base;
        t >>= 1u32;
    }
    if t_hi != 0u32 {
        result = 0.0f32;
    }
    result
}

/// Whether `v` is finite, from its exponent bits (no reliance on isinf/isnan lowering).
#[cube]
pub fn is_finite(v: f32) -> bool {
    (u32::reinterpret(v) & 0x7f80_0000u32) != 0x7f80_0000u32
}

/// One of Adam's updates (twin of `Adam::update_scalar`).
#[derive(CubeType)]
pub struct AdamOut {
    /// The parameter.
    pub p: f32,
    /// The first moment.
    pub m: f32,
    /// The second moment.
    pub v: f32,
}

/// Twin of `Adam::update_scalar`; `pow1`, `pow2` = β1ᵗ, β2ᵗ.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    p: f32,
    g: f32,
    m: f32,
    v: f32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    pow1: f32,
    pow2: f32,
) -> AdamOut {
    let m_new = beta1 * m + (1.0f32 - beta1) * g;
    let v_new = beta2 * v + (1.0f32 - beta2) * (g * g);
    let m_hat = m_new / (1.0f32 - pow1);
    let v_hat = v_new / (1.0f32 - pow2);
    AdamOut {
        p: p - lr * (m_hat / (f32::sqrt(v_hat) + epsilon)),
        m: m_new,
        v: v_new,
    }
}

// ------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------

/// Writes the 4 words of the blocks with counters (c0 + u, c1, c2, c3), u = UNIT_POS, as
/// 16-bit halves (exact in f32): out[8u + 2i] = low half of word i, out[8u + 2i + 1] = high.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn philox_words_kernel(
    out: &mut Tensor<f32>,
    k0: u32,
    k1: u32,
    c0: u32,
    c1: u32,
    c2: u32,
    c3: u32,
) {
    let u = UNIT_POS;
    let r = philox4x32_10(k0, k1, c0 + u, c1, c2, c3);
    let base = (u * 8u32) as usize;
    let mask = 0xFFFFu32;
    out[base] = f32::cast_from(r.r0 & mask);
    out[base + 1] = f32::cast_from(r.r0 >> 16u32);
    out[base + 2] = f32::cast_from(r.r1 & mask);
    out[base + 3] = f32::cast_from(r.r1 >> 16u32);
    out[base + 4] = f32::cast_from(r.r2 & mask);
    out[base + 5] = f32::cast_from(r.r2 >> 16u32);
    out[base + 6] = f32::cast_from(r.r3 & mask);
    out[base + 7] = f32::cast_from(r.r3 >> 16u32);
}

/// The batch of one step: one unit per pair (units laid out over a 2-D grid of workgroups).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn line_batch_kernel(
    xs: &mut Tensor<f32>,
    ys: &mut Tensor<f32>,
    k0: u32,
    k1: u32,
    step_lo: u32,
    step_hi: u32,
    batch: u32,
    x_low: f32,
    x_span: f32,
    true_w: f32,
    true_b: f32,
    noise: f32,
) {
    let j = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) * CUBE_DIM_X + UNIT_POS_X;
    let pairs = batch / 2u32 + batch % 2u32;
    if j < pairs {
        let p = line_pair(
            k0, k1, step_lo, step_hi, j, x_low, x_span, true_w, true_b, noise,
        );
        let i = (2u32 * j) as usize;
        xs[i] = p.x0;
        ys[i] = p.y0;
        if 2u32 * j + 1u32 < batch {
            xs[i + 1] = p.x1;
            ys[i + 1] = p.y1;
        }
    }
}

/// Adds pair `j`'s contributions to (Σe·x, Σe, Σe²): the host's per-pair arithmetic, with the
/// half-filled last pair of an odd batch contributing only its first sample.
#[derive(CubeType)]
pub struct Sums {
    /// Σ e·x.
    pub ex: f32,
    /// Σ e.
    pub e: f32,
    /// Σ e².
    pub ee: f32,
}

/// Sums over the pairs `first, first + stride, ...` below `pairs`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub fn strided_sums(
    first: u32,
    stride: u32,
    batch: u32,
    k0: u32,
    k1: u32,
    step_lo: u32,
    step_hi: u32,
    w: f32,
    b: f32,
    x_low: f32,
    x_span: f32,
    true_w: f32,
    true_b: f32,
    noise: f32,
) -> Sums {
    let pairs = batch / 2u32 + batch % 2u32;
    let full = batch / 2u32;
    let mut ex = 0.0f32;
    let mut es = 0.0f32;
    let mut ee = 0.0f32;
    let mut j = first;
    while j < pairs {
        let p = line_pair(
            k0, k1, step_lo, step_hi, j, x_low, x_span, true_w, true_b, noise,
        );
        let e0 = w * p.x0 + b - p.y0;
        // The missing second sample of an odd batch adds exactly nothing (as on the host).
        let mut e1 = 0.0f32;
        if j < full {
            e1 = w * p.x1 + b - p.y1;
        }
        ex += e0 * p.x0 + e1 * p.x1;
        es += e0 + e1;
        ee += e0 * e0 + e1 * e1;
        j += stride;
    }
    Sums { ex, e: es, ee }
}

/// In-place tree reduction of three shared arrays of `CUBE_DIM` (a power of two) entries into
/// entry 0. Every unit must call it (it holds barriers).
#[cube]
pub fn tree_reduce(
    red_ex: &mut Shared<[f32]>,
    red_e: &mut Shared<[f32]>,
    red_ee: &mut Shared<[f32]>,
) {
    let u = UNIT_POS;
    let uu = u as usize;
    let mut s = CUBE_DIM / 2u32;
    while s > 0u32 {
        if u < s {
            let o = (u + s) as usize;
            red_ex[uu] += red_ex[o];
            red_e[uu] += red_e[o];
            red_ee[uu] += red_ee[o];
        }
        sync_cube();
        s /= 2u32;
    }
}

/// A whole chunk of steps in one dispatch of ONE workgroup of `units` units (a power of two).
///
/// state_in = [w, b, m_w, m_b, v_w, v_b]; state (out) = [w, b, m_w, m_b, v_w, v_b, last_loss,
/// steps_run, bad_loss, stopped]. Step k of the chunk is global step first_step + k and Adam's
/// update updates_before + k + 1 (64-bit values as lo/hi u32 pairs). The first step whose loss
/// is not finite stops the chunk before its update; the remaining iterations only pass the
/// barriers (no branch out of a loop that holds barriers).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn chunk_kernel(
    state_in: &Tensor<f32>,
    state: &mut Tensor<f32>,
    k0: u32,
    k1: u32,
    first_lo: u32,
    first_hi: u32,
    upd_lo: u32,
    upd_hi: u32,
    steps: u32,
    batch: u32,
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
    let uu = u as usize;
    let mut red_ex = Shared::<[f32]>::new_slice(units);
    let mut red_e = Shared::<[f32]>::new_slice(units);
    let mut red_ee = Shared::<[f32]>::new_slice(units);
    // [w, b, stopped]
    let mut ctl = Shared::<[f32]>::new_slice(4usize);

    // Adam's moments and the counters live in unit 0's registers.
    let mut m_w = state_in[2];
    let mut m_b = state_in[3];
    let mut v_w = state_in[4];
    let mut v_b = state_in[5];
    let mut last_loss = 0.0f32;
    let mut bad_loss = 0.0f32;
    let mut run = 0u32;

    if u == 0u32 {
        ctl[0] = state_in[0];
        ctl[1] = state_in[1];
        ctl[2] = 0.0f32;
    }
    sync_cube();

    let n = f32::cast_from(batch);
    for k in 0..steps {
        let w = ctl[0];
        let b = ctl[1];
        let stopped = ctl[2];
        let step_lo = first_lo + k;
        let mut step_hi = first_hi;
        if step_lo < first_lo {
            step_hi += 1u32;
        }
        // Once stopped, start past the last pair: the sums stay 0.
        let mut start = u;
        if stopped != 0.0f32 {
            start = u32::MAX;
        }
        let sums = strided_sums(
            start, CUBE_DIM, batch, k0, k1, step_lo, step_hi, w, b, x_low, x_span, true_w, true_b,
            noise,
        );
        red_ex[uu] = sums.ex;
        red_e[uu] = sums.e;
        red_ee[uu] = sums.ee;
        sync_cube();
        tree_reduce(&mut red_ex, &mut red_e, &mut red_ee);

        if u == 0u32 && stopped == 0.0f32 {
            let loss = red_ee[0] / n;
            if is_finite(loss) {
                let t_lo = upd_lo + k + 1u32;
                let mut t_hi = upd_hi;
                if t_lo < upd_lo {
                    t_hi += 1u32;
                }
                let pow1 = pow_by_squaring(beta1, t_lo, t_hi);
                let pow2 = pow_by_squaring(beta2, t_lo, t_hi);
                let scale = 2.0f32 / n;
                let gw = scale * red_ex[0];
                let gb = scale * red_e[0];
                let aw = adam_update(w, gw, m_w, v_w, lr, beta1, beta2, epsilon, pow1, pow2);
                let ab = adam_update(b, gb, m_b, v_b, lr, beta1, beta2, epsilon, pow1, pow2);
                ctl[0] = aw.p;
                ctl[1] = ab.p;
                m_w = aw.m;
                v_w = aw.v;
                m_b = ab.m;
                v_b = ab.v;
                last_loss = loss;
                run += 1u32;
            } else {
                bad_loss = loss;
                ctl[2] = 1.0f32;
            }
        }
        sync_cube();
    }

    if u == 0u32 {
        state[0] = ctl[0];
        state[1] = ctl[1];
        state[2] = m_w;
        state[3] = m_b;
        state[4] = v_w;
        state[5] = v_b;
        state[6] = last_loss;
        state[7] = f32::cast_from(run);
        state[8] = bad_loss;
        state[9] = ctl[2];
    }
}

/// Large batches, ONE dispatch per step over many workgroups. Dispatch j (j = 0..=steps of the
/// chunk) turns state S(j-1) and the partial sums of step j-1 into S(j) (Adam's update j),
/// then computes the partial sums of step j at S(j):
///
/// 1. every workgroup reduces `prev_partials` (the `groups` triples of step j-1) in the same
///    fixed order and applies the same update, so all of them hold the same S(j) bit for bit
///    (a little redundant arithmetic instead of a second dispatch);
/// 2. workgroup 0 writes S(j) to `next_state`;
/// 3. each workgroup writes its (Σe·x, Σe, Σe²) of step j at S(j) to `partials[3·cube..]`.
///
/// States and partials alternate between two buffers (the host passes j-1's as `prev_*` and
/// j's as `next_state`/`partials`), so no dispatch reads what it writes: no workgroup waits
/// for another, which WebGPU could not promise. `first` = 1: S(j) is `state_in` (no update);
/// `sample` = 0: the last dispatch only updates. Once stopped, the state is left alone.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn step_kernel(
    state_in: &Tensor<f32>,
    prev_state: &Tensor<f32>,
    prev_partials: &Tensor<f32>,
    next_state: &mut Tensor<f32>,
    partials: &mut Tensor<f32>,
    first: u32,
    sample: u32,
    groups: u32,
    k0: u32,
    k1: u32,
    step_lo: u32,
    step_hi: u32,
    t_lo: u32,
    t_hi: u32,
    batch: u32,
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
    let uu = u as usize;
    let cube_id = CUBE_POS_X;
    let mut red_ex = Shared::<[f32]>::new_slice(units);
    let mut red_e = Shared::<[f32]>::new_slice(units);
    let mut red_ee = Shared::<[f32]>::new_slice(units);
    // S(j): [w, b, m_w, m_b, v_w, v_b, last_loss, steps_run, bad_loss, stopped]
    let mut s = Shared::<[f32]>::new_slice(10usize);
    let n = f32::cast_from(batch);

    if first == 1u32 {
        if u < 6u32 {
            s[uu] = state_in[uu];
        } else if u < 10u32 {
            s[uu] = 0.0f32;
        }
        sync_cube();
    } else {
        if u < 10u32 {
            s[uu] = prev_state[uu];
        }
        // Step j-1's sums: strided over the partials, then the tree, as every workgroup does.
        let mut ex = 0.0f32;
        let mut es = 0.0f32;
        let mut ee = 0.0f32;
        let mut g = u;
        while g < groups {
            let base = (g * 3u32) as usize;
            ex += prev_partials[base];
            es += prev_partials[base + 1];
            ee += prev_partials[base + 2];
            g += CUBE_DIM;
        }
        red_ex[uu] = ex;
        red_e[uu] = es;
        red_ee[uu] = ee;
        sync_cube();
        tree_reduce(&mut red_ex, &mut red_e, &mut red_ee);
        if u == 0u32 && s[9] == 0.0f32 {
            let loss = red_ee[0] / n;
            if is_finite(loss) {
                let pow1 = pow_by_squaring(beta1, t_lo, t_hi);
                let pow2 = pow_by_squaring(beta2, t_lo, t_hi);
                let scale = 2.0f32 / n;
                let gw = scale * red_ex[0];
                let gb = scale * red_e[0];
                let aw = adam_update(s[0], gw, s[2], s[4], lr, beta1, beta2, epsilon, pow1, pow2);
                let ab = adam_update(s[1], gb, s[3], s[5], lr, beta1, beta2, epsilon, pow1, pow2);
                s[0] = aw.p;
                s[1] = ab.p;
                s[2] = aw.m;
                s[3] = ab.m;
                s[4] = aw.v;
                s[5] = ab.v;
                s[6] = loss;
                s[7] += 1.0f32;
            } else {
                s[8] = loss;
                s[9] = 1.0f32;
            }
        }
        sync_cube();
    }
    if cube_id == 0u32 && u < 10u32 {
        next_state[uu] = s[uu];
    }
    if sample == 1u32 {
        // Once stopped, start past the last pair: the sums stay 0.
        let mut start = cube_id * CUBE_DIM + u;
        if s[9] != 0.0f32 {
            start = u32::MAX;
        }
        let sums = strided_sums(
            start,
            CUBE_COUNT_X * CUBE_DIM,
            batch,
            k0,
            k1,
            step_lo,
            step_hi,
            s[0],
            s[1],
            x_low,
            x_span,
            true_w,
            true_b,
            noise,
        );
        red_ex[uu] = sums.ex;
        red_e[uu] = sums.e;
        red_ee[uu] = sums.ee;
        sync_cube();
        tree_reduce(&mut red_ex, &mut red_e, &mut red_ee);
        if u == 0u32 {
            let base = (cube_id * 3u32) as usize;
            partials[base] = red_ex[0];
            partials[base + 1] = red_e[0];
            partials[base + 2] = red_ee[0];
        }
    }
}
