//! The R factor of a least-squares problem accumulated over rows that arrive in blocks, and
//! merged across blocks, threads and files (TSQR: tall-and-skinny QR).
//!
//! A [`Factor`] holds R (p × p, upper triangular) of the QR of the rows
//! `[1, x − c, y − c_y]` (with an intercept) or `[x, y]` (without), in f64, where `c` is a
//! shift taken from the data itself (the mean of the first block). Householder reflections fold
//! each block of rows into R; two factors merge by the same fold of one R into the other. Never
//! XᵀX: the normal equations square the condition number.
//!
//! Why the ones column first and the shift: the first reflection projects the mean out of the
//! other columns, so the trailing block of R is the R of the *centered* columns (what the
//! in-memory [`super::solve`] factors), and R's first row holds √n·(mean − c). The shift keeps
//! that projection free of cancellation (data far from 0, like years, would otherwise lose
//! digits). Changing the shift from `c` to `c'` only changes R's first row,
//! R₀ⱼ − (c'ⱼ − cⱼ)·R₀₀, so factors with different shifts merge exactly.

/// Rows folded into R at once: a block of 64 rows × p columns stays in the L1/L2 cache.
const BLOCK_ROWS: usize = 64;

/// The R factor of the rows seen so far, with their count and shift.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    /// Whether the first column is the intercept's column of ones.
    pub intercept: bool,
    /// Rows folded in.
    pub n: u64,
    /// Subtracted from each data column (the d features, then the target) before the fold:
    /// zeros without an intercept.
    pub shift: Vec<f64>,
    /// R, p × p row-major, upper triangular; p = d + 1 (+ 1 with an intercept).
    pub r: Vec<f64>,
}

impl Factor {
    /// No rows yet, for `d` features; the shift is set by the first rows folded in.
    pub fn new(d: usize, intercept: bool) -> Factor {
        let p = d + 1 + usize::from(intercept);
        Factor {
            intercept,
            n: 0,
            shift: vec![0.0; d + 1],
            r: vec![0.0; p * p],
        }
    }

    /// The number of features.
    pub fn d(&self) -> usize {
        self.shift.len() - 1
    }

    /// The number of columns of R.
    pub fn p(&self) -> usize {
        self.d() + 1 + usize::from(self.intercept)
    }

    /// R's entry (i, j).
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.r[i * self.p() + j]
    }

    /// The factor of `rows` (row-major, d features then the target each), shifted by their
    /// mean when the fit has an intercept.
    pub fn of_rows(rows: &[f64], d: usize, intercept: bool) -> Factor {
        let mut factor = Factor::new(d, intercept);
        if intercept && !rows.is_empty() {
            let count = (rows.len() / (d + 1)) as f64;
            for row in rows.chunks_exact(d + 1) {
                factor.shift.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
            factor.shift.iter_mut().for_each(|s| *s /= count);
        }
        factor.absorb_rows(rows);
        factor
    }

    /// Folds `rows` (row-major, d features then the target each) into R.
    pub fn absorb_rows(&mut self, rows: &[f64]) {
        let (p, w) = (self.p(), self.d() + 1);
        let lead = usize::from(self.intercept);
        let mut block = vec![0.0; BLOCK_ROWS * p];
        for group in rows.chunks(BLOCK_ROWS * w) {
            let b = group.len() / w;
            // Column-major: column k of the block is block[k·b..(k + 1)·b].
            if self.intercept {
                block[..b].fill(1.0);
            }
            for (i, row) in group.chunks_exact(w).enumerate() {
                for (k, (v, s)) in row.iter().zip(&self.shift).enumerate() {
                    block[(lead + k) * b + i] = v - s;
                }
            }
            fold(&mut self.r, p, &mut block[..b * p], b);
            self.n += b as u64;
        }
    }

    /// Moves the shift to `shift`: only R's first row changes (see the module's doc).
    pub fn reshift(&mut self, shift: &[f64]) {
        assert_eq!(shift.len(), self.shift.len());
        if !self.intercept {
            return;
        }
        let r00 = self.r[0];
        for (k, (old, new)) in self.shift.iter().zip(shift).enumerate() {
            self.r[1 + k] -= (new - old) * r00;
        }
        self.shift.copy_from_slice(shift);
    }

    /// Folds `other`'s rows in: R of the two sets of rows stacked, in `self`'s shift (or
    /// `other`'s, while `self` has no rows).
    pub fn merge(&mut self, other: &Factor) {
        assert_eq!(
            (self.p(), self.intercept),
            (other.p(), other.intercept),
            "factors of different problems"
        );
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other.clone();
            return;
        }
        let mut other = other.clone();
        other.reshift(&self.shift);
        let p = self.p();
        // R is its own block of p rows: column-major is R transposed.
        let mut block = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                block[j * p + i] = other.r[i * p + j];
            }
        }
        fold(&mut self.r, p, &mut block, p);
        self.n += other.n;
    }
}

