//! `predict --data` and `evaluate` read their file in chunks: rows in, rows out, in bounded
//! memory. These check a file of several chunks against what the whole-file path wrote.

use std::path::Path;

use burnfit::Checkpoint;
use burnfit::fit_quality::FitQuality;

use crate::common::burnfit;

/// A one-input linear checkpoint `m.json` in `d`, and its prediction function.
fn linear_model(d: &Path) -> impl Fn(f64) -> f64 {
    burnfit()
        .current_dir(d)
        .args(["train", "--steps", "5", "--quiet", "--out", "m.json"])
        .assert()
        .success();
    let checkpoint = Checkpoint::load(&d.join("m.json")).unwrap();
    let params = checkpoint.named_params();
    move |x| checkpoint.spec.forward_host(&params, &[x])
}

/// Over 4 MiB of rows (several chunks) with what the CSV writer changes and what it keeps:
/// CRLF lines become LF, blank lines go, needless quotes go, needed ones stay, Latin-1 bytes
/// pass through; and the expected output, made row by row as the in-memory path made it.
fn mixed_file(model: &impl Fn(f64) -> f64) -> (Vec<u8>, Vec<u8>) {
    // Written as chars below 256, then stored one byte each (Latin-1, not UTF-8).
    let mut input = String::from("name,x,note\r\n");
    let mut expected = String::from("name,x,note,prediction\n");
    for i in 0..500_000u32 {
        let x = f64::from(i % 1000) / 8.0;
        let p = format!("{}", model(x) as f32);
        match i % 5 {
            0 => {
                input += &format!("caf\u{e9}-{i},{x},\"a,b\"\r\n");
                expected += &format!("caf\u{e9}-{i},{x},\"a,b\",{p}\n");
            }
            1 => {
                input += &format!("\"n{i}\",\"{x}\",\"two\nlines\"\n");
                expected += &format!("n{i},{x},\"two\nlines\",{p}\n");
            }
            2 => {
                input += &format!("\n\u{ff}{i},{x},\"say \"\"hi\"\"\"\n");
                expected += &format!("\u{ff}{i},{x},\"say \"\"hi\"\"\",{p}\n");
            }
            _ => {
                input += &format!("r{i}, {x} ,plain\n");
                expected += &format!("r{i}, {x} ,plain,{p}\n");
            }
        }
    }
    let mut input_bytes = b"\xEF\xBB\xBF".to_vec();
    input_bytes.extend(to_latin1(&input));
    assert!(input_bytes.len() > 2 * (4 << 20), "{}", input_bytes.len());
    (input_bytes, to_latin1(&expected))
}

#[test]
fn predict_data_streams_a_file_of_many_chunks_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = linear_model(d);
    let (input, expected) = mixed_file(&model);
    std::fs::write(d.join("in.csv"), &input).unwrap();
    let stdout = burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "in.csv"])
        .output()
        .unwrap();
    assert!(stdout.status.success());
    assert!(
        stdout.stdout == expected,
        "stdout differs from the expected bytes"
    );
    burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "in.csv"])
        .args(["--out", "out.csv"])
        .assert()
        .success();
    assert!(std::fs::read(d.join("out.csv")).unwrap() == expected);

    // JSON Lines: one object per row, each with its line in the file (quoted newlines and
    // blank lines counted).
    let json = burnfit()
        .current_dir(d)
        .args([
            "predict",
            "--checkpoint",
            "m.json",
            "--data",
            "in.csv",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(json.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(json.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 500_000);
    // Row i starts on line 2 + i, plus the rows before it that span two lines and the blank
    // lines before it (as many: one of each in every 5 rows).
    for i in [0usize, 1, 2, 3, 4, 5, 123_457, 499_999] {
        let line = 2 + i + 2 * ((i + 3) / 5);
        assert_eq!(lines[i]["line"], line, "row {i}");
        let x = (i % 1000) as f64 / 8.0;
        assert_eq!(lines[i]["inputs"]["x"], x);
        assert_eq!(
            lines[i]["prediction"].as_f64().unwrap() as f32,
            model(x) as f32
        );
    }
}

/// The bytes of a string whose chars are all below 256 (Latin-1).
fn to_latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

#[test]
fn predict_data_error_mid_file_leaves_out_untouched_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _model = linear_model(d);
    let mut input = String::from("x\n");
    for i in 0..1_000_000 {
        input += &format!("{i}\n");
    }
    input += "oops\n";
    std::fs::write(d.join("in.csv"), &input).unwrap();
    std::fs::write(d.join("out.csv"), "the old output\n").unwrap();
    let output = burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "in.csv"])
        .args(["--out", "out.csv"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 1000002, column `x`"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(d.join("out.csv")).unwrap(),
        "the old output\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["in.csv", "m.json", "out.csv"]);

    // To stdout, the rows before the bad one have been printed, as they were predicted.
    let output = burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "in.csv"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        output.stdout.iter().filter(|&&b| b == b'\n').count(),
        1_000_001
    );
}

#[test]
fn evaluate_streams_to_the_librarys_in_memory_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = linear_model(d);
    // Over 4 MiB: several chunks, scored on two threads, summed in row order.
    let mut input = String::from("x,y\r\n");
    let (mut predictions, mut targets) = (Vec::new(), Vec::new());
    for i in 0..400_000u32 {
        let x = f64::from(i % 997) / 7.0 - 60.0;
        let y = (f64::from(i) * 0.37).sin() * 20.0 + x * 1.5;
        let y: f64 = format!("{y:.6}").parse().unwrap();
        input += &format!("{x},{y:.6}\r\n");
        predictions.push(model(x));
        targets.push(y);
    }
    assert!(input.len() > 2 * (4 << 20));
    std::fs::write(d.join("in.csv"), &input).unwrap();
    let expected = FitQuality::of(predictions.into_iter(), targets.into_iter());
    let output = burnfit()
        .current_dir(d)
        .args(["evaluate", "--checkpoint", "m.json", "--data", "in.csv"])
        .args(["--target", "y", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["rows"], 400_000);
    // Bit for bit: JSON numbers read back exactly.
    assert_eq!(json["mse"].as_f64().unwrap(), expected.mse);
    assert_eq!(json["mae"].as_f64().unwrap(), expected.mae);
    assert_eq!(json["r2"].as_f64().unwrap(), expected.r2);
    assert_eq!(json["loss"]["value"].as_f64().unwrap(), expected.mse);
}
