//! The fused engine on the CPU backends: a whole training step — draw the batch, forward, MSE,
//! both gradients, Adam — as one pass over the batch that never materialises it.
//!
//! The batch is cut into blocks of [`BLOCK_PAIRS`] Philox pairs; inside a block, [`LANES`]
//! pairs are computed side by side with one accumulator each (so the compiler can vectorise
//! without reordering a float sum), the lanes are added in a fixed order, and the blocks' sums
//! are added in f64 in block order. The result does not depend on how many threads run the
//! blocks: runs are bit-identical everywhere the same binary runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use super::chunk::{ChunkResult, ChunkSpec, FusedState};
use super::helpers::{HELPERS, Job};
use crate::rng::philox::LineStream;

/// Philox pairs (two samples each) computed side by side, one accumulator each: the order of
/// the float sums, the same on every instruction set.
pub const LANES: usize = 16;

/// Pairs per block: the unit of work a thread takes (~3.5 µs with AVX-512 here). Measured on
/// this 2-core machine: 512 was slower at every batch from 2,048 up (per-block overhead), 2,048
/// left batch 4,096 on one core (7.0 µs per step against 4.0 with 1,024).
pub const BLOCK_PAIRS: u32 = 1024;

/// Batches of at least this many samples (two whole blocks) are spread over the CPU's cores:
/// handing a step to spinning helpers costs well under a microsecond, less than half a block.
pub const PARALLEL_MIN_BATCH: usize = 4 * BLOCK_PAIRS as usize;

/// ... when the chunk holds at least this many blocks of work in all (steps × blocks): waking
/// the helpers and their first cache misses cost up to tens of µs here, so a chunk of one step
/// at a small batch (the first step, `--log-every 1`) runs on one core.
pub const PARALLEL_MIN_CHUNK_BLOCKS: u64 = 24;

/// Runs `spec.steps` steps from `state`, stopping before the first step whose loss is not
/// finite. Large batches run on every core: the process's helper threads (see `helpers`) are
/// woken for the chunk and spin between its steps (sleeping and waking per step would cost
/// ~35 µs here, a third of a step at batch 65,536); see `Team` for how a step is shared.
pub fn run_chunk(state: FusedState, spec: &ChunkSpec) -> ChunkResult {
    let blocks = block_count(spec.batch);
    let cores = cores();
    let worth_threads = spec.batch >= PARALLEL_MIN_BATCH
        && spec.steps.saturating_mul(blocks as u64) >= PARALLEL_MIN_CHUNK_BLOCKS
        && spec.steps < u64::from(u32::MAX);
    let threads = if worth_threads { cores.min(blocks) } else { 1 };
    if threads == 1 {
        let sums = |step, w, b| batch_sums(&spec.stream, step, spec.batch, w, b);
        return run_steps(state, spec, sums);
    }
    run_chunk_threaded(state, spec, threads)
}

/// The cores this process may use, looked up once: on Linux the standard library reads the
/// cgroup's CPU quota from files each time, ~25 µs, which a run of one-step chunks
/// (`--log-every 1`) paid at every step.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The step loop, with the batch sums of (step, w, b) from `sums`.
fn run_steps(
    mut state: FusedState,
    spec: &ChunkSpec,
    mut sums: impl FnMut(u64, f32, f32) -> [f32; 3],
) -> ChunkResult {
    let mut last_loss = f32::NAN;
    let n = spec.batch as f32;
    for k in 0..spec.steps {
        let step = spec.first_step + k;
        let [sum_ex, sum_e, sum_ee] = sums(step, state.w, state.b);
        let loss = sum_ee / n;
        if !loss.is_finite() {
            return ChunkResult {
                state,
                steps_run: k,
                last_loss,
                diverged: Some((step, loss)),
            };
        }
        let scale = 2.0 / n;
        let t = spec.updates_before + k + 1;
        state = state.adam_step(&spec.adam, [scale * sum_ex, scale * sum_e], t);
        last_loss = loss;
    }
    ChunkResult {
        state,
        steps_run: spec.steps,
        last_loss,
        diverged: None,
    }
}

fn block_count(batch: usize) -> usize {
    (batch.div_ceil(2) as u32).div_ceil(BLOCK_PAIRS) as usize
}

/// The versions of the per-sample loop, one per instruction set, all bit-identical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstructionSet {
    /// x86-64 with AVX-512F: 16 lanes per instruction, 32 vector registers.
    Avx512,
    /// x86-64 with AVX2: 8 lanes per instruction.
    Avx2,
    /// Plain Rust, vectorised by the compiler for the build's target.
    Portable,
}

impl InstructionSet {
    /// Every version, fastest first.
    pub const ALL: [Self; 3] = [Self::Avx512, Self::Avx2, Self::Portable];

