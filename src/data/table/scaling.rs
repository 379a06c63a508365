//! Standardizing the features (x' = (x − μ) / σ per column) and carrying a linear layer's
//! weights between standardized and data units.
//!
//! A model trained on standardized features is saved in data units: its first linear layer
//! `z = x'·W' + b'` is folded into `z = x·W + b` with `W_jc = W'_jc / σ_j` and
//! `b_c = b'_c − Σ_j W'_jc μ_j / σ_j` ([`Scaling::unscale_linear`]); [`Scaling::scale_linear`]
//! is the inverse, to resume training from data-unit weights.

use super::Table;

/// Per-feature mean and standard deviation, in the order of the table's features.
#[derive(Clone, Debug, PartialEq)]
pub struct Scaling {
    /// μ_j.
    pub mean: Vec<f64>,
    /// σ_j, positive and finite.
    pub std: Vec<f64>,
}

impl Scaling {
    /// The mean and population standard deviation of each feature over `rows` of `table`.
    /// A feature with one value over those rows, or whose spread overflows, is an error: it
    /// cannot be standardized.
    pub fn fit(table: &Table, rows: &[u32]) -> Result<Scaling, String> {
        let d = table.d();
        if rows.is_empty() {
            return Err("no training rows to standardize the features over".into());
        }
        let n = rows.len() as f64;
        let mut mean = vec![0.0; d];
        for &r in rows {
            for (m, v) in mean.iter_mut().zip(table.row(r as usize)) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        // Two passes: the sum of squared deviations, not E[x²] − μ², which cancels.
        let mut std = vec![0.0; d];
        let mut constant = vec![true; d];
        let first = table.row(rows[0] as usize);
        for &r in rows {
            for (j, v) in table.row(r as usize).iter().enumerate() {
                std[j] += (v - mean[j]) * (v - mean[j]);
                constant[j] &= *v == first[j];
            }
        }
        std.iter_mut().for_each(|s| *s = (*s / n).sqrt());
        Scaling::checked(&table.feature_names, mean, std, &constant)
    }

    /// The scaling of `mean` and `std` (one per feature of `names`), refused as [`Scaling::fit`]
    /// refuses it: a feature `constant` over the training rows, or whose spread overflows.
    pub fn checked(
        names: &[String],
        mean: Vec<f64>,
        std: Vec<f64>,
        constant: &[bool],
    ) -> Result<Scaling, String> {
        for (j, name) in names.iter().enumerate() {
            // Equal values can still give σ ≈ 1e-17 (μ rounds off the value): test equality.
            if constant[j] || std[j] == 0.0 {
                return Err(format!(
                    "feature `{name}` is constant over the training rows; drop it with --features or use --no-standardize"
                ));
            }
            if !(mean[j].is_finite() && std[j].is_finite()) {
                return Err(format!(
                    "feature `{name}` is too large to standardize (its mean or spread overflows f64); rescale it or use --no-standardize"
                ));
            }
        }
        Ok(Scaling { mean, std })
    }

    /// μ = 0, σ = 1: features used as they are.
    pub fn identity(d: usize) -> Scaling {
        Scaling {
            mean: vec![0.0; d],
            std: vec![1.0; d],
        }
    }

    /// The number of features.
    pub fn d(&self) -> usize {
        self.mean.len()
    }

    /// `out_j = (row_j − μ_j) / σ_j`, rounded to f32 for the model.
    pub fn scale_row(&self, row: &[f64], out: &mut [f32]) {
        assert_eq!((row.len(), out.len()), (self.d(), self.d()));
        for (((o, v), m), s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.std) {
            *o = ((v - m) / s) as f32;
        }
    }

    /// A linear layer on standardized features, `w_scaled` (d × k, row-major) and `b_scaled`
    /// (k), as the same function of the raw features: `(w, b)` in data units.
    pub fn unscale_linear(&self, w_scaled: &[f64], b_scaled: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let k = b_scaled.len();
        assert_eq!(w_scaled.len(), self.d() * k, "w must be d × k");
        let mut w = w_scaled.to_vec();
        let mut b = b_scaled.to_vec();
        for (j, w_row) in w.chunks_exact_mut(k.max(1)).enumerate().take(self.d()) {
            for (w_jc, b_c) in w_row.iter_mut().zip(&mut b) {
                *w_jc /= self.std[j];
                *b_c -= *w_jc * self.mean[j];
            }
        }
        (w, b)
    }

    /// The inverse of [`Scaling::unscale_linear`]: a linear layer on raw features, `w` (d × k,
    /// row-major) and `b` (k), as the same function of the standardized features.
    pub fn scale_linear(&self, w: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let k = b.len();
        assert_eq!(w.len(), self.d() * k, "w must be d × k");
        let mut w_scaled = w.to_vec();
        let mut b_scaled = b.to_vec();
        for (j, w_row) in w_scaled
            .chunks_exact_mut(k.max(1))
            .enumerate()
            .take(self.d())
        {
            for (w_jc, b_c) in w_row.iter_mut().zip(&mut b_scaled) {
                *b_c += *w_jc * self.mean[j];
                *w_jc *= self.std[j];
            }
        }
        (w_scaled, b_scaled)
    }
}

/// Column means and spreads over rows seen a block at a time, in one pass: each block's mean
/// and sum of squared deviations exactly (two passes over the block in memory), merged into the
/// running ones by Chan, Golub and LeVeque's pairwise update. The same numbers as two passes
/// over the whole column to a few ulp, without holding it.
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    n: u64,
    mean: Vec<f64>,
    /// Σ (v − mean)² per column.
    m2: Vec<f64>,
    first: Vec<f64>,
    constant: Vec<bool>,
}

