//! Reliability round 2, end to end: outputs never name inputs or each other (every subcommand),
//! data files in bounded memory, one run per metrics file, byte-exact and prompt `predict`
//! output, a resume that keeps its backend, and errors that say what is wrong in words.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use predicates::str::contains;

use crate::common::{burnfit, start_training, with_default_signals};

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn train_csv(dir: &Path) -> std::path::PathBuf {
    let csv = dir.join("d.csv");
    crate::csv_data::write_linear_csv(&csv, 200);
    csv
}

#[test]
fn predict_out_may_not_name_the_checkpoint_by_any_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = train_csv(d);
    burnfit()
        .current_dir(d)
        .args(["train", "--data", "d.csv", "--target", "y", "--steps", "20"])
        .args(["--out", "m1.json", "--quiet"])
        .assert()
        .success();
    let checkpoint = std::fs::read(d.join("m1.json")).unwrap();
    std::os::unix::fs::symlink("m1.json", d.join("p.csv")).unwrap();
    std::fs::hard_link(d.join("m1.json"), d.join("hard.csv")).unwrap();
    for out in ["m1.json", "./m1.json", "p.csv", "hard.csv"] {
        let output = burnfit()
            .current_dir(d)
            .args(["predict", "--checkpoint", "m1.json", "--data"])
            .arg(&csv)
            .args(["--out", out])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--out {out}");
        let err = stderr_of(&output);
        assert!(
            err.contains("--checkpoint and --out both name m1.json"),
            "--out {out}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(std::fs::read(d.join("m1.json")).unwrap(), checkpoint);
    }
    // The data file too.
    burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m1.json", "--data", "d.csv"])
        .args(["--out", "./d.csv"])
        .assert()
        .code(2)
        .stderr(contains("--data and --out both name"));
}

#[test]
fn bench_outputs_may_not_name_its_inputs_or_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = br#"{"rows": []}"#;
    std::fs::write(d.join("earlier.json"), rows).unwrap();
    std::os::unix::fs::symlink("earlier.json", d.join("alias.json")).unwrap();
    let quick = [
        "bench",
        "--backends",
        "ndarray",
        "--batches",
        "4",
        "--steps",
        "2",
        "--repeat",
        "1",
        "--no-autograd",
    ];
    for json in ["earlier.json", "alias.json"] {
        burnfit()
            .current_dir(d)
            .args(quick)
            .args([
                "--plot",
                "b.svg",
                "--plot-with",
                "earlier.json",
                "--json",
                json,
            ])
            .assert()
            .code(2)
            .stderr(contains("--plot-with and --json both name earlier.json"));
        assert_eq!(std::fs::read(d.join("earlier.json")).unwrap(), rows);
    }
    burnfit()
        .current_dir(d)
        .args(quick)
        .args(["--json", "x.svg", "--plot", "x.svg"])
        .assert()
        .code(2)
        .stderr(contains("--json and --plot both name x.svg"));
    assert!(!d.join("x.svg").exists());
    // plot follows the same rule.
    burnfit()
        .current_dir(d)
        .args(["plot", "m.csv", "--out", "./m.csv"])
        .assert()
        .code(2)
        .stderr(contains("METRICS and --out both name m.csv"));
}

#[test]
fn a_wide_header_is_refused_at_once_and_a_table_too_big_for_memory_goes_out_of_core() {
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.csv");
    let names: Vec<String> = (0..1_000_000).map(|i| format!("c{i}")).collect();
    std::fs::write(&wide, format!("{},y\n", names.join(","))).unwrap();
    burnfit()
        .args(["ols", "--target", "y", "--data"])
        .arg(&wide)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2)
        .stderr(contains(
            "the header has 1000001 columns, more than the 65536 burnfit reads",
        ));

    let csv = train_csv(dir.path());
    // `train` holds a table that fits (2 × 8 bytes × 201 lines × 4 columns = 12,864 bytes) in
    // memory; one that does not goes out of core; `ols` streams it and needs no room for it.
    let run = |available: &str| {
        let output = burnfit()
            .args(["train", "--steps", "1", "--target", "y", "--data"])
            .arg(&csv)
            .arg("--out")
            .arg(dir.path().join("m.json"))
            .arg("--force")
            .env("BURNFIT_MEMORY_AVAILABLE", available)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(!run("12864").contains("out of core"));
    let out = run("12863");
    assert!(
        out.contains("out of core: batches streamed from the cache")
            && out.contains(".burnfit-cache (built in"),
        "{out}"
    );
    burnfit()
        .args(["ols", "--target", "y", "--data"])
        .arg(&csv)
        .env("BURNFIT_MEMORY_AVAILABLE", "1000")
        .assert()
        .success();
}

