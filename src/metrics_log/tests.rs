//! Metrics files written, cut, resumed and read back.

use super::*;

fn row(step: u64, loss: f32, val_loss: Option<f64>) -> MetricsRow {
    MetricsRow {
        step,
        loss,
        elapsed_s: step as f64 * 0.5,
        lr: 0.01,
        extra: val_loss
            .map(|v| (VAL_LOSS.to_owned(), v))
            .into_iter()
            .collect(),
    }
}

fn steps(path: &Path) -> Vec<u64> {
    read_metrics(path).unwrap().iter().map(|r| r.step).collect()
}

fn rows_10_to_50(path: &Path) {
    let mut log = MetricsLog::create(path, &[VAL_LOSS], false).unwrap();
    for step in (10..=50).step_by(10) {
        log.append(&row(step, 1.0 / step as f32, Some(0.5)))
            .unwrap();
    }
}

#[test]
fn csv_rows_are_written_exactly_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    let mut log = MetricsLog::create(&path, &[VAL_LOSS, "val_mae"], false).unwrap();
    log.append(&row(10, 0.52, None)).unwrap();
    log.append(&MetricsRow {
        step: 20,
        loss: 1e-7,
        elapsed_s: 0.002_468_4,
        lr: 0.01,
        extra: vec![("val_mae".into(), 0.25)],
    })
    .unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "step,loss,elapsed_s,lr,val_loss,val_mae\n\
         10,0.52,5.000000,0.01,,\n\
         20,1e-7,0.002468,0.01,,0.25\n"
    );
}

#[test]
fn jsonl_rows_are_written_exactly_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.jsonl");
    let mut log = MetricsLog::create(&path, &[VAL_LOSS], false).unwrap();
    log.append(&row(10, 0.52, None)).unwrap();
    log.append(&row(20, f32::NAN, Some(0.33))).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\"step\":10,\"loss\":0.52,\"elapsed_s\":5.000000,\"lr\":0.01}\n\
         {\"step\":20,\"loss\":null,\"elapsed_s\":10.000000,\"lr\":0.01,\"val_loss\":0.33}\n"
    );
    let back = read_metrics(&path).unwrap();
    assert!(back[1].loss.is_nan());
    assert_eq!(back[1].get(VAL_LOSS), Some(0.33));
}

#[test]
fn rows_read_back_equal_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["m.csv", "m.jsonl"] {
        let path = dir.path().join(name);
        let rows = vec![
            row(1, 3.402_823_5e38, None),
            row(2, 0.1, Some(0.2)),
            row(3, 1.175_494_4e-38, Some(1e-300)),
            MetricsRow {
                step: 4,
                loss: 0.333_333_34,
                elapsed_s: 12.345_678,
                lr: 3e-4,
                extra: vec![(VAL_LOSS.into(), 0.1 + 0.2), ("val_mae".into(), -0.0)],
            },
        ];
        let mut log = MetricsLog::create(&path, &[VAL_LOSS, "val_mae"], false).unwrap();
        for row in &rows {
            log.append(row).unwrap();
        }
        assert_eq!(read_metrics(&path).unwrap(), rows, "{name}");
    }
}

/// JSON numbers pass through f64 on the way back; the shortest form of an f32 must still
/// come back as the same f32 (no double-rounding surprise).
#[test]
fn shortest_f32_forms_survive_the_f64_detour() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..1_000_000 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let value = f32::from_bits((state >> 32) as u32);
        if !value.is_finite() {
            continue;
        }
        let text = format!("{value:?}");
        let back = text.parse::<f64>().unwrap() as f32;
        assert_eq!(back.to_bits(), value.to_bits(), "{text}");
    }
}

#[test]
fn resume_drops_the_rows_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["m.csv", "m.jsonl"] {
        let path = dir.path().join(name);
        rows_10_to_50(&path);
        let mut log = MetricsLog::resume(&path, &[VAL_LOSS], 30).unwrap();
        log.append(&row(40, 0.01, None)).unwrap();
        assert_eq!(steps(&path), [10, 20, 30, 40], "{name}");
        // Nothing else in the directory: the rewrite's temporary file is gone.
        assert!(
            fs::read_dir(dir.path()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );
    }
}

#[test]
fn resume_keeps_a_file_that_ends_at_the_checkpoint_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    rows_10_to_50(&path);
    let before = fs::read(&path).unwrap();
    let mut log = MetricsLog::resume(&path, &[VAL_LOSS], 50).unwrap();
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(log.append(&row(50, 0.1, None)).is_err());
    log.append(&row(60, 0.1, None)).unwrap();
    assert_eq!(steps(&path), [10, 20, 30, 40, 50, 60]);
}

#[test]
fn resume_before_the_first_row_keeps_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    rows_10_to_50(&path);
    MetricsLog::resume(&path, &[VAL_LOSS], 5).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "step,loss,elapsed_s,lr,val_loss\n"
    );
}

#[test]
fn resume_drops_a_row_cut_short_by_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    rows_10_to_50(&path);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"60,0.0").unwrap();
    assert_eq!(steps(&path), [10, 20, 30, 40, 50]);
    let mut log = MetricsLog::resume(&path, &[VAL_LOSS], 60).unwrap();
    log.append(&row(60, 0.1, None)).unwrap();
    assert_eq!(steps(&path), [10, 20, 30, 40, 50, 60]);
}

