//! The inference statistics of a least-squares fit, as statsmodels' `OLS.fit().summary()`
//! prints them: per coefficient its standard error, t statistic, two-sided p-value and 95 %
//! confidence interval; for the fit R², adjusted R², the F test, the log-likelihood, AIC, BIC,
//! the condition number and the residual standard error.
//!
//! Standard errors come from the QR factor of the fit ([`super::solve_factor`]), never from an
//! inverted XᵀX: with A = Xc·D⁻¹ (centered columns over their norms) = QR,
//! (XcᵀXc)⁻¹ = D⁻¹R⁻¹R⁻ᵀD⁻¹, and the intercept's variance is σ²(1/n + ‖R⁻ᵀD⁻¹x̄‖²).
//! Tested against NIST's certified values (tests/it/ols_summary.rs).

use nalgebra::DMatrix;
use serde::Serialize;
use statrs::function::beta::beta_reg;

use super::{OlsFit, Solved, Sums};

/// One coefficient's estimate and its inference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coefficient {
    /// The feature's column name, or `(intercept)`.
    pub name: String,
    /// The least-squares estimate.
    pub estimate: f64,
    /// Its standard error, σ̂·√((XᵀX)⁻¹)ⱼⱼ (NaN with no residual degrees of freedom).
    pub std_error: f64,
    /// estimate / std_error.
    pub t: f64,
    /// P(|T| > |t|) for T ~ Student's t with the residual degrees of freedom.
    pub p_value: f64,
    /// The 95 % confidence interval's low end, estimate − t₀.₉₇₅·std_error.
    pub ci_low: f64,
    /// Its high end.
    pub ci_high: f64,
}

/// What statsmodels' `OLS.fit().summary()` reports, for one fit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OlsSummary {
    /// The weights and bias.
    #[serde(skip)]
    pub fit: OlsFit,
    /// One per feature in order, then `(intercept)` when the fit has one.
    pub coefficients: Vec<Coefficient>,
    /// Whether the model has an intercept.
    pub intercept: bool,
    /// Rows fitted.
    pub n: usize,
    /// Model degrees of freedom: the number of features (the intercept not counted).
    pub df_model: usize,
    /// Residual degrees of freedom: n minus the number of coefficients.
    pub df_resid: usize,
    /// Sum of squared residuals.
    pub ss_res: f64,
    /// 1 − SS_res/SS_tot; SS_tot is centered with an intercept, uncentered (Σy²) without.
    pub r2: f64,
    /// 1 − (n − k₀)/df_resid · (1 − R²), k₀ = 1 with an intercept, else 0.
    pub adj_r2: f64,
    /// ((SS_tot − SS_res)/df_model) / (SS_res/df_resid).
    pub f_statistic: f64,
    /// P(F > f_statistic) for F ~ F(df_model, df_resid).
    pub f_p_value: f64,
    /// The Gaussian log-likelihood at the fit, −n/2·(ln 2π + ln(SS_res/n) + 1).
    pub log_likelihood: f64,
    /// −2·log-likelihood + 2k (k coefficients).
    pub aic: f64,
    /// −2·log-likelihood + k·ln n.
    pub bic: f64,
    /// The design matrix's (with its column of ones) largest over smallest singular value, as
    /// statsmodels computes it: large values (above ~1e3 for standardized data) flag
    /// near-collinear features or columns on very different scales.
    pub condition_number: f64,
    /// σ̂ = √(SS_res/df_resid), in the target's units.
    pub residual_std_error: f64,
}

