//! `burnfit ols`'s summary (standard errors, t, p, intervals, R², F, AIC/BIC) against NIST's
//! Statistical Reference Datasets for linear least squares
//! (https://www.itl.nist.gov/div898/strd/lls/lls.shtml), whose certified values are given to
//! 15 significant digits.
//!
//! Where the numbers come from: Longley, Norris, Pontius, NoInt1 and NoInt2 are typed in from
//! NIST's data pages; Wampler1 and Wampler2 are generated from their formulas
//! (y = 1 + x + x² + x³ + x⁴ + x⁵ and y = 1 + 0.1x + 0.01x² + … + 10⁻⁵x⁵, x = 0..20); Wampler3–5
//! are Wampler1 plus c·zᵢ (c = 1, 100, 10⁴), zᵢ read off NIST's Wampler3 table (the three
//! tables are exactly Wampler1 + c·z, which checks the transcription). The certified values
//! are NIST's, typed in; `tests/nist_exact_reference.py` recomputes every dataset in exact
//! rational arithmetic and reproduces all of them to their ~15 printed digits, which checks the
//! typed-in data and values against each other. Filip (82 rows, degree 10) is not here: its data
//! could not be transcribed reliably without access to NIST's page.
//!
//! Accuracy is the log relative error, LRE = −log₁₀(|computed − certified| / |certified|)
//! (−log₁₀|computed| where the certified value is 0), NIST's measure: the digits matched.

use std::path::Path;

use burnfit::ols::{OlsSummary, summary};
use predicates::str::contains;

use crate::common::burnfit;

struct Dataset {
    name: &'static str,
    /// Row-major features (the intercept's column of ones is not included).
    x: Vec<f64>,
    y: Vec<f64>,
    d: usize,
    intercept: bool,
    /// NIST's order: B0 (the intercept, where there is one), B1, .., with their standard
    /// deviations.
    certified: &'static [(f64, f64)],
    residual_sd: f64,
    r2: f64,
}

/// Longley (1967): employment against six economic series, 16 years. Columns: y, then x1..x6.
const LONGLEY: [[f64; 7]; 16] = [
    [60323.0, 83.0, 234289.0, 2356.0, 1590.0, 107608.0, 1947.0],
    [61122.0, 88.5, 259426.0, 2325.0, 1456.0, 108632.0, 1948.0],
    [60171.0, 88.2, 258054.0, 3682.0, 1616.0, 109773.0, 1949.0],
    [61187.0, 89.5, 284599.0, 3351.0, 1650.0, 110929.0, 1950.0],
    [63221.0, 96.2, 328975.0, 2099.0, 3099.0, 112075.0, 1951.0],
    [63639.0, 98.1, 346999.0, 1932.0, 3594.0, 113270.0, 1952.0],
    [64989.0, 99.0, 365385.0, 1870.0, 3547.0, 115094.0, 1953.0],
    [63761.0, 100.0, 363112.0, 3578.0, 3350.0, 116219.0, 1954.0],
    [66019.0, 101.2, 397469.0, 2904.0, 3048.0, 117388.0, 1955.0],
    [67857.0, 104.6, 419180.0, 2822.0, 2857.0, 118734.0, 1956.0],
    [68169.0, 108.4, 442769.0, 2936.0, 2798.0, 120445.0, 1957.0],
    [66513.0, 110.8, 444546.0, 4681.0, 2637.0, 121950.0, 1958.0],
    [68655.0, 112.6, 482704.0, 3813.0, 2552.0, 123366.0, 1959.0],
    [69564.0, 114.2, 502601.0, 3931.0, 2514.0, 125368.0, 1960.0],
    [69331.0, 115.7, 518173.0, 4806.0, 2572.0, 127852.0, 1961.0],
    [70551.0, 116.9, 554894.0, 4007.0, 2827.0, 130081.0, 1962.0],
];

