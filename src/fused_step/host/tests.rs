//! The CPU loop against the scalar reference: every instruction set, threads, chunks.

use super::*;
use crate::config::TrainingConfig;

fn spec(config: &TrainingConfig, first_step: u64, steps: u64) -> ChunkSpec {
    ChunkSpec {
        stream: config.line_stream(),
        adam: config.adam(),
        batch: config.batch,
        first_step,
        updates_before: first_step - 1,
        steps,
    }
}

#[test]
fn sums_match_a_plain_loop_over_the_drawn_batch() {
    for batch in [1, 2, 3, 17, 64, 4095, 4096 * 9 + 3] {
        let config = TrainingConfig {
            batch,
            ..Default::default()
        };
        let stream = config.line_stream();
        let (xs, ys) = stream.batch(7, batch);
        let (w, b) = (0.3f32, -0.2f32);
        let mut want = [0f64; 3];
        for (x, y) in xs.iter().zip(&ys) {
            let e = f64::from(w * x + b - y);
            want[0] += e * f64::from(*x);
            want[1] += e;
            want[2] += e * e;
        }
        let got = batch_sums(&stream, 7, batch, w, b);
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-4 * w.abs().max(1.0),
                "batch {batch}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn every_instruction_set_gives_the_portable_sums_bit_for_bit() {
    let stream = TrainingConfig::default().line_stream();
    // Whole blocks, a block with a tail of fewer than 16 pairs, an odd batch.
    for batch in [4096usize * 3, 77, 4096 + 2 * 37 + 1] {
        let portable = batch_sums_on(InstructionSet::Portable, &stream, 9, batch, 0.3, -0.2);
        for isa in InstructionSet::ALL.into_iter().filter(|i| i.is_available()) {
            let sums = batch_sums_on(isa, &stream, 9, batch, 0.3, -0.2);
            assert_eq!(
                sums.map(f32::to_bits),
                portable.map(f32::to_bits),
                "{isa:?}, batch {batch}"
            );
            // Block sums too, before the rounding to f32.
            let block = block_sums(isa, &stream, 9, batch, (0.3, -0.2), 0, 39);
            let want = block_sums_portable(&stream, 9, batch, (0.3, -0.2), 0, 39);
            assert_eq!(block, want, "{isa:?}");
        }
    }
    assert!(InstructionSet::best().is_available());
    eprintln!("fused CPU loop: {:?}", InstructionSet::best());
}

#[test]
fn threads_change_nothing_in_the_result() {
    let config = TrainingConfig {
        batch: 40_001,
        ..Default::default()
    };
    let spec = spec(&config, 5, 20);
    let start = FusedState::new(0.25, 0.0);
    let sequential = run_steps(start, &spec, |step, w, b| {
        batch_sums(&spec.stream, step, spec.batch, w, b)
    });
    for threads in [2, 3, 7] {
        assert_eq!(
            run_chunk_threaded(start, &spec, threads),
            sequential,
            "{threads} threads"
        );
    }
}

#[test]
fn a_block_a_helper_took_and_never_finished_is_computed_by_the_main_thread() {
    let config = TrainingConfig {
        batch: 8 * BLOCK_PAIRS as usize * 2 + 5,
        ..Default::default()
    };
    let spec = spec(&config, 1, 10);
    let team = Team::new(spec);
    // Generation 1: a "helper" takes block 0 and vanishes; the main thread takes the rest,
    // waits STEAL_AFTER for block 0, then computes it itself.
    team.publish(1, 3, 0.5, 0.25);
    assert!(
        team.claim
            .0
            .compare_exchange(1 << 32, (1 << 32) + 1, SeqCst, SeqCst)
            .is_ok()
    );
    let started = Instant::now();
    team.take_blocks(Role::Main);
    let got = team.collect(1, 3, (0.5, 0.25));
    assert!(started.elapsed() >= STEAL_AFTER);
    let want = batch_sums(&spec.stream, 3, spec.batch, 0.5, 0.25);
    assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits));
    // Generation 2 is computed; then the vanished helper finishes generation 1's block 0
    // late: it must not overwrite the newer sums.
    let second = team.step_sums(2, 4, 0.5, 0.25);
    let newer = team.slots[0].lock().unwrap().sums;
    team.compute(1, 3, (0.5, 0.25), 0, Role::Helper);
    let after = *team.slots[0].lock().unwrap();
    assert_eq!((after.generation, after.sums), (2, newer));
    assert_eq!(
        second.map(f32::to_bits),
        batch_sums(&spec.stream, 4, spec.batch, 0.5, 0.25).map(f32::to_bits)
    );
}

#[test]
fn chunks_compose_bit_for_bit() {
    let config = TrainingConfig::default();
    let start = FusedState::new(0.25, 0.0);
    let whole = run_chunk(start, &spec(&config, 1, 300));
    let first = run_chunk(start, &spec(&config, 1, 120));
    let rest = run_chunk(first.state, &spec(&config, 121, 180));
    assert_eq!(whole.state, rest.state);
    assert_eq!(whole.last_loss.to_bits(), rest.last_loss.to_bits());
}

#[test]
fn converges_and_stops_at_the_first_bad_step() {
    let config = TrainingConfig::default();
    let done = run_chunk(FusedState::new(0.25, 0.0), &spec(&config, 1, 1000));
    assert!(
        (done.state.w - 2.5).abs() < 0.05 && (done.state.b + 1.0).abs() < 0.05,
        "{done:?}"
    );
    assert!(done.diverged.is_none() && done.steps_run == 1000);
    let huge = TrainingConfig {
        true_w: 3e38,
        x_low: -3e30,
        x_high: 3e30,
        ..Default::default()
    };
    let bad = run_chunk(FusedState::new(0.25, 0.0), &spec(&huge, 1, 10));
    assert_eq!(bad.steps_run, 0);
    assert_eq!(bad.diverged.map(|d| d.0), Some(1));
    assert_eq!(bad.state, FusedState::new(0.25, 0.0));
}
