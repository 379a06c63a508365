//! `burnfit bench` at tiny sizes: one row per system and batch, the JSON schema, and ratios that
//! come from the measured numbers. No timing assertions.

use crate::common::{burnfit, wgpu_available};

#[test]
fn bench_measures_every_backend_and_autograd_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    // The autograd row exists when the binary is built with `autograd-ref`.
    let with_autograd = cfg!(feature = "autograd-ref");
    let mut systems: Vec<String> = with_autograd
        .then(|| "autograd".to_string())
        .into_iter()
        .collect();
    let mut backends = Vec::new();
    for kind in burnfit::BackendKind::compiled() {
        if kind != burnfit::BackendKind::Wgpu || wgpu_available() {
            for engine in burnfit::EngineKind::ALL {
                systems.push(format!("burnfit/{kind}/{engine}"));
            }
            backends.push(kind.name());
        }
    }
    let assert = burnfit()
        .args([
            "bench",
            "--batches",
            "8,32",
            "--steps",
            "3",
            "--repeat",
            "2",
            "--backends",
            &backends.join(","),
            "--json",
        ])
        .arg(&json)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let header = stdout
        .lines()
        .find(|l| !l.starts_with("note: "))
        .unwrap_or_default();
    assert!(header.starts_with("system"), "{stdout}");
    assert_eq!(
        stdout.contains("reference row is not in this build"),
        !with_autograd,
        "{stdout}"
    );
    assert!(stdout.contains("machine: "), "{stdout}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let machine = &report["machine"];
    assert!(machine["cores"].as_u64().unwrap() >= 1);
    assert_eq!(machine["burn_version"], "0.22.1");
    assert_eq!(machine["burnfit_version"], env!("CARGO_PKG_VERSION"));
    let fused_loop = machine["fused_cpu_loop"].as_str().unwrap();
    assert!(
        ["AVX-512", "AVX2", "portable"].contains(&fused_loop),
        "{machine}"
    );
    assert!(
        stdout.contains(&format!("fused CPU loop {fused_loop};")),
        "{stdout}"
    );
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), systems.len() * 2, "{rows:?}");
    for batch in [8u64, 32] {
        let at: Vec<&serde_json::Value> = rows.iter().filter(|r| r["batch"] == batch).collect();
        let names: Vec<&str> = at.iter().map(|r| r["system"].as_str().unwrap()).collect();
        assert_eq!(names, systems, "batch {batch}");
        let autograd_ms = at[0]["median_ms"].as_f64().unwrap(); // only read when with_autograd
        for row in &at {
            assert_eq!(row["steps"], 3);
            let (min, median, max) = (
                row["min_ms"].as_f64().unwrap(),
                row["median_ms"].as_f64().unwrap(),
                row["max_ms"].as_f64().unwrap(),
            );
            assert!(0.0 < min && min <= median && median <= max, "{row}");
            assert!(row["warmup_ms"].as_f64().unwrap() > 0.0, "{row}");
            let per_step = row["us_per_step"].as_f64().unwrap();
            assert!(
                (per_step - median * 1e3 / 3.0).abs() < 1e-6 * per_step.max(1.0),
                "{row}"
            );
            let samples = row["samples_per_s"].as_f64().unwrap();
            assert!(
                (samples - batch as f64 * 3.0 / (median / 1e3)).abs() < 1e-6 * samples,
                "{row}"
            );
            if !with_autograd {
                assert!(row["speedup_vs_autograd"].is_null(), "{row}");
            } else if row["system"] != "autograd" {
                let speedup = row["speedup_vs_autograd"].as_f64().unwrap();
                assert!(
                    (speedup - autograd_ms / median).abs() < 1e-9 * speedup.max(1.0),
                    "{row}"
                );
            }
            assert!(row["note"].is_null(), "{row}");
        }
    }
}

