//! Parquet input (`--data file.parquet`): with the `parquet` feature every data command gives
//! the numbers it gives on the same table as CSV (`ols`'s coefficients, a trained checkpoint's
//! parameters bit for bit, `evaluate`'s metrics, `predict`'s predictions), on files written
//! here by the parquet crate and by pyarrow (`tests/fixtures/*.parquet`); bad files are one
//! line. Without the feature, a Parquet file is one line that names the feature.

use std::path::{Path, PathBuf};

use crate::common::burnfit;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn diabetes_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/data/diabetes.csv")
}

/// Runs burnfit and returns its stderr, checking the exit code and that it is one line.
fn one_line_error(args: &[&std::ffi::OsStr], code: i32) -> String {
    let output = burnfit().args(args).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr
}

/// A small checkpoint trained on the diabetes CSV.
fn diabetes_model(dir: &Path) -> PathBuf {
    let out = dir.join("model.json");
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--target",
            "progression",
            "--data",
        ])
        .arg(diabetes_csv())
        .args(["--steps", "20", "--out"])
        .arg(&out)
        .assert()
        .success();
    out
}

#[cfg(not(feature = "parquet"))]
#[test]
fn parquet_without_the_feature_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = diabetes_model(dir.path());
    let data = fixture("diabetes.parquet");
    let model_args = [model.as_os_str(), "--data".as_ref()];
    let runs: [(&[&str], &[&std::ffi::OsStr]); 5] = [
        (
            &["train", "--target", "progression", "--steps", "1", "--data"],
            &[],
        ),
        (&["ols", "--target", "progression", "--data"], &[]),
        (
            &["evaluate", "--target", "progression", "--checkpoint"],
            &model_args,
        ),
        (&["predict", "--checkpoint"], &model_args),
        (
            &["bench", "--target", "progression", "--steps", "2", "--data"],
            &[],
        ),
    ];
    for (command, model) in runs {
        let mut args: Vec<&std::ffi::OsStr> = command.iter().map(|a| a.as_ref()).collect();
        args.extend(model);
        args.push(data.as_os_str());
        let stderr = one_line_error(&args, 2);
        assert!(
            stderr.contains("is a Parquet file, and this build of burnfit cannot read Parquet")
                && stderr.contains("--features parquet"),
            "{args:?}: {stderr}"
        );
    }
}

#[cfg(feature = "parquet")]
mod with_the_feature {
    use std::sync::Arc;

    use burnfit::Checkpoint;
    use burnfit::data::table::{Table, TableOptions};
    use burnfit::ols::{StreamOptions, fit_csv};
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use predicates::str::contains;
    use serde_json::Value;

    use super::*;

    /// A column to write: doubles (`None` a null), int64s or text.
    pub enum Column {
        F64(Vec<Option<f64>>),
        I64(Vec<i64>),
        Text(Vec<String>),
    }

    /// Writes `columns` under `schema` (a Parquet message type, one line per column in the
    /// same order) with `codec`, `group_rows` rows per row group and small pages.
    pub fn write_parquet(
        path: &Path,
        schema: &str,
        columns: &[Column],
        group_rows: usize,
        codec: Compression,
    ) {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_data_page_row_count_limit(1000)
            .set_write_batch_size(1000)
            .build();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, Arc::new(props)).unwrap();
        let rows = match &columns[0] {
            Column::F64(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::Text(v) => v.len(),
        };
        let mut start = 0;
        while start < rows {
            let end = (start + group_rows).min(rows);
            let mut group = writer.next_row_group().unwrap();
            for column in columns {
                let mut out = group.next_column().unwrap().unwrap();
                match column {
                    Column::F64(values) => {
                        let part = &values[start..end];
                        let present: Vec<f64> = part.iter().flatten().copied().collect();
                        let defs: Vec<i16> = part.iter().map(|v| i16::from(v.is_some())).collect();
                        let optional =
                            out.typed::<DoubleType>().get_descriptor().max_def_level() > 0;
                        out.typed::<DoubleType>()
                            .write_batch(&present, optional.then_some(&defs[..]), None)
                            .unwrap();
                    }
                    Column::I64(values) => {
                        out.typed::<Int64Type>()
                            .write_batch(&values[start..end], None, None)
                            .unwrap();
                    }
                    Column::Text(values) => {
                        let bytes: Vec<ByteArray> = values[start..end]
                            .iter()
                            .map(|s| s.as_str().into())
                            .collect();
                        out.typed::<ByteArrayType>()
                            .write_batch(&bytes, None, None)
                            .unwrap();
                    }
                }
                out.close().unwrap();
            }
            group.close().unwrap();
            start = end;
        }
        writer.close().unwrap();
    }

