//! Ctrl-C, SIGTERM and SIGHUP: the run stops after its step and saves; a signal ignored by
//! `nohup` stays ignored.

use std::process::{Command, Stdio};

use burnfit::Checkpoint;

use crate::common::{binary, skip};

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