#[test]
fn bench_skips_what_would_exceed_its_budget_with_a_note() {
    let assert = burnfit()
        .args([
            "bench",
            "--backends",
            "ndarray",
            "--batches",
            "200000",
            "--steps",
            "1000000",
            "--repeat",
            "1",
            "--no-autograd",
            "--budget-s",
            "1",
        ])
        .assert()
        .code(1);
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("skipped: estimated") && stdout.contains("exceeds the 1 s budget"),
        "{stdout}"
    );
    // Every row skipped: nothing measured is a failure, said in one line.
    assert_eq!(
        String::from_utf8_lossy(&assert.get_output().stderr).trim(),
        "error: bench measured nothing: every row was skipped (the notes above say why)"
    );
}

#[test]
fn bench_budget_estimates_do_not_wrap_at_huge_step_counts() {
    let assert = burnfit()
        .args([
            "bench",
            "--backends",
            "ndarray",
            "--engines",
            "autodiff",
            "--batches",
            "4",
            "--steps",
            "4294967298",
            "--repeat",
            "1",
            "--no-autograd",
            "--budget-s",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(1);
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("skipped: estimated"), "{stdout}");
}

#[test]
fn bench_flags_are_checked() {
    for (args, expected) in [
        (vec!["--steps", "1"], "--steps"),
        (vec!["--repeat", "0"], "--repeat"),
        (vec!["--batches", "0"], "--batches"),
        (vec!["--batches", "18446744073709551615"], "--batches"),
        (vec!["--repeat", "4294967297"], "--repeat"),
        (vec!["--engines", "magic"], "--engines"),
    ] {
        burnfit()
            .arg("bench")
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(expected));
    }
}

