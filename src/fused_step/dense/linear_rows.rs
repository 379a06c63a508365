//! The linear model's loss and gradients over a batch of whole rows: each row `stride` floats
//! (a power of two up to 16, or whole 16-float lines beyond), its features, its target, then
//! zeros, as a table's rows lie in [`GatherRows`](crate::data::table::GatherRows). A row of
//! `S` ≤ 16 floats is one vector of `S` lanes: its prediction is a lane-wise product with the
//! weights (zero on the target's and the padding's lanes) summed as a fixed binary tree, and
//! its gradient one lane-wise multiply-add. A wider row is a few such vectors of 16 lanes: their
//! products added lane-wise, line after line, then the same tree. So a table's step is a few
//! vector instructions a row (the general step, built for wide layers, tiles its products as
//! samples × output neurons: with one output neuron most of each tile is wasted).
//!
//! The rows are read where they lie in the table, in the batch's order, each asked for
//! [`PREFETCH_LINES`] cache lines ahead (across the step's end into the next step's): on a
//! table larger than the caches the step is bound by fetching random rows, and a copy of the
//! batch first (gathered ahead on a second thread, as a large table's batches are for the
//! general step) cost twice the time (a 1,000,000 × 10 table's fused epoch at batch 1,024: 7-8
//! ms gathered ahead, 3.2-3.5 ms in place).
//!
//! Sums in a fixed order, as in the general step: rows in batch order within a group of
//! [`GROUP_ROWS`], then the groups in order; every multiply and add separate (no fused
//! multiply-add), so every instruction set gives the same bits.

use std::ops::Range;

use super::math::tree_sum;
use super::{GROUP_ROWS, Loss};
use crate::fused_step::host::InstructionSet;
use crate::prefetch::prefetch;

/// How many cache lines ahead of the row being read a picked row is prefetched (rows of one
/// line: that many rows ahead; of three lines, a third as many): enough misses in flight to
/// cover the memory's latency (a fused epoch of a 1,000,000 × 10 table at batch 1,024, 2-core
/// EPYC: 32 rows ahead 5.7-5.8 ms, 64 3.9-4.0, 128 3.2-3.3, 256 3.7-3.8).
const PREFETCH_LINES: usize = 128;

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
        /// Whether the step before read the rows just before the batch in `order` (its
        /// prefetches then reached into this batch already).
        warm: bool,
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

/// Whether [`row_sums`] takes rows of `stride` floats: a power of two up to a line, or whole
/// lines.
pub fn is_row_stride(stride: usize) -> bool {
    (stride.is_power_of_two() && stride <= LINE) || (stride > 0 && stride.is_multiple_of(LINE))
}

/// What a batch adds up to besides the weights' gradient: the bias's, and the loss summed over
/// the rows.
pub struct RowSums {
    /// Σ g (g: the loss's derivative at a row's error).
    pub bias: f32,
    /// Σ of the rows' losses.
    pub loss: f64,
}

/// The sums of `rows` (`stride` floats each, `w.len()` features then the target) under the
/// weights `w` and bias `b`: the weights' gradient Σ g·x into `grad` (`w.len()` values), the
/// rest returned. The same bits whichever way the rows are handed over.
pub fn row_sums(
    isa: InstructionSet,
    rows: BatchRows<'_>,
    stride: usize,
    w: &[f32],
    b: f32,
    loss: Loss,
    grad: &mut [f32],
) -> RowSums {
    debug_assert!(is_row_stride(stride) && w.len() < stride && grad.len() == w.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx512 if isa.is_available() => {
            // SAFETY: the CPU has AVX-512F, checked just above.
            unsafe { row_sums_avx512(rows, stride, w, b, loss, grad) }
        }
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx2 if isa.is_available() => {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { row_sums_avx2(rows, stride, w, b, loss, grad) }
        }
        _ => row_sums_any(rows, stride, w, b, loss, grad),
    }
}

/// [`row_sums_any`] compiled for AVX-512; the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_sums_avx512(
    rows: BatchRows<'_>,
    stride: usize,
    w: &[f32],
    b: f32,
    loss: Loss,
    grad: &mut [f32],
) -> RowSums {
    row_sums_any(rows, stride, w, b, loss, grad)
}

