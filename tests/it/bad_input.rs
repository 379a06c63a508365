//! Every bad checkpoint a user can hand us: a one-line error naming the file and the problem, a
//! non-zero exit code, and every existing file left exactly as it was.

use std::path::Path;

use burnfit::Checkpoint;
use burnfit::checkpoint::Format;

use crate::common::{autograd_fixture, burnfit};

/// A checkpoint file whose w is NaN (SafeTensors and burnpack can hold one; JSON cannot).
fn non_finite(format: Format) -> Vec<u8> {
    let mut checkpoint = Checkpoint::load(&autograd_fixture())
        .unwrap()
        .without_optimizer();
    checkpoint.params[0].data[0] = f32::NAN;
    checkpoint.to_bytes(format).unwrap()
}

fn fixture_text() -> String {
    std::fs::read_to_string(autograd_fixture()).unwrap()
}

/// (file name, contents or None for "do not create", expected message part)
fn bad_checkpoints() -> Vec<(&'static str, Option<Vec<u8>>, &'static str)> {
    let fixture = fixture_text();
    let with_meta = |meta: &str| fixture.replacen('{', &format!("{{\"burnfit\":{meta},"), 1);
    let text_cases: Vec<(&'static str, Option<String>, &'static str)> = vec![
        ("missing.json", None, "no such file"),
        ("empty.json", Some(String::new()), "file is empty"),
        (
            "truncated.json",
            Some(fixture[..fixture.len() / 2].to_string()),
            "truncated JSON",
        ),
        ("text.json", Some("hello, world".into()), "not valid JSON"),
        (
            "schema.json",
            Some(r#"{"weights": [1, 2]}"#.into()),
            "not an autograd results.json",
        ),
        (
            "version.json",
            Some(fixture.replacen("\"v\":1", "\"v\":3", 1)),
            "v = 3",
        ),
        (
            "length.json",
            Some(fixture.replacen("\"data\":[2.4951487]", "\"data\":[2.4951487, 1.0]", 1)),
            "needs 1 values",
        ),
        (
            "nonnumeric.json",
            Some(fixture.replacen("[2.4951487]", "[\"2.5\"]", 1)),
            "invalid type: string",
        ),
        (
            "infinite.json",
            Some(fixture.replacen("[2.4951487]", "[1e39]", 1)),
            "out of range",
        ),
        (
            "nan.json",
            Some(fixture.replacen("[2.4951487]", "[NaN]", 1)),
            "not valid JSON",
        ),
        (
            "no_b.json",
            Some(fixture.replacen("\"\\u0001b\"", "\"\\u0001bias\"", 1)),
            "no variable `b`",
        ),
        (
            "shape.json",
            Some(fixture.replacen(
                "\"dim\":[1,1],\"data\":[2.4951487]",
                "\"dim\":[1],\"data\":[2.4951487]",
                1,
            )),
            "`w` has shape [1], expected [inputs, outputs]",
        ),
        (
            "future.json",
            Some(with_meta(r#"{"format_version": 99}"#)),
            "newer than this build",
        ),
        (
            "badmeta.json",
            Some(with_meta(r#"{"format_version": 1, "colour": "red"}"#)),
            "metadata",
        ),
        (
            "junk.bpk",
            Some("not a burnpack".into()),
            "not a valid burnpack",
        ),
        (
            "junk.safetensors",
            Some("\u{8}\0\0\0\0\0\0\0{}".into()),
            "SafeTensors",
        ),
        // Content that names no format, under an extension that names none either.
        ("model.txt", Some("hello".into()), "unknown format"),
    ];
    let mut cases: Vec<(&'static str, Option<Vec<u8>>, &'static str)> = text_cases
        .into_iter()
        .map(|(name, text, expected)| (name, text.map(String::into_bytes), expected))
        .collect();
    cases.push(("nan.bpk", Some(non_finite(Format::Bpk)), "non-finite"));
    cases.push((
        "nan.safetensors",
        Some(non_finite(Format::Safetensors)),
        "non-finite",
    ));
    cases
}

fn assert_one_line_error(output: &std::process::Output, name: &str, expected: &str) {
    assert!(!output.status.success(), "{name}: succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
    assert!(
        stderr.contains(name),
        "{name}: the file is not named: {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "{name}: expected {expected:?} in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
}

#[test]
fn bad_checkpoints_are_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    std::fs::write(&out, b"previous good checkpoint").unwrap();
    for (name, contents, expected) in bad_checkpoints() {
        let path = dir.path().join(name);
        if let Some(text) = &contents {
            std::fs::write(&path, text).unwrap();
        }
        let predict = burnfit()
            .args([
                "predict",
                "--x",
                "1",
                "--backend",
                "ndarray",
                "--checkpoint",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert_one_line_error(&predict, name, expected);
        let resume = burnfit()
            .args(["train", "--backend", "ndarray", "--steps", "5", "--resume"])
            .arg(&path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_one_line_error(&resume, name, expected);
        let convert = burnfit()
            .arg("convert")
            .arg(&path)
            .arg(&out)
            .output()
            .unwrap();
        assert_one_line_error(&convert, name, expected);
        let inspect = burnfit().arg("inspect").arg(&path).output().unwrap();
        if inspect.status.success() {
            // inspect shows files it can parse even when they are not a loadable model.
            let stdout = String::from_utf8_lossy(&inspect.stdout);
            assert!(stdout.contains("not loadable"), "{name}: {stdout}");
        }
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"previous good checkpoint",
            "{name}"
        );
        if let Some(text) = &contents {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                *text,
                "{name}: input changed"
            );
        }
    }
}

#[test]
fn a_directory_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("ckpt.json");
    std::fs::create_dir(&sub).unwrap();
    let out = burnfit()
        .args(["predict", "--x", "1", "--checkpoint"])
        .arg(&sub)
        .output()
        .unwrap();
    assert_one_line_error(&out, "ckpt.json", "is a directory");
}

#[test]
fn bad_destinations_are_named_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, b"x").unwrap();
    let cases: [(&Path, &str); 3] = [
        (&dir.path().join("missing/out.json"), "does not exist"),
        (&file.join("out.json"), "is not a directory"),
        (Path::new("/proc/burnfit-out.json"), "burnfit-out.json"),
    ];
    for (dest, expected) in cases {
        let output = burnfit()
            .args(["train", "--backend", "ndarray", "--steps", "3", "--out"])
            .arg(dest)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{}", dest.display());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected) && stderr.lines().count() == 1,
            "{}: {stderr}",
            dest.display()
        );
        let convert = burnfit()
            .arg("convert")
            .arg(autograd_fixture())
            .arg(dest)
            .output()
            .unwrap();
        assert!(!convert.status.success(), "{}", dest.display());
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn predict_rejects_bad_numbers() {
    for (x, expected) in [
        ("1,abc", "\"abc\" is not a number"),
        ("inf", "not a finite number"),
        ("", "not a number"),
    ] {
        burnfit()
            .args(["predict", "--checkpoint"])
            .arg(autograd_fixture())
            .args(["--x", x])
            .assert()
            .code(2)
            .stderr(predicates::str::contains(expected));
    }
    burnfit()
        .args(["predict", "--x", "-", "--checkpoint"])
        .arg(autograd_fixture())
        .write_stdin("1\n\nfoo\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("stdin line 3"));
}
