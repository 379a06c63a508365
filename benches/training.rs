//! Training-step benchmarks per backend and engine: `cargo bench --features flex,wgpu,autograd-ref --bench training`.
//!
//! Each benchmark trains the seed workload for a fixed number of steps; the run ends with a
//! device sync (the autodiff engine) or a read-back of the state (the fused engine), so GPU work
//! is inside the timed region.

use burnfit::{Backend, BackendKind, EngineKind, TrainingConfig};

fn main() {
    divan::main();
}

const STEPS: u64 = 100;

fn bench_backend(bencher: divan::Bencher, kind: BackendKind, engine: EngineKind, batch: usize) {
    let Ok(backend) = Backend::open(kind) else {
        eprintln!("skipping {kind}: not available here");
        return;
    };
    let config = TrainingConfig {
        batch,
        steps: STEPS,
        log_every: STEPS,
        ..Default::default()
    };
    let open = || burnfit::open_engine(engine, config.clone(), backend.clone(), None).unwrap();
    // Warm up once (kernel compilation, autotune) outside the measurement.
    open().run(STEPS, &mut ()).unwrap();
    bencher
        .with_inputs(open)
        .bench_local_values(|mut trainer| trainer.run(STEPS, &mut ()).unwrap());
}

#[divan::bench(args = [64, 4096, 65536], sample_count = 10, sample_size = 1)]
fn ndarray_100_steps(bencher: divan::Bencher, batch: usize) {
    bench_backend(bencher, BackendKind::Ndarray, EngineKind::Autodiff, batch);
}

#[divan::bench(args = [64, 4096, 65536], sample_count = 10, sample_size = 1)]
fn flex_100_steps(bencher: divan::Bencher, batch: usize) {
    bench_backend(bencher, BackendKind::Flex, EngineKind::Autodiff, batch);
}

#[divan::bench(args = [64, 4096, 65536], sample_count = 10, sample_size = 1)]
fn wgpu_100_steps(bencher: divan::Bencher, batch: usize) {
    bench_backend(bencher, BackendKind::Wgpu, EngineKind::Autodiff, batch);
}

#[divan::bench(args = [64, 4096, 65536], sample_count = 10, sample_size = 1)]
fn flex_fused_100_steps(bencher: divan::Bencher, batch: usize) {
    bench_backend(bencher, BackendKind::Flex, EngineKind::Fused, batch);
}

#[divan::bench(args = [64, 4096, 65536], sample_count = 10, sample_size = 1)]
fn wgpu_fused_100_steps(bencher: divan::Bencher, batch: usize) {
    bench_backend(bencher, BackendKind::Wgpu, EngineKind::Fused, batch);
}

/// One step's batch sums of the fused CPU loop on one thread, batch 65,536, per instruction
/// set (a version this CPU cannot run is skipped): what AVX-512 and AVX2 buy over the portable
/// loop.
#[divan::bench(args = ["avx512", "avx2", "portable"], sample_count = 20)]
fn fused_cpu_loop_batch_65536(bencher: divan::Bencher, isa: &str) {
    use burnfit::fused_step::host::{InstructionSet, batch_sums_on};
    let isa = match isa {
        "avx512" => InstructionSet::Avx512,
        "avx2" => InstructionSet::Avx2,
        _ => InstructionSet::Portable,
    };
    if !isa.is_available() {
        eprintln!("skipping {isa:?}: this CPU cannot run it");
        return;
    }
    let stream = TrainingConfig::default().line_stream();
    let mut step = 0;
    bencher.bench_local(|| {
        step += 1;
        batch_sums_on(isa, &stream, step, 65_536, 0.3, -0.2)
    });
}
