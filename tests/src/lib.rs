//! Helpers shared by plg's integration tests and benchmarks: build the sample and fixture
//! plugins once, and stage copies of them in temporary plugin directories.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// Every plugin crate (the samples under `plugins/`, the fixtures under `tests/fixtures/`),
/// plus the binaries the tests run.
pub const PACKAGES: &[&str] = &[
    "hello",
    "counter",
    "kinds",
    "fixture-panic",
    "fixture-hang",
    "fixture-noop",
    "fixture-tls",
    "fixture-bad-layout",
    "fixture-future-abi",
    "fixture-not-plugin",
    "fixture-evil-context",
    "fixture-big",
    "fixture-bad-init",
    "plg-cli",
    "sample-host",
];

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The source directory of plugin crate `package`: `tests/fixtures/<package>` for the test
/// and bench fixtures (`fixture-*`), `plugins/<package>` for the samples.
pub fn plugin_crate_dir(package: &str) -> PathBuf {
    let root = workspace_root();
    if package.starts_with("fixture-") {
        root.join("tests/fixtures").join(package)
    } else {
        root.join("plugins").join(package)
    }
}

/// cargo's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The build profile fixtures are built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo build` (tests).
    Debug,
    /// `cargo build --release` (benchmarks).
    Release,
}

fn build(profile: Profile) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .arg("build")
        .arg("--quiet");
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the fixtures");
    assert!(status.success(), "building the fixture plugins failed");
    target_dir().join(match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    })
}

/// Builds every plugin and binary once per process; returns the artifact directory.
pub fn artifacts(profile: Profile) -> &'static Path {
    static DEBUG: OnceLock<PathBuf> = OnceLock::new();
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    let cell = match profile {
        Profile::Debug => &DEBUG,
        Profile::Release => &RELEASE,
    };
    cell.get_or_init(|| build(profile))
}

/// The library file cargo writes for plugin crate `package`.
pub fn library(profile: Profile, package: &str) -> PathBuf {
    artifacts(profile).join(library_file_name(package))
}

