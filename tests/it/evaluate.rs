//! `burnfit evaluate`: a checkpoint's MSE, RMSE, MAE and R² on a labelled CSV file, for linear
//! and MLP models in every format, checked against the metrics computed here; and bad input.

use std::path::Path;

use burnfit::Checkpoint;
use predicates::str::contains;
use serde_json::Value;

use crate::common::{autograd_fixture, burnfit, run_err, serial};
use crate::csv_data::write_linear_csv;

/// `burnfit evaluate ARGS --json`, parsed.
pub fn evaluate_json(args: &[&str]) -> Value {
    let output = burnfit()
        .arg("evaluate")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
    serde_json::from_str(&text).unwrap()
}

/// MSE, MAE and R² of `predict` on the `x_columns` → `target` rows of a CSV, computed here.
fn metrics(csv: &Path, target: &str, predict: impl Fn(&[f64]) -> f64) -> (f64, f64, f64, usize) {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let t = header.iter().position(|h| *h == target).unwrap();
    let (mut predictions, mut targets) = (Vec::new(), Vec::new());
    for line in lines {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        let x: Vec<f64> = (0..cells.len())
            .filter(|&i| i != t)
            .map(|i| cells[i])
            .collect();
        predictions.push(predict(&x));
        targets.push(cells[t]);
    }
    let n = targets.len() as f64;
    let mean = targets.iter().sum::<f64>() / n;
    let ss_res: f64 = predictions
        .iter()
        .zip(&targets)
        .map(|(p, y)| (p - y).powi(2))
        .sum();
    let ss_tot: f64 = targets.iter().map(|y| (y - mean).powi(2)).sum();
    let mae = predictions
        .iter()
        .zip(&targets)
        .map(|(p, y)| (p - y).abs())
        .sum::<f64>()
        / n;
    (ss_res / n, mae, 1.0 - ss_res / ss_tot, targets.len())
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1e-12)
}

#[test]
fn evaluate_scores_a_linear_model_in_every_format_as_computed_by_hand() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 300);
    let bpk = dir.path().join("m.bpk");
    burnfit()
        .args(["train", "--data", csv.to_str().unwrap(), "--target", "y"])
        .args(["--epochs", "30", "--quiet", "--out", bpk.to_str().unwrap()])
        .assert()
        .success();
    let checkpoint = Checkpoint::load(&bpk).unwrap();
    let (w, b) = (&checkpoint.params[0].data, checkpoint.params[1].data[0]);
    let (mse, mae, r2, rows) = metrics(&csv, "y", |x| {
        x.iter().zip(w).map(|(x, w)| x * f64::from(*w)).sum::<f64>() + f64::from(b)
    });
    let mut seen = Vec::new();
    for name in ["m.json", "m.safetensors", "m.bpk"] {
        let path = dir.path().join(name);
        if name != "m.bpk" {
            burnfit()
                .args(["convert", bpk.to_str().unwrap(), path.to_str().unwrap()])
                .arg("--drop-optimizer")
                .assert()
                .success();
        }
        // The target defaults to the recorded one.
        let json = evaluate_json(&[
            "--checkpoint",
            path.to_str().unwrap(),
            "--data",
            csv.to_str().unwrap(),
        ]);
        assert_eq!(json["target"], "y");
        assert_eq!(json["features"], serde_json::json!(["a", "b", "c"]));
        assert_eq!(json["model"], "linear, 3 inputs");
        assert_eq!(json["rows"], rows);
        assert_eq!(json["dropped_rows"], 0);
        let got = |key: &str| json[key].as_f64().unwrap();
        assert!(close(got("mse"), mse, 1e-9), "{json} vs {mse}");
        assert!(close(got("rmse"), mse.sqrt(), 1e-9), "{json}");
        assert!(close(got("mae"), mae, 1e-9), "{json} vs {mae}");
        assert!(close(got("r2"), r2, 1e-9), "{json} vs {r2}");
        assert!(r2 > 0.9, "30 epochs fit the line: R² {r2}");
        assert_eq!(json["loss"]["kind"], "mse");
        assert_eq!(json["loss"]["value"], json["mse"]);
        seen.push(json["mse"].clone());
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");

    // The text report says the same.
    burnfit()
        .args(["evaluate", "--checkpoint", bpk.to_str().unwrap()])
        .args(["--data", csv.to_str().unwrap()])
        .assert()
        .success()
        .stdout(contains(format!("{rows} rows, target `y`")))
        .stdout(contains(format!("MSE {mse:.6}  RMSE {:.6}", mse.sqrt())))
        .stdout(contains("training loss (mse)"));
}

