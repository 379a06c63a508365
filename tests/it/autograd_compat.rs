//! The autograd crate itself reads what burnfit writes.

use ag::variable::NamespaceTrait;
use autograd as ag;
use burnfit::{TrainingConfig, train};

use crate::common::{backends, serial};

#[test]
fn the_autograd_crate_loads_our_results_json() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = TrainingConfig {
        steps: 120,
        ..Default::default()
    };
    for backend in backends() {
        let kind = backend.kind;
        let report = train(&config, backend, |_| {}).unwrap();
        let path = dir.path().join("results.json");
        report.checkpoint.save(&path).unwrap();

        let env = ag::VariableEnvironment::<f32>::load(&path)
            .unwrap_or_else(|e| panic!("{kind}: autograd could not load the file: {e}"));
        let get = |ns: &str, name: &str| -> Vec<f32> {
            let namespace = if ns.is_empty() {
                env.default_namespace()
            } else {
                env.namespace(leak(ns))
            };
            let array = namespace
                .get_array_by_name(name)
                .unwrap_or_else(|| panic!("{kind}: autograd finds no {ns}/{name}"));
            array.borrow().iter().copied().collect()
        };
        assert_eq!(get("", "w"), vec![report.final_w()], "{kind}");
        assert_eq!(get("", "b"), vec![report.final_b()], "{kind}");
        let adam = report.checkpoint.adam.as_ref().unwrap();
        assert_eq!(
            get("linear_reg_adam", "0m"),
            adam.moments[0].0.data,
            "{kind}"
        );
        assert_eq!(
            get("linear_reg_adam", "0v"),
            adam.moments[0].1.data,
            "{kind}"
        );
        assert_eq!(
            get("linear_reg_adam", "1m"),
            adam.moments[1].0.data,
            "{kind}"
        );
        assert_eq!(
            get("linear_reg_adam", "1v"),
            adam.moments[1].1.data,
            "{kind}"
        );
        assert_eq!(get("linear_reg_adam", "0t"), vec![121.0], "{kind}");
        assert_eq!(get("linear_reg_adam", "1t"), vec![121.0], "{kind}");
    }
}

/// autograd's namespaces are `&'static str`.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}