    /// The same table as CSV (doubles in Rust's shortest round-trip form, a null empty) and as
    /// Parquet; returns (csv, parquet).
    fn both(
        dir: &Path,
        name: &str,
        names: &[&str],
        columns: &[Vec<Option<f64>>],
        group_rows: usize,
        codec: Compression,
    ) -> (PathBuf, PathBuf) {
        let csv = dir.join(format!("{name}.csv"));
        let mut text = names.join(",") + "\n";
        for i in 0..columns[0].len() {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| c[i].map_or(String::new(), |v| format!("{v:?}")))
                .collect();
            text += &(cells.join(",") + "\n");
        }
        std::fs::write(&csv, text).unwrap();
        let parquet = dir.join(format!("{name}.parquet"));
        let schema = format!(
            "message m {{ {} }}",
            names
                .iter()
                .zip(columns)
                .map(|(n, c)| {
                    let rep = if c.iter().any(Option::is_none) {
                        "optional"
                    } else {
                        "required"
                    };
                    format!("{rep} double {n};")
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
        let cols: Vec<Column> = columns.iter().map(|c| Column::F64(c.clone())).collect();
        write_parquet(&parquet, &schema, &cols, group_rows, codec);
        (csv, parquet)
    }

    /// `rows` rows of x1, x2, x3, y: features far from 0 on different scales, a noisy target.
    fn generated(rows: usize) -> Vec<Vec<Option<f64>>> {
        let u = |i: usize, k: usize| {
            (burnfit::rng::splitmix64((i * 8 + k) as u64) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut columns: Vec<Vec<Option<f64>>> = (0..4).map(|_| Vec::with_capacity(rows)).collect();
        for i in 0..rows {
            let (a, b, c) = (10.0 + u(i, 0), 0.01 * u(i, 1), 50.0 * u(i, 2) - 7.0);
            let y = 3.0 + 2.0 * a - 300.0 * b + 0.125 * c + 0.1 * u(i, 3);
            for (column, v) in columns.iter_mut().zip([a, b, c, y]) {
                column.push(Some(v));
            }
        }
        columns
    }

    fn json(args: &[&std::ffi::OsStr]) -> Value {
        let output = burnfit().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn os(args: &[&str]) -> Vec<&'static std::ffi::OsStr> {
        args.iter()
            .map(|a| std::ffi::OsStr::new(Box::leak(a.to_string().into_boxed_str())))
            .collect()
    }

    /// `ols --json`'s coefficients (and everything else it prints) with the data file's own
    /// fields (path, hash, size) left out.
    fn ols_json(data: &Path, extra: &[&str]) -> Value {
        let mut args = os(&["ols", "--json", "--target", "y", "--data"]);
        args.push(data.as_os_str());
        args.extend(os(extra));
        let mut value = json(&args);
        strip_file_fields(&mut value);
        value
    }

    fn strip_file_fields(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in ["data", "path", "content_hash", "hash", "bytes", "file"] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip_file_fields);
            }
            Value::Array(items) => items.iter_mut().for_each(strip_file_fields),
            _ => {}
        }
    }

    /// The estimates of `ols --json` (or of `--merge`'s `summary`), the intercept last.
    fn coefficients(v: &Value) -> Vec<f64> {
        let list = v["coefficients"]
            .as_array()
            .or_else(|| v["summary"]["coefficients"].as_array())
            .unwrap_or_else(|| panic!("no coefficients in {v}"));
        list.iter()
            .map(|c| c["estimate"].as_f64().unwrap())
            .collect()
    }

    fn options(target: &str) -> TableOptions {
        TableOptions::new(target)
    }

    #[test]
    fn parquet_tables_read_as_their_csv_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        // pyarrow's file (int64 and double columns, snappy, dictionary pages) against the CSV.
        let csv = Table::read(&diabetes_csv(), &options("progression")).unwrap();
        let parquet = Table::read(&fixture("diabetes.parquet"), &options("progression")).unwrap();
        assert_eq!((parquet.rows(), parquet.d()), (442, 10));
        assert_eq!(parquet.columns, csv.columns);
        assert_eq!(parquet.feature_names, csv.feature_names);
        assert_eq!(parquet.x, csv.x);
        assert_eq!(parquet.y, csv.y);
        let bytes = std::fs::read(fixture("diabetes.parquet")).unwrap();
        assert_eq!(
            parquet.content_hash,
            burnfit::data::table::content_hash(&bytes)
        );
        assert_eq!(parquet.bytes, bytes.len() as u64);
        // Written here: several row groups and pages, each codec.
        for codec in [
            Compression::UNCOMPRESSED,
            Compression::SNAPPY,
            Compression::GZIP(Default::default()),
            Compression::ZSTD(Default::default()),
            Compression::LZ4_RAW,
        ] {
            let (csv, parquet) = both(
                dir.path(),
                "g",
                &["x1", "x2", "x3", "y"],
                &generated(5_000),
                1_700,
                codec,
            );
            let (a, b) = (
                Table::read(&csv, &options("y")).unwrap(),
                Table::read(&parquet, &options("y")).unwrap(),
            );
            assert_eq!((b.x, b.y), (a.x, a.y), "{codec:?}");
        }
    }

