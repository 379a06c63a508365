//! The fused engine: the same model, data and checkpoints as the autodiff engine, held to it on
//! every backend; exact resume; every step checked for divergence; Ctrl-C and --save-every.

use burnfit::{Backend, Checkpoint, EngineKind, TrainingConfig};

use crate::common::{backends, burnfit, serial};

fn run(
    engine: EngineKind,
    config: &TrainingConfig,
    backend: &Backend,
    start: Option<&Checkpoint>,
    steps: u64,
) -> Checkpoint {
    let mut trainer = burnfit::open_engine(engine, config.clone(), backend.clone(), start).unwrap();
    trainer.run(steps, &mut ()).unwrap();
    trainer.checkpoint().unwrap()
}

fn wb(c: &Checkpoint) -> (f32, f32) {
    (c.params[0].data[0], c.params[1].data[0])
}

/// A second workload: another seed, line, noise, batch and learning rate.
fn second_config() -> TrainingConfig {
    TrainingConfig {
        seed: 7,
        true_w: -1.25,
        true_b: 3.0,
        noise: 0.1,
        batch: 1000,
        lr: 0.02,
        x_low: -3.0,
        x_high: 5.0,
        ..Default::default()
    }
}

#[test]
fn fused_agrees_with_autodiff_on_every_backend() {
    let _guard = serial();
    for backend in backends() {
        for config in [TrainingConfig::default(), second_config()] {
            let autodiff = run(EngineKind::Autodiff, &config, &backend, None, 1000);
            let fused = run(EngineKind::Fused, &config, &backend, None, 1000);
            let ((wa, ba), (wf, bf)) = (wb(&autodiff), wb(&fused));
            let kind = backend.kind;
            assert!(
                (wa - wf).abs() <= 1e-4 && (ba - bf).abs() <= 1e-4,
                "{kind}, seed {}: autodiff ({wa}, {ba}) vs fused ({wf}, {bf})",
                config.seed
            );
            assert!((wf - config.true_w).abs() < 0.05 && (bf - config.true_b).abs() < 0.05);
            let meta = fused.meta.as_ref().unwrap();
            assert_eq!(meta.engine.as_deref(), Some("fused"));
            assert_eq!(
                (meta.step, fused.adam.as_ref().unwrap().updates),
                (1000, 1000)
            );
        }
    }
}

#[test]
fn fused_six_hundred_plus_four_hundred_is_one_thousand_bit_for_bit() {
    let _guard = serial();
    let config = TrainingConfig::default();
    let dir = tempfile::tempdir().unwrap();
    for backend in backends() {
        let straight = run(EngineKind::Fused, &config, &backend, None, 1000);
        let first = run(EngineKind::Fused, &config, &backend, None, 600);
        let path = dir.path().join("first.bpk");
        first.save(&path).unwrap();
        let resumed = run(
            EngineKind::Fused,
            &config,
            &backend,
            Some(&Checkpoint::load(&path).unwrap()),
            400,
        );
        assert_eq!(resumed.params, straight.params, "{}", backend.kind);
        assert_eq!(resumed.adam, straight.adam, "{}", backend.kind);
        // A rerun in the same process repeats bit for bit.
        assert_eq!(
            run(EngineKind::Fused, &config, &backend, None, 1000),
            straight
        );
    }
}

#[test]
fn checkpoints_move_between_engines() {
    let _guard = serial();
    let config = TrainingConfig::default();
    for backend in backends() {
        let straight = run(EngineKind::Fused, &config, &backend, None, 1000);
        for (first, second) in [
            (EngineKind::Autodiff, EngineKind::Fused),
            (EngineKind::Fused, EngineKind::Autodiff),
        ] {
            let half = run(first, &config, &backend, None, 500);
            let done = run(second, &config, &backend, Some(&half), 500);
            let ((w, b), (ws, bs)) = (wb(&done), wb(&straight));
            assert!(
                (w - ws).abs() <= 1e-4 && (b - bs).abs() <= 1e-4,
                "{first} then {second}: ({w}, {b}) vs ({ws}, {bs})"
            );
            assert_eq!(done.adam.as_ref().unwrap().updates, 1000);
        }
    }
}

#[test]
fn both_engines_see_the_same_batches_on_every_backend() {
    // One step from the same start: the first update depends only on the first batch.
    let _guard = serial();
    let config = TrainingConfig::default();
    let mut first_steps = Vec::new();
    for backend in backends() {
        for engine in EngineKind::ALL {
            let c = run(engine, &config, &backend, None, 1);
            first_steps.push((backend.kind, engine, c.adam.unwrap().moments[0].0.data[0]));
        }
    }
    let (_, _, reference) = first_steps[0];
    for (kind, engine, m) in &first_steps {
        // m after one step is (1 − β1)·dL/dw: the batch's gradient, to float rounding.
        assert!(
            (m - reference).abs() <= 1e-5 * reference.abs(),
            "{kind}/{engine}: {m} vs {reference}"
        );
    }
}

