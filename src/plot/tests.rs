//! The charts' SVG, checked by parsing it back.

use super::*;

/// An element of an SVG document: its name, attributes and text content.
#[derive(Debug)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
}

impl Element {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Checks that `svg` is well-formed XML (tags nest and match, attributes are quoted, `<`
/// and `&` appear only as markup or entities) with one `<svg>` root, and returns its
/// elements in document order, entities in text and attributes decoded.
fn parse_svg(svg: &str) -> Vec<Element> {
    let mut elements: Vec<Element> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut roots = 0;
    let mut rest = svg;
    while !rest.is_empty() {
        let Some(start) = rest.find('<') else {
            assert!(
                rest.trim().is_empty() || !open.is_empty(),
                "text after the root"
            );
            let text = decode(rest);
            if let Some((_, index)) = open.last() {
                elements[*index].text.push_str(&text);
            }
            break;
        };
        let text = decode(&rest[..start]);
        match open.last() {
            Some((_, index)) => elements[*index].text.push_str(&text),
            None => assert!(text.trim().is_empty(), "text outside the root: {text:?}"),
        }
        rest = &rest[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment.find("-->").expect("unclosed comment");
            rest = &comment[end + 3..];
            continue;
        }
        if let Some(declaration) = rest.strip_prefix("<?") {
            let end = declaration.find("?>").expect("unclosed declaration");
            rest = &declaration[end + 2..];
            continue;
        }
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let (expected, _) = open.pop().expect("closing tag without an opening one");
            assert_eq!(name.trim(), expected, "mismatched closing tag");
            continue;
        }
        let (tag, self_closing) = match tag.strip_suffix('/') {
            Some(tag) => (tag, true),
            None => (tag, false),
        };
        let (name, element) = parse_tag(tag);
        if open.is_empty() {
            roots += 1;
            assert_eq!(name, "svg", "the root must be <svg>");
        }
        elements.push(element);
        if !self_closing {
            open.push((name, elements.len() - 1));
        }
    }
    assert!(open.is_empty(), "unclosed elements: {open:?}");
    assert_eq!(roots, 1, "one root element");
    elements
}

fn parse_tag(tag: &str) -> (String, Element) {
    let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
    let name = &tag[..name_end];
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == ':'),
        "bad element name {name:?}"
    );
    let mut attributes = Vec::new();
    let mut rest = tag[name_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').expect("attribute without a value");
        let key = rest[..eq].trim();
        assert!(
            !key.is_empty() && !key.contains(char::is_whitespace),
            "bad attribute name {key:?} in <{tag}>"
        );
        let value = rest[eq + 1..].trim_start();
        let quote = value.chars().next().expect("attribute value missing");
        assert!(
            quote == '"' || quote == '\'',
            "unquoted attribute in <{tag}>"
        );
        let close = value[1..].find(quote).expect("unclosed attribute value");
        let raw = &value[1..1 + close];
        assert!(!raw.contains('<'), "`<` in an attribute of <{tag}>");
        assert!(
            attributes.iter().all(|(k, _): &(String, String)| k != key),
            "duplicate attribute {key}"
        );
        attributes.push((key.to_owned(), decode(raw)));
        rest = value[close + 2..].trim_start();
    }
    let element = Element {
        name: name.to_owned(),
        attributes,
        text: String::new(),
    };
    (name.to_owned(), element)
}

/// Decodes the five XML entities; any other `&` is malformed.
fn decode(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').expect("`&` without `;`");
        out.push(match &rest[amp + 1..amp + semi] {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            other => panic!("unknown entity &{other};"),
        });
        rest = &rest[amp + semi + 1..];
    }
    out + rest
}

fn hex(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
}

/// The polylines drawn in `color`.
fn polylines_in(elements: &[Element], color: RGBColor) -> Vec<&Element> {
    elements
        .iter()
        .filter(|e| e.name == "polyline" && e.attribute("stroke") == Some(&hex(color)))
        .collect()
}

fn texts(elements: &[Element]) -> Vec<String> {
    elements
        .iter()
        .filter(|e| e.name == "text")
        .map(|e| e.text.trim().to_owned())
        .collect()
}

fn read(path: &Path) -> Vec<Element> {
    parse_svg(&std::fs::read_to_string(path).unwrap())
}

fn points(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    (1..=n).map(|i| (i as f64, f(i as f64))).collect()
}

