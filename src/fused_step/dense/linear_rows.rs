//! The linear model's loss and gradients over a batch of whole rows: each row `S` floats (a
//! power of two up to 16), its features, its target, then zeros, as a table's rows lie in
//! [`GatherRows`](crate::data::table::GatherRows). One row is one vector of `S` lanes: its
//! prediction is a lane-wise product with the weights (zero on the target's and the padding's
//! lanes) summed as a fixed binary tree, and its gradient one lane-wise multiply-add, so a
//! narrow table's step is a few instructions a row (the general step's per-row dot product of a
//! 10-input row is a chain of ten dependent adds).
//!
//! The rows are read where they lie in the table, in the batch's order, each asked for
//! [`PREFETCH_ROWS`] rows ahead (across the step's end into the next step's): on a table larger
//! than the caches the step is bound by fetching random rows, and a copy of the batch first (on
//! a second thread, as the general step's batches are) cost twice the time (a 1,000,000 × 10
//! table's fused epoch at batch 1,024: 7-8 ms gathered ahead, 3.2-3.3 ms in place).
//!
//! Sums in a fixed order, as in the general step: rows in batch order within a group of
//! [`GROUP_ROWS`], then the groups in order; every multiply and add separate (no fused
//! multiply-add), so every instruction set gives the same bits.

use std::ops::Range;

use super::{GROUP_ROWS, Loss};
use crate::fused_step::host::InstructionSet;
use crate::prefetch::prefetch;

/// How many rows ahead of the one being read a picked row is prefetched: enough misses in
/// flight to cover the memory's latency (a fused epoch of a 1,000,000 × 10 table at batch
/// 1,024, 2-core EPYC: 32 rows ahead 5.7-5.8 ms, 64 3.9-4.0, 128 3.2-3.3, 256 3.7-3.8).
const PREFETCH_ROWS: usize = 128;

/// A batch's rows, `stride` floats each (features, target, zeros), as the step reads them.
#[derive(Clone, Debug)]
pub enum BatchRows<'a> {
    /// One after the other (a gathered copy).
    Packed(&'a [f32]),
    /// Rows `order[batch]` of `table` (row `r` at `r × stride`), read where they lie. The rows
    /// `order` lists after the batch are the next steps': they are prefetched as the batch's end
    /// comes near, so the next step's first rows are on their way when it starts.
    Picked {
        /// The table's rows, from row 0.
        table: &'a [f32],
        /// The epoch's order of the rows (the batch's, then the next steps').
        order: &'a [u32],
        /// The batch's part of `order`.
        batch: Range<usize>,
    },
}

impl BatchRows<'_> {
    /// Rows in the batch.
    pub fn len(&self, stride: usize) -> usize {
        match self {
            BatchRows::Packed(rows) => rows.len() / stride,
            BatchRows::Picked { batch, .. } => batch.len(),
        }
    }
}

/// What a batch adds up to: the weights' gradient in the first `d` lanes (the target's lane
/// and the padding's hold nothing of use), the bias's, and the loss summed over the rows.
pub struct RowSums {
    /// Σ over rows of g·row, lane by lane (g: the loss's derivative at the row's error).
    pub lanes: [f32; 16],
    /// Σ g.
    pub bias: f32,
    /// Σ of the rows' losses.
    pub loss: f64,
}

/// The sums of `rows` (`stride` floats each, `d` features then the target) under the weights
/// `w` (the first `d` lanes; the rest 0) and bias `b`. The same bits whichever way the rows
/// are handed over.
pub fn row_sums(
    isa: InstructionSet,
    rows: BatchRows<'_>,
    stride: usize,
    d: usize,
    w: &[f32; 16],
    b: f32,
    loss: Loss,
) -> RowSums {
    debug_assert!(stride.is_power_of_two() && stride <= 16 && d < stride);
    debug_assert!(w[d..].iter().all(|v| *v == 0.0));
    match isa {
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx512 if isa.is_available() => {
            // SAFETY: the CPU has AVX-512F, checked just above.
            unsafe { row_sums_avx512(rows, stride, d, w, b, loss) }
        }
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx2 if isa.is_available() => {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { row_sums_avx2(rows, stride, d, w, b, loss) }
        }
        _ => row_sums_any(rows, stride, d, w, b, loss),
    }
}

