//! Resuming: 600 + 400 steps equal 1000 straight through, across backends and from autograd files.

use burnfit::{Backend, BackendKind, Checkpoint, Engine, Trainer, TrainingConfig};

use crate::common::{autograd_fixture, backends, serial};

fn run(
    config: &TrainingConfig,
    backend: &Backend,
    start: Option<&Checkpoint>,
    steps: u64,
) -> Checkpoint {
    let mut trainer = match start {
        None => Trainer::new(config.clone(), backend.clone()).unwrap(),
        Some(c) => Trainer::resume(config.clone(), backend.clone(), c).unwrap(),
    };
    trainer.run(steps, &mut ()).unwrap();
    trainer.checkpoint().unwrap()
}

fn max_relative_difference(a: &Checkpoint, b: &Checkpoint) -> f32 {
    let values = |c: &Checkpoint| -> Vec<f32> {
        let adam = c.adam.as_ref().unwrap();
        c.params
            .iter()
            .chain(adam.moments.iter().flat_map(|(m, v)| [m, v]))
            .flat_map(|t| t.data.clone())
            .collect()
    };
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-12))
        .fold(0.0, f32::max)
}

#[test]
fn six_hundred_plus_four_hundred_equals_one_thousand_on_every_backend() {
    let _guard = serial();
    let config = TrainingConfig::default();
    let dir = tempfile::tempdir().unwrap();
    for backend in backends() {
        let kind = backend.kind;
        let straight = run(&config, &backend, None, 1000);
        let first = run(&config, &backend, None, 600);
        // Through a file, as a user resumes.
        let path = dir.path().join(format!("{kind}.json"));
        first.save(&path).unwrap();
        let loaded = Checkpoint::load(&path).unwrap();
        assert_eq!(loaded, first, "{kind}: the checkpoint reads back exactly");
        let resumed = run(&config, &backend, Some(&loaded), 400);
        assert_eq!(resumed.adam.as_ref().unwrap().updates, 1000);
        assert_eq!(resumed.meta.as_ref().unwrap().step, 1000);
        if kind == BackendKind::Wgpu {
            let d = max_relative_difference(&resumed, &straight);
            assert!(d <= 1e-6, "{kind}: relative difference {d}");
        } else {
            assert_eq!(resumed.params, straight.params, "{kind}: not bit-identical");
            assert_eq!(resumed.adam, straight.adam, "{kind}: Adam state differs");
        }
    }
}

#[test]
fn a_checkpoint_moves_between_backends() {
    let _guard = serial();
    let config = TrainingConfig::default();
    let all = backends();
    for from in &all {
        for to in &all {
            let half = run(&config, from, None, 500);
            let done = run(&config, to, Some(&half), 500);
            assert_eq!(done.meta.as_ref().unwrap().backend, to.kind.name());
            let (w, b) = (done.params[0].data[0], done.params[1].data[0]);
            assert!(
                (w - 2.5).abs() < 0.05 && (b + 1.0).abs() < 0.05,
                "{} -> {}: w {w} b {b}",
                from.kind,
                to.kind
            );
        }
    }
}

#[test]
fn the_autograd_programs_file_resumes_with_its_adam_state() {
    let _guard = serial();
    let fixture = Checkpoint::load(&autograd_fixture()).unwrap();
    let backend = backends().remove(0);
    let config = TrainingConfig {
        steps: 1001,
        ..Default::default()
    };
    let mut trainer = Trainer::resume(config, backend, &fixture).unwrap();
    assert_eq!(trainer.step(), 1000, "t = 1001 means 1000 updates");
    trainer.run(1, &mut ()).unwrap();
    let after = trainer.checkpoint().unwrap();
    let adam = after.adam.as_ref().unwrap();
    // v continues from the file's v (682): v1 = 0.999·v0 + 0.001·g². A restarted Adam would
    // have v1 = 0.001·g², far below.
    let v0 = fixture.adam.as_ref().unwrap().moments[0].1.data[0];
    let v1 = adam.moments[0].1.data[0];
    assert!(
        v1 >= 0.999 * v0 * (1.0 - 1e-6) && v1 < v0 + 10.0,
        "v continued from {v0}: {v1}"
    );
    // A single step moves w by about lr at most.
    let w0 = fixture.params[0].data[0];
    assert!(
        (after.params[0].data[0] - w0).abs() <= 0.0101,
        "{w0} -> {}",
        after.params[0].data[0]
    );
    assert_eq!(adam.updates, 1001);
}

#[test]
fn resuming_weights_only_restarts_adam_but_continues_the_data_stream() {
    let _guard = serial();
    let config = TrainingConfig::default();
    let backend = backends().remove(0);
    let weights = run(&config, &backend, None, 300).without_optimizer();
    let resumed = run(&config, &backend, Some(&weights), 100);
    assert_eq!(resumed.meta.as_ref().unwrap().step, 400);
    assert_eq!(resumed.adam.as_ref().unwrap().updates, 100);
}
