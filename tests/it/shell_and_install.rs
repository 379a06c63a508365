//! `burnfit completions SHELL`, `burnfit man`, `burnfit --version`.

use predicates::str::contains;

use crate::common::burnfit;

#[test]
fn completions_for_each_shell_know_the_subcommands_and_flags() {
    for (shell, marker) in [
        ("bash", "complete -F _burnfit"),
        ("zsh", "#compdef burnfit"),
        ("fish", "complete -c burnfit"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        burnfit()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains(marker))
            .stdout(contains("no-intercept"))
            .stdout(contains("completions"));
    }
    let assert = burnfit().args(["completions", "tcsh"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.starts_with("error: invalid value 'tcsh'") && stderr.lines().count() == 2,
        "{stderr}"
    );
}

#[test]
fn bash_completion_script_is_valid_bash() {
    let assert = burnfit().args(["completions", "bash"]).assert().success();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("burnfit.bash");
    std::fs::write(&script, &assert.get_output().stdout).unwrap();
    match std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
    {
        Ok(status) => assert!(status.success(), "bash -n rejects the script"),
        Err(e) => eprintln!("SKIPPING the bash syntax check: no bash ({e})"),
    }
}

#[test]
fn man_prints_roff_for_burnfit_and_each_subcommand() {
    burnfit()
        .arg("man")
        .assert()
        .success()
        .stdout(contains(".TH burnfit 1"))
        .stdout(contains(".SH NAME"))
        .stdout(contains("burnfit\\-train(1)"));
    burnfit()
        .args(["man", "ols"])
        .assert()
        .success()
        .stdout(contains(".TH burnfit-ols 1  \"burnfit-ols 0.1.0"))
        .stdout(contains("\\-\\-no\\-intercept"));
    let assert = burnfit().args(["man", "trian"]).assert().code(2).stdout("");
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(
        stderr.trim_end(),
        "error: man has no page for `trian`; the subcommands are train, ols, predict, evaluate, inspect, plot, convert, backends, bench, completions, man"
    );
}

#[test]
fn version_lists_the_compiled_in_backends() {
    let names: Vec<&str> = burnfit::BackendKind::compiled()
        .into_iter()
        .map(|k| k.name())
        .collect();
    burnfit()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!(
            "burnfit {} (backends: {})\n",
            env!("CARGO_PKG_VERSION"),
            names.join(", ")
        ));
}
