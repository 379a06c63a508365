//! Hostile-but-realistic use: special files and symlinks as destinations, closed or full
//! stdout, Adam's step counter past 2^24, unwritable destinations. Nothing is lost or destroyed.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use burnfit::Checkpoint;
use burnfit::checkpoint::Format;

use crate::common::{autograd_fixture, burnfit};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_burnfit"))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPING {test}: {why}");
}

#[test]
fn a_device_node_destination_is_written_through_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let null = dir.path().join("null");
    let made = Command::new("mknod")
        .args(["-m", "666"])
        .arg(&null)
        .args(["c", "1", "3"])
        .status();
    if !made.is_ok_and(|s| s.success()) {
        return skip("the device-node test", "mknod needs root");
    }
    burnfit()
        .args(["train", "--steps", "5", "--format", "json", "--out"])
        .arg(&null)
        .assert()
        .success();
    let kind = std::fs::symlink_metadata(&null).unwrap().file_type();
    assert!(kind.is_char_device(), "{null:?} is no longer a device node");
}

#[test]
fn a_symlinked_checkpoint_keeps_its_link_and_the_target_gets_the_model() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("store")).unwrap();
    let target = dir.path().join("store/model.json");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("latest.json");
    std::os::unix::fs::symlink("store/model.json", &link).unwrap();
    burnfit()
        .args(["train", "--steps", "5", "--out"])
        .arg(&link)
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(Checkpoint::load(&target).unwrap().step(), 5);
    // Nothing but the model was left in either directory.
    assert_eq!(
        std::fs::read_dir(dir.path().join("store")).unwrap().count(),
        1
    );
}