#[test]
fn one_run_per_metrics_file_fresh_or_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let metrics = d.join("m.csv");
    let first = start_training(
        &[
            "train",
            "--steps",
            "100000000",
            "--log-every",
            "1",
            "--out",
            d.join("a.json").to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
        ],
        &[],
    );
    let pid = first.id();
    let second = burnfit()
        .args(["train", "--steps", "5", "--out"])
        .arg(d.join("b.json"))
        .arg("--metrics")
        .arg(&metrics)
        .arg("--force")
        .output()
        .unwrap();
    let (_, _) = crate::common::signal_and_wait(first, "TERM");
    assert_eq!(second.status.code(), Some(2));
    let err = stderr_of(&second);
    assert!(
        err.contains("is in use by another run")
            && (err.contains(&format!("(pid {pid})")) || !err.contains("pid")),
        "{err}"
    );
    assert!(!d.join("b.json").exists());

    // A resume that appends is refused while another run holds the file, too.
    let holder = start_training(
        &[
            "train",
            "--resume",
            d.join("a.json").to_str().unwrap(),
            "--steps",
            "100000000",
            "--log-every",
            "1",
            "--out",
            d.join("a.json").to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
        ],
        &[],
    );
    burnfit()
        .args(["train", "--resume"])
        .arg(d.join("a.json"))
        .args(["--steps", "5", "--out"])
        .arg(d.join("c.json"))
        .arg("--metrics")
        .arg(&metrics)
        .assert()
        .code(2)
        .stderr(contains("is in use by another run"));
    crate::common::signal_and_wait(holder, "TERM");
    // Once they are gone, the file is free again.
    burnfit()
        .args(["train", "--steps", "5", "--quiet", "--force", "--out"])
        .arg(d.join("c.json"))
        .arg("--metrics")
        .arg(&metrics)
        .assert()
        .success();
}

#[test]
fn predict_data_to_stdout_keeps_the_bytes_of_passed_through_columns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    burnfit()
        .current_dir(d)
        .args(["train", "--steps", "5", "--quiet", "--out", "m.json"])
        .assert()
        .success();
    std::fs::write(d.join("in.csv"), b"name,x\ncaf\xe9,1\n\xff\xfe,2\n").unwrap();
    let stdout = burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "in.csv"])
        .output()
        .unwrap();
    assert!(stdout.status.success(), "{}", stderr_of(&stdout));
    burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "in.csv"])
        .args(["--out", "out.csv"])
        .assert()
        .success();
    let file = std::fs::read(d.join("out.csv")).unwrap();
    assert_eq!(stdout.stdout, file);
    assert!(
        file.starts_with(b"name,x,prediction\ncaf\xe9,1,"),
        "{file:?}"
    );
}

#[test]
fn predict_from_stdin_prints_every_valid_line_before_a_bad_one_and_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    burnfit()
        .current_dir(d)
        .args(["train", "--steps", "5", "--quiet", "--out", "m.json"])
        .assert()
        .success();
    let mut input: String = (1..=10_000).map(|i| format!("{i}\n")).collect();
    input.push_str("abc\n");
    let output = burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--x", "-"])
        .write_stdin(input)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        10_000
    );
    assert!(stderr_of(&output).contains("stdin line 10001"));

    // A line typed now is answered now, before stdin ends.
    let mut command = Command::new(env!("CARGO_BIN_EXE_burnfit"));
    with_default_signals(&mut command);
    let mut child = command
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--x", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"2\n").unwrap();
    stdin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the prediction arrives while stdin is still open");
    assert!(line.trim().parse::<f32>().is_ok(), "{line:?}");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_resume_without_backend_continues_on_the_checkpoints_backend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    burnfit()
        .current_dir(d)
        .args(["train", "--backend", "ndarray", "--steps", "5", "--quiet"])
        .args(["--out", "m.json"])
        .assert()
        .success()
        .stdout(contains("training on ndarray"));
    burnfit()
        .current_dir(d)
        .args(["train", "--resume", "m.json", "--steps", "5", "--quiet"])
        .assert()
        .success()
        .stdout(contains("training on ndarray"));
}