#[test]
fn fused_divergence_stops_at_the_first_bad_step_and_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.json");
    // lr 1e30 blows up within a few steps, long before the first log step.
    let assert = burnfit()
        .args([
            "train",
            "--engine",
            "fused",
            "--backend",
            "ndarray",
            "--lr",
            "1e30",
            "--steps",
            "1000",
            "--out",
        ])
        .arg(&out)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    let step: u64 = stderr
        .strip_prefix("error: training diverged at step ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(step < 100, "divergence seen only at step {step}: {stderr}");
    assert!(!out.exists());
}

#[test]
fn a_table_overflowing_at_the_first_step_is_blamed_on_its_values_not_the_lines_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("huge.csv");
    let mut text = String::from("x,y\n");
    for i in 0..50 {
        let x = if i == 7 {
            "1e30".to_string()
        } else {
            format!("{i}")
        };
        text.push_str(&format!("{x},{}\n", i % 5));
    }
    std::fs::write(&data, text).unwrap();
    let out = dir.path().join("never.json");
    for (engine, raw) in [("fused", true), ("autodiff", true), ("fused", false)] {
        let mut cmd = burnfit();
        cmd.args([
            "train",
            "--engine",
            engine,
            "--backend",
            "ndarray",
            "--target",
            "y",
        ])
        .args(["--steps", "20", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out);
        if raw {
            cmd.arg("--no-standardize");
        }
        let assert = cmd.assert();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        if !raw {
            // Standardized, the one huge value only squeezes the others: it trains.
            assert!(assert.get_output().status.success(), "{stderr}");
            continue;
        }
        assert_eq!(
            assert.get_output().status.code(),
            Some(1),
            "{engine}: {stderr}"
        );
        assert_eq!(
            stderr.trim(),
            format!(
                "error: training diverged at step 1: loss is inf (already at the first step: the errors overflow f32 on {}'s raw values (standardizing is off); standardize it, or look for huge values in it)",
                data.display()
            ),
            "{engine}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn fused_save_every_and_ctrl_c_keep_their_promises() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let assert = burnfit()
        .args([
            "train",
            "--engine",
            "fused",
            "--backend",
            "ndarray",
            "--steps",
            "250",
            "--log-every",
            "100",
            "--save-every",
            "70",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    for step in [70, 140, 210] {
        assert!(stdout.contains(&format!("at step {step}\n")), "{stdout}");
    }
    let logged: Vec<&str> = stdout.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(logged.len(), 3, "{stdout}"); // 100, 200, 250
    assert!(stdout.contains("with the fused engine"), "{stdout}");
    assert_eq!(Checkpoint::load(&out).unwrap().step(), 250);

    let out_arg = out.to_str().unwrap();
    let child = crate::common::start_training(
        &[
            "train",
            "--engine",
            "fused",
            "--backend",
            "ndarray",
            "--steps",
            "100000000000",
            "--log-every",
            "1000",
            "--out",
            out_arg,
        ],
        &[],
    );
    let started = std::time::Instant::now();
    let (code, stderr) = crate::common::signal_and_wait(child, "INT");
    assert_eq!(code, Some(130), "{stderr}");
    // Chunks hold ~100 ms of work: the stop comes quickly even at millions of steps.
    assert!(started.elapsed().as_secs() < 10);
    let saved = Checkpoint::load(&out).unwrap();
    assert!(
        stderr.contains(&format!("interrupted at step {}", saved.step())),
        "{stderr}"
    );
    assert_eq!(saved.adam.as_ref().unwrap().updates, saved.step());
}

#[test]
fn fused_reruns_write_identical_files_on_every_backend() {
    // wgpu included: the fused kernels are not autotuned, so a new process runs the same code.
    let dir = tempfile::tempdir().unwrap();
    for backend in backends().into_iter().map(|b| b.kind) {
        let files: Vec<Vec<u8>> = (0..2)
            .map(|i| {
                let out = dir.path().join(format!("{backend}-{i}.json"));
                burnfit()
                    .args([
                        "train",
                        "--engine",
                        "fused",
                        "--steps",
                        "300",
                        "--backend",
                        backend.name(),
                        "--out",
                    ])
                    .arg(&out)
                    .assert()
                    .success();
                std::fs::read(&out).unwrap()
            })
            .collect();
        assert_eq!(files[0], files[1], "{backend}: reruns differ");
    }
}
