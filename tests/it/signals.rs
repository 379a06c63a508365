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

#[test]
fn ctrl_c_while_the_data_is_read_stops_at_once_and_leaves_no_cache_behind() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("big.csv");
    // ~60 MB: its survey and parse take a few hundred ms here, far longer than a signal's way.
    let mut file = std::io::BufWriter::new(std::fs::File::create(&data).unwrap());
    writeln!(file, "a,b,y").unwrap();
    for i in 0..3_000_000u32 {
        writeln!(file, "{i}.25,{}.5,{}", i % 977, i % 13).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let out = dir.path().join("m.json");
    let mut command = Command::new(binary());
    crate::common::with_default_signals(&mut command);
    command
        .args([
            "train",
            "--backend",
            "ndarray",
            "--target",
            "y",
            "--out-of-core",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("out of core: reading "), "{first}");
    let (code, stderr) = crate::common::signal_and_wait(child, "INT");
    assert_eq!(code, Some(130), "{stderr}");
    // The read takes a few hundred ms here, the signal a few: it lands in the read. (On a
    // machine so loaded that the read ended first, it lands before training: also nothing
    // saved, and a finished cache.)
    let reading = format!(
        "error: interrupted by SIGINT while reading {}; nothing was trained or saved",
        data.display()
    );
    let before = "error: interrupted by SIGINT before training; nothing was trained or saved";
    assert!(
        stderr.trim() == reading || stderr.trim() == before,
        "{stderr}"
    );
    assert!(!out.exists());
    let left: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    if stderr.trim() == reading {
        assert!(left.is_empty(), "the cache directory holds {left:?}");
    } else {
        assert!(
            left.iter().all(|name| name.ends_with(".burnfit-cache")),
            "{left:?}"
        );
    }
}

#[test]
fn a_signal_delivered_twice_at_once_still_saves() {
    // GNU `timeout` signals the process and then its process group: two SIGTERMs microseconds
    // apart are one request, not "stop now without saving".
    for attempt in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.json");
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
                out.to_str().unwrap(),
            ],
            &[],
        );
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill() on our own child's pid.
        unsafe {
            assert_eq!(libc::kill(pid, libc::SIGTERM), 0);
        }
        // SAFETY: as above (the child may already be a zombie: kill still succeeds).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(143),
            "attempt {attempt}: {stderr}"
        );
        let saved = Checkpoint::load(&out).unwrap();
        assert!(
            stderr.contains(&format!("interrupted at step {} by SIGTERM", saved.step())),
            "{stderr}"
        );
        // Only the checkpoint is left: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn a_signal_ends_the_wait_for_a_fifo_reader_and_the_checkpoint_is_rescued() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("f.json");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        return skip("the FIFO test", "no mkfifo");
    }
    let mut command = Command::new(binary());
    crate::common::with_default_signals(&mut command);
    let mut child = command
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "3",
            "-q",
            "--out",
        ])
        .arg(&fifo)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("TMPDIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Training 3 steps takes milliseconds; the run then waits for a reader of the FIFO.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the run did not wait");
    let (code, stderr) = crate::common::signal_and_wait(child, "TERM");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("interrupted while waiting for a reader of this FIFO; nothing was written to it; saved the checkpoint to "),
        "{stderr}"
    );
    let rescued: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("burnfit-rescued-"))
        .collect();
    assert_eq!(rescued.len(), 1, "{stderr}");
    assert_eq!(Checkpoint::load(&rescued[0]).unwrap().step(), 3);
}
