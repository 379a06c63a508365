//! Reading burnfit's metadata without building a JSON tree of it.
//!
//! A file's metadata block is read field by field into its types; a field burnfit does not know
//! is named (and refused) but never stored, and a newer format version stops the reading at
//! once. So a hostile or huge block costs no memory beyond the known fields (a 28 MB block of
//! two million small strings took 280 MB as a `serde_json::Value`).

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{DataRecord, FORMAT_VERSION, METADATA_KEY, Metadata};
use crate::config::TrainingConfig;

/// burnfit's metadata as a file holds it, before it is checked.
#[derive(Debug, Default)]
pub struct MetadataDoc {
    format_version: Option<u64>,
    crate_version: Option<String>,
    backend: Option<String>,
    step: Option<u64>,
    seed: Option<u64>,
    final_loss: Option<Option<f32>>,
    config: Option<TrainingConfig>,
    adam_updates: Option<u64>,
    engine: Option<String>,
    data: Option<DataRecord>,
    unknown: Option<String>,
    repeated: Option<String>,
}

impl<'de> Deserialize<'de> for MetadataDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = MetadataDoc;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("burnfit's metadata object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetadataDoc, A::Error> {
        let mut doc = MetadataDoc::default();
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                doc.repeated.get_or_insert(key.clone());
            }
            if doc
                .format_version
                .is_some_and(|v| v > u64::from(FORMAT_VERSION))
            {
                // A newer format: its fields may mean anything. Skip the rest.
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match key.as_str() {
                "format_version" => doc.format_version = Some(map.next_value()?),
                "crate_version" => doc.crate_version = Some(map.next_value()?),
                "backend" => doc.backend = Some(map.next_value()?),
                "step" => doc.step = Some(map.next_value()?),
                "seed" => doc.seed = Some(map.next_value()?),
                "final_loss" => doc.final_loss = Some(map.next_value()?),
                "config" => doc.config = Some(map.next_value()?),
                "adam_updates" => doc.adam_updates = Some(map.next_value()?),
                "engine" => doc.engine = Some(map.next_value()?),
                "data" => doc.data = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    doc.unknown.get_or_insert(key);
                }
            }
        }
        Ok(doc)
    }
}

impl MetadataDoc {
    /// Reads a metadata block from its JSON text.
    pub fn from_json(text: &str) -> Result<MetadataDoc, String> {
        serde_json::from_str(text).map_err(|e| format!("`{METADATA_KEY}` metadata: {e}"))
    }

