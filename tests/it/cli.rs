//! The binary end to end: what users type, what they see, what is left on disk.

use predicates::prelude::*;
use predicates::str::contains;

use crate::common::{burnfit, wgpu_available};

#[test]
fn train_prints_the_loss_every_100_steps_and_the_final_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let assert = burnfit()
        .args(["train", "--backend", "ndarray", "--out"])
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let steps: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("step "))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        steps,
        (1..=10).map(|i| i * 100).collect::<Vec<_>>(),
        "{stdout}"
    );
    let final_line = stdout
        .lines()
        .find(|l| l.starts_with("final w = "))
        .expect(&stdout);
    let numbers: Vec<f32> = final_line
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 2, "{final_line}");
    assert!(
        (numbers[0] - 2.5).abs() < 0.05 && (numbers[1] + 1.0).abs() < 0.05,
        "{final_line}"
    );

    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let w = file["array_list"][0]["data"][0].as_f64().unwrap();
    assert!(
        (w as f32 - numbers[0]).abs() < 1e-5,
        "printed w matches the saved w"
    );
    assert_eq!(file["burnfit"]["backend"], "ndarray");
}

#[test]
fn flags_override_the_config_file_which_overrides_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cfg.json");
    std::fs::write(&config, r#"{"steps": 50, "log_every": 10, "seed": 9}"#).unwrap();
    let out = dir.path().join("r.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "30", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("step     30").and(contains("step     40").not()));
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let saved = &file["burnfit"]["config"];
    assert_eq!(
        (
            saved["steps"].as_u64(),
            saved["log_every"].as_u64(),
            saved["seed"].as_u64()
        ),
        (Some(30), Some(10), Some(9))
    );
    assert_eq!(saved["batch"], 64, "untouched settings keep their defaults");
}

#[test]
fn help_describes_every_flag_with_its_default() {
    let assert = burnfit().args(["train", "--help"]).assert().success();
    let help = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for expected in [
        "--steps <N>",
        "[default: 1000]",
        "--batch <N>",
        "[default: 64]",
        "--lr <X>",
        "[default: 0.01]",
        "--seed <N>",
        "[default: 42]",
        "--true-w <X>",
        "[default: 2.5]",
        "--true-b <X>",
        "[default: -1]",
        "--noise <X>",
        "[default: 0.5]",
        "--log-every <N>",
        "[default: 100]",
        "--out <PATH>",
        "[default: results.json]",
        "--backend",
        "[default: auto]",
        "--config <FILE>",
    ] {
        assert!(help.contains(expected), "missing {expected:?} in:\n{help}");
    }
}

#[test]
fn bad_settings_are_one_line_errors_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--lr".into(), "-1".into()], "--lr"),
        (vec!["--batch".into(), "0".into()], "--batch"),
        (vec!["--noise".into(), "nan".into()], "--noise"),
        (
            vec![
                "--config".into(),
                dir.path().join("missing.json").display().to_string(),
            ],
            "missing.json",
        ),
        (
            vec!["--config".into(), dir.path().display().to_string()],
            "config file",
        ),
    ];
    for (args, expected) in cases {
        let assert = burnfit()
            .args(["train", "--backend", "ndarray"])
            .args(&args)
            .current_dir(dir.path())
            .assert()
            .code(2);
        let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
    }
    let bad = dir.path().join("bad.json");
    for (text, expected) in [
        ("{\"stepz\": 3}", "unknown field `stepz`"),
        ("{\"steps\": ", "bad.json"),
        ("{\"steps\": -4}", "steps"),
    ] {
        std::fs::write(&bad, text).unwrap();
        burnfit()
            .args(["train", "--backend", "ndarray", "--config"])
            .arg(&bad)
            .assert()
            .code(2)
            .stderr(contains(expected));
    }
    assert!(
        !dir.path().join("results.json").exists(),
        "nothing written on a usage error"
    );
}

#[test]
fn a_diverging_run_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    std::fs::write(&out, b"last good checkpoint").unwrap();
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--lr",
            "1e30",
            "--log-every",
            "1",
            "--out",
        ])
        .arg(&out)
        .assert()
        .code(1)
        .stderr(contains("diverged at step"));
    assert_eq!(std::fs::read(&out).unwrap(), b"last good checkpoint");
}

