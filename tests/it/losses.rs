//! `--loss mse|mae|huber`: the same loss on both engines and every backend, its scale on a
//! standardized table, exact resume, and the flags' checks.

use burnfit::config::{ModelKind, TableConfig, Task, TrainingConfig};
use burnfit::loss::LossKind;
use burnfit::{BackendKind, EngineKind};
use predicates::str::contains;

use crate::common::{backends, burnfit, final_loss, run_engine, serial, state_bits};

#[test]
fn every_loss_trains_alike_on_both_engines_and_resumes_exactly() {
    let _guard = serial();
    let cpu = backends()
        .into_iter()
        .find(|b| b.kind != BackendKind::Wgpu)
        .unwrap();
    for (loss, steps) in [(LossKind::Huber, 1000), (LossKind::Mae, 300)] {
        // MAE's sign gradient makes long runs chaotic (both engines wander between 0.03 and
        // 0.13 after ~500 steps): compared over the first 300.
        let config = TrainingConfig {
            task: Task::Sine,
            model: ModelKind::Mlp,
            loss,
            // δ is a Huber setting only (another loss with it is refused).
            huber_delta: if loss == LossKind::Huber { 0.5 } else { 1.0 },
            ..Default::default()
        };
        let fused = run_engine(EngineKind::Fused, &config, &cpu, steps, None);
        let autodiff = run_engine(EngineKind::Autodiff, &config, &cpu, steps, None);
        let (f, a) = (final_loss(&fused), final_loss(&autodiff));
        assert!(
            (f - a).abs() <= 0.05 * a,
            "{loss:?}: fused {f} vs autodiff {a}"
        );
        let first = run_engine(EngineKind::Fused, &config, &cpu, steps / 2, None);
        let resumed = run_engine(
            EngineKind::Fused,
            &config,
            &cpu,
            steps - steps / 2,
            Some(&first),
        );
        assert_eq!(
            state_bits(&resumed),
            state_bits(&fused),
            "{loss:?}: resumed"
        );
        assert_eq!(
            resumed.meta.unwrap().config.loss,
            loss,
            "the checkpoint keeps its loss"
        );
        for gpu in backends()
            .into_iter()
            .filter(|b| b.kind == BackendKind::Wgpu)
        {
            let g = final_loss(&run_engine(EngineKind::Fused, &config, &gpu, steps, None));
            assert!(
                (g - f).abs() <= 1e-3 * f,
                "{loss:?}: wgpu fused {g} vs CPU fused {f}"
            );
        }
    }
    // The line's linear model with another loss leaves the line engine for the dense one.
    let line = TrainingConfig {
        loss: LossKind::Mae,
        ..Default::default()
    };
    let fused = run_engine(EngineKind::Fused, &line, &cpu, 1000, None);
    let autodiff = run_engine(EngineKind::Autodiff, &line, &cpu, 1000, None);
    let (w, wa) = (fused.params[0].data[0], autodiff.params[0].data[0]);
    assert!(
        (w - 2.5).abs() < 0.02 && (w - wa).abs() < 1e-3,
        "w fused {w}, autodiff {wa}"
    );
}

#[test]
fn huber_with_a_huge_delta_is_half_the_mse_in_the_targets_units() {
    // Adam does not see a gradient's scale, so Huber's loss with δ beyond every error trains
    // the MSE run's weights and logs half its loss — in the target's units, through the
    // table's standardization (δ divided by the target's std, the loss times std²).
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let mut text = String::from("a,b,y\n");
    for i in 0..500 {
        let (a, b) = ((i as f64 * 0.37).sin() * 3.0, (i as f64 * 0.11).cos());
        text.push_str(&format!(
            "{a},{b},{}\n",
            40.0 * a - 25.0 * b + 1000.0 + (i % 7) as f64
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let mse = TrainingConfig {
        steps: 300,
        data: Some(TableConfig::new(csv.display().to_string(), "y")),
        ..Default::default()
    };
    let huber = TrainingConfig {
        loss: LossKind::Huber,
        huber_delta: 1e6,
        ..mse.clone()
    };
    for backend in backends() {
        for engine in [EngineKind::Autodiff, EngineKind::Fused] {
            let m = final_loss(&run_engine(engine, &mse, &backend, 300, None));
            let h = final_loss(&run_engine(engine, &huber, &backend, 300, None));
            assert!(
                (h - 0.5 * m).abs() <= 1e-3 * m,
                "{:?} {engine}: huber {h} vs mse/2 {}",
                backend.kind,
                0.5 * m
            );
        }
    }
}

#[test]
fn the_cli_names_the_loss_and_checks_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.json");
    burnfit()
        .args([
            "train",
            "--loss",
            "huber",
            "--huber-delta",
            "0.5",
            "--steps",
            "50",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains(", seed 42, loss huber (δ 0.5)"));
    // Resumed without --loss: the checkpoint's.
    burnfit()
        .args(["train", "--steps", "10", "--resume"])
        .arg(&out)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("loss huber (δ 0.5)"));
    let refused = |args: &[&str], message: &str| {
        burnfit()
            .arg("train")
            .args(args)
            .arg("--out")
            .arg(dir.path().join("no.json"))
            .assert()
            .code(2)
            .stdout("")
            .stderr(format!("error: {message}\n"));
        assert!(!dir.path().join("no.json").exists());
    };
    refused(
        &["--huber-delta", "2"],
        "--huber-delta applies to --loss huber only",
    );
    refused(
        &["--loss", "huber", "--huber-delta", "0"],
        "invalid --huber-delta = 0: must be a finite number above 0",
    );
    // The default writes no loss keys: files from before losses existed are unchanged.
    let mse = dir.path().join("m.json");
    burnfit()
        .args(["train", "--steps", "5", "--out"])
        .arg(&mse)
        .assert()
        .success();
    let text = std::fs::read_to_string(&mse).unwrap();
    assert!(
        !text.contains("huber") && !text.contains("\"loss\":"),
        "{text}"
    );
}

#[test]
fn evaluate_reports_the_loss_the_checkpoint_was_trained_with() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let mut text = String::from("a,y\n");
    for i in 0..100 {
        text.push_str(&format!("{i},{}\n", 3 * i + (i % 5) * 10));
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("h.json");
    burnfit()
        .args(["train", "--data"])
        .arg(&csv)
        .args([
            "--target",
            "y",
            "--loss",
            "huber",
            "--huber-delta",
            "2",
            "--steps",
            "200",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let assert = burnfit()
        .args(["evaluate", "--json", "--checkpoint"])
        .arg(&out)
        .arg("--data")
        .arg(&csv)
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["loss"]["kind"], "huber");
    assert_eq!(report["loss"]["huber_delta"], 2.0);
    // Huber's loss with δ = 2 lies between the linear part's bound and half the MSE.
    let (huber, mse, mae) = (
        report["loss"]["value"].as_f64().unwrap(),
        report["mse"].as_f64().unwrap(),
        report["mae"].as_f64().unwrap(),
    );
    assert!(
        huber <= 0.5 * mse + 1e-9 && huber <= 2.0 * mae,
        "huber {huber}, mse {mse}, mae {mae}"
    );
    assert!(huber >= 2.0 * mae - 2.0, "huber {huber}, mae {mae}");
}