#[test]
fn evaluate_scores_an_mlp_as_its_predictions_do() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 200);
    let model = dir.path().join("mlp.safetensors");
    burnfit()
        .args(["train", "--data", csv.to_str().unwrap(), "--target", "y"])
        .args(["--model", "mlp", "--hidden", "8", "--activation", "relu"])
        .args(["--steps", "50", "--quiet", "--out", model.to_str().unwrap()])
        .assert()
        .success();
    // predict --data's prediction column, against the target column.
    let predicted = burnfit()
        .args(["predict", "--checkpoint", model.to_str().unwrap()])
        .args(["--data", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(predicted.status.success());
    let text = String::from_utf8(predicted.stdout).unwrap();
    let (mut ss, mut n) = (0.0, 0usize);
    for line in text.lines().skip(1) {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        ss += (cells[4] - cells[3]).powi(2);
        n += 1;
    }
    let json = evaluate_json(&[
        "--checkpoint",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(json["model"], "mlp 3-8-1, relu", "{json}");
    assert_eq!(json["rows"], n);
    // predict writes f32 predictions; evaluate keeps f64.
    assert!(
        close(json["mse"].as_f64().unwrap(), ss / n as f64, 1e-5),
        "{json} vs {}",
        ss / n as f64
    );
}

#[test]
fn evaluate_reads_the_autograd_crates_file_with_a_named_target() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("line.csv");
    std::fs::write(&csv, "x,y,note\n0,-1,1\n1,1.5,2\n2,4,3\n").unwrap();
    let fixture = autograd_fixture();
    let json = evaluate_json(&[
        "--checkpoint",
        fixture.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
        "--target",
        "y",
    ]);
    let checkpoint = Checkpoint::load(&fixture).unwrap();
    let (w, b) = (
        f64::from(checkpoint.params[0].data[0]),
        f64::from(checkpoint.params[1].data[0]),
    );
    // `note` is not a feature: only `x` is read.
    let (mse, mae, r2, rows) = metrics(&csv, "y", |x| x[0] * w + b);
    assert_eq!(json["rows"], rows);
    assert!(close(json["mse"].as_f64().unwrap(), mse, 1e-12), "{json}");
    assert!(close(json["mae"].as_f64().unwrap(), mae, 1e-12), "{json}");
    assert!(close(json["r2"].as_f64().unwrap(), r2, 1e-12), "{json}");
    assert_eq!(json["features"], serde_json::json!(["x"]));
    assert!(json["r2"].as_f64().unwrap() > 0.9, "{json}");
}

#[test]
fn evaluate_refuses_bad_input_in_one_line_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = autograd_fixture();
    let fixture = fixture.to_str().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let good = write("good.csv", "x,y\n1,1\n2,2\n");
    let cases: Vec<(Vec<String>, &str)> = vec![
        // No recorded target and none given.
        (vec![fixture.into(), good.clone()], "--target is needed"),
        // The target column is missing.
        (
            vec![fixture.into(), good.clone(), "--target".into(), "z".into()],
            "no column `z` for the target",
        ),
        // A cell that is not a number.
        (
            vec![
                fixture.into(),
                write("text.csv", "x,y\n1,1\n2,two\n"),
                "--target".into(),
                "y".into(),
            ],
            "line 3, column `y`: \"two\" is not a number",
        ),
        // A checkpoint without feature names and a CSV without its one input, `x`.
        (
            vec![
                fixture.into(),
                write("other.csv", "a,y\n1,1\n"),
                "--target".into(),
                "y".into(),
            ],
            "no column `x`",
        ),
        // A header and no rows.
        (
            vec![
                fixture.into(),
                write("empty.csv", "x,y\n"),
                "--target".into(),
                "y".into(),
            ],
            "data file",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["evaluate", "--checkpoint", &args[0], "--data", &args[1]];
        full.extend(args[2..].iter().map(String::as_str));
        let (code, stderr) = run_err(&full);
        assert_eq!(code, Some(2), "{full:?}: {stderr}");
        assert!(stderr.contains(expected), "{full:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{full:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    // A missing checkpoint is a failure to read (exit 1), as for predict.
    let (code, stderr) = run_err(&["evaluate", "--checkpoint", "nope.json", "--data", &good]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