/// Merges factors in a binary tree as they arrive in order: each merge combines two factors of
/// about equal row counts, so rounding errors grow with the tree's depth (log₂ of the number
/// of factors), not with their number; and the result depends only on the order.
#[derive(Debug, Default)]
pub struct TreeMerge {
    /// (level, factor): a factor of level l merged 2ˡ arrivals; levels strictly decrease.
    stack: Vec<(u32, Factor)>,
}

impl TreeMerge {
    /// The next factor in order.
    pub fn push(&mut self, factor: Factor) {
        let mut item = (0, factor);
        while let Some((level, _)) = self.stack.last()
            && *level == item.0
        {
            let (level, mut left) = self.stack.pop().expect("just seen");
            left.merge(&item.1);
            item = (level + 1, left);
        }
        self.stack.push(item);
    }

    /// Everything pushed, merged (`None` when nothing was).
    pub fn finish(mut self) -> Option<Factor> {
        let mut acc = self.stack.pop()?.1;
        while let Some((_, mut left)) = self.stack.pop() {
            left.merge(&acc);
            acc = left;
        }
        Some(acc)
    }
}

/// Householder QR of `[R; B]`: R (p × p row-major, upper triangular) becomes the R of the
/// stack; `block` (b rows × p columns, column-major) is overwritten. Reflection j combines
/// R's row j with the block's rows (R's rows below j are zero in column j), and costs 4·b·(p − j)
/// flops: 2·b·p² for the block.
fn fold(r: &mut [f64], p: usize, block: &mut [f64], b: usize) {
    for j in 0..p {
        let (done, rest) = block.split_at_mut((j + 1) * b);
        let v = &done[j * b..];
        let sigma = dot(v, v);
        if sigma == 0.0 {
            continue;
        }
        let x0 = r[j * p + j];
        let norm = (x0 * x0 + sigma).sqrt();
        // The sign that avoids cancellation in v₀ = x₀ − α.
        let alpha = if x0 > 0.0 { -norm } else { norm };
        let v0 = x0 - alpha;
        let scale = 2.0 / (v0 * v0 + sigma);
        for (k, column) in (j + 1..p).zip(rest.chunks_exact_mut(b)) {
            let f = scale * (v0 * r[j * p + k] + dot(v, column));
            r[j * p + k] -= f * v0;
            column.iter_mut().zip(v).for_each(|(c, vi)| *c -= f * vi);
        }
        r[j * p + j] = alpha;
    }
}