/// Norris: a calibration of ozone monitors, y against x, 36 rows.
const NORRIS_Y: [f64; 36] = [
    0.1, 338.8, 118.1, 888.0, 9.2, 228.1, 668.5, 998.5, 449.1, 778.9, 559.2, 0.3, 0.1, 778.1,
    668.8, 339.3, 448.9, 10.8, 557.7, 228.3, 998.0, 888.8, 119.6, 0.3, 0.6, 557.6, 339.3, 888.0,
    998.5, 778.9, 10.2, 117.6, 228.9, 668.4, 449.2, 0.2,
];
const NORRIS_X: [f64; 36] = [
    0.2, 337.4, 118.2, 884.6, 10.1, 226.5, 666.3, 996.3, 448.6, 777.0, 558.2, 0.4, 0.6, 775.5,
    666.9, 338.0, 447.5, 11.6, 556.0, 228.1, 995.8, 887.6, 120.2, 0.3, 0.3, 556.8, 339.1, 887.2,
    999.0, 779.0, 11.1, 118.3, 229.2, 669.1, 448.9, 0.5,
];

/// Pontius: load-cell deflection against load (x = 150000, 300000, .., 3000000, twice), fitted
/// by a quadratic.
const PONTIUS_Y: [f64; 40] = [
    0.11019, 0.21956, 0.32949, 0.43899, 0.54803, 0.65694, 0.76562, 0.87487, 0.98292, 1.09146,
    1.20001, 1.30822, 1.41599, 1.52399, 1.63194, 1.73947, 1.84646, 1.95392, 2.06128, 2.16844,
    0.11052, 0.22018, 0.32939, 0.43886, 0.54798, 0.65739, 0.76596, 0.87474, 0.98300, 1.09150,
    1.20004, 1.30818, 1.41613, 1.52408, 1.63159, 1.73965, 1.84696, 1.95445, 2.06177, 2.16829,
];

/// Wampler3's deviations from Wampler1 (Wampler4: 100×, Wampler5: 10⁴×).
const WAMPLER_Z: [f64; 21] = [
    759.0, -2048.0, 2048.0, -2048.0, 2523.0, -2048.0, 2048.0, -2048.0, 1838.0, -2048.0, 2048.0,
    -2048.0, 1838.0, -2048.0, 2048.0, -2048.0, 2523.0, -2048.0, 2048.0, -2048.0, 759.0,
];

/// Wampler3's certified standard deviations B0..B5 and residual SD (Wampler4/5: ×100, ×10⁴).
const WAMPLER3_SD: [f64; 6] = [
    2152.32624678170,
    2363.55173469681,
    779.343524331583,
    101.475507550350,
    5.64566512170752,
    0.112324854679312,
];

fn wampler(name: &'static str, y: impl Fn(f64) -> f64, b: [f64; 6], sd: [f64; 6]) -> Dataset {
    let x: Vec<f64> = (0..21)
        .flat_map(|i| (1..=5).map(move |k| f64::from(i).powi(k)))
        .collect();
    let certified: Vec<(f64, f64)> = b.into_iter().zip(sd).collect();
    Dataset {
        name,
        x,
        y: (0..21).map(|i| y(f64::from(i))).collect(),
        d: 5,
        intercept: true,
        certified: certified.leak(),
        residual_sd: 0.0,
        r2: 1.0,
    }
}

