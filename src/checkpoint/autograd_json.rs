//! The autograd crate's `results.json` (what its `VariableEnvironment::save` writes), plus
//! burnfit's metadata under one extra top-level key that the crate's loader ignores.
//!
//! `array_list[id]` holds variable `id` as ndarray's serde form `{"v":1,"dim":[..],"data":[..]}`;
//! `name_to_id` maps `"<namespace>\u{1}<name>"` to the id. The model's `w` and `b` live in the
//! default (empty) namespace; Adam's state lives in [`ADAM_NAMESPACE`] as `"{id}m"`, `"{id}v"`
//! and `"{id}t"`, where `{id}` is the parameter's variable id and `t` = updates + 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metadata::MetadataDoc;
use super::{AdamSnapshot, Checkpoint, activation_of, check_moments, parse_t};
use crate::host::HostTensor;
use crate::model::{Activation, ModelSpec};

/// The namespace the autograd seed program gives its Adam optimizer.
pub const ADAM_NAMESPACE: &str = "linear_reg_adam";

/// The separator between namespace and name in `name_to_id` keys.
const SEPARATOR: char = '\u{1}';

#[derive(Serialize)]
struct File<'a> {
    array_list: Vec<Array>,
    name_to_id: BTreeMap<String, usize>,
    /// Serialised from its types, so f32 settings keep their shortest form (`0.01`, not the
    /// f64 widening `0.009999999776482582`), as in the other formats.
    #[serde(skip_serializing_if = "Option::is_none")]
    burnfit: Option<&'a super::Metadata>,
}

/// [`File`] as read: `name_to_id` keeps every entry so that a repeated name is refused.
#[derive(Deserialize)]
struct ReadFile {
    array_list: Vec<Array>,
    name_to_id: crate::input::UniqueMap<usize>,
    #[serde(default)]
    burnfit: Option<MetadataDoc>,
}

/// ndarray's serde form of an array.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Array {
    v: u8,
    dim: Vec<usize>,
    data: Vec<f32>,
}

/// A variable of an autograd file, as `inspect` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    /// The namespace (empty for the default one).
    pub namespace: String,
    /// The name inside the namespace.
    pub name: String,
    /// Its id (position in `array_list`).
    pub id: usize,
    /// Its value.
    pub value: HostTensor,
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}{SEPARATOR}{name}")
}

/// How a variable is shown to users: `name` in the default namespace, else `namespace/name`.
pub fn display_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// The namespace that holds the model: the default one when it has `w`/`b` or `w1`/`b1`, …,
/// else the one other namespace that does (the autograd crate's examples may name theirs).
fn model_namespace(variables: &[Variable]) -> Result<String, String> {
    let is_param = |name: &str| matches!(name, "w" | "b" | "w1" | "b1");
    let mut namespaces: Vec<&str> = variables
        .iter()
        .filter(|v| v.namespace != ADAM_NAMESPACE && is_param(&v.name))
        .map(|v| v.namespace.as_str())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    match namespaces.as_slice() {
        [] => Err(
            "no model variables (expected `w` and `b`, or `w1`, `b1`, …, in one namespace)".into(),
        ),
        [one] => Ok(one.to_string()),
        many if many.contains(&"") => Ok(String::new()),
        many => Err(format!(
            "model variables in several namespaces ({}); burnfit reads one model",
            many.join(", ")
        )),
    }
}

/// The model's variables, in order, with the architecture they describe.
fn model_variables(
    variables: &[Variable],
    activation: Activation,
) -> Result<(ModelSpec, Vec<&Variable>), String> {
    let namespace = model_namespace(variables)?;
    let find = |name: &str| {
        variables
            .iter()
            .find(|v| v.namespace == namespace && v.name == name)
    };
    let (spec, _) = ModelSpec::infer(|name| find(name).map(|v| &v.value), activation)
        .map_err(|e| e.replace("no tensor", "no variable"))?;
    let vars = spec
        .param_names()
        .iter()
        .map(|name| find(name).expect("infer found it"))
        .collect();
    Ok((spec, vars))
}

/// Display names of the variables that belong to the model or to its Adam state.
pub fn model_variable_names(variables: &[Variable]) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok((_, vars)) = model_variables(variables, Activation::default()) {
        for var in vars {
            names.push(display_name(&var.namespace, &var.name));
            for suffix in ["m", "v", "t"] {
                names.push(display_name(ADAM_NAMESPACE, &format!("{}{suffix}", var.id)));
            }
        }
    }
    names
}

