//! Early stopping and the best model: `train --patience N [--min-delta X]` stops when the
//! validation loss stops falling, `--keep-best PATH` keeps the checkpoint with the lowest one;
//! both engines, every backend; resume; bad input.

use std::path::{Path, PathBuf};

use burnfit::Checkpoint;
use burnfit::config::TableConfig;
use burnfit::data::PreparedTable;

use crate::common::{backends, burnfit, run_err, uniform_stream};

/// y = 2x + 1 + N(0, 1.5²) on 60 rows (48 training, 12 validation): noisy enough that, at a
/// high learning rate, the validation loss reaches its floor within a few dozen steps and then
/// only wanders.
fn write_noisy_csv(path: &Path) {
    let mut uniform = uniform_stream(0x9e37_79b9_u64);
    let mut text = String::from("x,y\n");
    for _ in 0..60 {
        let x = uniform() * 6.0 - 3.0;
        let noise = (-2.0 * uniform().max(1e-12).ln()).sqrt()
            * (2.0 * std::f64::consts::PI * uniform()).cos()
            * 1.5;
        text.push_str(&format!("{x},{}\n", 2.0 * x + 1.0 + noise));
    }
    std::fs::write(path, text).unwrap();
}

/// (step, val_loss) of each row of a metrics CSV written with validation rows.
fn val_rows(path: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,loss,elapsed_s,lr,val_loss"));
    lines
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            (fields[0].parse().unwrap(), fields[4].parse().unwrap())
        })
        .collect()
}

