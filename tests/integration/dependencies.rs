//! Dependencies between plugins (issue 9 §6; `ctx.call` is in `calls.rs`): `load_all` resolves the
//! whole set first and loads in dependency order; a missing, unmatched, failed or circular
//! dependency refuses only the plugins that need it, with the whole chain named; unloading a
//! plugin others need is refused unless the caller asks for a cascade.

use plg_loader::{DependencyProblem, EventKind, LoadError, PluginManager, UnloadError};
use plg_tests::TempPluginsDir;

/// Stages `package` with `dependencies`.
fn stage(dir: &TempPluginsDir, package: &str, deps: serde_json::Value) {
    dir.stage_with(package, package, |m| m["dependencies"] = deps);
}

fn dependency_error(
    report: &plg_loader::LoadReport,
    name: &str,
) -> (Vec<String>, DependencyProblem) {
    let f = report
        .failed
        .iter()
        .find(|f| f.path.to_string_lossy().contains(&format!("/{name}/")))
        .unwrap_or_else(|| panic!("{name} did not fail: {:?}", report.failed));
    match &f.error {
        LoadError::Dependency { chain, problem } => (chain.clone(), problem.clone()),
        other => panic!("expected a dependency error for {name}, got {other:?}"),
    }
}

fn loaded(report: &plg_loader::LoadReport) -> Vec<String> {
    report.loaded.iter().map(|p| p.id().to_owned()).collect()
}

#[test]
fn a_chain_loads_in_dependency_order() {
    let dir = TempPluginsDir::default();
    stage(&dir, "hello", serde_json::json!({"counter": "^0.1"}));
    stage(&dir, "counter", serde_json::json!({"kinds": ">=0.1.0, <1"}));
    stage(&dir, "kinds", serde_json::json!({}));
    let manager = PluginManager::new(dir.path());
    let events = manager.subscribe();
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        loaded(&report),
        ["kinds@0.1.0", "counter@0.1.0", "hello@1.2.0"],
        "every plugin after what it needs"
    );
    let order: Vec<String> = std::iter::from_fn(|| events.try_next())
        .filter_map(|e| match e.kind {
            EventKind::Loaded { plugin, .. } => Some(plugin),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["kinds@0.1.0", "counter@0.1.0", "hello@1.2.0"]);
}

#[test]
fn missing_unmatched_and_transitive_problems_name_the_chain_and_refuse_only_those_plugins() {
    let dir = TempPluginsDir::default();
    stage(&dir, "hello", serde_json::json!({"counter": "^0.1"}));
    stage(&dir, "counter", serde_json::json!({"nothere": "^1"}));
    stage(&dir, "kinds", serde_json::json!({"counter": "^2"}));
    dir.stage("fixture-noop");
    let report = PluginManager::new(dir.path()).load_all();
    assert_eq!(loaded(&report), ["fixture-noop@0.1.0"], "the rest loads");

    let (chain, problem) = dependency_error(&report, "counter");
    assert_eq!(chain, ["counter@0.1.0"]);
    assert_eq!(
        problem,
        DependencyProblem::Missing {
            name: "nothere".into(),
            requirement: "^1".into()
        }
    );
    // hello fails through counter: the whole chain is named.
    let (chain, _) = dependency_error(&report, "hello");
    assert_eq!(chain, ["hello@1.2.0", "counter@0.1.0"]);
    let message = report
        .failed
        .iter()
        .find(|f| f.path.to_string_lossy().contains("/hello/"))
        .unwrap()
        .error
        .to_string();
    assert!(
        message.contains("hello@1.2.0 → counter@0.1.0 needs plugin `nothere` ^1"),
        "{message}"
    );
    let (chain, problem) = dependency_error(&report, "kinds");
    assert_eq!(chain, ["kinds@0.1.0"]);
    assert_eq!(
        problem,
        DependencyProblem::NoMatch {
            name: "counter".into(),
            requirement: "^2".into(),
            versions: vec!["0.1.0".into()]
        }
    );
}

