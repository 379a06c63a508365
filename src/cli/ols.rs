//! `burnfit ols`: the closed-form least-squares fit of a CSV file, and its summary (standard
//! errors, t tests, intervals, R², F, AIC/BIC: what statsmodels' `OLS.fit().summary()` prints).

use std::path::PathBuf;

use clap::Args;

use crate::config::{TableConfig, TrainingConfig};
use crate::console::Console;
use crate::error::{Error, Result, invalid};
use crate::ols::OlsSummary;
use crate::report::split_quality;

use super::{default_is, r2_text};

/// `burnfit ols`.
#[derive(Debug, Args)]
pub struct OlsArgs {
    /// The CSV file (header row required).
    #[arg(long, value_name = "FILE.csv")]
    pub data: String,
    /// The column to predict.
    #[arg(long, value_name = "COLUMN")]
    pub target: String,
    /// The feature columns, comma-separated [default: every column but the target]
    #[arg(long, value_delimiter = ',', value_name = "A,B,..")]
    pub features: Option<Vec<String>>,
    /// The field delimiter.
    #[arg(long, value_name = "CHAR", help = default_is("The field delimiter", TableConfig::new("", "").delimiter))]
    pub delimiter: Option<char>,
    /// Fraction of rows held out for validation (the same split `train` makes with this seed).
    #[arg(long, value_name = "F", allow_negative_numbers = true, help = default_is("Fraction of rows held out for validation (the same split `train` makes with this seed)", TableConfig::new("", "").val_frac))]
    pub val_frac: Option<f64>,
    /// Seed of the split.
    #[arg(long, value_name = "N", help = default_is("Seed of the split", TrainingConfig::default().seed))]
    pub seed: Option<u64>,
    /// Skip rows with an empty or non-numeric cell.
    #[arg(long)]
    pub drop_invalid_rows: bool,
    /// Fit y ≈ x·w without an intercept (R² and F are then uncentered, as in statsmodels).
    #[arg(long)]
    pub no_intercept: bool,
    /// Print the fit and its summary as one JSON object (docs/json-output.md) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ols --json`: the data, the quality on both splits, then the summary's fields.
#[derive(serde::Serialize)]
struct OlsJson<'a> {
    data: &'a str,
    target: &'a str,
    features: &'a [String],
    train_rows: usize,
    val_rows: usize,
    dropped_rows: usize,
    train: crate::fit_quality::FitQuality,
    validation: Option<crate::fit_quality::FitQuality>,
    #[serde(flatten)]
    summary: &'a OlsSummary,
}

pub(super) fn run(args: &OlsArgs) -> Result<()> {
    if let Some(features) = &args.features
        && features.iter().any(|f| f.trim().is_empty())
    {
        return Err(invalid(
            "--features",
            features.join(","),
            "must be column names separated by commas, none of them empty",
        ));
    }
    let mut data = crate::config::TableConfig::new(args.data.clone(), args.target.clone());
    data.features = args.features.clone();
    data.standardize = false;
    if let Some(d) = args.delimiter {
        data.delimiter = d;
    }
    if let Some(f) = args.val_frac {
        data.val_frac = f;
    }
    data.drop_invalid_rows = args.drop_invalid_rows;
    let config = TrainingConfig {
        seed: args.seed.unwrap_or(TrainingConfig::default().seed),
        data: Some(data.clone()),
        ..TrainingConfig::default()
    };
    config.validate()?;
    let table = crate::data::PreparedTable::load(&data, config.seed)?;
    let t = &table.table;
    let summary =
        crate::ols::summary_table(t, &table.train, !args.no_intercept).map_err(|message| {
            Error::Data {
                path: PathBuf::from(&data.path),
                message,
            }
        })?;
    let (fit, quality) = (&summary.fit, split_quality(&table, &summary.fit));
    let mut console = Console::default();
    if args.json {
        let json = OlsJson {
            data: &t.file_name,
            target: &t.target_name,
            features: &t.feature_names,
            train_rows: table.train.len(),
            val_rows: table.val.len(),
            dropped_rows: t.dropped_rows,
            train: quality.train,
            validation: quality.val,
            summary: &summary,
        };
        console.block(&serde_json::to_string(&json).expect("the fit serialises"));
        return console.finish();
    }
    say!(
        console,
        "OLS fit of `{}` on {} training rows of {} ({} validation rows)",
        t.target_name,
        table.train.len(),
        t.file_name,
        table.val.len()
    );
    for (name, w) in t.feature_names.iter().zip(&fit.weights) {
        say!(console, "  {name:<16} {w:>16.8}");
    }
    if summary.intercept {
        say!(console, "  {:<16} {:>16.8}", "(intercept)", fit.bias);
    }
    let show = |q: crate::fit_quality::FitQuality| {
        format!(
            "MSE {:.6}  RMSE {:.6}  MAE {:.6}  R² {}",
            q.mse,
            q.rmse,
            q.mae,
            r2_text(q.r2, 6)
        )
    };
    if t.dropped_rows > 0 {
        say!(
            console,
            "dropped {} rows with an invalid cell",
            t.dropped_rows
        );
    }
    say!(console, "train: {}", show(quality.train));
    if let Some(val) = quality.val {
        say!(console, "validation: {}", show(val));
    }
    print_summary(&mut console, &summary);
    console.finish()
}

