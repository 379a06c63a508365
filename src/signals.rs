//! SIGINT (Ctrl-C), SIGTERM (`timeout`, `docker stop`, systemd, Slurm, Kubernetes) and SIGHUP
//! (a closed terminal) all stop training cleanly: the first one lets the current step (or
//! chunk) finish, the checkpoint is saved, and the process exits with 128 + the signal's number
//! (130, 143, 129).
//!
//! A signal the process inherited as ignored (`nohup` ignores SIGHUP, a non-interactive shell's
//! background jobs ignore SIGINT) stays ignored.
//!
//! A second signal kills the process at once — unless a checkpoint is being written, which takes
//! milliseconds: then it is held until the write is complete, so no file is ever left half
//! written and no temporary file is left behind. A repeat that comes within
//! [`REPEAT_WINDOW_NS`] of the first signal is the same request delivered twice, not a second
//! one: GNU `timeout` signals the process and then its process group, and a supervisor may
//! signal every process of a job; such a pair must still save.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

/// The first stop signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// When the first stop signal came (`CLOCK_MONOTONIC`, ns, at least 1), 0 before.
static FIRST_AT_NS: AtomicU64 = AtomicU64::new(0);
/// Stop signals taken so far (a repeat within the window is not taken).
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// Whether a checkpoint is being written right now.
static SAVING: AtomicBool = AtomicBool::new(false);
/// A second signal that arrived during a save: the process exits with it once the save is done.
static PENDING_EXIT: AtomicI32 = AtomicI32::new(0);

/// The signals that stop training.
pub const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Installs the handlers (once per process; later calls do nothing).
pub fn install() -> std::io::Result<()> {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    for signal in STOP_SIGNALS {
        if inherited_as_ignored(signal) {
            // `nohup` ignores SIGHUP, a shell's background job SIGINT: keep it that way.
            continue;
        }
        // SAFETY: the handler only touches atomics and calls `_exit`, both async-signal-safe.
        unsafe {
            signal_hook::low_level::register(signal, move || on_stop_signal(signal))?;
        }
    }
    Ok(())
}

/// A repeat of a stop signal this soon after the first is the same request delivered twice.
pub const REPEAT_WINDOW_NS: u64 = 500_000_000;

/// The handler: async-signal-safe (atomics, `clock_gettime`, `_exit`).
fn on_stop_signal(signal: i32) {
    let now = monotonic_ns().max(1);
    match FIRST_AT_NS.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {
            RECEIVED.store(signal, Ordering::SeqCst);
            TAKEN.fetch_add(1, Ordering::SeqCst);
        }
        Err(first_at) if now.saturating_sub(first_at) < REPEAT_WINDOW_NS => {}
        Err(_) => {
            TAKEN.fetch_add(1, Ordering::SeqCst);
            if SAVING.load(Ordering::SeqCst) {
                PENDING_EXIT.store(signal, Ordering::SeqCst);
            } else {
                signal_hook::low_level::exit(128 + signal);
            }
        }
    }
}

fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime writes the timespec it is given; it is async-signal-safe.
    unsafe {
        let mut now: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
        (now.tv_sec as u64).saturating_mul(1_000_000_000) + now.tv_nsec as u64
    }
}

/// Stop signals taken so far: a wait that must end on a signal compares it with its value at
/// the start.
pub fn taken() -> u32 {
    TAKEN.load(Ordering::SeqCst)
}

/// Whether `signal` is ignored in this process (set so by whoever started it).
fn inherited_as_ignored(signal: i32) -> bool {
    // SAFETY: sigaction with a null new action only reads the current disposition into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// The stop signal received so far, if any.
pub fn received() -> Option<i32> {
    let signal = RECEIVED.load(Ordering::SeqCst);
    #[cfg(test)]
    let signal = if signal == 0 {
        TEST_RECEIVED.with(std::cell::Cell::get)
    } else {
        signal
    };
    match signal {
        0 => None,
        signal => Some(signal),
    }
}

#[cfg(test)]
thread_local! {
    /// A signal a unit test pretends this thread has seen (the process-wide flag would stop
    /// every other test running beside it).
    static TEST_RECEIVED: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// Makes [`received`] report `signal` on this thread only (0: none again). Tests only.
#[cfg(test)]
pub fn pretend_received_here(signal: i32) {
    TEST_RECEIVED.with(|s| s.set(signal));
}

/// Runs `save` (a checkpoint's temporary file written, flushed and renamed: milliseconds, never
/// a blocking write to a FIFO or device) with second signals held until it returns; one that
/// came meanwhile then ends the process.
pub fn while_saving<T>(save: impl FnOnce() -> T) -> T {
    SAVING.store(true, Ordering::SeqCst);
    let result = save();
    SAVING.store(false, Ordering::SeqCst);
    let pending = PENDING_EXIT.load(Ordering::SeqCst);
    if pending != 0 {
        signal_hook::low_level::exit(128 + pending);
    }
    result
}

/// `Err` when a stop signal has come: what a pass over the data file `path` before training
/// checks between its blocks, so that Ctrl-C stops a long read (and a cache build removes its
/// temporary file) instead of waiting for the first training step. Always `Ok` in a process
/// that did not [`install`] the handlers (the signal's default action applies there).
pub fn stop_reading(path: &std::path::Path) -> crate::error::Result<()> {
    match received() {
        None => Ok(()),
        Some(signal) => Err(crate::error::Error::ReadInterrupted {
            path: path.to_path_buf(),
            signal,
        }),
    }
}

/// `Err` when a stop signal has come before training began (see [`stop_reading`]).
pub fn stop_before_training() -> crate::error::Result<()> {
    match received() {
        None => Ok(()),
        Some(signal) => Err(crate::error::Error::InterruptedBeforeTraining { signal }),
    }
}
