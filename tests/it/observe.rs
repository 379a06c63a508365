//! Watching a run: the metrics file (`--metrics`), SVG plots (`--plot`, `--plot-fit`,
//! `burnfit plot`, `bench --plot`) and the progress bar.

use std::path::Path;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

use crate::common::{burnfit, signal_and_wait, start_training};

/// `step N  loss L` lines of a train run's stdout.
fn logged(stdout: &[u8]) -> Vec<(u64, f32)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("step ")?;
            let mut parts = rest.split_whitespace();
            let step = parts.next()?.parse().ok()?;
            let loss = parts.nth(1)?.parse().ok()?;
            Some((step, loss))
        })
        .collect()
}

/// (step, loss) of each row of a metrics CSV.
fn csv_rows(path: &Path) -> Vec<(u64, f32)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,loss,elapsed_s,lr"));
    lines
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            assert!(["0.01", "0.1"].contains(&fields[3]), "lr: {l}");
            (fields[0].parse().unwrap(), fields[1].parse().unwrap())
        })
        .collect()
}

fn train(dir: &Path, extra: &[&str]) -> Vec<u8> {
    burnfit()
        .current_dir(dir)
        .args(["train", "--backend", "ndarray", "--log-every", "50"])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

#[test]
fn metrics_rows_are_the_logged_steps_and_a_resume_appends_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stdout = train(
        d,
        &["--steps", "300", "--out", "a.json", "--metrics", "m.csv"],
    );
    let first = logged(&stdout);
    assert_eq!(first.len(), 6);
    // The loss is printed with 6 decimals; the file keeps the f32 exactly.
    let rows = csv_rows(&d.join("m.csv"));
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [50, 100, 150, 200, 250, 300]
    );
    for ((step, loss), (row_step, row_loss)) in first.iter().zip(&rows) {
        assert_eq!(step, row_step);
        assert!(
            (loss - row_loss).abs() <= 5e-7 * loss.abs().max(1.0),
            "{loss} vs {row_loss}"
        );
    }
    // A run on from a.json, then — as if that run's checkpoint were lost — the same again:
    // the rows past step 300 are replaced, not duplicated.
    for _ in 0..2 {
        train(
            d,
            &[
                "--resume",
                "a.json",
                "--steps",
                "200",
                "--out",
                "b.json",
                "--metrics",
                "m.csv",
            ],
        );
        let steps: Vec<u64> = csv_rows(&d.join("m.csv")).iter().map(|r| r.0).collect();
        assert_eq!(steps, [50, 100, 150, 200, 250, 300, 350, 400, 450, 500]);
    }
    // The resumed rows are the uninterrupted run's.
    let straight = train(
        d,
        &["--steps", "500", "--out", "c.json", "--metrics", "s.csv"],
    );
    assert_eq!(
        csv_rows(&d.join("s.csv"))
            .iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        csv_rows(&d.join("m.csv"))
            .iter()
            .map(|r| r.1)
            .collect::<Vec<_>>()
    );
    assert_eq!(logged(&straight).len(), 10);
    // Another run's file is not cut by a resume unless --force.
    train(
        d,
        &[
            "--steps",
            "400",
            "--lr",
            "0.1",
            "--out",
            "other.json",
            "--metrics",
            "other.csv",
        ],
    );
    let other = std::fs::read(d.join("other.csv")).unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--log-every",
            "50",
            "--resume",
            "a.json",
            "--steps",
            "50",
            "--out",
            "e.json",
            "--metrics",
            "other.csv",
        ])
        .assert()
        .code(2)
        .stderr(contains("is not this checkpoint's history"));
    assert_eq!(std::fs::read(d.join("other.csv")).unwrap(), other);
    train(
        d,
        &[
            "--resume",
            "a.json",
            "--steps",
            "50",
            "--out",
            "e.json",
            "--metrics",
            "other.csv",
            "--force",
        ],
    );
    let steps: Vec<u64> = csv_rows(&d.join("other.csv")).iter().map(|r| r.0).collect();
    assert_eq!(steps, [50, 100, 150, 200, 250, 300, 350]);
    // A fresh run does not overwrite an existing metrics file unless --force.
    let before = std::fs::read(d.join("m.csv")).unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "5",
            "--out",
            "d.json",
            "--metrics",
            "m.csv",
        ])
        .assert()
        .code(2)
        .stderr(contains("m.csv").and(contains("--force")))
        .stdout("");
    assert_eq!(std::fs::read(d.join("m.csv")).unwrap(), before);
    assert!(!d.join("d.json").exists());
}