impl OlsSummary {
    pub(super) fn of(solved: &Solved, names: &[String], sums: &Sums) -> OlsSummary {
        let fit = &solved.fit;
        let intercept = solved.intercept;
        let d = solved.norms.len();
        let (n, ss_res, ss_tot) = (sums.n, sums.ss_res, sums.ss_tot);
        let k = d + usize::from(intercept);
        let df_resid = n - k;
        // An exact fit with as many rows as coefficients leaves no residual degrees of freedom:
        // σ̂ and everything built on it are undefined (NaN, shown as n/a).
        let undefined_without_df = |v: f64| if df_resid > 0 { v } else { f64::NAN };
        let sigma2 = undefined_without_df(ss_res / df_resid as f64);

        // The unscaled variances: diag((XᵀX)⁻¹) from R⁻¹.
        let r_inv = solved
            .r
            .clone()
            .solve_upper_triangular(&DMatrix::identity(d, d))
            .expect("solve checked R's diagonal");
        let mut unscaled: Vec<f64> = (0..d)
            .map(|j| r_inv.row(j).norm_squared() / solved.norms[j].powi(2))
            .collect();
        if intercept {
            let u = DMatrix::from_fn(d, 1, |j, _| solved.x_mean[j] / solved.norms[j]);
            unscaled.push(1.0 / n as f64 + (r_inv.transpose() * u).norm_squared());
        }

        let df = df_resid as f64;
        let t_quantile = t_quantile_975(df);
        let estimates = fit
            .weights
            .iter()
            .copied()
            .chain(intercept.then_some(fit.bias));
        let labels = names
            .iter()
            .cloned()
            .chain(intercept.then(|| "(intercept)".into()));
        let coefficients = estimates
            .zip(labels)
            .zip(&unscaled)
            .map(|((estimate, name), v)| {
                let std_error = (sigma2 * v).sqrt();
                let t = estimate / std_error;
                Coefficient {
                    name,
                    estimate,
                    std_error,
                    t,
                    p_value: t_two_sided_p(t, df),
                    ci_low: estimate - t_quantile * std_error,
                    ci_high: estimate + t_quantile * std_error,
                }
            })
            .collect();

        let r2 = 1.0 - ss_res / ss_tot;
        let k0 = usize::from(intercept) as f64;
        let adj_r2 = undefined_without_df(1.0 - (n as f64 - k0) / df * (1.0 - r2));
        let f_statistic = undefined_without_df(((ss_tot - ss_res) / d as f64) / (ss_res / df));
        let nf = n as f64;
        let log_likelihood =
            -nf / 2.0 * ((2.0 * std::f64::consts::PI).ln() + (ss_res / nf).ln() + 1.0);
        OlsSummary {
            fit: fit.clone(),
            coefficients,
            intercept,
            n,
            df_model: d,
            df_resid,
            ss_res,
            r2,
            adj_r2,
            f_statistic,
            f_p_value: f_upper_p(f_statistic, d as f64, df),
            log_likelihood,
            aic: -2.0 * log_likelihood + 2.0 * k as f64,
            bic: -2.0 * log_likelihood + nf.ln() * k as f64,
            condition_number: sums.condition_number,
            residual_std_error: sigma2.sqrt(),
        }
    }
}

/// P(|T| > |t|), T ~ Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2),
/// which keeps its relative accuracy for tiny p-values (1 − CDF would round them to 0).
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    // `df` NaN or not above 0: no distribution.
    if df.is_nan() || df <= 0.0 || t.is_nan() {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    beta_reg(df / 2.0, 0.5, df / (df + t * t))
}