fn datasets() -> Vec<Dataset> {
    let wampler1 = |x: f64| (0..6).map(|k| x.powi(k)).sum::<f64>();
    let mut sets = vec![
        Dataset {
            name: "Longley",
            x: LONGLEY.iter().flat_map(|r| r[1..].to_vec()).collect(),
            y: LONGLEY.iter().map(|r| r[0]).collect(),
            d: 6,
            intercept: true,
            certified: &[
                (-3482258.63459582, 890420.383607373),
                (15.0618722713733, 84.9149257747669),
                (-0.358191792925910E-01, 0.334910077722432E-01),
                (-2.02022980381683, 0.488399681651699),
                (-1.03322686717359, 0.214274163161675),
                (-0.511041056535807E-01, 0.226073200069370),
                (1829.15146461355, 455.478499142212),
            ],
            residual_sd: 304.854073561965,
            r2: 0.995479004577296,
        },
        Dataset {
            name: "Norris",
            x: NORRIS_X.to_vec(),
            y: NORRIS_Y.to_vec(),
            d: 1,
            intercept: true,
            certified: &[
                (-0.262323073774029, 0.232818234301152),
                (1.00211681802045, 0.429796848199937E-03),
            ],
            residual_sd: 0.884796396144373,
            r2: 0.999993745883712,
        },
        Dataset {
            name: "Pontius",
            x: (0..40)
                .flat_map(|i| {
                    let x = 150000.0 * f64::from(i % 20 + 1);
                    [x, x * x]
                })
                .collect(),
            y: PONTIUS_Y.to_vec(),
            d: 2,
            intercept: true,
            certified: &[
                (0.673565789473684E-03, 0.107938612033077E-03),
                (0.732059160401003E-06, 0.157817399981659E-09),
                (-0.316081871345029E-14, 0.486652849992036E-16),
            ],
            residual_sd: 0.205177424076185E-03,
            r2: 0.999999900178537,
        },
        Dataset {
            name: "NoInt1",
            x: (60..=70).map(f64::from).collect(),
            y: (130..=140).map(f64::from).collect(),
            d: 1,
            intercept: false,
            certified: &[(2.07438016528926, 0.165289256198347E-01)],
            residual_sd: 3.56753034006338,
            r2: 0.999365492298663,
        },
        Dataset {
            name: "NoInt2",
            x: vec![4.0, 5.0, 6.0],
            y: vec![3.0, 4.0, 4.0],
            d: 1,
            intercept: false,
            certified: &[(0.727272727272727, 0.420827318078432E-01)],
            residual_sd: 0.369274472937998,
            r2: 0.993348115299335,
        },
        wampler("Wampler1", wampler1, [1.0; 6], [0.0; 6]),
        wampler(
            "Wampler2",
            |x| (0..6).map(|k| (x / 10.0).powi(k)).sum(),
            [1.0, 0.1, 0.01, 0.001, 1e-4, 1e-5],
            [0.0; 6],
        ),
    ];
    for (name, c, residual_sd, r2) in [
        ("Wampler3", 1.0, 2360.14502379268, 0.999995559025820),
        ("Wampler4", 100.0, 236014.502379268, 0.957478440825662),
        ("Wampler5", 1e4, 23601450.2379268, 0.224668921574940E-02),
    ] {
        let mut set = wampler(
            name,
            move |x| wampler1(x) + c * WAMPLER_Z[x as usize],
            [1.0; 6],
            WAMPLER3_SD.map(|s| s * c),
        );
        set.residual_sd = residual_sd;
        set.r2 = r2;
        sets.push(set);
    }
    sets
}

/// NIST's log relative error: the number of digits `computed` shares with `certified`, at most
/// 15 (NIST prints 15), −log₁₀|computed| against a certified 0.
fn lre(computed: f64, certified: f64) -> f64 {
    let error = if certified == 0.0 {
        computed.abs()
    } else {
        ((computed - certified) / certified).abs()
    };
    if error == 0.0 {
        15.0
    } else {
        (-error.log10()).min(15.0)
    }
}

fn fit(set: &Dataset) -> OlsSummary {
    let rows: Vec<u32> = (0..set.y.len() as u32).collect();
    summary(&set.x, &set.y, set.d, &rows, set.intercept).unwrap()
}

/// The fewest digits matched over a dataset's coefficients, their standard deviations, the
/// residual SD and R², in that order.
fn digits(set: &Dataset) -> [f64; 4] {
    let s = fit(set);
    // Ours: features then the intercept; NIST's: B0 (the intercept) first.
    let mut ours: Vec<_> = s.coefficients.iter().collect();
    if set.intercept {
        ours.rotate_right(1);
    }
    assert_eq!(ours.len(), set.certified.len(), "{}", set.name);
    let min = |it: &mut dyn Iterator<Item = f64>| it.fold(15.0f64, f64::min);
    let coef = min(&mut ours
        .iter()
        .zip(set.certified)
        .map(|(c, (b, _))| lre(c.estimate, *b)));
    let sd = min(&mut ours
        .iter()
        .zip(set.certified)
        .map(|(c, (_, sd))| lre(c.std_error, *sd)));
    [
        coef,
        sd,
        lre(s.residual_std_error, set.residual_sd),
        lre(s.r2, set.r2),
    ]
}

