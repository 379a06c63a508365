//! The one data stream of every backend and engine: Philox4x32-10, a counter-based generator
//! (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11 — what cuRAND and
//! PyTorch's CUDA generator use), and the transform from its words to points on the line.
//!
//! Sample `i` of the batch of step `k` is a pure function of `(seed, k, i)`:
//! - key = the seed's two 32-bit halves; counter = (k low, k high, i / 2, 0): one Philox block
//!   serves the pair of samples 2j and 2j + 1;
//! - x of sample 2j from word 0, of sample 2j + 1 from word 1: `x_low + (x_high − x_low)·u` with
//!   `u` = the word's top 24 bits / 2^24, in [0, 1);
//! - the two noises by Box–Muller from words 2 and 3: `R = √(−2·ln u1)` with
//!   u1 = (top 24 bits + 1) / 2^24 in (0, 1], angle θ = 2π·u2; sample 2j gets `R·cos θ`, sample
//!   2j + 1 gets `R·sin θ`;
//! - y = true_w·x + true_b + noise·n.
//!
//! `ln`, `sin` and `cos` are this module's own polynomials ([`ln_unit`], [`sin_cos_turns`]),
//! accurate to a few f32 ulps, so that the GPU kernel computes the same arithmetic as this host
//! code (and so that the CPU loop vectorises). The WGSL twin of every function here is in
//! `fused_step/kernel.rs`; a test holds them together.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds: four 32-bit words from a 64-bit key and a 128-bit counter.
#[inline(always)]
pub fn philox4x32_10(key: [u32; 2], counter: [u32; 4]) -> [u32; 4] {
    let [mut x0, mut x1, mut x2, mut x3] = counter;
    let [mut k0, mut k1] = key;
    for _ in 0..10 {
        let p0 = u64::from(x0) * u64::from(M0);
        let p1 = u64::from(x2) * u64::from(M1);
        x0 = ((p1 >> 32) as u32) ^ x1 ^ k0;
        x1 = p1 as u32;
        x2 = ((p0 >> 32) as u32) ^ x3 ^ k1;
        x3 = p0 as u32;
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    [x0, x1, x2, x3]
}

/// 2^-24: the spacing of the 24-bit uniforms.
pub const INV_2_24: f32 = 1.0 / 16_777_216.0;

/// The top 24 bits of a word as a uniform in [0, 1), exactly representable.
#[inline(always)]
pub fn unit(word: u32) -> f32 {
    (word >> 8) as f32 * INV_2_24
}

/// ln(u) for u in (0, 1] (any positive normal f32, in fact): u = m·2^e with m in [√½, √2),
/// ln u = e·ln 2 + 2·atanh((m − 1)/(m + 1)), the series to s⁹.
#[inline(always)]
pub fn ln_unit(u: f32) -> f32 {
    let bits = u.to_bits();
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    // Selects, not branches, so that the CPU loop vectorises.
    let big = m > std::f32::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = ((bits >> 23) & 0xff) as i32 - 127 + i32::from(big);
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series =
        s * (2.0 + s2 * (2.0 / 3.0 + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0)))));
    e as f32 * std::f32::consts::LN_2 + series
}

/// (sin θ, cos θ) for θ = 2π·k/2^24, k the top 24 bits of `word`: the quadrant from k's top two
/// bits, then Taylor series around the middle of the quadrant (|ψ| ≤ π/4).
#[inline(always)]
pub fn sin_cos_turns(word: u32) -> (f32, f32) {
    let k = word >> 8;
    let quadrant = k >> 22;
    let within = (k & 0x3f_ffff) as f32 * (std::f32::consts::FRAC_PI_2 / 4_194_304.0);
    let psi = within - std::f32::consts::FRAC_PI_4;
    let p2 = psi * psi;
    let sin_psi = psi
        * (1.0
            + p2 * (-1.0 / 6.0
                + p2 * (1.0 / 120.0 + p2 * (-1.0 / 5040.0 + p2 * (1.0 / 362_880.0)))));
    let cos_psi = 1.0
        + p2 * (-0.5
            + p2 * (1.0 / 24.0
                + p2 * (-1.0 / 720.0 + p2 * (1.0 / 40_320.0 + p2 * (-1.0 / 3_628_800.0)))));
    // φ = ψ + π/4: sin φ = (sin ψ + cos ψ)/√2, cos φ = (cos ψ − sin ψ)/√2.
    let s = (sin_psi + cos_psi) * std::f32::consts::FRAC_1_SQRT_2;
    let c = (cos_psi - sin_psi) * std::f32::consts::FRAC_1_SQRT_2;
    // Quadrants 0..3 give (s, c), (c, −s), (−s, −c), (−c, s): swap on odd quadrants, negate
    // the sine in the lower half-turn and the cosine in quadrants 1 and 2 — by the sign bit,
    // so that the CPU loop vectorises.
    let swap = quadrant & 1 == 1;
    let (sin, cos) = if swap { (c, s) } else { (s, c) };
    let sin_sign = (quadrant >> 1) << 31;
    let cos_sign = ((quadrant ^ (quadrant >> 1)) & 1) << 31;
    (
        f32::from_bits(sin.to_bits() ^ sin_sign),
        f32::from_bits(cos.to_bits() ^ cos_sign),
    )
}

