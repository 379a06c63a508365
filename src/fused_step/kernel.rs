//! The fused engine on wgpu: CubeCL kernels added to burn through its backend-extension
//! mechanism (`#[backend_extension]`, one [`FusedOps`] trait for burn's Cube backend, wrapped
//! by Fusion when burn's `fusion` feature is on).
//!
//! - [`line_batch`]: one dispatch draws a whole batch (one unit per Philox pair).
//! - [`GpuExecutor::run_chunk`], small batches (at most [`SMALL_MAX_PAIRS`] pairs; on a CPU
//!   adapter such as lavapipe up to [`CPU_ADAPTER_MAX_PAIRS`]): ONE dispatch of ONE workgroup
//!   runs every step of the chunk — draw, forward, the three sums, a shared-memory tree
//!   reduction, Adam in unit 0, a barrier, the next step.
//! - larger batches: two dispatches per step — partial sums over many workgroups, then one
//!   workgroup sums the partials in a fixed order and applies Adam to a small state buffer that
//!   stays on the device — all the chunk's dispatches recorded by one extension-op call, and one
//!   read-back of the state at the end.
//!
//! Every `#[cube]` function here is the twin of a host function (`rng/philox.rs`,
//! `optim.rs`) with the same operation order, so the integer part (Philox, the 24-bit
//! uniforms) is bit-identical and the float part agrees to the last bit wherever the GPU's
//! `+`/`*` are IEEE (cubecl emits `fma` for `a*b + c`, and division and `sqrt` may differ by an
//! ulp on Vulkan: bit-identical on lavapipe, within ~1e-6 elsewhere).
//!
//! Pitfall designed around: lavapipe (Mesa's software Vulkan) silently ends every loop of an
//! invocation once the loops of that invocation have run 65,535 iterations in total. The
//! one-workgroup kernel reports how many steps it ran and [`GpuExecutor::max_chunk_steps`]
//! keeps a dispatch well below the limit; a short run is an error, never silently accepted.
//! Plane (subgroup) operations are not used: lavapipe has none.

#[cfg(feature = "wgpu")]
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::{Backend, Dispatch, backend_extension, tensor::FloatTensor};
use burn::tensor::{Device, Shape, Tensor, TensorData};

use super::{ChunkResult, ChunkSpec, FusedState};
use crate::rng::philox::LineStream;

/// Units of the one-workgroup kernel (at most) and of every workgroup of the two-dispatch path:
/// a power of two (tree reduction), and within WebGPU's default limit of 256.
pub const UNITS: u32 = 256;

/// Batches of at most this many Philox pairs (two samples each) run the one-workgroup kernel.
pub const SMALL_MAX_PAIRS: u64 = 16 * UNITS as u64;

/// On a CPU adapter, batches of at most this many pairs (2^21 samples) run the one-workgroup
/// kernel (see [`GpuExecutor::new`]).
pub const CPU_ADAPTER_MAX_PAIRS: u64 = 1 << 20;

/// Loop iterations one invocation may spend per dispatch: well below lavapipe's 65,535.
const LOOP_BUDGET: u64 = 40_000;

/// Steps one extension-op call of the two-dispatch path records (2 dispatches each).
const LARGE_MAX_CHUNK_STEPS: u64 = 4_096;

/// Pairs each unit takes at least in the partial-sum kernel before another workgroup is added.
const LARGE_PAIRS_PER_UNIT: u64 = 4;

/// Most workgroups of the partial-sum kernel (the reduce kernel sums their partials).
const LARGE_MAX_GROUPS: u64 = 1_024;

/// Length of the state buffer a chunk returns:
/// `[w, b, m_w, m_b, v_w, v_b, last_loss, steps_run, bad_loss, stopped]`.
pub const STATE_OUT_LEN: usize = 10;

// ------------------------------------------------------------------------------------------
// #[cube] twins of rng/philox.rs and optim.rs
// ------------------------------------------------------------------------------------------

/// The `#[cube]` functions and kernels (a module of their own: cubecl's `Tensor` is not burn's).
#[allow(missing_docs)] // the items `#[cube]` and `CubeType` generate
pub mod kernels {
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
                start, CUBE_DIM, batch, k0, k1, step_lo, step_hi, w, b, x_low, x_span, true_w,
                true_b, noise,
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

