//! plg-loader's layering, checked on its source: the shared bottom (manifest, errors, plugins
//! directory) imports neither layer above it; the runtime never imports packaging; packaging
//! reaches the runtime only through `check_loads`. The README's layout section describes it.

use std::path::{Path, PathBuf};

use plg_tests::workspace_root;

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

/// `true` if `line` has the path segment `module::` (not as the tail of a longer name, so
/// `git_url::` is not `git::`), other than the allowed `module::except`.
fn names_module(line: &str, module: &str, except: Option<&str>) -> bool {
    let needle = format!("{module}::");
    line.match_indices(&needle).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let whole = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let allowed = except.is_some_and(|e| line[i + needle.len()..].starts_with(e));
        whole && !allowed
    })
}

/// The lines of code (not comments) of `text` that name any of `modules`, except
/// `module::except`.
fn naming<'a>(text: &'a str, modules: &[&str], except: Option<&str>) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| modules.iter().any(|m| names_module(l, m, except)))
        .collect()
}

/// The packaging layer's modules (re-exported at the crate root, so reachable by either
/// path).
const PACKAGING: &[&str] = &[
    "packaging",
    "bundle",
    "install",
    "keys",
    "origin",
    "git",
    "build",
    "scaffold",
];

#[test]
fn the_loader_layers_import_only_downwards() {
    let src = workspace_root().join("loader/src");
    let mut wrong = Vec::new();
    for bottom in ["manifest", "plugins_dir", "error"] {
        for (path, text) in sources(&src.join(bottom)) {
            for line in naming(&text, &[PACKAGING, &["runtime"]].concat(), None) {
                wrong.push(format!("{}: the bottom reaches up: {line}", path.display()));
            }
        }
    }
    for (path, text) in sources(&src.join("runtime")) {
        for line in naming(&text, PACKAGING, None) {
            wrong.push(format!(
                "{}: the runtime imports packaging: {line}",
                path.display()
            ));
        }
    }
    for (path, text) in sources(&src.join("packaging")) {
        for line in naming(&text, &["runtime"], Some("check_loads")) {
            wrong.push(format!(
                "{}: packaging uses the runtime beyond check_loads: {line}",
                path.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_a_violation() {
    // The scan is not vacuous: a line like the one it forbids is found.
    let text = "use crate::{packaging::bundle::Bundle, manifest::git_url};\n// git:: in a comment";
    assert_eq!(
        naming(text, PACKAGING, None),
        ["use crate::{packaging::bundle::Bundle, manifest::git_url};"]
    );
    assert!(naming(
        "use crate::runtime::check_loads;",
        &["runtime"],
        Some("check_loads")
    )
    .is_empty());
    assert_eq!(
        naming(
            "use crate::runtime::ffi;",
            &["runtime"],
            Some("check_loads")
        )
        .len(),
        1
    );
}

/// The lines of code (not comments) of `text` that use the `unsafe` keyword.
fn unsafe_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| {
            l.match_indices("unsafe").any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + "unsafe".len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '`')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '`')
            })
        })
        .collect()
}

#[test]
fn unsafe_lives_only_in_the_runtime_ffi_module() {
    let src = workspace_root().join("loader/src");
    let ffi = src.join("runtime/ffi");
    let mut found_in_ffi = false;
    for (path, text) in sources(&src) {
        let lines = unsafe_lines(&text);
        if path == src.join("runtime/ffi.rs") || path.starts_with(&ffi) {
            found_in_ffi |= !lines.is_empty();
            continue;
        }
        assert!(
            lines.is_empty(),
            "{} uses unsafe outside runtime/ffi: {lines:?}",
            path.display()
        );
    }
    assert!(found_in_ffi, "the check looks at the right files");
    assert_eq!(
        unsafe_lines("let x = unsafe { y };\n// unsafe in a comment"),
        ["let x = unsafe { y };"]
    );
}