/// The t with P(|T| > t) = 0.05, T ~ Student's t with `df` degrees of freedom: the half-width
/// of a 95 % interval in standard errors. From 1,000 degrees of freedom the Cornish-Fisher
/// expansion around the normal quantile (Abramowitz & Stegun 26.7.5, four terms: its error is
/// below 1e-15 there); below, bisection on [`t_two_sided_p`]. (statrs 0.19's
/// `StudentsT::inverse_cdf` drifts from a few million degrees of freedom — 1.9563 at 3·10⁶,
/// 1.8266 at 10⁷, where the answer is 1.95996 — and did not return at 1.5·10⁷: the row counts
/// of the large tables `ols` streams.)
pub fn t_quantile_975(df: f64) -> f64 {
    if df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if df >= 1_000.0 {
        // Φ⁻¹(0.975).
        let z = 1.959_963_984_540_054_f64;
        let g1 = (z.powi(3) + z) / 4.0;
        let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
        let g3 = (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / 384.0;
        let g4 = (79.0 * z.powi(9) + 776.0 * z.powi(7) + 1482.0 * z.powi(5)
            - 1920.0 * z.powi(3)
            - 945.0 * z)
            / 92_160.0;
        return z + g1 / df + g2 / df.powi(2) + g3 / df.powi(3) + g4 / df.powi(4);
    }
    // P falls as t grows: bracket the answer, then halve the bracket to f64's resolution.
    let (mut low, mut high) = (0.0f64, 16.0f64);
    while t_two_sided_p(high, df) > 0.05 {
        low = high;
        high *= 2.0;
        if !high.is_finite() {
            return f64::INFINITY;
        }
    }
    loop {
        let mid = 0.5 * (low + high);
        if mid <= low || mid >= high {
            return mid;
        }
        if t_two_sided_p(mid, df) > 0.05 {
            low = mid;
        } else {
            high = mid;
        }
    }
}

/// P(F > f), F ~ F(d1, d2): I_{d2/(d2+d1·f)}(d2/2, d1/2), accurate for tiny p-values too.
pub fn f_upper_p(f: f64, d1: f64, d2: f64) -> f64 {
    if [d1, d2, f].iter().any(|v| v.is_nan()) || d1 <= 0.0 || d2 <= 0.0 {
        return f64::NAN;
    }
    if f.is_infinite() {
        return 0.0;
    }
    if f <= 0.0 {
        return 1.0;
    }
    beta_reg(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known values: closed forms for df = 1 and 2, and scipy 1.17's `2 * stats.t.sf(2, 10)`.
    #[test]
    fn p_values_match_known_values() {
        let close = |a: f64, e: f64| assert!((a - e).abs() <= 1e-12 * e.abs(), "{a} vs {e}");
        // df = 1 is Cauchy: P(|T| > t) = 1 − 2·atan(t)/π.
        for t in [0.1, 1.0, 3.0, 40.0] {
            close(
                t_two_sided_p(t, 1.0),
                1.0 - 2.0 * f64::atan(t) / std::f64::consts::PI,
            );
        }
        // df = 2: P(|T| > t) = 1 − t/√(2 + t²).
        for t in [0.5, 2.0, 10.0] {
            close(t_two_sided_p(t, 2.0), 1.0 - t / (2.0 + t * t).sqrt());
        }
        close(t_two_sided_p(2.0, 10.0), 0.07338803477074037);
        close(t_two_sided_p(-2.0, 10.0), 0.07338803477074037);
        assert_eq!(t_two_sided_p(0.0, 5.0), 1.0);
        // F(1, d2) is t² with d2 degrees of freedom.
        close(f_upper_p(4.0, 1.0, 10.0), t_two_sided_p(2.0, 10.0));
        // F(2, d2): P(F > f) = (1 + 2f/d2)^(−d2/2).
        for (f, d2) in [(3.0, 7.0), (0.5, 20.0), (50.0, 4.0)] {
            close(f_upper_p(f, 2.0, d2), (1.0 + 2.0 * f / d2).powf(-d2 / 2.0));
        }
        // A tiny p-value keeps its digits: (1 + 2·1e6/30)^(−15).
        close(f_upper_p(1e6, 2.0, 30.0), (1.0f64 + 2e6 / 30.0).powf(-15.0));
        assert!(t_two_sided_p(1.0, 0.0).is_nan() && f_upper_p(1.0, 2.0, 0.0).is_nan());
        assert_eq!(f_upper_p(f64::INFINITY, 2.0, 3.0), 0.0);
    }

    #[test]
    fn the_t_quantile_gives_a_95_percent_interval() {
        // scipy 1.17's `stats.t.ppf(0.975, df)`; for df = 2 the closed form 0.95/√(2·0.975·0.025).
        for (df, q) in [
            (1.0, 12.706204736174694),
            (2.0, 0.95 / (2.0f64 * 0.975 * 0.025).sqrt()),
            (10.0, 2.228138851986274),
            (30.0, 2.0422724563012378),
        ] {
            let got = t_quantile_975(df);
            assert!((got - q).abs() < 1e-9 * q, "df {df}: {got} vs {q}");
        }
        // Large tables: scipy 1.17's `stats.t.ppf(0.975, df)` (statrs' inverse CDF gave 1.8266
        // at 10^7 and did not return at 1.5·10^7); 999 and 1,000 meet across the switch.
        for (df, q) in [
            (999.0, 1.962341461133449),
            (1000.0, 1.9623390808264083),
            (1e5, 1.9599877075346095),
            (3e6, 1.9599647752974443),
            (1e7, 1.959964221767205),
            (1.5e7, 1.959964142691482),
            (4e7, 1.9599640438468362),
            (1e9, 1.959963986912325),
        ] {
            let got = t_quantile_975(df);
            assert!((got - q).abs() < 1e-12, "df {df}: {got} vs {q}");
        }
        assert!(t_quantile_975(0.0).is_nan());
        // Fractional and tiny df: still the p-value's inverse.
        for df in [0.05, 0.5, 3.5] {
            let q = t_quantile_975(df);
            assert!(
                (t_two_sided_p(q, df) / 0.05 - 1.0).abs() < 1e-12,
                "df {df}: {q}"
            );
        }
    }

    #[test]
    fn a_hand_computed_line() {
        // y = 1, 3, 2, 5 at x = 0, 1, 2, 3: x̄ = 1.5, ȳ = 2.75, Sxx = 5, Sxy = 5.5, SS_tot = 8.75;
        // slope Sxy/Sxx = 1.1, intercept ȳ − 1.1·x̄ = 1.1.
        let (x, y) = ([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 2.0, 5.0]);
        let s = super::super::summary(&x, &y, 1, &[0, 1, 2, 3], true).unwrap();
        let fitted: Vec<f64> = x.iter().map(|v| 1.1 + 1.1 * v).collect();
        let ss_res: f64 = fitted.iter().zip(&y).map(|(f, v)| (v - f).powi(2)).sum();
        let close = |a: f64, e: f64| assert!((a - e).abs() <= 1e-12 * e.abs(), "{a} vs {e}");
        close(s.ss_res, ss_res);
        close(s.coefficients[0].estimate, 1.1);
        close(s.coefficients[1].estimate, 1.1);
        let sigma2 = ss_res / 2.0;
        close(s.residual_std_error, sigma2.sqrt());
        // Var(slope) = σ²/Sxx; Var(intercept) = σ²(1/n + x̄²/Sxx).
        close(s.coefficients[0].std_error, (sigma2 / 5.0).sqrt());
        close(
            s.coefficients[1].std_error,
            (sigma2 * (0.25 + 2.25 / 5.0)).sqrt(),
        );
        close(s.r2, 1.0 - ss_res / 8.75);
        close(s.adj_r2, 1.0 - 3.0 / 2.0 * (ss_res / 8.75));
        close(s.f_statistic, (8.75 - ss_res) / sigma2);
        // With one feature, F = t² and their p-values agree.
        close(s.f_statistic, s.coefficients[0].t.powi(2));
        close(s.f_p_value, s.coefficients[0].p_value);
        let llf = -2.0 * ((2.0 * std::f64::consts::PI).ln() + (ss_res / 4.0).ln() + 1.0);
        close(s.log_likelihood, llf);
        close(s.aic, -2.0 * llf + 4.0);
        close(s.bic, -2.0 * llf + 2.0 * 4f64.ln());
        assert_eq!((s.n, s.df_model, s.df_resid), (4, 1, 2));
        // The 95 % interval: t₀.₉₇₅ with 2 df is 0.95/√(2·0.975·0.025).
        let c = &s.coefficients[0];
        let q = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt();
        assert!((c.ci_high - c.estimate - q * c.std_error).abs() < 1e-9 * c.std_error);
        // Design [x, 1]: XᵀX = [[14, 6], [6, 4]], eigenvalues 9 ± √61; cond = √(λmax/λmin).
        close(
            s.condition_number,
            ((9.0 + 61f64.sqrt()) / (9.0 - 61f64.sqrt())).sqrt(),
        );
    }
}
