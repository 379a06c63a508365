//! The arithmetic of the dense step, written so that the compiler vectorises it for whatever
//! instruction set it is compiled for, with every sum in one fixed order: each output value is
//! accumulated over its inner index in sequence, and the only reductions across lanes
//! ([`dot`]) use a fixed lane count and a fixed tree. The matrix products use fused
//! multiply-adds (`f32::mul_add`, one rounding: the same bits in hardware or in software), every
//! other multiply and add is separate (Rust never fuses them on its own): so the portable, AVX2
//! and AVX-512 versions give the same bits. The fused multiply-add made the sine MLP's step 14 %
//! faster with AVX-512 (measured); the portable version on an x86-64 without FMA computes it in
//! software, slowly.

use crate::model::Activation;

/// Column tile: every width the step multiplies into is padded to a multiple of this.
pub const TILE: usize = 16;

/// `c[i, :] += Σ_k a[i, k] · b[k, :]` for `m` rows; `a` is `m × kd`, `b` is `kd × n` and `c`
/// is `m × n`, all row-major, `n` a multiple of [`TILE`]. Each value of `c` is accumulated over
/// `k` in order, one fused multiply-add each.
#[inline(always)]
pub fn gemm_acc(c: &mut [f32], a: &[f32], b: &[f32], m: usize, kd: usize, n: usize) {
    debug_assert!(
        n.is_multiple_of(TILE) && c.len() >= m * n && a.len() >= m * kd && b.len() >= kd * n
    );
    let mut i = 0;
    while i + 4 <= m {
        let mut j = 0;
        while j + 2 * TILE <= n {
            tile::<4, { 2 * TILE }>(c, a, b, i, j, kd, n);
            j += 2 * TILE;
        }
        if j < n {
            tile::<4, TILE>(c, a, b, i, j, kd, n);
        }
        i += 4;
    }
    while i < m {
        let mut j = 0;
        while j + 2 * TILE <= n {
            tile::<1, { 2 * TILE }>(c, a, b, i, j, kd, n);
            j += 2 * TILE;
        }
        if j < n {
            tile::<1, TILE>(c, a, b, i, j, kd, n);
        }
        i += 1;
    }
}