impl Moments {
    /// No rows yet, `width` columns.
    pub fn new(width: usize) -> Moments {
        Moments {
            n: 0,
            mean: vec![0.0; width],
            m2: vec![0.0; width],
            first: vec![0.0; width],
            constant: vec![true; width],
        }
    }

    /// Adds `block`: rows of `width` values, row-major.
    pub fn add_block(&mut self, block: &[f32]) {
        let width = self.mean.len();
        let nb = (block.len() / width) as u64;
        if nb == 0 {
            return;
        }
        if self.n == 0 {
            for (f, v) in self.first.iter_mut().zip(block) {
                *f = f64::from(*v);
            }
        }
        let mut block_mean = vec![0.0; width];
        for row in block.chunks_exact(width) {
            for (m, v) in block_mean.iter_mut().zip(row) {
                *m += f64::from(*v);
            }
        }
        block_mean.iter_mut().for_each(|m| *m /= nb as f64);
        let mut block_m2 = vec![0.0; width];
        for row in block.chunks_exact(width) {
            for (j, v) in row.iter().enumerate() {
                let v = f64::from(*v);
                block_m2[j] += (v - block_mean[j]) * (v - block_mean[j]);
                self.constant[j] &= v == self.first[j];
            }
        }
        let (na, nb) = (self.n as f64, nb as f64);
        let total = na + nb;
        for j in 0..width {
            let delta = block_mean[j] - self.mean[j];
            self.mean[j] += delta * nb / total;
            self.m2[j] += block_m2[j] + delta * delta * na * nb / total;
        }
        self.n += nb as u64;
    }

    /// Rows added.
    pub fn rows(&self) -> u64 {
        self.n
    }

    /// The mean of column `j`.
    pub fn mean(&self, j: usize) -> f64 {
        self.mean[j]
    }

    /// The population standard deviation of column `j`.
    pub fn std(&self, j: usize) -> f64 {
        (self.m2[j] / self.n.max(1) as f64).sqrt()
    }

