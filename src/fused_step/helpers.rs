//! The threads that help the fused CPU loop: started on first need, kept for the life of the
//! process, parked (using no CPU) between chunks.
//!
//! Why not a thread per chunk: on this 2-core VM a new thread first runs after 75 µs to 4 ms (a
//! scheduler tick: it is queued on the busy core of its parent), while waking a parked one
//! takes 5–40 µs; with a chunk at every log step, starting threads per chunk cost a third of
//! the speed-up at batch 65,536. A job that a helper picks up late must cope with that: the
//! fused loop's jobs return at once when their chunk is over.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;

/// Work for the helpers: they run it until it returns.
pub type Job = Arc<dyn Fn() + Send + Sync>;

/// One helper thread and the job it is to run.
struct Helper {
    thread: Thread,
    job: Arc<Mutex<Option<Job>>>,
}

/// A set of helper threads.
pub struct Helpers {
    threads: Mutex<Vec<Arc<Helper>>>,
}

/// The process's helpers, which the fused loop uses.
pub static HELPERS: Helpers = Helpers::new();

impl Helpers {
    /// No threads yet: they start on first use.
    pub const fn new() -> Self {
        Self {
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Hands `job` to `count` helper threads (starting those that do not exist yet) and returns
    /// at once, without waiting for them to start it. Returns how many helpers were given the
    /// job: fewer than `count` when the system refuses more threads. A helper given another job
    /// before it started this one runs only the newer one (two runs sharing the helpers slow
    /// each other down, nothing else).
    pub fn run(&self, count: usize, job: &Job) -> usize {
        let mut helpers = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        while helpers.len() < count {
            match start_helper(helpers.len()) {
                Some(helper) => helpers.push(helper),
                None => break,
            }
        }
        // Idle helpers first, so that two runs in one process share the helpers between them
        // when there are enough (a busy helper given a new job drops its old one).
        let idle = |helper: &&Arc<Helper>| {
            helper
                .job
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none()
        };
        let (free, busy): (Vec<_>, Vec<_>) = helpers.iter().partition(idle);
        for helper in free.into_iter().chain(busy).take(count) {
            *helper.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(job));
            helper.thread.unpark();
        }
        helpers.len().min(count)
    }
}

impl Default for Helpers {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts helper number `index`: it runs its job, then parks until it is given another.
/// Returns at once: the thread may first run milliseconds later (a job given to it meanwhile
/// waits in its slot, and unparking a thread that has not started yet is not lost).
fn start_helper(index: usize) -> Option<Arc<Helper>> {
    let job = Arc::new(Mutex::new(None::<Job>));
    let slot = Arc::clone(&job);
    let handle = std::thread::Builder::new()
        .name(format!("burnfit-fused-{index}"))
        .spawn(move || {
            loop {
                let job = slot.lock().unwrap_or_else(PoisonError::into_inner).clone();
                match job {
                    Some(job) => {
                        // A job that panics (a bug: the message is on stderr) must not take the
                        // helper with it. The line's fused loop computes what a helper leaves
                        // undone; the dense step panics in its caller (`dense::team`).
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job()));
                        // Done with it, unless a newer job has replaced it meanwhile.
                        let mut current = slot.lock().unwrap_or_else(PoisonError::into_inner);
                        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &job)) {
                            *current = None;
                        }
                    }
                    // Parking may also return for no reason: the loop looks again.
                    None => std::thread::park(),
                }
            }
        })
        .ok()?;
    Some(Arc::new(Helper {
        thread: handle.thread().clone(),
        job,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    fn wait_for(what: impl Fn() -> bool) {
        let start = Instant::now();
        while !what() {
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_job_that_panics_leaves_its_helper_working() {
        let helpers = Helpers::new();
        let panicking: Job = Arc::new(|| panic!("a job's bug (this panic is expected)"));
        assert_eq!(helpers.run(1, &panicking), 1);
        wait_for(|| Arc::strong_count(&panicking) == 1);
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let job: Job = Arc::new(move || {
            counter.fetch_add(1, SeqCst);
        });
        assert_eq!(helpers.run(1, &job), 1);
        wait_for(|| runs.load(SeqCst) == 1);
    }

    #[test]
    fn helpers_run_each_job_they_are_given_and_are_reused() {
        // Its own helpers: the tests running beside it share the process's.
        let helpers = Helpers::new();
        let runs = Arc::new(AtomicUsize::new(0));
        for round in 1..=5 {
            let counter = Arc::clone(&runs);
            let job: Job = Arc::new(move || {
                counter.fetch_add(1, SeqCst);
            });
            assert_eq!(helpers.run(3, &job), 3);
            wait_for(|| runs.load(SeqCst) >= 3 * round);
            // Each helper ran it once and then let go of it.
            wait_for(|| Arc::strong_count(&job) == 1);
            assert_eq!(runs.load(SeqCst), 3 * round);
        }
    }
}