/// One `R × C` tile of [`gemm_acc`] at row `i0`, column `j0`, held in registers over `k`.
#[inline(always)]
fn tile<const R: usize, const C: usize>(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    i0: usize,
    j0: usize,
    kd: usize,
    n: usize,
) {
    let mut acc = [[0.0f32; C]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        row.copy_from_slice(&c[(i0 + r) * n + j0..][..C]);
    }
    for k in 0..kd {
        let b_row: &[f32; C] = b[k * n + j0..][..C].try_into().expect("C values");
        for (r, row) in acc.iter_mut().enumerate() {
            let a_ik = a[(i0 + r) * kd + k];
            for (acc, b) in row.iter_mut().zip(b_row) {
                *acc = a_ik.mul_add(*b, *acc);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[(i0 + r) * n + j0..][..C].copy_from_slice(row);
    }
}

/// `c[k, :] += Σ_i a[i, k] · b[i, :]` for `kd` rows of `c`: the product of `a` transposed
/// (`a` is `m × kd`, `b` is `m × n`, `c` is `kd × n`, row-major, `n` a multiple of [`TILE`])
/// without transposing it. Each value of `c` is summed over `i` in order.
#[inline(always)]
pub fn gemm_acc_transposed(c: &mut [f32], a: &[f32], b: &[f32], m: usize, kd: usize, n: usize) {
    debug_assert!(
        n.is_multiple_of(TILE) && c.len() >= kd * n && a.len() >= m * kd && b.len() >= m * n
    );
    let mut k = 0;
    while k + 4 <= kd {
        let mut j = 0;
        while j + 2 * TILE <= n {
            tile_transposed::<4, { 2 * TILE }>(c, a, b, k, j, m, kd, n);
            j += 2 * TILE;
        }
        if j < n {
            tile_transposed::<4, TILE>(c, a, b, k, j, m, kd, n);
        }
        k += 4;
    }
    while k < kd {
        let mut j = 0;
        while j + 2 * TILE <= n {
            tile_transposed::<1, { 2 * TILE }>(c, a, b, k, j, m, kd, n);
            j += 2 * TILE;
        }
        if j < n {
            tile_transposed::<1, TILE>(c, a, b, k, j, m, kd, n);
        }
        k += 1;
    }
}

/// One `R × C` tile of [`gemm_acc_transposed`] at row `k0` of `c`, column `j0`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_transposed<const R: usize, const C: usize>(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    k0: usize,
    j0: usize,
    m: usize,
    kd: usize,
    n: usize,
) {
    let mut acc = [[0.0f32; C]; R];
    for (r, row) in acc.iter_mut().enumerate() {
        row.copy_from_slice(&c[(k0 + r) * n + j0..][..C]);
    }
    for i in 0..m {
        let b_row: &[f32; C] = b[i * n + j0..][..C].try_into().expect("C values");
        for (r, row) in acc.iter_mut().enumerate() {
            let a_ik = a[i * kd + k0 + r];
            for (acc, b) in row.iter_mut().zip(b_row) {
                *acc = a_ik.mul_add(*b, *acc);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[(k0 + r) * n + j0..][..C].copy_from_slice(row);
    }
}

/// `Σ a[k]·b[k]`: below [`TILE`] values in order; otherwise over [`TILE`] lanes (lane
/// `k mod TILE`), the lanes then summed as a fixed binary tree. The same bits on every
/// instruction set.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() < TILE {
        return a.iter().zip(b).fold(0.0, |sum, (x, y)| sum + x * y);
    }
    let mut lanes = [0.0f32; TILE];
    let mut chunks_a = a.chunks_exact(TILE);
    let mut chunks_b = b.chunks_exact(TILE);
    for (ca, cb) in (&mut chunks_a).zip(&mut chunks_b) {
        for ((l, x), y) in lanes.iter_mut().zip(ca).zip(cb) {
            *l += x * y;
        }
    }
    for ((l, x), y) in lanes
        .iter_mut()
        .zip(chunks_a.remainder())
        .zip(chunks_b.remainder())
    {
        *l += x * y;
    }
    tree_sum(&mut lanes)
}

/// The sum of `values` as a fixed binary tree: halves added lane-wise until one is left.
#[inline(always)]
pub fn tree_sum<const S: usize>(values: &mut [f32; S]) -> f32 {
    let mut width = S;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            values[l] += values[l + width];
        }
    }
    values[0]
}

/// `acc[:] += s · x[:]`.
#[inline(always)]
pub fn axpy(acc: &mut [f32], s: f32, x: &[f32]) {
    for (acc, x) in acc.iter_mut().zip(x) {
        *acc += s * x;
    }
}

/// `a` (`m × kd`, row-major) transposed into `at` (`kd × m`).
#[inline(always)]
pub fn transpose(at: &mut [f32], a: &[f32], m: usize, kd: usize) {
    for i in 0..m {
        for k in 0..kd {
            at[k * m + i] = a[i * kd + k];
        }
    }
}

/// The activation applied in place.
#[inline(always)]
pub fn activate(activation: Activation, z: &mut [f32]) {
    match activation {
        Activation::Tanh => z.iter_mut().for_each(|z| *z = tanh(*z)),
        Activation::Relu => z
            .iter_mut()
            .for_each(|z| *z = if *z > 0.0 { *z } else { 0.0 }),
    }
}

/// `d[:] *= f'(z)` where `a = f(z)` is the activation's output (what the step keeps).
#[inline(always)]
pub fn times_derivative(activation: Activation, d: &mut [f32], a: &[f32]) {
    match activation {
        Activation::Tanh => {
            for (d, a) in d.iter_mut().zip(a) {
                *d *= 1.0 - a * a;
            }
        }
        Activation::Relu => {
            for (d, a) in d.iter_mut().zip(a) {
                *d = if *a > 0.0 { *d } else { 0.0 };
            }
        }
    }
}

