//! results.json as written and read: the autograd layout, the metadata, atomic replacement.

use std::collections::BTreeMap;

use burnfit::checkpoint::FORMAT_VERSION;
use burnfit::{Checkpoint, TrainingConfig, train};
use serde_json::Value;

use crate::common::{autograd_fixture, backends, serial};

fn layout(file: &Value) -> BTreeMap<String, (u64, Value, u64)> {
    // name -> (id, dim, v)
    let list = file["array_list"].as_array().unwrap();
    file["name_to_id"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, id)| {
            let id = id.as_u64().unwrap();
            let entry = &list[id as usize];
            (
                name.clone(),
                (id, entry["dim"].clone(), entry["v"].as_u64().unwrap()),
            )
        })
        .collect()
}

#[test]
fn the_file_has_the_autograd_programs_layout_and_our_values() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = TrainingConfig {
        steps: 300,
        ..Default::default()
    };
    for backend in backends() {
        let kind = backend.kind;
        let report = train(&config, backend, |_| {}).unwrap();
        let path = dir.path().join(format!("{kind}.json"));
        report.checkpoint.save(&path).unwrap();

        let ours: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let theirs: Value =
            serde_json::from_slice(&std::fs::read(autograd_fixture()).unwrap()).unwrap();
        assert_eq!(
            layout(&ours),
            layout(&theirs),
            "{kind}: same names, ids, shapes as the original"
        );
        assert_eq!(ours["array_list"].as_array().unwrap().len(), 8);

        let value = |id: usize| ours["array_list"][id]["data"][0].as_f64().unwrap() as f32;
        assert_eq!(value(0), report.final_w(), "{kind}");
        assert_eq!(value(1), report.final_b(), "{kind}");
        assert_eq!(value(4), 301.0, "{kind}: t = updates + 1");
        assert_eq!(value(7), 301.0, "{kind}");
        let adam = report.checkpoint.adam.as_ref().unwrap();
        assert_eq!(value(2), adam.moments[0].0.data[0]);
        assert_eq!(value(6), adam.moments[1].1.data[0]);

        let meta = &ours["burnfit"];
        assert_eq!(meta["format_version"], FORMAT_VERSION);
        assert_eq!(meta["backend"], kind.name());
        assert_eq!(meta["step"], 300);
        assert_eq!(meta["seed"], 42);
        assert_eq!(meta["crate_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(meta["config"]["steps"], 300);
        assert_eq!(meta["config"]["epsilon"].as_f64().unwrap() as f32, 1e-8);
        let final_loss = meta["final_loss"].as_f64().unwrap() as f32;
        assert_eq!(Some(final_loss), report.run.final_loss());

        assert_eq!(
            Checkpoint::load(&path).unwrap(),
            report.checkpoint,
            "{kind}: reads back whole"
        );
    }
}

#[test]
fn the_autograd_fixture_loads_with_its_adam_state() {
    let checkpoint = Checkpoint::load(&autograd_fixture()).unwrap();
    assert_eq!(checkpoint.scalar_param("w"), Some(2.4951487));
    assert_eq!(checkpoint.scalar_param("b"), Some(-1.0430901));
    let adam = checkpoint.adam.unwrap();
    assert_eq!(adam.updates, 1000);
    assert_eq!(adam.moments[0].1.data, vec![682.0972]);
    assert_eq!(adam.moments[1].0.data, vec![-0.000022241335]);
    assert!(checkpoint.meta.is_none());
}

#[test]
fn a_failed_save_leaves_the_existing_checkpoint_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.json");
    let good = Checkpoint::load(&autograd_fixture()).unwrap();
    good.save(&path).unwrap();
    let before = std::fs::read(&path).unwrap();

    let mut bad = good.clone();
    bad.params[1].data[0] = f32::NAN;
    let err = bad.save(&path).unwrap_err().to_string();
    assert!(err.contains("non-finite") && err.contains('b'), "{err}");
    let mut bad = good.clone();
    bad.adam.as_mut().unwrap().moments[0].1.data[0] = f32::INFINITY;
    assert!(
        bad.save(&path)
            .unwrap_err()
            .to_string()
            .contains("Adam v of w")
    );

    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

#[test]
fn a_directory_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let good = Checkpoint::load(&autograd_fixture()).unwrap();
    let err = good.save(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is a directory"), "{err}");
    let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is a directory"), "{err}");
}