/// [`row_sums_any`] compiled for AVX-512; the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_sums_avx512(
    rows: BatchRows<'_>,
    stride: usize,
    d: usize,
    w: &[f32; 16],
    b: f32,
    loss: Loss,
) -> RowSums {
    row_sums_any(rows, stride, d, w, b, loss)
}

/// [`row_sums_any`] compiled for AVX2; the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_sums_avx2(
    rows: BatchRows<'_>,
    stride: usize,
    d: usize,
    w: &[f32; 16],
    b: f32,
    loss: Loss,
) -> RowSums {
    row_sums_any(rows, stride, d, w, b, loss)
}

#[inline(always)]
fn row_sums_any(
    rows: BatchRows<'_>,
    stride: usize,
    d: usize,
    w: &[f32; 16],
    b: f32,
    loss: Loss,
) -> RowSums {
    match stride {
        1 => sums_of::<1>(rows, d, w, b, loss),
        2 => sums_of::<2>(rows, d, w, b, loss),
        4 => sums_of::<4>(rows, d, w, b, loss),
        8 => sums_of::<8>(rows, d, w, b, loss),
        _ => sums_of::<16>(rows, d, w, b, loss),
    }
}

/// [`sums`] over rows of `S` lanes, however they are handed over.
#[inline(always)]
fn sums_of<const S: usize>(
    rows: BatchRows<'_>,
    d: usize,
    w: &[f32; 16],
    b: f32,
    loss: Loss,
) -> RowSums {
    match rows {
        BatchRows::Packed(rows) => {
            let n = rows.len() / S;
            sums::<S>(n, |i| row_at::<S>(rows, i), d, w, b, loss)
        }
        BatchRows::Picked {
            table,
            order,
            batch,
        } => {
            let picked = &order[batch.clone()];
            let ahead = &order[batch.start..];
            // The batch's first rows' misses all at once (the step before asked for them too,
            // when there was one).
            for &r in ahead.iter().take(PREFETCH_ROWS) {
                prefetch(&table[r as usize * S..]);
            }
            let row = |i: usize| {
                if let Some(&r) = ahead.get(i + PREFETCH_ROWS) {
                    prefetch(&table[r as usize * S..]);
                }
                row_at::<S>(table, picked[i] as usize)
            };
            sums::<S>(picked.len(), row, d, w, b, loss)
        }
    }
}

/// Row `i` of rows of `S` floats.
#[inline(always)]
fn row_at<const S: usize>(rows: &[f32], i: usize) -> &[f32; S] {
    rows[i * S..][..S].try_into().expect("S lanes")
}