    #[test]
    fn parquet_ols_equals_csv_ols() {
        let dir = tempfile::tempdir().unwrap();
        // 200,000 rows: many batches of the streaming reader, in 7 row groups.
        let (csv, parquet) = both(
            dir.path(),
            "big",
            &["x1", "x2", "x3", "y"],
            &generated(200_000),
            30_000,
            Compression::SNAPPY,
        );
        for extra in [&[][..], &["--val-frac", "0.2", "--seed", "7"][..]] {
            let (a, b) = (ols_json(&csv, extra), ols_json(&parquet, extra));
            let (ca, cb) = (coefficients(&a), coefficients(&b));
            assert_eq!(a["train_rows"], b["train_rows"]);
            assert_eq!(a["val_rows"], b["val_rows"]);
            assert_eq!(ca.len(), 4);
            for (x, y) in ca.iter().zip(&cb) {
                assert!((x - y).abs() <= 1e-12 * y.abs(), "{ca:?} vs {cb:?}");
            }
        }
        // pyarrow's file: one chunk either way, the same fit bit for bit.
        let diabetes = |data: &Path| {
            let mut args = os(&["ols", "--json", "--target", "progression", "--data"]);
            args.push(data.as_os_str());
            coefficients(&json(&args))
        };
        assert_eq!(
            diabetes(&diabetes_csv()),
            diabetes(&fixture("diabetes.parquet"))
        );
        // The library: the same rows, the same split, the file's own hash.
        let fit = |path: &Path| {
            fit_csv(
                path,
                &StreamOptions {
                    table: options("y"),
                    val_frac: 0.2,
                    seed: 7,
                    intercept: true,
                },
            )
            .unwrap()
        };
        let (a, b) = (fit(&csv), fit(&parquet));
        assert_eq!(b.info.rows(), 200_000);
        assert_eq!(a.train.rows, b.train.rows);
        assert_eq!(a.val.as_ref().unwrap().rows, b.val.as_ref().unwrap().rows);
        let (wa, wb) = (&a.summary.fit, &b.summary.fit);
        for (x, y) in wa
            .weights
            .iter()
            .chain([&wa.bias])
            .zip(wb.weights.iter().chain([&wb.bias]))
        {
            assert!((x - y).abs() <= 1e-12 * y.abs(), "{x} vs {y}");
        }
        let bytes = std::fs::read(&parquet).unwrap();
        assert_eq!(
            b.info.content_hash,
            burnfit::data::table::content_hash(&bytes)
        );

        // A Parquet shard merges with a CSV shard into the one-pass fit.
        let all = generated(20_000);
        let halves = |range: std::ops::Range<usize>| -> Vec<Vec<Option<f64>>> {
            all.iter().map(|c| c[range.clone()].to_vec()).collect()
        };
        let (first, _) = both(
            dir.path(),
            "h1",
            &["x1", "x2", "x3", "y"],
            &halves(0..12_000),
            5_000,
            Compression::SNAPPY,
        );
        let (_, second) = both(
            dir.path(),
            "h2",
            &["x1", "x2", "x3", "y"],
            &halves(12_000..20_000),
            5_000,
            Compression::SNAPPY,
        );
        let (whole, _) = both(
            dir.path(),
            "whole",
            &["x1", "x2", "x3", "y"],
            &all,
            5_000,
            Compression::SNAPPY,
        );
        let mut summaries = Vec::new();
        for (k, shard) in [first, second].iter().enumerate() {
            let out = dir.path().join(format!("s{k}.json"));
            burnfit()
                .args(["ols", "--target", "y", "--data"])
                .arg(shard)
                .arg("--save-summary")
                .arg(&out)
                .assert()
                .success();
            summaries.push(out);
        }
        let merged = json(
            &[
                os(&["ols", "--json", "--merge"]),
                summaries.iter().map(|p| p.as_os_str()).collect(),
            ]
            .concat(),
        );
        let one = ols_json(&whole, &["--val-frac", "0"]);
        for (x, y) in coefficients(&merged).iter().zip(&coefficients(&one)) {
            assert!((x - y).abs() <= 1e-12 * y.abs(), "{merged} vs {one}");
        }
        assert_eq!(coefficients(&one).len(), 4);
    }