/// tanh in plain arithmetic that vectorises (the platform's `tanhf` is a call per value): within
/// 2 ulp of `f64::tanh` rounded to f32 over the whole range (tested), exactly ±1 past |x| = 9.
///
/// tanh|x| = −q / (2 + q) with q = exp(−2|x|) − 1, where q is computed without cancellation as
/// 2ⁿ · (eʳ − 1) + (2ⁿ − 1): n = round(t / ln 2), r = t − n·ln 2 (ln 2 split in two parts, so r
/// is exact to f32), and eʳ − 1 the Taylor polynomial to r⁸ on |r| ≤ ln 2 / 2.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with its low 12 bits zero: n · LN2_HI is exact for |n| < 4096.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 · 2²³ rounds to the nearest integer (|v| < 2²²).
    const ROUND: f32 = 12_582_912.0;
    // NaN stays NaN (so a diverged run is seen); ±∞ gives ±1.
    let ax = x.abs();
    let ax = if ax > 9.0 { 9.0 } else { ax };
    let t = -2.0 * ax;
    let shifted = t * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (t - n * LN2_HI) - n * LN2_LO;
    let q = r
        * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0
                            + r * (1.0 / 720.0 + r * (1.0 / 5040.0 + r * (1.0 / 40320.0))))))));
    // 2ⁿ for n in −26..=0, built from its exponent bits. n is read from `shifted`'s low mantissa
    // bits (its exponent is that of 2²³, so its last bit is worth 1), not with `n as i32`: that
    // conversion saturates and maps NaN to 0, which the compiler does one value at a time.
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let two_n = f32::from_bits(n_int.wrapping_add(127) << 23);
    let q = two_n * q + (two_n - 1.0);
    (-q / (2.0 + q)).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_within_two_ulp_of_the_exact_value() {
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut worst = (0, 0.0f32);
        let mut x = -12.0f32;
        while x < 12.0 {
            let exact = (f64::from(x)).tanh() as f32;
            let got = tanh(x);
            let u = ulps(got.abs(), exact.abs());
            assert_eq!(got.is_sign_negative(), x.is_sign_negative(), "sign at {x}");
            if u > worst.0 {
                worst = (u, x);
            }
            x += 0.000_37;
        }
        assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(1e-30), 1e-30);
        assert_eq!(tanh(20.0), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn gemm_acc_is_the_ordered_product_plus_what_was_there() {
        let (m, kd, n) = (6, 5, 48);
        let a: Vec<f32> = (0..m * kd).map(|v| (v as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..kd * n).map(|v| (v as f32 * 0.11).cos()).collect();
        let mut c: Vec<f32> = (0..m * n).map(|v| v as f32).collect();
        let mut expected = c.clone();
        for i in 0..m {
            for j in 0..n {
                for k in 0..kd {
                    expected[i * n + j] = a[i * kd + k].mul_add(b[k * n + j], expected[i * n + j]);
                }
            }
        }
        gemm_acc(&mut c, &a, &b, m, kd, n);
        assert_eq!(c, expected, "bit for bit: the same sums in the same order");
    }

    #[test]
    fn the_transposed_product_is_the_product_of_the_transpose() {
        let (m, kd, n) = (7, 6, 32);
        let a: Vec<f32> = (0..m * kd).map(|v| (v as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..m * n).map(|v| (v as f32 * 0.11).cos()).collect();
        let mut at = vec![0.0; m * kd];
        transpose(&mut at, &a, m, kd);
        let mut expected: Vec<f32> = (0..kd * n).map(|v| v as f32).collect();
        let mut c = expected.clone();
        gemm_acc(&mut expected, &at, &b, kd, m, n);
        gemm_acc_transposed(&mut c, &a, &b, m, kd, n);
        assert_eq!(c, expected);
    }

    #[test]
    fn dot_transpose_and_derivatives() {
        let a: Vec<f32> = (0..37).map(|v| v as f32).collect();
        let ones = vec![1.0f32; 37];
        assert_eq!(dot(&a, &ones), (0..37).sum::<i32>() as f32);
        let mut at = vec![0.0; 6];
        transpose(&mut at, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        assert_eq!(at, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let mut d = vec![1.0, 1.0];
        times_derivative(Activation::Tanh, &mut d, &[0.5, -1.0]);
        assert_eq!(d, [0.75, 0.0]);
        let mut d = vec![2.0, 2.0];
        times_derivative(Activation::Relu, &mut d, &[0.5, 0.0]);
        assert_eq!(d, [2.0, 0.0]);
        let mut z = vec![-1.0, 2.0];
        activate(Activation::Relu, &mut z);
        assert_eq!(z, [0.0, 2.0]);
    }
}
