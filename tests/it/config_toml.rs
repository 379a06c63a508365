//! `train --config run.toml`: the same keys and checks as a JSON config file.

use predicates::str::contains;

use crate::common::burnfit;

#[test]
fn a_toml_config_trains_as_the_same_json_config_does() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let toml = dir.path().join("run.toml");
    std::fs::write(
        &json,
        r#"{"steps": 40, "log_every": 20, "seed": 9, "lr": 0.05}"#,
    )
    .unwrap();
    std::fs::write(&toml, "steps = 40\nlog_every = 20\nseed = 9\nlr = 0.05\n").unwrap();
    let run = |config: &std::path::Path, out: &str| {
        let out = dir.path().join(out);
        let assert = burnfit()
            .args(["train", "--backend", "ndarray", "--config"])
            .arg(config)
            .arg("--out")
            .arg(&out)
            .assert()
            .success()
            .stdout(contains("step     40"));
        let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let w = stdout
            .lines()
            .find(|l| l.starts_with("final "))
            .unwrap()
            .to_owned();
        (w, saved["burnfit"]["config"].clone())
    };
    let (from_json, config_json) = run(&json, "a.json");
    let (from_toml, config_toml) = run(&toml, "b.json");
    assert_eq!(from_json, from_toml);
    assert_eq!(config_json, config_toml);
    assert_eq!(config_toml["seed"], 9);
}

#[test]
fn a_bad_toml_config_is_one_line_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("run.toml");
    for (text, message) in [
        ("stepz = 4\n", "unknown field `stepz`"),
        (
            "lr = -1.0\n",
            "key `lr` = -1.0: must be a finite number above 0",
        ),
        (
            "[data]\ntarget = \"y\"\n",
            "key `data`: missing field `path`",
        ),
        // A key whose default is left out of saved configs is named too.
        (
            "lr_schedule = \"bogus\"\n",
            "key `lr_schedule`: unknown variant `bogus`",
        ),
        (
            "steps = 3\nsteps = 4\n",
            "not a TOML table of settings (line 2, column 1",
        ),
        (
            "steps = [1\n",
            "not a TOML table of settings (line 1, column",
        ),
    ] {
        std::fs::write(&toml, text).unwrap();
        let assert = burnfit()
            .args(["train", "--backend", "ndarray", "--config"])
            .arg(&toml)
            .assert()
            .code(2)
            .stdout("")
            .stderr(contains(format!("error: config file {}: ", toml.display())))
            .stderr(contains(message));
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "{text:?}: {stderr}");
    }
}
