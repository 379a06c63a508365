//! A table's training rows laid out for gathering random minibatches on the host (the fused
//! CPU engine's, and an out-of-core window's): each row's features and its target side by side,
//! a row of up to 16 values padded to a power of two, a longer one to whole 64-byte cache
//! lines, and the rows aligned to lines, so that a row touches as few lines as it can; the rows
//! of a batch are prefetched ahead of their copy (or read in place by a step that can:
//! [`GatherRows::as_rows`]). A random row of 10 features is then one cache miss, where separate
//! feature and target arrays cost two or three (such a row straddles two lines half the time,
//! and its target sits in a third): on a 1,000,000-row, 10-feature table the fused epoch's
//! gather is the step's largest part (see docs/benchmarks.md).

use crate::prefetch::prefetch;

/// Bytes in a cache line (x86-64 and most ARM cores).
const LINE_BYTES: usize = 64;

/// Floats in a cache line.
const LINE_FLOATS: usize = LINE_BYTES / 4;

/// How many rows ahead of its copy a row is prefetched: enough misses in flight to cover the
/// memory's latency (1,000,000 × 10 table, one fused epoch at batch 1,024, 2-core EPYC: 8 rows
/// ahead 21.3 ms, 16 17.2, 32 13.4, 64 13.9).
const PREFETCH: usize = 32;

/// Floats from one row to the next for `d` features and the target: up to a line, the next
/// power of two (so no row straddles two lines, at most 1.8 times the memory: 9 values take
/// 16); beyond it whole lines when `whole_lines` (a row of 41 values takes three lines, where
/// unaligned it would touch four half the time, and a step can read it as whole vectors; at
/// most 1.9 times the memory: 17 values take 32), else the row itself.
fn stride_for(d: usize, whole_lines: bool) -> usize {
    if d < LINE_FLOATS {
        (d + 1).next_power_of_two()
    } else if whole_lines {
        (d + 1).next_multiple_of(LINE_FLOATS)
    } else {
        d + 1
    }
}

/// Training rows with their targets, one row every `stride` floats from an aligned start.
#[derive(Debug)]
pub struct GatherRows {
    data: Vec<f32>,
    /// Where row 0 starts in `data` (a cache-line boundary).
    start: usize,
    stride: usize,
    d: usize,
    rows: usize,
}

impl GatherRows {
    /// The rows of `x` (row-major, `d` features each) with their targets `y`.
    pub fn new(x: &[f32], y: &[f32], d: usize) -> Self {
        debug_assert_eq!(x.len(), y.len() * d);
        let mut rows = Self::with_capacity(y.len(), d);
        for (features, target) in x.chunks_exact(d.max(1)).zip(y) {
            let row = rows.push();
            row[..d].copy_from_slice(&features[..d]);
            row[d] = *target;
        }
        rows
    }

    /// Room for `capacity` rows of `d` features; no rows yet (see [`Self::push`]).
    pub fn with_capacity(capacity: usize, d: usize) -> Self {
        Self::laid_out(capacity, d, true)
    }

    /// [`Self::with_capacity`], a row of more than 16 values taking only its own length rather
    /// than whole lines: for memory bounded by the rows' bytes (an out-of-core window).
    pub fn compact_with_capacity(capacity: usize, d: usize) -> Self {
        Self::laid_out(capacity, d, false)
    }

    fn laid_out(capacity: usize, d: usize, whole_lines: bool) -> Self {
        let stride = stride_for(d, whole_lines);
        let data = vec![0.0f32; capacity * stride + LINE_FLOATS];
        advise_huge_pages(&data);
        let misalign = (data.as_ptr() as usize % LINE_BYTES) / 4;
        let start = (LINE_FLOATS - misalign) % LINE_FLOATS;
        Self {
            data,
            start,
            stride,
            d,
            rows: 0,
        }
    }

    /// Rows the memory holds.
    fn capacity(&self) -> usize {
        (self.data.len() - self.start) / self.stride
    }