    /// Whether column `j` held one value only.
    pub fn is_constant(&self, j: usize) -> bool {
        self.constant[j]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::splitmix64;

    #[test]
    fn scaling_moments_in_blocks_are_the_two_pass_moments() {
        let mut state = 3u64;
        let values: Vec<f32> = (0..3000)
            .map(|_| {
                state = splitmix64(state);
                1e4 + (state >> 40) as f32 / 1e3
            })
            .collect();
        let wide: Vec<f64> = values.iter().map(|v| f64::from(*v)).collect();
        let n = wide.len() as f64 / 3.0;
        for block in [1, 7, 64, 1000] {
            let mut moments = Moments::new(3);
            for part in values.chunks(block * 3) {
                moments.add_block(part);
            }
            assert_eq!(moments.rows(), 1000);
            for j in 0..3 {
                let column: Vec<f64> = wide.iter().skip(j).step_by(3).copied().collect();
                let mean = column.iter().sum::<f64>() / n;
                let std = (column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                assert!(
                    (moments.mean(j) - mean).abs() <= 1e-12 * mean.abs(),
                    "{block}"
                );
                assert!((moments.std(j) - std).abs() <= 1e-9 * std, "{block}");
                assert!(!moments.is_constant(j));
            }
        }
        let mut constant = Moments::new(1);
        constant.add_block(&[2.5, 2.5]);
        constant.add_block(&[2.5]);
        assert!(constant.is_constant(0));
        assert_eq!((constant.mean(0), constant.std(0)), (2.5, 0.0));
    }

    fn table(names: &[&str], x: Vec<f64>) -> Table {
        let rows = x.len() / names.len();
        Table {
            file_name: "t.csv".into(),
            columns: names
                .iter()
                .map(|s| s.to_string())
                .chain(["y".into()])
                .collect(),
            feature_names: names.iter().map(|s| s.to_string()).collect(),
            target_name: "y".into(),
            x,
            y: vec![0.0; rows],
            dropped_rows: 0,
            content_hash: 0,
            bytes: 0,
        }
    }

    /// Uniform in [-1, 1) from a counter.
    fn uniform(i: u64) -> f64 {
        (splitmix64(i) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    #[test]
    fn table_scaling_mean_and_population_std_over_the_given_rows() {
        // Rows 0, 1, 3 of a: 1, 2, 6 → μ = 3, σ² = (4 + 1 + 9) / 3.
        let t = table(
            &["a", "b"],
            vec![1.0, 10.0, 2.0, 20.0, 100.0, 0.0, 6.0, 60.0],
        );
        let s = Scaling::fit(&t, &[0, 1, 3]).unwrap();
        assert_eq!(s.mean, [3.0, 30.0]);
        assert_eq!(s.std, [(14.0f64 / 3.0).sqrt(), (1400.0f64 / 3.0).sqrt()]);
        let mut out = [0.0f32; 2];
        s.scale_row(&[6.0, 30.0], &mut out);
        assert_eq!(out, [(3.0 / (14.0f64 / 3.0).sqrt()) as f32, 0.0]);
        let id = Scaling::identity(2);
        id.scale_row(&[6.0, 30.0], &mut out);
        assert_eq!(out, [6.0, 30.0]);
    }

    #[test]
    fn table_scaling_refuses_constant_and_overflowing_features() {
        let t = table(&["x1", "x3"], vec![1.0, 0.1, 2.0, 0.1, 3.0, 0.1]);
        assert_eq!(
            Scaling::fit(&t, &[0, 1, 2]).unwrap_err(),
            "feature `x3` is constant over the training rows; drop it with --features or use --no-standardize"
        );
        // Not constant in the file, but over the rows asked for.
        let t = table(&["x1"], vec![1.0, 5.0, 1.0]);
        assert!(
            Scaling::fit(&t, &[0, 2])
                .unwrap_err()
                .contains("`x1` is constant")
        );
        let t = table(&["big"], vec![1e308, -1e308]);
        assert_eq!(
            Scaling::fit(&t, &[0, 1]).unwrap_err(),
            "feature `big` is too large to standardize (its mean or spread overflows f64); rescale it or use --no-standardize"
        );
        assert!(Scaling::fit(&t, &[]).is_err());
    }

    #[test]
    fn table_scaling_linear_folding_round_trips_and_predicts_the_same() {
        let (d, k) = (4, 3);
        let s = Scaling {
            mean: (0..d).map(|j| 10.0 * uniform(j as u64)).collect(),
            std: (0..d)
                .map(|j| 0.1 + uniform(100 + j as u64).abs() * 5.0)
                .collect(),
        };
        let w_scaled: Vec<f64> = (0..d * k).map(|i| uniform(200 + i as u64)).collect();
        let b_scaled: Vec<f64> = (0..k).map(|i| uniform(300 + i as u64)).collect();
        let (w, b) = s.unscale_linear(&w_scaled, &b_scaled);
        let (w_back, b_back) = s.scale_linear(&w, &b);
        for (a, e) in w_back
            .iter()
            .zip(&w_scaled)
            .chain(b_back.iter().zip(&b_scaled))
        {
            assert!((a - e).abs() < 1e-12, "{a} vs {e}");
        }
        let linear = |x: &[f64], w: &[f64], b: &[f64]| -> Vec<f64> {
            (0..k)
                .map(|c| b[c] + (0..d).map(|j| x[j] * w[j * k + c]).sum::<f64>())
                .collect()
        };
        for r in 0..100u64 {
            let x: Vec<f64> = (0..d)
                .map(|j| s.mean[j] + 3.0 * uniform(1000 + r * 10 + j as u64))
                .collect();
            let x_scaled: Vec<f64> = (0..d).map(|j| (x[j] - s.mean[j]) / s.std[j]).collect();
            let scaled = linear(&x_scaled, &w_scaled, &b_scaled);
            let raw = linear(&x, &w, &b);
            for (a, e) in raw.iter().zip(&scaled) {
                assert!((a - e).abs() < 1e-9, "{a} vs {e}");
            }
        }
        // Identity scaling changes nothing.
        assert_eq!(
            Scaling::identity(d).unscale_linear(&w_scaled, &b_scaled),
            (w_scaled.clone(), b_scaled.clone())
        );
    }
}
