//! Helpers shared by plg's integration tests and benchmarks: build the sample and fixture
//! plugins once, and stage copies of them in temporary plugin directories.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The binaries the tests run, besides every plugin crate.
const BINARIES: &[&str] = &["plg-cli", "plg-worker", "sample-host"];

/// Every plugin crate: each directory under `plugins/` and `tests/fixtures/` with a
/// `Cargo.toml`. Read from the tree, so a new fixture is built without being listed anywhere
/// (a hand-kept list once missed one, and the tests passed only where an earlier
/// `cargo build --workspace` had left its library behind).
pub fn plugin_packages() -> Vec<String> {
    let root = workspace_root();
    let mut packages = Vec::new();
    for parent in ["plugins", "tests/fixtures"] {
        let entries = std::fs::read_dir(root.join(parent))
            .unwrap_or_else(|e| panic!("cannot list {parent}/: {e}"));
        for entry in entries {
            let dir = entry.expect("directory entry").path();
            let manifest = dir.join("Cargo.toml");
            if !manifest.is_file() {
                continue;
            }
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
            assert!(
                text.contains(&format!("name = \"{name}\"")),
                "{}: the package must be named after its directory, {name}",
                manifest.display()
            );
            packages.push(name);
        }
    }
    packages.sort();
    packages
}

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
    for p in plugin_packages()
        .iter()
        .map(String::as_str)
        .chain(BINARIES.iter().copied())
    {
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

/// The `plg-worker` binary.
pub fn worker_bin(profile: Profile) -> PathBuf {
    artifacts(profile).join(format!("plg-worker{}", std::env::consts::EXE_SUFFIX))
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

    /// Stages a plugin that is a directory of files, not a crate (the Python and Go samples
    /// under `plugins/`): copies them all to `DIR/NAME/VERSION/`, keeping file modes.
    pub fn stage_files(&self, sample: &str) -> PathBuf {
        let src = plugin_crate_dir(sample);
        let text = std::fs::read_to_string(src.join("plugin.json")).expect("sample manifest");
        let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
        let version = manifest["version"].as_str().unwrap_or("0.0.0");
        let dir = self.path().join(sample).join(version);
        copy_tree(&src, &dir, &[]);
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
    build_edited(package, version, "", &[])
}

/// Like [`build_variant`], with each `(from, to)` of `edits` replaced in the crate's
/// `src/lib.rs` (each must occur); `tag` names the build apart from others of this version.
/// Used for two builds of one version that behave differently (a hot upgrade's new bytes).
/// The tag `panic-abort` builds with `panic = "abort"`, in a target dir of its own.
pub fn build_edited(package: &str, version: &str, tag: &str, edits: &[(&str, &str)]) -> PathBuf {
    build_edited_in(Profile::Debug, package, version, tag, edits)
}

/// [`build_edited`] with `profile`'s optimizations (benchmarks of release libraries).
pub fn build_edited_in(
    profile: Profile,
    package: &str,
    version: &str,
    tag: &str,
    edits: &[(&str, &str)],
) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> =
        OnceLock::new();
    let release = profile == Profile::Release;
    let key = format!(
        "{package}@{version}{tag}{}",
        if release { "-release" } else { "" }
    );
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(&key) {
        return p.clone();
    }
    let abort = tag == "panic-abort";
    let root = target_dir().join("plg-variants").join(&key);
    std::fs::create_dir_all(root.join("src")).unwrap();
    let src = plugin_crate_dir(package);
    let mut source = std::fs::read_to_string(src.join("src/lib.rs")).expect("plugin source");
    for (from, to) in edits {
        assert!(source.contains(from), "{package}'s source has no `{from}`");
        source = source.replace(from, to);
    }
    // Written every time: variants share a target dir, and cargo would call a variant built
    // before "fresh" and leave the last-built variant's library in place.
    std::fs::write(root.join("src/lib.rs"), &source).unwrap();
    let api = workspace_root().join("plugin-api");
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{package}\"\nversion = \"{version}\"\nedition = \"2021\"\npublish = false\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nplg-api = {{ path = {:?} }}\n\n[workspace]\n{}",
            api.display().to_string(),
            if abort { "\n[profile.dev]\npanic = \"abort\"\n" } else { "" }
        ),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let variants_target =
        target_dir()
            .join("plg-variants")
            .join(if abort { "target-abort" } else { "target" });
    let status = Command::new(cargo)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &variants_target)
        .args(["build", "--quiet"])
        .args(release.then_some("--release"))
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "building {key} failed");
    let lib = variants_target
        .join(if release { "release" } else { "debug" })
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

