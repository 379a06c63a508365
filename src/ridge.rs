//! The closed form of a ridge-penalised linear fit (`--l2 λ`), in the space the model trains in,
//! so that a regularised run is checked against its own optimum as an unregularised one is
//! against OLS.
//!
//! Training minimises mean((x_t·w + b − y_t)²) + λ·‖w‖² over the training rows, where x_t and y_t
//! are the features and target as the model sees them (standardized over the training rows on a
//! standardized table, raw otherwise) and the bias is not penalised. With the columns centred
//! (which takes the bias out), that is the least-squares problem
//! `[X_c; √(nλ)·I] w ≈ [y_c; 0]`, solved here by Householder QR in f64 (never through XᵀX,
//! which squares the condition number); b = ȳ_t − x̄_t·w. The result is converted to the data's
//! units exactly as a trained checkpoint is (`PreparedTable::to_data_units`).

use nalgebra::{DMatrix, DVector};

use crate::data::PreparedTable;
use crate::ols::OlsFit;

/// The ridge fit of `table`'s training rows with penalty `l2`, in the data's units.
pub fn fit(table: &PreparedTable, l2: f64) -> Result<OlsFit, String> {
    let Some(in_memory) = table.in_memory() else {
        return Err(
            "the ridge closed form needs the table in memory, and this one is out of core".into(),
        );
    };
    let rows = &in_memory.train;
    let d = table.d();
    let n = rows.len();
    if n == 0 {
        return Err("no training rows".into());
    }
    // The training space, in f64.
    let (feature_mean, feature_std) = match &table.scaling {
        Some(s) => (s.mean.clone(), s.std.clone()),
        None => (vec![0.0; d], vec![1.0; d]),
    };
    let (target_mean, target_std) = table.target_scaling.unwrap_or((0.0, 1.0));
    let x_t =
        |r: u32, j: usize| (in_memory.table.row(r as usize)[j] - feature_mean[j]) / feature_std[j];
    let y_t = |r: u32| (in_memory.table.y[r as usize] - target_mean) / target_std;
    let x_bar: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|&r| x_t(r, j)).sum::<f64>() / n as f64)
        .collect();
    let y_bar = rows.iter().map(|&r| y_t(r)).sum::<f64>() / n as f64;
    let root = (n as f64 * l2).sqrt();
    let a = DMatrix::from_fn(n + d, d, |i, j| {
        if i < n {
            x_t(rows[i], j) - x_bar[j]
        } else if i - n == j {
            root
        } else {
            0.0
        }
    });
    let b = DVector::from_fn(n + d, |i, _| if i < n { y_t(rows[i]) - y_bar } else { 0.0 });
    let qr = a.qr();
    let qtb = qr.q().transpose() * b;
    let r = qr.r();
    if (0..d).any(|j| r[(j, j)].abs() < 1e-12) {
        return Err("the features are collinear and the penalty is 0".into());
    }
    let w = r
        .solve_upper_triangular(&qtb.rows(0, d).into_owned())
        .ok_or("the ridge system is singular")?;
    let bias = y_bar - x_bar.iter().zip(w.iter()).map(|(x, w)| x * w).sum::<f64>();
    // In the data's units: the feature scaling folded into the weights and bias, as a
    // checkpoint's parameters are converted.
    let (weights, bias) = match &table.scaling {
        Some(scaling) => {
            let (w, b) = scaling.unscale_linear(w.as_slice(), &[bias]);
            (w, b[0])
        }
        None => (w.iter().copied().collect(), bias),
    };
    // The target's scaling (mean, std): y = mean + std·y_t.
    let (weights, bias) = match table.target_scaling {
        Some((mean, std)) => (weights.iter().map(|w| w * std).collect(), mean + std * bias),
        None => (weights, bias),
    };
    Ok(OlsFit { weights, bias })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TableConfig;

    fn table(standardize: bool) -> (tempfile::TempDir, PreparedTable) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = String::from("a,b,y\n");
        for i in 0..200 {
            let (a, b) = ((i as f64 * 0.37).sin() * 30.0, (i as f64 * 0.11).cos());
            text.push_str(&format!(
                "{a},{b},{}\n",
                2.0 * a - 5.0 * b + 100.0 + (i % 7) as f64
            ));
        }
        std::fs::write(&path, text).unwrap();
        let mut config = TableConfig::new(path.display().to_string(), "y");
        config.standardize = standardize;
        let table = PreparedTable::load(&config, 42).unwrap();
        (dir, table)
    }

    #[test]
    fn no_penalty_is_ols_and_the_optimum_has_zero_gradient() {
        for standardize in [true, false] {
            let (_dir, t) = table(standardize);
            let m = t.in_memory().unwrap();
            let ols = crate::ols::fit_table(&m.table, &m.train).unwrap();
            let ridge = fit(&t, 0.0).unwrap();
            for (a, b) in ridge.weights.iter().zip(&ols.weights) {
                assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
            }
            // With a penalty: the objective's gradient in the training space vanishes.
            let l2 = 0.3;
            let fit = fit(&t, l2).unwrap();
            let (mean, std) = match &t.scaling {
                Some(s) => (s.mean.clone(), s.std.clone()),
                None => (vec![0.0; 2], vec![1.0; 2]),
            };
            let (ym, ys) = t.target_scaling.unwrap_or((0.0, 1.0));
            // Weights in the training space.
            let w_t: Vec<f64> = (0..2).map(|j| fit.weights[j] * std[j] / ys).collect();
            let n = m.train.len() as f64;
            let mut grad = [0.0f64; 2];
            for &r in &m.train {
                let row = m.table.row(r as usize);
                let x: Vec<f64> = (0..2).map(|j| (row[j] - mean[j]) / std[j]).collect();
                let z = (fit.predict(row) - ym) / ys;
                let e = z - (m.table.y[r as usize] - ym) / ys;
                for j in 0..2 {
                    grad[j] += 2.0 * e * x[j] / n;
                }
            }
            for j in 0..2 {
                let g = grad[j] + 2.0 * l2 * w_t[j];
                assert!(g.abs() < 1e-9, "standardize {standardize}: gradient {g}");
            }
        }
    }
}
