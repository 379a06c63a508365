//! SafeTensors and burnpack: round trips, conversion, and burn's own stores reading our files.

use burn::store::{BurnpackStore, ModuleSnapshot, SafetensorsStore};
use burnfit::checkpoint::Format;
use burnfit::model::LinearRegressionConfig;
use burnfit::{Checkpoint, TrainingConfig, train};

use crate::common::{autograd_fixture, backends, burnfit, serial};

fn trained() -> Checkpoint {
    let _guard = serial();
    let config = TrainingConfig {
        steps: 150,
        ..Default::default()
    };
    train(&config, backends().remove(0), |_| {})
        .unwrap()
        .checkpoint
}

#[test]
fn every_format_round_trips_what_it_can_hold() {
    let checkpoint = trained();
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("a.json", Format::Json),
        ("a.bpk", Format::Bpk),
        ("a.safetensors", Format::Safetensors),
    ] {
        let path = dir.path().join(name);
        let expected = if format.keeps_optimizer() {
            checkpoint.clone()
        } else {
            checkpoint.clone().without_optimizer()
        };
        expected.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), expected, "{name}");
    }
    let err = checkpoint
        .save(&dir.path().join("b.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot hold the optimizer state"), "{err}");
    assert!(!dir.path().join("b.safetensors").exists());
}

#[test]
fn burn_stores_load_our_files_into_a_burn_module() {
    let checkpoint = trained();
    let dir = tempfile::tempdir().unwrap();
    let device = backends().remove(0).device;
    let cases = [
        ("m.bpk", checkpoint.clone()),
        ("m.safetensors", checkpoint.clone().without_optimizer()),
    ];
    for (name, c) in cases {
        let path = dir.path().join(name);
        c.save(&path).unwrap();
        let mut model = LinearRegressionConfig::new().init(12345, &device);
        let result = if name.ends_with(".bpk") {
            model
                .load_from(&mut BurnpackStore::from_file(&path).allow_partial(true))
                .map(|r| r.applied.len())
                .map_err(|e| e.to_string())
        } else {
            model
                .load_from(&mut SafetensorsStore::from_file(&path))
                .map(|r| r.applied.len())
                .map_err(|e| e.to_string())
        };
        assert_eq!(result, Ok(2), "{name}: burn applied w and b");
        let [w, b] = model.to_host().unwrap();
        assert_eq!(vec![w, b], c.params, "{name}");
    }
}

#[test]
fn convert_moves_between_all_formats_and_refuses_to_drop_state_silently() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.json");
    std::fs::copy(autograd_fixture(), &json).unwrap();
    let bpk = dir.path().join("a.bpk");
    let st = dir.path().join("a.safetensors");
    let back = dir.path().join("back.json");
    burnfit()
        .arg("convert")
        .arg(&json)
        .arg(&bpk)
        .assert()
        .success();
    burnfit()
        .arg("convert")
        .arg(&bpk)
        .arg(&back)
        .assert()
        .success();
    assert_eq!(
        Checkpoint::load(&back).unwrap(),
        Checkpoint::load(&json).unwrap(),
        "json -> bpk -> json is lossless"
    );

    let assert = burnfit().arg("convert").arg(&bpk).arg(&st).assert().code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("--drop-optimizer") && stderr.contains("a.bpk"),
        "{stderr}"
    );
    assert!(!st.exists());
    burnfit()
        .arg("convert")
        .arg(&bpk)
        .arg(&st)
        .arg("--drop-optimizer")
        .assert()
        .success();
    let weights = Checkpoint::load(&st).unwrap();
    assert_eq!(weights.params, Checkpoint::load(&json).unwrap().params);
    assert!(weights.adam.is_none());

    burnfit()
        .arg("convert")
        .arg(&st)
        .arg(dir.path().join("w.json"))
        .assert()
        .success();
    burnfit()
        .arg("convert")
        .arg(&json)
        .arg(dir.path().join("x.txt"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown format"));
}

#[test]
fn safetensors_names_and_shapes_are_the_documented_ones() {
    let checkpoint = trained().without_optimizer();
    let bytes = checkpoint.to_bytes(Format::Safetensors).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<(String, Vec<usize>)> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![("b".to_string(), vec![1, 1]), ("w".to_string(), vec![1, 1])]
    );
    let w = file.tensor("w").unwrap();
    assert_eq!(
        f32::from_le_bytes(w.data().try_into().unwrap()),
        checkpoint.params[0].data[0]
    );
}

#[test]
fn python_reads_our_safetensors_when_available() {
    let python = std::process::Command::new("python3")
        .args(["-c", "import safetensors.numpy"])
        .status();
    if !python.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var("BURNFIT_REQUIRE_PYTHON").is_err(),
            "python3 with safetensors is required here"
        );
        eprintln!("python3 with safetensors not installed: skipping");
        return;
    }
    let checkpoint = trained().without_optimizer();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint.save(&path).unwrap();
    // The three lines the README shows.
    let script = "from safetensors.numpy import load_file\nt = load_file(__import__('sys').argv[1])\nprint(t['w'].shape, t['w'][0, 0], t['b'][0, 0])";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let values: Vec<f32> = text
        .split_whitespace()
        .skip(2)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(text.starts_with("(1, 1)"), "{text}");
    assert_eq!(
        values,
        vec![checkpoint.params[0].data[0], checkpoint.params[1].data[0]],
        "{text}"
    );
}
