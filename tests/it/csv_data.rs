//! `train --data`: fitting a CSV file, checked against the closed-form least-squares fit, its
//! checkpoints in every format, resume, `predict --data`, `ols`, and bad input.

use std::path::{Path, PathBuf};

use ag::variable::NamespaceTrait;
use autograd as ag;
use burnfit::config::{TableConfig, TrainingConfig};
use burnfit::report::FitComparison;
use burnfit::{Checkpoint, Engine, EngineKind, Trainer};
use predicates::str::contains;

use crate::common::{backends, burnfit, serial, uniform_stream};

/// y = 3·a − 2·b + 0.5·c + 4 + N(0, 0.1²), with features of different scales (so that
/// standardization matters) and a deterministic pseudo-random generator.
pub fn write_linear_csv(path: &Path, rows: usize) {
    let mut uniform = uniform_stream(0x1234_5678_u64);
    let mut text = String::from("a,b,c,y\n");
    for _ in 0..rows {
        let a = uniform() * 10.0 - 5.0;
        let b = uniform() * 0.2 + 1.0;
        let c = uniform() * 100.0;
        // Box–Muller for the noise.
        let noise = (-2.0 * uniform().max(1e-12).ln()).sqrt()
            * (2.0 * std::f64::consts::PI * uniform()).cos()
            * 0.1;
        let y = 3.0 * a - 2.0 * b + 0.5 * c + 4.0 + noise;
        text.push_str(&format!("{a},{b},{c},{y}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// A table of `rows` rows of 20 features on different scales and `y`, a linear function of
/// them plus noise: wider than a cache line's 16 floats with its target.
fn write_wide_csv(path: &Path, rows: usize) {
    let mut uniform = uniform_stream(0x9e37_79b9_u64);
    let names: Vec<String> = (0..20).map(|k| format!("x{k}")).collect();
    let mut text = format!("{},y\n", names.join(","));
    for _ in 0..rows {
        let x: Vec<f64> = (0..20)
            .map(|k| (uniform() - 0.5) * (1 + k % 5) as f64 * 3.0 + k as f64)
            .collect();
        let y = x
            .iter()
            .enumerate()
            .map(|(k, v)| v * (k as f64 * 0.3 - 2.5))
            .sum::<f64>()
            + 1.5
            + (uniform() - 0.5) * 0.2;
        let cells: Vec<String> = x.iter().map(f64::to_string).collect();
        text.push_str(&format!("{},{y}\n", cells.join(",")));
    }
    std::fs::write(path, text).unwrap();
}

fn csv_config(path: &Path, steps: u64, batch: usize) -> TrainingConfig {
    TrainingConfig {
        steps,
        batch,
        lr: 0.05,
        data: Some(TableConfig::new(path.display().to_string(), "y")),
        ..Default::default()
    }
}

#[test]
fn adam_reaches_the_closed_form_fit_on_every_backend() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 1000);
    // Full batch (800 training rows): Adam's steps shrink with the gradient and settle on the
    // optimum.
    let config = csv_config(&csv, 2000, 4096);
    for backend in backends() {
        let kind = backend.kind;
        let mut trainer = Trainer::new(config.clone(), backend).unwrap();
        trainer.run(config.steps, &mut ()).unwrap();
        let checkpoint = trainer.checkpoint().unwrap();
        let table = trainer.table().unwrap();
        let comparison = FitComparison::of(table, &checkpoint).unwrap();
        let (ols, ols_quality) = comparison.ols.as_ref().unwrap();
        let gap = comparison.train_gap().unwrap();
        assert!(gap < 0.005, "{kind}: training MSE {gap:.4} above OLS");
        // And OLS itself found the generating coefficients.
        // Tolerances follow each coefficient's standard error (b spans only 0.2).
        for ((got, want), tolerance) in ols
            .weights
            .iter()
            .zip([3.0, -2.0, 0.5])
            .zip([0.01, 0.25, 0.002])
        {
            assert!(
                (got - want).abs() < tolerance,
                "{kind}: OLS {got} vs {want}"
            );
        }
        assert!(
            (ols_quality.train.mse - 0.01).abs() < 0.003,
            "{kind}: noise² = 0.01"
        );
        // The checkpoint holds the model in the data's units: w close to OLS's.
        let w = &checkpoint.params[0].data;
        for (got, want) in w.iter().zip(&ols.weights) {
            assert!(
                (f64::from(*got) - want).abs() < 0.01,
                "{kind}: w {got} vs OLS {want}"
            );
        }
        assert!(comparison.model.val.unwrap().r2 > 0.999, "{kind}");
    }
}

#[test]
fn csv_runs_resume_bit_for_bit_standardized_or_not() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 250);
    for standardize in [false, true] {
        let mut config = csv_config(&csv, 60, 64);
        config.data.as_mut().unwrap().standardize = standardize;
        for backend in backends() {
            let kind = backend.kind;
            let mut straight = Trainer::new(config.clone(), backend.clone()).unwrap();
            straight.run(60, &mut ()).unwrap();
            let straight = straight.checkpoint().unwrap();
            let mut first = Trainer::new(config.clone(), backend.clone()).unwrap();
            first.run(35, &mut ()).unwrap();
            let saved = first.checkpoint().unwrap();
            let path = dir.path().join("mid.bpk");
            saved.save(&path).unwrap();
            let loaded = Checkpoint::load(&path).unwrap();
            let mut second = Trainer::resume(config.clone(), backend.clone(), &loaded).unwrap();
            second.run(25, &mut ()).unwrap();
            let resumed = second.checkpoint().unwrap();
            // Standardized or not, the resume is exact: the checkpoint keeps the scaled-space
            // values of the layers the scaling changes. (On wgpu this also fails when the
            // autodiff engine stops waiting for the device between steps on a software
            // adapter: the fused kernels then change.)
            assert_eq!(resumed.params, straight.params, "{kind}: not bit-identical");
            assert_eq!(resumed.adam, straight.adam, "{kind}");
        }
    }
}

