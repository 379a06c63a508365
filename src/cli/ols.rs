//! `burnfit ols`: the closed-form least-squares fit of a CSV file.

use std::path::PathBuf;

use clap::Args;

use crate::config::{TableConfig, TrainingConfig};
use crate::console::Console;
use crate::error::{Error, Result, invalid};

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
    let (fit, quality) = crate::report::ols_fit(&table).map_err(|message| Error::Data {
        path: PathBuf::from(&data.path),
        message,
    })?;
    let mut console = Console::default();
    let t = &table.table;
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
    say!(console, "  {:<16} {:>16.8}", "(intercept)", fit.bias);
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
    console.finish()
}