/// `lib<name>.so` / `lib<name>.dylib` / `<name>.dll` for a crate name.
pub fn library_file_name(package: &str) -> String {
    let stem = package.replace('-', "_");
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The `plg` binary.
pub fn plg_bin(profile: Profile) -> PathBuf {
    artifacts(profile).join(format!("plg{}", std::env::consts::EXE_SUFFIX))
}

/// A temporary plugins directory.
pub struct TempPluginsDir {
    tmp: tempfile::TempDir,
    profile: Profile,
}

impl Default for TempPluginsDir {
    fn default() -> Self {
        Self::new(Profile::Debug)
    }
}

impl TempPluginsDir {
    /// An empty directory; plugins are taken from `profile`'s build.
    pub fn new(profile: Profile) -> Self {
        artifacts(profile);
        Self {
            tmp: tempfile::tempdir().expect("temp dir"),
            profile,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Stages plugin crate `package` as `DIR/NAME/VERSION/` with its own copy of the library.
    pub fn stage(&self, package: &str) -> PathBuf {
        self.stage_with(package, package, |_| {})
    }

    /// Stages `package` in `DIR/<subdir>/`, after letting `edit` change its manifest JSON.
    /// The library is copied (a fresh file, so each staged copy is a distinct library).
    pub fn stage_with(
        &self,
        package: &str,
        subdir: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> PathBuf {
        let src = plugin_crate_dir(package);
        let text = std::fs::read_to_string(src.join("plugin.json")).expect("fixture manifest");
        let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
        let file = library_file_name(package);
        manifest["source"]["path"] = file.clone().into();
        edit(&mut manifest);
        let version = manifest["version"].as_str().unwrap_or("0.0.0").to_owned();
        let dir = self.path().join(subdir).join(version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(library(self.profile, package), dir.join(&file)).unwrap();
        std::fs::write(
            dir.join("plugin.json"),
            serde_json::to_string_pretty(&manifest).unwrap(),
        )
        .unwrap();
        dir
    }

    /// Writes a plugin dir holding only `manifest` (and nothing else) at `DIR/<subdir>/`.
    pub fn write_manifest(&self, subdir: &str, manifest: &str) -> PathBuf {
        let dir = self.path().join(subdir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plugin.json"), manifest).unwrap();
        dir
    }
}

/// Builds a copy of plugin crate `package` whose Cargo.toml says `version`, once per
/// process, and returns its library. Used to load two versions of one plugin side by side.
pub fn build_variant(package: &str, version: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> =
        OnceLock::new();
    let key = format!("{package}@{version}");
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let root = target_dir().join("plg-variants").join(&key);
    std::fs::create_dir_all(root.join("src")).unwrap();
    let src = plugin_crate_dir(package);
    std::fs::copy(src.join("src/lib.rs"), root.join("src/lib.rs")).unwrap();
    let api = workspace_root().join("plugin-api");
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{package}\"\nversion = \"{version}\"\nedition = \"2021\"\npublish = false\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nplg-api = {{ path = {:?} }}\n\n[workspace]\n",
            api.display().to_string()
        ),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .env(
            "CARGO_TARGET_DIR",
            target_dir().join("plg-variants").join("target"),
        )
        .args(["build", "--quiet"])
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "building {key} failed");
    let lib = target_dir()
        .join("plg-variants")
        .join("target")
        .join("debug")
        .join(library_file_name(package));
    // Several variants share one target dir; keep each build's library under its own name.
    let kept = root.join(library_file_name(package));
    std::fs::copy(&lib, &kept).unwrap();
    built.insert(key, kept.clone());
    kept
}

impl TempPluginsDir {
    /// Stages `library` (built by [`build_variant`]) with `package`'s manifest at `version`.
    pub fn stage_variant(&self, package: &str, version: &str) -> PathBuf {
        let lib = build_variant(package, version);
        let dir = self.stage_with(package, package, |m| m["version"] = version.into());
        std::fs::copy(lib, dir.join(library_file_name(package))).unwrap();
        dir
    }
}

/// Builds `n` distinct no-op plugins (`noop-000`, `noop-001`, …) in release mode, once, in a
/// generated workspace under the target directory, and returns their libraries in order.
/// Used by the `load_all` benchmark: each has its own embedded name.
pub fn build_many_noops(n: usize) -> Vec<(String, PathBuf)> {
    let root = target_dir().join(format!("plg-bench-{n}-noops"));
    let api = workspace_root().join("plugin-api");
    let source = std::fs::read_to_string(plugin_crate_dir("fixture-noop").join("src/lib.rs"))
        .expect("fixture-noop source");
    let names: Vec<String> = (0..n).map(|i| format!("noop-{i:03}")).collect();
    for name in &names {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        write_if_changed(
            &dir.join("Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
                 [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nplg-api = {{ path = {:?} }}\n",
                api.display().to_string()
            ),
        );
        write_if_changed(&dir.join("src/lib.rs"), &source);
    }
    write_if_changed(
        &root.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"noop-*\"]\n",
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .env_remove("CARGO_TARGET_DIR")
        .args(["build", "--release", "--quiet"])
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "building {n} noop plugins failed");
    names
        .into_iter()
        .map(|name| {
            let lib = root.join("target/release").join(library_file_name(&name));
            (name, lib)
        })
        .collect()
}

fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap();
    }
}

impl TempPluginsDir {
    /// Stages `library` as plugin `name` version `version` (a `local_so` manifest is written).
    pub fn stage_library(&self, name: &str, version: &str, library: &Path) -> PathBuf {
        let dir = self.path().join(name).join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let file = library.file_name().expect("library file name");
        std::fs::copy(library, dir.join(file)).unwrap();
        let manifest = serde_json::json!({
            "name": name,
            "version": version,
            "source": { "mode": "local_so", "path": file.to_string_lossy() },
        });
        std::fs::write(dir.join("plugin.json"), manifest.to_string()).unwrap();
        dir.join("plugin.json")
    }
}

/// Runs `git` in `dir` with a fixed identity (and local `file://` submodules allowed);
/// returns its trimmed stdout and panics with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=plg", "-c", "user.email=plg@test.invalid"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .output()
        .expect("cannot run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository made from `files` (path, contents), one commit tagged `v1`. Returns the
/// directory guard, its `file://` URL and the commit.
pub fn git_repo(files: &[(&str, String)]) -> (tempfile::TempDir, String, String) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let work = tmp.path().join("work");
    for (path, text) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().expect("a file path")).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(&work, &["init", "-q"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "plugin"]);
    git(&work, &["tag", "v1"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    git(tmp.path(), &["clone", "-q", "--bare", "work", "bare.git"]);
    let url = format!("file://{}", tmp.path().join("bare.git").display());
    (tmp, url, commit)
}

/// The `hello` sample plugin as a standalone crate (its own `[workspace]`, plg-api by path),
/// as files for [`git_repo`].
pub fn hello_crate_files() -> Vec<(&'static str, String)> {
    let api = workspace_root().join("plugin-api");
    let read = |p: &str| std::fs::read_to_string(workspace_root().join(p)).expect("hello source");
    vec![
        (
            "Cargo.toml",
            format!(
                "[package]\nname = \"hello\"\nversion = \"1.2.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nplg-api = {{ path = {:?} }}\n\n[workspace]\n",
                api.display().to_string()
            ),
        ),
        ("plugin.json", read("plugins/hello/plugin.json")),
        ("src/lib.rs", read("plugins/hello/src/lib.rs")),
    ]
}