#[test]
fn a_cycle_is_refused_and_the_rest_loads() {
    let dir = TempPluginsDir::default();
    stage(&dir, "counter", serde_json::json!({"kinds": "*"}));
    stage(&dir, "kinds", serde_json::json!({"counter": "*"}));
    stage(&dir, "hello", serde_json::json!({}));
    let report = PluginManager::new(dir.path()).load_all();
    assert_eq!(loaded(&report), ["hello@1.2.0"]);
    for name in ["counter", "kinds"] {
        let (chain, problem) = dependency_error(&report, name);
        assert_eq!(problem, DependencyProblem::Cycle, "{name}");
        assert_eq!(chain.first(), chain.last(), "round the cycle: {chain:?}");
        assert_eq!(chain.len(), 3, "{chain:?}");
    }
}

#[test]
fn a_dependency_that_fails_to_load_refuses_its_dependents() {
    let dir = TempPluginsDir::default();
    stage(
        &dir,
        "hello",
        serde_json::json!({"fixture-bad-onload": "^0.1"}),
    );
    dir.stage("fixture-bad-onload");
    let report = PluginManager::new(dir.path()).load_all();
    assert!(report.loaded.is_empty());
    let (chain, problem) = dependency_error(&report, "hello");
    assert_eq!(chain, ["hello@1.2.0"]);
    assert!(
        matches!(problem, DependencyProblem::Failed { ref name, .. } if name == "fixture-bad-onload")
    );
    // A plugin loaded on its own loads its dependencies first; one that fails refuses it.
    let manager = PluginManager::new(dir.path());
    match manager.load_matching("hello", None).unwrap_err() {
        LoadError::Dependency { chain, problem } => {
            assert_eq!(chain, ["hello@1.2.0"]);
            assert!(
                matches!(problem, DependencyProblem::Failed { ref name, .. } if name == "fixture-bad-onload")
            );
        }
        other => panic!("expected a dependency error, got {other:?}"),
    }
    assert!(manager.plugins().is_empty(), "nothing half-loaded");
}