    /// Whether this CPU can run the version.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => std::is_x86_feature_detected!("avx2"),
            Self::Portable => true,
            #[allow(unreachable_patterns)] // reachable on other architectures
            _ => false,
        }
    }

    /// The fastest version this CPU can run: what the engine uses.
    pub fn best() -> Self {
        Self::ALL
            .into_iter()
            .find(|isa| isa.is_available())
            .unwrap_or(Self::Portable)
    }
}

impl std::fmt::Display for InstructionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Avx512 => "AVX-512",
            Self::Avx2 => "AVX2",
            Self::Portable => "portable",
        })
    }
}

/// The sums of one block of the batch of `step`.
fn block_at(
    isa: InstructionSet,
    stream: &LineStream,
    step: u64,
    batch: usize,
    wb: (f32, f32),
    block: usize,
) -> [f64; 3] {
    let pairs = batch.div_ceil(2) as u32;
    let start = block as u32 * BLOCK_PAIRS;
    let end = (start + BLOCK_PAIRS).min(pairs);
    block_sums(isa, stream, step, batch, wb, start, end)
}

/// (Σ e·x, Σ e, Σ e²) over the batch of `step`, e = w·x + b − y: the blocks' sums added in f64
/// in block order, rounded once to f32.
pub fn batch_sums(stream: &LineStream, step: u64, batch: usize, w: f32, b: f32) -> [f32; 3] {
    batch_sums_on(InstructionSet::best(), stream, step, batch, w, b)
}

/// [`batch_sums`] with a chosen version of the loop (to compare them).
///
/// # Panics
/// If this CPU cannot run `isa`.
pub fn batch_sums_on(
    isa: InstructionSet,
    stream: &LineStream,
    step: u64,
    batch: usize,
    w: f32,
    b: f32,
) -> [f32; 3] {
    assert!(isa.is_available(), "this CPU cannot run {isa:?}");
    let total = (0..block_count(batch))
        .map(|block| block_at(isa, stream, step, batch, (w, b), block))
        .fold([0.0; 3], add3);
    total.map(|s| s as f32)
}

fn add3(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// What the threads of a chunk share. The main thread publishes each step (its parameters, then
/// a new generation in `claim`); every thread, the main one included, takes blocks by a
/// compare-and-swap on `claim` that also checks the generation, and leaves each block's sums in
/// its slot. The main thread adds the slots in block order, and computes itself any block a
/// helper took but has not finished within [`STEAL_AFTER`]: it never waits for a helper that
/// is late (a vCPU the hypervisor took away, a core busy with something else), so threads can
/// make a step faster but not much slower. A block's sums are a pure function of the step, so
/// whoever computes it, the bits are the same.
struct Team {
    spec: ChunkSpec,
    isa: InstructionSet,
    /// `generation << 32 | next block to take`.
    claim: CacheLine<AtomicU64>,
    /// The current generation's step and `(w, b)` bits.
    step: AtomicU64,
    wb: AtomicU64,
    /// The chunk is over: helpers return.
    done: AtomicBool,
    slots: Vec<Mutex<Slot>>,
}

/// Which thread is taking blocks: the main thread must never block on a lock a helper holds
/// (a helper can lose its core while holding one); helpers may.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Main,
    Helper,
}

/// One block's sums and the generation they belong to.
#[derive(Clone, Copy, Default)]
struct Slot {
    generation: u32,
    sums: [f64; 3],
}

/// How long the main thread waits for a block a helper is computing before computing it
/// itself: a few blocks' time.
pub const STEAL_AFTER: Duration = Duration::from_micros(20);

impl Team {
    /// A team for `spec`'s chunk, before its first step (generation 0 has no block to take).
    fn new(spec: ChunkSpec) -> Self {
        Team {
            spec,
            isa: InstructionSet::best(),
            claim: CacheLine(AtomicU64::new(u64::from(u32::MAX))),
            step: AtomicU64::new(0),
            wb: AtomicU64::new(0),
            done: AtomicBool::new(false),
            slots: (0..block_count(spec.batch))
                .map(|_| Mutex::default())
                .collect(),
        }
    }

    /// The step and parameters published with the current generation.
    fn params(&self) -> (u64, (f32, f32)) {
        let wb = self.wb.load(SeqCst);
        let wb = (f32::from_bits((wb >> 32) as u32), f32::from_bits(wb as u32));
        (self.step.load(SeqCst), wb)
    }

    /// Takes blocks of the current generation until none is left. The parameters are read
    /// between loading `claim` and the swap: a swap that succeeds proves the generation had not
    /// moved on (it moves on only after every block is taken), so they were its parameters.
    fn take_blocks(&self, role: Role) {
        loop {
            let claim = self.claim.0.load(SeqCst);
            let (generation, next) = ((claim >> 32) as u32, claim as u32 as usize);
            if next >= self.slots.len() {
                return;
            }
            let (step, wb) = self.params();
            if self
                .claim
                .0
                .compare_exchange(claim, claim + 1, SeqCst, SeqCst)
                .is_ok()
            {
                self.compute(generation, step, wb, next, role);
            }
        }
    }