#[test]
fn resume_with_other_columns_is_refused_and_the_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["m.csv", "m.jsonl"] {
        let path = dir.path().join(name);
        rows_10_to_50(&path);
        let before = fs::read(&path).unwrap();
        let err = MetricsLog::resume(&path, &[], 30).unwrap_err();
        assert!(matches!(err, Error::Metrics { .. }));
        let message = err.to_string();
        assert!(
            message.contains(
                "(step,loss,elapsed_s,lr,val_loss) are not this run's (step,loss,elapsed_s,lr)"
            ),
            "{message}"
        );
        assert_eq!(fs::read(&path).unwrap(), before);
    }
    // A CSV file from another program.
    let path = dir.path().join("other.csv");
    fs::write(&path, "epoch,loss\n1,0.5\n").unwrap();
    let message = MetricsLog::resume(&path, &[], 1).unwrap_err().to_string();
    assert!(
        message.contains("line 1: not a burnfit metrics file")
            && message.contains("(found `epoch,loss`)"),
        "{message}"
    );
}

#[test]
fn resume_of_a_missing_file_starts_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    let mut log = MetricsLog::resume(&path, &[], 30).unwrap();
    log.append(&row(40, 0.1, None)).unwrap();
    assert_eq!(steps(&path), [40]);
}

#[test]
fn create_refuses_another_runs_file_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    rows_10_to_50(&path);
    let before = fs::read(&path).unwrap();
    let message = MetricsLog::create(&path, &[VAL_LOSS], false)
        .unwrap_err()
        .to_string();
    assert!(message.contains("--force"), "{message}");
    assert_eq!(fs::read(&path).unwrap(), before);
    let mut log = MetricsLog::create(&path, &[], true).unwrap();
    log.append(&row(1, 0.5, None)).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "step,loss,elapsed_s,lr\n1,0.5,0.500000,0.01\n"
    );
    // An empty file is no one's history.
    let empty = dir.path().join("empty.jsonl");
    fs::write(&empty, "").unwrap();
    MetricsLog::create(&empty, &[], false).unwrap();
}

#[test]
fn an_unknown_extension_names_both_formats() {
    let path = Path::new("run/metrics.txt");
    let err = MetricsLog::create(path, &[], false).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert_eq!(
        err.to_string(),
        "metrics file run/metrics.txt: unknown format; use a .csv or .jsonl file name"
    );
    assert!(read_metrics(path).is_err());
    assert!(MetricsLog::resume(path, &[], 1).is_err());
}

#[test]
fn rows_with_unknown_columns_or_old_steps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    let mut log = MetricsLog::create(&path, &[VAL_LOSS], false).unwrap();
    let mut bad = row(1, 0.5, None);
    bad.extra.push(("val_mae".into(), 1.0));
    assert!(
        log.append(&bad)
            .unwrap_err()
            .to_string()
            .contains("`val_mae`")
    );
    log.append(&row(2, 0.5, None)).unwrap();
    assert!(log.append(&row(2, 0.5, None)).is_err());
    assert_eq!(steps(&path), [2]);
    assert!(MetricsLog::create(&path, &["val loss"], true).is_err());
    assert!(MetricsLog::create(&path, &["loss"], true).is_err());
}

#[test]
fn bad_files_are_refused_with_the_line_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("empty.csv", "", "is empty"),
        ("blank.jsonl", "\n\n", "is empty"),
        (
            "header.csv",
            "step,val\n1,2\n",
            "line 1: not a burnfit metrics file",
        ),
        (
            "number.csv",
            "step,loss,elapsed_s,lr\n1,0.5,0.1,0.01\n2,abc,0.2,0.01\n",
            "line 3: `loss` is `abc`, not a number",
        ),
        (
            "cells.csv",
            "step,loss,elapsed_s,lr\n1,0.5,0.1\n",
            "line 2: 3 cells, but the header names 4 columns",
        ),
        (
            "order.csv",
            "step,loss,elapsed_s,lr\n2,0.5,0.1,0.01\n2,0.4,0.2,0.01\n",
            "line 3: step 2 after step 2: steps must increase",
        ),
        (
            "noloss.jsonl",
            "{\"step\":1,\"elapsed_s\":0.1,\"lr\":0.01}\n",
            "line 1: not a burnfit metrics row: it has no `loss`",
        ),
        (
            "text.jsonl",
            "{\"step\":1,\"loss\":\"x\",\"elapsed_s\":0.1,\"lr\":0.01}\n",
            "line 1: `loss` is `\"x\"`, not a number",
        ),
        ("csv.jsonl", "step,loss\n", "line 1: not a JSON object"),
        (
            "negative.jsonl",
            "{\"step\":-1,\"loss\":1,\"elapsed_s\":0.1,\"lr\":0.01}\n",
            "line 1: `step` is `-1`, not a whole number",
        ),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        fs::write(&path, content).unwrap();
        let err = read_metrics(&path).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("metrics file {}: ", path.display()))
                && message.contains(expected)
                && !message.contains('\n'),
            "{name}: {message}"
        );
        assert_eq!(err.exit_code(), 2);
    }
    let missing = read_metrics(&dir.path().join("missing.csv")).unwrap_err();
    assert!(missing.to_string().contains("cannot read it"), "{missing}");
}

#[test]
fn a_header_without_rows_reads_as_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    MetricsLog::create(&path, &[VAL_LOSS], false).unwrap();
    assert_eq!(read_metrics(&path).unwrap(), []);
}
