//! Closed-form ordinary least squares: the weights and bias that minimise ‖Xw + b − y‖², the
//! answer a trained linear model should approach, and (in [`summary`]) the inference statistics
//! statsmodels' `OLS.fit().summary()` prints.
//!
//! Solved in f64 by a QR decomposition (nalgebra's Householder QR) of the centered, unit-norm
//! feature columns, never by the normal equations (XᵀX squares the condition number).
//! Centering removes the bias from the problem (b = ȳ − x̄·w afterwards) and the column
//! scaling makes |R_jj| the distance of column j from the span of the ones before it, so one
//! threshold finds collinear features whatever their units. A fit without an intercept
//! (`--no-intercept`) scales the raw columns instead of centering them.

use nalgebra::{DMatrix, DVector};

use crate::data::table::Table;

mod shard;
mod streaming;
mod summary;
mod tsqr;

pub use shard::{SUMMARY_FORMAT, ShardSummary, SummarySource, merge};
pub use streaming::{StreamOptions, StreamedFit, fit_csv};
pub use summary::{Coefficient, OlsSummary};
pub use tsqr::{Factor, TreeMerge};

/// A column whose |R_jj| is below this (columns have norm 1) lies in the span of the others.
const COLLINEAR: f64 = 1e-10;

/// The least-squares linear model: `y ≈ row · weights + bias`.
#[derive(Clone, Debug, PartialEq)]
pub struct OlsFit {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept (0 for a fit without one).
    pub bias: f64,
}

impl OlsFit {
    /// The model's prediction for one row of features.
    pub fn predict(&self, row: &[f64]) -> f64 {
        assert_eq!(row.len(), self.weights.len());
        self.bias
            + row
                .iter()
                .zip(&self.weights)
                .map(|(x, w)| x * w)
                .sum::<f64>()
    }
}

/// Least squares over `rows` of `x` (row-major, `d` features a row) and `y`. Errors name a
/// feature by its position (`feature 2`); [`fit_table`] names it by its column.
pub fn fit(x: &[f64], y: &[f64], d: usize, rows: &[u32]) -> Result<OlsFit, String> {
    Ok(solve(x, y, d, rows, true, &position_name)?.fit)
}

/// Least squares of a table's target on its features over `rows`.
pub fn fit_table(table: &Table, rows: &[u32]) -> Result<OlsFit, String> {
    Ok(solve(
        &table.x,
        &table.y,
        table.d(),
        rows,
        true,
        &column_name(table),
    )?
    .fit)
}

/// The fit over `rows` with its standard errors, tests and goodness-of-fit statistics;
/// coefficients are named `x1`, `x2`, .. and `(intercept)`. `intercept: false` fits
/// `y ≈ row · weights` (R² and F are then uncentered, as statsmodels computes them).
/// Computed from the R factor of the rows ([`Factor`]), as the streaming `burnfit ols` does.
pub fn summary(
    x: &[f64],
    y: &[f64],
    d: usize,
    rows: &[u32],
    intercept: bool,
) -> Result<OlsSummary, String> {
    let names: Vec<String> = (1..=d).map(|j| format!("x{j}")).collect();
    let factor = Factor::of_rows(&selected(x, y, d, rows), d, intercept);
    summarize(&factor, &names, &position_name)
}

/// [`summary`] of a table's target on its features, coefficients named by their columns.
pub fn summary_table(table: &Table, rows: &[u32], intercept: bool) -> Result<OlsSummary, String> {
    let (x, y, d) = (&table.x, &table.y, table.d());
    let factor = Factor::of_rows(&selected(x, y, d, rows), d, intercept);
    summarize(&factor, &table.feature_names, &column_name(table))
}

/// The summary of the rows whose R factor is `factor`, coefficients named `feature_names`.
pub fn summary_of_factor(factor: &Factor, feature_names: &[String]) -> Result<OlsSummary, String> {
    assert_eq!(feature_names.len(), factor.d());
    summarize(factor, feature_names, &|j| {
        format!("feature `{}`", feature_names[j])
    })
}

/// The least-squares fit of the rows whose R factor is `factor` (features named
/// `feature_names` in messages), without [`summary_of_factor`]'s statistics: those take a
/// Student-t quantile whose computation grows slow at tens of millions of degrees of freedom.
pub fn fit_of_factor(factor: &Factor, feature_names: &[String]) -> Result<OlsFit, String> {
    assert_eq!(feature_names.len(), factor.d());
    let name = |j: usize| format!("feature `{}`", feature_names[j]);
    Ok(solve_factor(factor, &name)?.0.fit)
}