#[test]
fn an_unwritable_destination_is_named_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope/results.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "5", "--out"])
        .arg(&missing)
        .assert()
        .code(1)
        .stderr(contains("nope").and(contains("does not exist")));
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "5", "--out"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(contains("is a directory"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn backends_lists_every_compiled_backend() {
    let assert = burnfit().arg("backends").assert().success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for kind in burnfit::BackendKind::compiled() {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(kind.name()))
            .expect(&stdout);
        if kind != burnfit::BackendKind::Wgpu || wgpu_available() {
            assert!(line.contains(" working"), "{line}");
        }
        if kind == burnfit::BackendKind::Wgpu && wgpu_available() {
            assert!(line.contains("adapter: "), "{line}");
        }
    }
    let assert = burnfit().args(["backends", "--json"]).assert().success();
    let json: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(
        json.as_array().unwrap().len(),
        burnfit::BackendKind::compiled().len()
    );
}

#[test]
fn wgpu_without_any_vulkan_driver_is_a_clear_error_not_a_panic() {
    if !burnfit::BackendKind::Wgpu.is_compiled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let assert = burnfit()
        .args(["train", "--backend", "wgpu", "--steps", "5", "--out"])
        .arg(dir.path().join("r.json"))
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        // No EGL vendor either, or wgpu falls back to OpenGL on Mesa's llvmpipe.
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl.json")
        .env("__EGL_VENDOR_LIBRARY_DIRS", "/nonexistent")
        .assert()
        .code(1);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("no usable adapter"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("r.json").exists());
}

#[test]
fn auto_never_picks_a_software_vulkan_device() {
    let dir = tempfile::tempdir().unwrap();
    let assert = burnfit()
        .args(["train", "--steps", "3", "--out"])
        .arg(dir.path().join("r.json"))
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let first = stdout.lines().next().unwrap();
    assert!(first.starts_with("training on "), "{first}");
    if first.contains("wgpu") {
        assert!(
            !first.contains(", Cpu on "),
            "auto took a software adapter: {first}"
        );
    }
}

#[test]
fn resume_continues_where_the_file_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, straight) = (
        dir.path().join("600.json"),
        dir.path().join("1000.json"),
        dir.path().join("s.json"),
    );
    burnfit()
        .args(["train", "--backend", "ndarray", "--steps", "600", "--out"])
        .arg(&first)
        .assert()
        .success();
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "400",
            "--resume",
        ])
        .arg(&first)
        .arg("--out")
        .arg(&second)
        .assert()
        .success()
        .stdout(
            contains("steps 601..1000")
                .and(contains("step   1000"))
                .and(contains("step    600").not()),
        );
    burnfit()
        .args(["train", "--backend", "ndarray", "--out"])
        .arg(&straight)
        .assert()
        .success();
    let a = burnfit::Checkpoint::load(&second).unwrap();
    let b = burnfit::Checkpoint::load(&straight).unwrap();
    assert_eq!(a.params, b.params);
    assert_eq!(a.adam, b.adam);
    // Without --steps, a finished run has nothing left to do.
    burnfit()
        .args(["train", "--backend", "ndarray", "--resume"])
        .arg(&second)
        .arg("--out")
        .arg(dir.path().join("x.json"))
        .assert()
        .code(2)
        .stderr(contains("--steps"));
}

#[test]
fn the_autograd_file_resumes_with_a_note_about_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "200",
            "--resume",
        ])
        .arg(crate::common::autograd_fixture())
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("no burnfit metadata").and(contains("steps 1001..1200")));
    let c = burnfit::Checkpoint::load(&out).unwrap();
    assert_eq!(c.adam.unwrap().updates, 1200);
    // With fresh batches the bias moves from the file's −1.043 towards −1.
    assert!(
        (c.params[1].data[0] + 1.0).abs() < 0.04,
        "{:?}",
        c.params[1]
    );
}

#[test]
fn save_every_leaves_a_resumable_checkpoint_at_each_multiple() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "250",
            "--save-every",
            "100",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(
            contains("r.json at step 100")
                .and(contains("r.json at step 200"))
                .and(contains("at step 250").not()),
        );
    let c = burnfit::Checkpoint::load(&out).unwrap();
    assert_eq!(c.meta.unwrap().step, 250);
    // A multiple that is also the last step is written once, by the final save.
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "200",
            "--save-every",
            "100",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("r.json at step 100").and(contains("at step 200").not()));
}

