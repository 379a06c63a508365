//! An in-memory table's minibatches on the host, in the engines' order: step `s` (from 1) is
//! minibatch `(s − 1) mod spe` of epoch `(s − 1) div spe` (spe = ⌈rows / batch⌉, the last of an
//! epoch may be shorter), its rows in the order [`epoch_permutation`](super::epoch_permutation)
//! gives that epoch.
//!
//! Large steps are gathered ahead on a thread of their own: a step of the fused CPU engine on a
//! large table spends more time fetching its random rows from memory than computing, and the
//! rows of step `s + 1` do not depend on step `s`, so while the step trains on one core the
//! next batches are gathered on another. The batches are the same either way (one thread
//! gathers them, in step order); only when they are gathered changes.
//!
//! A step that reads its rows where they lie (the fused linear step of a table) asks
//! for them with [`HostBatches::picked`] instead: no copy, no thread.

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};

use super::{EpochOrders, GatherRows};

/// Tables of at least this many rows are gathered ahead (smaller ones fit in the caches, and
/// their gathers cost less than handing a batch between threads).
pub const AHEAD_MIN_ROWS: usize = 1 << 16;

/// Batches of at least this many rows are gathered ahead.
pub const AHEAD_MIN_BATCH: usize = 256;

/// Batches gathered ahead at most.
const AHEAD_DEPTH: usize = 4;

/// One batch: features (row-major) and targets.
#[derive(Default)]
struct Batch {
    x: Vec<f32>,
    y: Vec<f32>,
}

/// The gathering thread's side of the hand-over: batches in step order, buffers back.
struct Ahead {
    /// The step of the next batch in `filled`.
    next: u64,
    filled: Receiver<Batch>,
    empty: Sender<Batch>,
}

/// A table's minibatches, gathered now or ahead.
#[derive(Debug)]
pub struct HostBatches {
    rows: Arc<GatherRows>,
    seed: u64,
    batch: usize,
    /// The epochs' orders, when gathering here (a thread gathering ahead has its own).
    orders: EpochOrders,
    /// Whether batches are gathered ahead.
    gather_ahead: bool,
    /// The step [`Self::picked`] last handed out.
    last_picked: Option<u64>,
    ahead: Option<AheadHandle>,
}

/// [`Ahead`], which holds channels (not `Debug`).
struct AheadHandle(Ahead);

impl std::fmt::Debug for AheadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gathering ahead from step {}", self.0.next)
    }
}

impl HostBatches {
    /// Minibatches of `batch` rows (at most the table's) of `rows`, shuffled with `seed`;
    /// gathered ahead for a large table and batch on a machine with a second core.
    pub fn new(rows: GatherRows, seed: u64, batch: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ahead = rows.rows() >= AHEAD_MIN_ROWS && batch >= AHEAD_MIN_BATCH && cores > 1;
        Self::with_gathering(rows, seed, batch, ahead)
    }

    /// [`Self::new`], gathering ahead or not as `gather_ahead` says.
    pub fn with_gathering(rows: GatherRows, seed: u64, batch: usize, gather_ahead: bool) -> Self {
        let batch = batch.min(rows.rows()).max(1);
        Self {
            orders: EpochOrders::new(rows.rows(), seed),
            rows: Arc::new(rows),
            seed,
            batch,
            gather_ahead,
            last_picked: None,
            ahead: None,
        }
    }

    /// The rows.
    pub fn rows(&self) -> &GatherRows {
        &self.rows
    }

