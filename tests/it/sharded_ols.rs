//! `burnfit ols` streamed and sharded: `--save-summary` on shards of a table and `--merge` of
//! the summaries give the fit of one pass over the whole table (to ≥ 12 digits), the streamed
//! split is today's, and bad summaries or mismatched shards are refused in one line.

use std::path::Path;

use burnfit::ols::{ShardSummary, StreamOptions, fit_csv, merge};
use predicates::str::contains;

use crate::common::burnfit;

/// Rows of a table `x1,x2,x3,y` with features far from 0 on different scales.
fn rows(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let u = |k: usize| {
                (burnfit::rng::splitmix64((i * 8 + k) as u64) >> 11) as f64 / (1u64 << 53) as f64
            };
            let (a, b, c) = (10.0 + u(0), 0.01 * u(1), 50.0 * u(2) - 7.0);
            let y = 2.0 * a - 300.0 * b + 0.125 * c + 0.1 * u(3);
            format!("{a:?},{b:?},{c:?},{y:?}")
        })
        .collect()
}

fn write(path: &Path, rows: &[String]) {
    std::fs::write(path, format!("x1,x2,x3,y\n{}\n", rows.join("\n"))).unwrap();
}

fn close(a: f64, b: f64, digits: i32) {
    assert!(
        (a - b).abs() <= 10f64.powi(-digits) * b.abs(),
        "{a} vs {b} (fewer than {digits} digits)"
    );
}