#[test]
fn predict_prints_one_prediction_per_input() {
    let fixture = crate::common::autograd_fixture();
    let (w, b) = (2.4951487f32, -1.0430901f32);
    for backend in burnfit::BackendKind::compiled() {
        if backend == burnfit::BackendKind::Wgpu && !wgpu_available() {
            continue;
        }
        let assert = burnfit()
            .args([
                "predict",
                "--backend",
                backend.name(),
                "--x",
                "0,1,-2.5",
                "--checkpoint",
            ])
            .arg(&fixture)
            .assert()
            .success();
        let got: Vec<f32> = String::from_utf8(assert.get_output().stdout.clone())
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let expected = [b, w + b, -2.5 * w + b];
        assert_eq!(got.len(), 3);
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-5, "{backend}: {got:?} vs {expected:?}");
        }
    }
    let assert = burnfit()
        .args([
            "predict",
            "--backend",
            "ndarray",
            "--x",
            "-",
            "--checkpoint",
        ])
        .arg(&fixture)
        .write_stdin("2\n\n4\n")
        .assert()
        .success();
    let lines: Vec<f32> = String::from_utf8(assert.get_output().stdout.clone())
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!((lines[1] - (4.0 * w + b)).abs() < 1e-5);
}

#[test]
fn inspect_lists_variables_optimizer_and_metadata() {
    let fixture = crate::common::autograd_fixture();
    burnfit()
        .arg("inspect")
        .arg(&fixture)
        .assert()
        .success()
        .stdout(
            contains("format: autograd results.json")
                .and(contains("namespaces: (default), linear_reg_adam"))
                .and(contains("linear_reg_adam/0v"))
                .and(contains("682.0972"))
                .and(contains("model: w = 2.4951487, b = -1.0430901"))
                .and(contains("optimizer: Adam, 1000 updates"))
                .and(contains("burnfit metadata: none")),
        );
    // Extra variables and namespaces are listed, the model still loads.
    let dir = tempfile::tempdir().unwrap();
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    file["array_list"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"v": 1, "dim": [2], "data": [1.0, 2.0]}));
    file["name_to_id"]["other_ns\u{1}extra"] = serde_json::json!(8);
    let path = dir.path().join("extra.json");
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    let assert = burnfit()
        .args(["inspect", "--json"])
        .arg(&path)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(json["others"], serde_json::json!(["other_ns/extra"]));
    assert_eq!(
        json["namespaces"],
        serde_json::json!(["", "linear_reg_adam", "other_ns"])
    );
    assert_eq!(json["optimizer_updates"], 1000);
    assert_eq!(json["variables"].as_array().unwrap().len(), 9);
    burnfit()
        .args([
            "predict",
            "--x",
            "1",
            "--backend",
            "ndarray",
            "--checkpoint",
        ])
        .arg(&path)
        .assert()
        .success();
}

#[test]
fn ctrl_c_saves_a_final_checkpoint_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("interrupted.json");
    let out_arg = out.to_str().unwrap();
    let child = crate::common::start_training(
        &[
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "100000000",
            "--log-every",
            "500",
            "--out",
            out_arg,
        ],
        &[],
    );
    let (code, stderr) = crate::common::signal_and_wait(child, "INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted at step") && stderr.contains("saved checkpoint"),
        "{stderr}"
    );
    let saved = burnfit::Checkpoint::load(&out).unwrap();
    let step = saved.meta.unwrap().step;
    assert!((500..100_000_000).contains(&step), "{step}");
    assert!(
        stderr.contains(&format!("interrupted at step {step}")),
        "{stderr}"
    );
    assert_eq!(saved.adam.unwrap().updates, step);
}