    /// The shuffle's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Rows per step (the last of an epoch may have fewer).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The batch of step `step` (from 1) into `x` and `y` (replacing what they held).
    pub fn fill(&mut self, step: u64, x: &mut Vec<f32>, y: &mut Vec<f32>) {
        // Not the step the thread gathers next (the first step, or after a jump): a new thread
        // from this step on.
        if self.gather_ahead && self.ahead.as_ref().is_none_or(|a| a.0.next != step) {
            self.ahead =
                start_ahead(Arc::clone(&self.rows), self.seed, self.batch, step).map(AheadHandle);
            // No thread to be had: gather here from now on.
            self.gather_ahead = self.ahead.is_some();
        }
        if let Some(AheadHandle(ahead)) = &mut self.ahead
            && let Ok(mut batch) = receive(&ahead.filled)
        {
            ahead.next += 1;
            std::mem::swap(x, &mut batch.x);
            std::mem::swap(y, &mut batch.y);
            // The thread may have stopped (it never does but when this side goes).
            let _ = ahead.empty.send(batch);
            return;
        }
        // No thread (gathering here, or none could be started, or it died): this one.
        self.ahead = None;
        let (order, batch) = step_rows(&mut self.orders, self.rows.rows(), self.batch, step);
        self.rows.gather(&order[batch], x, y);
    }

    /// The rows of step `step` (from 1) where they lie in the table, for a step that reads them
    /// there (any thread gathering ahead is stopped).
    pub fn picked(&mut self, step: u64) -> PickedRows<'_> {
        self.ahead = None;
        self.gather_ahead = false;
        let (order, batch) = step_rows(&mut self.orders, self.rows.rows(), self.batch, step);
        let warm = batch.start > 0 && self.last_picked == Some(step - 1);
        self.last_picked = Some(step);
        PickedRows {
            table: self.rows.as_rows(),
            stride: self.rows.stride(),
            order,
            batch,
            warm,
        }
    }
}

/// A step's rows where they lie: rows `order[batch]` of `table`, row `r` at `r × stride`
/// (its features, its target, zeros). `order` is the epoch's, so the rows after the batch are
/// the next steps' (to prefetch).
#[derive(Debug)]
pub struct PickedRows<'a> {
    /// The table's rows, from row 0.
    pub table: &'a [f32],
    /// Floats from one row to the next.
    pub stride: usize,
    /// The epoch's order of the rows.
    pub order: &'a [u32],
    /// The step's part of `order`.
    pub batch: Range<usize>,
    /// Whether the step before was handed out just before, in the same epoch (a step reading
    /// ahead in `order` then asked for this one's first rows already).
    pub warm: bool,
}

/// Step `step`'s epoch order of a table of `n` rows, and the step's range of it.
fn step_rows(
    orders: &mut EpochOrders,
    n: usize,
    batch: usize,
    step: u64,
) -> (&[u32], Range<usize>) {
    let per_epoch = n.div_ceil(batch) as u64;
    let order = orders.get((step - 1) / per_epoch);
    let start = ((step - 1) % per_epoch) as usize * batch;
    (order, start..(start + batch).min(n))
}

/// The next batch: waited for by polling for up to [`SPIN`] first (the gathering thread is
/// usually about to hand it over, and being woken from sleep costs more than that: 1M-row
/// table, batch 1,024, fused epoch 10.5 ms blocking at once, 8.6 ms polling), then by blocking.
fn receive(filled: &Receiver<Batch>) -> Result<Batch, std::sync::mpsc::RecvError> {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            match filled.try_recv() {
                Ok(batch) => return Ok(batch),
                Err(TryRecvError::Empty) => std::hint::spin_loop(),
                Err(TryRecvError::Disconnected) => return Err(std::sync::mpsc::RecvError),
            }
        }
        if start.elapsed() >= SPIN {
            return filled.recv();
        }
    }
}

/// How long [`receive`] polls before it blocks.
const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// A thread gathering the batches of steps `first`, `first + 1`, … ahead; it ends when the
/// returned side is dropped. `None` when no thread can be started (then batches are gathered
/// in the caller's thread).
fn start_ahead(rows: Arc<GatherRows>, seed: u64, batch: usize, first: u64) -> Option<Ahead> {
    let (filled_tx, filled) = std::sync::mpsc::sync_channel::<Batch>(AHEAD_DEPTH);
    let (empty, empty_rx) = std::sync::mpsc::channel::<Batch>();
    std::thread::Builder::new()
        .name("burnfit-gather".into())
        .spawn(move || gather_ahead(&rows, seed, batch, first, &filled_tx, &empty_rx))
        .ok()?;
    Some(Ahead {
        next: first,
        filled,
        empty,
    })
}

