//! `--model mlp`: the sine task on every backend, MLP checkpoints in every format, exact resume,
//! and autograd-written MLP files.

use burnfit::config::{ModelKind, Task, TrainingConfig};
use burnfit::data::sine::SineData;
use burnfit::model::{Activation, ModelSpec};
use burnfit::{Checkpoint, Engine, Trainer};
use predicates::str::contains;

use crate::common::{backends, burnfit, serial};

fn sine_config() -> TrainingConfig {
    TrainingConfig {
        task: Task::Sine,
        model: ModelKind::Mlp,
        ..Default::default()
    }
}

/// MSE of `checkpoint` on a batch of the sine task the run never saw (step 10^9).
fn fresh_batch_mse(checkpoint: &Checkpoint) -> f64 {
    let data = SineData::new(&TrainingConfig {
        batch: 4096,
        ..sine_config()
    });
    let (x, y) = data.host_batch(1_000_000_000);
    let params = checkpoint.named_params();
    x.iter()
        .zip(&y)
        .map(|(x, y)| {
            let z = checkpoint.spec.forward_host(&params, &[f64::from(*x)]);
            (z - f64::from(*y)).powi(2)
        })
        .sum::<f64>()
        / x.len() as f64
}

#[test]
fn the_default_sine_mlp_fits_on_every_backend() {
    let _guard = serial();
    let config = sine_config();
    for backend in backends() {
        let kind = backend.kind;
        let mut trainer = Trainer::new(config.clone(), backend).unwrap();
        trainer.run(config.steps, &mut ()).unwrap();
        let checkpoint = trainer.checkpoint().unwrap();
        assert_eq!(
            checkpoint.spec,
            ModelSpec {
                d_in: 1,
                hidden: vec![64, 64],
                activation: Activation::Tanh
            }
        );
        let mse = fresh_batch_mse(&checkpoint);
        assert!(mse <= 0.01, "{kind}: MSE {mse} on a fresh batch");
    }
}

#[test]
fn mlp_runs_resume_bit_for_bit_and_round_trip_through_every_format() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = TrainingConfig {
        steps: 50,
        hidden: vec![8, 5],
        activation: Activation::Relu,
        ..sine_config()
    };
    for backend in backends() {
        let kind = backend.kind;
        let mut straight = Trainer::new(config.clone(), backend.clone()).unwrap();
        straight.run(50, &mut ()).unwrap();
        let straight = straight.checkpoint().unwrap();
        let mut first = Trainer::new(config.clone(), backend.clone()).unwrap();
        first.run(30, &mut ()).unwrap();
        let mid = first.checkpoint().unwrap();
        for name in ["m.json", "m.bpk"] {
            let path = dir.path().join(name);
            mid.save(&path).unwrap();
            let loaded = Checkpoint::load(&path).unwrap();
            assert_eq!(loaded, mid, "{kind} {name}");
            let mut second = Trainer::resume(config.clone(), backend.clone(), &loaded).unwrap();
            second.run(20, &mut ()).unwrap();
            let resumed = second.checkpoint().unwrap();
            assert_eq!(resumed.params, straight.params, "{kind} {name}");
            assert_eq!(resumed.adam, straight.adam, "{kind} {name}");
        }
        let path = dir.path().join("m.safetensors");
        mid.clone().without_optimizer().save(&path).unwrap();
        assert_eq!(
            Checkpoint::load(&path).unwrap().params,
            mid.params,
            "{kind}"
        );
    }
}

#[test]
fn the_json_layout_is_the_autograd_crates_and_names_layers_w1_b1() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sine.json");
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--task",
            "sine",
            "--model",
            "mlp",
            "--hidden",
            "4,3",
            "--steps",
            "5",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("engine: mlp 1-4-3-1, tanh model"))
        .stdout(contains("final loss "));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let ids = json["name_to_id"].as_object().unwrap();
    for (i, name) in ["w1", "b1", "w2", "b2", "w3", "b3"].iter().enumerate() {
        assert_eq!(ids[&format!("\u{1}{name}")], i, "{name}");
        for (k, suffix) in ["m", "v", "t"].iter().enumerate() {
            assert_eq!(
                ids[&format!("linear_reg_adam\u{1}{i}{suffix}")],
                6 + 3 * i + k
            );
        }
    }
    assert_eq!(json["array_list"][2]["dim"], serde_json::json!([4, 3]));
    assert_eq!(json["array_list"][3]["dim"], serde_json::json!([1, 3]));

    // The autograd crate loads it.
    let env = autograd::VariableEnvironment::<f32>::load(&out).unwrap();
    use autograd::variable::NamespaceTrait;
    let namespace = env.default_namespace();
    let w2 = namespace.get_array_by_name("w2").unwrap();
    assert_eq!(w2.borrow().shape(), &[4, 3]);

    burnfit()
        .args(["inspect"])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("model: mlp 1-4-3-1, tanh"));
}

/// An MLP file as an autograd program writes it: w1, b1, … in its own namespace, no metadata.
fn autograd_mlp_file(dir: &std::path::Path) -> (std::path::PathBuf, Checkpoint) {
    let spec = ModelSpec {
        d_in: 1,
        hidden: vec![3],
        activation: Activation::Relu,
    };
    let params = spec.init(5);
    let mut arrays = Vec::new();
    let mut names = serde_json::Map::new();
    for (i, (name, p)) in spec.param_names().iter().zip(&params).enumerate() {
        arrays.push(serde_json::json!({"v": 1, "dim": p.shape, "data": p.data}));
        names.insert(format!("sine_mlp\u{1}{name}"), serde_json::json!(i));
    }
    let text = serde_json::json!({"array_list": arrays, "name_to_id": names});
    let path = dir.join("autograd_mlp.json");
    std::fs::write(&path, text.to_string()).unwrap();
    let checkpoint = Checkpoint {
        spec,
        params,
        adam: None,
        meta: None,
    };
    (path, checkpoint)
}

#[test]
fn an_autograd_written_mlp_loads_for_predict_inspect_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (path, expected) = autograd_mlp_file(dir.path());
    let loaded = Checkpoint::load(&path)
        .unwrap()
        .with_activation(Activation::Relu);
    assert_eq!(loaded, expected);
    let want = expected.spec.forward_host(&expected.named_params(), &[2.0]) as f32;
    let assert = burnfit()
        .args([
            "predict",
            "--backend",
            "ndarray",
            "--activation",
            "relu",
            "--x",
            "2",
            "--checkpoint",
        ])
        .arg(&path)
        .assert()
        .success();
    let got: f32 = String::from_utf8(assert.get_output().stdout.clone())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    burnfit()
        .args(["inspect"])
        .arg(&path)
        .assert()
        .success()
        .stdout(contains(
            "model: mlp 1-3-1 (the file does not record its activation",
        ))
        .stdout(contains("sine_mlp/w1"));
    let out = dir.path().join("resumed.bpk");
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--task",
            "sine",
            "--activation",
            "relu",
            "--steps",
            "3",
            "--resume",
        ])
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("mlp 1-3-1, relu"));
    let resumed = Checkpoint::load(&out).unwrap();
    assert_eq!(resumed.spec.hidden, vec![3]);
    assert_eq!(resumed.meta.unwrap().step, 3);
}
