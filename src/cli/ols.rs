//! `burnfit ols`: the closed-form least-squares fit of a CSV file, and its summary (standard
//! errors, t tests, intervals, R², F, AIC/BIC: what statsmodels' `OLS.fit().summary()` prints).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::checkpoint::write_atomically;
use crate::config::{TableConfig, TrainingConfig};
use crate::console::Console;
use crate::data::table::TableOptions;
use crate::error::{Error, Result, invalid};
use crate::ols::{OlsSummary, ShardSummary, StreamOptions, fit_csv};
use crate::report::coefficient_text;

use super::{default_is, r2_text};

/// `burnfit ols`.
#[derive(Debug, Args)]
pub struct OlsArgs {
    /// The CSV file (header row required), read in streaming passes: memory stays bounded
    /// whatever its size. A Parquet file (`.parquet`) too, in a build with the `parquet` feature.
    #[arg(long, value_name = "FILE.csv", required_unless_present = "merge")]
    pub data: Option<String>,
    /// The column to predict.
    #[arg(long, value_name = "COLUMN", required_unless_present = "merge")]
    pub target: Option<String>,
    /// The feature columns, comma-separated [default: every column but the target]
    #[arg(long, value_delimiter = ',', value_name = "A,B,..")]
    pub features: Option<Vec<String>>,
    /// The field delimiter.
    #[arg(value_parser = crate::plan::delimiter_value, long, value_name = "CHAR", help = default_is("The field delimiter", TableConfig::new("", "").delimiter))]
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
    /// Also write the fit's R factor, row count and file hash (JSON) for `--merge`; fits
    /// every row (no validation split).
    #[arg(long, value_name = "FILE")]
    pub save_summary: Option<PathBuf>,
    /// Replace --save-summary's file even when it is write-protected.
    #[arg(long, requires = "save_summary")]
    pub force: bool,
    /// Print the fit of the rows of all these summaries (`--save-summary` files of shards of
    /// one table), as one pass over the concatenated files would.
    #[arg(long, num_args = 1.., value_name = "SUMMARY", conflicts_with_all = ["data", "target", "features", "delimiter", "val_frac", "seed", "drop_invalid_rows", "no_intercept", "l2"])]
    pub merge: Vec<PathBuf>,
    /// The ridge fit with penalty λ instead: the closed form of what `train --l2 λ` minimises
    /// (on the standardized features and target; raw with --no-standardize). Reads the table
    /// into memory; prints coefficients and fit quality, no standard errors.
    #[arg(value_parser = crate::plan::f32_value, long, value_name = "λ", allow_negative_numbers = true, conflicts_with_all = ["save_summary", "no_intercept"])]
    pub l2: Option<f32>,
    /// With --l2: penalise the raw features' weights (train's --no-standardize).
    #[arg(long, requires = "l2")]
    pub no_standardize: bool,
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
    if !args.merge.is_empty() {
        return run_merge(args);
    }
    let (Some(path), Some(target)) = (&args.data, &args.target) else {
        return Err(invalid("--data", "", "is required (or --merge)"));
    };
    if let Some(features) = &args.features
        && features.iter().any(|f| f.trim().is_empty())
    {
        return Err(invalid(
            "--features",
            features.join(","),
            "must be column names separated by commas, none of them empty",
        ));
    }
    if args.save_summary.is_some()
        && let Some(f) = args.val_frac
        && f != 0.0
    {
        return Err(invalid(
            "--val-frac",
            crate::error::shown(f),
            "must be 0 with --save-summary: a shard summary fits every row, so that summaries merge into the fit of the concatenated file",
        ));
    }
    let mut data = crate::config::TableConfig::new(path.clone(), target.clone());
    data.features = args.features.clone();
    data.standardize = args.l2.is_some() && !args.no_standardize;
    if let Some(d) = args.delimiter {
        data.delimiter = d;
    }
    data.val_frac = match (args.val_frac, &args.save_summary) {
        (Some(f), _) => f,
        (None, Some(_)) => 0.0,
        (None, None) => data.val_frac,
    };
    data.drop_invalid_rows = args.drop_invalid_rows;
    let config = TrainingConfig {
        seed: args.seed.unwrap_or(TrainingConfig::default().seed),
        data: Some(data.clone()),
        ..TrainingConfig::default()
    };
    config.validate()?;
    if let Some(l2) = args.l2 {
        return run_ridge(args, &data, &config, l2);
    }
    let options = StreamOptions {
        table: TableOptions {
            target: data.target.clone(),
            features: data.features.clone(),
            delimiter: data.delimiter as u8,
            drop_invalid_rows: data.drop_invalid_rows,
        },
        val_frac: data.val_frac,
        seed: config.seed,
        intercept: !args.no_intercept,
    };
    let streamed = fit_csv(Path::new(&data.path), &options)?;
    if let Some(out) = &args.save_summary {
        let shard = ShardSummary::of_file(&data.path, &streamed.info, &streamed.factor);
        write_atomically(out, shard.to_json().as_bytes(), args.force)?;
    }
    let (summary, info) = (&streamed.summary, &streamed.info);
    let fit = &summary.fit;
    let mut console = Console::default();
    if args.json {
        let json = OlsJson {
            data: &data.path,
            target: &info.target_name,
            features: &info.feature_names,
            train_rows: streamed.train.rows,
            val_rows: streamed.val.map_or(0, |v| v.rows),
            dropped_rows: info.dropped_rows,
            train: streamed.train,
            validation: streamed.val,
            summary,
        };
        console.block(&serde_json::to_string(&json).expect("the fit serialises"));
        return console.finish();
    }
    say!(
        console,
        "OLS fit of `{}` on {} training rows of {} ({} validation rows)",
        info.target_name,
        streamed.train.rows,
        Path::new(&data.path).display(),
        streamed.val.map_or(0, |v| v.rows)
    );
    for (name, w) in info.feature_names.iter().zip(&fit.weights) {
        say!(console, "  {name:<16} {:>16}", coefficient_text(*w, 8));
    }
    if summary.intercept {
        say!(
            console,
            "  {:<16} {:>16}",
            "(intercept)",
            coefficient_text(fit.bias, 8)
        );
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
    if info.dropped_rows > 0 {
        say!(
            console,
            "dropped {} rows with an invalid cell",
            info.dropped_rows
        );
    }
    say!(console, "train: {}", show(streamed.train));
    if let Some(val) = streamed.val {
        say!(console, "validation: {}", show(val));
    }
    print_summary(&mut console, summary);
    console.finish()
}

/// `--l2`: the ridge closed form on the table read into memory, as `train --l2` sees it.
fn run_ridge(args: &OlsArgs, data: &TableConfig, config: &TrainingConfig, l2: f32) -> Result<()> {
    TrainingConfig {
        l2,
        ..config.clone()
    }
    .validate()?;
    let table = crate::data::PreparedTable::load(data, config.seed)?;
    let fit = crate::ridge::fit(&table, f64::from(l2)).map_err(|message| Error::Data {
        path: PathBuf::from(&data.path),
        message,
    })?;
    let quality = crate::report::split_quality(&table, &fit)?;
    let mut console = Console::default();
    if args.json {
        let json = serde_json::json!({
            "data": data.path,
            "target": table.target_name(),
            "features": table.feature_names(),
            // As typed (0.1), not the f32's exact value widened to f64 (0.10000000149011612).
            "l2": l2.to_string().parse::<f64>().expect("an f32's text parses"),
            "standardized": data.standardize,
            "train_rows": table.train_rows(),
            "val_rows": table.val_rows(),
            "dropped_rows": table.dropped_rows(),
            "weights": fit.weights,
            "bias": fit.bias,
            "train": quality.train,
            "validation": quality.val,
        });
        console.block(&json.to_string());
        return console.finish();
    }
    say!(
        console,
        "ridge fit (λ {l2}, {}) of `{}` on {} training rows of {} ({} validation rows)",
        if data.standardize {
            "standardized"
        } else {
            "raw units"
        },
        table.target_name(),
        table.train_rows(),
        Path::new(&data.path).display(),
        table.val_rows()
    );
    for (name, w) in table.feature_names().iter().zip(&fit.weights) {
        say!(console, "  {name:<16} {:>16}", coefficient_text(*w, 8));
    }
    say!(
        console,
        "  {:<16} {:>16}",
        "(intercept)",
        coefficient_text(fit.bias, 8)
    );
    let show = |q: crate::fit_quality::FitQuality| {
        format!(
            "MSE {:.6}  RMSE {:.6}  MAE {:.6}  R² {}",
            q.mse,
            q.rmse,
            q.mae,
            r2_text(q.r2, 6)
        )
    };
    say!(console, "train: {}", show(quality.train));
    if let Some(val) = quality.val {
        say!(console, "validation: {}", show(val));
    }
    console.finish()
}

/// `--merge`: the summaries read, checked, merged (and saved with `--save-summary`), and the
/// fit of all their rows printed.
fn run_merge(args: &OlsArgs) -> Result<()> {
    let mut shards = Vec::with_capacity(args.merge.len());
    for path in &args.merge {
        shards.push((path.display().to_string(), ShardSummary::read(path)?));
    }
    let merged = crate::ols::merge(&shards).map_err(|message| Error::Misused {
        flag: "--merge",
        message: format!("refused: {message}"),
    })?;
    let fail = |message: String| Error::Data {
        path: args.merge[0].clone(),
        message,
    };
    let summary = merged.summary().map_err(fail)?;
    if let Some(out) = &args.save_summary {
        write_atomically(out, merged.to_json().as_bytes(), args.force)?;
    }
    let mut console = Console::default();
    if args.json {
        let json = serde_json::json!({
            "target": merged.target,
            "features": merged.features,
            "rows": merged.rows,
            "summaries": args.merge.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "summary": serde_json::to_value(&summary).expect("the summary serialises"),
        });
        console.block(&json.to_string());
        return console.finish();
    }
    say!(
        console,
        "OLS fit of `{}` on {} rows of {} files, merged from {} summaries",
        merged.target,
        merged.rows,
        merged.sources.len(),
        shards.len()
    );
    for source in &merged.sources {
        say!(
            console,
            "  {}  {} rows  {} bytes  hash {}",
            source.file,
            source.rows,
            source.bytes,
            source.content_hash
        );
    }
    for (name, w) in merged.features.iter().zip(&summary.fit.weights) {
        say!(console, "  {name:<16} {:>16}", coefficient_text(*w, 8));
    }
    if summary.intercept {
        say!(
            console,
            "  {:<16} {:>16}",
            "(intercept)",
            coefficient_text(summary.fit.bias, 8)
        );
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
