//! Out-of-core training (`train --out-of-core`, or a table too big for memory): the cache, its
//! invalidation, exact resume on both engines, and agreement with `ols` on the split.

use std::path::{Path, PathBuf};

use burnfit::{BackendKind, Checkpoint, EngineKind, TrainingConfig};

use crate::common::{backends, burnfit, run_engine, state_bits};

/// A CSV of `rows` rows: y = 3a − 0.2b + c + 7 + noise, values from a fixed generator.
fn write_csv(path: &Path, rows: usize, salt: u64) {
    use std::fmt::Write;
    let mut text = String::from("a,b,c,y\n");
    let mut state = 0x5eed_u64 ^ salt;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..rows {
        let (a, b, c) = (next() * 10.0 - 5.0, next() * 100.0, next() * 2.0 - 1.0);
        let y = 3.0 * a - 0.2 * b + c + 7.0 + (next() - 0.5) * 0.2;
        writeln!(text, "{a:.6},{b:.6},{c:.6},{y:.6}").unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn config(data: &Path, cache: &Path) -> TrainingConfig {
    TrainingConfig {
        batch: 1000,
        lr: 0.05,
        data: Some(burnfit::config::TableConfig {
            out_of_core: true,
            cache_dir: Some(cache.display().to_string()),
            ..burnfit::config::TableConfig::new(data.display().to_string(), "y")
        }),
        ..Default::default()
    }
}

fn caches(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.display().to_string().ends_with(".burnfit-cache"))
        .collect();
    found.sort();
    found
}

#[test]
fn out_of_core_resume_is_bit_exact_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.csv");
    // 10,000 rows: 3 blocks, 8,000 training rows, 8 steps an epoch; 20 steps cross 2 epochs.
    write_csv(&data, 10_000, 0);
    let config = config(&data, dir.path());
    let mut fused_losses = Vec::new();
    for backend in backends() {
        for engine in [EngineKind::Autodiff, EngineKind::Fused] {
            let straight = run_engine(engine, &config, &backend, 20, None);
            let half = run_engine(engine, &config, &backend, 11, None);
            let resumed = run_engine(engine, &config, &backend, 9, Some(&half));
            assert_eq!(resumed.step(), 20);
            assert_eq!(
                state_bits(&resumed),
                state_bits(&straight),
                "{engine} on {}",
                backend.kind
            );
            // It trained: the loss fell from the first step's.
            let first = run_engine(engine, &config, &backend, 1, None);
            let loss = |c: &Checkpoint| c.meta.as_ref().unwrap().final_loss.unwrap();
            assert!(loss(&straight) < 0.5 * loss(&first), "{engine}");
            if engine == EngineKind::Fused {
                fused_losses.push((backend.kind, loss(&straight)));
            }
        }
    }
    // The fused engine on wgpu (each chunk's batches uploaded as a table) trains on the batches
    // the CPU backends train on: the same losses to rounding.
    let (_, reference) = fused_losses[0];
    for (kind, loss) in &fused_losses {
        assert!(
            (loss - reference).abs() <= 1e-4 * reference,
            "{kind}: {loss} vs {reference}"
        );
    }
    assert_eq!(caches(dir.path()).len(), 1, "one cache, built once");
}

#[test]
fn out_of_core_cli_run_is_chosen_when_memory_is_short_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("d.csv");
    write_csv(&data, 5_000, 1);
    // 5,001 lines × 4 columns × 16 bytes = 320,064 bytes: below that, out of core.
    let train = |args: &[&str], out: &str| {
        let output = burnfit()
            .current_dir(d)
            .args([
                "train", "--data", "d.csv", "--target", "y", "--engine", "fused",
            ])
            .args(["--backend", "ndarray", "--batch", "256", "--out", out])
            .args(args)
            .env("BURNFIT_MEMORY_AVAILABLE", "320000")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        String::from_utf8(output.stdout).unwrap()
    };
    let out = train(&["--steps", "40"], "straight.json");
    assert!(
        out.contains("out of core: batches streamed from the cache"),
        "{out}"
    );
    assert!(out.contains("(built in "), "{out}");
    let out = train(&["--steps", "15"], "half.json");
    assert!(out.contains("(reused)"), "{out}");
    // The checkpoint says the run was out of core: the resume reads the same batches.
    let half = Checkpoint::load(&d.join("half.json")).unwrap();
    assert!(
        half.meta
            .as_ref()
            .unwrap()
            .config
            .data
            .as_ref()
            .unwrap()
            .out_of_core
    );
    train(&["--resume", "half.json", "--steps", "25"], "resumed.json");
    let straight = Checkpoint::load(&d.join("straight.json")).unwrap();
    let resumed = Checkpoint::load(&d.join("resumed.json")).unwrap();
    assert_eq!(resumed.step(), 40);
    assert_eq!(state_bits(&resumed), state_bits(&straight));
    // With the memory, the same file trains in memory.
    let output = burnfit()
        .current_dir(d)
        .args(["train", "--data", "d.csv", "--target", "y", "--steps", "5"])
        .args(["--out", "mem.json"])
        .env("BURNFIT_MEMORY_AVAILABLE", "320064")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("out of core"));
}