/// Σ aᵢbᵢ with four partial sums (which the compiler can keep in vector registers).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::splitmix64;
    use nalgebra::DMatrix;

    fn uniform(i: u64) -> f64 {
        (splitmix64(i) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// Rows of d features (far from 0, on different scales) and a noisy target.
    fn rows(n: usize, d: usize, seed: u64) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * (d + 1));
        for i in 0..n {
            let mut y = 3.0;
            for j in 0..d {
                let x = 1e3 + 10f64.powi(j as i32 - 1) * uniform(seed + (i * (d + 1) + j) as u64);
                out.push(x);
                y += (j as f64 - 0.5) * x;
            }
            out.push(y + 0.1 * uniform(seed ^ 0xdead_beef ^ i as u64));
        }
        out
    }

    /// nalgebra's Householder R of `[1, x − c, y − c]` over all the rows at once, with its
    /// rows' signs made to agree with `reference` (R is unique up to the sign of each row).
    fn whole_qr(rows: &[f64], d: usize, shift: &[f64], reference: &Factor) -> Vec<f64> {
        let n = rows.len() / (d + 1);
        let p = d + 2;
        let a = DMatrix::from_fn(n, p, |i, j| {
            if j == 0 {
                1.0
            } else {
                rows[i * (d + 1) + j - 1] - shift[j - 1]
            }
        });
        let r = a.qr().r();
        let flat: Vec<f64> = (0..p * p).map(|k| r[(k / p, k % p)]).collect();
        aligned(&flat, &reference.r, p)
    }

    /// `r` with each row's sign made to agree with `reference`'s (R is unique up to those).
    fn aligned(r: &[f64], reference: &[f64], p: usize) -> Vec<f64> {
        let mut out = r.to_vec();
        for i in 0..p {
            if (r[i * p + i] < 0.0) != (reference[i * p + i] < 0.0) {
                out[i * p..(i + 1) * p].iter_mut().for_each(|v| *v = -*v);
            }
        }
        out
    }

    /// The largest |a − b| relative to the largest entry of R's column.
    fn column_error(a: &[f64], b: &[f64], p: usize) -> f64 {
        (0..p)
            .map(|j| {
                let scale = (0..p).map(|i| b[i * p + j].abs()).fold(0.0, f64::max);
                (0..p)
                    .map(|i| (a[i * p + j] - b[i * p + j]).abs() / scale)
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn tsqr_merged_blocks_equal_the_qr_of_the_whole() {
        let (n, d) = (10_000, 4);
        let data = rows(n, d, 7);
        // Blocks of uneven sizes, each with its own shift (its mean), merged in a tree.
        let mut tree = TreeMerge::default();
        let mut start = 0;
        for (i, size) in [1, 2, 63, 64, 65, 1000, 3000].iter().cycle().enumerate() {
            if start >= n {
                break;
            }
            let end = (start + size + i).min(n);
            tree.push(Factor::of_rows(
                &data[start * (d + 1)..end * (d + 1)],
                d,
                true,
            ));
            start = end;
        }
        let merged = tree.finish().unwrap();
        assert_eq!(merged.n, n as u64);
        let whole = whole_qr(&data, d, &merged.shift, &merged);
        let error = column_error(&merged.r, &whole, d + 2);
        assert!(error < 1e-12, "relative error {error:e}");
        // One block of everything agrees too (up to the shift).
        let mut one = Factor::of_rows(&data, d, true);
        one.reshift(&merged.shift);
        let one = aligned(&one.r, &merged.r, d + 2);
        assert!(column_error(&one, &merged.r, d + 2) < 1e-12);
    }

    #[test]
    fn tsqr_reshift_is_the_factor_of_the_shifted_rows() {
        let (n, d) = (500, 2);
        let data = rows(n, d, 11);
        let mut a = Factor::new(d, true);
        a.absorb_rows(&data);
        let shift = vec![999.0, 1001.0, 5.0];
        a.reshift(&shift);
        let whole = whole_qr(&data, d, &shift, &a);
        assert!(column_error(&a.r, &whole, d + 2) < 1e-12);
    }

    #[test]
    fn tsqr_without_intercept_merges_too() {
        let (n, d) = (3000, 3);
        let data = rows(n, d, 3);
        let mut halves = Factor::of_rows(&data[..1234 * (d + 1)], d, false);
        halves.merge(&Factor::of_rows(&data[1234 * (d + 1)..], d, false));
        let whole = Factor::of_rows(&data, d, false);
        let whole = aligned(&whole.r, &halves.r, d + 1);
        assert!(column_error(&halves.r, &whole, d + 1) < 1e-12);
        assert_eq!(halves.shift, vec![0.0; d + 1]);
    }
}
