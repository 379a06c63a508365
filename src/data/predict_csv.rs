//! `burnfit predict --data`: a CSV's rows with the model's prediction added as a last column
//! (or, with `--json`, one JSON object per row). Feature columns are found by name, so a file
//! may hold more columns, in any order.

use std::path::Path;

use super::table::CsvText;
use crate::error::{Error, Result};

/// The largest CSV read for prediction.
pub const MAX_PREDICT_BYTES: u64 = 4 << 30;

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

/// The output and how many rows it has.
#[derive(Debug)]
pub struct Predictions {
    /// The CSV text (the input's header plus `prediction`, then every input row plus its value),
    /// or the JSON lines.
    pub bytes: Vec<u8>,
    /// Data rows.
    pub rows: usize,
}

/// Reads `path`, predicts each row from the columns `features` (in that order) and returns the
/// input with a `prediction` column.
pub fn predict_rows(
    path: &Path,
    features: &[String],
    delimiter: char,
    format: PredictionsFormat,
    predict: impl Fn(&[f64]) -> f64,
) -> Result<Predictions> {
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
        });
    }
    // The input and the output are both held whole (streaming is future work): about 2.5
    // times the file.
    if let (Ok(meta), Some(available)) = (std::fs::metadata(path), crate::memory::available())
        && meta.is_file()
        && meta.len().saturating_mul(5) / 2 > available
    {
        return Err(error(format!(
            "is {} MB; predicting it needs about {} MB, more than the {} MB of memory available",
            meta.len() >> 20,
            meta.len().saturating_mul(5) / 2 >> 20,
            available >> 20
        )));
    }
    let bytes = crate::input::read_regular_file(path, MAX_PREDICT_BYTES).map_err(error)?;
    let text = super::table::text_of(&bytes).map_err(error)?;
    let CsvText {
        mut reader,
        columns: names,
    } = CsvText::open(text, delimiter as u8).map_err(error)?;
    let header = reader
        .byte_headers()
        .map_err(|e| error(format!("line 1: {e}")))?
        .clone();
    if !json
        && names.iter().any(|n| n == "prediction")
        && !features.iter().any(|f| f == "prediction")
    {
        return Err(error(
            "already has a `prediction` column (an earlier output?); rename or drop it first"
                .into(),
        ));
    }
    let columns: Vec<usize> = features
        .iter()
        .map(|f| {
            names.iter().position(|n| n == f).ok_or_else(|| {
                error(format!(
                    "no column `{f}` (the model's features: {}; the file has: {})",
                    features.join(", "),
                    names.join(", ")
                ))
            })
        })
        .collect::<Result<_>>()?;
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter as u8)
        .from_writer(Vec::with_capacity(text.len() + text.len() / 4));
    let write_error = |e: csv::Error| error(format!("cannot write the output: {e}"));
    let mut out_header = header.clone();
    // A model with a feature named `prediction` writes its output under another name.
    let column: &[u8] = if features.iter().any(|f| f == "prediction") {
        b"burnfit_prediction"
    } else {
        b"prediction"
    };
    out_header.push_field(column);
    if !json {
        writer.write_byte_record(&out_header).map_err(write_error)?;
    }
    // The JSON keys of the inputs, escaped once.
    let keys: Vec<String> = features
        .iter()
        .map(|f| serde_json::to_string(f).expect("a string serialises"))
        .collect();
    let mut lines = String::new();
    let mut row = vec![0.0f64; features.len()];
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(error(format!("cannot read the CSV: {e}"))),
        }
        let line = super::table::line_of(text, &record);
        if record.len() != header.len() {
            return Err(error(super::table::ragged(
                line,
                record.len(),
                header.len(),
            )));
        }
        for ((value, &column), name) in row.iter_mut().zip(&columns).zip(features) {
            *value = super::table::parse_number(&record[column])
                .map_err(|problem| error(format!("line {line}, column `{name}`: {problem}")))?;
        }
        let prediction = predict(&row);
        if !(prediction as f32).is_finite() {
            return Err(error(format!(
                "line {line}: the prediction is not finite ({prediction})"
            )));
        }
        if json {
            use std::fmt::Write;
            let _ = write!(lines, "{{\"line\":{line},\"inputs\":{{");
            for (i, (key, value)) in keys.iter().zip(&row).enumerate() {
                let comma = if i > 0 { "," } else { "" };
                let _ = write!(lines, "{comma}{key}:{}", json_number(*value));
            }
            let _ = writeln!(
                lines,
                "}},\"prediction\":{}}}",
                json_number(prediction as f32)
            );
        } else {
            let mut out = record.clone();
            out.push_field(format!("{}", prediction as f32).as_bytes());
            writer.write_byte_record(&out).map_err(write_error)?;
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(error("has a header but no data rows".into()));
    }
    if json {
        return Ok(Predictions {
            bytes: lines.into_bytes(),
            rows,
        });
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| error(format!("cannot write the output: {e}")))?;
    Ok(Predictions { bytes, rows })
}

/// A finite number as JSON writes it (the shortest form that reads back the same).
pub fn json_number(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).expect("a number serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_a_prediction_column_by_feature_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, "id,b,a\n1,2,10\n2,\"3\",20\n").unwrap();
        let features = ["a".to_string(), "b".to_string()];
        let out = predict_rows(&path, &features, ',', PredictionsFormat::Csv, |r| {
            r[0] + 100.0 * r[1]
        })
        .unwrap();
        assert_eq!(out.rows, 2);
        assert_eq!(
            String::from_utf8(out.bytes).unwrap(),
            "id,b,a,prediction\n1,2,10,210\n2,3,20,320\n"
        );
        let err = predict_rows(
            &path,
            &["c".to_string()],
            ',',
            PredictionsFormat::Csv,
            |_| 0.0,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no column `c`") && err.contains("id, b, a"),
            "{err}"
        );
        std::fs::write(&path, "a,b\n1,x\n").unwrap();
        let err = predict_rows(&path, &features, ',', PredictionsFormat::Csv, |_| 0.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2, column `b`"), "{err}");

        // The table's own header rules: a BOM, CRLF lines, and no repeated names.
        std::fs::write(&path, "\u{feff}a,b\r\n1,2\r\n\r\n3,q\r\n").unwrap();
        let err = predict_rows(&path, &features, ',', PredictionsFormat::Csv, |_| 0.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4, column `b`"), "{err}");
        std::fs::write(&path, "a,b,a\n1,2,3\n").unwrap();
        let err = predict_rows(&path, &features, ',', PredictionsFormat::Csv, |_| 0.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("appears twice"), "{err}");
    }
}