/// [`row_sums_any`] compiled for AVX2; the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_sums_avx2(
    rows: BatchRows<'_>,
    stride: usize,
    w: &[f32],
    b: f32,
    loss: Loss,
    grad: &mut [f32],
) -> RowSums {
    row_sums_any(rows, stride, w, b, loss, grad)
}

/// Lines of a row held on the stack (a row of up to 127 features); a wider row's sums are
/// kept on the heap.
const STACK_LINES: usize = 8;

#[inline(always)]
fn row_sums_any(
    rows: BatchRows<'_>,
    stride: usize,
    w: &[f32],
    b: f32,
    loss: Loss,
    grad: &mut [f32],
) -> RowSums {
    match stride {
        1 => narrow::<1>(rows, w, b, loss, grad),
        2 => narrow::<2>(rows, w, b, loss, grad),
        4 => narrow::<4>(rows, w, b, loss, grad),
        8 => narrow::<8>(rows, w, b, loss, grad),
        16 => narrow::<16>(rows, w, b, loss, grad),
        _ => wide(rows, stride, w, b, loss, grad),
    }
}

/// [`line_sums`] over rows of whole lines, however they are handed over.
#[inline(always)]
fn wide(
    rows: BatchRows<'_>,
    stride: usize,
    w: &[f32],
    b: f32,
    loss: Loss,
    grad: &mut [f32],
) -> RowSums {
    let lines = stride / LINE;
    let mut on_stack = [[[0.0f32; LINE]; STACK_LINES]; 3];
    let mut on_heap = Vec::new();
    let [w_lines, group, totals] = if lines <= STACK_LINES {
        on_stack.each_mut().map(|a| &mut a[..lines])
    } else {
        on_heap.resize(3 * lines, [0.0f32; LINE]);
        let (w_lines, rest) = on_heap.split_at_mut(lines);
        let (group, totals) = rest.split_at_mut(lines);
        [w_lines, group, totals]
    };
    for (k, v) in w.iter().enumerate() {
        w_lines[k / LINE][k % LINE] = *v;
    }
    let d = w.len();
    let sums = match rows {
        BatchRows::Packed(rows) => {
            let n = rows.len() / stride;
            line_sums(n, packed(rows, stride), w_lines, group, totals, d, b, loss)
        }
        BatchRows::Picked {
            table,
            order,
            batch,
            warm,
        } => {
            let n = batch.len();
            let ahead_rows = (PREFETCH_LINES / lines).max(1);
            let row = picking(table, order, batch, warm, stride, ahead_rows);
            line_sums(n, row, w_lines, group, totals, d, b, loss)
        }
    };
    for (k, g) in grad.iter_mut().enumerate() {
        *g = totals[k / LINE][k % LINE];
    }
    sums
}

/// Floats in a 64-byte cache line: a wide row is whole lines.
const LINE: usize = 16;

/// The 16 values of a line.
#[inline(always)]
fn line_of(values: &[f32]) -> [f32; LINE] {
    values[..LINE].try_into().expect("a line")
}

/// [`narrow_sums`] over rows of `S` lanes, however they are handed over.
#[inline(always)]
fn narrow<const S: usize>(
    rows: BatchRows<'_>,
    w: &[f32],
    b: f32,
    loss: Loss,
    grad: &mut [f32],
) -> RowSums {
    let mut padded = [0.0f32; S];
    padded[..w.len()].copy_from_slice(w);
    let (w, d) = (padded, grad.len());
    let (sums, lanes) = match rows {
        BatchRows::Packed(rows) => {
            narrow_sums::<S>(rows.len() / S, packed(rows, S), d, &w, b, loss)
        }
        BatchRows::Picked {
            table,
            order,
            batch,
            warm,
        } => {
            let n = batch.len();
            let row = picking(table, order, batch, warm, S, PREFETCH_LINES);
            narrow_sums::<S>(n, row, d, &w, b, loss)
        }
    };
    grad.copy_from_slice(&lanes[..d]);
    sums
}

/// Row `i` of a batch read in place: rows `order[batch]` of `table`, `stride` floats each. Each
/// call first asks for the row `ahead` rows on in `order` (each of its lines), reaching past the
/// batch into the next step's rows. The batch's first `ahead` rows are asked for at once here,
/// unless `warm` (the step before asked for them).
#[inline(always)]
fn picking<'a>(
    table: &'a [f32],
    order: &'a [u32],
    batch: Range<usize>,
    warm: bool,
    stride: usize,
    ahead: usize,
) -> impl Fn(usize) -> &'a [f32] {
    let next = &order[batch.start..];
    if !warm {
        for &r in next.iter().take(ahead) {
            fetch_row(table, r, stride);
        }
    }
    let picked = &order[batch];
    #[inline(always)]
    move |i| {
        if let Some(&r) = next.get(i + ahead) {
            fetch_row(table, r, stride);
        }
        &table[picked[i] as usize * stride..][..stride]
    }
}

