//! Counter-based random numbers, at the bottom of the house: every batch, split and initial
//! weight burnfit draws is a pure function of a seed and a counter, the same on every backend.
//!
//! - [`splitmix64`]: a 64-bit mixer that derives independent seeds (weight init, splits).
//! - [`philox`]: Philox4x32-10 and the line task's sample stream built on it, with the SIMD
//!   versions the fused CPU loop uses (its GPU twins are in [`crate::fused_step::kernel`]).

pub mod philox;

/// SplitMix64: a well-mixed 64-bit hash, used to derive independent seeds.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
