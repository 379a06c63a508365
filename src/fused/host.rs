//! The fused engine on the CPU backends: a whole training step — draw the batch, forward, MSE,
//! both gradients, Adam — as one pass over the batch that never materialises it.
//!
//! The batch is cut into blocks of [`BLOCK_PAIRS`] Philox pairs; inside a block, [`LANES`]
//! pairs are computed side by side with one accumulator each (so the compiler can vectorise
//! without reordering a float sum), the lanes are added in a fixed order, and the blocks' sums
//! are added in f64 in block order. The result does not depend on how many threads run the
//! blocks: runs are bit-identical everywhere the same binary runs.

use rayon::prelude::*;

use super::{ChunkResult, ChunkSpec, FusedState};
use crate::data::LineStream;

/// Philox pairs (two samples each) computed side by side.
pub const LANES: usize = 8;

/// Pairs per block: the unit of work of one thread.
pub const BLOCK_PAIRS: u32 = 2048;

/// Batches with at least this many blocks are spread over threads (measured: below it, waking
/// the thread pool costs more than it saves).
pub const PARALLEL_MIN_BLOCKS: usize = 8;

/// Runs `spec.steps` steps from `state`, stopping before the first step whose loss is not
/// finite.
pub fn run_chunk(mut state: FusedState, spec: &ChunkSpec) -> ChunkResult {
    let mut last_loss = f32::NAN;
    for k in 0..spec.steps {
        let step = spec.first_step + k;
        let [sum_ex, sum_e, sum_ee] = batch_sums(&spec.stream, step, spec.batch, state.w, state.b);
        let n = spec.batch as f32;
        let loss = sum_ee / n;
        if !loss.is_finite() {
            return ChunkResult {
                state,
                steps_run: k,
                last_loss,
                diverged: Some((step, loss)),
            };
        }
        let scale = 2.0 / n;
        state = state.adam_step(
            &spec.adam,
            [scale * sum_ex, scale * sum_e],
            spec.updates_before + k + 1,
        );
        last_loss = loss;
    }
    ChunkResult {
        state,
        steps_run: spec.steps,
        last_loss,
        diverged: None,
    }
}

/// (Σ e·x, Σ e, Σ e²) over the batch of `step`, e = w·x + b − y.
pub fn batch_sums(stream: &LineStream, step: u64, batch: usize, w: f32, b: f32) -> [f32; 3] {
    let pairs = batch.div_ceil(2) as u32;
    let blocks = pairs.div_ceil(BLOCK_PAIRS) as usize;
    let block = |i: usize| {
        let start = i as u32 * BLOCK_PAIRS;
        block_sums(
            stream,
            step,
            batch,
            w,
            b,
            start,
            (start + BLOCK_PAIRS).min(pairs),
        )
    };
    let total = if blocks >= PARALLEL_MIN_BLOCKS {
        let sums: Vec<[f64; 3]> = (0..blocks).into_par_iter().map(block).collect();
        sums.into_iter().fold([0.0; 3], add3)
    } else {
        (0..blocks).map(block).fold([0.0; 3], add3)
    };
    total.map(|s| s as f32)
}

fn add3(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// The sums over pairs `start..end`; a batch of odd size has no second sample in its last pair.
fn block_sums(
    stream: &LineStream,
    step: u64,
    batch: usize,
    w: f32,
    b: f32,
    start: u32,
    end: u32,
) -> [f64; 3] {
    let mut ex = [0f32; LANES];
    let mut e = [0f32; LANES];
    let mut ee = [0f32; LANES];
    let mut pair = start;
    // Only the last pair of the batch can be half-filled.
    let full_end = if batch % 2 == 1 && end as usize == batch.div_ceil(2) {
        end - 1
    } else {
        end
    };
    while pair + LANES as u32 <= full_end {
        for lane in 0..LANES {
            let [(x0, y0), (x1, y1)] = stream.pair(step, pair + lane as u32);
            let e0 = w * x0 + b - y0;
            let e1 = w * x1 + b - y1;
            ex[lane] += e0 * x0 + e1 * x1;
            e[lane] += e0 + e1;
            ee[lane] += e0 * e0 + e1 * e1;
        }
        pair += LANES as u32;
    }
    for (lane, p) in (pair..end).enumerate() {
        let [(x0, y0), (x1, y1)] = stream.pair(step, p);
        let second = if p < full_end { 1.0 } else { 0.0 };
        let e0 = w * x0 + b - y0;
        let e1 = (w * x1 + b - y1) * second;
        ex[lane] += e0 * x0 + e1 * x1;
        e[lane] += e0 + e1;
        ee[lane] += e0 * e0 + e1 * e1;
    }
    let fold = |acc: [f32; LANES]| f64::from(acc.iter().sum::<f32>());
    [fold(ex), fold(e), fold(ee)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainingConfig;
    use crate::optim::Adam;

    fn spec(config: &TrainingConfig, first_step: u64, steps: u64) -> ChunkSpec {
        ChunkSpec {
            stream: LineStream::new(config),
            adam: Adam::new(config),
            batch: config.batch,
            first_step,
            updates_before: first_step - 1,
            steps,
        }
    }

    #[test]
    fn sums_match_a_plain_loop_over_the_drawn_batch() {
        for batch in [1, 2, 3, 17, 64, 4095, 4096 * 9 + 3] {
            let config = TrainingConfig {
                batch,
                ..Default::default()
            };
            let stream = LineStream::new(&config);
            let (xs, ys) = stream.batch(7, batch);
            let (w, b) = (0.3f32, -0.2f32);
            let mut want = [0f64; 3];
            for (x, y) in xs.iter().zip(&ys) {
                let e = f64::from(w * x + b - y);
                want[0] += e * f64::from(*x);
                want[1] += e;
                want[2] += e * e;
            }
            let got = batch_sums(&stream, 7, batch, w, b);
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (f64::from(*g) - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "batch {batch}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn chunks_compose_bit_for_bit() {
        let config = TrainingConfig::default();
        let start = FusedState::new(0.25, 0.0);
        let whole = run_chunk(start, &spec(&config, 1, 300));
        let first = run_chunk(start, &spec(&config, 1, 120));
        let rest = run_chunk(first.state, &spec(&config, 121, 180));
        assert_eq!(whole.state, rest.state);
        assert_eq!(whole.last_loss.to_bits(), rest.last_loss.to_bits());
    }

    #[test]
    fn converges_and_stops_at_the_first_bad_step() {
        let config = TrainingConfig::default();
        let done = run_chunk(FusedState::new(0.25, 0.0), &spec(&config, 1, 1000));
        assert!(
            (done.state.w - 2.5).abs() < 0.05 && (done.state.b + 1.0).abs() < 0.05,
            "{done:?}"
        );
        assert!(done.diverged.is_none() && done.steps_run == 1000);
        let huge = TrainingConfig {
            true_w: 3e38,
            x_low: -3e30,
            x_high: 3e30,
            ..Default::default()
        };
        let bad = run_chunk(FusedState::new(0.25, 0.0), &spec(&huge, 1, 10));
        assert_eq!(bad.steps_run, 0);
        assert_eq!(bad.diverged.map(|d| d.0), Some(1));
        assert_eq!(bad.state, FusedState::new(0.25, 0.0));
    }
}
