//! `predict --data` on a Parquet file: every column of every row is passed through as CSV
//! text (or the features as JSON Lines), with the model's prediction added, a row at a time
//! from the parquet crate's record reader (memory: a batch of rows per column).
//!
//! The text of a cell: a null is empty, booleans `true`/`false`, integers as such, floats in
//! the shortest form that reads back the same value, text as itself, anything else (dates,
//! decimals, nested values) as the parquet crate writes it.

use std::fmt::Write as _;
use std::path::Path;

use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field;

use super::reader::{checked, column_names, damaged, guarded, numeric_column};
use crate::data::predictions::{PredictFailure, PredictionsFormat, json_number};
use crate::data::table::open_regular;
use crate::error::{Error, Result};

/// Reads the Parquet file `path` row by row, predicts each row from the columns `features` (in
/// that order) and writes every column with a `prediction` column as CSV with `delimiter`
/// (JSON Lines with `{"row":N,...}`, rows numbered from 1) to `out`; returns the rows.
pub(crate) fn predict_rows(
    path: &Path,
    features: &[String],
    delimiter: u8,
    format: PredictionsFormat,
    predict: impl Fn(&[f64]) -> f64,
    out: &mut dyn std::io::Write,
) -> std::result::Result<usize, PredictFailure> {
    let fail = |message: String| {
        PredictFailure::Input(Error::Data {
            path: path.to_owned(),
            message,
        })
    };
    guarded(fail, || {
        predict_unguarded(path, features, delimiter, format, predict, out)
    })
}

fn predict_unguarded(
    path: &Path,
    features: &[String],
    delimiter: u8,
    format: PredictionsFormat,
    predict: impl Fn(&[f64]) -> f64,
    out: &mut dyn std::io::Write,
) -> std::result::Result<usize, PredictFailure> {
    let json = format == PredictionsFormat::JsonLines;
    let error = |message: String| Error::Data {
        path: path.to_owned(),
        message,
    };
    let file = open_regular(path).map_err(error)?;
    let reader = SerializedFileReader::new(file).map_err(|e| error(damaged(e)))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let names = column_names(&schema).map_err(error)?;
    if !json
        && names.iter().any(|n| n == "prediction")
        && !features.iter().any(|f| f == "prediction")
    {
        return Err(error(
            "already has a `prediction` column (an earlier output?); rename or drop it first"
                .into(),
        )
        .into());
    }
    let columns: Vec<usize> = features
        .iter()
        .map(|f| {
            let column = names.iter().position(|n| n == f).ok_or_else(|| {
                error(format!(
                    "no column `{f}` (the model's features: {}; the file has: {})",
                    features.join(", "),
                    names.join(", ")
                ))
            })?;
            numeric_column(&schema, column).map_err(error)?;
            Ok(column)
        })
        .collect::<Result<_>>()?;
    let (mut writer, mut json_out) = if json {
        (None, Some(out))
    } else {
        let writer = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(out);
        (Some(writer), None)
    };
    let write_error = |e: csv::Error| PredictFailure::Output(e.into());
    let column = if features.iter().any(|f| f == "prediction") {
        "burnfit_prediction"
    } else {
        "prediction"
    };
    if let Some(writer) = &mut writer {
        let header = names.iter().map(String::as_str).chain([column]);
        writer.write_record(header).map_err(write_error)?;
    }
    let keys: Vec<String> = features
        .iter()
        .map(|f| serde_json::to_string(f).expect("a string serialises"))
        .collect();
    let rows_iter = reader.get_row_iter(None).map_err(|e| error(damaged(e)))?;
    let mut row = vec![0.0f64; features.len()];
    let mut cells: Vec<String> = vec![String::new(); names.len() + 1];
    let mut lines = String::new();
    let mut rows = 0;
    for record in rows_iter {
        let record = record.map_err(|e| error(damaged(e)))?;
        let number = rows + 1;
        let fields: Vec<&Field> = record.get_column_iter().map(|(_, f)| f).collect();
        for ((value, &column), name) in row.iter_mut().zip(&columns).zip(features) {
            *value = fields
                .get(column)
                .ok_or_else(|| "the row has fewer columns than the schema".to_string())
                .and_then(|f| number_of(f))
                .map_err(|problem| error(format!("row {number}, column `{name}`: {problem}")))?;
        }
        let prediction = predict(&row);
        if !(prediction as f32).is_finite() {
            return Err(error(format!(
                "row {number}: the prediction is not finite ({prediction})"
            ))
            .into());
        }
        if let Some(out) = &mut json_out {
            lines.clear();
            let _ = write!(lines, "{{\"row\":{number},\"inputs\":{{");
            for (i, (key, value)) in keys.iter().zip(&row).enumerate() {
                let comma = if i > 0 { "," } else { "" };
                let _ = write!(lines, "{comma}{key}:{}", json_number(*value));
            }
            let _ = writeln!(
                lines,
                "}},\"prediction\":{}}}",
                json_number(prediction as f32)
            );
            out.write_all(lines.as_bytes())
                .map_err(PredictFailure::Output)?;
        } else if let Some(writer) = &mut writer {
            for (cell, field) in cells.iter_mut().zip(&fields) {
                cell.clear();
                cell_text(field, cell);
            }
            let last = cells.len() - 1;
            cells[last] = format!("{}", prediction as f32);
            writer.write_record(&cells).map_err(write_error)?;
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(error("has no data rows".into()).into());
    }
    if let Some(writer) = &mut writer {
        writer.flush().map_err(PredictFailure::Output)?;
    }
    Ok(rows)
}

/// A feature's value, checked as a CSV cell is.
fn number_of(field: &Field) -> std::result::Result<f64, String> {
    let value = match *field {
        Field::Null => return Err("the cell is null".into()),
        Field::Bool(b) => f64::from(u8::from(b)),
        Field::Byte(v) => v.into(),
        Field::Short(v) => v.into(),
        Field::Int(v) => v.into(),
        Field::Long(v) => v as f64,
        Field::UByte(v) => v.into(),
        Field::UShort(v) => v.into(),
        Field::UInt(v) => v.into(),
        Field::ULong(v) => v as f64,
        Field::Float(v) => v.into(),
        Field::Double(v) => v,
        ref other => return Err(format!("{other} is not a number")),
    };
    checked(value)
}

/// Appends the CSV text of a cell (see the module's doc).
fn cell_text(field: &Field, out: &mut String) {
    let _ = match field {
        Field::Null => Ok(()),
        Field::Bool(v) => write!(out, "{v}"),
        Field::Byte(v) => write!(out, "{v}"),
        Field::Short(v) => write!(out, "{v}"),
        Field::Int(v) => write!(out, "{v}"),
        Field::Long(v) => write!(out, "{v}"),
        Field::UByte(v) => write!(out, "{v}"),
        Field::UShort(v) => write!(out, "{v}"),
        Field::UInt(v) => write!(out, "{v}"),
        Field::ULong(v) => write!(out, "{v}"),
        Field::Float(v) => write!(out, "{v}"),
        Field::Double(v) => write!(out, "{v}"),
        Field::Str(s) => write!(out, "{s}"),
        other => write!(out, "{other}"),
    };
}