/// The synthetic line as a Philox stream: everything needed to compute any sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineStream {
    /// Philox key: the seed's low and high halves.
    pub key: [u32; 2],
    /// Lower end of x.
    pub x_low: f32,
    /// x_high − x_low.
    pub x_span: f32,
    /// Slope of the line.
    pub true_w: f32,
    /// Intercept of the line.
    pub true_b: f32,
    /// Standard deviation of the noise.
    pub noise: f32,
}

impl LineStream {
    /// The stream of `seed`: x ~ U(x_low, x_high), y = true_w·x + true_b + N(0, noise²).
    pub fn new(seed: u64, x_low: f32, x_high: f32, true_w: f32, true_b: f32, noise: f32) -> Self {
        Self {
            key: [seed as u32, (seed >> 32) as u32],
            x_low,
            x_span: x_high - x_low,
            true_w,
            true_b,
            noise,
        }
    }

    /// Samples 2·`pair` and 2·`pair` + 1 of step `step`: `[(x, y); 2]`.
    #[inline(always)]
    pub fn pair(&self, step: u64, pair: u32) -> [(f32, f32); 2] {
        self.samples(philox4x32_10(
            self.key,
            [step as u32, (step >> 32) as u32, pair, 0],
        ))
    }

    /// The two samples of one Philox block's words.
    #[inline(always)]
    pub fn samples(&self, [r0, r1, r2, r3]: [u32; 4]) -> [(f32, f32); 2] {
        let radius = (-2.0 * ln_unit(((r2 >> 8) + 1) as f32 * INV_2_24)).sqrt();
        let (sin, cos) = sin_cos_turns(r3);
        let x0 = self.x_low + self.x_span * unit(r0);
        let x1 = self.x_low + self.x_span * unit(r1);
        [
            (
                x0,
                self.true_w * x0 + self.true_b + self.noise * (radius * cos),
            ),
            (
                x1,
                self.true_w * x1 + self.true_b + self.noise * (radius * sin),
            ),
        ]
    }

