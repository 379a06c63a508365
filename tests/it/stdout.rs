//! A closed or full stdout: training still saves its checkpoint; commands whose output is the
//! result say so, except for a reader that went away.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use burnfit::Checkpoint;

use crate::common::{autograd_fixture, binary, skip};

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
