//! Where burnfit writes, when the destination is not a plain file in a writable directory:
//! device nodes, symlinks, `/dev/stdout`, write-protected files, another user's file, a directory
//! that cannot be written or vanishes during the run. Nothing is lost or destroyed.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use burnfit::Checkpoint;

use crate::common::{autograd_fixture, binary, burnfit, is_root, skip};

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
fn dev_stdout_redirected_to_a_file_is_appended_to_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("train.log");
    std::fs::write(&log, "HEAD\n").unwrap();
    let append = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let output = Command::new(binary())
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
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success());
    // The log lines went to stderr: what follows HEAD is the checkpoint alone, and it loads.
    let text = std::fs::read_to_string(&log).unwrap();
    let checkpoint = text
        .strip_prefix("HEAD\n")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(checkpoint.starts_with("{\"array_list\":"), "{text}");
    let copy = dir.path().join("copy.json");
    std::fs::write(&copy, checkpoint).unwrap();
    assert_eq!(Checkpoint::load(&copy).unwrap().step(), 3);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("training on "), "{stderr}");
    assert!(
        stderr
            .trim_end()
            .ends_with("saved /dev/stdout (autograd results.json)"),
        "{stderr}"
    );
    // --json would write its report into the same stream: refused.
    let append = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let output = Command::new(binary())
        .args([
            "train",
            "--steps",
            "3",
            "--json",
            "--format",
            "json",
            "--out",
            "/dev/stdout",
        ])
        .stdout(append)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "error: --json writes the report to stdout, where --out /dev/stdout writes the checkpoint: save it to a file"
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