/// The statsmodels-style summary, after the lines above.
fn print_summary(console: &mut Console, s: &OlsSummary) {
    let uncentered = if s.intercept { "" } else { " (uncentered)" };
    say!(console, "summary of the fit on the training rows:");
    say!(
        console,
        "  n {}  df model {}  df residuals {}{}",
        s.n,
        s.df_model,
        s.df_resid,
        if s.intercept { "" } else { "  (no intercept)" }
    );
    say!(
        console,
        "  R²{uncentered} {}  adjusted R²{uncentered} {}",
        significant(s.r2, 9),
        significant(s.adj_r2, 9)
    );
    say!(
        console,
        "  F-statistic {} on {} and {} df, p-value {}",
        significant(s.f_statistic, 6),
        s.df_model,
        s.df_resid,
        significant(s.f_p_value, 4)
    );
    say!(
        console,
        "  residual standard error {} on {} df",
        significant(s.residual_std_error, 9),
        s.df_resid
    );
    say!(
        console,
        "  log-likelihood {}  AIC {}  BIC {}",
        significant(s.log_likelihood, 8),
        significant(s.aic, 8),
        significant(s.bic, 8)
    );
    say!(
        console,
        "  condition number {}",
        significant(s.condition_number, 4)
    );
    say!(
        console,
        "  {:<16} {:>16} {:>13} {:>10} {:>10} {:>16} {:>16}",
        "",
        "coef",
        "std err",
        "t",
        "P>|t|",
        "[0.025",
        "0.975]"
    );
    for c in &s.coefficients {
        say!(
            console,
            "  {:<16} {:>16} {:>13} {:>10} {:>10} {:>16} {:>16}",
            c.name,
            significant(c.estimate, 10),
            significant(c.std_error, 6),
            significant(c.t, 5),
            significant(c.p_value, 4),
            significant(c.ci_low, 8),
            significant(c.ci_high, 8)
        );
    }
}

/// `v` with `digits` significant digits, as C's `%g` would write it (`n/a` for NaN).
pub(crate) fn significant(v: f64, digits: usize) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    if v == 0.0 || v.is_infinite() {
        return format!("{v}");
    }
    let exponent = v.abs().log10().floor() as i32;
    if (-4..digits as i32).contains(&exponent) {
        let decimals = (digits as i32 - 1 - exponent).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.precision$e}", precision = digits.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::significant;

    #[test]
    fn significant_digits_like_printf_g() {
        assert_eq!(significant(1234.5678, 6), "1234.57");
        assert_eq!(significant(-0.000123456, 3), "-0.000123");
        assert_eq!(significant(1.5e-7, 3), "1.50e-7");
        assert_eq!(significant(-3482258.63459582, 6), "-3.48226e6");
        assert_eq!(significant(f64::NAN, 6), "n/a");
        assert_eq!(significant(0.0, 6), "0");
    }
}