#[test]
fn jsonl_metrics_carry_the_validation_loss_of_a_csv_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = crate::csv_data::linear_csv(d, 300);
    train(
        d,
        &[
            "--data",
            csv.to_str().unwrap(),
            "--target",
            "y",
            "--steps",
            "100",
            "--out",
            "a.json",
            "--metrics",
            "m.jsonl",
            "--plot",
            "loss.svg",
        ],
    );
    let text = std::fs::read_to_string(d.join("m.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let val = row["val_loss"].as_f64().unwrap();
        let loss = row["loss"].as_f64().unwrap();
        // Validation MSE is of the same order as the training loss (same data, unseen rows).
        assert!(val > 0.0 && val < 10.0 * loss + 1.0, "{row}");
    }
    let svg = std::fs::read_to_string(d.join("loss.svg")).unwrap();
    assert_eq!(series_lines(&svg), 2, "train and validation");
    assert!(svg.contains("\nvalidation\n</text>"), "legend");
}

/// Lines drawn for data series: every `<polyline>` that is not black (axes and ticks are).
fn series_lines(svg: &str) -> usize {
    check_xml(svg);
    svg.match_indices("<polyline")
        .filter(|(i, _)| {
            let tag = &svg[*i..svg[*i..].find('>').map_or(svg.len(), |e| i + e)];
            !tag.contains("stroke=\"#000000\"")
        })
        .count()
}

/// Well-formed enough: starts as SVG, every tag closes, nesting balances.
fn check_xml(svg: &str) {
    assert!(svg.trim_start().starts_with("<svg"), "not an SVG document");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("an unclosed tag") + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn plots_are_svg_with_one_line_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stdout = train(
        d,
        &[
            "--steps",
            "400",
            "--out",
            "a.json",
            "--metrics",
            "m.csv",
            "--plot",
            "loss.svg",
            "--plot-fit",
            "fit.svg",
        ],
    );
    let text = String::from_utf8(stdout).unwrap();
    assert!(
        text.contains("wrote loss.svg") && text.contains("wrote fit.svg"),
        "{text}"
    );
    assert_eq!(
        series_lines(&std::fs::read_to_string(d.join("loss.svg")).unwrap()),
        1
    );
    let fit = std::fs::read_to_string(d.join("fit.svg")).unwrap();
    assert_eq!(series_lines(&fit), 2, "fitted and true line");
    assert!(fit.matches("<circle").count() >= 64, "the data points");
    burnfit()
        .current_dir(d)
        .args(["plot", "m.csv", "--out", "again.svg"])
        .assert()
        .success()
        .stdout(contains("8 rows of m.csv"));
    assert_eq!(
        series_lines(&std::fs::read_to_string(d.join("again.svg")).unwrap()),
        1
    );

    // bench --plot: one line per backend/engine plus autograd.
    burnfit()
        .current_dir(d)
        .args([
            "bench",
            "--backends",
            "ndarray",
            "--batches",
            "8,64",
            "--steps",
            "5",
            "--repeat",
            "1",
            "--plot",
            "bench.svg",
        ])
        .assert()
        .success()
        .stdout(contains("wrote bench.svg"));
    let bench = std::fs::read_to_string(d.join("bench.svg")).unwrap();
    assert_eq!(
        series_lines(&bench),
        3,
        "ndarray autodiff, ndarray fused, autograd"
    );
    assert!(bench.contains("ndarray fused"));

    // PyTorch's rows (benches/torch_reference.py --json) join the chart.
    std::fs::write(
        d.join("torch.json"),
        r#"{"machine": {"torch": "2.5"}, "rows": [
            {"system": "torch/cpu", "batch": 8, "us_per_step": 120.5},
            {"system": "torch/cpu", "batch": 64, "us_per_step": 130.0}]}"#,
    )
    .unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "bench",
            "--backends",
            "ndarray",
            "--engines",
            "fused",
            "--no-autograd",
            "--batches",
            "8,64",
            "--steps",
            "5",
            "--repeat",
            "1",
            "--plot",
            "both.svg",
            "--plot-with",
            "torch.json",
        ])
        .assert()
        .success();
    let both = std::fs::read_to_string(d.join("both.svg")).unwrap();
    assert_eq!(series_lines(&both), 2, "ndarray fused and torch cpu");
    assert!(both.contains("torch cpu"));
    // Not a benchmark file: refused before any row is measured.
    burnfit()
        .current_dir(d)
        .args([
            "bench",
            "--backends",
            "ndarray",
            "--batches",
            "8",
            "--steps",
            "5",
            "--plot",
            "x.svg",
            "--plot-with",
            "m.csv",
        ])
        .assert()
        .code(2)
        .stderr(contains("m.csv"))
        .stdout("");
}

