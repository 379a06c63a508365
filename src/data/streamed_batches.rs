//! The minibatches of an out-of-core table, read from its cache as training goes, in an order
//! shuffled in bounded memory; both engines draw their batches here on an out-of-core run.
//!
//! # The order of an epoch
//! The cache's rows are cut into blocks of `B` consecutive rows (the last may be shorter), `B` =
//! [`BLOCK_ROWS`] (4,096), fewer for rows over 256 bytes: ⌊[`BLOCK_BYTES`] / row bytes⌋ (row bytes
//! = 4 × (features + 1)). Epoch `e` (from 0) visits the blocks in the order
//! [`block_order`]`(blocks, seed, e)`; consecutive runs of `W` blocks of that order form the
//! epoch's windows, with `W` = max(1, ⌊[`WINDOW_BYTES`] / (B × row bytes)⌋) (~800,000 rows a
//! window at 20 features). The training rows of window `k` — in the order of its blocks,
//! and in file order within a block — are visited in the order [`window_permutation`]`(n_k, seed,
//! e, k)`. Step `s` (from 1) takes positions `[(s − 1) mod spe × batch, …)` of the epoch's
//! sequence (spe = ⌈training rows / batch⌉, the last batch of an epoch may be smaller), epoch
//! `(s − 1) div spe`: like the in-memory order, a pure function of `(seed, step)` and the file,
//! so a resumed run reads exactly the batches the uninterrupted run read.
//!
//! A row's neighbours in a batch come from the same window (64 MiB of rows), not from the whole
//! file: rows sorted by time, say, mix within ~64 MiB of rows per
//! batch and across the file from batch to batch.
//!
//! # Memory and reads
//! A window is read block by block (one positioned read each) into memory, scaled to f32 as the
//! model sees it, laid out for random gathers ([`GatherRows`]: a row of up to 16 values padded
//! to a power of two, so a window of narrow rows takes up to 1.8 × 64 MiB); while the steps use
//! it, a second thread reads the next one. So memory holds two windows (≤ 2 × 115 MiB and
//! their orders; a single block of 1 MiB or a single row more for very wide rows) however big
//! the file is, and the reading overlaps the training.
//!
//! [`BLOCK_ROWS`]: super::out_of_core::BLOCK_ROWS
//! [`BLOCK_BYTES`]: super::out_of_core::BLOCK_BYTES

use std::sync::Arc;
use std::thread::JoinHandle;

use super::out_of_core::CachedRows;
use super::table::{GatherRows, block_order, window_permutation};
use crate::error::Result;

/// The memory of one shuffle window's rows, as cached (f32).
pub const WINDOW_BYTES: usize = 64 << 20;

/// How the cached values become what the model trains on: `(v − mean) / std`, per feature and
/// for the target (0 and 1 without standardization).
#[derive(Clone, Debug, PartialEq)]
pub struct RowScaling {
    /// Per feature.
    pub mean: Vec<f64>,
    /// Per feature.
    pub std: Vec<f64>,
    /// The target's mean and std.
    pub target: (f64, f64),
}

/// One window's training rows, scaled, and their order.
struct Window {
    epoch: u64,
    index: usize,
    rows: GatherRows,
    order: Vec<u32>,
}

/// What the reading thread needs: the rows, the scaling and the seed.
struct WindowReader {
    rows: Arc<CachedRows>,
    scaling: RowScaling,
    seed: u64,
}

impl WindowReader {
    /// Reads window `index` of `epoch`, whose blocks are `blocks`.
    fn load(&self, epoch: u64, index: usize, blocks: &[u32]) -> Result<Window> {
        let cache = &self.rows.cache;
        let (d, width) = (cache.d(), cache.width());
        let total = cache.rows();
        let block_rows = self.rows.block_rows();
        let capacity = blocks.len() * block_rows;
        let mut rows = GatherRows::compact_with_capacity(capacity, d);
        let (mut bytes, mut values) = (Vec::new(), Vec::new());
        let s = &self.scaling;
        for &block in blocks {
            let first = block as u64 * block_rows as u64;
            let n = (total - first).min(block_rows as u64) as usize;
            cache.read_rows(first, n, &mut bytes, &mut values)?;
            for (i, row) in values.chunks_exact(width).enumerate() {
                if self.rows.holdout.is_val(first + i as u64) {
                    continue;
                }
                let out = rows.push();
                for (((o, v), m), sd) in out.iter_mut().zip(&row[..d]).zip(&s.mean).zip(&s.std) {
                    *o = ((f64::from(*v) - m) / sd) as f32;
                }
                out[d] = ((f64::from(row[d]) - s.target.0) / s.target.1) as f32;
            }
        }
        let order = window_permutation(rows.rows(), self.seed, epoch, index as u64);
        Ok(Window {
            epoch,
            index,
            rows,
            order,
        })
    }
}