    /// The words of `N` consecutive Philox blocks (pairs `first_pair`..), the same as
    /// [`philox4x32_10`] gives each, computed lane by lane so that the compiler vectorises them.
    #[inline(always)]
    pub fn words<const N: usize>(&self, step: u64, first_pair: u32) -> [[u32; N]; 4] {
        let mut x0 = [step as u32; N];
        let mut x1 = [(step >> 32) as u32; N];
        let mut x2: [u32; N] = std::array::from_fn(|i| first_pair.wrapping_add(i as u32));
        let mut x3 = [0u32; N];
        let [mut k0, mut k1] = self.key;
        for _ in 0..10 {
            for i in 0..N {
                let p0 = u64::from(x0[i]) * u64::from(M0);
                let p1 = u64::from(x2[i]) * u64::from(M1);
                x0[i] = ((p1 >> 32) as u32) ^ x1[i] ^ k0;
                x1[i] = p1 as u32;
                x2[i] = ((p0 >> 32) as u32) ^ x3[i] ^ k1;
                x3[i] = p0 as u32;
            }
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        [x0, x1, x2, x3]
    }

    /// The whole batch of `step`: `(x, y)`, `batch` values each.
    pub fn batch(&self, step: u64, batch: usize) -> (Vec<f32>, Vec<f32>) {
        let mut xs = Vec::with_capacity(batch + 1);
        let mut ys = Vec::with_capacity(batch + 1);
        for pair in 0..batch.div_ceil(2) {
            for (x, y) in self.pair(step, pair as u32) {
                xs.push(x);
                ys.push(y);
            }
        }
        xs.truncate(batch);
        ys.truncate(batch);
        (xs, ys)
    }
}

/// Sixteen Philox4x32-10 blocks at once with AVX2: the same words as [`philox4x32_10`], for
/// pairs `first_pair..first_pair + 16` of `step`.
///
/// As in [`words_x16_avx512`], each block's words live in the low halves of 64-bit lanes (four
/// vectors of four blocks: the even and the odd blocks of each half), so one `vpmuludq` is a
/// whole product and its low half needs no instruction. At the end, one shift and one blend per
/// eight words put the odd blocks' words between the even ones'.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn words_x16_avx2(key: [u32; 2], step: u64, first_pair: u32) -> [[u32; 16]; 4] {
    use std::arch::x86_64::*;
    let splat = |v: u32| _mm256_set1_epi64x(i64::from(v));
    let (m0, m1) = (splat(M0), splat(M1));
    // Vector j holds blocks 8·(j / 2) + (j % 2) + 2·lane: evens and odds of each half.
    let pairs = |j: u32| {
        let first = first_pair.wrapping_add(8 * (j / 2) + j % 2);
        _mm256_add_epi64(splat(first), _mm256_setr_epi64x(0, 2, 4, 6))
    };
    let mut x0 = [splat(step as u32); 4];
    let mut x1 = [splat((step >> 32) as u32); 4];
    let mut x2 = [pairs(0), pairs(1), pairs(2), pairs(3)];
    let mut x3 = [_mm256_setzero_si256(); 4];
    let [mut k0, mut k1] = key;
    for _ in 0..10 {
        let (key0, key1) = (splat(k0), splat(k1));
        for j in 0..4 {
            let p0 = _mm256_mul_epu32(x0[j], m0);
            let p1 = _mm256_mul_epu32(x2[j], m1);
            x0[j] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64::<32>(p1), x1[j]), key0);
            x1[j] = p1;
            x2[j] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64::<32>(p0), x3[j]), key1);
            x3[j] = p0;
        }
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    // Per half: the even blocks' low halves, the odd blocks' moved up into the high halves.
    let words = |x: [__m256i; 4]| {
        let mut out = [0u32; 16];
        for half in 0..2 {
            let (even, odd) = (x[2 * half], x[2 * half + 1]);
            let eight = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
            // SAFETY: `out[8 * half..]` has 32 writable bytes; the store is unaligned.
            unsafe { _mm256_storeu_si256(out[8 * half..].as_mut_ptr().cast(), eight) };
        }
        out
    };
    [words(x0), words(x1), words(x2), words(x3)]
}