#[test]
fn load_matching_loads_missing_dependencies_first_and_names_chain_problems() {
    let dir = TempPluginsDir::default();
    stage(&dir, "hello", serde_json::json!({"counter": "^0.1"}));
    stage(&dir, "counter", serde_json::json!({"kinds": ">=0.1.0, <1"}));
    stage(&dir, "kinds", serde_json::json!({}));
    let manager = PluginManager::new(dir.path());
    let hello = manager.load_matching("hello", None).unwrap();
    assert_eq!(hello.id(), "hello@1.2.0");
    let mut loaded: Vec<String> = manager.plugins().iter().map(|p| p.id()).collect();
    loaded.sort();
    assert_eq!(loaded, ["counter@0.1.0", "hello@1.2.0", "kinds@0.1.0"]);

    // A missing dependency two levels down names the whole chain.
    let dir = TempPluginsDir::default();
    stage(&dir, "hello", serde_json::json!({"counter": "^0.1"}));
    stage(&dir, "counter", serde_json::json!({"nothere": "^1"}));
    let manager = PluginManager::new(dir.path());
    match manager.load_matching("hello", None).unwrap_err() {
        LoadError::Dependency { chain, problem } => {
            assert_eq!(chain, ["hello@1.2.0", "counter@0.1.0"]);
            assert!(
                matches!(problem, DependencyProblem::Missing { ref name, .. } if name == "nothere"),
                "{problem:?}"
            );
        }
        other => panic!("expected a dependency error, got {other:?}"),
    }
    assert!(manager.plugins().is_empty());

    // A cycle is refused, naming it.
    let dir = TempPluginsDir::default();
    stage(&dir, "hello", serde_json::json!({"counter": "^0.1"}));
    stage(&dir, "counter", serde_json::json!({"hello": "^1"}));
    let manager = PluginManager::new(dir.path());
    match manager.load_matching("hello", None).unwrap_err() {
        LoadError::Dependency { chain, problem } => {
            assert_eq!(chain, ["hello@1.2.0", "counter@0.1.0", "hello"]);
            assert_eq!(problem, DependencyProblem::Cycle);
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
    assert!(manager.plugins().is_empty());
}

#[test]
fn unloading_a_plugin_others_need_is_refused_unless_cascading() {
    let dir = TempPluginsDir::default();
    stage(&dir, "hello", serde_json::json!({"counter": "^0.1"}));
    stage(&dir, "counter", serde_json::json!({}));
    let manager = PluginManager::new(dir.path());
    assert_eq!(manager.load_all().loaded.len(), 2);
    match manager.unload("counter", None) {
        Err(UnloadError::Dependents { plugin, dependents }) => {
            assert_eq!(plugin, "counter@0.1.0");
            assert_eq!(dependents, ["hello@1.2.0"]);
        }
        other => panic!("expected Dependents, got {other:?}"),
    }
    assert!(manager.get("counter").is_ok(), "still loaded");
    let reports = manager.unload_cascade("counter", None).unwrap();
    let unloaded: Vec<&str> = reports.iter().map(|r| r.plugin.as_str()).collect();
    assert_eq!(
        unloaded,
        ["hello@1.2.0", "counter@0.1.0"],
        "dependents first"
    );
    assert!(manager.plugins().is_empty());
}

#[test]
fn a_bad_dependencies_field_is_a_manifest_error_naming_it() {
    let dir = TempPluginsDir::default();
    stage(
        &dir,
        "hello",
        serde_json::json!({"counter": "not a requirement"}),
    );
    let report = PluginManager::new(dir.path()).load_all();
    let err = report.failed[0].error.to_string();
    assert!(err.contains("dependencies.counter"), "{err}");
    assert!(err.contains("not a semver requirement"), "{err}");
}

#[test]
fn an_upgrade_that_would_close_a_cycle_is_refused_and_the_old_version_keeps_serving() {
    let dir = TempPluginsDir::default();
    let hello_dir = dir.stage("hello");
    stage(&dir, "counter", serde_json::json!({"hello": "^1"}));
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    drop(report);
    // hello's new manifest needs counter, which needs hello ^1: hello → counter → hello.
    let manifest_path = hello_dir.join("plugin.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["dependencies"] = serde_json::json!({"counter": "^0.1"});
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    match &*manager.reload("hello").unwrap_err() {
        LoadError::Dependency { chain, problem } => {
            assert_eq!(chain, &["hello@1.2.0", "counter@0.1.0", "hello@1.2.0"]);
            assert_eq!(problem, &DependencyProblem::Cycle);
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
    let mut ctx = plg_loader::Context::new();
    manager.get("hello").unwrap().execute(&mut ctx).unwrap();
}

#[test]
fn load_matching_leaves_nothing_half_loaded_when_a_dependency_fails() {
    let dir = TempPluginsDir::default();
    stage(
        &dir,
        "hello",
        serde_json::json!({"counter": "^0.1", "fixture-bad-onload": "^0.1"}),
    );
    stage(&dir, "counter", serde_json::json!({}));
    dir.stage("fixture-bad-onload");
    let manager = PluginManager::new(dir.path());
    assert!(matches!(
        manager.load_matching("hello", None),
        Err(LoadError::Dependency { .. })
    ));
    let left: Vec<String> = manager.plugins().iter().map(|p| p.id()).collect();
    assert!(left.is_empty(), "nothing half-loaded: {left:?}");
}

#[test]
fn a_dependency_chain_longer_than_the_limit_is_refused_without_crashing() {
    // Manifests only: the chain is refused before any library is needed.
    let dir = TempPluginsDir::default();
    let n = plg_loader::MAX_DEPENDENCY_DEPTH + 40;
    for i in 0..n {
        let name = format!("p{i:04}");
        let deps = if i + 1 < n {
            serde_json::json!({ format!("p{:04}", i + 1): "*" })
        } else {
            serde_json::json!({})
        };
        let vdir = dir.path().join(&name).join("0.1.0");
        std::fs::create_dir_all(&vdir).unwrap();
        let manifest = serde_json::json!({
            "name": name, "version": "0.1.0",
            "source": {"mode": "local_so", "path": "libmissing"},
            "dependencies": deps,
        });
        std::fs::write(vdir.join("plugin.json"), manifest.to_string()).unwrap();
    }
    let manager = PluginManager::new(dir.path());
    match manager.load_matching("p0000", None).unwrap_err() {
        LoadError::Dependency { chain, problem } => {
            assert_eq!(
                problem,
                DependencyProblem::TooDeep {
                    limit: plg_loader::MAX_DEPENDENCY_DEPTH
                }
            );
            assert_eq!(chain.len(), plg_loader::MAX_DEPENDENCY_DEPTH);
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
    let report = manager.load_all();
    assert!(report.loaded.is_empty());
    assert!(report.failed.iter().any(|f| matches!(
        &f.error,
        LoadError::Dependency {
            problem: DependencyProblem::TooDeep { .. },
            ..
        }
    )));
}
