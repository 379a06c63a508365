//! Threads for a large batch: the step's groups are shared out among the calling thread and
//! the process's parked helpers ([`crate::fused_step::helpers`]), each group written to its own
//! slot; the caller adds the slots up in group order, so the sum does not depend on who took
//! which group.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use super::{DenseLayout, GROUP_ROWS, Scratch, StepInputs};
use crate::fused_step::helpers::{HELPERS, Job};

/// Below this much work per step (rows × parameters), one thread: waking a helper costs 5–40
/// µs on this kind of machine, more than it saves.
const MIN_WORK_FOR_THREADS: usize = 1 << 20;

/// How many threads a step of `rows` rows uses: one per group, at most one per core.
pub fn threads_for(rows: usize, layout: &DenseLayout) -> usize {
    if rows * layout.len() < MIN_WORK_FOR_THREADS {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(rows.div_ceil(GROUP_ROWS))
}

/// One step's work, shared by the threads. The pointers are read only by a thread that has
/// claimed a group that is not done yet, and the caller waits for every group before it
/// returns, so they are valid whenever they are read; a helper that comes late finds nothing
/// to claim.
struct Shared {
    next: AtomicUsize,
    done: AtomicUsize,
    /// A group's computation panicked (a bug): the caller panics too, rather than wait.
    failed: std::sync::atomic::AtomicBool,
    groups: usize,
    inputs: *const StepInputs<'static>,
    grads: *mut Vec<f32>,
    losses: *mut f64,
}

// SAFETY: see `Shared`: the pointed-to data outlives every access, and each slot is written by
// the one thread that claimed its group.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// Takes groups until none is left; `own` is the caller's buffers (a helper makes its own
    /// when it first gets a group).
    fn work(&self, mut own: Option<&mut Scratch>) {
        let mut made = None;
        loop {
            let group = self.next.fetch_add(1, SeqCst);
            if group >= self.groups {
                return;
            }
            // Counts the group done even if it panics, so the caller never waits for it forever.
            let finish = Finish(self, false);
            // SAFETY: group `group` is claimed by this thread alone and not done, so the caller
            // is still waiting and everything pointed to is alive (see `Shared`).
            unsafe {
                let inputs = &*self.inputs;
                let scratch = match own.as_deref_mut() {
                    Some(scratch) => scratch,
                    None => made.get_or_insert_with(|| Scratch::new(inputs.layout)),
                };
                let grads = &mut *self.grads.add(group);
                *self.losses.add(group) = inputs.group(group, grads, scratch);
            }
            finish.completed();
        }
    }
}

/// A claimed group's end: counted done when dropped, and marked failed when dropped by a
/// panic.
struct Finish<'a>(&'a Shared, bool);

impl Finish<'_> {
    fn completed(mut self) {
        self.1 = true;
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.failed.store(true, SeqCst);
        }
        self.0.done.fetch_add(1, SeqCst);
    }
}

/// Waits, however the caller leaves [`run_groups`] (a panic included), until no thread can still
/// touch the step's buffers: no group can be claimed any more, and every claimed one is done.
struct Join<'a>(&'a Shared);

impl Drop for Join<'_> {
    fn drop(&mut self) {
        let groups = self.0.groups;
        let claimed = self.0.next.fetch_add(groups, SeqCst).min(groups);
        let mut spins = 0u32;
        while self.0.done.load(SeqCst) < claimed {
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Every group of the step into `grads` (one slot per group), on up to `threads` threads;
/// returns the squared errors summed in group order.
pub fn run_groups(
    inputs: &StepInputs,
    grads: &mut [Vec<f32>],
    scratch: &mut Scratch,
    threads: usize,
) -> f64 {
    let groups = grads.len();
    let mut losses = vec![0.0f64; groups];
    let shared = Arc::new(Shared {
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        failed: std::sync::atomic::AtomicBool::new(false),
        groups,
        inputs: (inputs as *const StepInputs).cast(),
        grads: grads.as_mut_ptr(),
        losses: losses.as_mut_ptr(),
    });
    let for_helpers = Arc::clone(&shared);
    let job: Job = Arc::new(move || for_helpers.work(None));
    HELPERS.run(threads - 1, &job);
    {
        let _join = Join(&shared);
        shared.work(Some(scratch));
    }
    assert!(
        !shared.failed.load(SeqCst),
        "a helper thread panicked in the fused step (a bug; its message is above)"
    );
    losses.iter().sum()
}