#[test]
fn cli_fits_a_csv_prints_the_comparison_and_predicts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 500);
    let out = dir.path().join("model.json");
    let assert = burnfit()
        .args(["train", "--backend", "ndarray", "--data"])
        .arg(&csv)
        .args([
            "--target", "y", "--batch", "1000", "--lr", "0.05", "--steps", "1500", "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("500 rows (400 training, 100 validation)"))
        .stdout(contains("features [a, b, c], target `y`, standardized"))
        .stdout(contains("OLS (closed form)"))
        .stdout(contains("relative to the closed form"))
        .stdout(contains("(intercept)"));
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let gap: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("training MSE "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(gap.abs() < 0.5, "gap {gap} %");

    // The autograd crate loads the JSON: w is [3, 1] in the data's units.
    let env = ag::VariableEnvironment::<f32>::load(&out).unwrap();
    let namespace = env.default_namespace();
    let w = namespace.get_array_by_name("w").unwrap();
    assert_eq!(w.borrow().shape(), &[3, 1]);
    let w: Vec<f32> = w.borrow().iter().copied().collect();
    assert!(
        (w[0] - 3.0).abs() < 0.05 && (w[1] + 2.0).abs() < 0.2,
        "{w:?}"
    );

    // inspect shows the data record; predict --data adds a column by feature name.
    burnfit()
        .args(["inspect"])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("model: linear, 3 inputs"))
        .stdout(contains("\"features\":[\"a\",\"b\",\"c\"]"));
    let input = dir.path().join("new.csv");
    std::fs::write(&input, "c,a,b,note\n10,1,1,x\n0,0,0,y\n").unwrap();
    let preds = dir.path().join("preds.csv");
    burnfit()
        .args(["predict", "--checkpoint"])
        .arg(&out)
        .arg("--data")
        .arg(&input)
        .arg("--out")
        .arg(&preds)
        .assert()
        .success()
        .stdout(contains("wrote 2 predictions"));
    let text = std::fs::read_to_string(&preds).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("c,a,b,note,prediction"));
    // 3·1 − 2·1 + 0.5·10 + 4 = 10; 0 + 4 = 4.
    for (line, want) in lines.zip([10.0f32, 4.0]) {
        let got: f32 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((got - want).abs() < 0.1, "{line}: want {want}");
    }

    // Every format keeps the [3, 1] model.
    for name in ["m.safetensors", "m.bpk"] {
        let converted = dir.path().join(name);
        burnfit()
            .args(["convert", "--drop-optimizer"])
            .arg(&out)
            .arg(&converted)
            .assert()
            .success();
        let original = Checkpoint::load(&out).unwrap();
        let back = Checkpoint::load(&converted).unwrap();
        assert_eq!(back.params, original.params, "{name}");
        assert_eq!(back.meta.unwrap().data, original.meta.clone().unwrap().data);
    }

    // Resume continues on the same file; a changed file is refused unless allowed.
    burnfit()
        .args(["train", "--backend", "ndarray", "--resume"])
        .arg(&out)
        .args(["--epochs", "2", "--out"])
        .arg(dir.path().join("more.json"))
        .assert()
        .success()
        .stdout(contains("steps 1501..1502"));
    write_linear_csv(&csv, 501);
    burnfit()
        .args(["train", "--backend", "ndarray", "--resume"])
        .arg(&out)
        .args(["--steps", "2", "--out"])
        .arg(dir.path().join("more.json"))
        .assert()
        .code(2)
        .stderr(contains("is not the one the checkpoint was trained on"))
        .stderr(contains("--allow-data-change"));
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--allow-data-change",
            "--resume",
        ])
        .arg(&out)
        .args(["--steps", "2", "--out"])
        .arg(dir.path().join("more.json"))
        .assert()
        .success()
        .stdout(contains("changed since the checkpoint"));
}