#[test]
fn bench_json_to_dev_stdout_prints_the_report_and_keeps_the_link() {
    let before = std::fs::symlink_metadata("/dev/stdout")
        .ok()
        .map(|m| m.file_type());
    let output = burnfit()
        .args([
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
            "--json",
            "/dev/stdout",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("\"rows\""), "{stdout}");
    let after = std::fs::symlink_metadata("/dev/stdout")
        .ok()
        .map(|m| m.file_type());
    assert_eq!(before, after);
}

/// Runs `burnfit args...`, reads `keep` lines of its stdout, closes the pipe, and waits.
fn close_stdout_after(args: &[&str], keep: usize) -> std::process::Output {
    let mut child = Command::new(binary())
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..keep {
        line.clear();
        stdout.read_line(&mut line).unwrap();
    }
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    std::process::Output {
        status,
        stdout: vec![],
        stderr: stderr.into_bytes(),
    }
}

#[test]
fn a_closed_stdout_never_costs_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let out_arg = out.to_str().unwrap();
    // 20,000 log lines are far more than a pipe buffers.
    let output = close_stdout_after(
        &[
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "20000",
            "--log-every",
            "1",
            "--out",
            out_arg,
        ],
        1,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(Checkpoint::load(&out).unwrap().step(), 20000);
}

#[test]
fn predict_and_inspect_stop_quietly_when_the_reader_goes_away() {
    let fixture = autograd_fixture();
    let fixture = fixture.to_str().unwrap();
    // One argument may hold at most 128 KiB; the output (~135 KB) is more than a pipe buffers.
    let many: Vec<String> = (0..15_000).map(|i| i.to_string()).collect();
    let many = many.join(",");
    for args in [
        vec![
            "predict",
            "--backend",
            "ndarray",
            "--checkpoint",
            fixture,
            "--x",
            &many,
        ],
        vec!["inspect", fixture],
    ] {
        let output = close_stdout_after(&args, 0);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn a_full_stdout_fails_predict_but_train_still_saves() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return skip("the /dev/full test", "no /dev/full");
    };
    let output = Command::new(binary())
        .args([
            "predict",
            "--backend",
            "ndarray",
            "--x",
            "1,2",
            "--checkpoint",
        ])
        .arg(autograd_fixture())
        .stdout(full.try_clone().unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write to stdout"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let output = Command::new(binary())
        .args(["train", "--backend", "ndarray", "--steps", "50", "--out"])
        .arg(&out)
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: stopped printing the log"),
        "{stderr}"
    );
    assert_eq!(Checkpoint::load(&out).unwrap().step(), 50);
}

/// The fixture's checkpoint with Adam's update count and the metadata's step set to `updates`.
fn checkpoint_with_updates(updates: u64) -> Checkpoint {
    let mut trained = burnfit::train(
        &burnfit::TrainingConfig {
            steps: 2,
            ..Default::default()
        },
        burnfit::Backend::open(burnfit::BackendKind::compiled()[0]).unwrap(),
        |_| {},
    )
    .unwrap()
    .checkpoint;
    trained.adam.as_mut().unwrap().updates = updates;
    let meta = trained.meta.as_mut().unwrap();
    meta.step = updates;
    meta.adam_updates = Some(updates);
    meta.config.steps = updates;
    trained
}

#[test]
fn adam_counts_exactly_past_two_to_the_24() {
    let dir = tempfile::tempdir().unwrap();
    for updates in [
        (1 << 24) - 2,
        (1 << 24) - 1,
        1 << 24,
        (1 << 24) + 1,
        (1 << 24) + 7,
        1 << 40,
    ] {
        let checkpoint = checkpoint_with_updates(updates);
        for format in [Format::Json, Format::Bpk] {
            let path = dir.path().join(format!(
                "c.{}",
                if format == Format::Json {
                    "json"
                } else {
                    "bpk"
                }
            ));
            checkpoint.save_as(&path, format).unwrap();
            let loaded = Checkpoint::load(&path).unwrap();
            assert_eq!(loaded.adam.unwrap().updates, updates, "{format}");
        }
    }
    // Resuming past 2^24 counts on exactly, and the next file reads back.
    let start = checkpoint_with_updates((1 << 24) + 1);
    let resume = dir.path().join("r.json");
    start.save_as(&resume, Format::Json).unwrap();
    let out = dir.path().join("out.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "3", "--resume"])
        .arg(&resume)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let resumed = Checkpoint::load(&out).unwrap();
    assert_eq!(resumed.adam.as_ref().unwrap().updates, (1 << 24) + 4);
    assert_eq!(resumed.step(), (1 << 24) + 4);
}

#[test]
fn adam_t_without_an_exact_count_is_read_as_written_and_disagreement_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An autograd file (no metadata) with t = 16777218: a whole number, taken as is.
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replace("[1001.0]", "[16777218.0]");
    let path = dir.path().join("big_t.json");
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        Checkpoint::load(&path).unwrap().adam.unwrap().updates,
        16_777_217
    );
    // Metadata whose exact count does not round to the file's t.
    let mut checkpoint = checkpoint_with_updates(5000);
    checkpoint.meta.as_mut().unwrap().adam_updates = Some(3000);
    let path = dir.path().join("disagree.json");
    checkpoint.save_as(&path, Format::Json).unwrap();
    let err = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("disagrees") && err.contains("disagree.json"),
        "{err}"
    );
    // A fractional t says what is expected.
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replace("[1001.0]", "[2.5]");
    std::fs::write(&path, text).unwrap();
    let err = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(err.contains("whole number from 1"), "{err}");
}

