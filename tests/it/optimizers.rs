//! `--optimizer adam|adamw|sgd|rmsprop` and `--lr-schedule`: both engines alike, exact resume,
//! the scheduled rate in the metrics file, and the flags' checks.

use burnfit::config::TrainingConfig;
use burnfit::optim::{OptimizerKind, ScheduleKind};
use burnfit::{BackendKind, EngineKind};
use predicates::str::contains;

use crate::common::{backends, burnfit, run_engine, serial, state_bits};

#[test]
fn every_optimizer_and_schedule_trains_alike_on_both_engines_and_resumes_exactly() {
    let _guard = serial();
    let configs = [
        TrainingConfig {
            optimizer: OptimizerKind::Sgd,
            momentum: 0.9,
            lr: 0.001,
            ..Default::default()
        },
        TrainingConfig {
            optimizer: OptimizerKind::Rmsprop,
            momentum: 0.5,
            ..Default::default()
        },
        TrainingConfig {
            optimizer: OptimizerKind::Adamw,
            weight_decay: 0.01,
            ..Default::default()
        },
        TrainingConfig {
            lr_schedule: ScheduleKind::Cosine,
            warmup_steps: 100,
            ..Default::default()
        },
        TrainingConfig {
            lr_schedule: ScheduleKind::Step,
            lr_step_every: 300,
            lr_gamma: 0.5,
            ..Default::default()
        },
    ];
    for backend in backends()
        .into_iter()
        .filter(|b| b.kind != BackendKind::Wgpu)
    {
        for config in &configs {
            let what = format!(
                "{:?} {:?} on {}",
                config.optimizer, config.lr_schedule, backend.kind
            );
            let fused = run_engine(EngineKind::Fused, config, &backend, 1000, None);
            let autodiff = run_engine(EngineKind::Autodiff, config, &backend, 1000, None);
            let (w, wa) = (fused.params[0].data[0], autodiff.params[0].data[0]);
            assert!((w - 2.5).abs() < 0.25, "{what}: w {w}");
            assert!(
                (w - wa).abs() <= 1e-4 * wa.abs(),
                "{what}: fused {w} vs autodiff {wa}"
            );
            // 600 + 400 = 1000 with the same schedule (it ends at the config's `steps`).
            let first = run_engine(EngineKind::Fused, config, &backend, 600, None);
            let resumed = run_engine(EngineKind::Fused, config, &backend, 400, Some(&first));
            assert_eq!(state_bits(&resumed), state_bits(&fused), "{what}: resumed");
            let first = run_engine(EngineKind::Autodiff, config, &backend, 600, None);
            let resumed = run_engine(EngineKind::Autodiff, config, &backend, 400, Some(&first));
            assert_eq!(
                state_bits(&resumed),
                state_bits(&autodiff),
                "{what}: autodiff resumed"
            );
        }
    }
    // On wgpu the fused kernels run Adam at a constant rate: the rest is refused in one line.
    for backend in backends()
        .into_iter()
        .filter(|b| b.kind == BackendKind::Wgpu)
    {
        let err = burnfit::open_engine(EngineKind::Fused, configs[0].clone(), backend, None)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "--engine fused runs Adam at a constant learning rate on wgpu; use --backend flex (or ndarray) for another optimizer or a schedule, or --engine autodiff"
        );
    }
}