#[test]
fn reruns_write_identical_files_on_cpu_backends() {
    // wgpu is left out: autotune times kernels in each process and may pick another reduction
    // order, which changes the last bits (measured on an H200; on lavapipe the bits matched).
    let dir = tempfile::tempdir().unwrap();
    for backend in burnfit::BackendKind::compiled() {
        if backend == burnfit::BackendKind::Wgpu {
            continue;
        }
        let files: Vec<Vec<u8>> = (0..2)
            .map(|i| {
                let out = dir.path().join(format!("{backend}-{i}.json"));
                burnfit()
                    .args([
                        "train",
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

/// One definition per setting: every config key is a `train` flag and a row of the settings
/// table in docs/workload-and-settings.md, and every settings flag is a config key.
#[test]
fn every_setting_is_a_config_key_a_flag_and_a_documented_row() {
    use clap::{Args, CommandFactory};
    // Every optional key present: a table, and a loss other than the default.
    let config = burnfit::TrainingConfig {
        data: Some(burnfit::config::TableConfig {
            out_of_core: true,
            cache_dir: Some("cache".into()),
            ..burnfit::config::TableConfig::new("d.csv", "y")
        }),
        loss: burnfit::loss::LossKind::Huber,
        huber_delta: 2.0,
        l2: 0.5,
        optimizer: burnfit::optim::OptimizerKind::Rmsprop,
        momentum: 0.5,
        rmsprop_alpha: 0.9,
        weight_decay: 0.1,
        lr_schedule: burnfit::optim::ScheduleKind::Step,
        warmup_steps: 10,
        lr_step_every: 10,
        lr_gamma: 0.5,
        ..Default::default()
    };
    let value = serde_json::to_value(&config).unwrap();
    let object = value.as_object().unwrap();
    let mut keys: Vec<(String, String)> = Vec::new(); // (config key, flag)
    for (key, value) in object {
        if key == "data" {
            for data_key in value.as_object().unwrap().keys() {
                let flag = match data_key.as_str() {
                    "path" => "data".to_string(),
                    other => other.replace('_', "-"),
                };
                keys.push((data_key.clone(), flag));
            }
        } else {
            keys.push((key.clone(), key.replace('_', "-")));
        }
    }
    let cli = burnfit::cli::Cli::command();
    let train = cli.find_subcommand("train").unwrap();
    let flags: Vec<String> = train
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workload-and-settings.md"),
    )
    .unwrap();
    for (key, flag) in &keys {
        assert!(flags.contains(flag), "config key {key}: no --{flag}");
        assert!(
            table.lines().any(|l| l.starts_with('|')
                && l.contains(&format!("`--{flag}"))
                && l.contains(&format!("`{key}"))
                || (key == "path" && l.contains("`--data`"))),
            "config key {key} / --{flag}: no row in the settings table"
        );
    }
    // The other way: every settings flag sets a config key (--epochs and --no-standardize are
    // the two flag-only forms).
    let settings = burnfit::plan::Overrides::augment_args(clap::Command::new("settings"));
    for arg in settings.get_arguments() {
        let flag = arg.get_long().unwrap();
        if ["epochs", "no-standardize"].contains(&flag) {
            continue;
        }
        assert!(
            keys.iter().any(|(_, f)| f == flag),
            "--{flag} sets no config key"
        );
    }
}

#[test]
fn adam_and_range_settings_are_flags_too() {
    let dir = tempfile::tempdir().unwrap();
    burnfit()
        .args(["train", "--beta1", "1.5"])
        .assert()
        .code(2)
        .stderr(contains("invalid --beta1 = 1.5: must be in [0, 1)"));
    burnfit()
        .args(["train", "--x-low", "5", "--x-high", "1"])
        .assert()
        .code(2)
        .stderr(contains("--x-low/--x-high = 5..1"));
    let out = dir.path().join("m.json");
    burnfit()
        .args([
            "train",
            "--steps",
            "5",
            "--quiet",
            "--epsilon",
            "1e-6",
            "--x-low",
            "0",
        ])
        .args(["--x-high", "3", "--beta2", "0.99", "--out"])
        .arg(&out)
        .assert()
        .success();
    let inspected = burnfit()
        .args(["inspect", "--json"])
        .arg(&out)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&inspected.get_output().stdout).unwrap();
    let config = &json["metadata"]["config"];
    assert_eq!(config["x_low"], 0.0, "{json}");
    assert_eq!(config["x_high"], 3.0);
    assert_eq!(config["beta2"].as_f64().unwrap() as f32, 0.99);
    assert_eq!(config["epsilon"].as_f64().unwrap() as f32, 1e-6);
}
