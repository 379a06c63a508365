//! `burnfit evaluate`: a checkpoint's MSE, RMSE, MAE and R² on a labelled CSV file.

use std::path::PathBuf;

use clap::Args;

use crate::console::Console;
use crate::error::{Error, Result};
use crate::evaluate::{evaluate, model_features, recorded_delimiter, recorded_target};
use crate::model::Activation;

use super::r2_text;

/// `burnfit evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The checkpoint whose model is scored (any format).
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: PathBuf,
    /// A CSV file with the model's feature columns (found by name, as `predict --data` finds
    /// them) and the target column; or a Parquet file (`.parquet`), in a build with the
    /// `parquet` feature.
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,
    /// The column holding the true values [default: the target the checkpoint was trained on]
    #[arg(long, value_name = "COLUMN")]
    pub target: Option<String>,
    /// The file's delimiter [default: the one the model was trained with, else ,]
    #[arg(value_parser = crate::plan::delimiter_value, long, value_name = "CHAR")]
    pub delimiter: Option<char>,
    /// Skip rows with an empty or non-numeric cell in a column in use (they are counted).
    #[arg(long)]
    pub drop_invalid_rows: bool,
    /// The activation of an autograd-written MLP file (which does not record it) [default: tanh]
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Print one JSON object (docs/json-output.md) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `evaluate --json`: the checkpoint and its model, then the [`crate::evaluate::Evaluation`].
#[derive(serde::Serialize)]
struct EvaluateJson<'a> {
    checkpoint: String,
    model: String,
    #[serde(flatten)]
    evaluation: &'a crate::evaluate::Evaluation,
}

pub(super) fn run(args: &EvaluateArgs) -> Result<()> {
    let checkpoint = super::predict::load_checked(&args.checkpoint, args.activation)?;
    let features = model_features(&checkpoint, &args.checkpoint)?;
    let target = match (&args.target, recorded_target(&checkpoint)) {
        (Some(target), _) => target.clone(),
        (None, Some(recorded)) => recorded,
        (None, None) => {
            return Err(Error::Misused {
                flag: "--target",
                message: format!(
                    "is needed: {} records no target column",
                    args.checkpoint.display()
                ),
            });
        }
    };
    let delimiter = args
        .delimiter
        .or_else(|| recorded_delimiter(&checkpoint))
        .unwrap_or(',');
    let evaluation = evaluate(
        &checkpoint,
        &args.data,
        &features,
        &target,
        delimiter,
        args.drop_invalid_rows,
    )?;
    let mut console = Console::default();
    if args.json {
        let json = EvaluateJson {
            checkpoint: args.checkpoint.display().to_string(),
            model: checkpoint.spec.describe(),
            evaluation: &evaluation,
        };
        console.block(&serde_json::to_string(&json).expect("evaluation serialises"));
        return console.finish();
    }
    let q = &evaluation.quality;
    say!(
        console,
        "{} ({} model) on {}: {} rows, target `{}`",
        args.checkpoint.display(),
        checkpoint.spec.describe(),
        evaluation.data,
        q.rows,
        evaluation.target
    );
    if evaluation.dropped_rows > 0 {
        say!(
            console,
            "dropped {} rows with an invalid cell",
            evaluation.dropped_rows
        );
    }
    say!(
        console,
        "MSE {:.6}  RMSE {:.6}  MAE {:.6}  R² {}",
        q.mse,
        q.rmse,
        q.mae,
        r2_text(q.r2, 6)
    );
    say!(
        console,
        "training loss ({}) {:.6}",
        evaluation.loss.kind,
        evaluation.loss.value
    );
    console.finish()
}