#[test]
fn schedules_follow_their_formulas() {
    let config = TrainingConfig {
        steps: 1000,
        lr: 0.1,
        warmup_steps: 100,
        ..Default::default()
    };
    let at = |schedule, t| {
        TrainingConfig {
            lr_schedule: schedule,
            ..config.clone()
        }
        .optimizer()
        .lr_at(t)
    };
    assert_eq!(
        at(ScheduleKind::Constant, 50),
        0.05,
        "warm-up: linear from 0"
    );
    assert_eq!(at(ScheduleKind::Constant, 700), 0.1);
    // After warm-up, update k of 900 runs at lr·(1 − (k − 1)/900) (PyTorch's order): the first
    // at the full rate, the last at lr/900.
    assert_eq!(at(ScheduleKind::Linear, 101), 0.1);
    assert!((at(ScheduleKind::Linear, 551) - 0.05).abs() < 1e-7);
    assert!((at(ScheduleKind::Linear, 1000) - 0.1 / 900.0).abs() < 1e-9);
    assert_eq!(at(ScheduleKind::Cosine, 101), 0.1);
    assert!((at(ScheduleKind::Cosine, 551) - 0.05).abs() < 1e-7);
    let last = at(ScheduleKind::Cosine, 1000);
    assert!(last > 0.0 && last < 1e-6, "{last}");
    let step = TrainingConfig {
        lr_schedule: ScheduleKind::Step,
        lr_step_every: 100,
        lr_gamma: 0.5,
        warmup_steps: 0,
        ..config.clone()
    };
    let o = step.optimizer();
    assert_eq!(
        (o.lr_at(1), o.lr_at(100), o.lr_at(101), o.lr_at(250)),
        (0.1, 0.1, 0.05, 0.025)
    );
}

#[test]
fn the_metrics_show_the_scheduled_rate_and_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.json");
    let metrics = dir.path().join("m.csv");
    burnfit()
        .args([
            "train",
            "--optimizer",
            "sgd",
            "--momentum",
            "0.9",
            "--lr",
            "0.001",
            "--lr-schedule",
            "linear",
        ])
        .args(["--steps", "400", "--out"])
        .arg(&out)
        .arg("--metrics")
        .arg(&metrics)
        .assert()
        .success();
    let text = std::fs::read_to_string(&metrics).unwrap();
    let lrs: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lrs.len(), 4, "{text}");
    for (i, lr) in lrs.iter().enumerate() {
        let expected = 0.001 * (1.0 - (100.0 * (i + 1) as f64 - 1.0) / 400.0);
        assert!(
            (lr - expected).abs() < 1e-9,
            "row {i}: lr {lr} vs {expected}"
        );
    }
    // Resuming with another optimizer's state is refused; Adam and AdamW share theirs.
    burnfit()
        .args(["train", "--optimizer", "adam", "--steps", "10", "--resume"])
        .arg(&out)
        .arg("--out")
        .arg(dir.path().join("x.json"))
        .assert()
        .code(2)
        .stderr("error: --optimizer adam: the checkpoint holds sgd's state; resume with --optimizer sgd, or start a fresh run\n");
    let refused = |args: &[&str], message: &str| {
        burnfit()
            .arg("train")
            .args(args)
            .arg("--out")
            .arg(dir.path().join("no.json"))
            .assert()
            .code(2)
            .stderr(contains(message));
    };
    refused(
        &["--momentum", "0.9"],
        "--momentum applies to --optimizer sgd or rmsprop (Adam's is --beta1)",
    );
    refused(
        &["--weight-decay", "0.1"],
        "--weight-decay applies to --optimizer adamw only",
    );
    refused(
        &["--lr-gamma", "0.5"],
        "--lr-gamma applies to --lr-schedule step only",
    );
    refused(
        &["--optimizer", "sgd", "--momentum", "1"],
        "invalid --momentum = 1: must be in [0, 1)",
    );
    refused(
        &["--lr-schedule", "step", "--lr-step-every", "0"],
        "invalid --lr-step-every = 0: must be at least 1",
    );
    // A config file's settings of another optimizer are refused as the flags are.
    let config = dir.path().join("c.json");
    std::fs::write(&config, r#"{"optimizer": "adam", "weight_decay": 0.5}"#).unwrap();
    refused(
        &["--config", config.to_str().unwrap()],
        "key `weight_decay` = 0.5: applies to optimizer adamw only",
    );
    assert!(!dir.path().join("no.json").exists());
    // The default writes none of the new keys: files are as before.
    let plain = dir.path().join("p.json");
    burnfit()
        .args(["train", "--steps", "5", "--out"])
        .arg(&plain)
        .assert()
        .success();
    let text = std::fs::read_to_string(&plain).unwrap();
    assert!(
        !text.contains("optimizer") && !text.contains("lr_schedule"),
        "{text}"
    );
}
