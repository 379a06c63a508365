//! Helpers shared by the integration tests.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use burnfit::{Backend, BackendKind, Checkpoint};

/// Set to 1 (CI does) to make a missing wgpu adapter a failure instead of a skip.
pub const REQUIRE_WGPU: &str = "BURNFIT_REQUIRE_WGPU";

/// The autograd crate's own results.json, written by the original program.
pub fn autograd_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/autograd_results.json")
}

/// Training runs share the backends' process-wide RNG state and the wgpu device: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every compiled-in backend that can run here. wgpu without an adapter is skipped, loudly, unless
/// BURNFIT_REQUIRE_WGPU=1, which makes it a failure.
pub fn backends() -> Vec<Backend> {
    BackendKind::compiled()
        .into_iter()
        .filter_map(|kind| match Backend::open(kind) {
            Ok(backend) => Some(backend),
            Err(e) if kind == BackendKind::Wgpu && !wgpu_required() => {
                note_skip(&e.to_string());
                None
            }
            Err(e) => panic!("backend {kind} is compiled in but cannot open: {e}"),
        })
        .collect()
}

/// Whether the wgpu backend is compiled in and has an adapter (skips are reported once).
pub fn wgpu_available() -> bool {
    backends().iter().any(|b| b.kind == BackendKind::Wgpu)
}

fn wgpu_required() -> bool {
    std::env::var(REQUIRE_WGPU).is_ok_and(|v| v == "1")
}

fn note_skip(why: &str) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Written past the test harness's output capture so that it shows in every run.
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPING the wgpu tests: {why}\n(set {REQUIRE_WGPU}=1 to make this a failure)\n"
        );
    });
}

/// The burnfit binary of this build.
pub fn burnfit() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("burnfit").expect("binary is built");
    cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// Starts `burnfit args...` with stdout and stderr piped and `envs` set, and returns it once it
/// has printed its first `step` line (so that training is under way).
pub fn start_training(args: &[&str], envs: &[(&str, &std::path::Path)]) -> std::process::Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_burnfit"));
    with_default_signals(&mut command);
    command
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    spawn_until_training(&mut command)
}

/// Spawns `command` (a burnfit `train`, stdout piped) and returns it once it has printed its
/// first `step` line; the rest of its stdout is drained in the background.
pub fn spawn_until_training(command: &mut std::process::Command) -> std::process::Child {
    use std::io::BufRead;
    let mut child = command.spawn().expect("burnfit starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    while !line.starts_with("step ") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no step line before exit"
        );
    }
    // Keep reading in the background so that the process never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    child
}

/// Sends `signal` ("INT", "TERM", "HUP") to `child`, waits for it, and returns its exit code and
/// stderr.
pub fn signal_and_wait(mut child: std::process::Child, signal: &str) -> (Option<i32>, String) {
    use std::io::Read;
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

/// Starts `command` with SIGINT, SIGTERM and SIGHUP at their default disposition, whatever this
/// test process inherited: burnfit keeps a signal ignored when it was started that way (`nohup`,
/// a shell's background job), which would make a signal test wait forever.
pub fn with_default_signals(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only `signal`, which is async-signal-safe, is called.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

/// The burnfit binary's path.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_burnfit"))
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPING {test}: {why}");
}

/// The fixture's checkpoint with Adam's update count and the metadata's step set to `updates`.
pub fn checkpoint_with_updates(updates: u64) -> Checkpoint {
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

/// Runs burnfit and returns (exit code, stderr).
pub fn run_err(args: &[&str]) -> (Option<i32>, String) {
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

/// `steps` steps of `engine` on `backend` from `start` (or fresh), through the library; the
/// final checkpoint.
pub fn run_engine(
    engine: burnfit::EngineKind,
    config: &burnfit::TrainingConfig,
    backend: &Backend,
    steps: u64,
    start: Option<&Checkpoint>,
) -> Checkpoint {
    let mut trainer = burnfit::open_engine(engine, config.clone(), backend.clone(), start).unwrap();
    trainer.run(steps, &mut ()).unwrap();
    trainer.checkpoint().unwrap()
}

/// The last loss a checkpoint's run read back.
pub fn final_loss(c: &Checkpoint) -> f32 {
    c.meta
        .as_ref()
        .and_then(|m| m.final_loss)
        .expect("a final loss")
}

/// Parameters and the optimizer's state, as bits (to compare runs bit for bit).
pub fn state_bits(c: &Checkpoint) -> Vec<u32> {
    let adam = c.adam.as_ref().expect("optimizer state");
    c.params
        .iter()
        .flat_map(|p| p.data.clone())
        .chain(
            adam.moments
                .iter()
                .flat_map(|(m, v)| [m.data.clone(), v.data.clone()].concat()),
        )
        .map(f32::to_bits)
        .collect()
}

/// A stream of uniform values in [0, 1) from `seed` (xorshift64): test data that is the same on
/// every machine.
pub fn uniform_stream(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}