/// The number after `prefix` in the line that starts with it.
fn number_after(stdout: &str, prefix: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"));
    line[prefix.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `train` in `dir` on `data`, expected to succeed; its stdout.
fn train(dir: &Path, data: &Path, args: &[&str]) -> String {
    let output = burnfit()
        .current_dir(dir)
        .arg("train")
        .arg("--data")
        .arg(data)
        .args(["--target", "y", "--quiet"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The validation MSE of a saved model, recomputed here from the file, on the split the
/// default seed (42) makes.
fn val_loss_of(checkpoint: &Path, data: &Path) -> f64 {
    let c = Checkpoint::load(checkpoint).unwrap();
    let table =
        PreparedTable::load(&TableConfig::new(data.display().to_string(), "y"), 42).unwrap();
    table
        .mean_loss(
            &c.spec,
            &c.named_params(),
            burnfit::data::Split::Val,
            burnfit::loss::LossKind::Mse,
            1.0,
        )
        .unwrap()
}

#[test]
fn patience_stops_at_a_logged_step_and_keep_best_holds_the_lowest_val_loss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("noisy.csv");
    write_noisy_csv(&data);
    for backend in backends() {
        for engine in ["autodiff", "fused"] {
            let case = format!("{} {engine}", backend.kind);
            let (metrics, best) = (d.join(format!("m-{case}.csv")), d.join("best.json"));
            let stdout = train(
                d,
                &data,
                &[
                    "--backend",
                    backend.kind.name(),
                    "--engine",
                    engine,
                    "--lr",
                    "0.5",
                    "--steps",
                    "5000",
                    "--log-every",
                    "10",
                    "--patience",
                    "5",
                    "--keep-best",
                    "best.json",
                    "--metrics",
                    metrics.to_str().unwrap(),
                    "--out",
                    "out.json",
                    "--force",
                ],
            );
            let stop = number_after(&stdout, "early stop at step ");
            assert!(stop < 5000 && stop.is_multiple_of(10), "{case}: {stdout}");
            assert!(
                stdout.contains(": val_loss has not improved by more than 0 for 5 evaluations"),
                "{case}: {stdout}"
            );
            // The run ended there, saved as a finished one.
            assert_eq!(Checkpoint::load(&d.join("out.json")).unwrap().step(), stop);
            let rows = val_rows(&metrics);
            assert_eq!(rows.last().unwrap().0, stop, "{case}");
            let (best_step, lowest) = rows
                .iter()
                .copied()
                .fold((0, f64::INFINITY), |a, r| if r.1 < a.1 { r } else { a });
            // With --min-delta 0, patience runs out 5 evaluations after the lowest.
            assert_eq!(best_step, stop - 50, "{case}: {rows:?}");
            assert!(stdout.contains(&format!(
                "best: step {best_step}, val_loss {lowest:.6}, saved best.json"
            )));
            // The file holds that model: its step, its validation loss bit for bit.
            assert_eq!(Checkpoint::load(&best).unwrap().step(), best_step, "{case}");
            assert_eq!(val_loss_of(&best, &data), lowest, "{case}");
            // And it loads and predicts.
            let predicted = burnfit()
                .args(["predict", "--checkpoint"])
                .arg(&best)
                .args(["--x", "1.5"])
                .output()
                .unwrap();
            assert!(predicted.status.success(), "{case}");
            let y: f64 = String::from_utf8_lossy(&predicted.stdout)
                .split_whitespace()
                .last()
                .unwrap()
                .parse()
                .unwrap();
            assert!((y - 4.0).abs() < 1.0, "{case}: predicted {y} at x = 1.5");
        }
    }
}

#[test]
fn min_delta_counts_a_small_fall_as_none_and_json_reports_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("noisy.csv");
    write_noisy_csv(&data);
    for engine in ["autodiff", "fused"] {
        // No fall is larger than 1e9: the first evaluation (step 10) sets the reference, the
        // next three are no improvement, so the run stops at step 40.
        let output = burnfit()
            .current_dir(d)
            .arg("train")
            .arg("--data")
            .arg(&data)
            .args(["--target", "y", "--backend", "ndarray", "--engine", engine])
            .args(["--steps", "1000", "--log-every", "10", "--patience", "3"])
            .args(["--min-delta", "1e9", "--keep-best", "best.safetensors"])
            .args(["--out", "out.bpk", "--json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{engine}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(
                "early stop at step 40: val_loss has not improved by more than 1000000000 for 3 evaluations"
            ),
            "{engine}: {stderr}"
        );
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["steps"]["last"], 40, "{engine}");
        let validation = &json["validation"];
        assert_eq!(validation["early_stop"]["step"], 40);
        assert_eq!(validation["early_stop"]["patience"], 3);
        assert_eq!(validation["early_stop"]["min_delta"], 1e9);
        // The best model is the lowest val_loss whatever --min-delta.
        let best_step = validation["best"]["step"].as_u64().unwrap();
        assert!([10, 20, 30, 40].contains(&best_step), "{validation}");
        assert_eq!(validation["best"]["saved"], "best.safetensors");
        assert_eq!(json["files"]["keep_best"], "best.safetensors");
        let saved = val_loss_of(&d.join("best.safetensors"), &data);
        assert_eq!(saved, validation["best"]["val_loss"].as_f64().unwrap());
    }
}

#[test]
fn a_resumed_run_counts_patience_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("noisy.csv");
    write_noisy_csv(&data);
    let common = [
        "--backend",
        "ndarray",
        "--log-every",
        "10",
        "--out",
        "m.json",
    ];
    train(d, &data, &[&common[..], &["--steps", "30"]].concat());
    let stdout = burnfit()
        .current_dir(d)
        .args(["train", "--resume", "m.json", "--quiet"])
        .args(common)
        .args(["--steps", "100", "--patience", "2", "--min-delta", "1e9"])
        .output()
        .unwrap();
    assert!(stdout.status.success());
    let stdout = String::from_utf8(stdout.stdout).unwrap();
    // Evaluations at 40 (the reference), 50 and 60: stops at 60, not at the first of them.
    assert_eq!(number_after(&stdout, "early stop at step "), 60, "{stdout}");
    assert_eq!(Checkpoint::load(&d.join("m.json")).unwrap().step(), 60);
}

#[test]
fn bad_early_stopping_input_is_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("noisy.csv");
    write_noisy_csv(&data);
    let path = |name: &str| -> String { d.join(name).display().to_string() };
    let (out, csv) = (path("out.json"), data.display().to_string());
    let cases: Vec<(Vec<String>, i32, String)> = vec![
        (
            vec!["--patience".into(), "0".into()],
            2,
            "error: invalid --patience = 0: must be at least 1".into(),
        ),
        (
            vec![
                "--patience".into(),
                "3".into(),
                "--min-delta".into(),
                "-1".into(),
            ],
            2,
            "error: invalid --min-delta = -1: must be a finite number ≥ 0".into(),
        ),
        (
            vec![
                "--patience".into(),
                "3".into(),
                "--min-delta".into(),
                "NaN".into(),
            ],
            2,
            "error: invalid --min-delta = NaN: must be a finite number ≥ 0".into(),
        ),
        (
            vec![
                "--patience".into(),
                "3".into(),
                "--min-delta".into(),
                "inf".into(),
            ],
            2,
            "error: invalid --min-delta = inf: must be a finite number ≥ 0".into(),
        ),
        (
            vec!["--min-delta".into(), "0.1".into()],
            2,
            "error: --min-delta applies only with --patience".into(),
        ),
        (
            vec![
                "--patience".into(),
                "3".into(),
                "--val-frac".into(),
                "0".into(),
            ],
            2,
            "error: --patience needs validation rows: this run holds none (--val-frac 0)".into(),
        ),
        (
            vec![
                "--keep-best".into(),
                path("b.json"),
                "--val-frac".into(),
                "0".into(),
            ],
            2,
            "error: --keep-best needs validation rows: this run holds none (--val-frac 0)".into(),
        ),
        (
            vec!["--keep-best".into(), path("b.txt")],
            2,
            format!(
                "error: --keep-best {}: unknown format; use a .json, .safetensors or .bpk file name",
                path("b.txt")
            ),
        ),
        (
            vec!["--keep-best".into(), out.clone()],
            2,
            format!("error: --out and --keep-best both name {out}; give each its own file"),
        ),
        (
            vec!["--keep-best".into(), csv.clone()],
            2,
            format!("error: --data and --keep-best both name {csv}; give each its own file"),
        ),
        (
            vec![
                "--keep-best".into(),
                path("m.csv"),
                "--metrics".into(),
                path("m.csv"),
            ],
            2,
            format!(
                "error: --metrics and --keep-best both name {}; give each its own file",
                path("m.csv")
            ),
        ),
        // As for --out: the destination is checked before training.
        (
            vec!["--keep-best".into(), path("missing/b.json")],
            1,
            format!(
                "error: cannot write {}: {} does not exist",
                path("missing/b.json"),
                path("missing")
            ),
        ),
    ];
    for (extra, code, message) in cases {
        let mut args = vec!["train", "--data", &csv, "--target", "y", "--out", &out];
        args.extend(extra.iter().map(String::as_str));
        let (status, stderr) = run_err(&args);
        assert_eq!(status, Some(code), "{extra:?}: {stderr}");
        assert_eq!(stderr.trim_end(), message, "{extra:?}");
        let mut files: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(
            files,
            std::slice::from_ref(&data),
            "{extra:?}: nothing written"
        );
    }
    // Without a CSV there is nothing to validate on.
    for flag in [["--patience", "3"], ["--keep-best", "b.json"]] {
        let (status, stderr) =
            run_err(&[&["train", "--steps", "10", "--out", &out][..], &flag].concat());
        assert_eq!(status, Some(2));
        assert_eq!(
            stderr.trim_end(),
            format!(
                "error: {} needs validation rows: train on a CSV file (--data)",
                flag[0]
            )
        );
    }
}
