//! A plugin author's loop (issue 8 §2, §3): Cargo.toml is the one source of a crate's name
//! and version, builds share one target directory, and `plg new` pins what plg is tested
//! with.

use std::{path::Path, process::Command};

use plg_loader::scaffold::{scaffold, PlgApiSource};
use plg_tests::{plg_bin, target_dir, workspace_root, Profile, TempPluginsDir};

use crate::cli::{plg, stderr, stdout};

/// `plg build --debug DIR` with `PLG_TARGET_DIR=target_dir` (and no `CARGO_TARGET_DIR`).
fn build(dir: &TempPluginsDir, krate: &Path, target: &Path) -> std::process::Output {
    Command::new(plg_bin(Profile::Debug))
        .args(["build", "--debug"])
        .arg(krate)
        .arg("--plugins-dir")
        .arg(dir.path())
        .env("PLG_TARGET_DIR", target)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap()
}

#[test]
fn a_version_bump_is_one_edit_and_a_disagreement_names_both_files() {
    let dir = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let krate = work.path().join("bump");
    let out = plg(&dir, &["new", "bump", "--path", krate.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(krate.join("plugin.json")).unwrap();
    assert!(
        !manifest.contains("\"version\"") && !manifest.contains("\"name\""),
        "{manifest}"
    );

    // Builds go to PLG_TARGET_DIR, shared by every plugin.
    let target = target_dir().join("plg-author-tests");
    let out = build(&dir, &krate, &target);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("staged bump@0.1.0"),
        "{}",
        stdout(&out)
    );
    assert!(target
        .join("debug")
        .join(plg_tests::library_file_name("bump"))
        .is_file());
    assert!(
        !krate.join("target").exists(),
        "nothing was built in the crate's own target/"
    );

    // One edit: Cargo.toml's version.
    let cargo_toml = krate.join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo_toml).unwrap();
    std::fs::write(
        &cargo_toml,
        text.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1),
    )
    .unwrap();
    let out = build(&dir, &krate, &target);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("staged bump@0.2.0"),
        "{}",
        stdout(&out)
    );
    let out = plg(&dir, &["run", "bump@=0.2.0", "--set", "name=v2"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A plugin.json that says otherwise stops the build before cargo runs, naming both files.
    let with_version = manifest.replacen('{', "{\n  \"version\": \"0.1.0\",", 1);
    std::fs::write(krate.join("plugin.json"), with_version).unwrap();
    let out = build(&dir, &krate, &target);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("plugin.json says version `0.1.0`"), "{err}");
    assert!(err.contains("Cargo.toml says `0.2.0`"), "{err}");
    assert!(
        !err.contains(".staging") && !err.contains("Compiling"),
        "{err}"
    );
}

/// `(name, version)` of every registry package in a Cargo.lock.
fn registry_packages(lock: &str) -> Vec<(String, String)> {
    lock.split("[[package]]")
        .filter(|b| b.contains("source = \"registry+"))
        .map(|b| {
            let field = |key: &str| {
                b.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap_or_default()
            };
            (field("name"), field("version"))
        })
        .collect()
}

#[test]
fn a_new_crate_pins_the_versions_plg_is_tested_with() {
    let work = tempfile::tempdir().unwrap();
    let krate = work.path().join("pinned");
    let api = workspace_root().join("plugin-api");
    scaffold("pinned", &krate, &PlgApiSource::Path(api.clone())).unwrap();

    let lock = std::fs::read_to_string(krate.join("Cargo.lock")).unwrap();
    let ours = std::fs::read_to_string(workspace_root().join("Cargo.lock")).unwrap();
    let pinned = registry_packages(&lock);
    let tested = registry_packages(&ours);
    assert!(pinned.iter().any(|(n, _)| n == "abi_stable"), "{pinned:?}");
    for p in &pinned {
        assert!(
            tested.contains(p),
            "the scaffold pins {} {}, which plg is not tested with: run scripts/scaffold_lock.sh",
            p.0,
            p.1
        );
    }
    // The dependency a published crate needs, with the checkout as the override.
    let cargo_toml = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains(&format!(
            "plg-api = {{ version = \"{}\", path = {:?} }}",
            env!("CARGO_PKG_VERSION"),
            api.display().to_string()
        )),
        "{cargo_toml}"
    );
}

#[test]
fn two_crates_of_the_same_name_in_one_shared_target_dir_each_stage_their_own_library() {
    let dir = TempPluginsDir::default();
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a/twin"), work.path().join("b/twin"));
    for krate in [&a, &b] {
        let out = plg(&dir, &["new", "twin", "--path", krate.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let lib_rs = b.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib_rs).unwrap();
    std::fs::write(&lib_rs, text.replace("Hello, {name}!", "Howdy, {name}!")).unwrap();

    let target = target_dir().join("plg-author-tests");
    let greeting = |krate: &Path| {
        let out = build(&dir, krate, &target);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = plg(&dir, &["run", "twin", "--set", "name=x"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        v["greeting"].as_str().unwrap().to_owned()
    };
    assert_eq!(greeting(&a), "Hello, x!");
    assert_eq!(greeting(&b), "Howdy, x!");
    // Without the ownership record, cargo calls `a` fresh here and points at b's library.
    assert_eq!(greeting(&a), "Hello, x!");
}