    /// Two-dispatch path, dispatch 1: each workgroup's (Σe·x, Σe, Σe²) over the pairs
    /// `g, g + G·U, ...` of its units g, into partials[3·cube + 0..3]. Reads w, b from `state_in`
    /// when `first` is 1, else from `state`; does nothing useful once `state` says stopped.
    #[cube(launch)]
    #[allow(clippy::too_many_arguments)]
    pub fn partial_kernel(
        state_in: &Tensor<f32>,
        state: &Tensor<f32>,
        partials: &mut Tensor<f32>,
        first: u32,
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
        #[comptime] units: usize,
    ) {
        let u = UNIT_POS;
        let uu = u as usize;
        let cube_id = CUBE_POS_X;
        let mut red_ex = Shared::<[f32]>::new_slice(units);
        let mut red_e = Shared::<[f32]>::new_slice(units);
        let mut red_ee = Shared::<[f32]>::new_slice(units);

        let mut w = state_in[0];
        let mut b = state_in[1];
        let mut stopped = 0.0f32;
        if first == 0u32 {
            w = state[0];
            b = state[1];
            stopped = state[9];
        }
        let mut start = cube_id * CUBE_DIM + u;
        if stopped != 0.0f32 {
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
            w,
            b,
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

    /// Two-dispatch path, dispatch 2 (ONE workgroup): sums the `groups` partials in a fixed order,
    /// checks the loss and applies Adam's update `(t_lo, t_hi)` to `state` in place (copying from
    /// `state_in` first when `first` is 1); once stopped it leaves `state` alone.
    #[cube(launch)]
    #[allow(clippy::too_many_arguments)]
    pub fn reduce_adam_kernel(
        state_in: &Tensor<f32>,
        state: &mut Tensor<f32>,
        partials: &Tensor<f32>,
        first: u32,
        groups: u32,
        t_lo: u32,
        t_hi: u32,
        batch: u32,
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
        let mut ex = 0.0f32;
        let mut es = 0.0f32;
        let mut ee = 0.0f32;
        let mut g = u;
        while g < groups {
            let base = (g * 3u32) as usize;
            ex += partials[base];
            es += partials[base + 1];
            ee += partials[base + 2];
            g += CUBE_DIM;
        }
        red_ex[uu] = ex;
        red_e[uu] = es;
        red_ee[uu] = ee;
        sync_cube();
        tree_reduce(&mut red_ex, &mut red_e, &mut red_ee);

        if u == 0u32 {
            let mut w = state_in[0];
            let mut b = state_in[1];
            let mut m_w = state_in[2];
            let mut m_b = state_in[3];
            let mut v_w = state_in[4];
            let mut v_b = state_in[5];
            let mut last_loss = 0.0f32;
            let mut run = 0.0f32;
            let mut bad_loss = 0.0f32;
            let mut stopped = 0.0f32;
            if first == 0u32 {
                w = state[0];
                b = state[1];
                m_w = state[2];
                m_b = state[3];
                v_w = state[4];
                v_b = state[5];
                last_loss = state[6];
                run = state[7];
                bad_loss = state[8];
                stopped = state[9];
            }
            if stopped == 0.0f32 {
                let n = f32::cast_from(batch);
                let loss = red_ee[0] / n;
                if is_finite(loss) {
                    let pow1 = pow_by_squaring(beta1, t_lo, t_hi);
                    let pow2 = pow_by_squaring(beta2, t_lo, t_hi);
                    let scale = 2.0f32 / n;
                    let gw = scale * red_ex[0];
                    let gb = scale * red_e[0];
                    let aw = adam_update(w, gw, m_w, v_w, lr, beta1, beta2, epsilon, pow1, pow2);
                    let ab = adam_update(b, gb, m_b, v_b, lr, beta1, beta2, epsilon, pow1, pow2);
                    w = aw.p;
                    b = ab.p;
                    m_w = aw.m;
                    v_w = aw.v;
                    m_b = ab.m;
                    v_b = ab.v;
                    last_loss = loss;
                    run += 1.0f32;
                } else {
                    bad_loss = loss;
                    stopped = 1.0f32;
                }
            }
            state[0] = w;
            state[1] = b;
            state[2] = m_w;
            state[3] = m_b;
            state[4] = v_w;
            state[5] = v_b;
            state[6] = last_loss;
            state[7] = run;
            state[8] = bad_loss;
            state[9] = stopped;
        }
    }
}

pub use kernels::*;

// ------------------------------------------------------------------------------------------
// The burn extension
// ------------------------------------------------------------------------------------------

/// Output metadata of [`FusedOps::line_batch`] for Fusion: two `[batch, 1]` tensors.
#[cfg(feature = "wgpu")]
#[allow(clippy::too_many_arguments)]
fn line_batch_meta(
    anchor: &TensorSpec,
    _k0: &u32,
    _k1: &u32,
    _step: &u64,
    batch: &u32,
    _x_low: &f32,
    _x_span: &f32,
    _true_w: &f32,
    _true_b: &f32,
    _noise: &f32,
) -> (TensorSpec, TensorSpec) {
    let shape = Shape::from([*batch as usize, 1]);
    (
        TensorSpec::new(shape.clone(), anchor.dtype),
        TensorSpec::new(shape, anchor.dtype),
    )
}

/// The shape of a chunk's output state.
pub fn state_out_shape(_state: &Shape) -> Shape {
    Shape::from([STATE_OUT_LEN])
}

/// The shape of the Philox test words.
pub fn words_shape(_anchor: &Shape) -> Shape {
    Shape::from([32usize])
}

/// The fused engine's operations, added to burn's Cube backend (and its Fusion wrapper).
/// Call them with tensors of a plain (not autodiff) wgpu device.
#[backend_extension(Cube: cfg(feature = "wgpu-backend"), Fusion: cfg(feature = "wgpu"))]
pub trait FusedOps: Backend {
    /// The batch of global step `step`: `(x, y)`, `[batch, 1]` each; `anchor` only routes.
    #[fusion(meta = line_batch_meta)]
    #[allow(clippy::too_many_arguments)]
    fn line_batch(
        anchor: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        step: u64,
        batch: u32,
        x_low: f32,
        x_span: f32,
        true_w: f32,
        true_b: f32,
        noise: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `steps` training steps from `state` = [w, b, m_w, m_b, v_w, v_b]; returns
    /// `[w, b, m_w, m_b, v_w, v_b, last_loss, steps_run, bad_loss, stopped]`.
    /// `units` > 0 picks the one-workgroup kernel with that many units; 0 the two-dispatch path.
    #[fusion(dtype = state, shape = state_out_shape(state))]
    #[allow(clippy::too_many_arguments)]
    fn fused_chunk(
        state: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        first_step: u64,
        updates_before: u64,
        steps: u32,
        batch: u32,
        units: u32,
        x_low: f32,
        x_span: f32,
        true_w: f32,
        true_b: f32,
        noise: f32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        epsilon: f32,
    ) -> FloatTensor<Self>;

    /// Philox words of 4 blocks with counters (c0 + u, c1, c2, c3) as 32 f32 16-bit halves
    /// (for tests); `anchor` only routes.
    #[fusion(dtype = anchor, shape = words_shape(anchor))]
    #[allow(clippy::too_many_arguments)]
    fn philox_words(
        anchor: FloatTensor<Self>,
        k0: u32,
        k1: u32,
        c0: u32,
        c1: u32,
        c2: u32,
        c3: u32,
    ) -> FloatTensor<Self>;
}

#[cfg(feature = "wgpu-backend")]
mod cube_impl {
    use super::*;
    use burn_cubecl::cubecl::{CubeCount, CubeDim};
    use burn_cubecl::{CubeBackend, kernel::into_contiguous, tensor::CubeTensor};

    fn empty(like: &CubeTensor, shape: Shape) -> CubeTensor {
        let handle = like.client.empty(shape.num_elements() * like.dtype.size());
        CubeTensor::new_contiguous(
            like.client.clone(),
            like.device.clone(),
            shape,
            handle,
            like.dtype,
        )
    }

    fn split(v: u64) -> (u32, u32) {
        (v as u32, (v >> 32) as u32)
    }

    /// A grid of `n` workgroups within the 65,535-per-dimension limit.
    fn grid(n: u32) -> CubeCount {
        let x = n.clamp(1, 65_535);
        CubeCount::Static(x, n.div_ceil(x).max(1), 1)
    }

    impl FusedOps for CubeBackend {
        fn line_batch(
            anchor: FloatTensor<Self>,
            k0: u32,
            k1: u32,
            step: u64,
            batch: u32,
            x_low: f32,
            x_span: f32,
            true_w: f32,
            true_b: f32,
            noise: f32,
        ) -> (FloatTensor<Self>, FloatTensor<Self>) {
            let shape = Shape::from([batch as usize, 1]);
            let xs = empty(&anchor, shape.clone());
            let ys = empty(&anchor, shape);
            let pairs = batch / 2 + batch % 2;
            if pairs > 0 {
                let (s_lo, s_hi) = split(step);
                line_batch_kernel::launch(
                    &anchor.client,
                    grid(pairs.div_ceil(UNITS)),
                    CubeDim::new_1d(UNITS),
                    xs.clone().into_tensor_arg(),
                    ys.clone().into_tensor_arg(),
                    k0,
                    k1,
                    s_lo,
                    s_hi,
                    batch,
                    x_low,
                    x_span,
                    true_w,
                    true_b,
                    noise,
                );
            }
            (xs, ys)
        }

        fn fused_chunk(
            state: FloatTensor<Self>,
            k0: u32,
            k1: u32,
            first_step: u64,
            updates_before: u64,
            steps: u32,
            batch: u32,
            units: u32,
            x_low: f32,
            x_span: f32,
            true_w: f32,
            true_b: f32,
            noise: f32,
            lr: f32,
            beta1: f32,
            beta2: f32,
            epsilon: f32,
        ) -> FloatTensor<Self> {
            let state_in = into_contiguous(state);
            let out = empty(&state_in, Shape::from([STATE_OUT_LEN]));
            let client = state_in.client.clone();
            if units > 0 {
                let (f_lo, f_hi) = split(first_step);
                let (u_lo, u_hi) = split(updates_before);
                chunk_kernel::launch(
                    &client,
                    CubeCount::Static(1, 1, 1),
                    CubeDim::new_1d(units),
                    state_in.into_tensor_arg(),
                    out.clone().into_tensor_arg(),
                    k0,
                    k1,
                    f_lo,
                    f_hi,
                    u_lo,
                    u_hi,
                    steps,
                    batch,
                    x_low,
                    x_span,
                    true_w,
                    true_b,
                    noise,
                    lr,
                    beta1,
                    beta2,
                    epsilon,
                    units as usize,
                );
                return out;
            }
            let groups = large_groups(batch as u64);
            let partials = empty(&state_in, Shape::from([3 * groups as usize]));
            for k in 0..steps as u64 {
                let first = u32::from(k == 0);
                let (s_lo, s_hi) = split(first_step.wrapping_add(k));
                let (t_lo, t_hi) = split(updates_before.wrapping_add(k + 1));
                partial_kernel::launch(
                    &client,
                    CubeCount::Static(groups, 1, 1),
                    CubeDim::new_1d(UNITS),
                    state_in.clone().into_tensor_arg(),
                    out.clone().into_tensor_arg(),
                    partials.clone().into_tensor_arg(),
                    first,
                    k0,
                    k1,
                    s_lo,
                    s_hi,
                    batch,
                    x_low,
                    x_span,
                    true_w,
                    true_b,
                    noise,
                    UNITS as usize,
                );
                reduce_adam_kernel::launch(
                    &client,
                    CubeCount::Static(1, 1, 1),
                    CubeDim::new_1d(UNITS),
                    state_in.clone().into_tensor_arg(),
                    out.clone().into_tensor_arg(),
                    partials.clone().into_tensor_arg(),
                    first,
                    groups,
                    t_lo,
                    t_hi,
                    batch,
                    lr,
                    beta1,
                    beta2,
                    epsilon,
                    UNITS as usize,
                );
            }
            out
        }

        fn philox_words(
            anchor: FloatTensor<Self>,
            k0: u32,
            k1: u32,
            c0: u32,
            c1: u32,
            c2: u32,
            c3: u32,
        ) -> FloatTensor<Self> {
            let out = empty(&anchor, Shape::from([32usize]));
            philox_words_kernel::launch(
                &anchor.client,
                CubeCount::Static(1, 1, 1),
                CubeDim::new_1d(4),
                out.clone().into_tensor_arg(),
                k0,
                k1,
                c0,
                c1,
                c2,
                c3,
            );
            out
        }
    }
}

// ------------------------------------------------------------------------------------------
// Host side
// ------------------------------------------------------------------------------------------

/// Units of the one-workgroup kernel for `pairs` pairs: the next power of two, at most
/// [`UNITS`].
fn small_units(pairs: u64) -> u32 {
    pairs.clamp(1, u64::from(UNITS)).next_power_of_two() as u32
}

/// Workgroups of the partial-sum kernel for a batch.
fn large_groups(batch: u64) -> u32 {
    let pairs = batch.div_ceil(2);
    pairs
        .div_ceil(u64::from(UNITS) * LARGE_PAIRS_PER_UNIT)
        .clamp(1, LARGE_MAX_GROUPS) as u32
}

/// Runs fused chunks on a wgpu device.
pub struct GpuExecutor {
    device: Device,
    /// Batches of at most this many pairs run the one-workgroup kernel.
    one_workgroup_max_pairs: u64,
}

impl GpuExecutor {
    /// An executor on `device` (the plain wgpu device; an autodiff one is stripped).
    /// `cpu_adapter`: the device is a software rasterizer (lavapipe), which runs workgroups on
    /// the CPU's few cores and pays ~0.4 ms per dispatch: there the one-workgroup kernel, many
    /// steps per dispatch, beats two dispatches per step up to far larger batches (measured at
    /// batch 65,536: 0.9 vs 1.7 ms per step).
    pub fn new(device: &Device, cpu_adapter: bool) -> Self {
        Self {
            device: device.clone().without_autodiff(),
            one_workgroup_max_pairs: if cpu_adapter {
                CPU_ADAPTER_MAX_PAIRS
            } else {
                SMALL_MAX_PAIRS
            },
        }
    }

    /// Same contract as `host::run_chunk`: runs `spec.steps` steps from `state`, stops before
    /// the first step whose loss is not finite (its update not applied), and reports it.
    /// Long chunks are cut into dispatches of at most [`Self::max_chunk_steps`] steps.
    pub fn run_chunk(
        &mut self,
        state: FusedState,
        spec: &ChunkSpec,
    ) -> Result<ChunkResult, String> {
        let batch = u32::try_from(spec.batch)
            .ok()
            .filter(|b| *b > 0 && *b < u32::MAX)
            .ok_or_else(|| {
                format!(
                    "batch {} is outside 1..2^32-1 for the wgpu kernels",
                    spec.batch
                )
            })?;
        let max = self.max_chunk_steps(spec.batch);
        let mut result = ChunkResult {
            state,
            steps_run: 0,
            last_loss: f32::NAN,
            diverged: None,
        };
        while result.steps_run < spec.steps {
            let done = result.steps_run;
            let n = (spec.steps - done).min(max);
            let sub = ChunkSpec {
                first_step: spec.first_step.wrapping_add(done),
                updates_before: spec.updates_before.wrapping_add(done),
                steps: n,
                ..*spec
            };
            let part = self.dispatch(result.state, &sub, batch)?;
            result.state = part.state;
            result.steps_run += part.steps_run;
            if part.steps_run > 0 {
                result.last_loss = part.last_loss;
            }
            if part.diverged.is_some() {
                result.diverged = part.diverged;
                break;
            }
        }
        Ok(result)
    }

    /// One extension-op call and one read-back.
    fn dispatch(
        &self,
        state: FusedState,
        spec: &ChunkSpec,
        batch: u32,
    ) -> Result<ChunkResult, String> {
        let pairs = u64::from(batch).div_ceil(2);
        let units = if pairs <= self.one_workgroup_max_pairs {
            small_units(pairs)
        } else {
            0
        };
        let steps =
            u32::try_from(spec.steps).map_err(|_| "too many steps in one dispatch".to_string())?;
        let input = Tensor::<1>::from_data(
            TensorData::new(
                vec![
                    state.w, state.b, state.m[0], state.m[1], state.v[0], state.v[1],
                ],
                [6],
            ),
            &self.device,
        );
        let s = &spec.stream;
        let a = &spec.adam;
        let out = <Dispatch as FusedOps>::fused_chunk(
            input.into_dispatch(),
            s.key[0],
            s.key[1],
            spec.first_step,
            spec.updates_before,
            steps,
            batch,
            units,
            s.x_low,
            s.x_span,
            s.true_w,
            s.true_b,
            s.noise,
            a.lr,
            a.beta1,
            a.beta2,
            a.epsilon,
        );
        let v = read(Tensor::<1>::from_dispatch(out))?;
        if v.len() != STATE_OUT_LEN {
            return Err(format!(
                "the fused kernel returned {} values, expected {STATE_OUT_LEN}",
                v.len()
            ));
        }
        let out_state = FusedState {
            w: v[0],
            b: v[1],
            m: [v[2], v[3]],
            v: [v[4], v[5]],
        };
        // The output buffer may be reused memory: accept only what the kernel can have written.
        let plausible = (v[9] == 0.0 || v[9] == 1.0)
            && v[7].fract() == 0.0
            && (0.0..=spec.steps as f32).contains(&v[7])
            && (v[9] == 1.0 || v[..6].iter().all(|x| x.is_finite()));
        if !plausible {
            return Err(format!(
                "the fused kernel returned an impossible state {v:?} (did it run at all?)"
            ));
        }
        let steps_run = v[7] as u64;
        let stopped = v[9] != 0.0;
        let diverged = stopped.then(|| (spec.first_step.wrapping_add(steps_run), v[8]));
        if !stopped && steps_run != spec.steps {
            return Err(format!(
                "the fused kernel ran {steps_run} of {} steps without a reason (a driver loop limit?)",
                spec.steps
            ));
        }
        Ok(ChunkResult {
            state: out_state,
            steps_run,
            last_loss: if steps_run > 0 { v[6] } else { f32::NAN },
            diverged,
        })
    }

    /// The most steps one dispatch of the one-workgroup kernel may run for `batch` without
    /// nearing lavapipe's loop limit; for the two-dispatch path, a bound on what one op call
    /// records.
    pub fn max_chunk_steps(&self, batch: usize) -> u64 {
        let pairs = (batch as u64).div_ceil(2);
        if pairs > self.one_workgroup_max_pairs {
            return LARGE_MAX_CHUNK_STEPS;
        }
        let units = u64::from(small_units(pairs));
        let per_unit = pairs.div_ceil(units);
        let per_step = per_unit + u64::from(units.trailing_zeros()) + 3;
        (LOOP_BUDGET / per_step).max(1)
    }
}

/// Reads a float tensor back as a vector, errors as text.
fn read(t: Tensor<1>) -> Result<Vec<f32>, String> {
    t.try_into_data()
        .map_err(|e| format!("reading the fused kernel's result: {e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| format!("reading the fused kernel's result: {e:?}"))
}

/// The batch of `step` drawn on the GPU, x and y as `[batch, 1]` tensors on the plain wgpu
/// `device`, equal to [`LineStream::batch`] up to transcendental rounding.
pub fn line_batch(
    stream: &LineStream,
    step: u64,
    batch: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    // The op needs one tensor input to route on; one per thread and device serves every step
    // (a fresh one would cost an allocation and a fill dispatch per step).
    thread_local! {
        static ANCHOR: std::cell::RefCell<Option<Tensor<1>>> = const { std::cell::RefCell::new(None) };
    }
    let device = device.clone().without_autodiff();
    let anchor = ANCHOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        match cell.as_ref() {
            Some(anchor) if anchor.device() == device => anchor.clone(),
            _ => cell.insert(Tensor::<1>::zeros([1], &device)).clone(),
        }
    });
    let (x, y) = <Dispatch as FusedOps>::line_batch(
        anchor.into_dispatch(),
        stream.key[0],
        stream.key[1],
        step,
        batch as u32,
        stream.x_low,
        stream.x_span,
        stream.true_w,
        stream.true_b,
        stream.noise,
    );
    (Tensor::from_dispatch(x), Tensor::from_dispatch(y))
}

/// The Philox words of 4 blocks (counters c0 + u, c1, c2, c3 for u in 0..4) computed on the GPU.
pub fn philox_words_on_gpu(
    device: &Device,
    key: [u32; 2],
    counter: [u32; 4],
) -> Result<Vec<u32>, String> {
    let anchor = Tensor::<1>::zeros([1], &device.clone().without_autodiff());
    let t = <Dispatch as FusedOps>::philox_words(
        anchor.into_dispatch(),
        key[0],
        key[1],
        counter[0],
        counter[1],
        counter[2],
        counter[3],
    );
    let halves = read(Tensor::<1>::from_dispatch(t))?;
    Ok(halves
        .chunks(2)
        .map(|h| (h[0] as u32) | ((h[1] as u32) << 16))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::backend::{Backend as BurnfitBackend, BackendKind};
    use crate::config::TrainingConfig;
    use crate::fused_step::host;
    use crate::rng::philox;

    /// wgpu tests run one at a time.
    static GPU: Mutex<()> = Mutex::new(());

    /// The wgpu device, or None (with a note) when there is none and it is not required.
    fn wgpu() -> Option<Device> {
        match BurnfitBackend::open(BackendKind::Wgpu) {
            Ok(b) => Some(b.device),
            Err(e) => {
                if std::env::var("BURNFIT_REQUIRE_WGPU").is_ok_and(|v| v == "1") {
                    panic!("BURNFIT_REQUIRE_WGPU=1 but wgpu did not open: {e}");
                }
                eprintln!("note: skipping a wgpu kernel test, no wgpu device: {e}");
                None
            }
        }
    }

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        GPU.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spec(config: &TrainingConfig, first_step: u64, steps: u64) -> ChunkSpec {
        ChunkSpec {
            stream: config.line_stream(),
            adam: config.adam(),
            batch: config.batch,
            first_step,
            updates_before: first_step - 1,
            steps,
        }
    }

    fn read2(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    /// Runs `steps` steps from `first_step` in chunks of at most max_chunk_steps.
    fn run_gpu(
        gpu: &mut GpuExecutor,
        config: &TrainingConfig,
        start: FusedState,
        steps: u64,
    ) -> ChunkResult {
        let r = gpu.run_chunk(start, &spec(config, 1, steps)).unwrap();
        assert_eq!(r.steps_run, steps);
        r
    }

    #[test]
    fn gpu_philox_matches_the_host_twin() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let cases: [([u32; 2], [u32; 4]); 5] = [
            ([0, 0], [0, 0, 0, 0]),
            (
                [0xffff_ffff; 2],
                [0xffff_fffc, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff],
            ),
            (
                [0xa409_3822, 0x299f_31d0],
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
            ),
            ([42, 0], [7, 3, 0, 0]),
            ([0xdead_beef, 0x1234_5678], [0x8000_0000, 1, 99, 5]),
        ];
        for (key, ctr) in cases {
            let gpu = philox_words_on_gpu(&device, key, ctr).unwrap();
            let mut want = Vec::new();
            for u in 0..4u32 {
                want.extend(philox::philox4x32_10(
                    key,
                    [ctr[0].wrapping_add(u), ctr[1], ctr[2], ctr[3]],
                ));
            }
            assert_eq!(gpu, want, "key {key:08x?} counter {ctr:08x?}");
        }
        // The Random123 known answers themselves, through the GPU.
        let kat = philox_words_on_gpu(&device, [0xffff_ffff; 2], [0xffff_ffff; 4]).unwrap();
        assert_eq!(
            kat[..4],
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        let kat = philox_words_on_gpu(&device, [0, 0], [0; 4]).unwrap();
        assert_eq!(
            kat[..4],
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
    }

    #[test]
    fn gpu_line_batch_matches_the_host_stream() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let mut worst = (0f32, 0f32);
        for batch in [1usize, 3, 64, 4097] {
            for step in [1u64, 77, (1 << 32) + 5] {
                let config = TrainingConfig {
                    batch,
                    seed: 0x1_0000_002a,
                    ..Default::default()
                };
                let stream = config.line_stream();
                let (hx, hy) = stream.batch(step, batch);
                let (gx, gy) = line_batch(&stream, step, batch, &device);
                assert_eq!(gx.dims(), [batch, 1]);
                let (gx, gy) = (read2(gx), read2(gy));
                for i in 0..batch {
                    let dx = (gx[i] - hx[i]).abs() / hx[i].abs().max(1.0);
                    let dy = (gy[i] - hy[i]).abs() / hy[i].abs().max(1.0);
                    worst = (worst.0.max(dx), worst.1.max(dy));
                    assert!(
                        dx <= 1e-6,
                        "batch {batch} step {step} x[{i}]: {} vs {}",
                        gx[i],
                        hx[i]
                    );
                    assert!(
                        dy <= 1e-5,
                        "batch {batch} step {step} y[{i}]: {} vs {}",
                        gy[i],
                        hy[i]
                    );
                }
            }
        }
        eprintln!(
            "line_batch: worst relative |dx| {:e}, |dy| {:e}",
            worst.0, worst.1
        );
    }

    #[test]
    fn gpu_chunk_matches_the_host_on_the_default_config() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let mut gpu = GpuExecutor::new(&device, false);
        let config = TrainingConfig::default();
        let start = FusedState::new(0.25, 0.0);
        let want = host::run_chunk(start, &spec(&config, 1, 1000));
        // In chunks of at most max_chunk_steps, as the engine runs it.
        let max = gpu.max_chunk_steps(config.batch);
        let mut state = start;
        let mut first = 1;
        let mut last = ChunkResult {
            state,
            steps_run: 0,
            last_loss: f32::NAN,
            diverged: None,
        };
        while first <= 1000 {
            let n = max.min(1001 - first);
            last = gpu.run_chunk(state, &spec(&config, first, n)).unwrap();
            assert_eq!(last.steps_run, n);
            state = last.state;
            first += n;
        }
        eprintln!("gpu {:?}\nhost {:?}", last, want);
        assert!(
            (state.w - want.state.w).abs() <= 1e-4,
            "{state:?} vs {want:?}"
        );
        assert!(
            (state.b - want.state.b).abs() <= 1e-4,
            "{state:?} vs {want:?}"
        );
        assert!((last.last_loss - want.last_loss).abs() <= 1e-3 * want.last_loss.abs().max(1.0));
        assert!(last.diverged.is_none());
        // Odd batches too.
        for batch in [1usize, 3, 4097] {
            let config = TrainingConfig {
                batch,
                ..Default::default()
            };
            let want = host::run_chunk(start, &spec(&config, 1, 50));
            let got = run_gpu(&mut gpu, &config, start, 50);
            assert!(
                (got.state.w - want.state.w).abs() <= 1e-4,
                "batch {batch}: {got:?} vs {want:?}"
            );
            assert!(
                (got.state.b - want.state.b).abs() <= 1e-4,
                "batch {batch}: {got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn gpu_large_batch_two_dispatch_path_matches_the_host() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let mut gpu = GpuExecutor::new(&device, false);
        let config = TrainingConfig {
            batch: 200_000,
            ..Default::default()
        };
        assert!(config.batch as u64 > 2 * SMALL_MAX_PAIRS);
        let start = FusedState::new(0.25, 0.0);
        let want = host::run_chunk(start, &spec(&config, 1, 30));
        let got = run_gpu(&mut gpu, &config, start, 30);
        eprintln!("gpu {got:?}\nhost {want:?}");
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-3 * b.abs().max(1e-2);
        assert!(
            close(got.state.w, want.state.w) && close(got.state.b, want.state.b),
            "{got:?} vs {want:?}"
        );
        assert!(close(got.last_loss, want.last_loss), "{got:?} vs {want:?}");
        // Composition on this path as well.
        let a = gpu.run_chunk(start, &spec(&config, 1, 12)).unwrap();
        let b = gpu.run_chunk(a.state, &spec(&config, 13, 18)).unwrap();
        assert_eq!(b.state, got.state);
    }

    #[test]
    fn the_cpu_adapter_one_workgroup_path_takes_large_batches_and_matches_the_host() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let mut gpu = GpuExecutor::new(&device, true);
        let config = TrainingConfig {
            batch: 200_000,
            ..Default::default()
        };
        assert!((config.batch as u64).div_ceil(2) <= CPU_ADAPTER_MAX_PAIRS);
        let start = FusedState::new(0.25, 0.0);
        let want = host::run_chunk(start, &spec(&config, 1, 30));
        let got = run_gpu(&mut gpu, &config, start, 30);
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-3 * b.abs().max(1e-2);
        assert!(
            close(got.state.w, want.state.w) && close(got.state.b, want.state.b),
            "{got:?} vs {want:?}"
        );
        assert_eq!(got.steps_run, 30);
    }

    #[test]
    fn gpu_chunks_compose_bit_for_bit() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let mut gpu = GpuExecutor::new(&device, false);
        let config = TrainingConfig::default();
        let start = FusedState::new(0.25, 0.0);
        let whole = gpu.run_chunk(start, &spec(&config, 1, 300)).unwrap();
        let first = gpu.run_chunk(start, &spec(&config, 1, 120)).unwrap();
        let rest = gpu
            .run_chunk(first.state, &spec(&config, 121, 180))
            .unwrap();
        assert_eq!(whole.state, rest.state);
        assert_eq!(whole.last_loss.to_bits(), rest.last_loss.to_bits());
        assert_eq!(whole.steps_run, 300);
    }

    #[test]
    fn gpu_chunk_stops_at_the_first_bad_step_like_the_host() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let mut gpu = GpuExecutor::new(&device, false);
        let start = FusedState::new(0.25, 0.0);
        for batch in [64usize, 20_000] {
            let huge = TrainingConfig {
                batch,
                true_w: 3e38,
                x_low: -3e30,
                x_high: 3e30,
                ..Default::default()
            };
            let want = host::run_chunk(start, &spec(&huge, 1, 10));
            let got = gpu.run_chunk(start, &spec(&huge, 1, 10)).unwrap();
            assert_eq!(got.steps_run, 0, "batch {batch}");
            assert_eq!(got.diverged.map(|d| d.0), Some(1));
            assert_eq!(want.diverged.map(|d| d.0), Some(1));
            assert!(!got.diverged.unwrap().1.is_finite());
            assert_eq!(got.state, start);
            assert!(got.last_loss.is_nan());
        }
        // A divergence after some good steps: stop mid-chunk with the good steps applied.
        let config = TrainingConfig {
            lr: 1e30,
            ..Default::default()
        };
        let want = host::run_chunk(start, &spec(&config, 1, 50));
        let got = gpu.run_chunk(start, &spec(&config, 1, 50)).unwrap();
        eprintln!("mid-chunk divergence: gpu {got:?}\nhost {want:?}");
        assert_eq!(got.diverged.is_some(), want.diverged.is_some());
        assert_eq!(got.steps_run, want.steps_run);
    }

    #[test]
    fn gpu_max_chunk_steps_fit_the_driver_loop_limit() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let gpu = GpuExecutor::new(&device, false);
        let start = FusedState::new(0.25, 0.0);
        for batch in [1usize, 64, 513, 2 * SMALL_MAX_PAIRS as usize] {
            let config = TrainingConfig {
                batch,
                ..Default::default()
            };
            let max = gpu.max_chunk_steps(batch);
            // One dispatch of exactly `max` steps must run them all (run_chunk errs otherwise).
            let r = gpu
                .dispatch(start, &spec(&config, 1, max), batch as u32)
                .unwrap();
            assert_eq!(r.steps_run, max, "batch {batch}");
        }
    }

    #[test]
    fn gpu_reports_a_short_run_instead_of_accepting_it() {
        let _g = lock();
        let Some(backend) = BurnfitBackend::open(BackendKind::Wgpu).ok() else {
            let _ = wgpu();
            return;
        };
        let lavapipe = backend
            .adapter
            .as_ref()
            .is_some_and(|a| a.name.contains("llvmpipe"));
        let gpu = GpuExecutor::new(&backend.device, false);
        let config = TrainingConfig::default();
        let steps = 30_000;
        // Past lavapipe's 65,535 loop iterations per invocation: it must be an error there.
        let r = gpu.dispatch(FusedState::new(0.25, 0.0), &spec(&config, 1, steps), 64);
        eprintln!("one dispatch of {steps} steps, batch 64: {r:?}");
        match r {
            Ok(r) => assert!(!lavapipe && r.steps_run == steps, "{r:?}"),
            Err(e) => assert!(e.contains("of 30000 steps"), "{e}"),
        }
    }

    #[test]
    #[ignore = "timing: run with --ignored --nocapture"]
    fn gpu_timing_1000_steps_batch_64() {
        let _g = lock();
        let Some(device) = wgpu() else { return };
        let mut gpu = GpuExecutor::new(&device, false);
        for batch in [64usize, 4096, 200_000] {
            let config = TrainingConfig {
                batch,
                ..Default::default()
            };
            let steps = if batch > 10_000 { 100 } else { 1000 };
            let start = FusedState::new(0.25, 0.0);
            let _ = gpu.run_chunk(start, &spec(&config, 1, steps)).unwrap();
            let t = std::time::Instant::now();
            let g = gpu.run_chunk(start, &spec(&config, 1, steps)).unwrap();
            let gt = t.elapsed();
            let t = std::time::Instant::now();
            let h = host::run_chunk(start, &spec(&config, 1, steps));
            let ht = t.elapsed();
            eprintln!(
                "batch {batch}, {steps} steps: gpu {gt:?} (w {}), host {ht:?} (w {})",
                g.state.w, h.state.w
            );
        }
    }
}