/// The digits reached (printed with `--nocapture`), each checked against a floor a little below
/// what this build reaches, so that a change that loses accuracy fails here.
#[test]
fn nist_strd_certified_values_are_matched() {
    // Floors: coefficients, standard deviations, residual SD, R².
    let floors = [
        ("Longley", [12.0, 12.0, 12.0, 13.0]),
        ("Norris", [12.0, 12.0, 12.0, 13.0]),
        ("Pontius", [11.0, 11.0, 11.0, 12.0]),
        ("NoInt1", [13.0, 13.0, 13.0, 13.0]),
        ("NoInt2", [13.0, 13.0, 13.0, 13.0]),
        // Wampler1–5 hold x⁰..x⁵ over x = 0..20; in Wampler5 the residuals are 10⁴ times
        // Wampler3's, and B0's standard deviation (2.2e7) dwarfs B0 = 1: rounding y alone
        // (~1e-16·‖y‖) moves B0 by ~1e-8, about the error reached (f64 throughout).
        ("Wampler1", [9.0, 9.0, 9.0, 13.0]),
        ("Wampler2", [9.0, 12.0, 12.0, 13.0]),
        ("Wampler3", [9.0, 11.0, 11.0, 11.0]),
        ("Wampler4", [9.0, 11.0, 11.0, 11.0]),
        ("Wampler5", [7.0, 11.0, 11.0, 11.0]),
    ];
    let mut failures = Vec::new();
    for set in datasets() {
        let got = digits(&set);
        eprintln!(
            "{:<9} digits: coefficients {:.1}  std devs {:.1}  residual SD {:.1}  R² {:.1}",
            set.name, got[0], got[1], got[2], got[3]
        );
        let floor = floors.iter().find(|(n, _)| *n == set.name).unwrap().1;
        if got.iter().zip(floor).any(|(g, f)| *g < f) {
            failures.push(format!("{}: {got:.1?} below {floor:?}", set.name));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn write_csv(path: &Path, header: &[&str], rows: impl Iterator<Item = Vec<f64>>) {
    let mut text = header.join(",") + "\n";
    for row in rows {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
        text += &(cells.join(",") + "\n");
    }
    std::fs::write(path, text).unwrap();
}

/// The value after `label ` in the summary (the lines after `summary of the fit`).
fn value_after(stdout: &str, label: &str) -> f64 {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("summary of the fit"))
        .find_map(|l| l.split_once(&format!("{label} ")))
        .and_then(|(before, rest)| {
            // `R²` must not match inside `adjusted R²`.
            (before.is_empty() || before.ends_with(' ')).then_some(rest)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{label}` in\n{stdout}"))
        .parse()
        .unwrap()
}

/// A row of the coefficient table: coef, std err, t, P>|t|, [0.025, 0.975].
fn table_row(stdout: &str, name: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .filter(|l| l.trim().starts_with(&format!("{name} ")))
        .nth(1) // the first is the fit's line, without the statistics
        .unwrap_or_else(|| panic!("no table row for {name} in\n{stdout}"));
    line.split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn ols_prints_the_summary_of_longley() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("longley.csv");
    let header = [
        "y",
        "deflator",
        "gnp",
        "unemployed",
        "armed",
        "population",
        "year",
    ];
    write_csv(&csv, &header, LONGLEY.iter().map(|r| r.to_vec()));
    let assert = burnfit()
        .args(["ols", "--target", "y", "--val-frac", "0", "--data"])
        .arg(&csv)
        .assert()
        .success()
        // The lines that were there before the summary still are.
        .stdout(contains("OLS fit of `y` on 16 training rows of "))
        .stdout(contains("longley.csv (0 validation rows)"))
        .stdout(contains("train: MSE "))
        .stdout(contains("  n 16  df model 6  df residuals 9\n"));
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let close = |a: f64, e: f64, digits: i32| {
        assert!(
            (a - e).abs() <= 10f64.powi(-digits) * e.abs(),
            "{a} vs {e}\n{stdout}"
        )
    };
    close(value_after(&stdout, "R²"), 0.995479004577296, 8);
    close(value_after(&stdout, "adjusted R²"), 0.992465007628826, 8);
    close(
        value_after(&stdout, "residual standard error"),
        304.854073561965,
        8,
    );
    // F is NIST's certified ANOVA value; its p-value, the log-likelihood and the condition
    // number are statsmodels' formulas evaluated with numpy and scipy 1.17 (np.linalg.cond of
    // the design with its ones column; statsmodels prints Cond. No. 4.86e+09).
    close(value_after(&stdout, "F-statistic"), 330.285339234588, 5);
    let p = stdout
        .lines()
        .find_map(|l| l.split_once("p-value "))
        .unwrap()
        .1;
    close(p.parse().unwrap(), 4.984030528725924e-10, 3);
    close(
        value_after(&stdout, "log-likelihood"),
        -109.61743480848097,
        7,
    );
    close(
        value_after(&stdout, "condition number"),
        4859257015.454869,
        3,
    );
    let year = table_row(&stdout, "year");
    close(year[0], 1829.15146461355, 9);
    close(year[1], 455.478499142212, 5);
    close(year[2], 1829.15146461355 / 455.478499142212, 4);
    // t = 4.016 on 9 df: p = 0.0030368 (scipy); the interval is ±t₀.₉₇₅(9)·SE = ±2.262157·SE.
    close(year[3], 0.0030368033416303102, 3);
    close(year[5] - year[0], 2.262157162798205 * 455.478499142212, 6);
    let intercept = table_row(&stdout, "(intercept)");
    close(intercept[0], -3482258.63459582, 9);
    close(intercept[1], 890420.383607373, 5);
}

#[test]
fn ols_no_intercept_fits_noint1() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("noint1.csv");
    write_csv(
        &csv,
        &["x", "y"],
        (60..=70).map(|x| vec![f64::from(x), f64::from(x + 70)]),
    );
    let assert = burnfit()
        .args([
            "ols",
            "--no-intercept",
            "--target",
            "y",
            "--val-frac",
            "0",
            "--data",
        ])
        .arg(&csv)
        .assert()
        .success()
        .stdout(contains(
            "  n 11  df model 1  df residuals 10  (no intercept)\n",
        ))
        .stdout(contains("R² (uncentered) 0.99936549"));
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(!stdout.contains("(intercept)"), "{stdout}");
    let x = table_row(&stdout, "x");
    assert!((x[0] - 2.07438016528926).abs() < 1e-9, "{stdout}");
    assert!((x[1] - 0.0165289256198347).abs() < 1e-7, "{stdout}");
}

#[test]
fn ols_summary_refuses_what_it_cannot_fit_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("zero.csv");
    std::fs::write(&csv, "a,z,y\n1,0,2\n2,0,3\n3,0,5\n4,0,4\n").unwrap();
    let assert = burnfit()
        .args([
            "ols",
            "--no-intercept",
            "--target",
            "y",
            "--val-frac",
            "0",
            "--data",
        ])
        .arg(&csv)
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("feature `z` is 0 in every row"));
    assert_eq!(
        String::from_utf8_lossy(&assert.get_output().stderr)
            .lines()
            .count(),
        1
    );
    // With as many rows as coefficients the fit is exact and has no residual degrees of
    // freedom: the statistics that need them say n/a.
    std::fs::write(&csv, "a,y\n1,2\n2,5\n").unwrap();
    burnfit()
        .args(["ols", "--target", "y", "--val-frac", "0", "--data"])
        .arg(&csv)
        .assert()
        .success()
        .stdout(contains("df residuals 0"))
        .stdout(contains("residual standard error n/a"));
}