/// The lines from `summary of the fit` on.
fn summary_lines(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .skip_while(|l| !l.starts_with("summary of the fit"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn sharded_ols_merge_equals_one_pass_to_12_digits() {
    let dir = tempfile::tempdir().unwrap();
    let all = rows(20_000);
    let whole = dir.path().join("whole.csv");
    write(&whole, &all);
    let mut summaries = Vec::new();
    for (k, part) in all.chunks(5_000).enumerate() {
        let shard = dir.path().join(format!("shard{k}.csv"));
        write(&shard, part);
        let out = dir.path().join(format!("s{k}.json"));
        burnfit()
            .args(["ols", "--target", "y", "--data"])
            .arg(&shard)
            .arg("--save-summary")
            .arg(&out)
            .assert()
            .success()
            // --save-summary fits every row.
            .stdout(contains("on 5000 training rows"))
            .stdout(contains("(0 validation rows)"));
        summaries.push(out);
    }
    // The library: the merged coefficients, standard errors and R² against one pass.
    let one = fit_csv(
        &whole,
        &StreamOptions {
            table: burnfit::data::table::TableOptions::new("y"),
            val_frac: 0.0,
            seed: 0,
            intercept: true,
        },
    )
    .unwrap()
    .summary;
    let read: Vec<(String, ShardSummary)> = summaries
        .iter()
        .map(|p| (p.display().to_string(), ShardSummary::read(p).unwrap()))
        .collect();
    let merged = merge(&read).unwrap();
    assert_eq!(merged.rows, 20_000);
    assert_eq!(merged.sources.len(), 4);
    let s = merged.summary().unwrap();
    for (a, b) in s.coefficients.iter().zip(&one.coefficients) {
        close(a.estimate, b.estimate, 12);
        close(a.std_error, b.std_error, 12);
    }
    close(s.r2, one.r2, 12);
    close(s.ss_res, one.ss_res, 12);
    close(s.condition_number, one.condition_number, 9);
    // The command line prints the same summary.
    let single = burnfit()
        .args(["ols", "--target", "y", "--val-frac", "0", "--data"])
        .arg(&whole)
        .assert()
        .success();
    let merged_out = dir.path().join("merged.json");
    let merged_run = burnfit()
        .args(["ols", "--merge"])
        .args(&summaries)
        .arg("--save-summary")
        .arg(&merged_out)
        .assert()
        .success()
        .stdout(contains(
            "on 20000 rows of 4 files, merged from 4 summaries",
        ))
        .stdout(contains("shard3.csv  5000 rows"));
    assert_eq!(
        summary_lines(&merged_run.get_output().stdout),
        summary_lines(&single.get_output().stdout)
    );
    // Merges nest: the merged summary merges like its parts.
    let nested = ShardSummary::read(&merged_out).unwrap();
    assert_eq!(nested, merged);
}

#[test]
fn sharded_ols_streamed_split_is_todays_split() {
    // The in-memory split's validation rows, from the same seed, give the same fit: the
    // training rows' in-memory summary equals the streamed one.
    let dir = tempfile::tempdir().unwrap();
    let all = rows(3_001);
    let path = dir.path().join("t.csv");
    write(&path, &all);
    let options = StreamOptions {
        table: burnfit::data::table::TableOptions::new("y"),
        val_frac: 0.3,
        seed: 17,
        intercept: true,
    };
    let streamed = fit_csv(&path, &options).unwrap();
    let table = burnfit::data::table::Table::read(&path, &options.table).unwrap();
    let (train, val) = burnfit::data::table::holdout_split(table.rows(), 0.3, 17).unwrap();
    let memory = burnfit::ols::summary_table(&table, &train, true).unwrap();
    assert_eq!(streamed.train.rows, train.len());
    assert_eq!(streamed.val.unwrap().rows, val.len());
    for (a, b) in streamed
        .summary
        .coefficients
        .iter()
        .zip(&memory.coefficients)
    {
        close(a.estimate, b.estimate, 12);
    }
    let reference = burnfit::ols::fit_table(&table, &train).unwrap();
    for (a, b) in streamed.summary.fit.weights.iter().zip(&reference.weights) {
        close(*a, *b, 10);
    }
}

#[test]
fn sharded_ols_refuses_bad_summaries_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    write(&a, &rows(100));
    let b = dir.path().join("b.csv");
    std::fs::write(&b, "x1,x2,y\n1,2,3\n2,3,5\n3,5,7\n4,4,4\n").unwrap();
    let (sa, sb) = (dir.path().join("a.json"), dir.path().join("b.json"));
    for (data, out) in [(&a, &sa), (&b, &sb)] {
        burnfit()
            .args(["ols", "--target", "y", "--data"])
            .arg(data)
            .arg("--save-summary")
            .arg(out)
            .assert()
            .success();
    }
    let one_line = |args: &[&std::ffi::OsStr], message: &str| {
        let assert = burnfit().args(args).assert().failure().stdout("");
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    };
    let os = |s: &Path| s.as_os_str().to_owned();
    let merge = std::ffi::OsString::from("--merge");
    let ols = std::ffi::OsString::from("ols");
    one_line(
        &[&ols, &merge, &os(&sa), &os(&sb)],
        "only summaries of the same target and features merge",
    );
    // The same data twice (the same summary, a copy of it, or a merge holding it again) would
    // count its rows twice.
    let copy = dir.path().join("copy.json");
    std::fs::copy(&sa, &copy).unwrap();
    one_line(&[&ols, &merge, &os(&sa), &os(&sa)], "would count twice: ");
    one_line(
        &[&ols, &merge, &os(&sa), &os(&copy)],
        &format!(
            "{} ({}) and {} both cover it",
            sa.display(),
            a.display(),
            copy.display()
        ),
    );
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"format\": 3}").unwrap();
    one_line(
        &[&ols, &merge, &os(&sa), &os(&junk)],
        "not a burnfit OLS summary",
    );
    one_line(
        &[&ols, &merge, &os(&dir.path().join("none.json"))],
        "no such file",
    );
    // A summary whose R was tampered with.
    let text = std::fs::read_to_string(&sa).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["r"][2][0] = serde_json::json!(1.5);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, value.to_string()).unwrap();
    one_line(&[&ols, &merge, &os(&bad)], "not upper triangular");
    // --save-summary fits every row; a split is refused, and nothing is written.
    let out = dir.path().join("never.json");
    one_line(
        &[
            &ols,
            "--target".as_ref(),
            "y".as_ref(),
            "--val-frac".as_ref(),
            "0.2".as_ref(),
            "--data".as_ref(),
            &os(&a),
            "--save-summary".as_ref(),
            &os(&out),
        ],
        "must be 0 with --save-summary",
    );
    assert!(!out.exists());
    // A bad file: refused, and the summary is not written.
    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, "x1,x2,x3,y\n1,2,3,4\n1,2,x,4\n").unwrap();
    one_line(
        &[
            &ols,
            "--target".as_ref(),
            "y".as_ref(),
            "--data".as_ref(),
            &os(&broken),
            "--save-summary".as_ref(),
            &os(&out),
        ],
        "line 3, column `x3`",
    );
    assert!(!out.exists());
    // --save-summary may not overwrite its own data file, nor --merge one of its inputs.
    one_line(
        &[
            &ols,
            "--target".as_ref(),
            "y".as_ref(),
            "--data".as_ref(),
            &os(&a),
            "--save-summary".as_ref(),
            &os(&a),
        ],
        "both name",
    );
    one_line(
        &[&ols, &merge, &os(&sa), "--save-summary".as_ref(), &os(&sa)],
        "both name",
    );
}
