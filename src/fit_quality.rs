//! How well predictions match targets: MSE, RMSE, MAE and R².

/// Regression metrics over a set of rows.
///
/// With no rows every metric is NaN; with targets that are all equal (SS_tot = 0) R² is NaN,
/// since no model can explain variance that is not there. NaN is written as `null` by
/// serde_json; printers show it as "n/a".
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FitQuality {
    /// Mean squared error, mean((p − y)²).
    pub mse: f64,
    /// √mse, in the target's units.
    pub rmse: f64,
    /// Mean absolute error, mean(|p − y|).
    pub mae: f64,
    /// Coefficient of determination, 1 − SS_res / SS_tot (SS_tot: squared deviations of the
    /// targets from their mean). 1 is a perfect fit, 0 no better than the mean, below 0 worse.
    pub r2: f64,
    /// The number of (prediction, target) pairs.
    pub rows: usize,
}

impl FitQuality {
    /// The metrics of `predictions` against `targets`, in one pass, in f64.
    ///
    /// # Panics
    /// If the two iterators have different lengths.
    pub fn of(
        predictions: impl Iterator<Item = f64>,
        targets: impl Iterator<Item = f64>,
    ) -> FitQuality {
        let (mut predictions, mut targets) = (predictions, targets);
        let mut sums = FitQualitySums::default();
        loop {
            match (predictions.next(), targets.next()) {
                (Some(p), Some(y)) => sums.push(p, y),
                (None, None) => break,
                _ => panic!("FitQuality::of: predictions and targets differ in length"),
            }
        }
        sums.finish()
    }
}

/// [`FitQuality`]'s running sums, to add rows to one at a time and to merge: rows in chunks on
/// several threads give the metrics of all of them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FitQualitySums {
    rows: usize,
    ss_res: f64,
    abs: f64,
    /// Welford's running mean and sum of squared deviations of the targets: one pass, without
    /// the cancellation of Σy² − n·ȳ².
    mean: f64,
    ss_tot: f64,
}

impl FitQualitySums {
    /// Adds a row with prediction `p` and target `y`.
    pub fn push(&mut self, p: f64, y: f64) {
        self.rows += 1;
        let e = p - y;
        self.ss_res += e * e;
        self.abs += e.abs();
        let delta = y - self.mean;
        self.mean += delta / self.rows as f64;
        self.ss_tot += delta * (y - self.mean);
    }

    /// Adds `other`'s rows (Chan et al.'s pairwise update of the mean and squared deviations).
    pub fn merge(&mut self, other: &FitQualitySums) {
        if other.rows == 0 {
            return;
        }
        if self.rows == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.rows as f64, other.rows as f64);
        let delta = other.mean - self.mean;
        self.ss_tot += other.ss_tot + delta * delta * na * nb / (na + nb);
        self.mean += delta * nb / (na + nb);
        self.rows += other.rows;
        self.ss_res += other.ss_res;
        self.abs += other.abs;
    }

    /// The rows added.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The metrics of the rows added.
    pub fn finish(&self) -> FitQuality {
        let n = self.rows as f64;
        let mse = self.ss_res / n;
        FitQuality {
            mse,
            rmse: mse.sqrt(),
            mae: self.abs / n,
            r2: if self.ss_tot > 0.0 {
                1.0 - self.ss_res / self.ss_tot
            } else {
                f64::NAN
            },
            rows: self.rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(p: &[f64], y: &[f64]) -> FitQuality {
        FitQuality::of(p.iter().copied(), y.iter().copied())
    }

    #[test]
    fn fit_quality_hand_computed() {
        // Errors 0, −1, 1, −1: SS_res = 3. Targets' mean 2.75, SS_tot = 3.0625 + 0.0625 +
        // 0.5625 + 5.0625 = 8.75.
        let q = of(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 5.0]);
        assert_eq!(q.rows, 4);
        assert_eq!(q.mse, 0.75);
        assert_eq!(q.rmse, 0.75f64.sqrt());
        assert_eq!(q.mae, 0.75);
        assert!((q.r2 - (1.0 - 3.0 / 8.75)).abs() < 1e-15, "{}", q.r2);
    }

    #[test]
    fn fit_quality_perfect_mean_and_worse_than_mean() {
        let y = [2.0, 4.0, 9.0];
        assert_eq!(of(&y, &y).r2, 1.0);
        assert_eq!(of(&y, &y).mse, 0.0);
        assert!(of(&[5.0; 3], &y).r2.abs() < 1e-15);
        // The targets' mean, 5, explains nothing: R² = 0. Predicting 0 is worse than the
        // mean: SS_res = 4 + 16 + 81 = 101 against SS_tot = 9 + 1 + 16 = 26.
        assert!((of(&[0.0; 3], &y).r2 - (1.0 - 101.0 / 26.0)).abs() < 1e-14);
    }

    #[test]
    fn fit_quality_constant_targets_and_no_rows_give_nan() {
        let q = of(&[1.0, 2.0], &[3.0, 3.0]);
        assert!(q.r2.is_nan());
        assert_eq!((q.mse, q.mae, q.rows), (2.5, 1.5, 2));
        let empty = of(&[], &[]);
        assert_eq!(empty.rows, 0);
        assert!(
            empty.mse.is_nan() && empty.rmse.is_nan() && empty.mae.is_nan() && empty.r2.is_nan()
        );
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"mse":2.5,"rmse":1.5811388300841898,"mae":1.5,"r2":null,"rows":2}"#
        );
    }

    #[test]
    #[should_panic(expected = "differ in length")]
    fn fit_quality_refuses_unequal_lengths() {
        of(&[1.0], &[1.0, 2.0]);
    }
}