#[test]
fn errors_say_what_is_wrong_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = train_csv(d);
    let refused = |args: &[&str], expected: &str| {
        let output = burnfit().current_dir(d).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&output);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    refused(
        &["train", "--epochs", "5"],
        "error: --epochs applies to CSV data only: pass --data FILE.csv --target COLUMN",
    );
    refused(
        &[
            "train",
            "--data",
            "d.csv",
            "--target",
            "y",
            "--val-frac",
            "1e-300",
        ],
        "--val-frac 1e-300 of 200 rows leaves no validation rows",
    );
    // 1e-300 is valid; 1.5 is not, and is shown as typed.
    refused(
        &[
            "train",
            "--data",
            "d.csv",
            "--target",
            "y",
            "--val-frac",
            "1.5",
        ],
        "invalid --val-frac = 1.5: must be in [0, 1)",
    );
    std::fs::write(
        d.join("c.json"),
        r#"{"data": {"path": "d.csv", "target": "y", "val_frac": 1.5}}"#,
    )
    .unwrap();
    refused(
        &["train", "--config", "c.json"],
        "key `data.val_frac` = 1.5: must be in [0, 1)",
    );
    std::fs::write(d.join("h.json"), r#"{"model": "mlp", "hidden": []}"#).unwrap();
    refused(
        &["train", "--config", "h.json"],
        "config file h.json: key `hidden`",
    );
    std::fs::write(d.join("notes.csv"), "these are my notes\n").unwrap();
    refused(
        &["train", "--steps", "5", "--metrics", "notes.csv"],
        "exists and is not a metrics file",
    );
    assert_eq!(
        std::fs::read_to_string(d.join("notes.csv")).unwrap(),
        "these are my notes\n"
    );
    refused(
        &["bench", "--budget-s", "0"],
        "invalid --budget-s = 0: must be at least 1 second",
    );
    burnfit()
        .current_dir(d)
        .args(["train", "--steps", "5", "--quiet", "--out", "r.json"])
        .assert()
        .success();
    refused(
        &["train", "--resume", "r.json"],
        "--steps is needed: the checkpoint has reached its target of 5 steps",
    );
    // A batch too big for memory suggests the fused engine only where it would work.
    let output = burnfit()
        .current_dir(d)
        .args([
            "train", "--model", "mlp", "--batch", "100000", "--steps", "1",
        ])
        .env("BURNFIT_MEMORY_AVAILABLE", "1000")
        .output()
        .unwrap();
    let err = stderr_of(&output);
    assert!(
        err.contains("--batch 100000 needs") && !err.contains("fused"),
        "{err}"
    );
    let output = burnfit()
        .current_dir(d)
        .args(["train", "--batch", "100000", "--steps", "1"])
        .env("BURNFIT_MEMORY_AVAILABLE", "1000")
        .output()
        .unwrap();
    assert!(stderr_of(&output).contains("--engine fused"));
    let _ = csv;
}

#[test]
fn a_csv_path_is_recorded_relative_to_the_checkpoint_so_resume_works_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train_csv(d);
    std::fs::create_dir(d.join("runs")).unwrap();
    burnfit()
        .current_dir(d)
        .args(["train", "--data", "d.csv", "--target", "y", "--steps", "10"])
        .args(["--quiet", "--out", "runs/m.json"])
        .assert()
        .success();
    let elsewhere = tempfile::tempdir().unwrap();
    burnfit()
        .current_dir(elsewhere.path())
        .arg("train")
        .arg("--resume")
        .arg(d.join("runs/m.json"))
        .args(["--steps", "5", "--quiet", "--out"])
        .arg(d.join("runs/m2.json"))
        .assert()
        .success()
        .stdout(contains("d.csv"));
}