/// A smart-HTTP git server on 127.0.0.1 for tests: `git http-backend` as a CGI behind a tiny
/// HTTP/1.1 front that requires Basic auth for `user:password`. It serves the bare
/// repositories under `root` and stops when dropped. Loopback only; one request at a time.
pub struct GitHttpServer {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitHttpServer {
    /// Serves `root` (a directory of bare repositories), requiring `user:password`.
    pub fn start(root: &Path, user: &str, password: &str) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let (root, flag) = (root.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            // Bounded: a test server never outlives ten minutes.
            while !flag.load(Ordering::Relaxed) && started.elapsed().as_secs() < 600 {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = serve_one(stream, &root, &expected);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        GitHttpServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://USERINFO127.0.0.1:PORT/REPO`, with `userinfo` such as `alice:S3CRET@` or empty.
    pub fn url(&self, userinfo: &str, repo: &str) -> String {
        format!("http://{userinfo}{}/{repo}", self.addr)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Answers one HTTP request on `stream` by running `git http-backend`.
fn serve_one(stream: std::net::TcpStream, root: &Path, expected_auth: &str) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = std::collections::HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut out = stream;
    if headers.get("authorization").map(String::as_str) != Some(expected_auth) {
        out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"plg\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    }
    let mut body = Vec::new();
    if let Some(len) = headers.get("content-length") {
        let len: usize = len.parse().unwrap_or(0);
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut child = Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env(
            "CONTENT_TYPE",
            headers.get("content-type").cloned().unwrap_or_default(),
        )
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", "test")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env(
            "HTTP_CONTENT_ENCODING",
            headers.get("content-encoding").cloned().unwrap_or_default(),
        )
        .env(
            "GIT_PROTOCOL",
            headers.get("git-protocol").cloned().unwrap_or_default(),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("stdin").write_all(&body)?;
    let cgi = child.wait_with_output()?.stdout;
    let split = cgi
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| cgi.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        out.write_all(b"HTTP/1.1 500 Bad CGI\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    };
    let head = String::from_utf8_lossy(&cgi[..end]).into_owned();
    let mut status = "200 OK".to_owned();
    let mut response = Vec::new();
    for h in head.lines() {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_owned(),
            _ => {
                response.extend_from_slice(h.as_bytes());
                response.extend_from_slice(b"\r\n");
            }
        }
    }
    let payload = &cgi[end + sep..];
    out.write_all(format!("HTTP/1.1 {status}\r\n").as_bytes())?;
    out.write_all(&response)?;
    out.write_all(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            payload.len()
        )
        .as_bytes(),
    )?;
    out.write_all(payload)?;
    out.flush()
}

// --- a later plg-api, for the ABI forward-compatibility tests ----------------------------------

/// Builds `package` from a generated workspace that stands for a later plg release: a copy
/// of `plugin-api` (version 0.1.1) whose `PluginModule` has one more optional entry point,
/// `appended`, after the `last_prefix_field`; a copy of `loader` built against it, which
/// prints `appended entry point present: BOOL` to stderr for every library it opens; and
/// two crates on top. Returns the artifact:
///
/// - `"later-hello"`: the `hello` sample (named `later-hello`) built against the later
///   plg-api, a cdylib;
/// - `"plg-later-host"`: a host binary built with the later plg-loader. `HOST DIR NAME`
///   loads every plugin in `DIR` (exit 4 and each failure on stderr if any fails), runs
///   `NAME` with `name=Later`, prints the greeting and then `unmapped: …` for the unload.
///
/// The workspace lives under the target directory with a target dir of its own; it builds
/// offline from a copy of the workspace's Cargo.lock. Built once per process per package.
pub fn build_later_api(package: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static BUILT: OnceLock<std::sync::Mutex<std::collections::HashMap<String, PathBuf>>> =
        OnceLock::new();
    let _serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(package) {
        return p.clone();
    }
    let root = target_dir().join("plg-later-api");
    let ws = root.join("ws");
    write_later_workspace(&ws);
    let target = root.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&ws)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--offline", "-p", package])
        .status()
        .expect("cannot run cargo");
    assert!(
        status.success(),
        "building {package} of the later plg-api failed"
    );
    let artifact = target.join("debug").join(match package {
        "plg-later-host" => format!("plg-later-host{}", std::env::consts::EXE_SUFFIX),
        other => library_file_name(other),
    });
    assert!(artifact.is_file(), "{} was not built", artifact.display());
    built.insert(package.to_owned(), artifact.clone());
    artifact
}

/// Builds `tests/frozen-abi/frozen-hello`: a plugin built against the frozen copy of
/// plg-api in `tests/frozen-abi/vendor/plg-api`, as it stood at module revision 1 (before the
/// hot-upgrade entry points were appended). Its own workspace and lock file, built offline into
/// a target dir of its own. Returns the library. Built once per process.
pub fn build_frozen_abi_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let ws = workspace_root().join("tests/frozen-abi");
            let target = target_dir().join("plg-frozen-abi");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(&ws)
                .env("CARGO_TARGET_DIR", &target)
                .args([
                    "build",
                    "--quiet",
                    "--offline",
                    "--locked",
                    "-p",
                    "frozen-hello",
                ])
                .status()
                .expect("cannot run cargo");
            assert!(status.success(), "building tests/frozen-abi failed");
            let lib = target.join("debug").join(library_file_name("frozen-hello"));
            assert!(lib.is_file(), "{} was not built", lib.display());
            lib
        })
        .clone()
}

/// Writes the later-plg workspace of [`build_later_api`] into `ws` (files rewritten only when
/// they change, so cargo rebuilds only what did).
fn write_later_workspace(ws: &Path) {
    let root = workspace_root();
    let patch = |text: String, from: &str, to: &str, what: &str| -> String {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the later-plg-api patch no longer applies ({what}): update plg_tests::build_later_api"
        );
        text.replacen(from, to, 1)
    };
    // The patched files are written below, once: rewriting them twice would make cargo
    // rebuild the copies every run.
    let patched = [
        root.join("plugin-api/src/lib.rs"),
        root.join("plugin-api/src/module.rs"),
        root.join("loader/src/runtime/ffi.rs"),
    ];
    copy_tree(
        &root.join("plugin-api/src"),
        &ws.join("plugin-api/src"),
        &patched,
    );
    copy_tree(&root.join("loader/src"), &ws.join("loader/src"), &patched);
    // plg-loader names plg-protocol (an optional dependency): cargo reads its manifest even
    // when the feature is off.
    copy_tree(&root.join("protocol"), &ws.join("protocol"), &[]);