/// Serialises a checkpoint: w, b, then each parameter's m, v, t, as the autograd seed program
/// orders them; then the metadata.
pub fn to_bytes(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut array_list = Vec::new();
    let mut name_to_id = BTreeMap::new();
    let mut push = |name: String, tensor: &HostTensor| {
        name_to_id.insert(name, array_list.len());
        array_list.push(Array {
            v: 1,
            dim: tensor.shape.clone(),
            data: tensor.data.clone(),
        });
    };
    for (name, tensor) in checkpoint.spec.param_names().iter().zip(&checkpoint.params) {
        push(key("", name), tensor);
    }
    if let Some(adam) = &checkpoint.adam {
        let t = HostTensor::scalar(adam.t_as_f32());
        for (id, (m, v)) in adam.moments.iter().enumerate() {
            push(key(ADAM_NAMESPACE, &format!("{id}m")), m);
            push(key(ADAM_NAMESPACE, &format!("{id}v")), v);
            push(key(ADAM_NAMESPACE, &format!("{id}t")), &t);
        }
    }
    let file = File {
        array_list,
        name_to_id,
        burnfit: checkpoint.meta.as_ref(),
    };
    serde_json::to_vec(&file).expect("checkpoint always serialises")
}

/// Every variable of an autograd file, validated: ids in range, `v` = 1, `dim` matching `data`.
pub fn variables(bytes: &[u8]) -> Result<(Vec<Variable>, Option<MetadataDoc>), String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("file is empty".into());
    }
    let file: ReadFile = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_eof() {
            format!("truncated JSON ({e})")
        } else if e.is_syntax() {
            format!("not valid JSON ({e})")
        } else {
            format!("not an autograd results.json ({e})")
        }
    })?;
    let mut variables = Vec::with_capacity(file.name_to_id.0.len());
    let mut owners: BTreeMap<usize, &str> = BTreeMap::new();
    for (full_name, id) in &file.name_to_id.0 {
        let id = *id;
        if let Some(other) = owners.insert(id, full_name) {
            return Err(format!(
                "variables {:?} and {:?} share array id {id}",
                other.replace(SEPARATOR, "/"),
                full_name.replace(SEPARATOR, "/")
            ));
        }
        let (namespace, name) = full_name.split_once(SEPARATOR).ok_or_else(|| {
            format!("name_to_id key {full_name:?} has no namespace separator U+0001")
        })?;
        let array = file.array_list.get(id).ok_or_else(|| {
            format!(
                "variable {full_name:?} has id {id}, but array_list has {} entries",
                file.array_list.len()
            )
        })?;
        let shown = display_name(namespace, name);
        if array.v != 1 {
            return Err(format!(
                "variable {shown:?}: array format version v = {}, expected 1",
                array.v
            ));
        }
        let expected = array
            .dim
            .iter()
            .try_fold(1usize, |n, d| n.checked_mul(*d))
            .ok_or_else(|| format!("variable {shown:?}: dim {:?} is too large", array.dim))?;
        if expected != array.data.len() {
            return Err(format!(
                "variable {shown:?}: dim {:?} needs {expected} values, data has {}",
                array.dim,
                array.data.len()
            ));
        }
        variables.push(Variable {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            id,
            value: HostTensor::new(array.dim.clone(), array.data.clone()),
        });
    }
    variables.sort_by_key(|v| v.id);
    Ok((variables, file.burnfit))
}

/// Reads a checkpoint from an autograd file. Variables that are not the model's or its Adam's
/// are left out (see [`variables`] to list them).
pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, String> {
    let (variables, metadata) = variables(bytes)?;
    let meta = metadata.map(MetadataDoc::into_metadata).transpose()?;
    let (spec, vars) = model_variables(&variables, activation_of(meta.as_ref()))?;
    let names = spec.param_names();
    let ids: Vec<usize> = vars.iter().map(|v| v.id).collect();
    let params: Vec<HostTensor> = vars.iter().map(|v| v.value.clone()).collect();
    let find = |namespace: &str, name: &str| {
        variables
            .iter()
            .find(|v| v.namespace == namespace && v.name == name)
    };
    let adam = adam_state(&ids, &names, &params, &find)?;
    let checkpoint = Checkpoint {
        spec,
        params,
        adam,
        meta,
    };
    checkpoint.check_against_metadata()?;
    Ok(checkpoint)
}