#[test]
fn the_svg_checker_catches_malformed_documents() {
    let good = "<svg a=\"1\">\n<text x=\"1\">a &amp; b</text>\n<rect/>\n</svg>\n";
    let elements = parse_svg(good);
    assert_eq!(elements.len(), 3);
    assert_eq!(elements[1].text.trim(), "a & b");
    for bad in [
        "<svg><text></svg>",
        "<svg a=1></svg>",
        "<svg>a & b</svg>",
        "<svg></svg><svg></svg>",
        "<svg><rect></svg></rect>",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_svg(bad)).is_err(),
            "accepted {bad}"
        );
    }
}

#[test]
fn loss_chart_has_one_line_per_series_a_legend_and_axis_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("loss.svg");
    let series = [
        Series::new("train", points(200, |s| 10.0 * (-s / 20.0).exp() + 1e-4)),
        Series::new(
            "validation",
            points(20, |s| 1.0 / s)
                .into_iter()
                .map(|(x, y)| (x * 10.0, y))
                .collect(),
        ),
    ];
    loss_chart(&series, &out, false).unwrap();
    let elements = read(&out);
    assert_eq!(elements[0].attribute("width"), Some("900"));
    for (i, s) in series.iter().enumerate() {
        let lines = polylines_in(&elements, PALETTE[i]);
        assert_eq!(lines.len(), 1, "{}", s.name);
        let vertices = lines[0]
            .attribute("points")
            .unwrap()
            .split_whitespace()
            .count();
        assert_eq!(vertices, s.points.len(), "{}", s.name);
    }
    let labels = texts(&elements);
    for label in [
        "train",
        "validation",
        "step",
        "loss (MSE, log scale)",
        "training loss",
    ] {
        assert!(
            labels.iter().any(|t| t == label),
            "no text {label:?} in {labels:?}"
        );
    }
    // The legend swatches.
    for color in &PALETTE[..2] {
        assert!(
            elements
                .iter()
                .any(|e| e.name == "rect" && e.attribute("fill") == Some(&hex(*color)))
        );
    }
}

#[test]
fn a_long_loss_series_is_reduced_but_keeps_its_spike_dip_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("loss.svg");
    let n = 1_000_000;
    let mut train = points(n, |s| 1.0 + 1.0 / s);
    train[123_457].1 = 1e6; // a spike
    train[654_321].1 = 1e-6; // a dip
    loss_chart(&[Series::new("train", train.clone())], &out, false).unwrap();
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size < 200_000, "{size} bytes");
    let elements = read(&out);
    let line = polylines_in(&elements, PALETTE[0])[0]
        .attribute("points")
        .unwrap()
        .to_string();
    let vertices: Vec<(f64, f64)> = line
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert!(
        vertices.len() > LOSS_POINTS / 2 && vertices.len() <= LOSS_POINTS + 2,
        "{} vertices",
        vertices.len()
    );
    // In pixels: y grows downwards. The spike is the top of the line, the dip its bottom,
    // and the line spans the whole run, left to right.
    let top = vertices.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
    let bottom = vertices
        .iter()
        .map(|v| v.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let spike = vertices.iter().position(|v| v.1 == top).unwrap();
    let dip = vertices.iter().position(|v| v.1 == bottom).unwrap();
    assert!(spike < dip, "spike at vertex {spike}, dip at {dip}");
    assert!(vertices.windows(2).all(|w| w[0].0 <= w[1].0));
    // The reduction itself: first and last kept, each run's extremes in order.
    let kept = envelope(&train, LOSS_POINTS);
    assert_eq!((kept[0], kept[kept.len() - 1]), (train[0], train[n - 1]));
    assert!(kept.contains(&train[123_457]) && kept.contains(&train[654_321]));
    assert_eq!(envelope(&train[..10], LOSS_POINTS), train[..10].to_vec());
}

#[test]
fn losses_of_zero_are_drawn_at_the_smallest_positive_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("loss.svg");
    let train = vec![
        (1.0, 1.0),
        (2.0, 0.01),
        (3.0, 0.0),
        (4.0, -1.0),
        (5.0, f64::NAN),
    ];
    loss_chart(&[Series::new("train", train)], &out, false).unwrap();
    let elements = read(&out);
    let line = polylines_in(&elements, PALETTE[0]);
    let ys: Vec<&str> = line[0]
        .attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|p| p.split(',').nth(1).unwrap())
        .collect();
    // NaN left out; 0 and -1 at the height of 0.01.
    assert_eq!(ys.len(), 4);
    assert_eq!(ys[1], ys[2]);
    assert_eq!(ys[2], ys[3]);
    assert_ne!(ys[0], ys[1]);
}

