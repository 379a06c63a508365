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
use crate::data::predictions::{
    JsonLines, PredictFailure, PredictionsFormat, checked_prediction, feature_columns,
    output_column,
};
use crate::data::table::open_regular;
use crate::error::Error;

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
    let columns = feature_columns(&names, features, format).map_err(error)?;
    for &column in &columns {
        numeric_column(&schema, column).map_err(error)?;
    }
    let (mut writer, mut json_out) = if json {
        (None, Some(out))
    } else {
        let writer = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(out);
        (Some(writer), None)
    };
    let write_error = |e: csv::Error| PredictFailure::Output(e.into());
    let column = output_column(features);
    if let Some(writer) = &mut writer {
        let header = names.iter().map(String::as_str).chain([column]);
        writer.write_record(header).map_err(write_error)?;
    }
    let mut json_lines = JsonLines::new(features);
    let rows_iter = reader.get_row_iter(None).map_err(|e| error(damaged(e)))?;
    let mut row = vec![0.0f64; features.len()];
    let mut cells: Vec<String> = vec![String::new(); names.len() + 1];
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
        let prediction =
            checked_prediction(predict(&row), &format!("row {number}")).map_err(error)?;
        if let Some(out) = &mut json_out {
            let text = json_lines.line("row", number as u64, &row, prediction);
            out.write_all(text).map_err(PredictFailure::Output)?;
        } else if let Some(writer) = &mut writer {
            for (cell, field) in cells.iter_mut().zip(&fields) {
                cell.clear();
                cell_text(field, cell);
            }
            let last = cells.len() - 1;
            cells[last] = format!("{prediction}");
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
