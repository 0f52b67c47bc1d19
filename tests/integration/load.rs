//! Loading: every way a plugin can be refused, each with its own error kind, and the host
//! carrying on afterwards.

use plg_loader::{Context, LoadError, LookupError, ManifestError, PluginManager};
use plg_tests::{library_file_name, TempPluginsDir};

fn load_err(dir: &TempPluginsDir, subdir: &str) -> LoadError {
    let manager = PluginManager::new(dir.path());
    let manifest = std::fs::read_dir(dir.path().join(subdir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .map(|d| d.join("plugin.json"))
        .unwrap_or_else(|| dir.path().join(subdir).join("plugin.json"));
    manager.load_manifest(&manifest).unwrap_err()
}

#[test]
fn missing_library_is_not_found() {
    let dir = TempPluginsDir::default();
    let d = dir.stage("hello");
    std::fs::remove_file(d.join(library_file_name("hello"))).unwrap();
    match load_err(&dir, "hello") {
        LoadError::NotFound { path, .. } => assert!(path.ends_with(library_file_name("hello"))),
        e => panic!("expected NotFound, got {e:?}"),
    }
}

#[test]
fn a_text_file_is_not_a_shared_object() {
    let dir = TempPluginsDir::default();
    let d = dir.stage("hello");
    std::fs::write(d.join(library_file_name("hello")), "#!/bin/sh\necho hi\n").unwrap();
    match load_err(&dir, "hello") {
        LoadError::NotSharedObject { reason, .. } => assert_eq!(reason, "it is a text file"),
        e => panic!("expected NotSharedObject, got {e:?}"),
    }
}

#[test]
fn a_plain_cdylib_is_not_a_plugin() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-not-plugin");
    match load_err(&dir, "fixture-not-plugin") {
        LoadError::NotAPlugin { reason, .. } => {
            assert!(reason.contains("PLG_PLUGIN_DECLARATION"), "{reason}")
        }
        e => panic!("expected NotAPlugin, got {e:?}"),
    }
}

#[test]
fn an_incompatible_layout_is_refused_at_load_time() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-bad-layout");
    match load_err(&dir, "fixture-bad-layout") {
        LoadError::AbiLayout {
            api_version,
            details,
            ..
        } => {
            assert_eq!(api_version, "0.0.0-old");
            assert!(!details.is_empty());
        }
        e => panic!("expected AbiLayout, got {e:?}"),
    }
}

#[test]
fn another_abi_version_is_refused() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-future-abi");
    match load_err(&dir, "fixture-future-abi") {
        LoadError::AbiVersion {
            expected, found, ..
        } => {
            assert_eq!(expected, plg_api_abi());
            assert_eq!(found, plg_api_abi() + 1);
        }
        e => panic!("expected AbiVersion, got {e:?}"),
    }
}

fn plg_api_abi() -> u32 {
    // The loader re-exports nothing of the ABI number on purpose; read it from a message.
    1
}

#[test]
fn a_name_that_differs_from_the_library_is_refused() {
    let dir = TempPluginsDir::default();
    dir.stage_with("hello", "hello", |m| m["name"] = "howdy".into());
    match load_err(&dir, "hello") {
        LoadError::Mismatch {
            field,
            manifest,
            library,
            ..
        } => assert_eq!((field, &*manifest, &*library), ("name", "howdy", "hello")),
        e => panic!("expected Mismatch, got {e:?}"),
    }
}

