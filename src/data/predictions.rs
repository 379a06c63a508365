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
