//! A plugins directory with hostile or broken entries: each fails alone, with its reason, and
//! nothing hangs, follows a link out, or reads a huge file (issue: one bad directory broke
//! every command).

use std::path::Path;

use plg_loader::{Context, LoadError, Manifest, ManifestError, PluginManager, PluginsDir};
use plg_tests::TempPluginsDir;

fn manifest_err(path: &Path) -> ManifestError {
    Manifest::from_path(path).unwrap_err()
}

#[cfg(unix)]
#[test]
fn a_manifest_linked_to_a_blocking_file_is_refused_without_reading_it() {
    let dir = TempPluginsDir::default();
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    // Reading /proc/kmsg blocks; a FIFO blocks on open. Neither may hang discovery or loads.
    std::os::unix::fs::symlink("/proc/kmsg", bad.join("plugin.json")).unwrap();
    assert!(matches!(
        manifest_err(&bad.join("plugin.json")),
        ManifestError::NotAFile {
            kind: "a symbolic link",
            ..
        }
    ));
    let fifo = dir.path().join("fifo");
    std::fs::create_dir_all(&fifo).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(fifo.join("plugin.json"))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(matches!(
        manifest_err(&fifo.join("plugin.json")),
        ManifestError::NotAFile { .. }
    ));
    // load_all reports both and still loads the good plugin beside them.
    dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    let report = manager.load_all();
    assert_eq!(report.loaded.len(), 1, "{:?}", report.failed);
    let failed: Vec<&Path> = report.failed.iter().map(|f| f.path.as_path()).collect();
    assert_eq!(
        failed,
        [bad.join("plugin.json"), fifo.join("plugin.json")]
            .iter()
            .map(|p| p.as_path())
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_huge_manifest_is_refused_by_its_size() {
    let dir = TempPluginsDir::default();
    let path = dir.path().join("plugin.json");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(2 << 30).unwrap(); // 2 GiB, sparse: nothing is read
    match manifest_err(&path) {
        ManifestError::TooLarge { limit, .. } => {
            assert_eq!(limit, plg_loader::manifest::MAX_MANIFEST_BYTES)
        }
        e => panic!("expected TooLarge, got {e:?}"),
    }
}

#[cfg(unix)]
#[test]
fn a_directory_linked_out_of_the_plugins_dir_fails_alone() {
    let dir = TempPluginsDir::default();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("plugin.json"), "{}").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("evil")).unwrap();
    dir.stage("hello");
    let found = PluginsDir::new(dir.path()).discover().unwrap();
    assert_eq!(found.manifests.len(), 1);
    assert_eq!(found.failed.len(), 1);
    assert!(matches!(
        found.failed[0].error,
        LoadError::OutsideDir { .. }
    ));
    assert_eq!(found.failed[0].path, dir.path().join("evil"));
}

#[cfg(unix)]
#[test]
fn loading_one_plugin_reads_only_its_own_manifests() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    // Broken and hostile neighbours: a manifest linked to a blocking file, invalid JSON,
    // and a link out of the directory.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::os::unix::fs::symlink("/proc/kmsg", bad.join("plugin.json")).unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("plugin.json"), "{ nope").unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
    let manager = PluginManager::new(dir.path());
    let hello = manager.load_matching("hello", None).unwrap();
    let mut ctx = Context::new();
    hello.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get_str("greeting"), Ok("Hello, world!"));
    // A name that is not a plugin name never becomes a path.
    assert!(matches!(
        manager.load_matching("../bad", None),
        Err(LoadError::NotInstalled { .. })
    ));
}

/// Listing reads files and never loads a library: a plugin whose initializer aborts the
/// process is listed (its note read from the file), and so are its neighbours.
#[test]
fn scanning_runs_no_plugin_code() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-bad-init");
    dir.stage("hello");
    let manager = PluginManager::new(dir.path());
    let entries = manager.scan().unwrap();
    assert_eq!(entries.len(), 2);
    for e in &entries {
        assert!(e.status.is_ok(), "{:?}", e.status);
        let note = e.note.as_ref().expect("built with notes");
        assert_eq!(Some(&note.name), e.manifest.as_ref().map(|m| &m.name));
        assert_eq!(note.abi_version, 1, "plg's ABI version");
    }
}

/// Install and uninstall never write or delete through a link at `PLUGINS_DIR/NAME`.
#[cfg(unix)]
#[test]
fn install_and_uninstall_refuse_a_linked_plugin_dir() {
    use plg_loader::install::{install_file, uninstall, InstallError, InstallOptions};
    let staged = TempPluginsDir::default();
    let packed = plg_loader::bundle::pack_dir(&staged.stage("hello"), None).unwrap();
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("h.plg");
    std::fs::write(&bundle, &packed.bytes).unwrap();
    let victim = work.path().join("victim");
    std::fs::create_dir_all(victim.join("1.2.0")).unwrap();
    std::fs::write(victim.join("1.2.0/plugin.json"), "precious").unwrap();
    std::fs::write(victim.join(".staging-999999-1-0"), "precious too").unwrap();
    let dir = TempPluginsDir::default();
    std::os::unix::fs::symlink(&victim, dir.path().join("hello")).unwrap();
    let plugins = PluginsDir::new(dir.path());
    let force = InstallOptions {
        force: true,
        ..Default::default()
    };
    assert!(matches!(
        install_file(&bundle, &plugins, &force),
        Err(InstallError::Linked { .. })
    ));
    assert!(matches!(
        uninstall(&plugins, "hello", None),
        Err(InstallError::Linked { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(victim.join("1.2.0/plugin.json")).unwrap(),
        "precious"
    );
    assert!(victim.join(".staging-999999-1-0").exists());
}

#[test]
fn a_broken_name_level_manifest_does_not_hide_the_installed_versions() {
    let dir = TempPluginsDir::default();
    // hello installed the way `plg install` lays it out, plus a planted NAME/plugin.json.
    dir.stage_with("hello", "hello", |_| {}); // hello/1.2.0/
    std::fs::write(dir.path().join("hello/plugin.json"), "{ not json").unwrap();
    let manager = PluginManager::new(dir.path());
    let hello = manager
        .load_matching("hello", None)
        .expect("the installed version still loads");
    assert_eq!(hello.id(), "hello@1.2.0");
    drop((hello, manager)); // the same library cannot be open twice
    let report = PluginManager::new(dir.path()).load_all();
    assert_eq!(report.loaded.len(), 1, "{:?}", report.failed);
    assert!(
        matches!(
            report.failed.as_slice(),
            [f] if f.path.ends_with("hello/plugin.json")
        ),
        "the broken manifest fails alone: {:?}",
        report.failed
    );
}
