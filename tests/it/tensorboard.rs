//! `train --tensorboard DIR`: event files TensorBoard itself reads (Python's `tensorboard`
//! package, when installed: BURNFIT_REQUIRE_PYTHON=1 makes it required), holding the same
//! numbers as the metrics file; and a bad DIR.

use std::collections::BTreeMap;

use crate::common::{burnfit, run_err, serial, skip};
use crate::csv_data::write_linear_csv;

/// Reads every scalar of the event files in a directory with TensorBoard's own reader and prints
/// them as JSON: {tag: [[step, value, wall_time], ...]}.
const READER: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
print(json.dumps({t: [[e.step, e.value, e.wall_time] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}))
"#;

fn tensorboard_installed() -> bool {
    let found = std::process::Command::new("python3")
        .args([
            "-c",
            "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("BURNFIT_REQUIRE_PYTHON").is_err(),
            "python3 with the tensorboard package is required here (BURNFIT_REQUIRE_PYTHON)"
        );
        skip(
            "the TensorBoard reader test",
            "python3 with the tensorboard package is not installed (pip install tensorboard)",
        );
    }
    found
}

type Scalars = BTreeMap<String, Vec<(u64, f64, f64)>>;

fn read_with_tensorboard(dir: &std::path::Path) -> Scalars {
    let out = std::process::Command::new("python3")
        .args(["-c", READER])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tensorboard_reads_the_events_and_they_match_the_metrics_file() {
    if !tensorboard_installed() {
        return;
    }
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 200);
    let logdir = dir.path().join("runs/csv");
    let metrics = dir.path().join("m.csv");
    let out = dir.path().join("m.json");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let output = burnfit()
        .args(["train", "--data", csv.to_str().unwrap(), "--target", "y"])
        .args(["--epochs", "10", "--log-every", "2", "--quiet"])
        .args(["--metrics", metrics.to_str().unwrap()])
        .args(["--tensorboard", logdir.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let event_file = report["files"]["tensorboard"].as_str().unwrap().to_owned();
    let name = std::path::Path::new(&event_file).file_name().unwrap();
    assert!(
        name.to_str().unwrap().starts_with("events.out.tfevents."),
        "{event_file}"
    );
    assert!(std::path::Path::new(&event_file).starts_with(&logdir));
    assert!(String::from_utf8_lossy(&output.stderr).contains("wrote TensorBoard events to"));

    let scalars = read_with_tensorboard(&logdir);
    let tags: Vec<&str> = scalars.keys().map(String::as_str).collect();
    assert_eq!(tags, ["elapsed_s", "loss", "lr", "val_loss"]);
    // The metrics file's rows: step, loss, elapsed_s, lr, val_loss.
    let text = std::fs::read_to_string(&metrics).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    // 160 training rows, batch 64: 3 steps an epoch, 30 in all, a row every 2.
    assert_eq!(report["steps"]["last"], 30);
    assert_eq!(rows.len(), 15, "{text}");
    for (tag, column) in [("loss", 1), ("elapsed_s", 2), ("lr", 3), ("val_loss", 4)] {
        let events = &scalars[tag];
        assert_eq!(events.len(), rows.len(), "{tag}");
        for ((step, value, wall_time), row) in events.iter().zip(&rows) {
            assert_eq!(*step, row[0] as u64, "{tag}");
            if tag == "elapsed_s" {
                // The metrics file keeps 6 decimals.
                assert!((value - row[column]).abs() < 1e-6, "{tag} at {step}");
            } else {
                // simple_value is an f32.
                assert_eq!(*value as f32, row[column] as f32, "{tag} at {step}");
            }
            assert!(*wall_time >= started - 1.0 && *wall_time < started + 600.0);
        }
    }

    // A resumed run adds a second file to the same directory; TensorBoard reads both.
    let more = dir.path().join("more.json");
    burnfit()
        .args(["train", "--resume", out.to_str().unwrap(), "--epochs", "5"])
        .args(["--log-every", "2", "--quiet"])
        .args(["--tensorboard", logdir.to_str().unwrap()])
        .args(["--out", more.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(std::fs::read_dir(&logdir).unwrap().count(), 2);
    let scalars = read_with_tensorboard(&logdir);
    let steps: Vec<u64> = scalars["loss"].iter().map(|e| e.0).collect();
    // 15 more steps: 32, 34, .., 44, and the last, 45.
    assert_eq!(steps.len(), 15 + 8, "{steps:?}");
    assert_eq!(steps[14..], [30, 32, 34, 36, 38, 40, 42, 44, 45]);
    // The synthetic line has no validation rows: no val_loss.
    let line_dir = dir.path().join("line");
    burnfit()
        .args(["train", "--steps", "200", "--quiet"])
        .args(["--tensorboard", line_dir.to_str().unwrap()])
        .args(["--out", dir.path().join("line.json").to_str().unwrap()])
        .assert()
        .success();
    let scalars = read_with_tensorboard(&line_dir);
    let tags: Vec<&str> = scalars.keys().map(String::as_str).collect();
    assert_eq!(tags, ["elapsed_s", "loss", "lr"]);
    let steps: Vec<u64> = scalars["loss"].iter().map(|e| e.0).collect();
    assert_eq!(steps, [100, 200]);
}

#[test]
fn tensorboard_refuses_a_file_for_its_directory_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events");
    std::fs::write(&file, "not a directory").unwrap();
    let out = dir.path().join("m.json");
    let (code, stderr) = run_err(&[
        "train",
        "--steps",
        "10",
        "--tensorboard",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is not a directory"), "{stderr}");
    assert!(!out.exists(), "nothing trained, nothing written");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
}