/// An epoch's block order, cut into windows, and where each window starts in the epoch's
/// sequence of training rows.
struct EpochPlan {
    epoch: u64,
    blocks: Vec<u32>,
    /// `starts[k]`: training rows before window `k`; one more entry, the epoch's total.
    starts: Vec<u64>,
}

/// The batches of an out-of-core table; see the module doc.
pub struct StreamedBatches {
    reader: Arc<WindowReader>,
    batch: usize,
    window_blocks: usize,
    /// Training rows per block, in file order.
    block_train: Vec<u32>,
    plan: Option<EpochPlan>,
    current: Option<Window>,
    next: Option<(u64, usize, JoinHandle<Result<Window>>)>,
}

impl std::fmt::Debug for StreamedBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedBatches")
            .field("batch", &self.batch)
            .field("window_blocks", &self.window_blocks)
            .finish_non_exhaustive()
    }
}

impl StreamedBatches {
    /// Batches of `batch` rows (at most the training rows) of `rows`, scaled by `scaling`, in
    /// the order `seed` gives.
    pub fn new(rows: Arc<CachedRows>, scaling: RowScaling, batch: usize, seed: u64) -> Self {
        let width = rows.cache.width();
        let block_rows = rows.block_rows();
        let window_blocks = (WINDOW_BYTES / (block_rows * width * 4)).max(1);
        let total = rows.rows() as u64;
        let block_train = (0..rows.blocks() as u64)
            .map(|b| {
                let first = b * block_rows as u64;
                let last = (first + block_rows as u64).min(total);
                (first..last).filter(|&r| !rows.holdout.is_val(r)).count() as u32
            })
            .collect();
        let batch = batch.min(rows.train_rows()).max(1);
        StreamedBatches {
            reader: Arc::new(WindowReader {
                rows,
                scaling,
                seed,
            }),
            batch,
            window_blocks,
            block_train,
            plan: None,
            current: None,
            next: None,
        }
    }

    /// Rows a batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Steps an epoch: ⌈training rows / batch⌉.
    pub fn steps_per_epoch(&self) -> u64 {
        (self.reader.rows.train_rows() as u64).div_ceil(self.batch as u64)
    }

    /// The number of features.
    pub fn d(&self) -> usize {
        self.reader.rows.cache.d()
    }

    /// The scaled features (`[batch, d]`, row-major) and targets of step `step` (1-based) into
    /// `x` and `y`.
    pub fn fill(&mut self, step: u64, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        x.clear();
        y.clear();
        self.append(step, x, y)
    }

    /// [`StreamedBatches::fill`], after what `x` and `y` hold already.
    pub fn append(&mut self, step: u64, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        let train = self.reader.rows.train_rows() as u64;
        let per_epoch = train.div_ceil(self.batch as u64);
        let epoch = (step - 1) / per_epoch;
        let start = (step - 1) % per_epoch * self.batch as u64;
        let end = (start + self.batch as u64).min(train);
        self.plan_epoch(epoch);
        let mut position = start;
        while position < end {
            let starts = &self.plan.as_ref().expect("planned above").starts;
            let window = starts.partition_point(|&s| s <= position) - 1;
            let (from, to) = (starts[window], starts[window + 1].min(end));
            self.use_window(epoch, window)?;
            let current = self.current.as_ref().expect("loaded above");
            let picked = &current.order[(position - from) as usize..(to - from) as usize];
            current.rows.gather_onto(picked, x, y);
            position = to;
        }
        Ok(())
    }

    /// Makes `epoch`'s block order and windows the plan.
    fn plan_epoch(&mut self, epoch: u64) {
        if self.plan.as_ref().is_some_and(|p| p.epoch == epoch) {
            return;
        }
        self.plan = Some(self.epoch_plan(epoch));
    }

    fn epoch_plan(&self, epoch: u64) -> EpochPlan {
        let blocks = block_order(self.block_train.len(), self.reader.seed, epoch);
        let mut starts = vec![0];
        let mut total = 0u64;
        for window in blocks.chunks(self.window_blocks) {
            total += window
                .iter()
                .map(|&b| u64::from(self.block_train[b as usize]))
                .sum::<u64>();
            starts.push(total);
        }
        EpochPlan {
            epoch,
            blocks,
            starts,
        }
    }

    /// The blocks of window `index` of a plan.
    fn window_blocks_of(&self, plan: &EpochPlan, index: usize) -> Vec<u32> {
        plan.blocks
            .chunks(self.window_blocks)
            .nth(index)
            .map_or_else(Vec::new, <[u32]>::to_vec)
    }