#[test]
fn nothing_to_plot_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("empty.svg");
    let cases = [
        loss_chart(&[], &out, false),
        loss_chart(&[Series::new("train", vec![])], &out, false),
        loss_chart(&[Series::new("train", vec![(1.0, 0.0)])], &out, false),
        bench_chart(&[Series::new("x", vec![(64.0, f64::NAN)])], &out, false),
        fit_chart(&[], (1.0, 0.0), None, &out, false),
    ];
    for result in cases {
        let err = result.unwrap_err();
        assert!(err.to_string().contains("nothing to plot"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
    assert!(!out.exists());
}

#[test]
fn only_svg_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let series = [Series::new("train", points(3, |s| s))];
    for name in ["loss.png", "loss", "loss.svg.txt"] {
        let out = dir.path().join(name);
        let err = loss_chart(&series, &out, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "plot {}: only .svg is supported (PNG needs system font libraries)",
                out.display()
            )
        );
        assert_eq!(err.exit_code(), 2);
        assert!(check_svg_path(&out, false).is_err());
        assert!(fit_chart(&[(0.0, 0.0)], (1.0, 0.0), None, &out, false).is_err());
        assert!(bench_chart(&series, &out, false).is_err());
        assert!(!out.exists());
    }
    assert!(check_svg_path(&dir.path().join("LOSS.SVG"), false).is_ok());
    assert!(check_svg_path(&dir.path().join("no/such/dir/loss.svg"), false).is_err());
}

#[test]
fn an_existing_chart_is_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("loss.svg");
    std::fs::write(&out, "old chart").unwrap();
    loss_chart(
        &[Series::new("train", points(10, |s| 1.0 / s))],
        &out,
        false,
    )
    .unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    parse_svg(&svg);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["loss.svg"]);
}

#[test]
fn fit_chart_draws_a_sample_the_fit_and_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fit.svg");
    // 5000 points on y = 2.5x - 1 with a deterministic wobble.
    let data: Vec<(f64, f64)> = (0..5000)
        .map(|i| {
            let x = (i as f64 * 0.618_034).fract() * 4.0 - 2.0;
            (x, 2.5 * x - 1.0 + ((i % 7) as f64 - 3.0) * 0.1)
        })
        .collect();
    fit_chart(&data, (2.4999, -1.00021), Some((2.5, -1.0)), &out, false).unwrap();
    let elements = read(&out);
    let data_points = elements
        .iter()
        .filter(|e| e.name == "circle" && e.attribute("fill") == Some(&hex(DATA_COLOR)))
        .count();
    // 5000 thinned by a stride of 3 to 1667, plus the legend's dot.
    assert_eq!(data_points, 1667 + 1);
    let fit = polylines_in(&elements, PALETTE[0]);
    let truth = polylines_in(&elements, PALETTE[1]);
    assert_eq!((fit.len(), truth.len()), (1, 1));
    assert_eq!(
        fit[0]
            .attribute("points")
            .unwrap()
            .split_whitespace()
            .count(),
        2
    );
    let labels = texts(&elements);
    for label in [
        "data (1667 of 5000 points)",
        "fit: w = 2.4999, b = -1.0002",
        "truth: w = 2.5, b = -1",
        "x",
        "y",
    ] {
        assert!(
            labels.iter().any(|t| t == label),
            "no text {label:?} in {labels:?}"
        );
    }
    // Without the truth: the fit alone, still in the first colour.
    fit_chart(&data[..10], (2.5, -1.0), None, &out, false).unwrap();
    let elements = read(&out);
    assert_eq!(polylines_in(&elements, PALETTE[0]).len(), 1);
    assert_eq!(polylines_in(&elements, PALETTE[1]).len(), 0);
    assert!(texts(&elements).contains(&"data".to_owned()));
}