#[test]
fn a_version_that_differs_from_the_library_is_refused() {
    let dir = TempPluginsDir::default();
    dir.stage_with("hello", "hello", |m| m["version"] = "9.9.9".into());
    match load_err(&dir, "hello") {
        LoadError::Mismatch { field, library, .. } => {
            assert_eq!((field, &*library), ("version", "1.2.0"))
        }
        e => panic!("expected Mismatch, got {e:?}"),
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_plugin_dir_is_refused() {
    let dir = TempPluginsDir::default();
    let d = dir.stage("hello");
    let outside = dir.path().join("outside.so");
    std::fs::rename(d.join(library_file_name("hello")), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, d.join(library_file_name("hello"))).unwrap();
    assert!(matches!(
        load_err(&dir, "hello"),
        LoadError::OutsideDir { .. }
    ));
}

#[test]
fn a_path_with_dotdot_is_an_invalid_manifest_field() {
    let dir = TempPluginsDir::default();
    dir.stage_with("hello", "hello", |m| {
        m["source"]["path"] = "../../etc/x".into()
    });
    match load_err(&dir, "hello") {
        LoadError::Manifest(ManifestError::Invalid { field, .. }) => {
            assert_eq!(field, "source.path")
        }
        e => panic!("expected Invalid source.path, got {e:?}"),
    }
}

#[test]
fn remote_git_with_a_scheme_not_allowed_is_refused_before_any_fetch() {
    let dir = TempPluginsDir::default();
    dir.stage_with(
        "hello",
        "hello",
        |m| {
            m["source"] =
                serde_json::json!({"mode": "remote_git", "path": "file:///nonexistent/x.git"})
        },
    );
    assert!(matches!(
        load_err(&dir, "hello"),
        LoadError::Git(plg_loader::git::GitError::SchemeNotAllowed { .. })
    ));
}

#[test]
fn load_all_reports_every_failure_and_loads_the_rest() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage("counter");
    dir.stage("fixture-not-plugin");
    dir.stage("fixture-bad-layout");
    dir.stage("fixture-future-abi");
    dir.write_manifest("broken-json", "{ not json");
    dir.write_manifest(
        "bad-version",
        r#"{"name":"x","version":"one","source":{"mode":"local_so","path":"x"}}"#,
    );
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();

    let mut loaded: Vec<_> = report.loaded.iter().map(|p| p.id().to_owned()).collect();
    loaded.sort();
    assert_eq!(loaded, ["counter@0.1.0", "hello@1.2.0"]);

    let kinds: Vec<&str> = report
        .failed
        .iter()
        .map(|f| match &f.error {
            LoadError::NotAPlugin { .. } => "not-a-plugin",
            LoadError::AbiLayout { .. } => "abi-layout",
            LoadError::AbiVersion { .. } => "abi-version",
            LoadError::Manifest(ManifestError::Syntax { .. }) => "syntax",
            LoadError::Manifest(ManifestError::Invalid { field, .. }) if field == "version" => {
                "bad-version"
            }
            e => panic!("unexpected failure {e:?}"),
        })
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "abi-layout",
            "abi-version",
            "bad-version",
            "not-a-plugin",
            "syntax"
        ]
    );

    // The host keeps working after all of them.
    let mut ctx = Context::new();
    manager.get("hello").unwrap().execute(&mut ctx).unwrap();
    assert_eq!(ctx.get_str("greeting"), Ok("Hello, world!"));

    // Loading again keeps what is loaded and reports the same failures.
    let again = manager.load_all();
    assert_eq!(again.loaded.len(), 2);
    assert_eq!(again.failed.len(), 5);
}

#[test]
fn versions_load_side_by_side_and_lookups_follow_semver() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage_variant("hello", "2.0.0");
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(manager.get("hello").unwrap().version().to_string(), "2.0.0");
    let v1 = manager.get_matching("hello", "^1.2").unwrap();
    assert_eq!(v1.version().to_string(), "1.2.0");
    assert!(matches!(
        manager.get_matching("hello", "^3"),
        Err(LookupError::NoMatch { .. })
    ));
    assert!(matches!(
        manager.get_matching("hello", "not a req"),
        Err(LookupError::BadRequirement { .. })
    ));
    assert!(matches!(
        manager.get("nope"),
        Err(LookupError::NotLoaded { .. })
    ));

    // Unloading one version leaves the other callable.
    let v2 = manager.get("hello").unwrap();
    manager
        .unload("hello", Some(&plg_loader::semver::Version::new(2, 0, 0)))
        .unwrap();
    assert_eq!(manager.get("hello").unwrap().version().to_string(), "1.2.0");
    let mut ctx = Context::new();
    v1.execute(&mut ctx).unwrap();
    assert_eq!(
        v2.execute(&mut Context::new()),
        Err(Box::new(plg_loader::ExecError::Unloaded {
            plugin: "hello@2.0.0".into()
        }))
    );
}