#[test]
fn plot_fit_draws_a_one_feature_csv_fit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut text = String::from("hours,score\n");
    for i in 0..40 {
        text.push_str(&format!("{},{}\n", i, 3 * i + (i % 3)));
    }
    std::fs::write(d.join("one.csv"), text).unwrap();
    train(
        d,
        &[
            "--data",
            "one.csv",
            "--target",
            "score",
            "--steps",
            "300",
            "--out",
            "a.json",
            "--plot-fit",
            "fit.svg",
        ],
    );
    let fit = std::fs::read_to_string(d.join("fit.svg")).unwrap();
    assert_eq!(
        series_lines(&fit),
        1,
        "the fitted line (no true line for a file)"
    );
    assert_eq!(
        fit.matches("<circle").count(),
        40 + 1,
        "every row, and the legend's marker"
    );
    // Two features cannot be drawn as a line.
    std::fs::write(
        d.join("two.csv"),
        "a,b,y\n1,2,3\n2,1,4\n3,3,5\n4,1,1\n5,2,2\n",
    )
    .unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--data",
            "two.csv",
            "--target",
            "y",
            "--out",
            "b.json",
            "--plot-fit",
            "f2.svg",
        ])
        .assert()
        .code(2)
        .stderr(contains("--plot-fit"));
    assert!(!d.join("b.json").exists() && !d.join("f2.svg").exists());
}

#[test]
fn bad_plot_and_metrics_paths_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refuse = |args: &[&str], message: &str| {
        burnfit()
            .current_dir(d)
            .args([
                "train",
                "--backend",
                "ndarray",
                "--steps",
                "5",
                "--out",
                "x.json",
            ])
            .args(args)
            .assert()
            .failure()
            .stderr(contains(message))
            .stdout("");
        assert!(!d.join("x.json").exists(), "{message}");
    };
    refuse(&["--plot", "loss.png"], "only .svg");
    refuse(&["--metrics", "m.txt"], ".jsonl");
    refuse(&["--metrics", "no/such/dir/m.csv"], "m.csv");
    refuse(&["--plot", "no/such/dir/l.svg"], "l.svg");
    refuse(
        &["--task", "sine", "--model", "mlp", "--plot-fit", "f.svg"],
        "--plot-fit",
    );
    std::fs::write(d.join("empty.csv"), "").unwrap();
    std::fs::write(d.join("other.csv"), "a,b\n1,2\n").unwrap();
    for (file, message) in [
        ("empty.csv", "empty"),
        ("other.csv", "step"),
        ("none.csv", "none.csv"),
    ] {
        burnfit()
            .current_dir(d)
            .args(["plot", file, "--out", "p.svg"])
            .assert()
            .code(2)
            .stderr(contains(message));
        assert!(!d.join("p.svg").exists());
    }
}

#[test]
fn the_metrics_file_survives_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("m.csv");
    let out = dir.path().join("o.json");
    let child = start_training(
        &[
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "100000000",
            "--log-every",
            "10",
            "--batch",
            "4096",
            "--out",
            out.to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
        ],
        &[],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, _) = signal_and_wait(child, "INT");
    assert_eq!(code, Some(130));
    let rows = csv_rows(&metrics);
    assert!(!rows.is_empty());
    for (i, (step, _)) in rows.iter().enumerate() {
        assert_eq!(*step, 10 * (i as u64 + 1));
    }
    // The checkpoint is at or past the last row.
    let saved = burnfit::Checkpoint::load(&out).unwrap();
    assert!(saved.step() >= rows.last().unwrap().0);
}

#[test]
fn the_progress_bar_shows_on_a_terminal_only() {
    // Under a pseudo-terminal (util-linux `script`), the bar draws on stderr.
    let dir = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_burnfit");
    let command = format!(
        "{binary} train --backend ndarray --steps 20000 --batch 256 --out {}",
        dir.path().join("a.json").display()
    );
    let Ok(output) = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
    else {
        eprintln!("SKIPPING the progress-bar test: no `script` (util-linux) here");
        return;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("/20000 steps"), "no bar in: {text:?}");
    // Not a terminal: no bar, no escape codes (the other tests check the exact lines).
    let plain = burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "200",
            "--progress",
            "always",
            "--out",
        ])
        .arg(dir.path().join("b.json"))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&plain.get_output().stderr).to_string();
    assert!(
        !stderr.contains("steps") && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
}