#[test]
fn ols_prints_the_closed_form_fit() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 400);
    let assert = burnfit()
        .args(["ols", "--data"])
        .arg(&csv)
        .args(["--target", "y", "--features", "c,a,b"])
        .assert()
        .success()
        .stdout(contains("OLS fit of `y` on 320 training rows"));
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let coefficient = |name: &str| -> f64 {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!((coefficient("c ") - 0.5).abs() < 0.01);
    assert!((coefficient("a ") - 3.0).abs() < 0.01);
    assert!((coefficient("(intercept)") - 4.0).abs() < 0.2);
    assert!(stdout.contains("validation: MSE 0.0"), "{stdout}");
}

fn expect_data_error(csv_text: &str, extra: &[&str], code: i32, message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("d.csv");
    std::fs::write(&csv, csv_text).unwrap();
    let out = dir.path().join("out.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--data"])
        .arg(&csv)
        .args(extra)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(code)
        .stderr(contains(message))
        .stdout("");
    assert!(!out.exists(), "{message}: nothing written");
}

#[test]
fn bad_csv_input_is_named_with_its_row_and_column() {
    let good = "a,b,y\n1,2,3\n2,1,4\n3,5,1\n4,4,2\n5,2,7\n";
    expect_data_error(good, &["--target", "z"], 2, "`z`");
    expect_data_error(good, &["--target", "y", "--features", "a,q"], 2, "`q`");
    expect_data_error(good, &["--target", "y", "--features", "a,y"], 2, "target");
    expect_data_error("", &["--target", "y"], 2, "empty");
    expect_data_error("a,b,y\n", &["--target", "y"], 2, "no data rows");
    expect_data_error("1,2,3\n4,5,6\n", &["--target", "3"], 2, "header");
    expect_data_error("a,a,y\n1,2,3\n", &["--target", "y"], 2, "appears twice");
    expect_data_error(
        "a,b,y\n1,2,3\n2,x,4\n3,1,2\n",
        &["--target", "y"],
        2,
        "line 3, column `b`",
    );
    expect_data_error(
        "a,b,y\n1,2,3\n2,,4\n3,1,2\n",
        &["--target", "y"],
        2,
        "line 3, column `b`",
    );
    expect_data_error(
        "a,b,y\n1,2,3\n2,nan,4\n3,1,2\n",
        &["--target", "y"],
        2,
        "finite",
    );
    expect_data_error(
        "a,b,y\n1,2,3\n2,4\n3,1,2\n",
        &["--target", "y"],
        2,
        "line 3",
    );
    expect_data_error(
        "a,b,y\n1,2,3\n2,2,4\n",
        &["--target", "y", "--val-frac", "0.2"],
        2,
        "--val-frac",
    );
    expect_data_error(
        "a,b,y\n1,2,3\n1,3,4\n1,1,2\n1,5,2\n1,6,1\n",
        &["--target", "y", "--val-frac", "0"],
        2,
        "constant",
    );
    expect_data_error(
        good,
        &["--target", "y", "--val-frac", "1.5"],
        2,
        "--val-frac",
    );
    expect_data_error(
        good,
        &[
            "--target", "y", "--engine", "fused", "--model", "mlp", "--hidden", "300",
        ],
        2,
        "--engine fused takes hidden layers up to 256 wide, not 300; use --engine autodiff",
    );
    expect_data_error(
        good,
        &["--target", "y", "--model", "mlp", "--hidden", "0"],
        2,
        "--hidden",
    );
    expect_data_error(
        good,
        &["--target", "y", "--model", "mlp", "--hidden", "64,99999999"],
        2,
        "--hidden",
    );
    expect_data_error(good, &[], 2, "--target");
    // A --data path that does not exist.
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--data",
            "/nonexistent/d.csv",
            "--target",
            "y",
        ])
        .assert()
        .code(2)
        .stderr(contains("data file /nonexistent/d.csv: no such file"))
        .stdout("");

    // --drop-invalid-rows skips them and says how many.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("d.csv");
    std::fs::write(&csv, "a,b,y\n1,2,3\n2,x,4\n3,1,2\n4,4,2\n5,2,7\n6,1,1\n").unwrap();
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "3",
            "--target",
            "y",
            "--drop-invalid-rows",
            "--data",
        ])
        .arg(&csv)
        .arg("--out")
        .arg(dir.path().join("o.json"))
        .assert()
        .success()
        .stdout(contains(
            "5 rows (4 training, 1 validation), 1 invalid row dropped",
        ));

    // Flags that only make sense with --data.
    burnfit()
        .args(["train", "--epochs", "3"])
        .assert()
        .code(2)
        .stderr(contains("--epochs").and(contains("CSV data only")));
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn a_checkpoint_is_used_only_with_its_own_columns_and_model() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("linear.csv");
    write_linear_csv(&csv, 200);
    let out = dir.path().join("m.json");
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "5",
            "--target",
            "y",
            "--data",
        ])
        .arg(&csv)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let before = std::fs::read(&out).unwrap();
    // Other columns.
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "5",
            "--features",
            "a,b",
            "--resume",
        ])
        .arg(&out)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("features [a, b]"));
    // Another model.
    burnfit()
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "5",
            "--model",
            "mlp",
            "--resume",
        ])
        .arg(&out)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("holds a linear, 3 inputs model"));
    // Predict from a file missing a feature column.
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "a,b\n1,2\n").unwrap();
    burnfit()
        .args(["predict", "--checkpoint"])
        .arg(&out)
        .arg("--data")
        .arg(&input)
        .assert()
        .code(2)
        .stderr(contains("no column `c`"));
    burnfit()
        .args(["predict", "--x", "1", "--checkpoint"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("takes 3 features"));
    assert_eq!(std::fs::read(&out).unwrap(), before, "checkpoint untouched");
}