/// The gathering thread: batches from step `first` on, into buffers handed back or new ones,
/// until the receiving side is gone.
fn gather_ahead(
    rows: &GatherRows,
    seed: u64,
    batch_rows: usize,
    first: u64,
    filled: &SyncSender<Batch>,
    empty: &Receiver<Batch>,
) {
    let mut orders = EpochOrders::new(rows.rows(), seed);
    for step in first.. {
        let mut buffers = match empty.try_recv() {
            Ok(buffers) => buffers,
            Err(TryRecvError::Empty) => Batch::default(),
            Err(TryRecvError::Disconnected) => return,
        };
        let (order, range) = step_rows(&mut orders, rows.rows(), batch_rows, step);
        rows.gather(&order[range], &mut buffers.x, &mut buffers.y);
        if filled.send(buffers).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize, d: usize) -> GatherRows {
        let x: Vec<f32> = (0..rows * d).map(|v| v as f32).collect();
        let y: Vec<f32> = (0..rows).map(|r| -(r as f32)).collect();
        GatherRows::new(&x, &y, d)
    }

    #[test]
    fn batches_gathered_ahead_are_the_batches_gathered_here_through_jumps() {
        // 1,000 rows at batch 300: epochs of 4 steps (the last 100 rows).
        let mut here = HostBatches::with_gathering(table(1000, 3), 9, 300, false);
        let mut ahead = HostBatches::with_gathering(table(1000, 3), 9, 300, true);
        let (mut hx, mut hy, mut ax, mut ay) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // In order across epochs, a step again, a jump back (a resume), a jump ahead.
        let steps = [1, 2, 3, 4, 5, 6, 6, 2, 3, 11, 12, 13, 14, 15];
        for step in steps {
            here.fill(step, &mut hx, &mut hy);
            ahead.fill(step, &mut ax, &mut ay);
            assert_eq!((&hx, &hy), (&ax, &ay), "step {step}");
            let rows = if step % 4 == 0 { 100 } else { 300 };
            assert_eq!((hx.len(), hy.len()), (3 * rows, rows), "step {step}");
        }
        // An epoch's steps visit every row once.
        let mut seen: Vec<i64> = Vec::new();
        for step in 5..=8 {
            ahead.fill(step, &mut ax, &mut ay);
            seen.extend(ay.iter().map(|v| -*v as i64));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());

        // In place: the same rows, each its 3 features and its target (4 floats); the order
        // after the batch is the epoch's rest.
        // Warm (the step before read just before this batch) only after the step before, within
        // an epoch.
        let warm = [
            false, true, true, true, false, true, false, false, true, false, true, false, true,
            true,
        ];
        for (step, warm) in steps.into_iter().zip(warm) {
            here.fill(step, &mut hx, &mut hy);
            let picked = ahead.picked(step);
            assert_eq!(picked.warm, warm, "step {step}");
            assert_eq!(
                (picked.stride, picked.order.len()),
                (4, 1000),
                "step {step}"
            );
            let want: Vec<f32> = hx
                .chunks_exact(3)
                .zip(&hy)
                .flat_map(|(x, y)| [x[0], x[1], x[2], *y])
                .collect();
            let got: Vec<f32> = picked.order[picked.batch.clone()]
                .iter()
                .flat_map(|&r| picked.table[r as usize * 4..][..4].iter().copied())
                .collect();
            assert_eq!(got, want, "step {step}");
        }
        // Filling again after reading in place.
        ahead.fill(7, &mut ax, &mut ay);
        here.fill(7, &mut hx, &mut hy);
        assert_eq!((&hx, &hy), (&ax, &ay));
    }

    #[test]
    fn only_large_tables_and_batches_are_gathered_ahead() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(!HostBatches::new(table(1000, 2), 1, 512).gather_ahead);
        assert!(!HostBatches::new(table(AHEAD_MIN_ROWS, 2), 1, 64).gather_ahead);
        assert_eq!(
            HostBatches::new(table(AHEAD_MIN_ROWS, 2), 1, 512).gather_ahead,
            cores > 1
        );
    }
}