    #[test]
    fn parquet_training_equals_csv_training_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let train = |data: &Path, name: &str, extra: &[&str]| {
            let out = dir.path().join(name);
            burnfit()
                .args(["train", "--backend", "ndarray", "--data"])
                .arg(data)
                .args(["--steps", "60", "--batch", "32", "--out"])
                .arg(&out)
                .args(extra)
                .assert()
                .success();
            Checkpoint::load(&out).unwrap()
        };
        let target = ["--target", "progression"];
        let a = train(&diabetes_csv(), "csv.json", &target);
        let b = train(&fixture("diabetes.parquet"), "parquet.json", &target);
        assert_eq!(a.params, b.params);
        assert_eq!(a.adam, b.adam);
        // An MLP, on the fused engine too.
        let mlp = ["--target", "progression", "--model", "mlp", "--hidden", "8"];
        let a = train(&diabetes_csv(), "csv-mlp.json", &mlp);
        let b = train(&fixture("diabetes.parquet"), "parquet-mlp.json", &mlp);
        assert_eq!(a.params, b.params);

        // Nulls are empty cells: dropped alike with --drop-invalid-rows.
        let mut columns = generated(300);
        columns[1][5] = None;
        columns[3][77] = None;
        let (csv, parquet) = both(
            dir.path(),
            "gaps",
            &["x1", "x2", "x3", "y"],
            &columns,
            100,
            Compression::SNAPPY,
        );
        let drop = ["--target", "y", "--drop-invalid-rows"];
        let a = train(&csv, "gaps-csv.json", &drop);
        let b = train(&parquet, "gaps-parquet.json", &drop);
        assert_eq!(a.params, b.params);
        let b_meta = b.meta.unwrap();
        let data = b_meta.data.as_ref().unwrap();
        let bytes = std::fs::read(&parquet).unwrap();
        assert_eq!(
            data.hash,
            burnfit::data::table::hash_hex(burnfit::data::table::content_hash(&bytes))
        );
        // Without it, the null is named by row and column, in one line.
        let stderr = one_line_error(
            &[
                os(&["train", "--target", "y", "--data"]),
                vec![parquet.as_os_str()],
            ]
            .concat(),
            2,
        );
        assert!(
            stderr.contains("row 6, column `x2`: the cell is null (use --drop-invalid-rows"),
            "{stderr}"
        );
        // bench --data reads Parquet too.
        burnfit()
            .args([
                "bench",
                "--backends",
                "ndarray",
                "--engines",
                "autodiff",
                "--batches",
                "32",
            ])
            .args([
                "--steps",
                "3",
                "--repeat",
                "1",
                "--target",
                "progression",
                "--data",
            ])
            .arg(fixture("diabetes.parquet"))
            .assert()
            .success();
    }

    #[test]
    fn parquet_predict_and_evaluate_equal_csv() {
        let dir = tempfile::tempdir().unwrap();
        let model = diabetes_model(dir.path());
        let evaluate = |data: &Path| {
            let mut args = os(&[
                "evaluate",
                "--json",
                "--target",
                "progression",
                "--checkpoint",
            ]);
            args.push(model.as_os_str());
            args.push("--data".as_ref());
            args.push(data.as_os_str());
            let mut value = json(&args);
            strip_file_fields(&mut value);
            value
        };
        assert_eq!(
            evaluate(&diabetes_csv()),
            evaluate(&fixture("diabetes.parquet"))
        );

        let predict = |data: &Path, extra: &[&str]| {
            let output = burnfit()
                .args(["predict", "--checkpoint"])
                .arg(&model)
                .arg("--data")
                .arg(data)
                .args(extra)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        let (a, b) = (
            predict(&diabetes_csv(), &[]),
            predict(&fixture("diabetes.parquet"), &[]),
        );
        let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
        assert_eq!(a.len(), 443);
        assert_eq!(a[0], b[0]);
        assert_eq!(
            b[0],
            "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression,prediction"
        );
        for (x, y) in a.iter().zip(&b).skip(1) {
            // The predictions agree; the other cells are the same numbers (the CSV's text is
            // kept as it is, Parquet's values are written in their shortest form).
            let cells =
                |l: &str| -> Vec<f64> { l.split(',').map(|c| c.parse().unwrap()).collect() };
            assert_eq!(cells(x), cells(y), "{x} vs {y}");
        }
        // JSON Lines number Parquet rows from 1.
        let lines = predict(&fixture("diabetes.parquet"), &["--json"]);
        let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert_eq!(first["row"], 1);
        assert_eq!(first["inputs"]["age"], 59.0);
        let csv_first: Value = serde_json::from_str(
            predict(&diabetes_csv(), &["--json"])
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first["prediction"], csv_first["prediction"]);
    }

    #[test]
    fn parquet_column_types_and_nulls() {
        // pyarrow's file: int32, uint32, int64, float, double, bool, a null, text, a date, a list.
        let path = fixture("types.parquet");
        let pick = |features: &[&str]| TableOptions {
            features: Some(features.iter().map(|f| f.to_string()).collect()),
            ..options("y")
        };
        let table =
            Table::read(&path, &pick(&["i32", "u32", "i64", "f32", "f64", "flag"])).unwrap();
        assert_eq!(table.rows(), 6);
        assert_eq!(table.row(0), [1.0, 1.0, 10.0, 0.5, 0.1, 1.0]);
        assert_eq!(
            table.row(5),
            [-6.0, 4e9, -(2f64.powi(40)), f64::from(0.1f32), -7.0, 0.0]
        );
        assert_eq!(table.y, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let message = |features: &[&str], drop: bool| {
            let options = TableOptions {
                drop_invalid_rows: drop,
                ..pick(features)
            };
            Table::read(&path, &options).unwrap_err().to_string()
        };
        let p = path.display();
        assert_eq!(
            message(&["gaps"], false),
            format!(
                "data file {p}: row 2, column `gaps`: the cell is null (use --drop-invalid-rows to skip such rows)"
            )
        );
        let dropped = Table::read(
            &path,
            &TableOptions {
                drop_invalid_rows: true,
                ..pick(&["gaps"])
            },
        )
        .unwrap();
        assert_eq!((dropped.rows(), dropped.dropped_rows), (5, 1));
        assert_eq!(dropped.x, [1.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            message(&["name"], false),
            format!(
                "data file {p}: column `name` holds STRING values, not numbers (burnfit reads Parquet columns of int32, int64, float, double and boolean)"
            )
        );
        assert!(message(&["day"], false).contains("column `day` holds DATE values"));
        assert!(message(&["list"], false).contains("column `list` is nested"));
        assert_eq!(
            message(&["nope"], false),
            format!(
                "data file {p}: no column `nope` for the feature; the columns are `i32`, `u32`, `i64`, `f32`, `f64`, `flag`, `gaps`, `name`, `day`, `list`, `y`"
            )
        );
        // Every column in use is checked before any row is read: the first bad one in file
        // order is named, in one line. Unused columns of any type are fine.
        let stderr = one_line_error(
            &[
                os(&["ols", "--target", "y", "--data"]),
                vec![path.as_os_str()],
            ]
            .concat(),
            2,
        );
        assert!(
            stderr.contains("column `name` holds STRING values"),
            "{stderr}"
        );
        burnfit()
            .args([
                "ols",
                "--target",
                "y",
                "--features",
                "i32,f64",
                "--val-frac",
                "0",
                "--data",
            ])
            .arg(&path)
            .assert()
            .success()
            .stdout(contains("on 6 training rows"));
    }

    #[test]
    fn bad_parquet_files_are_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let (csv, parquet) = both(
            dir.path(),
            "t",
            &["x1", "x2", "x3", "y"],
            &generated(3_000),
            1_000,
            Compression::SNAPPY,
        );
        let run = |path: &Path, extra: &[&str]| {
            one_line_error(
                &[
                    os(&["ols", "--target", "y", "--data"]),
                    vec![path.as_os_str()],
                    os(extra),
                ]
                .concat(),
                2,
            )
        };
        // A CSV file named .parquet.
        let named = dir.path().join("csv.parquet");
        std::fs::copy(&csv, &named).unwrap();
        let stderr = run(&named, &[]);
        assert!(stderr.contains("cannot be read as Parquet"), "{stderr}");
        // Cut short, its middle overwritten, empty.
        let bytes = std::fs::read(&parquet).unwrap();
        let cut = dir.path().join("cut.parquet");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(run(&cut, &[]).contains("cannot be read as Parquet"));
        for (k, at) in [bytes.len() / 3, bytes.len() / 2, 200]
            .into_iter()
            .enumerate()
        {
            let mut damaged = bytes.clone();
            for b in &mut damaged[at..at + 64] {
                *b = b.wrapping_mul(31).wrapping_add(7);
            }
            let path = dir.path().join(format!("damaged{k}.parquet"));
            std::fs::write(&path, &damaged).unwrap();
            let output = burnfit()
                .args(["ols", "--target", "y", "--data"])
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8(output.stderr).unwrap();
            // Damage inside a value may still decode; damage to the structure is an error.
            if !output.status.success() {
                assert_eq!(output.status.code(), Some(2), "{stderr}");
                assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
            }
        }
        let stderr = run(&fixture("brotli.parquet"), &[]);
        assert!(
            stderr
                .contains("brotli.parquet: is compressed with brotli, which burnfit does not read"),
            "{stderr}"
        );
        let empty = dir.path().join("empty.parquet");
        std::fs::write(&empty, b"").unwrap();
        assert!(run(&empty, &[]).contains("cannot be read as Parquet"));
        // A wrong column; a file of text columns only; no rows.
        assert!(run(&parquet, &["--features", "x9"]).contains("no column `x9` for the feature"));
        let text = dir.path().join("text.parquet");
        write_parquet(
            &text,
            "message m { required binary s (UTF8); required int64 y; }",
            &[
                Column::Text(vec!["1.5".into(), "2".into()]),
                Column::I64(vec![1, 2]),
            ],
            10,
            Compression::SNAPPY,
        );
        let stderr = run(&text, &[]);
        assert!(
            stderr.contains("column `s` holds UTF8 values, not numbers"),
            "{stderr}"
        );
        let none = dir.path().join("none.parquet");
        write_parquet(
            &none,
            "message m { required double x; required double y; }",
            &[Column::F64(vec![]), Column::F64(vec![])],
            10,
            Compression::SNAPPY,
        );
        assert!(run(&none, &[]).contains("has no data rows"));
        // predict names a text feature and an existing prediction column.
        let model = diabetes_model(dir.path());
        let stderr = one_line_error(
            &[
                os(&["predict", "--checkpoint"]),
                vec![model.as_os_str()],
                os(&["--data"]),
                vec![named.as_os_str()],
            ]
            .concat(),
            2,
        );
        assert!(stderr.contains("cannot be read as Parquet"), "{stderr}");
    }
}