#[test]
fn the_same_name_and_version_twice_is_already_loaded() {
    let dir = TempPluginsDir::default();
    dir.stage_with("hello", "a", |_| {});
    dir.stage_with("hello", "b", |_| {});
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert_eq!(report.loaded.len(), 1);
    assert_eq!(report.failed.len(), 1);
    assert!(matches!(
        report.failed[0].error,
        LoadError::AlreadyLoaded { .. }
    ));
}

#[test]
fn load_matching_picks_the_highest_matching_version() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    dir.stage_variant("hello", "2.0.0");
    assert_eq!(
        manager.load_matching("hello", Some("^1")).unwrap().id(),
        "hello@1.2.0"
    );
    assert_eq!(
        manager.load_matching("hello", None).unwrap().id(),
        "hello@2.0.0"
    );
    match manager.load_matching("hello", Some("^3")).unwrap_err() {
        LoadError::NotInstalled { mut versions, .. } => {
            versions.sort();
            assert_eq!(versions, ["1.2.0", "2.0.0"])
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        manager.load_matching("nope", None),
        Err(LoadError::NotInstalled { .. })
    ));
}

#[test]
fn scan_checks_without_registering() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage("fixture-not-plugin");
    let manager = PluginManager::new(dir.path());
    let entries = manager.scan().unwrap();
    assert_eq!(entries.len(), 2);
    let bad = entries.iter().find(|e| e.status.is_err()).unwrap();
    assert!(matches!(bad.status, Err(LoadError::NotAPlugin { .. })));
    assert!(manager.plugins().is_empty());
}

#[test]
fn a_failing_on_load_registers_nothing_and_releases_the_image() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-bad-onload");
    let manager = PluginManager::new(dir.path());
    for _ in 0..2 {
        // The second time gives OnLoad again, not ImageInUse: the image was released.
        match manager.load_matching("fixture-bad-onload", None) {
            Err(LoadError::OnLoad { plugin, message }) => {
                assert_eq!(plugin, "fixture-bad-onload@0.1.0");
                assert!(message.contains("refuses to load"), "{message}");
            }
            other => panic!("expected OnLoad, got {other:?}"),
        }
        assert!(manager.plugins().is_empty());
    }
    #[cfg(target_os = "linux")]
    {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(!maps.contains("libfixture_bad_onload"), "still mapped");
    }
}