#[test]
fn bench_times_the_users_workload_an_mlp_or_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let mut text = String::from("a,b,y\n");
    for i in 0..200 {
        text.push_str(&format!("{},{},{}\n", i % 7, i % 5, i % 3));
    }
    std::fs::write(&csv, text).unwrap();
    let cpu = burnfit::BackendKind::compiled()[0].name();
    let mut backends = vec![cpu];
    if wgpu_available() {
        backends.push("wgpu");
    }
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--task", "sine", "--model", "mlp", "--hidden", "8"],
            "sine task, mlp 1-8-1, tanh",
        ),
        (
            &["--data", csv.to_str().unwrap(), "--target", "y"],
            "→ `y` (160 training rows), linear",
        ),
        (
            &[
                "--data",
                csv.to_str().unwrap(),
                "--target",
                "y",
                "--out-of-core",
                "--cache-dir",
                cache.to_str().unwrap(),
            ],
            "→ `y` (160 training rows, out of core), linear",
        ),
    ];
    for (workload, described) in cases {
        let json = dir.path().join("b.json");
        let assert = burnfit()
            .args(["bench", "--batches", "16", "--steps", "3", "--repeat", "1"])
            .args(["--backends", &backends.join(","), "--json"])
            .arg(&json)
            .args(workload)
            .assert()
            .success();
        let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
        assert!(
            stdout.contains("workload: ") && stdout.contains(described),
            "{stdout}"
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert!(report["workload"].as_str().unwrap().contains(described));
        let rows = report["rows"].as_array().unwrap();
        // No autograd row (it runs the seed workload only): each backend's two engines.
        assert_eq!(rows.len(), 2 * backends.len(), "{stdout}");
        for r in rows {
            let system = r["system"].as_str().unwrap();
            assert!(r["median_ms"].as_f64().unwrap() > 0.0, "{system}: {r}");
        }
    }
    // The out-of-core row read its batches from a cache built in --cache-dir.
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // Workload flags are checked as train checks them.
    burnfit()
        .args(["bench", "--hidden", "8"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--hidden applies to --model mlp only",
        ));
    burnfit()
        .args(["bench", "--out-of-core"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--out-of-core applies to CSV data only",
        ));
    burnfit()
        .args(["bench", "--data"])
        .arg(&csv)
        .args(["--target", "nope"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("nope"));
}

#[test]
fn bench_runs_a_batch_larger_than_the_table_as_the_table_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let mut text = String::from("a,y\n");
    for i in 0..200 {
        text.push_str(&format!("{},{}\n", i % 7, i % 3));
    }
    std::fs::write(&csv, text).unwrap();
    let json = dir.path().join("b.json");
    let cpu = burnfit::BackendKind::compiled()[0].name();
    burnfit()
        .args([
            "bench",
            "--batches",
            "16,500,1000",
            "--steps",
            "3",
            "--repeat",
            "1",
        ])
        .args(["--backends", cpu, "--engines", "fused", "--json"])
        .arg(&json)
        .args(["--data", csv.to_str().unwrap(), "--target", "y"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    // 160 training rows: --batches 500 runs (and is reported) as 160, 1000 is the same run.
    let batch = |r: &serde_json::Value| r["batch"].as_u64().unwrap();
    assert_eq!(rows.iter().map(batch).collect::<Vec<_>>(), [16, 160, 160]);
    let measured = &rows[1];
    assert!(measured["note"].is_null(), "{measured}");
    let per_s = 160.0 * 3.0 / (measured["median_ms"].as_f64().unwrap() / 1e3);
    let got = measured["samples_per_s"].as_f64().unwrap();
    assert!((got - per_s).abs() <= 1e-9 * per_s, "{got} vs {per_s}");
    let note = rows[2]["note"].as_str().unwrap();
    assert!(
        note.contains("160 training rows") && note.contains("--batches 1000"),
        "{note}"
    );
    // A batch listed twice is measured once, and said so.
    burnfit()
        .args([
            "bench",
            "--batches",
            "16,16",
            "--steps",
            "3",
            "--repeat",
            "1",
        ])
        .args(["--backends", cpu, "--engines", "fused", "--json"])
        .arg(&json)
        .args(["--data", csv.to_str().unwrap(), "--target", "y", "--force"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1]["note"].as_str().unwrap(),
        "skipped: batch 16 is listed twice in --batches (measured above)"
    );
    // A larger batch first, then the table's own: the first runs as the table (a note says
    // so), the second is skipped as measured by the first, not as "listed twice".
    let assert = burnfit()
        .args([
            "bench",
            "--batches",
            "1000,160",
            "--steps",
            "3",
            "--repeat",
            "1",
        ])
        .args([
            "--backends",
            cpu,
            "--engines",
            "fused",
            "--progress",
            "never",
        ])
        .args(["--data", csv.to_str().unwrap(), "--target", "y"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(
        stdout
            .contains("note: the table has 160 training rows: --batches 1000 runs as batch 160\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "skipped: batch 160 was measured above, as --batches 1000 (the table has 160 training rows)"
        ),
        "{stdout}"
    );
}

#[test]
fn bench_takes_trains_data_flags() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("semi.csv");
    // `;`-separated, a constant column (which standardization refuses), one bad cell.
    let mut text = String::from("a;c;y\n");
    for i in 0..50 {
        text.push_str(&format!("{};1;{}\n", i % 7, (i % 7) * 2));
    }
    text.push_str("x;1;3\n");
    std::fs::write(&csv, text).unwrap();
    let cpu = burnfit::BackendKind::compiled()[0].name();
    let flags = [
        "--delimiter",
        ";",
        "--no-standardize",
        "--val-frac",
        "0.1",
        "--drop-invalid-rows",
    ];
    burnfit()
        .args(["bench", "--batches", "8", "--steps", "3", "--repeat", "1"])
        .args(["--backends", cpu, "--engines", "fused", "--data"])
        .arg(&csv)
        .args(["--target", "y"])
        .args(flags)
        .assert()
        .success()
        .stdout(predicates::str::contains("(45 training rows)"));
    // Without them the table is refused, naming what to pass.
    burnfit()
        .args([
            "bench",
            "--batches",
            "8",
            "--steps",
            "3",
            "--backends",
            cpu,
            "--data",
        ])
        .arg(&csv)
        .args(["--target", "y", "--delimiter", ";"])
        .assert()
        .code(2);
}