/// Sixteen Philox4x32-10 blocks at once with AVX-512: the same words as [`philox4x32_10`], for
/// pairs `first_pair..first_pair + 16` of `step`.
///
/// Each block's words live in the low halves of 64-bit lanes, so one `vpmuludq` gives a whole
/// 32×32→64 product: its high half is a shift away and its low half needs nothing at all (the
/// next multiply reads only the low 32 bits of a lane, and the garbage in the high halves never
/// reaches a low half). The two XORs of a round are one three-way `vpternlogd`.
///
/// # Safety
/// The CPU must support AVX-512F (which Rust takes to imply AVX2 and FMA, as every real CPU
/// with it has them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn words_x16_avx512(key: [u32; 2], step: u64, first_pair: u32) -> [[u32; 16]; 4] {
    use std::arch::x86_64::*;
    /// a ^ b ^ c.
    const XOR3: i32 = 0x96;
    let splat = |v: u32| _mm512_set1_epi64(i64::from(v));
    let (m0, m1) = (splat(M0), splat(M1));
    // Two sets of eight blocks: pairs first_pair + 0..8 and first_pair + 8..16.
    let lanes = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    let pairs = |offset: u32| _mm512_add_epi64(splat(first_pair.wrapping_add(offset)), lanes);
    let mut x0 = [splat(step as u32); 2];
    let mut x1 = [splat((step >> 32) as u32); 2];
    let mut x2 = [pairs(0), pairs(8)];
    let mut x3 = [_mm512_setzero_si512(); 2];
    let [mut k0, mut k1] = key;
    for _ in 0..10 {
        let (key0, key1) = (splat(k0), splat(k1));
        for half in 0..2 {
            let p0 = _mm512_mul_epu32(x0[half], m0);
            let p1 = _mm512_mul_epu32(x2[half], m1);
            x0[half] =
                _mm512_ternarylogic_epi32::<XOR3>(_mm512_srli_epi64::<32>(p1), x1[half], key0);
            x1[half] = p1;
            x2[half] =
                _mm512_ternarylogic_epi32::<XOR3>(_mm512_srli_epi64::<32>(p0), x3[half], key1);
            x3[half] = p0;
        }
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    // The low halves of the two sets' lanes, in block order.
    let words = |[low, high]: [__m512i; 2]| {
        let mut out = [0u32; 16];
        // SAFETY: `out` is 64 writable bytes: 32 for each half, unaligned stores.
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr().cast(), _mm512_cvtepi64_epi32(low));
            _mm256_storeu_si256(out[8..].as_mut_ptr().cast(), _mm512_cvtepi64_epi32(high));
        }
        out
    };
    [words(x0), words(x1), words(x2), words(x3)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainingConfig;

    /// Random123's known-answer vectors for philox4x32 with 10 rounds (kat_vectors):
    /// (counter, key, output).
    const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0, 0, 0, 0],
            [0, 0],
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
        ),
        (
            [0xffff_ffff; 4],
            [0xffff_ffff; 2],
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
        ),
        (
            [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
            [0xa409_3822, 0x299f_31d0],
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
        ),
    ];

    #[test]
    fn philox_matches_the_random123_known_answers() {
        for (counter, key, expected) in KAT {
            assert_eq!(
                philox4x32_10(key, counter),
                expected,
                "counter {counter:08x?}"
            );
        }
    }

    #[test]
    fn ln_is_within_a_few_ulps_of_std() {
        for k in (0..(1u32 << 24))
            .step_by(997)
            .chain([0, 1, 2, (1 << 24) - 1])
        {
            let u = (k + 1) as f32 * INV_2_24;
            let (ours, std) = (ln_unit(u), u.ln());
            assert!(
                (ours - std).abs() <= 4.0 * f32::EPSILON * std.abs().max(1.0),
                "ln {u}: {ours} vs {std}"
            );
        }
    }

    #[test]
    fn sin_cos_are_within_a_few_ulps_of_std() {
        for k in
            (0..(1u32 << 24))
                .step_by(1009)
                .chain([0, 1 << 22, 1 << 23, 3 << 22, (1 << 24) - 1])
        {
            let theta = (k as f64) * std::f64::consts::TAU / 16_777_216.0;
            let (s, c) = sin_cos_turns(k << 8);
            assert!(
                (f64::from(s) - theta.sin()).abs() < 4e-7,
                "sin {theta}: {s}"
            );
            assert!(
                (f64::from(c) - theta.cos()).abs() < 4e-7,
                "cos {theta}: {c}"
            );
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // i is the lane and the counter offset at once
    fn lane_words_are_the_block_words() {
        let config = TrainingConfig {
            seed: 0x1234_5678_9abc,
            ..Default::default()
        };
        let stream = config.line_stream();
        let step = (1u64 << 32) + 7;
        let first = u32::MAX - 3;
        let lanes = stream.words::<8>(step, first);
        for i in 0..8 {
            let counter = [
                step as u32,
                (step >> 32) as u32,
                first.wrapping_add(i as u32),
                0,
            ];
            let one = philox4x32_10(stream.key, counter);
            assert_eq!([lanes[0][i], lanes[1][i], lanes[2][i], lanes[3][i]], one);
        }
        let wide = stream.words::<16>(step, first);
        assert_eq!(wide.map(|w| w[..8].to_vec()), lanes.map(|w| w.to_vec()));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present.
            let avx2 = unsafe { words_x16_avx2(stream.key, step, first) };
            assert_eq!(avx2, wide);
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present.
            let avx512 = unsafe { words_x16_avx512(stream.key, step, first) };
            assert_eq!(avx512, wide);
        }
    }

    #[test]
    fn the_line_has_the_right_slope_noise_and_range() {
        let config = TrainingConfig::default();
        let stream = config.line_stream();
        let (x, y) = stream.batch(1, 100_001);
        assert_eq!((x.len(), y.len()), (100_001, 100_001));
        assert!(x.iter().all(|v| (-10.0..10.0).contains(v)));
        let residuals: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(x, y)| f64::from(y - (2.5 * x - 1.0)))
            .collect();
        let n = residuals.len() as f64;
        let mean = residuals.iter().sum::<f64>() / n;
        let std = (residuals.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.01, "noise mean {mean}");
        assert!((std - 0.5).abs() < 0.01, "noise std {std}");
        // A pure function of (seed, step, index); steps and seeds differ.
        assert_eq!(stream.batch(1, 10), stream.batch(1, 10));
        assert_eq!(stream.batch(1, 10).0[..9], stream.batch(1, 9).0[..]);
        assert_ne!(stream.batch(2, 10), stream.batch(1, 10));
        let other = TrainingConfig { seed: 43, ..config }.line_stream();
        assert_ne!(other.batch(1, 10), stream.batch(1, 10));
    }
}