/// The path of a fresh CSV of the linear data, for other test files.
pub fn linear_csv(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join("linear.csv");
    write_linear_csv(&path, rows);
    path
}

/// Every parameter of a checkpoint, and its Adam moments, as one list.
fn state_values(c: &Checkpoint) -> Vec<f32> {
    let adam = c.adam.as_ref().expect("Adam state");
    c.params
        .iter()
        .flat_map(|p| p.data.clone())
        .chain(
            adam.moments
                .iter()
                .flat_map(|(m, v)| [m.data.clone(), v.data.clone()].concat()),
        )
        .collect()
}

#[test]
fn the_fused_engine_fits_a_table_like_the_autodiff_engine_and_resumes_exactly() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    // 3 features (rows of 4 floats on the host) and 20 (rows of two cache lines).
    let wide = dir.path().join("wide.csv");
    write_wide_csv(&wide, 1000);
    for (csv, backend) in [linear_csv(dir.path(), 1000), wide]
        .into_iter()
        .flat_map(|csv| backends().into_iter().map(move |b| (csv.clone(), b)))
    {
        let config = csv_config(&csv, 1000, 64);
        let kind = format!("{} on {}", backend.kind, csv.display());
        let run = |engine, steps, start: Option<&Checkpoint>| {
            let mut trainer =
                burnfit::open_engine(engine, config.clone(), backend.clone(), start).unwrap();
            trainer.run(steps, &mut ()).unwrap();
            trainer.checkpoint().unwrap()
        };
        let fused = run(EngineKind::Fused, 1000, None);
        let autodiff = run(EngineKind::Autodiff, 1000, None);
        // The same model: training MSE within 0.1 %, coefficients within 1e-3 relative.
        let table = burnfit::data::PreparedTable::load(config.data.as_ref().unwrap(), 42).unwrap();
        let mse = |c: &Checkpoint| {
            table
                .quality(&c.spec, &c.named_params(), burnfit::data::Split::Train)
                .unwrap()
                .mse
        };
        let (f, a) = (mse(&fused), mse(&autodiff));
        assert!((f - a).abs() <= 1e-3 * a, "{kind}: MSE {f} vs {a}");
        let scale = autodiff.params[0]
            .data
            .iter()
            .fold(0f32, |m, w| m.max(w.abs()));
        for (x, y) in fused
            .params
            .iter()
            .flat_map(|p| &p.data)
            .zip(autodiff.params.iter().flat_map(|p| &p.data))
        {
            assert!((x - y).abs() <= 1e-3 * scale.max(1.0), "{kind}: {x} vs {y}");
        }
        // 600 + 400 steps are the 1000, bit for bit; a rerun is identical.
        let first = run(EngineKind::Fused, 600, None);
        let path = dir.path().join("mid.bpk");
        first.save(&path).unwrap();
        let loaded = Checkpoint::load(&path).unwrap();
        let resumed = run(EngineKind::Fused, 400, Some(&loaded));
        assert_eq!(state_values(&resumed), state_values(&fused), "{kind}");
        assert_eq!(
            state_values(&run(EngineKind::Fused, 1000, None)),
            state_values(&fused)
        );
    }
}