/// Adam's state for the parameters with variable ids `ids`: all of it, or none at all.
fn adam_state<'a>(
    ids: &[usize],
    names: &[String],
    params: &[HostTensor],
    find: &dyn Fn(&str, &str) -> Option<&'a Variable>,
) -> Result<Option<AdamSnapshot>, String> {
    let mut moments = Vec::new();
    let mut times = Vec::new();
    let mut missing = Vec::new();
    for ((id, param), pname) in ids.iter().zip(params).zip(names) {
        let get = |suffix: &str| find(ADAM_NAMESPACE, &format!("{id}{suffix}"));
        match (get("m"), get("v"), get("t")) {
            (Some(m), Some(v), Some(t)) => {
                check_moments(pname, &m.value, &v.value, param)?;
                let t = parse_t(&format!("t of `{pname}`"), &t.value.data)?;
                moments.push((m.value.clone(), v.value.clone()));
                times.push(t);
            }
            (None, None, None) => missing.push(pname.as_str()),
            _ => {
                return Err(format!(
                    "Adam state of `{pname}` is incomplete (needs {id}m, {id}v and {id}t)"
                ));
            }
        }
    }
    if moments.is_empty() {
        return Ok(None);
    }
    if !missing.is_empty() {
        return Err(format!(
            "Adam state covers only some parameters (missing for {})",
            missing.join(", ")
        ));
    }
    if times.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("Adam step counters disagree: {times:?}"));
    }
    Ok(Some(AdamSnapshot {
        updates: times[0] - 1,
        moments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FORMAT_VERSION, Metadata};
    use crate::config::TrainingConfig;

    fn one(v: f32) -> HostTensor {
        HostTensor::new(vec![1, 1], vec![v])
    }

    fn sample() -> Checkpoint {
        Checkpoint {
            spec: ModelSpec::linear(1),
            params: vec![one(2.5), one(-1.0)],
            adam: Some(AdamSnapshot {
                updates: 1000,
                moments: vec![(one(0.1), one(2.0)), (one(-0.2), one(0.5))],
            }),
            meta: Some(Metadata {
                format_version: FORMAT_VERSION,
                crate_version: "0.1.0".into(),
                backend: "ndarray".into(),
                step: 1000,
                seed: 42,
                final_loss: Some(0.25),
                config: TrainingConfig::default(),
                adam_updates: Some(1000),
                engine: Some("autodiff".into()),
                data: None,
            }),
        }
    }

    #[test]
    fn round_trips_and_writes_t_as_updates_plus_one() {
        let bytes = to_bytes(&sample());
        assert_eq!(from_bytes(&bytes).unwrap(), sample());
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains(r#"{"v":1,"dim":[],"data":[1001.0]}"#),
            "{text}"
        );
        assert!(text.contains(r#""\u0001w":0"#), "{text}");
        assert!(text.contains(r#""linear_reg_adam\u00011v":6"#), "{text}");
    }

    #[test]
    fn reads_the_autograd_crates_own_file() {
        let text = r#"{"array_list":[{"v":1,"dim":[1,1],"data":[2.4951487]},{"v":1,"dim":[1,1],"data":[-1.0430901]},{"v":1,"dim":[1,1],"data":[-0.00042377392]},{"v":1,"dim":[1,1],"data":[682.0972]},{"v":1,"dim":[],"data":[1001.0]},{"v":1,"dim":[1,1],"data":[-0.000022241335]},{"v":1,"dim":[1,1],"data":[0.42355323]},{"v":1,"dim":[],"data":[1001.0]}],"name_to_id":{"\u0001b":1,"linear_reg_adam\u00011m":5,"linear_reg_adam\u00011v":6,"linear_reg_adam\u00010v":3,"linear_reg_adam\u00010m":2,"linear_reg_adam\u00011t":7,"linear_reg_adam\u00010t":4,"\u0001w":0}}"#;
        let c = from_bytes(text.as_bytes()).unwrap();
        assert_eq!(c.params, [one(2.4951487), one(-1.0430901)]);
        let adam = c.adam.unwrap();
        assert_eq!(adam.updates, 1000);
        assert_eq!(adam.moments[0].1, one(682.0972));
        assert!(c.meta.is_none());
    }

    #[test]
    fn bad_files_are_named_precisely() {
        let cases: [(&str, &str); 7] = [
            ("", "empty"),
            (r#"{"array_list":[{"v":1,"#, "truncated"),
            ("hello", "not valid JSON"),
            (r#"{"a":1}"#, "not an autograd results.json"),
            (
                r#"{"array_list":[{"v":2,"dim":[1,1],"data":[1.0]}],"name_to_id":{"\u0001w":0}}"#,
                "v = 2",
            ),
            (
                r#"{"array_list":[{"v":1,"dim":[1,2],"data":[1.0]}],"name_to_id":{"\u0001w":0}}"#,
                "needs 2 values",
            ),
            (
                r#"{"array_list":[{"v":1,"dim":[1,1],"data":[1.0]}],"name_to_id":{"\u0001w":0}}"#,
                "no variable `b`",
            ),
        ];
        for (text, expected) in cases {
            let err = from_bytes(text.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_one_layer_numbered_file_is_refused_not_a_panic() {
        let text = r#"{"array_list":[{"v":1,"dim":[1,1],"data":[2.0]},{"v":1,"dim":[1,1],"data":[0.5]}],"name_to_id":{"\u0001w1":0,"\u0001b1":1}}"#;
        let err = from_bytes(text.as_bytes()).unwrap_err();
        assert!(err.contains("`w1`/`b1` without `w2`"), "{err}");
        let (vars, _) = variables(text.as_bytes()).unwrap();
        assert!(model_variable_names(&vars).is_empty());
    }

    #[test]
    fn newer_metadata_is_refused() {
        let mut value: serde_json::Value = serde_json::from_slice(&to_bytes(&sample())).unwrap();
        value["burnfit"]["format_version"] = serde_json::json!(FORMAT_VERSION + 1);
        let err = from_bytes(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(err.contains("newer"), "{err}");
    }
}
