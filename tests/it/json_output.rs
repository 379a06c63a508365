//! `--json` on `train`, `ols`, `predict` and `evaluate`: what stdout holds parses with serde_json
//! and says what the text output and the files say (schemas in docs/json-output.md).

use burnfit::Checkpoint;
use serde_json::Value;

use crate::common::{burnfit, serial};
use crate::csv_data::write_linear_csv;

/// Runs burnfit, expects success, returns (stdout, stderr).
fn run(args: &[&str]) -> (String, String) {
    let output = burnfit().args(args).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{args:?}: {stderr}");
    (String::from_utf8(output.stdout).unwrap(), stderr)
}

fn one_object(stdout: &str) -> Value {
    assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout}");
    serde_json::from_str(stdout).unwrap()
}

#[test]
fn train_json_is_the_final_report_and_the_log_goes_to_stderr() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let metrics = dir.path().join("m.csv");
    let (stdout, stderr) = run(&[
        "train",
        "--steps",
        "300",
        "--backend",
        "ndarray",
        "--out",
        out.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
        "--json",
    ]);
    let json = one_object(&stdout);
    // The lines a plain run prints are on stderr.
    assert!(stderr.contains("training on ndarray"), "{stderr}");
    assert!(stderr.contains("step    300  loss"), "{stderr}");
    assert!(stderr.contains("saved "), "{stderr}");
    assert_eq!(json["backend"], "ndarray");
    assert_eq!(json["engine"], "autodiff");
    assert_eq!(json["model"], "linear, 1 input");
    assert_eq!(json["steps"]["run"], 300);
    assert_eq!(json["steps"]["last"], 300);
    assert_eq!(json["steps"]["resumed"], false);
    assert_eq!(
        (json["batch"].clone(), json["seed"].clone()),
        (64.into(), 42.into())
    );
    // The parameters are the saved checkpoint's.
    let saved = Checkpoint::load(&out).unwrap();
    let parameters = json["parameters"].as_array().unwrap();
    assert_eq!(parameters.len(), 2);
    for (p, (name, tensor)) in parameters.iter().zip(["w", "b"].iter().zip(&saved.params)) {
        assert_eq!(p["name"], *name);
        assert_eq!(p["shape"], serde_json::json!(tensor.shape));
        assert_eq!(p["values"][0].as_f64().unwrap() as f32, tensor.data[0]);
    }
    // The losses are the metrics file's rows.
    let rows: Vec<(u64, f32)> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[0].parse().unwrap(), cells[1].parse().unwrap())
        })
        .collect();
    let losses: Vec<(u64, f32)> = json["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["step"].as_u64().unwrap(),
                p["loss"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    assert_eq!(losses, rows);
    assert_eq!(json["final_loss"], json["losses"][2]["loss"]);
    assert!(json["data"].is_null() && json["fit_quality"].is_null());
    assert!(json["timings"]["total_s"].as_f64().unwrap() > 0.0);
    assert!(json["timings"]["first_step_s"].as_f64().unwrap() > 0.0);
    assert!(json["timings"]["steps_per_s"].as_f64().unwrap() > 0.0);
    let files = &json["files"];
    assert_eq!(files["checkpoint"], out.to_str().unwrap());
    assert_eq!(files["format"], "json");
    assert_eq!(files["metrics"], metrics.to_str().unwrap());
    assert!(files["plot"].is_null() && files["tensorboard"].is_null());
}

#[test]
fn train_json_on_a_csv_has_the_fit_quality_ols_json_agrees_with() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 300);
    let csv = csv.to_str().unwrap();
    let out = dir.path().join("m.safetensors");
    let (stdout, stderr) = run(&[
        "train",
        "--data",
        csv,
        "--target",
        "y",
        "--epochs",
        "20",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(stderr.contains("fit quality"), "{stderr}");
    let train = one_object(&stdout);
    assert_eq!(train["files"]["format"], "safetensors");
    let data = &train["data"];
    assert_eq!(data["features"], serde_json::json!(["a", "b", "c"]));
    assert_eq!(data["target"], "y");
    assert_eq!(
        (data["rows"].as_u64(), data["train_rows"].as_u64()),
        (Some(300), Some(240))
    );
    assert_eq!(data["val_rows"], 60);
    let quality = &train["fit_quality"];
    assert!(
        quality["model"]["train"]["r2"].as_f64().unwrap() > 0.9,
        "{quality}"
    );
    assert_eq!(quality["model"]["val"]["rows"], 60);
    assert!(quality["ols_error"].is_null());
    assert!(quality["train_gap"].as_f64().unwrap() >= -1e-9);

    let (stdout, _) = run(&["ols", "--data", csv, "--target", "y", "--json"]);
    let ols = one_object(&stdout);
    assert_eq!(ols["train_rows"], 240);
    assert_eq!(ols["val_rows"], 60);
    assert_eq!(ols["n"], 240);
    assert_eq!(ols["intercept"], true);
    // `ols` streams the file through a TSQR factor, train's check fits in memory: the same
    // fit to rounding.
    for (split, other) in [("train", "train"), ("validation", "val")] {
        let (a, b) = (&ols[split], &quality["ols"][other]);
        assert_eq!(a["rows"], b["rows"]);
        for key in ["mse", "rmse", "mae", "r2"] {
            let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * y.abs().max(1e-300),
                "{split} {key}: {x} vs {y}"
            );
        }
    }
    // With an intercept the summary's R² is the training rows' R².
    let (r2, train_r2) = (
        ols["r2"].as_f64().unwrap(),
        ols["train"]["r2"].as_f64().unwrap(),
    );
    assert!((r2 - train_r2).abs() < 1e-12, "{r2} {train_r2}");
    let names: Vec<&str> = ols["coefficients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c", "(intercept)"]);
    for (i, c) in ols["coefficients"].as_array().unwrap().iter().enumerate() {
        let expected = if i < 3 {
            &quality["ols_coefficients"]["weights"][i]
        } else {
            &quality["ols_coefficients"]["bias"]
        };
        let (got, want) = (c["estimate"].as_f64().unwrap(), expected.as_f64().unwrap());
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
        for key in ["std_error", "t", "p_value", "ci_low", "ci_high"] {
            assert!(c[key].is_f64(), "{key}: {c}");
        }
    }
    // 3·a − 2·b + 0.5·c + 4: the true coefficients lie in their 95 % intervals.
    for (c, truth) in ols["coefficients"]
        .as_array()
        .unwrap()
        .iter()
        .zip([3.0, -2.0, 0.5, 4.0])
    {
        let (low, high) = (
            c["ci_low"].as_f64().unwrap(),
            c["ci_high"].as_f64().unwrap(),
        );
        assert!(low < truth && truth < high, "{c}");
    }
    for key in [
        "adj_r2",
        "f_statistic",
        "f_p_value",
        "aic",
        "bic",
        "condition_number",
    ] {
        assert!(ols[key].is_f64(), "{key}");
    }
}

