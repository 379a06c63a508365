//! The streaming `burnfit ols` against the in-memory QR it replaces, on a generated table:
//! `cargo bench --features flex,wgpu,autograd-ref --bench streaming_ols -- gen FILE ROWS D`
//! writes FILE (ROWS rows, D features far from 0 on different scales, a noisy linear target);
//! `-- compare FILE` fits it both ways and prints the significant digits they share.
//! `benches/streaming_ols.sh` runs both and measures the CLI's peak memory and MB/s.

use std::io::Write;
use std::path::Path;

use burnfit::data::table::{Table, TableOptions};
use burnfit::ols::{StreamOptions, fit_csv, fit_table};
use burnfit::rng::splitmix64;

fn uniform(i: u64) -> f64 {
    (splitmix64(i) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn generate(path: &Path, rows: u64, d: usize) {
    let file = std::fs::File::create(path).expect("create the file");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let names: Vec<String> = (1..=d)
        .map(|j| format!("x{j}"))
        .chain(["y".into()])
        .collect();
    writeln!(out, "{}", names.join(",")).unwrap();
    let mut line = String::with_capacity(512);
    for i in 0..rows {
        line.clear();
        let mut y = 3.0;
        for j in 0..d {
            let scale = 10f64.powi(j as i32 % 5 - 2);
            let x = 100.0 * scale * (1.0 + j as f64) + scale * uniform(i * 64 + j as u64);
            y += (j as f64 - d as f64 / 2.0) / scale * x;
            line += &format!("{x:.6},");
        }
        y += uniform(!i);
        line += &format!("{y:.6}\n");
        out.write_all(line.as_bytes()).unwrap();
    }
    out.flush().unwrap();
}

/// The significant digits `a` and `b` share: −log₁₀ of their relative difference.
fn digits(a: f64, b: f64) -> f64 {
    let e = ((a - b) / b).abs();
    if e == 0.0 { 16.0 } else { -e.log10() }
}

fn compare(path: &Path) {
    let options = TableOptions::new("y");
    let t0 = std::time::Instant::now();
    let streamed = fit_csv(
        path,
        &StreamOptions {
            table: options.clone(),
            val_frac: 0.0,
            seed: 0,
            intercept: true,
        },
    )
    .expect("streamed fit");
    let stream_s = t0.elapsed().as_secs_f64();
    let t0 = std::time::Instant::now();
    let table = Table::read(path, &options).expect("read the table");
    let rows: Vec<u32> = (0..table.rows() as u32).collect();
    let reference = fit_table(&table, &rows).expect("in-memory fit");
    let memory_s = t0.elapsed().as_secs_f64();
    let fit = &streamed.summary.fit;
    let worst = fit
        .weights
        .iter()
        .chain([&fit.bias])
        .zip(reference.weights.iter().chain([&reference.bias]))
        .map(|(a, b)| digits(*a, *b))
        .fold(16.0, f64::min);
    println!(
        "{} rows x {} features: streamed {stream_s:.1} s, in memory {memory_s:.1} s; \
         coefficients agree to {worst:.1} significant digits (the fewest over all)",
        table.rows(),
        table.d()
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["gen", path, rows, d] => generate(
            Path::new(path),
            rows.parse().expect("ROWS"),
            d.parse().expect("D"),
        ),
        ["compare", path] => compare(Path::new(path)),
        _ => eprintln!("usage: streaming_ols gen FILE ROWS D | compare FILE (see the file's doc)"),
    }
}
