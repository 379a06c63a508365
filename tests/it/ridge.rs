//! `--l2 λ`: the ridge penalty on both engines and every backend, held to the ridge closed form
//! that the report after a CSV fit prints.

use burnfit::config::{TableConfig, TrainingConfig};
use burnfit::{Checkpoint, EngineKind};
use predicates::str::contains;

use crate::common::{backends, burnfit, serial};

fn diabetes() -> TableConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/data/diabetes.csv");
    TableConfig::new(path.display().to_string(), "progression")
}

#[test]
fn full_batch_training_with_a_penalty_reaches_the_ridge_closed_form() {
    let _guard = serial();
    let config = TrainingConfig {
        data: Some(diabetes()),
        l2: 0.1,
        batch: 4096,
        lr: 0.02,
        ..Default::default()
    };
    let table = burnfit::data::PreparedTable::load(config.data.as_ref().unwrap(), 42).unwrap();
    let ridge = burnfit::ridge::fit(&table, 0.1).unwrap();
    let rows = table.in_memory().unwrap();
    let ols = burnfit::ols::fit_table(&rows.table, &rows.train).unwrap();
    for backend in backends() {
        for engine in [EngineKind::Fused, EngineKind::Autodiff] {
            if engine == EngineKind::Autodiff && backend.kind == burnfit::BackendKind::Wgpu {
                continue; // 20,000 autodiff steps on a software adapter: too slow for a test
            }
            let mut trainer =
                burnfit::open_engine(engine, config.clone(), backend.clone(), None).unwrap();
            trainer.run(20_000, &mut ()).unwrap();
            let c: Checkpoint = trainer.checkpoint().unwrap();
            let w: Vec<f64> = c.params[0].data.iter().map(|v| f64::from(*v)).collect();
            let scale = ridge.weights.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (j, (got, want)) in w.iter().zip(&ridge.weights).enumerate() {
                assert!(
                    (got - want).abs() <= 5e-4 * scale,
                    "{:?} {engine} w{j}: {got} vs ridge {want}",
                    backend.kind
                );
            }
            // And the penalty matters: the weights are not the least-squares ones.
            let off = w
                .iter()
                .zip(&ols.weights)
                .map(|(a, b)| (a - b).abs())
                .fold(0f64, f64::max);
            assert!(
                off > 0.1,
                "{:?} {engine}: ridge weights equal OLS's",
                backend.kind
            );
        }
    }
}

#[test]
fn the_report_compares_with_the_ridge_fit_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = diabetes().path;
    burnfit()
        .args([
            "train",
            "--data",
            &data,
            "--target",
            "progression",
            "--l2",
            "0.1",
            "--epochs",
            "20",
            "--out",
        ])
        .arg(dir.path().join("r.json"))
        .assert()
        .success()
        .stdout(contains("ridge (closed form)"))
        .stdout(contains("coefficients              burnfit          ridge"));
    for bad in ["-1", "nan"] {
        burnfit()
            .args(["train", "--l2", bad, "--out"])
            .arg(dir.path().join("bad.json"))
            .assert()
            .code(2)
            .stderr(format!(
                "error: invalid --l2 = {}: must be a finite number, 0 or more\n",
                if bad == "nan" { "NaN" } else { bad }
            ));
    }
    assert!(!dir.path().join("bad.json").exists());
}

#[test]
fn ols_l2_prints_the_ridge_fit_train_is_checked_against() {
    let data = diabetes().path;
    let assert = burnfit()
        .args([
            "ols",
            "--data",
            &data,
            "--target",
            "progression",
            "--l2",
            "0.1",
            "--json",
        ])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let table = burnfit::data::PreparedTable::load(&diabetes(), 42).unwrap();
    // λ travels as f32, as in a config.
    let ridge = burnfit::ridge::fit(&table, f64::from(0.1f32)).unwrap();
    let weights: Vec<f64> = json["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(weights, ridge.weights);
    assert_eq!(json["bias"].as_f64().unwrap(), ridge.bias);
    assert_eq!(json["standardized"], true);
    assert_eq!(json["train_rows"], 354);
    // λ is reported as typed, not as the f32's value widened (0.10000000149011612).
    assert_eq!(json["l2"].as_f64(), Some(0.1));
    // Raw units give another fit; a negative λ and --no-standardize alone are usage errors.
    let raw = burnfit()
        .args([
            "ols",
            "--data",
            &data,
            "--target",
            "progression",
            "--l2",
            "0.1",
            "--no-standardize",
            "--json",
        ])
        .assert()
        .success();
    let raw: serde_json::Value = serde_json::from_slice(&raw.get_output().stdout).unwrap();
    assert_ne!(raw["weights"], json["weights"]);
    burnfit()
        .args([
            "ols",
            "--data",
            &data,
            "--target",
            "progression",
            "--l2",
            "-1",
        ])
        .assert()
        .code(2)
        .stderr("error: invalid --l2 = -1: must be a finite number, 0 or more\n");
    burnfit()
        .args([
            "ols",
            "--data",
            &data,
            "--target",
            "progression",
            "--no-standardize",
        ])
        .assert()
        .code(2);
}
