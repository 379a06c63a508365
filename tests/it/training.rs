//! Training on every compiled-in backend: convergence, logging, determinism.

use burnfit::checkpoint::autograd_json;
use burnfit::{TrainingConfig, train};

use crate::common::{backends, serial};

#[test]
fn the_seed_workload_converges_on_every_backend() {
    let _guard = serial();
    let config = TrainingConfig::default();
    for backend in backends() {
        let kind = backend.kind;
        let mut seen = Vec::new();
        let report = train(&config, backend, |p| seen.push(p)).unwrap();
        let (w, b) = (report.final_w(), report.final_b());
        assert!((w - 2.5).abs() < 0.05, "{kind}: w = {w}");
        assert!((b + 1.0).abs() < 0.05, "{kind}: b = {b}");

        let steps: Vec<u64> = report.run.losses.iter().map(|p| p.step).collect();
        assert_eq!(
            steps,
            (1..=10).map(|i| i * 100).collect::<Vec<_>>(),
            "{kind}"
        );
        assert_eq!(
            seen, report.run.losses,
            "{kind}: the callback saw every logged loss"
        );
        // The noise has variance 0.25: a converged model's loss sits near it.
        let last = report.run.final_loss().unwrap();
        assert!((0.1..0.45).contains(&last), "{kind}: final loss {last}");
        assert!(
            report.run.losses[0].loss > last,
            "{kind}: loss did not fall"
        );

        let meta = report.checkpoint.meta.as_ref().unwrap();
        assert_eq!((meta.step, meta.backend.as_str()), (1000, kind.name()));
        assert_eq!(report.checkpoint.adam.as_ref().unwrap().updates, 1000);
    }
}

#[test]
/// In one process every backend repeats itself bit for bit (wgpu reuses the kernels autotune
/// picked). Across processes only the CPU backends do: see `cli::reruns_write_identical_files`.
fn same_seed_same_backend_gives_the_same_bits_in_one_process() {
    let _guard = serial();
    let config = TrainingConfig {
        steps: 200,
        ..Default::default()
    };
    for backend in backends() {
        let kind = backend.kind;
        let a = train(&config, backend.clone(), |_| {}).unwrap();
        let b = train(&config, backend.clone(), |_| {}).unwrap();
        assert_eq!(a.checkpoint, b.checkpoint, "{kind}");
        assert_eq!(
            autograd_json::to_bytes(&a.checkpoint),
            autograd_json::to_bytes(&b.checkpoint),
            "{kind}: checkpoint bytes differ"
        );
        let other = TrainingConfig {
            seed: 7,
            ..config.clone()
        };
        let c = train(&other, backend, |_| {}).unwrap();
        assert_ne!(
            a.checkpoint.params, c.checkpoint.params,
            "{kind}: the seed changed nothing"
        );
    }
}

#[test]
fn a_diverging_run_stops_with_the_step() {
    let _guard = serial();
    let config = TrainingConfig {
        lr: 1e30,
        log_every: 1,
        steps: 50,
        ..Default::default()
    };
    for backend in backends() {
        let kind = backend.kind;
        let err = train(&config, backend, |_| {}).unwrap_err().to_string();
        assert!(err.contains("diverged at step"), "{kind}: {err}");
    }
}

#[test]
fn cpu_backends_agree_on_the_first_steps() {
    // Same initial weight on every backend (drawn on the host); batches differ per backend's RNG,
    // so only the start is comparable: after one step with a fresh batch everything is near.
    let _guard = serial();
    let config = TrainingConfig {
        steps: 1,
        log_every: 1,
        ..Default::default()
    };
    let starts: Vec<f32> = backends()
        .into_iter()
        .map(|backend| {
            let report = train(&config, backend, |_| {}).unwrap();
            report.final_w()
        })
        .collect();
    for w in &starts {
        // One Adam step moves w by at most lr (plus rounding) from the common start.
        assert!(
            (w - starts[0]).abs() <= 2.0 * config.lr + 1e-6,
            "{starts:?}"
        );
    }
}