#[test]
fn the_cache_is_rebuilt_when_the_csv_changes_and_kept_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("d.csv");
    write_csv(&data, 3_000, 2);
    let cache_dir = d.join("cache");
    std::fs::create_dir(&cache_dir).unwrap();
    let train = |target: &str| {
        let output = burnfit()
            .current_dir(d)
            .args([
                "train", "--data", "d.csv", "--target", target, "--steps", "30",
            ])
            .args([
                "--out-of-core",
                "--cache-dir",
                "cache",
                "--json",
                "--out",
                "m.json",
            ])
            .arg("--force")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        json["parameters"][0]["values"].clone()
    };
    let first = train("y");
    assert_eq!(caches(&cache_dir).len(), 1);
    let reused = burnfit()
        .current_dir(d)
        .args(["train", "--data", "d.csv", "--target", "y", "--steps", "1"])
        .args([
            "--out-of-core",
            "--cache-dir",
            "cache",
            "--json",
            "--out",
            "m.json",
        ])
        .arg("--force")
        .output()
        .unwrap();
    // Before the silent pass over the file, a line on stderr (stdout carries the JSON alone).
    let notes = String::from_utf8_lossy(&reused.stderr);
    assert!(
        notes.contains("out of core: reading d.csv (") && notes.contains("to check its row cache"),
        "{notes}"
    );
    let json: serde_json::Value = serde_json::from_slice(&reused.stdout).unwrap();
    assert_eq!(
        json["data"]["out_of_core"],
        serde_json::json!({"cache": caches(&cache_dir)[0].strip_prefix(d).unwrap(), "built_s": null})
    );
    let built = std::fs::metadata(&caches(&cache_dir)[0])
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(train("y"), first, "reused, the same run");
    assert_eq!(
        std::fs::metadata(&caches(&cache_dir)[0])
            .unwrap()
            .modified()
            .unwrap(),
        built,
        "not rewritten"
    );
    // Digits changed, the size the same (same mtime resolution aside): the content hash tells,
    // and the cache is rebuilt.
    let text = std::fs::read_to_string(&data).unwrap();
    let changed = text.replace(",1", ",2").into_bytes();
    assert_eq!(changed.len(), text.len());
    std::fs::write(&data, &changed).unwrap();
    let after = train("y");
    assert_ne!(after, first, "trained on the new file");
    let rebuilt = caches(&cache_dir);
    assert_eq!(rebuilt.len(), 1, "replaced in place");
    let header = burnfit::data::cache::RowCache::open(&rebuilt[0]).unwrap();
    assert_eq!(
        header.header().content_hash,
        burnfit::data::table::hash_hex(burnfit::data::table::content_hash(&changed))
    );
    // Another target is another cache; no temporary file is left.
    train("a");
    assert_eq!(caches(&cache_dir).len(), 2);
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 2);
}

#[test]
fn out_of_core_and_ols_hold_out_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_csv(&d.join("d.csv"), 6_000, 3);
    let json = |args: &[&str]| -> serde_json::Value {
        let output = burnfit()
            .current_dir(d)
            .args(args)
            .args([
                "--data",
                "d.csv",
                "--target",
                "y",
                "--val-frac",
                "0.3",
                "--seed",
                "7",
            ])
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let ols = json(&["ols"]);
    let train = json(&["train", "--steps", "5", "--out-of-core", "--out", "m.json"]);
    assert_eq!(train["data"]["train_rows"], 4200);
    assert_eq!(train["data"]["val_rows"], 1800);
    // The closed form of the cached (f32) training rows is ols's (f64) to f32's precision, on
    // both splits: the same rows validate.
    for (split, ols_split) in [("train", "train"), ("val", "validation")] {
        let a = train["fit_quality"]["ols"][split]["mse"].as_f64().unwrap();
        let b = ols[ols_split]["mse"].as_f64().unwrap();
        assert!((a - b).abs() <= 1e-5 * b, "{split}: {a} vs {b}");
    }
}