/// Copies the binary where any user can run it (the build is under root's home).
/// A command that runs burnfit as `nobody` (uid 65534) from a copy in `dir` (the build is under
/// root's home, which nobody can enter); `None` where that needs root or setpriv.
fn burnfit_as_nobody(dir: &Path) -> Option<Command> {
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_root() || !has_setpriv {
        return None;
    }
    let copy = dir.join("burnfit");
    std::fs::copy(binary(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(copy)
        .env("XDG_RUNTIME_DIR", "/tmp");
    Some(command)
}

#[test]
fn an_unwritable_destination_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(mut nobody) = burnfit_as_nobody(dir.path()) else {
        return skip("the non-root destination test", "needs root and setpriv");
    };
    let locked = dir.path().join("rootonly");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = nobody
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "300000000",
            "--out",
        ])
        .arg(locked.join("x.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        !stdout.contains("training on"),
        "trained before checking: {stdout}"
    );
    assert!(
        stderr.starts_with("error: cannot write ") && stderr.contains("Permission denied"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}

#[test]
fn a_destination_lost_during_training_gets_the_model_saved_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let rescue_dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let out = gone.join("x.json");
    let out_arg = out.to_str().unwrap();
    let child = crate::common::start_training(
        &[
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "100000000",
            "--log-every",
            "500",
            "--out",
            out_arg,
        ],
        &[("TMPDIR", rescue_dir.path())],
    );
    std::fs::remove_dir_all(&gone).unwrap();
    let (code, stderr) = crate::common::signal_and_wait(child, "INT");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let rescued: Vec<PathBuf> = std::fs::read_dir(rescue_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(rescued.len(), 1, "{rescued:?}");
    assert!(
        stderr.contains("does not exist")
            && stderr.contains(&format!(
                "saved the checkpoint to {} instead",
                rescued[0].display()
            )),
        "{stderr}"
    );
    assert!(Checkpoint::load(&rescued[0]).unwrap().step() >= 500);
}

#[test]
fn sigterm_and_sighup_save_like_ctrl_c() {
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.json");
        let out_arg = out.to_str().unwrap();
        let child = crate::common::start_training(
            &[
                "train",
                "--backend",
                "ndarray",
                "--steps",
                "100000000",
                "--log-every",
                "500",
                "--out",
                out_arg,
            ],
            &[],
        );
        let (code_seen, stderr) = crate::common::signal_and_wait(child, signal);
        assert_eq!(code_seen, Some(code), "SIG{signal}: {stderr}");
        let saved = Checkpoint::load(&out).unwrap();
        assert!(
            stderr.contains(&format!(
                "interrupted at step {} by SIG{signal}",
                saved.step()
            )),
            "{stderr}"
        );
        // Only the checkpoint is left: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

/// Runs burnfit and returns (exit code, stderr).
fn run_err(args: &[&str]) -> (Option<i32>, String) {
    let output = burnfit()
        .args(args)
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_checkpoint_is_read_by_its_content_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.json");
    std::fs::copy(autograd_fixture(), &json).unwrap();
    // Burnpack bytes under a .json name: written, then read back as burnpack.
    burnfit()
        .arg("convert")
        .arg(&json)
        .arg(&json)
        .args(["--format", "bpk"])
        .assert()
        .success();
    assert_eq!(&std::fs::read(&json).unwrap()[..4], b"NRUB");
    let loaded = Checkpoint::load(&json).unwrap();
    assert_eq!(
        loaded.params,
        Checkpoint::load(&autograd_fixture()).unwrap().params
    );
    let stdout = burnfit().arg("inspect").arg(&json).output().unwrap().stdout;
    assert!(String::from_utf8_lossy(&stdout).contains("format: burnpack"));
    // SafeTensors bytes with no extension at all.
    let bare = dir.path().join("model");
    loaded
        .without_optimizer()
        .save_as(&bare, Format::Safetensors)
        .unwrap();
    assert!(Checkpoint::load(&bare).is_ok());
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
fn a_write_protected_checkpoint_is_kept_unless_forced_and_modes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keep.json");
    std::fs::copy(autograd_fixture(), &out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&out).unwrap();
    let output = burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("write-protected") && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "trained before refusing");
    assert_eq!(std::fs::read(&out).unwrap(), before);
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "5",
            "--force",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(Checkpoint::load(&out).unwrap().step(), 5);
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o444);
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

/// Peak resident memory of a burnfit run, in KiB, from GNU time (None where it is missing).
fn peak_kib(args: &[&str]) -> Option<u64> {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(binary())
        .args(args)
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn a_huge_metadata_block_costs_about_its_own_size_in_memory() {
    let Some(baseline) = peak_kib(&["--version"]) else {
        return skip("the memory test", "no /usr/bin/time");
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    // 28 MB of metadata: two million short strings (a JSON tree of it took 280 MB).
    let junk = vec!["\"xxxxxxxxxx\""; 2_000_000].join(",");
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replacen(
            '{',
            &format!("{{\"burnfit\":{{\"format_version\":1,\"junk\":[{junk}]}},"),
            1,
        );
    std::fs::write(&path, &text).unwrap();
    let peak = peak_kib(&["inspect", path.to_str().unwrap()]).unwrap();
    let file_kib = text.len() as u64 / 1024;
    assert!(
        peak - baseline.min(peak) <= 3 * file_kib,
        "peak {peak} KiB for a {file_kib} KiB file (baseline {baseline} KiB)"
    );
    let (code, stderr) = run_err(&["inspect", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn convert_names_what_it_leaves_out_and_metadata_keeps_short_floats() {
    let dir = tempfile::tempdir().unwrap();
    // One more variable, in a namespace of its own, as array 8.
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replacen(
            "],\"name_to_id\":{",
            ",{\"v\":1,\"dim\":[1],\"data\":[5.0]}],\"name_to_id\":{\"other\\u0001extra\":8,",
            1,
        );
    let input = dir.path().join("in.json");
    std::fs::write(&input, text).unwrap();
    let output = burnfit()
        .arg("convert")
        .arg(&input)
        .arg(dir.path().join("out.bpk"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("note: left out") && stdout.contains("other/extra"),
        "{stdout}"
    );

    let out = dir.path().join("m.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "2", "--out"])
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("\"lr\":0.01,"), "{text}");
}

#[test]
fn a_failing_periodic_save_rescues_and_training_goes_on() {
    let rescue_dir = tempfile::tempdir().unwrap();
    let output = burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--engine",
            "fused",
            "--steps",
            "20",
            "--save-every",
            "5",
            "--format",
            "json",
            "--out",
            "/dev/full",
        ])
        .env("TMPDIR", rescue_dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let warnings = stderr
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.ends_with("training goes on"))
        .count();
    assert_eq!(warnings, 3, "{stderr}"); // steps 5, 10, 15; the final save is the error
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .contains("saved the checkpoint to"),
        "{stderr}"
    );
    let rescued: Vec<PathBuf> = std::fs::read_dir(rescue_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(rescued.len(), 1, "{rescued:?}");
    assert_eq!(Checkpoint::load(&rescued[0]).unwrap().step(), 20);
}

#[test]
fn a_signal_ignored_by_nohup_stays_ignored() {
    if Command::new("nohup").arg("true").output().is_err() {
        return skip("the nohup test", "no nohup");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.json");
    let mut nohup = Command::new("nohup");
    crate::common::with_default_signals(&mut nohup); // nohup then ignores SIGHUP itself
    nohup
        .arg(binary())
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "100000000",
            "--log-every",
            "500",
            "--out",
        ])
        .arg(&out)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = crate::common::spawn_until_training(&mut nohup);
    let pid = child.id().to_string();
    let kill = |signal: &str| {
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
    };
    kill("-HUP");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped a nohup'd run"
    );
    kill("-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(Checkpoint::load(&out).is_ok());
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
    assert!(output.status.success(), "{output:?}");
    let skipped = stdout
        .lines()
        .filter(|l| l.contains("skipped: --batch 2147483648 needs"))
        .count();
    let expected = if cfg!(feature = "autograd-ref") { 2 } else { 1 };
    assert_eq!(skipped, expected, "{stdout}");
}

#[test]
fn dev_stdout_redirected_to_a_file_is_appended_to_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("train.log");
    std::fs::write(&log, "HEAD\n").unwrap();
    let append = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let status = Command::new(binary())
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "3",
            "--format",
            "json",
            "--out",
            "/dev/stdout",
        ])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(append)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("HEAD\ntraining on "), "{text}");
    assert!(text.contains("{\"array_list\":"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("saved /dev/stdout (autograd results.json)"),
        "{text}"
    );
}

#[test]
fn another_users_file_is_not_replaced_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let Some(mut nobody) = burnfit_as_nobody(dir.path()) else {
        return skip("the other-user test", "needs root and setpriv");
    };
    let theirs = dir.path().join("theirs.json");
    std::fs::copy(autograd_fixture(), &theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&theirs).unwrap();
    let output = nobody
        .args(["train", "--backend", "ndarray", "--steps", "3", "--out"])
        .arg(&theirs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not writable by this user") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&theirs).unwrap(), before);
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