#[test]
fn predict_json_lines_hold_one_object_per_prediction() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let line = dir.path().join("line.json");
    run(&[
        "train",
        "--steps",
        "100",
        "--quiet",
        "--out",
        line.to_str().unwrap(),
    ]);
    let line = line.to_str().unwrap();
    let plain = run(&["predict", "--checkpoint", line, "--x", "1,2.5,-3"]).0;
    let (json, _) = run(&["predict", "--checkpoint", line, "--x", "1,2.5,-3", "--json"]);
    let objects: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3);
    for ((object, x), text) in objects.iter().zip([1.0, 2.5, -3.0]).zip(plain.lines()) {
        assert_eq!(object["inputs"]["x"], x);
        let expected: f32 = text.parse().unwrap();
        assert_eq!(object["prediction"].as_f64().unwrap() as f32, expected);
    }

    // A CSV: one object per row, with its line and the model's inputs by name.
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 50);
    let model = dir.path().join("m.bpk");
    run(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--target",
        "y",
        "--epochs",
        "2",
        "--quiet",
        "--out",
        model.to_str().unwrap(),
    ]);
    let args = [
        "predict",
        "--checkpoint",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
    ];
    let plain = run(&args).0;
    let out = dir.path().join("p.jsonl");
    let (stdout, _) = run(&[&args[..], &["--json", "--out", out.to_str().unwrap()]].concat());
    assert_eq!(
        stdout.trim(),
        format!("wrote 50 predictions to {}", out.display())
    );
    let written = std::fs::read_to_string(&out).unwrap();
    let (to_stdout, _) = run(&[&args[..], &["--json"]].concat());
    assert_eq!(written, to_stdout);
    let rows: Vec<Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 50);
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    for ((row, csv_line), plain_line) in rows
        .iter()
        .zip(csv_text.lines().skip(1))
        .zip(plain.lines().skip(1))
    {
        let cells: Vec<f64> = csv_line.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(row["inputs"]["a"], cells[0]);
        assert_eq!(row["inputs"]["b"], cells[1]);
        assert_eq!(row["inputs"]["c"], cells[2]);
        assert_eq!(row["inputs"].as_object().unwrap().len(), 3, "{row}");
        let expected: f32 = plain_line.rsplit(',').next().unwrap().parse().unwrap();
        assert_eq!(row["prediction"].as_f64().unwrap() as f32, expected);
    }
    assert_eq!(rows[0]["line"], 2);
    assert_eq!(rows[49]["line"], 51);
}