#[test]
fn bench_chart_has_a_line_and_markers_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.svg");
    let batches = [64.0, 4096.0, 65_536.0, 1_048_576.0];
    let series = [
        Series::new(
            "flex autodiff",
            batches.iter().map(|&b| (b, 20.0 + b * 1e-3)).collect(),
        ),
        Series::new(
            "wgpu fused",
            batches.iter().map(|&b| (b, 40.0 + b * 1e-5)).collect(),
        ),
        Series::new(
            "autograd",
            vec![(64.0, 15.0), (4096.0, 90.0), (65_536.0, f64::NAN)],
        ),
        Series::new(
            "torch cuda",
            batches.iter().rev().map(|&b| (b, 30.0)).collect(),
        ),
    ];
    bench_chart(&series, &out, false).unwrap();
    let elements = read(&out);
    for (i, s) in series.iter().enumerate() {
        let color = hex(PALETTE[i]);
        let lines = polylines_in(&elements, PALETTE[i]);
        assert_eq!(lines.len(), 1, "{}", s.name);
        let drawn = s.points.iter().filter(|p| p.1.is_finite()).count();
        let markers = elements
            .iter()
            .filter(|e| e.name == "circle" && e.attribute("fill") == Some(&color))
            .count();
        assert_eq!(markers, drawn, "{}", s.name);
    }
    // Drawn in order of batch size, whatever the order given.
    let torch = polylines_in(&elements, PALETTE[3])[0]
        .attribute("points")
        .unwrap();
    let xs: Vec<i32> = torch
        .split_whitespace()
        .map(|p| p.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
    let labels = texts(&elements);
    for label in [
        "flex autodiff",
        "wgpu fused",
        "autograd",
        "torch cuda",
        "batch size (log scale)",
        "µs per step (log scale)",
    ] {
        assert!(
            labels.iter().any(|t| t == label),
            "no text {label:?} in {labels:?}"
        );
    }
}

#[test]
fn bench_series_reads_burnfit_and_torch_reports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.json");
    std::fs::write(
        &path,
        r#"{"machine": {"cpu_model": "x", "cores": 2},
            "rows": [
              {"system": "burnfit/flex/autodiff", "engine": "autodiff", "device": "cpu", "batch": 64, "steps": 10, "us_per_step": 12.5, "note": null},
              {"system": "torch/cuda", "device": "H100", "batch": 64, "us_per_step": 30.0},
              {"system": "burnfit/flex/autodiff", "batch": 4096, "us_per_step": 50.0},
              {"system": "autograd", "batch": 4096, "us_per_step": null, "note": "skipped: budget"}
            ]}"#,
    )
    .unwrap();
    let series = bench_series(&path).unwrap();
    assert_eq!(
        series,
        [
            Series::new("flex autodiff", vec![(64.0, 12.5), (4096.0, 50.0)]),
            Series::new("torch cuda", vec![(64.0, 30.0)]),
            Series::new("autograd", vec![]),
        ]
    );
    std::fs::write(&path, r#"{"steps": 3}"#).unwrap();
    let err = bench_series(&path).unwrap_err().to_string();
    assert!(
        err.contains("not the JSON of `burnfit bench --json`") && err.contains("rows"),
        "{err}"
    );
}

#[test]
fn loss_series_takes_train_and_validation_from_metrics_rows() {
    let row = |step: u64, loss: f32, val: Option<f64>| MetricsRow {
        step,
        loss,
        elapsed_s: 0.0,
        lr: 0.01,
        extra: val.map(|v| (VAL_LOSS.to_owned(), v)).into_iter().collect(),
    };
    let rows = [row(1, 0.5, None), row(2, 0.25, Some(0.375))];
    assert_eq!(
        loss_series(&rows),
        [
            Series::new("train", vec![(1.0, 0.5), (2.0, 0.25)]),
            Series::new("validation", vec![(2.0, 0.375)]),
        ]
    );
    assert_eq!(loss_series(&rows[..1]).len(), 1);
}

#[test]
fn ticks_are_short() {
    let cases = [
        (0.0, "0"),
        (1.0, "1"),
        (0.001, "0.001"),
        (0.5, "0.5"),
        (1234.5678, "1235"),
        (65_536.0, "65536"),
        (1_048_576.0, "1.049e6"),
        (1e-5, "1e-5"),
        (-2.5, "-2.5"),
    ];
    for (value, expected) in cases {
        assert_eq!(tick(value), expected, "{value}");
    }
    assert_eq!(short(2.49991), "2.4999");
    assert_eq!(short(-1.0), "-1");
    assert_eq!(short(1e-7), "1e-7");
    assert_eq!(tick(9999.6), "10000");
}