/// Asks for each line of row `r` of `table` (rows of `stride` floats).
#[inline(always)]
fn fetch_row(table: &[f32], r: u32, stride: usize) {
    let start = r as usize * stride;
    let mut line = 0;
    while line < stride {
        prefetch(&table[start + line..]);
        line += LINE;
    }
}

/// Row `i` of rows of `stride` floats one after the other.
#[inline(always)]
fn packed<'a>(rows: &'a [f32], stride: usize) -> impl Fn(usize) -> &'a [f32] {
    #[inline(always)]
    move |i| &rows[i * stride..][..stride]
}

/// [`row_sums`] for `n` rows of `S` lanes (a power of two up to a line), row `i` being
/// `row(i)`, the target in lane `d`: the rest, and the lanes' gradient sums.
#[inline(always)]
fn narrow_sums<'a, const S: usize>(
    n: usize,
    row: impl Fn(usize) -> &'a [f32],
    d: usize,
    w: &[f32; S],
    b: f32,
    loss: Loss,
) -> (RowSums, [f32; S]) {
    let (one_over_n, two_over_n) = (1.0 / n as f32, 2.0 / n as f32);
    let Loss {
        kind, delta: huber, ..
    } = loss;
    let mut totals = [0.0f32; S];
    let mut total = RowSums {
        bias: 0.0,
        loss: 0.0,
    };
    for group in (0..n).step_by(GROUP_ROWS) {
        let mut lanes = [0.0f32; S];
        let mut bias = 0.0f32;
        for i in group..(group + GROUP_ROWS).min(n) {
            let row: &[f32; S] = row(i).try_into().expect("S lanes");
            let mut product = [0.0f32; S];
            for ((p, x), w) in product.iter_mut().zip(row).zip(w) {
                *p = x * w;
            }
            let e = tree_sum(&mut product) + b - row[d];
            total.loss += kind.value(f64::from(e), f64::from(huber));
            let g = kind.gradient(e, huber, one_over_n, two_over_n);
            for (lane, x) in lanes.iter_mut().zip(row) {
                *lane += g * x;
            }
            bias += g;
        }
        for (total, lane) in totals.iter_mut().zip(&lanes) {
            *total += lane;
        }
        total.bias += bias;
    }
    (total, totals)
}