#[test]
fn found_in_review_fifos_long_headers_stdout_and_odd_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train_csv(d);
    // A FIFO as the data file is refused at once, not waited on.
    let fifo = d.join("pipe.csv");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for command in ["ols", "train"] {
        burnfit()
            .current_dir(d)
            .args([command, "--data", "pipe.csv", "--target", "y"])
            .timeout(std::time::Duration::from_secs(30))
            .assert()
            .code(2)
            .stderr(contains("is not a regular file"));
    }
    // A quote left open on the header line: refused after 16 MiB, not after the whole file.
    let mut open_quote = String::from("\"x,y\n");
    let row = "1,2\n".repeat(1 << 20);
    for _ in 0..5 {
        open_quote.push_str(&row);
    }
    std::fs::write(d.join("quote.csv"), open_quote).unwrap();
    burnfit()
        .current_dir(d)
        .args(["ols", "--data", "quote.csv", "--target", "y"])
        .assert()
        .code(2)
        .stderr(contains("the header is longer than 16 MiB"));
    // `ols --features ''` is refused as `train`'s is; `--out x/` before any work.
    burnfit()
        .current_dir(d)
        .args(["ols", "--data", "d.csv", "--target", "y", "--features", ""])
        .assert()
        .code(2)
        .stderr(contains("invalid --features"));
    burnfit()
        .current_dir(d)
        .args(["train", "--steps", "5", "--out", "q.json/"])
        .assert()
        .code(1)
        .stderr(contains("ends with `/`"))
        .stdout(predicates::str::is_empty());
    // A config's `data` block names its key in type errors too.
    std::fs::write(
        d.join("c.json"),
        r#"{"data": {"path": "d.csv", "target": "y", "bogus": 1}}"#,
    )
    .unwrap();
    burnfit()
        .current_dir(d)
        .args(["train", "--config", "c.json"])
        .assert()
        .code(2)
        .stderr(contains("key `data`: unknown field `bogus`"));

    // predict: --out /dev/stdout holds the CSV alone; stdin lines that are not UTF-8 are
    // numbered, a byte-order mark is skipped.
    burnfit()
        .current_dir(d)
        .args(["train", "--steps", "5", "--quiet", "--out", "m.json"])
        .assert()
        .success();
    std::fs::write(d.join("in.csv"), "x\n1\n2\n").unwrap();
    let plain = burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "in.csv"])
        .output()
        .unwrap();
    let through = burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "in.csv"])
        .args(["--out", "/dev/stdout"])
        .output()
        .unwrap();
    assert!(through.status.success());
    assert_eq!(through.stdout, plain.stdout);
    let output = burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--x", "-"])
        .write_stdin(b"\xEF\xBB\xBF1\n2\n\xff\n3\n".to_vec())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
    assert!(
        stderr_of(&output).contains("on stdin line 3: is not UTF-8 text"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn the_data_path_follows_symlinked_and_converted_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train_csv(d);
    for sub in ["A", "B/deep", "E"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::os::unix::fs::symlink("../B/deep/real.json", d.join("A/link.json")).unwrap();
    burnfit()
        .current_dir(d)
        .args(["train", "--data", "d.csv", "--target", "y", "--steps", "5"])
        .args(["--quiet", "--out", "A/link.json"])
        .assert()
        .success();
    let elsewhere = tempfile::tempdir().unwrap();
    let resume = |checkpoint: &str| {
        burnfit()
            .current_dir(elsewhere.path())
            .arg("train")
            .arg("--resume")
            .arg(d.join(checkpoint))
            .args(["--steps", "5", "--quiet", "--out"])
            .arg(elsewhere.path().join("r.json"))
            .assert()
            .success();
    };
    resume("B/deep/real.json");
    resume("A/link.json");
    // Converted into another directory, the checkpoint still finds its data.
    burnfit()
        .current_dir(elsewhere.path())
        .arg("convert")
        .arg(d.join("B/deep/real.json"))
        .arg(d.join("E/moved.bpk"))
        .assert()
        .success();
    resume("E/moved.bpk");
}

#[test]
fn convert_to_stdout_writes_the_checkpoint_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    burnfit()
        .current_dir(d)
        .args(["train", "--steps", "5", "--quiet", "--out", "m.json"])
        .assert()
        .success();
    let output = burnfit()
        .current_dir(d)
        .args(["convert", "m.json", "/dev/stdout", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(parsed.get("array_list").is_some(), "{parsed}");
}