#[test]
fn no_output_may_overwrite_an_input_or_another_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = linear_csv(d, 100);
    let original = std::fs::read(&csv).unwrap();
    let train = |args: &[&str]| {
        burnfit()
            .current_dir(d)
            .args(["train", "--backend", "ndarray", "--steps", "5"])
            .args(args)
            .assert()
            .code(2)
            .stderr(contains("both name"))
            .stdout("");
    };
    train(&[
        "--data",
        "linear.csv",
        "--target",
        "y",
        "--out",
        "linear.csv",
        "--format",
        "json",
    ]);
    train(&["--out", "x.csv", "--format", "json", "--metrics", "x.csv"]);
    train(&[
        "--out", "same.svg", "--format", "json", "--plot", "same.svg",
    ]);
    train(&[
        "--out",
        "a.json",
        "--plot",
        "p.svg",
        "--plot-fit",
        "./p.svg",
    ]);
    assert_eq!(std::fs::read(&csv).unwrap(), original);
    for name in ["x.csv", "same.svg", "a.json", "p.svg"] {
        assert!(!d.join(name).exists(), "{name}");
    }
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "5",
            "--data",
            "linear.csv",
            "--target",
            "y",
            "--out",
            "m.json",
        ])
        .assert()
        .success();
    burnfit()
        .current_dir(d)
        .args([
            "predict",
            "--checkpoint",
            "m.json",
            "--data",
            "linear.csv",
            "--out",
            "linear.csv",
        ])
        .assert()
        .code(2)
        .stderr(contains("--data and --out both name"));
    assert_eq!(std::fs::read(&csv).unwrap(), original);
    // An earlier output as input: its `prediction` column is not silently doubled.
    burnfit()
        .current_dir(d)
        .args([
            "predict",
            "--checkpoint",
            "m.json",
            "--data",
            "linear.csv",
            "--out",
            "p.csv",
        ])
        .assert()
        .success();
    burnfit()
        .current_dir(d)
        .args([
            "predict",
            "--checkpoint",
            "m.json",
            "--data",
            "p.csv",
            "--out",
            "p2.csv",
        ])
        .assert()
        .code(2)
        .stderr(contains("already has a `prediction` column"));
}

