//! Shard summaries: the R factor of a file's rows saved as a small JSON file
//! (`burnfit ols --save-summary`), and summaries merged into the fit of all their rows
//! (`burnfit ols --merge`), as one pass over the concatenated files would give it.
//!
//! The file (`"format": "burnfit-ols-summary"`, `"version": 1`) holds the target, the
//! features, whether there is an intercept, the row count, the shift and R (p × p, row by row,
//! as JSON numbers that round-trip f64 exactly), and per source file its name, content hash,
//! size and rows: a merged summary lists every file it came from, so merges nest.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Factor, OlsSummary, TreeMerge, summary_of_factor};
use crate::data::table::chunk::StreamInfo;
use crate::data::table::hash_hex;
use crate::error::{Error, Result};

/// The `format` of a summary file.
pub const SUMMARY_FORMAT: &str = "burnfit-ols-summary";

/// One data file a summary covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarySource {
    /// The path as given.
    pub file: String,
    /// [`crate::data::table::content_hash`] of its bytes, 16 hex digits.
    pub content_hash: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its rows fitted.
    pub rows: u64,
    /// Its rows skipped for an invalid cell (`--drop-invalid-rows`).
    pub dropped_rows: u64,
}

/// What `--save-summary` writes and `--merge` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSummary {
    /// Always [`SUMMARY_FORMAT`].
    pub format: String,
    /// 1.
    pub version: u32,
    /// The target column.
    pub target: String,
    /// The feature columns, in order.
    pub features: Vec<String>,
    /// Whether the fit has an intercept.
    pub intercept: bool,
    /// Rows fitted, over all sources.
    pub rows: u64,
    /// Subtracted from each feature and the target before the factorization.
    pub shift: Vec<f64>,
    /// R, p × p, row by row (p = features + 1, + 1 with an intercept).
    pub r: Vec<Vec<f64>>,
    /// The data files, in merge order.
    pub sources: Vec<SummarySource>,
}

impl ShardSummary {
    /// The summary of one file's fit.
    pub fn of_file(file: &str, info: &StreamInfo, factor: &Factor) -> ShardSummary {
        let p = factor.p();
        ShardSummary {
            format: SUMMARY_FORMAT.into(),
            version: 1,
            target: info.target_name.clone(),
            features: info.feature_names.clone(),
            intercept: factor.intercept,
            rows: factor.n,
            shift: factor.shift.clone(),
            r: factor.r.chunks(p).map(<[f64]>::to_vec).collect(),
            sources: vec![SummarySource {
                file: file.into(),
                content_hash: hash_hex(info.content_hash),
                bytes: info.bytes,
                rows: factor.n,
                dropped_rows: info.dropped_rows as u64,
            }],
        }
    }

    /// The factor it holds.
    pub fn factor(&self) -> Factor {
        Factor {
            intercept: self.intercept,
            n: self.rows,
            shift: self.shift.clone(),
            r: self.r.concat(),
        }
    }