    /// Computes a block and stores it unless its slot already holds this generation or a
    /// later one (a helper that finishes late never overwrites a newer step's sums). The main
    /// thread skips the store when a helper holds the slot: the sums it returns are the same.
    fn compute(
        &self,
        generation: u32,
        step: u64,
        wb: (f32, f32),
        block: usize,
        role: Role,
    ) -> [f64; 3] {
        let sums = block_at(
            self.isa,
            &self.spec.stream,
            step,
            self.spec.batch,
            wb,
            block,
        );
        let slot = match role {
            Role::Helper => Some(
                self.slots[block]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ),
            Role::Main => self.try_slot(block),
        };
        if let Some(mut slot) = slot
            && slot.generation < generation
        {
            *slot = Slot { generation, sums };
        }
        sums
    }

    /// The slot's lock if nobody holds it.
    fn try_slot(&self, block: usize) -> Option<std::sync::MutexGuard<'_, Slot>> {
        match self.slots[block].try_lock() {
            Ok(slot) => Some(slot),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// A helper: takes blocks whenever a step has some left, until the chunk is done. Waiting
    /// spins, then yields (should the machine be busier than one thread per core).
    fn help(&self) {
        let mut idle = 0u32;
        while !self.done.load(SeqCst) {
            let claim = self.claim.0.load(SeqCst);
            if (claim as u32 as usize) < self.slots.len() {
                self.take_blocks(Role::Helper);
                idle = 0;
            } else if idle < 20_000 {
                std::hint::spin_loop();
                idle += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// The main thread's part of a step: publish it, take blocks, add the slots in order.
    fn step_sums(&self, generation: u32, step: u64, w: f32, b: f32) -> [f32; 3] {
        self.publish(generation, step, w, b);
        self.take_blocks(Role::Main);
        self.collect(generation, step, (w, b))
    }

    /// Makes `step` with `(w, b)` the current generation, all its blocks free to take.
    fn publish(&self, generation: u32, step: u64, w: f32, b: f32) {
        self.step.store(step, SeqCst);
        self.wb.store(
            (u64::from(w.to_bits()) << 32) | u64::from(b.to_bits()),
            SeqCst,
        );
        self.claim.0.store(u64::from(generation) << 32, SeqCst);
    }

    /// The step's sums: every block's, added in block order, rounded once to f32.
    fn collect(&self, generation: u32, step: u64, wb: (f32, f32)) -> [f32; 3] {
        let total = (0..self.slots.len())
            .map(|block| self.finished(generation, step, wb, block))
            .fold([0.0; 3], add3);
        total.map(|s| s as f32)
    }

    /// A block's sums for this generation: from its slot once a helper has filled it, or
    /// computed here after [`STEAL_AFTER`].
    fn finished(&self, generation: u32, step: u64, wb: (f32, f32), block: usize) -> [f64; 3] {
        let mut since: Option<Instant> = None;
        loop {
            let ready = self
                .try_slot(block)
                .filter(|slot| slot.generation == generation)
                .map(|slot| slot.sums);
            if let Some(sums) = ready {
                return sums;
            }
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() >= STEAL_AFTER {
                return self.compute(generation, step, wb, block, Role::Main);
            }
            std::hint::spin_loop();
        }
    }
}

fn run_chunk_threaded(state: FusedState, spec: &ChunkSpec, threads: usize) -> ChunkResult {
    debug_assert!(spec.steps < u64::from(u32::MAX), "generations would wrap");
    let team = Arc::new(Team::new(*spec));
    // Whatever happens below, a panic included, the helpers are let go at the end.
    let _release = ReleaseHelpers(Arc::clone(&team));
    // The process's helper threads, woken for this chunk and not waited for at its end: a
    // helper that wakes after the chunk is over sees `done`, returns, and parks again.
    let helper_team = Arc::clone(&team);
    let job: Job = Arc::new(move || helper_team.help());
    HELPERS.run(threads - 1, &job);
    // Generations 1, 2, … for the chunk's steps.
    let sums = |step: u64, w: f32, b: f32| {
        let generation = (step - spec.first_step + 1) as u32;
        team.step_sums(generation, step, w, b)
    };
    run_steps(state, spec, sums)
}

/// Ends a chunk for its helpers when dropped.
struct ReleaseHelpers(Arc<Team>);

impl Drop for ReleaseHelpers {
    fn drop(&mut self) {
        self.0.done.store(true, SeqCst);
    }
}

/// A value alone on its cache line (128 bytes: two 64-byte lines, which some CPUs fetch in
/// pairs), so that writing it does not take the line from threads reading its neighbours.
#[repr(align(128))]
struct CacheLine<T>(T);

/// The sums over pairs `start..end`; a batch of odd size has no second sample in its last pair.
/// An `isa` this CPU cannot run gives the portable version's (identical) sums.
fn block_sums(
    isa: InstructionSet,
    stream: &LineStream,
    step: u64,
    batch: usize,
    wb: (f32, f32),
    start: u32,
    end: u32,
) -> [f64; 3] {
    match isa {
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx512 if isa.is_available() => {
            // SAFETY: the CPU has AVX-512F, checked just above.
            unsafe { block_sums_avx512(stream, step, batch, wb, start, end) }
        }
        #[cfg(target_arch = "x86_64")]
        InstructionSet::Avx2 if isa.is_available() => {
            // SAFETY: the CPU has AVX2, checked just above.
            unsafe { block_sums_avx2(stream, step, batch, wb, start, end) }
        }
        _ => block_sums_portable(stream, step, batch, wb, start, end),
    }
}

/// [`block_sums_portable`] for AVX2: Philox on 16 blocks in AVX2 intrinsics, the
/// float math compiled for 8 lanes per instruction. The same IEEE operations in the same order
/// (Rust never fuses a multiply and an add), so the result is bit-identical to the portable
/// one's (a test checks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_sums_avx2(
    stream: &LineStream,
    step: u64,
    batch: usize,
    wb: (f32, f32),
    start: u32,
    end: u32,
) -> [f64; 3] {
    let words = |pair| {
        // SAFETY: this function only runs on CPUs with AVX2.
        unsafe { crate::rng::philox::words_x16_avx2(stream.key, step, pair) }
    };
    block_sums_lanes(stream, step, batch, wb, start, end, words)
}

/// [`block_sums_portable`] for AVX-512: Philox on 16 blocks at once, the float math compiled
/// for 16 lanes per instruction (and 32 vector registers, so its constants stay in them).
/// Bit-identical to the portable sums, like [`block_sums_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_sums_avx512(
    stream: &LineStream,
    step: u64,
    batch: usize,
    wb: (f32, f32),
    start: u32,
    end: u32,
) -> [f64; 3] {
    let words = |pair| {
        // SAFETY: this function only runs on CPUs with AVX-512F.
        unsafe { crate::rng::philox::words_x16_avx512(stream.key, step, pair) }
    };
    block_sums_lanes(stream, step, batch, wb, start, end, words)
}

/// The sums with the portable lane-by-lane Philox.
fn block_sums_portable(
    stream: &LineStream,
    step: u64,
    batch: usize,
    wb: (f32, f32),
    start: u32,
    end: u32,
) -> [f64; 3] {
    let words = |pair| stream.words::<LANES>(step, pair);
    block_sums_lanes(stream, step, batch, wb, start, end, words)
}

/// The sums over pairs `start..end`, [`LANES`] pairs at a time with the Philox words from
/// `words(first_pair)`.
#[inline(always)]
fn block_sums_lanes(
    stream: &LineStream,
    step: u64,
    batch: usize,
    (w, b): (f32, f32),
    start: u32,
    end: u32,
    words: impl Fn(u32) -> [[u32; LANES]; 4],
) -> [f64; 3] {
    let mut ex = [0f32; LANES];
    let mut e = [0f32; LANES];
    let mut ee = [0f32; LANES];
    let mut pair = start;
    // Only the last pair of the batch can be half-filled.
    let full_end = if batch % 2 == 1 && end as usize == batch.div_ceil(2) {
        end - 1
    } else {
        end
    };
    while pair + LANES as u32 <= full_end {
        let [r0, r1, r2, r3] = words(pair);
        for lane in 0..LANES {
            let [(x0, y0), (x1, y1)] = stream.samples([r0[lane], r1[lane], r2[lane], r3[lane]]);
            let e0 = w * x0 + b - y0;
            let e1 = w * x1 + b - y1;
            ex[lane] += e0 * x0 + e1 * x1;
            e[lane] += e0 + e1;
            ee[lane] += e0 * e0 + e1 * e1;
        }
        pair += LANES as u32;
    }
    for (lane, p) in (pair..end).enumerate() {
        let [(x0, y0), (x1, y1)] = stream.pair(step, p);
        let e0 = w * x0 + b - y0;
        // The missing second sample of an odd batch contributes exactly nothing (not 0·e, which
        // is NaN when e overflows).
        let e1 = if p < full_end { w * x1 + b - y1 } else { 0.0 };
        ex[lane] += e0 * x0 + e1 * x1;
        e[lane] += e0 + e1;
        ee[lane] += e0 * e0 + e1 * e1;
    }
    let fold = |acc: [f32; LANES]| f64::from(acc.iter().sum::<f32>());
    [fold(ex), fold(e), fold(ee)]
}

#[cfg(test)]
mod tests;