#[test]
fn a_resume_keeps_its_task_target_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    linear_csv(d, 100);
    let ok = |args: &[&str]| {
        burnfit()
            .current_dir(d)
            .args(["train", "--backend", "ndarray", "--steps", "5"])
            .args(args)
            .assert()
            .success();
    };
    let refused = |args: &[&str], message: &str| {
        burnfit()
            .current_dir(d)
            .args([
                "train",
                "--backend",
                "ndarray",
                "--steps",
                "5",
                "--out",
                "new.json",
            ])
            .args(args)
            .assert()
            .code(2)
            .stderr(contains(message));
        assert!(!d.join("new.json").exists());
    };
    ok(&[
        "--task",
        "sine",
        "--model",
        "mlp",
        "--hidden",
        "4",
        "--out",
        "sine.json",
    ]);
    refused(
        &["--resume", "sine.json", "--task", "line"],
        "cannot resume with --task line: the checkpoint was trained on the sine task",
    );
    ok(&["--data", "linear.csv", "--target", "y", "--out", "csv.json"]);
    refused(
        &["--resume", "csv.json", "--target", "a"],
        "--target a: the checkpoint's model predicts `y`",
    );
    refused(
        &["--resume", "csv.json", "--val-frac", "0.5"],
        "--val-frac 0.5",
    );
    refused(
        &["--resume", "csv.json", "--no-standardize"],
        "--no-standardize",
    );
    refused(
        &["--resume", "csv.json", "--seed", "7"],
        "--seed 7: the checkpoint's split",
    );
    refused(
        &["--resume", "csv.json", "--batch", "32"],
        "--batch 32: the checkpoint's epochs",
    );
    ok(&[
        "--resume",
        "csv.json",
        "--val-frac",
        "0.5",
        "--allow-data-change",
        "--out",
        "changed.json",
    ]);
    // From another directory, the checkpoint's relative data path is found beside it.
    std::fs::create_dir(d.join("sub")).unwrap();
    burnfit()
        .current_dir(d.join("sub"))
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "2",
            "--resume",
            "../csv.json",
            "--out",
            "r.json",
        ])
        .assert()
        .success();
    std::fs::rename(d.join("linear.csv"), d.join("moved.csv")).unwrap();
    refused(&["--resume", "csv.json"], "pass --data to say where it is");
    // Flags that do not apply.
    refused(&["--hidden", "8"], "--hidden");
    refused(&["--activation", "relu"], "--activation");
    refused(
        &["--data", "moved.csv", "--target", "y", "--features", "a,,b"],
        "none of them empty",
    );
}

#[test]
fn values_beyond_f32_are_bad_input_but_large_ones_train() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("huge.csv"), "x,y\n1,2\n2,1e39\n3,4\n4,5\n5,6\n").unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--data",
            "huge.csv",
            "--target",
            "y",
            "--out",
            "h.json",
        ])
        .assert()
        .code(2)
        .stderr(contains("line 3, column `y`: \"1e39\" is out of f32 range"));
    // 1e30 fits f32: the standardized run trains (its MSE in the data's units overflows f32 and
    // prints as inf, which is not divergence).
    std::fs::write(
        d.join("large.csv"),
        "x,y\n1,2\n2,1e30\n3,4\n4,5\n5,6\n6,2\n",
    )
    .unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "20",
            "--val-frac",
            "0",
            "--data",
            "large.csv",
            "--target",
            "y",
            "--out",
            "l.json",
        ])
        .assert()
        .success();
    // predict --data names the real line in a CRLF file.
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "5",
            "--out",
            "m.json",
        ])
        .assert()
        .success();
    std::fs::write(d.join("crlf.csv"), "x\r\n1\r\n2\r\n\r\n3\r\nq\r\n").unwrap();
    burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "m.json", "--data", "crlf.csv"])
        .assert()
        .code(2)
        .stderr(contains("line 6, column `x`: \"q\" is not a number"));
}