    /// Makes window `index` of `epoch` (of the current plan) the current one: kept, taken from
    /// the reading thread, or read now; then starts reading the one after it.
    fn use_window(&mut self, epoch: u64, index: usize) -> Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|w| (w.epoch, w.index) == (epoch, index))
        {
            return Ok(());
        }
        self.current = None;
        let window = match self.next.take() {
            Some((e, k, reading)) if (e, k) == (epoch, index) => {
                reading.join().expect("the cache reader does not panic")?
            }
            // A read of a window no longer wanted finishes on its own and is dropped.
            _ => {
                let plan = self.plan.as_ref().expect("planned");
                let blocks = self.window_blocks_of(plan, index);
                self.reader.load(epoch, index, &blocks)?
            }
        };
        self.current = Some(window);
        let windows = self.plan.as_ref().expect("planned").starts.len() - 1;
        let (next_epoch, next_index) = if index + 1 < windows {
            (epoch, index + 1)
        } else {
            (epoch + 1, 0)
        };
        let blocks = if next_epoch == epoch {
            self.window_blocks_of(self.plan.as_ref().expect("planned"), next_index)
        } else {
            self.window_blocks_of(&self.epoch_plan(next_epoch), 0)
        };
        let reader = Arc::clone(&self.reader);
        self.next = Some((
            next_epoch,
            next_index,
            std::thread::spawn(move || reader.load(next_epoch, next_index, &blocks)),
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::table::{Survey, TableOptions};

    /// A table of `rows` rows `x = i, y = 2i` cached, split 20 % with seed 1.
    fn cached(dir: &std::path::Path, rows: usize) -> Arc<CachedRows> {
        let path = dir.join("t.csv");
        let mut text = String::from("x,y\n");
        for i in 0..rows {
            text.push_str(&format!("{i},{}\n", 2 * i));
        }
        std::fs::write(&path, text).unwrap();
        let options = TableOptions::new("y");
        let survey = Survey::of(&path, &options).unwrap();
        Arc::new(CachedRows::open(&path, &options, &survey, None, 0.2, 1).unwrap())
    }

    fn identity() -> RowScaling {
        RowScaling {
            mean: vec![0.0],
            std: vec![1.0],
            target: (0.0, 1.0),
        }
    }

    #[test]
    fn streamed_epochs_visit_every_training_row_once_in_a_fresh_order() {
        let dir = tempfile::tempdir().unwrap();
        // 3 blocks; the window is all of them at one feature, so a small window is forced.
        let rows = cached(dir.path(), 10_000);
        let mut batches = StreamedBatches::new(Arc::clone(&rows), identity(), 1000, 5);
        batches.window_blocks = 1;
        let per_epoch = 8; // 8,000 training rows
        let mut epochs = vec![Vec::new(), Vec::new()];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for step in 1..=2 * per_epoch {
            batches.fill(step, &mut x, &mut y).unwrap();
            assert_eq!(x.len(), 1000);
            assert!(
                x.iter().zip(&y).all(|(x, y)| *y == 2.0 * x),
                "rows stay whole"
            );
            epochs[((step - 1) / per_epoch) as usize].extend(x.iter().map(|v| *v as u32));
        }
        let (train, _) = crate::data::table::holdout_split(10_000, 0.2, 1).unwrap();
        assert_ne!(epochs[0], epochs[1]);
        for epoch in &mut epochs {
            assert_ne!(*epoch, train, "shuffled");
            epoch.sort_unstable();
            assert_eq!(*epoch, train);
        }
    }

    #[test]
    fn streamed_a_step_reads_the_same_batch_whatever_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let rows = cached(dir.path(), 10_000);
        let read = |steps: &[u64]| {
            let mut batches = StreamedBatches::new(Arc::clone(&rows), identity(), 700, 5);
            batches.window_blocks = 1;
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for &step in steps {
                batches.fill(step, &mut x, &mut y).unwrap();
            }
            (x, y)
        };
        // Step 17 straight away (a resume), after its predecessors, after a later epoch.
        let straight = read(&[17]);
        assert_eq!(read(&(1..=17).collect::<Vec<_>>()), straight);
        assert_eq!(read(&[30, 3, 17]), straight);
        assert_eq!(straight.0.len(), 700);
        // Scaling: (v − mean) / std on the features and the target.
        let mut batches = StreamedBatches::new(
            Arc::clone(&rows),
            RowScaling {
                mean: vec![100.0],
                std: vec![2.0],
                target: (10.0, 4.0),
            },
            700,
            5,
        );
        batches.window_blocks = 1;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        batches.fill(17, &mut x, &mut y).unwrap();
        let expected_x: Vec<f32> = straight.0.iter().map(|v| (v - 100.0) / 2.0).collect();
        let expected_y: Vec<f32> = straight.1.iter().map(|v| (v - 10.0) / 4.0).collect();
        assert_eq!((x, y), (expected_x, expected_y));
    }
}
