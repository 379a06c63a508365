//! Checkpoint files as written and read: the autograd layout, the metadata, atomic replacement,
//! Adam's exact step count, a file read by its content whatever its name, what `convert` leaves
//! out, and the memory a huge metadata block costs.

use std::collections::BTreeMap;
use std::process::Command;

use burnfit::checkpoint::{FORMAT_VERSION, Format};
use burnfit::{Checkpoint, TrainingConfig, train};
use serde_json::Value;

use crate::common::{
    autograd_fixture, backends, binary, burnfit, checkpoint_with_updates, run_err, serial, skip,
};

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

#[test]
fn adam_counts_exactly_past_two_to_the_24() {
    let dir = tempfile::tempdir().unwrap();
    for updates in [
        (1 << 24) - 2,
        (1 << 24) - 1,
        1 << 24,
        (1 << 24) + 1,
        (1 << 24) + 7,
        1 << 40,
    ] {
        let checkpoint = checkpoint_with_updates(updates);
        for format in [Format::Json, Format::Bpk] {
            let path = dir.path().join(format!(
                "c.{}",
                if format == Format::Json {
                    "json"
                } else {
                    "bpk"
                }
            ));
            checkpoint.save_as(&path, format).unwrap();
            let loaded = Checkpoint::load(&path).unwrap();
            assert_eq!(loaded.adam.unwrap().updates, updates, "{format}");
        }
    }
    // Resuming past 2^24 counts on exactly, and the next file reads back.
    let start = checkpoint_with_updates((1 << 24) + 1);
    let resume = dir.path().join("r.json");
    start.save_as(&resume, Format::Json).unwrap();
    let out = dir.path().join("out.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "3", "--resume"])
        .arg(&resume)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let resumed = Checkpoint::load(&out).unwrap();
    assert_eq!(resumed.adam.as_ref().unwrap().updates, (1 << 24) + 4);
    assert_eq!(resumed.step(), (1 << 24) + 4);
}

#[test]
fn adam_t_without_an_exact_count_is_read_as_written_and_disagreement_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An autograd file (no metadata) with t = 16777218: a whole number, taken as is.
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replace("[1001.0]", "[16777218.0]");
    let path = dir.path().join("big_t.json");
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        Checkpoint::load(&path).unwrap().adam.unwrap().updates,
        16_777_217
    );
    // Metadata whose exact count does not round to the file's t.
    let mut checkpoint = checkpoint_with_updates(5000);
    checkpoint.meta.as_mut().unwrap().adam_updates = Some(3000);
    let path = dir.path().join("disagree.json");
    checkpoint.save_as(&path, Format::Json).unwrap();
    let err = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("disagrees") && err.contains("disagree.json"),
        "{err}"
    );
    // A fractional t says what is expected.
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replace("[1001.0]", "[2.5]");
    std::fs::write(&path, text).unwrap();
    let err = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(err.contains("whole number from 1"), "{err}");
}

#[test]
fn a_checkpoint_is_read_by_its_content_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("a.json");
    std::fs::copy(autograd_fixture(), &json).unwrap();
    // Burnpack bytes under a .json name: written, then read back as burnpack.
    burnfit()
        .arg("convert")
        .arg(&json)
        .arg(&json)
        .args(["--format", "bpk"])
        .assert()
        .success();
    assert_eq!(&std::fs::read(&json).unwrap()[..4], b"NRUB");
    let loaded = Checkpoint::load(&json).unwrap();
    assert_eq!(
        loaded.params,
        Checkpoint::load(&autograd_fixture()).unwrap().params
    );
    let stdout = burnfit().arg("inspect").arg(&json).output().unwrap().stdout;
    assert!(String::from_utf8_lossy(&stdout).contains("format: burnpack"));
    // SafeTensors bytes with no extension at all.
    let bare = dir.path().join("model");
    loaded
        .without_optimizer()
        .save_as(&bare, Format::Safetensors)
        .unwrap();
    assert!(Checkpoint::load(&bare).is_ok());
}

/// Peak resident memory of a burnfit run, in KiB, from GNU time (None where it is missing).
fn peak_kib(args: &[&str]) -> Option<u64> {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(binary())
        .args(args)
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn a_huge_metadata_block_costs_about_its_own_size_in_memory() {
    let Some(baseline) = peak_kib(&["--version"]) else {
        return skip("the memory test", "no /usr/bin/time");
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    // 28 MB of metadata: two million short strings (a JSON tree of it took 280 MB).
    let junk = vec!["\"xxxxxxxxxx\""; 2_000_000].join(",");
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replacen(
            '{',
            &format!("{{\"burnfit\":{{\"format_version\":1,\"junk\":[{junk}]}},"),
            1,
        );
    std::fs::write(&path, &text).unwrap();
    let peak = peak_kib(&["inspect", path.to_str().unwrap()]).unwrap();
    let file_kib = text.len() as u64 / 1024;
    assert!(
        peak - baseline.min(peak) <= 3 * file_kib,
        "peak {peak} KiB for a {file_kib} KiB file (baseline {baseline} KiB)"
    );
    let (code, stderr) = run_err(&["inspect", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn convert_names_what_it_leaves_out_and_metadata_keeps_short_floats() {
    let dir = tempfile::tempdir().unwrap();
    // One more variable, in a namespace of its own, as array 8.
    let text = std::fs::read_to_string(autograd_fixture())
        .unwrap()
        .replacen(
            "],\"name_to_id\":{",
            ",{\"v\":1,\"dim\":[1],\"data\":[5.0]}],\"name_to_id\":{\"other\\u0001extra\":8,",
            1,
        );
    let input = dir.path().join("in.json");
    std::fs::write(&input, text).unwrap();
    let output = burnfit()
        .arg("convert")
        .arg(&input)
        .arg(dir.path().join("out.bpk"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("note: left out") && stdout.contains("other/extra"),
        "{stdout}"
    );

    let out = dir.path().join("m.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "2", "--out"])
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("\"lr\":0.01,"), "{text}");
}
