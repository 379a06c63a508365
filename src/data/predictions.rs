//! What `predict --data` writes and why it stops, whatever the input's format (CSV:
//! [`super::predict_csv`]; Parquet: [`super::table::parquet_file`]).

use crate::error::Error;

/// How the predictions are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictionsFormat {
    /// The input CSV with a `prediction` column added.
    Csv,
    /// JSON Lines, one object per row: `{"line":2,"inputs":{"a":1.5,..},"prediction":3.25}`
    /// (`line`: the row's line in the file, the header being line 1; `inputs`: the model's
    /// features in its order).
    JsonLines,
}

/// Why [`predict_rows`] stopped: the input (a message naming the file and line), or the
/// output's writer (the caller knows what it writes to: stdout, a file).
#[derive(Debug)]
pub enum PredictFailure {
    /// The CSV, or a prediction.
    Input(Error),
    /// The output.
    Output(std::io::Error),
}

impl From<Error> for PredictFailure {
    fn from(error: Error) -> Self {
        PredictFailure::Input(error)
    }
}

/// A finite number as JSON writes it (the shortest form that reads back the same).
pub fn json_number(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).expect("a number serialises")
}

/// The positions of the model's `features` among a file's column `names`, in the model's
/// order; refuses a missing feature, and (for CSV output) a file that already has the output's
/// `prediction` column. The message is the file's part of the error.
pub fn feature_columns(
    names: &[String],
    features: &[String],
    format: PredictionsFormat,
) -> std::result::Result<Vec<usize>, String> {
    if format == PredictionsFormat::Csv
        && names.iter().any(|n| n == "prediction")
        && !features.iter().any(|f| f == "prediction")
    {
        return Err(
            "already has a `prediction` column (an earlier output?); rename or drop it first"
                .into(),
        );
    }
    features
        .iter()
        .map(|f| {
            names.iter().position(|n| n == f).ok_or_else(|| {
                format!(
                    "no column `{f}` (the model's features: {}; the file has: {}){}",
                    features.join(", "),
                    names.join(", "),
                    crate::data::delimiter_hint::one_column_hint(names, None)
                )
            })
        })
        .collect()
}

/// The name of the column CSV output adds: `prediction`, or `burnfit_prediction` for a model
/// with a feature named `prediction`.
pub fn output_column(features: &[String]) -> &'static str {
    if features.iter().any(|f| f == "prediction") {
        "burnfit_prediction"
    } else {
        "prediction"
    }
}

/// JSON Lines output: the feature names escaped once, and one reused line.
pub struct JsonLines {
    keys: Vec<String>,
    line: String,
}

impl JsonLines {
    /// For a model with `features`.
    pub fn new(features: &[String]) -> Self {
        Self {
            keys: features
                .iter()
                .map(|f| serde_json::to_string(f).expect("a string serialises"))
                .collect(),
            line: String::new(),
        }
    }

    /// `{"<position>":N,"inputs":{..},"prediction":P}` and a newline, for the row at `number`
    /// (`position`: `line` for a CSV, `row` for Parquet).
    pub fn line(&mut self, position: &str, number: u64, row: &[f64], prediction: f32) -> &[u8] {
        use std::fmt::Write;
        self.line.clear();
        let _ = write!(self.line, "{{\"{position}\":{number},\"inputs\":{{");
        for (i, (key, value)) in self.keys.iter().zip(row).enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(self.line, "{comma}{key}:{}", json_number(*value));
        }
        let _ = writeln!(self.line, "}},\"prediction\":{}}}", json_number(prediction));
        self.line.as_bytes()
    }
}

/// The model's prediction as written (f32), or why it cannot be: `where_` names the row
/// (`line 5`, `row 4`).
pub fn checked_prediction(prediction: f64, where_: &str) -> std::result::Result<f32, String> {
    let written = prediction as f32;
    if written.is_finite() {
        Ok(written)
    } else if prediction.is_finite() {
        Err(format!(
            "{where_}: the prediction ({prediction:e}) is out of f32 range (about ±3.4e38)"
        ))
    } else {
        Err(format!(
            "{where_}: the prediction is not finite ({prediction})"
        ))
    }
}