#[test]
fn edge_cases_found_in_review() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    linear_csv(d, 60);
    // A --batch far above the rows trains full-batch: no batch-memory refusal.
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "3",
            "--data",
            "linear.csv",
            "--target",
            "y",
            "--batch",
            "2147483648",
            "--out",
            "a.json",
        ])
        .assert()
        .success()
        .stdout(contains("full-batch training"));
    // An activation in a config file does not make a linear checkpoint unreadable.
    std::fs::write(d.join("c.json"), r#"{"activation": "relu", "steps": 3}"#).unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--config",
            "c.json",
            "--out",
            "l.json",
        ])
        .assert()
        .success();
    burnfit()
        .current_dir(d)
        .args(["inspect", "l.json"])
        .assert()
        .success()
        .stdout(contains("model: w = "));
    // A feature named `prediction`: the output column gets another name.
    std::fs::write(d.join("p.csv"), "prediction,y\n1,2\n2,4\n3,6\n4,8\n5,10\n").unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--steps",
            "3",
            "--data",
            "p.csv",
            "--target",
            "y",
            "--out",
            "p.json",
        ])
        .assert()
        .success();
    burnfit()
        .current_dir(d)
        .args(["predict", "--checkpoint", "p.json", "--data", "p.csv"])
        .assert()
        .success()
        .stdout(contains("prediction,y,burnfit_prediction"));
    // A timestamp-like feature: the f32 fold into data units loses the fit, and says so.
    let mut text = String::from("t,y\n");
    for i in 0..200 {
        let t = 1.7e9 + f64::from(i) * 5.0;
        text.push_str(&format!(
            "{t},{}\n",
            0.001 * (t - 1.7e9) + f64::from(i % 7) * 0.001
        ));
    }
    std::fs::write(d.join("ts.csv"), text).unwrap();
    burnfit()
        .current_dir(d)
        .args([
            "train",
            "--backend",
            "ndarray",
            "--epochs",
            "100",
            "--data",
            "ts.csv",
            "--target",
            "y",
            "--out",
            "ts.json",
        ])
        .assert()
        .success()
        .stdout(contains(
            "note: the saved model (f32, the data's units) has training MSE",
        ));
}

#[test]
fn a_noise_free_table_prints_no_gap_relative_to_an_exact_closed_form() {
    // y = 3a - 2b + 0.5 exactly: the closed form's residual is rounding, and a gap relative to
    // it would be a meaningless huge percentage.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("exact.csv");
    let mut text = String::from("a,b,y\n");
    for i in 0..200 {
        let (a, b) = (i as f64 * 0.25, (i * 7 % 13) as f64);
        text.push_str(&format!("{a},{b},{}\n", 3.0 * a - 2.0 * b + 0.5));
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.path().join("model.json");
    burnfit()
        .args(["train", "--backend", "ndarray", "--data"])
        .arg(&csv)
        .args(["--target", "y", "--steps", "300", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("OLS (closed form)"))
        .stdout(contains("relative to the closed form").not());
}

#[test]
fn a_huge_target_shows_a_finite_loss_where_f32_holds_it() {
    // y ≈ 3e20·x: the target's std² (~3e40) overflows f32; the loss once fitted (~1e37) does not.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("huge_y.csv");
    let mut text = String::from("x,y\n");
    for i in 0..200 {
        let x = (i as f64 * 0.618).fract() * 2.0 - 1.0;
        let noise = ((i * 37 % 101) as f64 / 101.0 - 0.5) * 0.02;
        text.push_str(&format!("{x},{:e}\n", (3.0 * x + noise) * 1e20));
    }
    std::fs::write(&data, text).unwrap();
    for engine in ["fused", "autodiff"] {
        let out = dir.path().join(format!("{engine}.json"));
        let assert = burnfit()
            .args([
                "train",
                "--backend",
                "ndarray",
                "--engine",
                engine,
                "--target",
                "y",
            ])
            .args(["--steps", "1000", "--log-every", "500", "--json", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
        let report: serde_json::Value =
            serde_json::from_slice(&assert.get_output().stdout).unwrap();
        let losses: Vec<f64> = report["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["loss"].as_f64().unwrap_or(f64::NAN))
            .collect();
        // The last loss, in the target's units: finite (it was `inf`, the factor std² being
        // computed in f32) and about the fit's squared error.
        let last = *losses.last().unwrap();
        assert!(
            last.is_finite() && (1e30..3.4e38).contains(&last),
            "{engine}: {losses:?}"
        );
        assert_eq!(
            report["final_loss"].as_f64(),
            Some(last),
            "{engine}: {report}"
        );
    }
}