    /// The metadata, version-checked and validated.
    pub fn into_metadata(self) -> Result<Metadata, String> {
        let missing = |field: &str| format!("`{METADATA_KEY}` metadata has no `{field}`");
        let format_version = self
            .format_version
            .ok_or_else(|| format!("`{METADATA_KEY}` metadata has no numeric format_version"))?;
        if format_version == 0 {
            return Err(format!(
                "`{METADATA_KEY}` metadata has format_version 0; versions start at 1"
            ));
        }
        if format_version > u64::from(FORMAT_VERSION) {
            return Err(format!(
                "burnfit format version {format_version} is newer than this build reads ({FORMAT_VERSION}); upgrade burnfit"
            ));
        }
        if let Some(key) = self.unknown {
            return Err(format!("`{METADATA_KEY}` metadata: unknown field `{key}`"));
        }
        if let Some(key) = self.repeated {
            return Err(format!(
                "`{METADATA_KEY}` metadata: field `{key}` is given twice"
            ));
        }
        if let Some(engine) = &self.engine
            && !["autodiff", "fused"].contains(&engine.as_str())
        {
            return Err(format!(
                "`{METADATA_KEY}` metadata names engine {engine:?}; this build knows autodiff and fused"
            ));
        }
        let config = self.config.ok_or_else(|| missing("config"))?;
        config
            .validate()
            .map_err(|e| format!("`{METADATA_KEY}` metadata holds an invalid config: {e}"))?;
        match (&config.data, &self.data) {
            (Some(_), None) => {
                return Err(format!(
                    "`{METADATA_KEY}` metadata: a CSV run without its `data` record"
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "`{METADATA_KEY}` metadata: a `data` record, but the config names no data file"
                ));
            }
            (Some(_), Some(data)) => {
                let d = data.features.len();
                if d == 0
                    || data
                        .scaling
                        .as_ref()
                        .is_some_and(|s| s.mean.len() != d || s.std.len() != d)
                {
                    return Err(format!(
                        "`{METADATA_KEY}` metadata: the `data` record's features and scaling disagree"
                    ));
                }
                let bad_scaling = data.scaling.as_ref().is_some_and(|s| {
                    s.mean.iter().chain(&s.std).any(|v| !v.is_finite())
                        || s.std.iter().any(|v| *v <= 0.0)
                });
                if bad_scaling {
                    return Err(format!(
                        "`{METADATA_KEY}` metadata: the `data` record's scaling is not finite and positive"
                    ));
                }
            }
            (None, None) => {}
        }
        let seed = self.seed.ok_or_else(|| missing("seed"))?;
        if seed != config.seed {
            return Err(format!(
                "`{METADATA_KEY}` metadata: seed {seed} disagrees with the config's seed {}",
                config.seed
            ));
        }
        Ok(Metadata {
            format_version: format_version as u32,
            crate_version: self.crate_version.ok_or_else(|| missing("crate_version"))?,
            backend: self.backend.ok_or_else(|| missing("backend"))?,
            step: self.step.ok_or_else(|| missing("step"))?,
            seed,
            final_loss: self.final_loss.ok_or_else(|| missing("final_loss"))?,
            config,
            adam_updates: self.adam_updates,
            engine: self.engine,
            data: self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        Metadata {
            format_version: FORMAT_VERSION,
            crate_version: "0.1.0".into(),
            backend: "flex".into(),
            step: 7,
            seed: 3,
            final_loss: Some(0.5),
            config: TrainingConfig {
                seed: 3,
                ..Default::default()
            },
            adam_updates: Some(7),
            engine: Some("fused".into()),
            data: None,
        }
    }

    #[test]
    fn round_trips_and_names_what_is_wrong() {
        let text = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            MetadataDoc::from_json(&text)
                .unwrap()
                .into_metadata()
                .unwrap(),
            sample()
        );
        let newer = text.replacen("\"format_version\":1", "\"format_version\":9", 1);
        let newer = newer.replacen("\"step\":7", "\"step\":\"seven\"", 1);
        let err = MetadataDoc::from_json(&newer)
            .unwrap()
            .into_metadata()
            .unwrap_err();
        assert!(err.contains("newer"), "{err}");
        let extra = text.replacen('{', "{\"junk\":[1,2,3],", 1);
        let err = MetadataDoc::from_json(&extra)
            .unwrap()
            .into_metadata()
            .unwrap_err();
        assert!(err.contains("unknown field `junk`"), "{err}");
        for (bad, expected) in [
            (
                text.replacen("\"engine\":\"fused\"", "\"engine\":\"turbo\"", 1),
                "turbo",
            ),
            (text.replacen("\"seed\":3", "\"seed\":4", 1), "disagrees"),
            (
                text.replacen("\"step\":7", "\"step\":7,\"step\":5", 1),
                "given twice",
            ),
            (
                text.replacen("\"format_version\":1", "\"format_version\":0", 1),
                "version",
            ),
        ] {
            let err = MetadataDoc::from_json(&bad)
                .unwrap()
                .into_metadata()
                .unwrap_err();
            assert!(err.contains(expected), "{bad}: {err}");
        }
        let no_step = text.replacen("\"step\":7,", "", 1);
        let err = MetadataDoc::from_json(&no_step)
            .unwrap()
            .into_metadata()
            .unwrap_err();
        assert!(err.contains("no `step`"), "{err}");
    }
}