    /// The JSON text written to a file.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain values serialize") + "\n"
    }

    /// Reads and checks a summary file; errors name the file.
    pub fn read(path: &Path) -> Result<ShardSummary> {
        let fail = |message: String| Error::Data {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read(path).map_err(|e| {
            fail(match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".into(),
                _ => e.to_string(),
            })
        })?;
        let summary: ShardSummary = serde_json::from_slice(&text).map_err(|e| {
            fail(format!(
                "not a burnfit OLS summary (`burnfit ols --save-summary` writes them): {e}"
            ))
        })?;
        summary.check().map_err(fail)?;
        Ok(summary)
    }

    /// The checks a summary read from a file must pass.
    fn check(&self) -> std::result::Result<(), String> {
        if self.format != SUMMARY_FORMAT {
            let shown: String = self.format.chars().take(40).collect();
            return Err(format!("its format is {shown:?}, not {SUMMARY_FORMAT:?}"));
        }
        if self.version != 1 {
            return Err(format!(
                "it is version {} of the summary format; this burnfit reads version 1",
                self.version
            ));
        }
        let p = self.features.len() + 1 + usize::from(self.intercept);
        if self.features.is_empty() || self.shift.len() != self.features.len() + 1 {
            return Err("its features and shift do not agree".into());
        }
        if self.r.len() != p || self.r.iter().any(|row| row.len() != p) {
            return Err(format!("its R is not {p} × {p}"));
        }
        let lower_zero = self
            .r
            .iter()
            .enumerate()
            .all(|(i, row)| row[..i].iter().all(|&v| v == 0.0));
        let finite = self
            .r
            .iter()
            .flatten()
            .chain(&self.shift)
            .all(|v| v.is_finite());
        if !lower_zero || !finite {
            return Err("its R is not upper triangular with finite entries".into());
        }
        if self.sources.is_empty() || self.sources.iter().map(|s| s.rows).sum::<u64>() != self.rows
        {
            return Err("its row count is not the sum of its sources' rows".into());
        }
        Ok(())
    }
}

/// The summaries merged into one, in the order given; refused unless they fit the same target
/// on the same features, with or without an intercept alike.
pub fn merge(summaries: &[(String, ShardSummary)]) -> std::result::Result<ShardSummary, String> {
    let Some((first_name, first)) = summaries.first() else {
        return Err("no summaries to merge".into());
    };
    for (name, s) in &summaries[1..] {
        if (&s.target, &s.features) != (&first.target, &first.features) {
            return Err(format!(
                "{name} fits `{}` on {} but {first_name} fits `{}` on {}; only summaries of the same target and features merge",
                s.target,
                columns(&s.features),
                first.target,
                columns(&first.features)
            ));
        }
        if s.intercept != first.intercept {
            return Err(format!(
                "{name} was fitted {} an intercept but {first_name} {}; only summaries fitted alike merge",
                if s.intercept { "with" } else { "without" },
                if first.intercept {
                    "with one"
                } else {
                    "without"
                }
            ));
        }
    }
    refuse_repeated_data(summaries)?;
    let mut tree = TreeMerge::default();
    for (_, s) in summaries {
        tree.push(s.factor());
    }
    let factor = tree.finish().expect("at least one summary");
    let p = factor.p();
    Ok(ShardSummary {
        rows: factor.n,
        shift: factor.shift.clone(),
        r: factor.r.chunks(p).map(<[f64]>::to_vec).collect(),
        sources: summaries
            .iter()
            .flat_map(|(_, s)| s.sources.iter().cloned())
            .collect(),
        ..first.clone()
    })
}

impl ShardSummary {
    /// The statistics of the fit it holds.
    pub fn summary(&self) -> std::result::Result<OlsSummary, String> {
        summary_of_factor(&self.factor(), &self.features)
    }
}

/// The same data (content hash and size) in two places would count its rows twice: standard
/// errors too small, as if the sample were larger. Sources without rows add nothing and pass.
fn refuse_repeated_data(summaries: &[(String, ShardSummary)]) -> std::result::Result<(), String> {
    let mut seen: std::collections::HashMap<(&str, u64), (&str, &str)> = Default::default();
    for (name, summary) in summaries {
        for source in summary.sources.iter().filter(|s| s.rows > 0) {
            let key = (source.content_hash.as_str(), source.bytes);
            if let Some((first_name, first_file)) = seen.insert(key, (name, &source.file)) {
                let place = if first_name == name {
                    format!("{name} covers it twice")
                } else {
                    format!("{first_name} ({first_file}) and {name} both cover it")
                };
                return Err(format!(
                    "the data of {} (hash {}, {} rows) would count twice: {place}; merge each shard once",
                    source.file, source.content_hash, source.rows
                ));
            }
        }
    }
    Ok(())
}

fn columns(names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    list.join(", ")
}
