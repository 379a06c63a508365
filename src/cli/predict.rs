//! `burnfit predict`: a checkpoint's predictions for `--x` values, stdin lines or a CSV file.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use clap::Args;

use crate::backend::{Backend, BackendChoice};
use crate::checkpoint::{self, Checkpoint, write_atomically_with};
use crate::console::Console;
use crate::data::predictions::{PredictFailure, PredictionsFormat, json_number};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::model::{Activation, Network};

use super::abbreviate;

/// `burnfit predict`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("inputs").required(true).args(["x", "data"])))]
pub struct PredictArgs {
    /// The checkpoint whose model predicts (any format).
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: PathBuf,
    /// Inputs, comma-separated (`--x 1,2.5,-3`), or `-` to read one number per line from stdin
    /// (one-input models).
    #[arg(
        long,
        value_name = "X,..",
        allow_hyphen_values = true,
        conflicts_with = "data"
    )]
    pub x: Option<String>,
    /// A CSV file with the feature columns the model was trained on (found by name); writes
    /// the input with a `prediction` column added. A Parquet file (`.parquet`, in a build with
    /// the `parquet` feature) gives the same CSV output: its columns as text, then `prediction`.
    #[arg(long, value_name = "FILE.csv")]
    pub data: Option<PathBuf>,
    /// Write the --data predictions to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE.csv", requires = "data")]
    pub out: Option<PathBuf>,
    /// The --data file's delimiter [default: the one the model was trained with, else ,]
    #[arg(value_parser = crate::plan::delimiter_value, long, value_name = "CHAR", requires = "data")]
    pub delimiter: Option<char>,
    /// The activation of an autograd-written MLP file (which does not record it) [default: tanh]
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Replace --out even when it is write-protected.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Backend to run on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// Write JSON Lines, one object per prediction (docs/json-output.md), instead of numbers
    /// or CSV.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &PredictArgs) -> Result<()> {
    if let Some(data) = &args.data {
        return run_csv(args, data);
    }
    // (clap's `requires = "data"` does not hold against the inputs group: checked here.)
    for (flag, given) in [
        ("--out", args.out.is_some()),
        ("--delimiter", args.delimiter.is_some()),
        ("--force", args.force),
    ] {
        if given {
            return Err(Error::Misused {
                flag,
                message: "applies to --data FILE.csv; the predictions for --x go to stdout".into(),
            });
        }
    }
    let Some(x) = args.x.as_deref() else {
        return Err(Error::InvalidInput {
            what: "to predict".into(),
            message:
                "give the inputs with --x X,.. (or --x - for stdin), or a CSV with --data FILE.csv"
                    .into(),
        });
    };
    // A list is checked before any work; stdin is streamed in chunks, so an endless stream
    // (`yes 1 | burnfit predict --x -`) prints as it goes in bounded memory.
    let listed = (x != "-").then(|| parse_list(x)).transpose()?;
    let checkpoint = load_for_predict(args)?;
    if checkpoint.spec.d_in != 1 {
        let features = checkpoint
            .meta
            .as_ref()
            .and_then(|m| m.data.as_ref())
            .map_or(String::new(), |d| format!(" ({})", d.features.join(", ")));
        return Err(Error::InvalidInput {
            what: "--x".into(),
            message: format!(
                "the model takes {} features{features}; pass them as a CSV with --data",
                checkpoint.spec.d_in
            ),
        });
    }
    let backend = Backend::choose(args.backend)?;
    // The JSON key of the one input: its recorded name, else `x`.
    let input_key =
        serde_json::to_string(&crate::evaluate::model_features(&checkpoint, &args.checkpoint)?[0])
            .expect("a string serialises");
    let model = Network::from_host(&checkpoint.spec, &checkpoint.params, &backend.device);
    let mut console = Console::default();
    let predict = |inputs: Vec<f32>, console: &mut Console| -> Result<()> {
        let x = HostTensor::new(vec![inputs.len(), 1], inputs).to_tensor::<2>(&backend.device);
        let z: Tensor<2> = model.forward(x.clone());
        let predictions = HostTensor::from_tensor(z)?.data;
        let inputs = HostTensor::from_tensor(x)?.data;
        if let Some((x, z)) = inputs
            .iter()
            .zip(&predictions)
            .find(|(_, z)| !z.is_finite())
        {
            return Err(Error::InvalidInput {
                what: format!("--x value {x}"),
                message: format!("its prediction ({z}) is out of f32 range"),
            });
        }
        for (x, value) in inputs.iter().zip(predictions) {
            if args.json {
                console.block(&format!(
                    "{{\"inputs\":{{{input_key}:{}}},\"prediction\":{}}}",
                    json_number(*x),
                    json_number(value)
                ));
            } else {
                console.line(value);
            }
        }
        Ok(())
    };
    match listed {
        Some(values) => predict(values, &mut console)?,
        None => {
            // Predicted a chunk at a time; a chunk is cut short whenever stdin has nothing
            // more to read yet (an interactive user, a slow producer), and before an error, so
            // every valid line before a bad one gets its prediction.
            const CHUNK: usize = 65_536;
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut any = false;
            // Our own buffer (larger than stdin's, which reads past it), to see what it holds.
            let mut stdin = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
            let mut line = Vec::new();
            let mut number = 0;
            loop {
                line.clear();
                let read = (&mut stdin)
                    .take(MAX_STDIN_LINE + 1)
                    .read_until(b'\n', &mut line);
                let parsed = match read {
                    Ok(0) => break,
                    Ok(_) => {
                        number += 1;
                        let what = || format!("on stdin line {number}");
                        let text = if number == 1 {
                            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&line)
                        } else {
                            &line[..]
                        };
                        if line.len() as u64 > MAX_STDIN_LINE {
                            Err(Error::InvalidInput {
                                what: what(),
                                message: format!(
                                    "the line is longer than {} KiB",
                                    MAX_STDIN_LINE >> 10
                                ),
                            })
                        } else if let Ok(text) = std::str::from_utf8(text) {
                            if text.trim().is_empty() {
                                Ok(None)
                            } else {
                                parse_number(what(), text).map(Some)
                            }
                        } else {
                            Err(Error::InvalidInput {
                                what: what(),
                                message: "is not UTF-8 text".into(),
                            })
                        }
                    }
                    Err(e) => Err(Error::Stdin(e.to_string())),
                };
                match parsed {
                    Ok(Some(value)) => chunk.push(value),
                    Ok(None) => {}
                    Err(problem) => {
                        if !chunk.is_empty() {
                            predict(std::mem::take(&mut chunk), &mut console)?;
                        }
                        console.flush();
                        return Err(problem);
                    }
                }
                if !chunk.is_empty() && (chunk.len() == CHUNK || !stdin_has_more(&stdin)) {
                    predict(std::mem::take(&mut chunk), &mut console)?;
                    console.flush();
                    any = true;
                    if console.is_lost() {
                        break;
                    }
                }
            }
            if !chunk.is_empty() {
                predict(chunk, &mut console)?;
            } else if !any {
                return Err(Error::InvalidInput {
                    what: "on stdin".into(),
                    message: "no numbers given".into(),
                });
            }
        }
    }
    console.finish()
}