    /// A new last row, to be written: its `d` features, then its target.
    ///
    /// # Panics
    /// When the table is full.
    pub fn push(&mut self) -> &mut [f32] {
        assert!(
            self.rows < self.capacity(),
            "a GatherRows past its capacity"
        );
        self.rows += 1;
        let at = self.start + (self.rows - 1) * self.stride;
        &mut self.data[at..][..self.d + 1]
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `r`: its features, then its target.
    fn row(&self, r: usize) -> &[f32] {
        &self.data[self.start + r * self.stride..][..self.d + 1]
    }

    /// The rows `picked`, in order, into `x` (their features, row-major) and `y` (targets),
    /// both cleared first.
    pub fn gather(&self, picked: &[u32], x: &mut Vec<f32>, y: &mut Vec<f32>) {
        x.clear();
        y.clear();
        self.gather_onto(picked, x, y);
    }

    /// [`Self::gather`] after what `x` and `y` hold already.
    pub fn gather_onto(&self, picked: &[u32], x: &mut Vec<f32>, y: &mut Vec<f32>) {
        for (i, &r) in picked.iter().enumerate() {
            // The rows are random: ask for the one PREFETCH rows ahead now, so that its cache
            // miss overlaps this row's copy.
            if let Some(&ahead) = picked.get(i + PREFETCH) {
                self.prefetch_row(ahead);
            }
            let row = self.row(r as usize);
            append_row(x, &row[..self.d]);
            y.push(row[self.d]);
        }
    }

    /// Asks for row `r` to be brought into the cache (each line it touches).
    #[inline(always)]
    fn prefetch_row(&self, r: u32) {
        let row = self.row(r as usize);
        prefetch(row);
        let mut line = LINE_FLOATS;
        while line <= self.d {
            prefetch(&row[line..]);
            line += LINE_FLOATS;
        }
        if !self.stride.is_multiple_of(LINE_FLOATS) && self.stride > LINE_FLOATS {
            // Unaligned: its last value may sit on one more line.
            prefetch(&row[self.d..]);
        }
    }

    /// Floats from one row to the next (see [`Self::as_rows`]).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The rows as they lie: row `r` at `r × stride`, its features, its target, then zeros
    /// (a step reads them in place so: see `HostBatches::picked`).
    pub fn as_rows(&self) -> &[f32] {
        &self.data[self.start..][..self.rows * self.stride]
    }

    /// The features (row-major) and the targets, apart again.
    pub fn split(&self) -> (Vec<f32>, Vec<f32>) {
        let mut x = Vec::with_capacity(self.rows * self.d);
        let mut y = Vec::with_capacity(self.rows);
        for r in 0..self.rows {
            let row = self.row(r);
            x.extend_from_slice(&row[..self.d]);
            y.push(row[self.d]);
        }
        (x, y)
    }
}

/// Asks Linux to back `data` with 2 MiB pages where it can (transparent huge pages in their
/// `madvise` mode, most distributions' default): a random row then rarely misses the TLB as
/// well as the cache. Before the first write, so the pages are huge from the start. Only a hint:
/// nothing changes where the kernel declines.
fn advise_huge_pages(data: &[f32]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let begin = (data.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (data.as_ptr() as usize + std::mem::size_of_val(data)) / HUGE * HUGE;
        if end > begin {
            // SAFETY: madvise only advises about [begin, end), which lies within `data`.
            unsafe { libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_HUGEPAGE) };
        }
    }
}

/// Appends `row` to `out` in copies of a fixed size, which compile to a few moves (a copy of
/// a row's length is a library call per row, ~10 % of a large table's fused epoch).
#[inline(always)]
fn append_row(out: &mut Vec<f32>, row: &[f32]) {
    let mut fours = row.chunks_exact(4);
    for four in &mut fours {
        out.extend_from_slice(&<[f32; 4]>::try_from(four).expect("4 values"));
    }
    for v in fours.remainder() {
        out.push(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gather_returns_the_picked_rows_and_split_returns_the_table() {
        for d in [1, 3, 10, 15, 16, 23] {
            let rows = 300;
            let x: Vec<f32> = (0..rows * d).map(|v| v as f32 * 0.5).collect();
            let y: Vec<f32> = (0..rows).map(|r| -(r as f32)).collect();
            let table = GatherRows::new(&x, &y, d);
            assert_eq!(table.rows(), rows);
            assert_eq!(table.data[table.start..].as_ptr() as usize % LINE_BYTES, 0);
            let picked: Vec<u32> = (0..rows as u32).rev().step_by(3).collect();
            let (mut bx, mut by) = (vec![7.0], vec![7.0]);
            table.gather(&picked, &mut bx, &mut by);
            let want_x: Vec<f32> = picked
                .iter()
                .flat_map(|&r| x[r as usize * d..][..d].iter().copied())
                .collect();
            let want_y: Vec<f32> = picked.iter().map(|&r| y[r as usize]).collect();
            assert_eq!(bx, want_x, "d = {d}");
            assert_eq!(by, want_y, "d = {d}");
            let stride = table.stride();
            let laid_out = table.as_rows();
            assert_eq!(laid_out.len(), rows * stride, "d = {d}");
            for (r, row) in laid_out.chunks_exact(stride).enumerate() {
                assert_eq!(&row[..d], &x[r * d..][..d], "d = {d}");
                assert_eq!(row[d], y[r], "d = {d}");
                assert!(row[d + 1..].iter().all(|v| *v == 0.0), "d = {d}: padding");
            }
            assert_eq!(table.split(), (x, y), "d = {d}");
        }
    }

    #[test]
    fn wide_rows_take_whole_lines_unless_compact() {
        for (d, whole, compact) in [
            (3, 4, 4),
            (10, 16, 16),
            (15, 16, 16),
            (16, 32, 17),
            (40, 48, 41),
        ] {
            for (layout, stride) in [(false, whole), (true, compact)] {
                let mut table = if layout {
                    GatherRows::compact_with_capacity(5, d)
                } else {
                    GatherRows::with_capacity(5, d)
                };
                for r in 0..5 {
                    let row = table.push();
                    for (k, v) in row.iter_mut().enumerate() {
                        *v = (r * 100 + k) as f32;
                    }
                }
                assert_eq!(table.stride(), stride, "d = {d}, compact: {layout}");
                let (mut x, mut y) = (Vec::new(), Vec::new());
                table.gather(&[4, 0, 2], &mut x, &mut y);
                assert_eq!(y, [400.0 + d as f32, d as f32, 200.0 + d as f32]);
                assert_eq!(
                    x[d..2 * d],
                    (0..d).map(|k| k as f32).collect::<Vec<_>>()[..]
                );
            }
        }
    }
}