/// The rows of `rows`, row-major, d features then the target each.
fn selected(x: &[f64], y: &[f64], d: usize, rows: &[u32]) -> Vec<f64> {
    assert_eq!(x.len(), y.len() * d, "x must be rows × d");
    let mut out = Vec::with_capacity(rows.len() * (d + 1));
    for &r in rows {
        out.extend_from_slice(&x[r as usize * d..(r as usize + 1) * d]);
        out.push(y[r as usize]);
    }
    out
}

fn summarize(
    factor: &Factor,
    names: &[String],
    name: &dyn Fn(usize) -> String,
) -> Result<OlsSummary, String> {
    let (solved, sums) = solve_factor(factor, name)?;
    Ok(OlsSummary::of(&solved, names, &sums))
}

fn position_name(j: usize) -> String {
    format!("feature {}", j + 1)
}

fn column_name(table: &Table) -> impl Fn(usize) -> String + '_ {
    |j| format!("feature `{}`", table.feature_names[j])
}

/// A solved least-squares problem, with what the statistics need: R of the QR of the
/// (centered) scaled columns, the scales and the means.
struct Solved {
    fit: OlsFit,
    intercept: bool,
    /// R (d × d, upper triangular) of the QR of the scaled columns.
    r: DMatrix<f64>,
    /// Each column's norm before scaling (after centering, with an intercept).
    norms: Vec<f64>,
    /// The features' means over the rows (zeros without an intercept).
    x_mean: Vec<f64>,
}

fn solve(
    x: &[f64],
    y: &[f64],
    d: usize,
    rows: &[u32],
    intercept: bool,
    name: &dyn Fn(usize) -> String,
) -> Result<Solved, String> {
    assert_eq!(x.len(), y.len() * d, "x must be rows × d");
    let n = rows.len();
    if intercept && n <= d {
        return Err(format!(
            "{n} rows cannot determine {d} weights and a bias; least squares needs more rows than features"
        ));
    }
    if !intercept && n < d.max(1) {
        return Err(format!(
            "{n} rows cannot determine {d} weights; least squares without an intercept needs at least as many rows as features"
        ));
    }
    let row = |r: u32| &x[r as usize * d..(r as usize + 1) * d];
    let mut x_mean = vec![0.0; d];
    let mut y_mean = 0.0;
    if intercept {
        for &r in rows {
            x_mean.iter_mut().zip(row(r)).for_each(|(m, v)| *m += v);
            y_mean += y[r as usize];
        }
        x_mean.iter_mut().for_each(|m| *m /= n as f64);
        y_mean /= n as f64;
    }

    let mut a = DMatrix::from_fn(n, d, |i, j| row(rows[i])[j] - x_mean[j]);
    let mut norms = Vec::with_capacity(d);
    for (j, mut column) in a.column_iter_mut().enumerate() {
        let norm = column.norm();
        // Equal values can leave deviations of ~1e-17·|x| instead of 0.
        if intercept && (norm / (n as f64).sqrt() <= COLLINEAR * x_mean[j].abs() || norm == 0.0) {
            return Err(format!(
                "{} is constant over the rows, so it is collinear with the bias; drop it with --features",
                name(j)
            ));
        }
        if norm == 0.0 {
            return Err(format!(
                "{} is 0 in every row, so it has no weight to fit; drop it with --features",
                name(j)
            ));
        }
        column /= norm;
        norms.push(norm);
    }
    let mut rhs = DVector::from_iterator(n, rows.iter().map(|&r| y[r as usize] - y_mean));

    let qr = a.qr();
    let r = qr.r();
    let largest = r.diagonal().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if let Some(j) = (0..d).find(|&j| r[(j, j)].abs() < COLLINEAR * largest) {
        return Err(format!(
            "features are collinear ({} is a linear combination of the others); drop one with --features",
            name(j)
        ));
    }
    qr.q_tr_mul(&mut rhs);
    let beta = r
        .solve_upper_triangular(&rhs.rows(0, d))
        .ok_or_else(|| "features are collinear; drop one with --features".to_string())?;

    let weights: Vec<f64> = beta.iter().zip(&norms).map(|(b, s)| b / s).collect();
    let bias = y_mean - weights.iter().zip(&x_mean).map(|(w, m)| w * m).sum::<f64>();
    if !(bias.is_finite() && weights.iter().all(|w| w.is_finite())) {
        return Err("the least-squares solution overflows f64 (are the values too large?)".into());
    }
    Ok(Solved {
        fit: OlsFit { weights, bias },
        intercept,
        r,
        norms,
        x_mean,
    })
}

/// What the summary needs besides the solved fit.
struct Sums {
    n: usize,
    ss_res: f64,
    /// Centered with an intercept, Σy² without.
    ss_tot: f64,
    condition_number: f64,
}