#[test]
fn out_of_core_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_csv(&d.join("d.csv"), 100, 4);
    let fail = |args: &[&str]| {
        let output = burnfit()
            .current_dir(d)
            .arg("train")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        stderr
    };
    let err = fail(&[
        "--data",
        "d.csv",
        "--target",
        "y",
        "--out-of-core",
        "--cache-dir",
        "nowhere",
    ]);
    assert!(
        err.contains("data cache nowhere: no such directory (--cache-dir)"),
        "{err}"
    );
    // The streaming standardization refuses what the in-memory one refuses, in its words.
    std::fs::write(
        d.join("c.csv"),
        "a,k,y\n1,5,2\n2,5,3\n3,5,5\n4,5,4\n5,5,6\n",
    )
    .unwrap();
    for extra in [&[][..], &["--out-of-core"][..]] {
        let err = fail(
            &[
                &["--data", "c.csv", "--target", "y", "--val-frac", "0"][..],
                extra,
            ]
            .concat(),
        );
        assert!(
            err.contains("data file c.csv: feature `k` is constant over the training rows; drop it with --features or use --no-standardize"),
            "{extra:?}: {err}"
        );
    }
    std::fs::write(d.join("p.parquet"), b"PAR1 not really PAR1").unwrap();
    let err = fail(&["--data", "p.parquet", "--target", "y", "--out-of-core"]);
    assert!(
        err.contains("data file p.parquet: is a Parquet file"),
        "{err}"
    );
    let err = fail(&["--out-of-core"]);
    assert!(
        err.contains("--out-of-core applies to CSV data only"),
        "{err}"
    );
    // A resumed in-memory run may not switch to out of core (its batch order would change).
    let ok = burnfit()
        .current_dir(d)
        .args([
            "train", "--data", "d.csv", "--target", "y", "--steps", "3", "--out", "m.json",
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let err = fail(&[
        "--resume",
        "m.json",
        "--steps",
        "3",
        "--out-of-core",
        "--out",
        "n.json",
    ]);
    assert!(
        err.contains("--out-of-core: the checkpoint's run read its batches in memory"),
        "{err}"
    );
}

#[test]
fn a_relative_cache_dir_is_found_again_from_another_directory_and_a_lost_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("cache")).unwrap();
    write_csv(&work.join("t.csv"), 400, 3);
    let train = |cwd: &Path, args: &[&str]| {
        burnfit()
            .current_dir(cwd)
            .args([
                "train",
                "--backend",
                BackendKind::compiled()[0].name(),
                "--quiet",
            ])
            .args(args)
            .assert()
    };
    // Trained from the parent with a relative --cache-dir, resumed from inside `work`.
    train(
        dir.path(),
        &[
            "--data",
            "work/t.csv",
            "--target",
            "y",
            "--out-of-core",
            "--cache-dir",
            "work/cache",
            "--steps",
            "5",
            "--out",
            "work/a.json",
        ],
    )
    .success();
    assert_eq!(caches(&work.join("cache")).len(), 1);
    train(
        &work,
        &["--resume", "a.json", "--steps", "5", "--out", "b.json"],
    )
    .success();
    assert_eq!(Checkpoint::load(&work.join("b.json")).unwrap().step(), 10);
    // No new cache anywhere: the same one was used.
    assert_eq!(caches(&work.join("cache")).len(), 1);
    assert!(caches(&work).is_empty());
    // The recorded directory gone: one line naming it and the checkpoint.
    std::fs::remove_dir_all(work.join("cache")).unwrap();
    let out = train(
        &work,
        &["--resume", "a.json", "--steps", "5", "--out", "c.json"],
    )
    .code(2)
    .get_output()
    .stderr
    .clone();
    let err = String::from_utf8(out).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cache") && err.contains("a.json records"),
        "{err}"
    );
    assert!(!work.join("c.json").exists());
    // An in-memory run never used its --cache-dir: a resume does not need it.
    std::fs::create_dir(work.join("unused")).unwrap();
    train(
        &work,
        &[
            "--data",
            "t.csv",
            "--target",
            "y",
            "--cache-dir",
            "unused",
            "--steps",
            "3",
            "--out",
            "m.json",
        ],
    )
    .success();
    std::fs::remove_dir(work.join("unused")).unwrap();
    train(
        &work,
        &["--resume", "m.json", "--steps", "3", "--out", "m2.json"],
    )
    .success();
    assert_eq!(Checkpoint::load(&work.join("m2.json")).unwrap().step(), 6);
}

#[test]
fn a_resume_refused_for_a_changed_file_leaves_its_cache_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("cache")).unwrap();
    write_csv(&d.join("t.csv"), 400, 5);
    let train = |args: &[&str]| {
        burnfit()
            .current_dir(d)
            .args([
                "train",
                "--backend",
                BackendKind::compiled()[0].name(),
                "--quiet",
            ])
            .args(args)
            .assert()
    };
    train(&[
        "--data",
        "t.csv",
        "--target",
        "y",
        "--out-of-core",
        "--cache-dir",
        "cache",
        "--steps",
        "3",
        "--out",
        "a.json",
    ])
    .success();
    let [cache] = caches(&d.join("cache")).try_into().unwrap();
    let before = std::fs::metadata(&cache).unwrap().modified().unwrap();
    write_csv(&d.join("t.csv"), 400, 6);
    let out = train(&["--resume", "a.json", "--steps", "3", "--out", "b.json"])
        .code(2)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8(out).unwrap();
    assert!(
        err.contains("is not the one the checkpoint was trained on"),
        "{err}"
    );
    // Refused before the cache was checked, let alone rebuilt.
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        before
    );
    assert!(!d.join("b.json").exists());
}