#[test]
fn a_missing_manifest_is_a_read_error() {
    let dir = TempPluginsDir::default();
    let manager = PluginManager::new(dir.path());
    match manager.load_manifest(dir.path().join("nope/plugin.json")) {
        Err(LoadError::Manifest(ManifestError::Read { path, source })) => {
            assert!(path.ends_with("nope/plugin.json"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Manifest(Read), got {other:?}"),
    }
}

/// A library whose dependency is missing is refused by the dynamic loader: `Open`, with the
/// loader's message naming the dependency.
#[cfg(target_os = "linux")]
#[test]
fn a_library_with_a_missing_dependency_cannot_be_opened() {
    let dir = TempPluginsDir::default();
    let plugin = dir.path().join("needsdep");
    std::fs::create_dir_all(&plugin).unwrap();
    let cc = |args: &[&str]| {
        let out = std::process::Command::new("cc")
            .current_dir(&plugin)
            .args(args)
            .output()
            .expect("a C compiler (cc)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(plugin.join("dep.c"), "int plg_dep(void) { return 1; }\n").unwrap();
    std::fs::write(
        plugin.join("main.c"),
        "int plg_dep(void);\nint plg_uses(void) { return plg_dep(); }\n",
    )
    .unwrap();
    cc(&["-shared", "-fPIC", "-o", "libplgdep.so", "dep.c"]);
    cc(&[
        "-shared",
        "-fPIC",
        "-o",
        "libneedsdep.so",
        "main.c",
        "-L.",
        "-lplgdep",
    ]);
    std::fs::remove_file(plugin.join("libplgdep.so")).unwrap();
    std::fs::write(
        plugin.join("plugin.json"),
        r#"{"name":"needsdep","version":"1.0.0","source":{"mode":"local_so","path":"libneedsdep.so"}}"#,
    )
    .unwrap();
    let manager = PluginManager::new(dir.path());
    match manager.load_manifest(plugin.join("plugin.json")) {
        Err(LoadError::Open { message, .. }) => {
            assert!(message.contains("libplgdep.so"), "{message}")
        }
        other => panic!("expected Open, got {other:?}"),
    }
}

/// Each way a shared object fails to be a plugin has its own reason.
#[test]
fn not_a_plugin_says_which_check_failed() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-not-plugin");
    dir.stage("fixture-bad-magic");
    for (subdir, reason) in [
        (
            "fixture-not-plugin",
            "exports no `PLG_PLUGIN_DECLARATION` symbol",
        ),
        ("fixture-bad-magic", "does not start with plg's magic bytes"),
    ] {
        match load_err(&dir, subdir) {
            LoadError::NotAPlugin { reason: r, .. } => assert!(r.contains(reason), "{r}"),
            e => panic!("expected NotAPlugin, got {e:?}"),
        }
    }
}

/// A `PLG_PLUGIN_DECLARATION` symbol whose address is null (an absolute symbol at 0, which
/// `dlsym` returns as NULL without an error) is "not a plugin", and the reason says null:
/// distinct from a missing symbol and from wrong magic bytes.
#[cfg(target_os = "linux")]
#[test]
fn a_null_declaration_is_not_a_plugin() {
    let dir = TempPluginsDir::default();
    let plugin = dir.path().join("nulldecl");
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(
        plugin.join("null.c"),
        "__asm__(\".globl PLG_PLUGIN_DECLARATION\\n.set PLG_PLUGIN_DECLARATION, 0\\n\");\n\
         int plg_null_fixture(void) { return 0; }\n",
    )
    .unwrap();
    let out = std::process::Command::new("cc")
        .current_dir(&plugin)
        .args(["-shared", "-fPIC", "-o", "libnulldecl.so", "null.c"])
        .output()
        .expect("a C compiler (cc)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        plugin.join("plugin.json"),
        r#"{"name":"nulldecl","version":"1.0.0","source":{"mode":"local_so","path":"libnulldecl.so"}}"#,
    )
    .unwrap();
    let manager = PluginManager::new(dir.path());
    match manager.load_manifest(plugin.join("plugin.json")) {
        Err(LoadError::NotAPlugin { reason, .. }) => {
            assert_eq!(reason, "`PLG_PLUGIN_DECLARATION` is null")
        }
        other => panic!("expected NotAPlugin, got {other:?}"),
    }
    // Refused, and released: a second attempt meets the same check, not ImageInUse.
    assert!(matches!(
        manager.load_manifest(plugin.join("plugin.json")),
        Err(LoadError::NotAPlugin { .. })
    ));
    assert!(manager.plugins().is_empty());
}

/// ABI forward compatibility, one way: a plugin built against a later plg-api, whose module
/// has an entry point appended after `last_prefix_field` (same ABI version), loads and runs
/// in this host, which does not know that field.
#[test]
fn a_plugin_from_a_later_plg_api_loads_in_this_host() {
    let lib = plg_tests::build_later_api("later-hello");
    let dir = TempPluginsDir::default();
    dir.stage_library("later-hello", "1.2.0", &lib);
    let manager = PluginManager::new(dir.path());
    let plugin = manager
        .load_matching("later-hello", None)
        .unwrap_or_else(|e| panic!("a later plugin with an appended field is refused: {e}"));
    let mut ctx = Context::new();
    ctx.set("name", "Ahead");
    plugin.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get_str("greeting"), Ok("Hello, Ahead!"));
    let reports = manager.unload("later-hello", None).unwrap();
    #[cfg(target_os = "linux")]
    assert_eq!(reports[0].unmapped, Some(true));
    let _ = reports;
}

/// ABI forward compatibility, as the README promises it: a later host, whose plg-api
/// appends an optional entry point to the module, loads a plugin built today (which lacks
/// that field) and sees the field as absent.
#[test]
fn a_plugin_built_today_loads_in_a_later_host() {
    let host = plg_tests::build_later_api("plg-later-host");
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let out = std::process::Command::new(host)
        .arg(dir.path())
        .arg("hello")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("appended entry point present: false"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().next(), Some("Hello, Later!"), "{stdout}");
    #[cfg(target_os = "linux")]
    assert!(stdout.contains("unmapped: Some(true)"), "{stdout}");
}

/// The ABI promise, the other way round: a plugin built against plg-api as it stood before
/// the hot-upgrade entry points were appended (a frozen copy, `tests/frozen-abi`) loads and
/// runs in today's host, which reads the fields it lacks as absent: it has no state
/// hand-over, no self-test and no recorded panic strategy. It unloads, verified.
#[test]
fn a_plugin_built_against_the_frozen_abi_loads_and_runs() {
    let lib = plg_tests::build_frozen_abi_plugin();
    let dir = TempPluginsDir::default();
    dir.stage_library("frozen-hello", "1.0.0", &lib);
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let plugin = manager.get("frozen-hello").unwrap();
    assert_eq!(plugin.aborts_on_panic(), None);
    let mut ctx = Context::new();
    ctx.set("name", "today");
    plugin.execute(&mut ctx).unwrap();
    assert_eq!(
        ctx.get_str("greeting").unwrap(),
        "Hello from the frozen ABI, today!"
    );
    let reports = manager.unload("frozen-hello", None).unwrap();
    #[cfg(target_os = "linux")]
    assert_eq!(reports[0].unmapped, Some(true));
    let _ = reports;
}

/// A plugin built today records its panic strategy: `hello` unwinds.
#[test]
fn a_plugin_built_today_records_that_it_unwinds() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    let plugin = manager.load_matching("hello", None).unwrap();
    assert_eq!(plugin.aborts_on_panic(), Some(false));
}

/// The later host of the test above does load plugins built against its own plg-api: the
/// refusal there is about the plugin's age, not a broken host.
#[test]
fn the_later_host_loads_a_plugin_of_its_own_plg_api() {
    let host = plg_tests::build_later_api("plg-later-host");
    let lib = plg_tests::build_later_api("later-hello");
    let dir = TempPluginsDir::default();
    dir.stage_library("later-hello", "1.2.0", &lib);
    let out = std::process::Command::new(host)
        .arg(dir.path())
        .arg("later-hello")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("appended entry point present: true"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().next(), Some("Hello, Later!"), "{stdout}");
}

/// `ManifestError::Read` is any failure to read the manifest, not only a missing file: here
/// a path through a regular file (ENOTDIR). (Tests run as root, so a mode-000 file would
/// still be readable; this is the unreadable case that holds for root too.) A directory
/// named `plugin.json` is not read at all: `NotAFile`.
#[cfg(unix)]
#[test]
fn a_manifest_that_cannot_be_read_is_a_read_error() {
    let dir = TempPluginsDir::default();
    let manager = PluginManager::new(dir.path());
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    match manager.load_manifest(file.join("plugin.json")) {
        Err(LoadError::Manifest(ManifestError::Read { path, source })) => {
            assert_eq!(path, file.join("plugin.json"));
            assert_eq!(source.raw_os_error(), Some(libc_enotdir()), "{source}");
        }
        other => panic!("expected Manifest(Read), got {other:?}"),
    }
    let as_dir = dir.path().join("odd/plugin.json");
    std::fs::create_dir_all(&as_dir).unwrap();
    match manager.load_manifest(&as_dir) {
        Err(LoadError::Manifest(ManifestError::NotAFile { kind, .. })) => {
            assert_eq!(kind, "a directory")
        }
        other => panic!("expected Manifest(NotAFile), got {other:?}"),
    }
}

/// ENOTDIR, without a libc dependency: what the OS says for a path through a file.
#[cfg(unix)]
fn libc_enotdir() -> i32 {
    std::fs::read(plg_tests::workspace_root().join("README.md/x"))
        .unwrap_err()
        .raw_os_error()
        .expect("an OS error")
}