/// The longest line `predict --x -` reads: a number is a few dozen bytes.
const MAX_STDIN_LINE: u64 = 64 << 10;

/// Whether stdin can give more bytes at once: buffered ones, or ones waiting in the pipe or
/// file (a zero-timeout `poll`). When not, the caller prints what it has before it waits.
fn stdin_has_more(stdin: &std::io::BufReader<std::io::StdinLock>) -> bool {
    if !stdin.buffer().is_empty() {
        return true;
    }
    let mut fd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut fd, 1, 0) == 1 && fd.revents & libc::POLLIN != 0 }
}

/// One number a user typed, finite and within f32's range.
fn parse_number(what: String, text: &str) -> Result<f32> {
    let shown = abbreviate(text.trim());
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        // "nan", "inf", "infinity": not numbers a model takes.
        Ok(v) if v.is_nan() || !shown.bytes().any(|b| b.is_ascii_digit()) => {
            Err(Error::InvalidInput {
                what,
                message: format!("{shown:?} is not a finite number"),
            })
        }
        Ok(_) => Err(Error::InvalidInput {
            what,
            message: format!("{shown:?} is out of f32 range (about ±3.4e38)"),
        }),
        Err(_) => Err(Error::InvalidInput {
            what,
            message: format!("{shown:?} is not a number"),
        }),
    }
}