/// [`row_sums`] for `n` rows of whole lines (`w.len()` of them), row `i` being `row(i)`, the
/// target at `d`: a row's products summed lane by lane over its lines in order, then over the
/// lanes as a fixed binary tree. The lanes' gradient sums go to `totals`; `group` is room for
/// a group's.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn line_sums<'a>(
    n: usize,
    row: impl Fn(usize) -> &'a [f32],
    w: &[[f32; LINE]],
    group: &mut [[f32; LINE]],
    totals: &mut [[f32; LINE]],
    d: usize,
    b: f32,
    loss: Loss,
) -> RowSums {
    let (one_over_n, two_over_n) = (1.0 / n as f32, 2.0 / n as f32);
    let Loss {
        kind, delta: huber, ..
    } = loss;
    totals.fill([0.0; LINE]);
    let mut total = RowSums {
        bias: 0.0,
        loss: 0.0,
    };
    for first in (0..n).step_by(GROUP_ROWS) {
        group.fill([0.0; LINE]);
        let mut bias = 0.0f32;
        for i in first..(first + GROUP_ROWS).min(n) {
            let row = row(i);
            let mut product = [0.0f32; LINE];
            let x = line_of(row);
            for ((p, x), w) in product.iter_mut().zip(&x).zip(&w[0]) {
                *p = x * w;
            }
            for (line, w) in w.iter().enumerate().skip(1) {
                let x = line_of(&row[line * LINE..]);
                for ((p, x), w) in product.iter_mut().zip(&x).zip(w) {
                    *p += x * w;
                }
            }
            let e = tree_sum(&mut product) + b - row[d];
            total.loss += kind.value(f64::from(e), f64::from(huber));
            let g = kind.gradient(e, huber, one_over_n, two_over_n);
            for (line, lanes) in group.iter_mut().enumerate() {
                let x = line_of(&row[line * LINE..]);
                for (lane, x) in lanes.iter_mut().zip(&x) {
                    *lane += g * x;
                }
            }
            bias += g;
        }
        for (totals, lanes) in totals.iter_mut().zip(group.iter()) {
            for (total, lane) in totals.iter_mut().zip(lanes) {
                *total += lane;
            }
        }
        total.bias += bias;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::LossKind;

    /// [`row_sums`]' results: the weights' gradient, the bias's, the loss.
    struct Got {
        lanes: Vec<f32>,
        bias: f32,
        loss: f64,
    }

    /// [`row_sums`] of rows with `d` features under the first `d` of `w`.
    #[allow(clippy::too_many_arguments)]
    fn sums(
        isa: InstructionSet,
        rows: BatchRows<'_>,
        stride: usize,
        d: usize,
        w: &[f32],
        b: f32,
        loss: Loss,
    ) -> Got {
        let mut lanes = vec![f32::NAN; d];
        let RowSums { bias, loss } = row_sums(isa, rows, stride, &w[..d], b, loss, &mut lanes);
        Got { lanes, bias, loss }
    }

    /// `n` rows of `d` features and a target in rows of `stride` floats, and weights (the
    /// first `d` of `stride`).
    fn rows_and_weights(n: usize, d: usize, stride: usize) -> (Vec<f32>, Vec<f32>) {
        let mut rows = vec![0.0f32; n * stride];
        for (r, row) in rows.chunks_exact_mut(stride).enumerate() {
            for (k, v) in row[..d].iter_mut().enumerate() {
                *v = ((r * 7 + k * 3) as f32 * 0.37).sin();
            }
            row[d] = (r as f32 * 0.11).cos();
        }
        let mut w = vec![0.0f32; stride];
        for (k, v) in w[..d].iter_mut().enumerate() {
            *v = 0.05 * k as f32 - 0.3;
        }
        (rows, w)
    }

    /// `got` against the same sums in f64 (the loss's value and slope written out).
    fn assert_near_f64(
        got: &Got,
        rows: &[f32],
        stride: usize,
        d: usize,
        w: &[f32],
        b: f32,
        loss: Loss,
    ) {
        let n = rows.len() / stride;
        let delta = f64::from(loss.delta);
        let mut want_lanes = vec![0.0f64; d];
        let (mut want_bias, mut want_loss) = (0.0f64, 0.0f64);
        for row in rows.chunks_exact(stride) {
            let e: f64 = row[..d]
                .iter()
                .zip(w)
                .map(|(x, w)| f64::from(*x) * f64::from(*w))
                .sum::<f64>()
                + f64::from(b)
                - f64::from(row[d]);
            let (value, slope) = match loss.kind {
                LossKind::Mse => (e * e, 2.0 * e),
                LossKind::Mae => (e.abs(), e.signum()),
                LossKind::Huber if e.abs() > delta => {
                    (delta * (e.abs() - 0.5 * delta), delta * e.signum())
                }
                LossKind::Huber => (0.5 * e * e, e),
            };
            want_loss += value;
            let g = slope / n as f64;
            for (l, x) in want_lanes.iter_mut().zip(&row[..d]) {
                *l += g * f64::from(*x);
            }
            want_bias += g;
        }
        let close = |a: f32, b: f64| (f64::from(a) - b).abs() <= 1e-5 * (1.0 + b.abs());
        for (k, (got, want)) in got.lanes.iter().zip(&want_lanes).enumerate() {
            assert!(
                close(*got, *want),
                "{:?} lane {k}: {got} vs {want}",
                loss.kind
            );
        }
        assert!(close(got.bias, want_bias), "{:?}", loss.kind);
        assert!(
            (got.loss - want_loss).abs() <= 1e-5 * want_loss,
            "{:?}",
            loss.kind
        );
    }

    /// `rows` read packed, and in place from a table in a shuffled order (the batch in the middle
    /// of an order that goes on past it), on every instruction set this CPU has: `want`'s bits.
    fn assert_same_bits_everywhere(
        want: &Got,
        rows: &[f32],
        stride: usize,
        d: usize,
        w: &[f32],
        b: f32,
        loss: Loss,
    ) {
        let n = rows.len() / stride;
        let total = n + 50;
        // i ↦ (i·m + 3) mod total, a permutation for a prime m that does not divide total.
        let m = [7, 11, 13]
            .into_iter()
            .find(|m| !total.is_multiple_of(*m))
            .unwrap() as u32;
        let order: Vec<u32> = (0..total as u32)
            .map(|i| (i * m + 3) % total as u32)
            .collect();
        let mut table = vec![0.0f32; total * stride];
        for (i, &r) in order[20..20 + n].iter().enumerate() {
            table[r as usize * stride..][..stride].copy_from_slice(&rows[i * stride..][..stride]);
        }
        for isa in InstructionSet::ALL {
            if !isa.is_available() {
                continue;
            }
            let picked = BatchRows::Picked {
                table: &table,
                order: &order,
                batch: 20..20 + n,
                warm: isa == InstructionSet::Avx2,
            };
            assert_eq!(picked.len(stride), n);
            for (how, rows) in [("packed", BatchRows::Packed(rows)), ("in place", picked)] {
                let got = sums(isa, rows, stride, d, w, b, loss);
                assert_eq!(got.lanes, want.lanes, "{isa:?} {how}");
                assert_eq!(got.bias.to_bits(), want.bias.to_bits(), "{isa:?} {how}");
                assert_eq!(got.loss.to_bits(), want.loss.to_bits(), "{isa:?} {how}");
            }
        }
    }

    #[test]
    fn row_sums_are_the_rows_loss_and_gradient_in_order_with_any_instructions() {
        let huber = Loss {
            kind: LossKind::Huber,
            delta: 0.75,
            ..Loss::default()
        };
        let mae = Loss {
            kind: LossKind::Mae,
            ..Loss::default()
        };
        // 600 rows (three groups, the last short) of 10 features in 16-float rows; 2 features
        // in 4; 40 features in 48 (three lines); 16 in 32 (the target alone on its line).
        for (d, stride, n) in [(10, 16, 600), (2, 4, 300), (40, 48, 300), (16, 32, 257)] {
            let (rows, w) = rows_and_weights(n, d, stride);
            for loss in [Loss::default(), mae, huber] {
                let got = sums(
                    InstructionSet::Portable,
                    BatchRows::Packed(&rows),
                    stride,
                    d,
                    &w,
                    -0.5,
                    loss,
                );
                assert_eq!(got.lanes.len(), d);
                assert_near_f64(&got, &rows, stride, d, &w, -0.5, loss);
                assert_same_bits_everywhere(&got, &rows, stride, d, &w, -0.5, loss);
            }
        }
    }

    #[test]
    fn a_one_line_row_is_summed_in_the_single_vector_form() {
        // A 16-float row (one line): the sums of the single-vector form, written out here —
        // products, tree, lane-wise gradient, groups in order (the bits every earlier version
        // gave, so a checkpoint trained before resumes the same).
        let (d, stride, n) = (10, 16, 600);
        let (rows, w) = rows_and_weights(n, d, stride);
        let w16: [f32; 16] = w[..16].try_into().unwrap();
        let got = sums(
            InstructionSet::Portable,
            BatchRows::Packed(&rows),
            stride,
            d,
            &w,
            0.25,
            Loss::default(),
        );
        let (mut lanes, mut bias, mut loss) = ([0.0f32; 16], 0.0f32, 0.0f64);
        for group in rows.chunks(GROUP_ROWS * stride) {
            let (mut gl, mut gb) = ([0.0f32; 16], 0.0f32);
            for row in group.chunks_exact(stride) {
                let mut p = [0.0f32; 16];
                for k in 0..16 {
                    p[k] = row[k] * w16[k];
                }
                let e = tree_sum(&mut p) + 0.25 - row[d];
                loss += f64::from(e) * f64::from(e);
                let g = (2.0 / n as f32) * e;
                for k in 0..16 {
                    gl[k] += g * row[k];
                }
                gb += g;
            }
            for k in 0..16 {
                lanes[k] += gl[k];
            }
            bias += gb;
        }
        assert_eq!(got.lanes, lanes[..d]);
        assert_eq!(
            (got.bias.to_bits(), got.loss.to_bits()),
            (bias.to_bits(), loss.to_bits())
        );
    }
}