/// [`solve`] from the R factor of `[1, x − c, y − c_y]` (or `[x, y]` without an intercept)
/// instead of the rows: R's trailing block is the R of the centered columns, so the same
/// scaling, the same collinearity checks and the same triangular solve apply. The residual sum
/// of squares is R's last diagonal entry squared, SS_tot the squared norm of its last column
/// (below the ones' row), and the condition number comes from the singular values of R of the
/// design (R's leading k × k block with the shift put back), those of the design itself.
fn solve_factor(factor: &Factor, name: &dyn Fn(usize) -> String) -> Result<(Solved, Sums), String> {
    let (d, intercept) = (factor.d(), factor.intercept);
    let n = usize::try_from(factor.n).unwrap_or(usize::MAX);
    if intercept && n <= d {
        return Err(format!(
            "{n} rows cannot determine {d} weights and a bias; least squares needs more rows than features"
        ));
    }
    if !intercept && n < d.max(1) {
        return Err(format!(
            "{n} rows cannot determine {d} weights; least squares without an intercept needs at least as many rows as features"
        ));
    }
    let lead = usize::from(intercept);
    let at = |i: usize, j: usize| factor.at(i, j);
    let mean = |k: usize| {
        if intercept {
            factor.shift[k] + at(0, 1 + k) / at(0, 0)
        } else {
            0.0
        }
    };
    let x_mean: Vec<f64> = (0..d).map(mean).collect();
    let y_mean = mean(d);
    let rxx = DMatrix::from_fn(d, d, |i, j| at(lead + i, lead + j));
    let mut r = rxx.clone();
    let mut norms = Vec::with_capacity(d);
    for (j, mut column) in r.column_iter_mut().enumerate() {
        let norm = column.norm();
        if intercept && (norm / (n as f64).sqrt() <= COLLINEAR * x_mean[j].abs() || norm == 0.0) {
            return Err(format!(
                "{} is constant over the rows, so it is collinear with the bias; drop it with --features",
                name(j)
            ));
        }
        if norm == 0.0 {
            return Err(format!(
                "{} is 0 in every row, so it has no weight to fit; drop it with --features",
                name(j)
            ));
        }
        column /= norm;
        norms.push(norm);
    }
    let largest = r.diagonal().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if let Some(j) = (0..d).find(|&j| r[(j, j)].abs() < COLLINEAR * largest) {
        return Err(format!(
            "features are collinear ({} is a linear combination of the others); drop one with --features",
            name(j)
        ));
    }
    let rxy = DVector::from_fn(d, |i, _| at(lead + i, lead + d));
    let ryy = at(lead + d, lead + d);
    let beta = r
        .solve_upper_triangular(&rxy)
        .ok_or_else(|| "features are collinear; drop one with --features".to_string())?;
    let weights: Vec<f64> = beta.iter().zip(&norms).map(|(b, s)| b / s).collect();
    let bias = if intercept {
        y_mean - weights.iter().zip(&x_mean).map(|(w, m)| w * m).sum::<f64>()
    } else {
        0.0
    };
    if !(bias.is_finite() && weights.iter().all(|w| w.is_finite())) {
        return Err("the least-squares solution overflows f64 (are the values too large?)".into());
    }
    let k = d + lead;
    let design = DMatrix::from_fn(k, k, |i, j| {
        if intercept && i == 0 && j > 0 {
            at(0, j) + factor.shift[j - 1] * at(0, 0)
        } else {
            at(i, j)
        }
    });
    let singular = design.singular_values();
    let (max, min) = singular
        .iter()
        .fold((0.0f64, f64::INFINITY), |(hi, lo), &s| {
            (hi.max(s), lo.min(s))
        });
    let sums = Sums {
        n,
        ss_res: ryy * ryy,
        ss_tot: rxy.norm_squared() + ryy * ryy,
        condition_number: max / min,
    };
    Ok((
        Solved {
            fit: OlsFit { weights, bias },
            intercept,
            r,
            norms,
            x_mean,
        },
        sums,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::splitmix64;

    /// Uniform in [-1, 1) from a counter.
    fn uniform(i: u64) -> f64 {
        (splitmix64(i) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn all(n: usize) -> Vec<u32> {
        (0..n as u32).collect()
    }

    #[test]
    fn ols_recovers_exact_coefficients_without_noise() {
        let (n, d) = (50, 3);
        let w = [2.5, -1.0, 1e-3];
        // Features on very different scales and far from 0: centering and the column
        // scaling keep this exact.
        let x: Vec<f64> = (0..n * d)
            .map(|i| [1000.0, 1.0, 1e4][i % d] * uniform(i as u64) + [5e3, -2.0, 0.0][i % d])
            .collect();
        let y: Vec<f64> = (0..n)
            .map(|i| 7.0 + (0..d).map(|j| w[j] * x[i * d + j]).sum::<f64>())
            .collect();
        let fit = fit(&x, &y, d, &all(n)).unwrap();
        for (a, e) in fit.weights.iter().zip(w) {
            assert!((a - e).abs() < 1e-9, "{a} vs {e}");
        }
        assert!((fit.bias - 7.0).abs() < 1e-9, "{}", fit.bias);
        assert!((fit.predict(&x[..d]) - y[0]).abs() < 1e-9);
    }

    /// The normal equations [XᵀX Xᵀ1; 1ᵀX n] β = [Xᵀy; 1ᵀy], solved by Gauss–Jordan with
    /// partial pivoting: an independent reference for well-conditioned data.
    fn normal_equations(x: &[f64], y: &[f64], d: usize) -> Vec<f64> {
        let p = d + 1;
        let mut m = vec![vec![0.0; p + 1]; p];
        for (i, &yi) in y.iter().enumerate() {
            let mut row: Vec<f64> = x[i * d..(i + 1) * d].to_vec();
            row.push(1.0);
            for a in 0..p {
                for b in 0..p {
                    m[a][b] += row[a] * row[b];
                }
                m[a][p] += row[a] * yi;
            }
        }
        for c in 0..p {
            let pivot = (c..p)
                .max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
                .unwrap();
            m.swap(c, pivot);
            let pivot_row = m[c].clone();
            for (_, row) in m.iter_mut().enumerate().filter(|(r, _)| *r != c) {
                let f = row[c] / pivot_row[c];
                for (v, pv) in row[c..].iter_mut().zip(&pivot_row[c..]) {
                    *v -= f * pv;
                }
            }
        }
        (0..p).map(|r| m[r][p] / m[r][r]).collect()
    }

    #[test]
    fn ols_matches_the_normal_equations_on_noisy_data() {
        let (n, d) = (200, 4);
        let x: Vec<f64> = (0..n * d).map(|i| 3.0 * uniform(i as u64)).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| {
                let xi = &x[i * d..(i + 1) * d];
                0.5 + xi[0] - 2.0 * xi[1] + 0.25 * xi[3] + 0.3 * uniform(10_000 + i as u64)
            })
            .collect();
        let fit = fit(&x, &y, d, &all(n)).unwrap();
        let reference = normal_equations(&x, &y, d);
        for (a, e) in fit.weights.iter().chain([&fit.bias]).zip(&reference) {
            assert!((a - e).abs() < 1e-9, "{a} vs {e}");
        }
        // The noise moves the answer off the true weights, but not far.
        assert!((fit.weights[1] + 2.0).abs() < 0.05, "{:?}", fit.weights);
    }

    #[test]
    fn ols_uses_only_the_given_rows() {
        // y = 2x + 1 on rows 0..3; row 3 is an outlier left out.
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [1.0, 3.0, 5.0, 100.0];
        let fit = fit(&x, &y, 1, &[0, 1, 2]).unwrap();
        assert!((fit.weights[0] - 2.0).abs() < 1e-12 && (fit.bias - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ols_refuses_collinear_constant_and_too_few_rows() {
        let n = 20;
        // x3 = 2·x1 − x2 + 5.
        let x: Vec<f64> = (0..n)
            .flat_map(|i| {
                let (a, b) = (uniform(i), uniform(100 + i));
                [a, b, 2.0 * a - b + 5.0]
            })
            .collect();
        let y: Vec<f64> = (0..n as usize).map(|i| x[i * 3]).collect();
        assert_eq!(
            fit(&x, &y, 3, &all(n as usize)).unwrap_err(),
            "features are collinear (feature 3 is a linear combination of the others); drop one with --features"
        );
        let table = crate::data::table::Table {
            file_name: "t.csv".into(),
            columns: vec!["x1".into(), "x2".into(), "x3".into(), "y".into()],
            feature_names: vec!["x1".into(), "x2".into(), "x3".into()],
            target_name: "y".into(),
            x: x.clone(),
            y: y.clone(),
            dropped_rows: 0,
            content_hash: 0,
            bytes: 0,
        };
        assert_eq!(
            fit_table(&table, &all(n as usize)).unwrap_err(),
            "features are collinear (feature `x3` is a linear combination of the others); drop one with --features"
        );

        let constant: Vec<f64> = (0..n).flat_map(|i| [uniform(i), 0.1]).collect();
        assert_eq!(
            fit(&constant, &y, 2, &all(n as usize)).unwrap_err(),
            "feature 2 is constant over the rows, so it is collinear with the bias; drop it with --features"
        );
        assert_eq!(
            fit(&x, &y, 3, &[0, 1, 2]).unwrap_err(),
            "3 rows cannot determine 3 weights and a bias; least squares needs more rows than features"
        );
    }
}