/// `1,2,3`: the numbers of `--x`.
fn parse_list(spec: &str) -> Result<Vec<f32>> {
    let values: Vec<f32> = spec
        .split(',')
        .enumerate()
        .map(|(i, item)| parse_number(format!("in --x (item {})", i + 1), item))
        .collect::<Result<_>>()?;
    if values.is_empty() {
        return Err(Error::InvalidInput {
            what: "--x".into(),
            message: "no numbers given".into(),
        });
    }
    Ok(values)
}

/// The checkpoint `predict` uses; `--activation` only for a file that does not record one.
fn load_for_predict(args: &PredictArgs) -> Result<Checkpoint> {
    load_checked(&args.checkpoint, args.activation)
}

/// The checkpoint at `path`, with `activation` for a file that does not record one (an
/// autograd-written MLP); refused for a file that does (`predict`, `evaluate`).
pub(super) fn load_checked(path: &Path, activation: Option<Activation>) -> Result<Checkpoint> {
    let checkpoint = Checkpoint::load(path)?;
    if let (Some(asked), Some(meta)) = (activation, &checkpoint.meta)
        && (checkpoint.spec.is_linear() || asked != meta.config.activation)
    {
        return Err(Error::InvalidInput {
            what: "--activation".into(),
            message: format!(
                "{} records its model ({}); --activation is for files that do not",
                path.display(),
                checkpoint.spec.describe()
            ),
        });
    }
    Ok(checkpoint.with_activation(activation.unwrap_or_default()))
}

/// `predict --data`: the input rows with a `prediction` column, to `--out` or stdout.
fn run_csv(args: &PredictArgs, data: &Path) -> Result<()> {
    if let Some(out) = &args.out {
        checkpoint::check_destination(out, args.force)?;
    }
    let checkpoint = load_for_predict(args)?;
    let features = crate::evaluate::model_features(&checkpoint, &args.checkpoint)?;
    let delimiter = args
        .delimiter
        .or_else(|| crate::evaluate::recorded_delimiter(&checkpoint))
        .unwrap_or(',');
    let format = if args.json {
        PredictionsFormat::JsonLines
    } else {
        PredictionsFormat::Csv
    };
    let params = checkpoint.named_params();
    let predict_rows = |out: &mut dyn std::io::Write| {
        crate::data::predict_csv::predict_rows(
            data,
            &features,
            delimiter,
            format,
            |row| checkpoint.spec.forward_host(&params, row),
            out,
        )
    };
    match &args.out {
        Some(out) => {
            // Rows go to a temporary file beside --out, renamed over it at the end: on an
            // error it is removed and --out is untouched.
            let rows = write_atomically_with(out, args.force, |sink| {
                predict_rows(sink).map_err(|failure| match failure {
                    PredictFailure::Input(e) => e,
                    PredictFailure::Output(e) => Error::CheckpointWrite {
                        path: out.clone(),
                        message: e.to_string(),
                    },
                })
            })?;
            let mut console = Console::default();
            // Nothing but the CSV when --out is stdout itself.
            if !crate::console::is_stdout(out) {
                say!(console, "wrote {rows} predictions to {}", out.display());
            }
            console.finish()
        }
        None => {
            // Rows are printed as they are predicted: on an error, the rows before the bad one
            // have been printed (as `--x -` prints stdin's).
            let stdout = std::io::stdout();
            let mut sink = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let result = predict_rows(&mut sink)
                .and_then(|_| std::io::Write::flush(&mut sink).map_err(PredictFailure::Output));
            match result {
                Ok(()) => Ok(()),
                // The reader closed the pipe (`| head`): it has what it wanted.
                Err(PredictFailure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    Ok(())
                }
                Err(PredictFailure::Output(e)) => Err(Error::Stdout(e.to_string())),
                Err(PredictFailure::Input(e)) => {
                    let _ = std::io::Write::flush(&mut sink);
                    Err(e)
                }
            }
        }
    }
}