/// [`row_sums`] for `n` rows of `S` lanes, row `i` being `row(i)`.
#[inline(always)]
fn sums<'a, const S: usize>(
    n: usize,
    row: impl Fn(usize) -> &'a [f32; S],
    d: usize,
    w: &[f32; 16],
    b: f32,
    loss: Loss,
) -> RowSums {
    let w: &[f32; S] = w[..S].try_into().expect("S lanes");
    let (one_over_n, two_over_n) = (1.0 / n as f32, 2.0 / n as f32);
    let Loss {
        kind, delta: huber, ..
    } = loss;
    let mut total = RowSums {
        lanes: [0.0; 16],
        bias: 0.0,
        loss: 0.0,
    };
    for group in (0..n).step_by(GROUP_ROWS) {
        let mut lanes = [0.0f32; S];
        let mut bias = 0.0f32;
        for i in group..(group + GROUP_ROWS).min(n) {
            let row = row(i);
            let mut product = [0.0f32; S];
            for ((p, x), w) in product.iter_mut().zip(row).zip(w) {
                *p = x * w;
            }
            let mut width = S;
            while width > 1 {
                width /= 2;
                for l in 0..width {
                    product[l] += product[l + width];
                }
            }
            let e = product[0] + b - row[d];
            total.loss += kind.value(f64::from(e), f64::from(huber));
            let g = kind.gradient(e, huber, one_over_n, two_over_n);
            for (lane, x) in lanes.iter_mut().zip(row) {
                *lane += g * x;
            }
            bias += g;
        }
        for (total, lane) in total.lanes.iter_mut().zip(&lanes) {
            *total += lane;
        }
        total.bias += bias;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::LossKind;

    #[test]
    fn row_sums_are_the_rows_loss_and_gradient_in_order_with_any_instructions() {
        // 600 rows (three groups, the last short) of 10 features in 16-float rows.
        let (d, stride, n) = (10, 16, 600);
        let mut rows = vec![0.0f32; n * stride];
        for (r, row) in rows.chunks_exact_mut(stride).enumerate() {
            for (k, v) in row[..d].iter_mut().enumerate() {
                *v = ((r * 7 + k * 3) as f32 * 0.37).sin();
            }
            row[d] = (r as f32 * 0.11).cos();
        }
        let mut w = [0.0f32; 16];
        for (k, v) in w[..d].iter_mut().enumerate() {
            *v = 0.1 * k as f32 - 0.3;
        }
        let b = 0.25;
        let loss = Loss::default();
        let got = row_sums(
            InstructionSet::Portable,
            BatchRows::Packed(&rows),
            stride,
            d,
            &w,
            b,
            loss,
        );
        // The same sums written out: per row the tree over 16 lanes, per group in order.
        let mut want_lanes = [0.0f64; 16];
        let (mut want_bias, mut want_loss) = (0.0f64, 0.0f64);
        for row in rows.chunks_exact(stride) {
            let e: f64 = row[..d]
                .iter()
                .zip(&w)
                .map(|(x, w)| f64::from(*x) * f64::from(*w))
                .sum::<f64>()
                + f64::from(b)
                - f64::from(row[d]);
            want_loss += e * e;
            let g = 2.0 * e / n as f64;
            for (l, x) in want_lanes.iter_mut().zip(&row[..d]) {
                *l += g * f64::from(*x);
            }
            want_bias += g;
        }
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() <= 1e-5 * (1.0 + b.abs());
        for (k, (got, want)) in got.lanes.iter().zip(&want_lanes).take(d).enumerate() {
            assert!(close(*got, *want), "lane {k}");
        }
        assert!(close(got.bias, want_bias));
        assert!((got.loss - want_loss).abs() <= 1e-5 * want_loss);
        // Every instruction set this CPU has gives the same bits.
        for isa in [InstructionSet::Avx2, InstructionSet::Avx512] {
            if !isa.is_available() {
                continue;
            }
            let other = row_sums(isa, BatchRows::Packed(&rows), stride, d, &w, b, loss);
            assert_eq!(other.lanes, got.lanes, "{isa:?}");
            assert_eq!(other.bias.to_bits(), got.bias.to_bits(), "{isa:?}");
            assert_eq!(other.loss.to_bits(), got.loss.to_bits(), "{isa:?}");
        }
        // The same rows read in place from a table, picked out of order (the batch in the
        // middle of an order that goes on past it): the same bits, on every instruction set.
        let order: Vec<u32> = (0..n as u32 + 50)
            .map(|i| (i * 7 + 3) % (n as u32 + 50))
            .collect();
        let mut table = vec![0.0f32; (n + 50) * stride];
        for (i, &r) in order[20..20 + n].iter().enumerate() {
            table[r as usize * stride..][..stride].copy_from_slice(&rows[i * stride..][..stride]);
        }
        for isa in [
            InstructionSet::Portable,
            InstructionSet::Avx2,
            InstructionSet::Avx512,
        ] {
            if !isa.is_available() {
                continue;
            }
            let picked = BatchRows::Picked {
                table: &table,
                order: &order,
                batch: 20..20 + n,
            };
            assert_eq!(picked.len(stride), n);
            let other = row_sums(isa, picked, stride, d, &w, b, loss);
            assert_eq!(other.lanes, got.lanes, "{isa:?} in place");
            assert_eq!(other.bias.to_bits(), got.bias.to_bits(), "{isa:?} in place");
            assert_eq!(other.loss.to_bits(), got.loss.to_bits(), "{isa:?} in place");
        }
        // Narrow rows (2 features in 4 lanes), MAE.
        let rows4: Vec<f32> = (0..40)
            .map(|v| (v % 4 != 3) as u8 as f32 * v as f32)
            .collect();
        let mut w4 = [0.0f32; 16];
        w4[..2].copy_from_slice(&[0.5, -1.0]);
        let mae = Loss {
            kind: LossKind::Mae,
            ..Loss::default()
        };
        let sums = row_sums(
            InstructionSet::Portable,
            BatchRows::Packed(&rows4),
            4,
            2,
            &w4,
            0.0,
            mae,
        );
        let mut want = 0.0f64;
        for row in rows4.chunks_exact(4) {
            want += f64::from(0.5 * row[0] - row[1] - row[2]).abs();
        }
        assert_eq!(sums.loss, want);
    }
}