    let members = "members = [\"plugin-api\", \"loader\", \"protocol\", \"host\", \"later-hello\"]";
    let mut cargo_toml = String::new();
    let mut in_list = false;
    for line in std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .lines()
    {
        if line.starts_with("exclude") {
            continue;
        }
        if line.starts_with("members") {
            in_list = !line.contains(']');
            cargo_toml.push_str(members);
            cargo_toml.push('\n');
            continue;
        }
        if in_list {
            in_list = !line.contains(']');
            continue;
        }
        cargo_toml.push_str(line);
        cargo_toml.push('\n');
    }
    write_if_changed(&ws.join("Cargo.toml"), &cargo_toml);
    if !ws.join("Cargo.lock").is_file() {
        std::fs::copy(root.join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();
    }

    // plg-api 0.1.1: one more optional entry point appended to the module.
    let api_toml = std::fs::read_to_string(root.join("plugin-api/Cargo.toml")).unwrap();
    let api_toml = patch(
        api_toml,
        "\nversion.workspace = true",
        "\nversion = \"0.1.1\"",
        "plg-api version",
    );
    write_if_changed(&ws.join("plugin-api/Cargo.toml"), &api_toml);
    let lib = std::fs::read_to_string(root.join("plugin-api/src/lib.rs")).unwrap();
    write_if_changed(&ws.join("plugin-api/src/lib.rs"), &lib);
    let module = std::fs::read_to_string(root.join("plugin-api/src/module.rs")).unwrap();
    let module = patch(
        module,
        "    pub set_router: Option<extern \"C\" fn(CallRouter)>,\n}",
        "    pub set_router: Option<extern \"C\" fn(CallRouter)>,\n    \
         /// Appended by a later plg-api: optional for hosts.\n    \
         pub appended: Option<extern \"C\" fn(bool)>,\n}",
        "PluginModule's last field",
    );
    let module = patch(
        module,
        "                    set_router: ::core::option::Option::Some(__plg::set_router),\n",
        "                    set_router: ::core::option::Option::Some(__plg::set_router),\n                    appended: None,\n",
        "export_plugin!'s module",
    );
    write_if_changed(&ws.join("plugin-api/src/module.rs"), &module);

    // plg-loader, built against it, says whether each library has the appended field.
    let loader_toml = std::fs::read_to_string(root.join("loader/Cargo.toml")).unwrap();
    let loader_toml = match loader_toml.find("[dev-dependencies]") {
        Some(i) => loader_toml[..i].to_owned(),
        None => loader_toml,
    };
    write_if_changed(&ws.join("loader/Cargo.toml"), &loader_toml);
    let ffi = std::fs::read_to_string(root.join("loader/src/runtime/ffi.rs")).unwrap();
    let ffi = patch(
        ffi,
        "        let module = decl.module;\n",
        "        let module = decl.module;\n        eprintln!(\"appended entry point present: {}\", module.appended().is_some());\n",
        "the loader's module read",
    );
    write_if_changed(&ws.join("loader/src/runtime/ffi.rs"), &ffi);

    std::fs::create_dir_all(ws.join("host/src")).unwrap();
    write_if_changed(
        &ws.join("host/Cargo.toml"),
        "[package]\nname = \"plg-later-host\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nplg-loader = { path = \"../loader\", default-features = false }\n",
    );
    write_if_changed(
        &ws.join("host/src/main.rs"),
        r#"//! A host built with a later plg-loader and plg-api.
use plg_loader::{Context, PluginManager};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("PLUGINS_DIR"));
    let name = args.next().expect("NAME");
    let manager = PluginManager::new(dir);
    let report = manager.load_all();
    for f in &report.failed {
        eprintln!("failed {}: {}", f.path.display(), f.error);
    }
    if !report.failed.is_empty() {
        std::process::exit(4);
    }
    let plugin = manager.get(&name).expect("loaded");
    let mut ctx = Context::new();
    ctx.set("name", "Later");
    plugin.execute(&mut ctx).expect("execute");
    println!("{}", ctx.get_str("greeting").expect("greeting"));
    for r in manager.unload(&name, None).expect("unload") {
        println!("unmapped: {:?}", r.unmapped);
    }
}
"#,
    );

    std::fs::create_dir_all(ws.join("later-hello/src")).unwrap();
    write_if_changed(
        &ws.join("later-hello/Cargo.toml"),
        "[package]\nname = \"later-hello\"\nversion = \"1.2.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nplg-api = { path = \"../plugin-api\" }\n",
    );
    write_if_changed(
        &ws.join("later-hello/src/lib.rs"),
        &std::fs::read_to_string(plugin_crate_dir("hello").join("src/lib.rs")).unwrap(),
    );
}

/// Copies the files under `from` to `to`, recursively, except those in `skip`, with their
/// modes; rewrites only the files that changed.
fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dest) = (e.path(), to.join(e.file_name()));
        if skip.contains(&src) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dest, skip);
        } else {
            let data = std::fs::read(&src).unwrap();
            if std::fs::read(&dest).ok().as_deref() != Some(&data[..]) {
                std::fs::write(&dest, data).unwrap();
            }
            // Keep the mode: an exec plugin's program stays executable.
            let mode = std::fs::metadata(&src).unwrap().permissions();
            std::fs::set_permissions(&dest, mode).unwrap();
        }
    }
}

impl TempPluginsDir {
    /// Replaces the library in the staged version dir `dir` with `library`, the way a build
    /// tool or `plg install` does: written beside it under a temporary name, then renamed.
    pub fn replace_library(&self, dir: &Path, package: &str, library: &Path) {
        let file = dir.join(library_file_name(package));
        let partial = dir.join(".incoming.partial");
        std::fs::copy(library, &partial).unwrap();
        std::fs::rename(&partial, &file).unwrap();
    }
}
