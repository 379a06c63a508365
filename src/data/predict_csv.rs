//! `burnfit predict --data`: a CSV's rows with the model's prediction added as a last column
//! (or, with `--json`, one JSON object per row). Feature columns are found by name, so a file
//! may hold more columns, in any order.

use std::path::Path;

use super::table::stream::{RecordChunks, csv_reader};
use crate::error::Error;

use super::predictions::{
    JsonLines, PredictFailure, PredictionsFormat, checked_prediction, feature_columns,
    output_column,
};

/// Reads `path` in chunks, predicts each row from the columns `features` (in that order) and
/// writes the input with a `prediction` column to `out`, row by row; returns the rows. Memory
/// is a few chunks whatever the file's size. On an error, the rows before the bad one have
/// been written (the caller decides whether they stay: `--out` drops them). A Parquet file goes
/// to [`super::table::parquet_file`], which writes the same CSV (or JSON Lines) from its rows.
pub fn predict_rows(
    path: &Path,
    features: &[String],
    delimiter: char,
    format: PredictionsFormat,
    predict: impl Fn(&[f64]) -> f64,
    out: &mut dyn std::io::Write,
) -> std::result::Result<usize, PredictFailure> {
    let json = format == PredictionsFormat::JsonLines;
    let error = |message: String| Error::Data {
        path: path.to_owned(),
        message,
    };
    if !delimiter.is_ascii() {
        return Err(Error::InvalidSetting {
            name: "--delimiter",
            value: delimiter.to_string(),
            expected: "must be one ASCII character",
        }
        .into());
    }
    if super::table::parquet_file::is_parquet(path) {
        return super::table::parquet_file::predict_rows(
            path,
            features,
            delimiter as u8,
            format,
            predict,
            out,
        );
    }
    let chunks = RecordChunks::open(path, delimiter as u8).map_err(error)?;
    let names = &chunks.columns;
    let header = chunks.header.clone();
    let columns = feature_columns(names, features, format).map_err(error)?;
    // A csv writer for CSV output; JSON lines go to `out` straight.
    let (mut writer, mut json_out) = if json {
        (None, Some(out))
    } else {
        let writer = csv::WriterBuilder::new()
            .delimiter(delimiter as u8)
            .from_writer(out);
        (Some(writer), None)
    };
    let write_error = |e: csv::Error| PredictFailure::Output(e.into());
    let mut out_header = header.clone();
    let column = output_column(features).as_bytes();
    out_header.push_field(column);
    if let Some(writer) = &mut writer {
        writer.write_byte_record(&out_header).map_err(write_error)?;
    }
    let mut json_lines = JsonLines::new(features);
    let mut row = vec![0.0f64; features.len()];
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    chunks.for_each(
        |message| PredictFailure::Input(error(message)),
        |text, line_base| {
            let mut reader = csv_reader(text, delimiter as u8);
            loop {
                match reader.read_byte_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(e) => return Err(error(format!("cannot read the CSV: {e}")).into()),
                }
                let line = line_base + super::table::line_of(text, &record);
                if record.len() != header.len() {
                    return Err(
                        error(super::table::ragged(line, record.len(), header.len())).into(),
                    );
                }
                for ((value, &column), name) in row.iter_mut().zip(&columns).zip(features) {
                    *value = super::table::parse_number(&record[column]).map_err(|problem| {
                        error(format!("line {line}, column `{name}`: {problem}"))
                    })?;
                }
                let prediction =
                    checked_prediction(predict(&row), &format!("line {line}")).map_err(error)?;
                if let Some(out) = &mut json_out {
                    let text = json_lines.line("line", line, &row, prediction);
                    std::io::Write::write_all(out, text).map_err(PredictFailure::Output)?;
                } else if let Some(writer) = &mut writer {
                    let mut out = record.clone();
                    out.push_field(format!("{prediction}").as_bytes());
                    writer.write_byte_record(&out).map_err(write_error)?;
                }
                rows += 1;
            }
            Ok(())
        },
    )?;
    if rows == 0 {
        return Err(error("has a header but no data rows".into()).into());
    }
    if let Some(writer) = &mut writer {
        writer.flush().map_err(PredictFailure::Output)?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSV output of `predict_rows`, or its input error's message.
    fn predict_csv(
        path: &Path,
        features: &[String],
        predict: impl Fn(&[f64]) -> f64,
    ) -> std::result::Result<(usize, String), String> {
        let mut out = Vec::new();
        match predict_rows(
            path,
            features,
            ',',
            PredictionsFormat::Csv,
            predict,
            &mut out,
        ) {
            Ok(rows) => Ok((rows, String::from_utf8(out).unwrap())),
            Err(PredictFailure::Input(e)) => Err(e.to_string()),
            Err(PredictFailure::Output(e)) => panic!("{e}"),
        }
    }

    #[test]
    fn adds_a_prediction_column_by_feature_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, "id,b,a\n1,2,10\n2,\"3\",20\n").unwrap();
        let features = ["a".to_string(), "b".to_string()];
        let (rows, out) = predict_csv(&path, &features, |r| r[0] + 100.0 * r[1]).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(out, "id,b,a,prediction\n1,2,10,210\n2,3,20,320\n");
        let err = predict_csv(&path, &["c".to_string()], |_| 0.0).unwrap_err();
        assert!(
            err.contains("no column `c`") && err.contains("id, b, a"),
            "{err}"
        );
        std::fs::write(&path, "a,b\n1,x\n").unwrap();
        let err = predict_csv(&path, &features, |_| 0.0).unwrap_err();
        assert!(err.contains("line 2, column `b`"), "{err}");

        // The table's own header rules: a BOM, CRLF lines, and no repeated names.
        std::fs::write(&path, "\u{feff}a,b\r\n1,2\r\n\r\n3,q\r\n").unwrap();
        let err = predict_csv(&path, &features, |_| 0.0).unwrap_err();
        assert!(err.contains("line 4, column `b`"), "{err}");
        std::fs::write(&path, "a,b,a\n1,2,3\n").unwrap();
        let err = predict_csv(&path, &features, |_| 0.0).unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
    }
}
