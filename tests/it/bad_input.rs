//! Every bad input a user can hand us — checkpoints, special files, out-of-range settings,
//! configs, batches that cannot fit: a one-line error naming the file or flag and the problem,
//! a non-zero exit code, and every existing file left exactly as it was.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use burnfit::Checkpoint;
use burnfit::checkpoint::Format;

use crate::common::{autograd_fixture, burnfit, checkpoint_with_updates, run_err, skip};

/// A checkpoint file whose w is NaN (SafeTensors and burnpack can hold one; JSON cannot).
fn non_finite(format: Format) -> Vec<u8> {
    let mut checkpoint = Checkpoint::load(&autograd_fixture())
        .unwrap()
        .without_optimizer();
    checkpoint.params[0].data[0] = f32::NAN;
    checkpoint.to_bytes(format).unwrap()
}

fn fixture_text() -> String {
    std::fs::read_to_string(autograd_fixture()).unwrap()
}

/// (file name, contents or None for "do not create", expected message part)
fn bad_checkpoints() -> Vec<(&'static str, Option<Vec<u8>>, &'static str)> {
    let fixture = fixture_text();
    let with_meta = |meta: &str| fixture.replacen('{', &format!("{{\"burnfit\":{meta},"), 1);
    let text_cases: Vec<(&'static str, Option<String>, &'static str)> = vec![
        ("missing.json", None, "no such file"),
        ("empty.json", Some(String::new()), "file is empty"),
        (
            "truncated.json",
            Some(fixture[..fixture.len() / 2].to_string()),
            "truncated JSON",
        ),
        ("text.json", Some("hello, world".into()), "not valid JSON"),
        (
            "schema.json",
            Some(r#"{"weights": [1, 2]}"#.into()),
            "not an autograd results.json",
        ),
        (
            "version.json",
            Some(fixture.replacen("\"v\":1", "\"v\":3", 1)),
            "v = 3",
        ),
        (
            "length.json",
            Some(fixture.replacen("\"data\":[2.4951487]", "\"data\":[2.4951487, 1.0]", 1)),
            "needs 1 values",
        ),
        (
            "nonnumeric.json",
            Some(fixture.replacen("[2.4951487]", "[\"2.5\"]", 1)),
            "invalid type: string",
        ),
        (
            "infinite.json",
            Some(fixture.replacen("[2.4951487]", "[1e39]", 1)),
            "out of range",
        ),
        (
            "nan.json",
            Some(fixture.replacen("[2.4951487]", "[NaN]", 1)),
            "not valid JSON",
        ),
        (
            "no_b.json",
            Some(fixture.replacen("\"\\u0001b\"", "\"\\u0001bias\"", 1)),
            "no variable `b`",
        ),
        (
            "shape.json",
            Some(fixture.replacen(
                "\"dim\":[1,1],\"data\":[2.4951487]",
                "\"dim\":[1],\"data\":[2.4951487]",
                1,
            )),
            "`w` has shape [1], expected [inputs, outputs]",
        ),
        (
            "future.json",
            Some(with_meta(r#"{"format_version": 99}"#)),
            "newer than this build",
        ),
        (
            "badmeta.json",
            Some(with_meta(r#"{"format_version": 1, "colour": "red"}"#)),
            "metadata",
        ),
        (
            "junk.bpk",
            Some("not a burnpack".into()),
            "not a valid burnpack",
        ),
        (
            "junk.safetensors",
            Some("\u{8}\0\0\0\0\0\0\0{}".into()),
            "SafeTensors",
        ),
        // Content that names no format, under an extension that names none either.
        (
            "model.txt",
            Some("hello".into()),
            "not a checkpoint file: its content is none of JSON, SafeTensors, burnpack",
        ),
    ];
    let mut cases: Vec<(&'static str, Option<Vec<u8>>, &'static str)> = text_cases
        .into_iter()
        .map(|(name, text, expected)| (name, text.map(String::into_bytes), expected))
        .collect();
    cases.push(("nan.bpk", Some(non_finite(Format::Bpk)), "non-finite"));
    cases.push((
        "nan.safetensors",
        Some(non_finite(Format::Safetensors)),
        "non-finite",
    ));
    cases
}

fn assert_one_line_error(output: &std::process::Output, name: &str, expected: &str) {
    assert!(!output.status.success(), "{name}: succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
    assert!(
        stderr.contains(name),
        "{name}: the file is not named: {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "{name}: expected {expected:?} in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
}

#[test]
fn bad_checkpoints_are_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    std::fs::write(&out, b"previous good checkpoint").unwrap();
    for (name, contents, expected) in bad_checkpoints() {
        let path = dir.path().join(name);
        if let Some(text) = &contents {
            std::fs::write(&path, text).unwrap();
        }
        let predict = burnfit()
            .args([
                "predict",
                "--x",
                "1",
                "--backend",
                "ndarray",
                "--checkpoint",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert_one_line_error(&predict, name, expected);
        let resume = burnfit()
            .args(["train", "--backend", "ndarray", "--steps", "5", "--resume"])
            .arg(&path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_one_line_error(&resume, name, expected);
        let convert = burnfit()
            .arg("convert")
            .arg(&path)
            .arg(&out)
            .output()
            .unwrap();
        assert_one_line_error(&convert, name, expected);
        let inspect = burnfit().arg("inspect").arg(&path).output().unwrap();
        if inspect.status.success() {
            // inspect shows files it can parse even when they are not a loadable model.
            let stdout = String::from_utf8_lossy(&inspect.stdout);
            assert!(stdout.contains("not loadable"), "{name}: {stdout}");
        }
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"previous good checkpoint",
            "{name}"
        );
        if let Some(text) = &contents {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                *text,
                "{name}: input changed"
            );
        }
    }
}

#[test]
fn a_directory_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("ckpt.json");
    std::fs::create_dir(&sub).unwrap();
    let out = burnfit()
        .args(["predict", "--x", "1", "--checkpoint"])
        .arg(&sub)
        .output()
        .unwrap();
    assert_one_line_error(&out, "ckpt.json", "is a directory");
}

#[test]
fn bad_destinations_are_named_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, b"x").unwrap();
    let cases: [(&Path, &str); 3] = [
        (&dir.path().join("missing/out.json"), "does not exist"),
        (&file.join("out.json"), "is not a directory"),
        (Path::new("/proc/burnfit-out.json"), "burnfit-out.json"),
    ];
    for (dest, expected) in cases {
        let output = burnfit()
            .args(["train", "--backend", "ndarray", "--steps", "3", "--out"])
            .arg(dest)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{}", dest.display());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected) && stderr.lines().count() == 1,
            "{}: {stderr}",
            dest.display()
        );
        let convert = burnfit()
            .arg("convert")
            .arg(autograd_fixture())
            .arg(dest)
            .output()
            .unwrap();
        assert!(!convert.status.success(), "{}", dest.display());
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn every_output_in_a_missing_directory_is_the_same_error_and_exit_code() {
    // --out, --metrics and --plot: "cannot write FILE: DIR does not exist", exit 1 (an
    // unwritable destination), before any work and with the other outputs untouched.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let missing = dir.path().join("missing");
    for (flag, name) in [
        ("--out", "m.json"),
        ("--metrics", "m.csv"),
        ("--plot", "m.svg"),
    ] {
        let dest = missing.join(name);
        let mut args: Vec<std::ffi::OsString> = ["train", "--backend", "ndarray", "--steps", "3"]
            .map(Into::into)
            .to_vec();
        if flag != "--out" {
            args.extend(["--out".into(), out.clone().into_os_string()]);
        }
        args.extend([flag.into(), dest.clone().into_os_string()]);
        let output = burnfit().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{flag}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.trim_end(),
            format!(
                "error: cannot write {}: {} does not exist",
                dest.display(),
                missing.display()
            ),
            "{flag}"
        );
        assert!(!out.exists(), "{flag}: nothing trained or saved");
    }
}

#[test]
fn predict_rejects_bad_numbers() {
    for (x, expected) in [
        ("1,abc", "\"abc\" is not a number"),
        ("inf", "not a finite number"),
        ("", "not a number"),
    ] {
        burnfit()
            .args(["predict", "--checkpoint"])
            .arg(autograd_fixture())
            .args(["--x", x])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(expected));
    }
    burnfit()
        .args(["predict", "--x", "-", "--checkpoint"])
        .arg(autograd_fixture())
        .write_stdin("1\n\nfoo\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("stdin line 3"));
}

#[test]
fn special_files_as_inputs_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("c.json");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo = fifo.to_str().unwrap();
    for args in [
        vec!["train", "--steps", "1", "--config", "/dev/zero"],
        vec!["train", "--steps", "1", "--config", fifo],
        vec!["train", "--steps", "1", "--resume", fifo],
        vec!["inspect", fifo],
    ] {
        let (code, stderr) = run_err(&args);
        assert!(matches!(code, Some(1 | 2)), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is not a regular file"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn overflowing_ranges_and_step_counts_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    std::fs::write(&config, r#"{"x_low": -3e38, "x_high": 3e38}"#).unwrap();
    let (code, stderr) = run_err(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        "/tmp/never.json",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("key `x_low`") && stderr.contains("c.json"),
        "{stderr}"
    );

    let start = dir.path().join("r.json");
    checkpoint_with_updates(200)
        .save_as(&start, Format::Json)
        .unwrap();
    let before = std::fs::read(&start).unwrap();
    let (code, stderr) = run_err(&[
        "train",
        "--resume",
        start.to_str().unwrap(),
        "--steps",
        "18446744073709551615",
        "--out",
        start.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--steps"), "{stderr}");
    assert_eq!(std::fs::read(&start).unwrap(), before);
}

#[test]
fn what_a_file_holds_is_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replace(
            "linear_reg_adam\\u00010m",
            "linear_reg_adam\\u0001\\nmodel: w = 99\\u001b]0;pwned\\u0007",
        );
    let path = dir.path().join("evil.json");
    std::fs::write(&path, text).unwrap();
    let output = burnfit().arg("inspect").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("model: w = 99")),
        "{stdout}"
    );
    assert!(
        stdout.contains("linear_reg_adam/\\nmodel: w = 99\\u{1b}"),
        "{stdout}"
    );
}

#[test]
fn predictions_that_overflow_and_inputs_out_of_range_are_named() {
    let fixture = autograd_fixture();
    let fixture = fixture.to_str().unwrap();
    let (code, stderr) = run_err(&["predict", "--checkpoint", fixture, "--x", "1,3e38"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("3e38") || stderr.contains("300000"),
        "{stderr}"
    );
    assert!(stderr.contains("out of f32 range"), "{stderr}");
    let (code, stderr) = run_err(&["predict", "--checkpoint", fixture, "--x", "1e39"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("\"1e39\" is out of f32 range"), "{stderr}");
    let long = "9".repeat(100_000) + "x";
    let (_, stderr) = run_err(&["predict", "--checkpoint", fixture, "--x", &long]);
    assert!(
        stderr.len() < 300,
        "the error echoes the whole input: {} bytes",
        stderr.len()
    );
}

#[test]
fn usage_errors_are_one_line_and_a_hint() {
    for (args, expected) in [
        (vec!["train", "--save-every", "-1"], "--save-every"),
        (vec!["train", "--steps", "many"], "--steps"),
        (vec!["train", "--engine", "turbo"], "--engine"),
        (vec!["predict", "--checkpoint", "x.json"], "--x"),
    ] {
        let (code, stderr) = run_err(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(expected),
            "{stderr}"
        );
        assert!(lines[1].contains("--help"), "{stderr}");
    }
}

#[test]
fn lenient_loaders_are_strict_now() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(autograd_fixture()).unwrap();
    let cases = [
        // The same name twice: the second would silently win.
        (
            fixture.replacen("\"\\u0001b\":1", "\"\\u0001b\":1,\"\\u0001b\":0", 1),
            "duplicate key",
        ),
        // Two names for one array: w would be b.
        (
            fixture.replacen("\"\\u0001b\":1", "\"\\u0001b\":0", 1),
            "share array id 0",
        ),
        // A dim whose product overflows to 0 with an empty data list.
        (
            fixture.replacen(
                "\"dim\":[1,1],\"data\":[2.4951487]",
                "\"dim\":[4294967296,4294967296],\"data\":[]",
                1,
            ),
            "too large",
        ),
    ];
    for (text, expected) in cases {
        assert!(
            text != fixture,
            "the case did not change the fixture: {expected}"
        );
        let path = dir.path().join("c.json");
        std::fs::write(&path, &text).unwrap();
        let (code, stderr) = run_err(&["inspect", path.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{expected}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains("c.json"),
            "{expected}: {stderr}"
        );
    }
    // Metadata that claims fewer steps than Adam has taken.
    let mut checkpoint = checkpoint_with_updates(50);
    checkpoint.meta.as_mut().unwrap().step = 10;
    let path = dir.path().join("steps.json");
    checkpoint.save_as(&path, Format::Json).unwrap();
    let err = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("50 updates") && err.contains("10 steps"),
        "{err}"
    );
}

#[test]
fn config_files_are_named_by_key_with_the_value_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    for (text, expected) in [
        (r#"{"lr": 1e-50}"#, "key `lr` = 1e-50"),
        (r#"{"lr": 0.1, "lr": 10}"#, "duplicate key \"lr\""),
        (r#"{"batch": 0}"#, "key `batch` = 0"),
    ] {
        std::fs::write(&config, text).unwrap();
        let (code, stderr) = run_err(&["train", "--config", config.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains("c.json"),
            "{text}: {stderr}"
        );
    }
}

#[test]
fn a_batch_that_cannot_fit_is_a_usage_error_before_any_allocation() {
    if available_gib() > 100 {
        return skip("the batch-memory test", "this machine could hold the batch");
    }
    // 2^31 samples: ~128 GiB for the autodiff engine's tensors, more than this machine has.
    let (code, stderr) = run_err(&[
        "train",
        "--backend",
        "ndarray",
        "--batch",
        "2147483648",
        "--out",
        "/tmp/never.json",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--batch 2147483648 needs") && stderr.contains("--engine fused"),
        "{stderr}"
    );
    let (code, stderr) = run_err(&["train", "--batch", "10000000000"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--batch") && stderr.contains("2^31"),
        "{stderr}"
    );
    let (code, stderr) = run_err(&["train", "--batch", "18446744073709551615"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--batch"), "{stderr}");
}

#[test]
fn bench_skips_rows_that_cannot_fit_including_the_autograd_one() {
    if available_gib() > 100 {
        return skip(
            "the bench batch-memory test",
            "this machine could hold the batch",
        );
    }
    let output = burnfit()
        .args([
            "bench",
            "--backends",
            "ndarray",
            "--engines",
            "autodiff",
            "--batches",
            "2147483648",
            "--steps",
            "2",
            "--repeat",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Every row skipped: nothing measured, exit 1.
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let skipped = stdout
        .lines()
        .filter(|l| l.contains("skipped: --batch 2147483648 needs"))
        .count();
    let expected = if cfg!(feature = "autograd-ref") { 2 } else { 1 };
    assert_eq!(skipped, expected, "{stdout}");
}

/// Memory available now, in GiB (0 where unknown): the batch-memory tests need less than the
/// ~128 GiB a batch of 2^31 takes.
fn available_gib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info
                .lines()
                .find(|l| l.starts_with("MemAvailable:"))?
                .to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib >> 20)
}

#[test]
fn flags_of_the_line_with_a_table_and_f32_overflows_are_refused_by_name() {
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/data/diabetes.csv");
    let data = data.to_str().unwrap();
    for flag in ["--true-w", "--true-b", "--noise", "--x-low", "--x-high"] {
        let (code, stderr) = run_err(&[
            "train",
            "--data",
            data,
            "--target",
            "progression",
            flag,
            "2",
            "--steps",
            "1",
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "error: {flag} describes the synthetic line, not a table: this run trains on {data}"
            )
        );
    }
    // The sine task draws its own x and y: the line's settings do not apply there either.
    for flag in ["--true-w", "--true-b", "--noise", "--x-low", "--x-high"] {
        let (code, stderr) = run_err(&["train", "--task", "sine", flag, "2", "--steps", "1"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "error: {flag} describes the synthetic line, not --task sine (y = sin x, x in [0, 10))"
            )
        );
    }
    // A number that f32 would make 0 or infinite, as typed.
    let (code, stderr) = run_err(&["train", "--epsilon", "1e-46", "--steps", "1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: invalid value '1e-46' for '--epsilon <X>': 1e-46 is below f32's range: it would be 0"),
        "{stderr}"
    );
    let (code, stderr) = run_err(&["train", "--lr", "1e39", "--steps", "1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("1e39 is beyond f32's range"), "{stderr}");
    // What validation says names the flag.
    let (code, stderr) = run_err(&["train", "--epsilon", "0", "--steps", "1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: invalid --epsilon = 0: must be a finite number above 0"
    );
}

#[test]
fn a_sine_checkpoint_resumed_on_a_table_says_where_the_task_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let sine = dir.path().join("sine.json");
    burnfit()
        .args([
            "train", "--task", "sine", "--model", "mlp", "--hidden", "4", "--steps", "2",
        ])
        .args(["--backend", "ndarray", "--out"])
        .arg(&sine)
        .assert()
        .success();
    let data = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/data/diabetes.csv");
    let (code, stderr) = run_err(&[
        "train",
        "--resume",
        sine.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--target",
        "progression",
        "--out",
        dir.path().join("t.json").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--data {}: the checkpoint was trained on the sine task; train on a table in a fresh run (without --resume)",
            data.display()
        )),
        "{stderr}"
    );
}

#[test]
fn what_an_adversarial_pass_over_the_other_commands_found_stays_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let s = |path: &std::path::Path| path.to_str().unwrap().to_owned();
    let line = p("line.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "3", "--out"])
        .arg(&line)
        .assert()
        .success();
    // predict --x takes no --out (it used to be ignored: nothing written, exit 0).
    let (code, stderr) = run_err(&[
        "predict",
        "--checkpoint",
        &s(&line),
        "--x",
        "1",
        "--out",
        &s(&p("o.csv")),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: --out applies to --data FILE.csv; the predictions for --x go to stdout"
    );
    assert!(!p("o.csv").exists());
    // convert onto itself would drop a variable that is not the model's: refused, file kept.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&line).unwrap()).unwrap();
    let extra = json["array_list"].as_array().unwrap().len();
    json["array_list"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"v": 1, "dim": [1], "data": [7.0]}));
    json["name_to_id"]["other\u{1}foo"] = serde_json::json!(extra);
    let with_extra = p("extra.json");
    std::fs::write(&with_extra, serde_json::to_vec(&json).unwrap()).unwrap();
    let before = std::fs::read(&with_extra).unwrap();
    let (code, stderr) = run_err(&["convert", &s(&with_extra), &s(&with_extra)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("converting it onto itself would drop other/foo"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&with_extra).unwrap(), before);
    // Through a symlink too; a hard link is replaced by the save's rename, the input kept.
    let link = p("link.json");
    std::os::unix::fs::symlink(&with_extra, &link).unwrap();
    let (code, _) = run_err(&["convert", &s(&with_extra), &s(&link)]);
    assert_eq!(code, Some(2));
    let hard = p("hard.json");
    std::fs::hard_link(&with_extra, &hard).unwrap();
    burnfit()
        .args(["convert", &s(&with_extra), &s(&hard)])
        .assert()
        .success();
    assert_eq!(std::fs::read(&with_extra).unwrap(), before);
    assert_ne!(std::fs::read(&hard).unwrap(), before);
    let diabetes = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/data/diabetes.csv");
    // TOML's inf is named as such (it was "invalid type: null").
    let toml = p("c.toml");
    std::fs::write(&toml, "lr = inf\n").unwrap();
    // (and inside a list: `hidden = [64, nan]` is named by its key too)
    let (code, stderr) = run_err(&["train", "--config", &s(&toml), "--out", &s(&p("t.json"))]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("key `lr`: inf and nan are not settings; give a finite number"),
        "{stderr}"
    );
    // ols --save-summary offers --force for a write-protected file, and takes it.
    let summary = p("s.json");
    std::fs::write(&summary, "old").unwrap();
    std::fs::set_permissions(&summary, std::fs::Permissions::from_mode(0o444)).unwrap();
    let args = [
        "ols",
        "--data",
        diabetes.to_str().unwrap(),
        "--target",
        "progression",
    ];
    let (code, stderr) = run_err(&[&args[..], &["--save-summary", &s(&summary)]].concat());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pass --force to replace it"), "{stderr}");
    burnfit()
        .args(args)
        .args(["--save-summary", &s(&summary), "--force"])
        .assert()
        .success();
    assert_ne!(std::fs::read(&summary).unwrap(), b"old");
}

#[test]
fn a_quote_left_open_is_an_error_in_every_reader_not_rows_swallowed() {
    // The csv crate ends a quoted field left open at the end of the file, silently: rows 3-8
    // would become one text field of row 2 and vanish (2 rows read of 8).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("open.csv");
    std::fs::write(
        &bad,
        "x,y,note\n1,2,ok\n2,4,\"oops\n3,6,ok\n4,8,ok\n5,10,ok\n6,12,ok\n7,14,ok\n8,16,ok\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let model = dir.path().join("m.json");
    let model = model.to_str().unwrap();
    burnfit()
        .args(["train", "--steps", "2", "-q", "--out", model])
        .assert()
        .success();
    let train = ["train", "--data", bad, "--target", "y", "--features", "x"];
    let runs: Vec<Vec<&str>> = vec![
        [&train[..], &["--steps", "2", "--out", model]].concat(),
        [
            &train[..],
            &["--steps", "2", "--out-of-core", "--out", model],
        ]
        .concat(),
        vec!["ols", "--data", bad, "--target", "y", "--features", "x"],
        vec![
            "evaluate",
            "--checkpoint",
            model,
            "--data",
            bad,
            "--target",
            "y",
        ],
        vec!["predict", "--checkpoint", model, "--data", bad],
    ];
    let expected = format!(
        "error: data file {bad}: line 3: a quoted field opens here and is never closed (a missing \"?): the rest of the file would be one field"
    );
    for args in runs {
        let (code, stderr) = run_err(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim(), expected, "{args:?}");
    }
    // Quoted fields that span lines and close (the last one too) are read as before.
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "x,y,note\n1,2,\"multi\nline \"\"quoted\"\" note\"\n2,4,ok\n3,6,\"last\nmulti\"\n",
    )
    .unwrap();
    let output = burnfit()
        .args([
            "ols",
            "--val-frac",
            "0",
            "--target",
            "y",
            "--features",
            "x",
            "--data",
        ])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("on 3 training rows"),
        "{output:?}"
    );
}
