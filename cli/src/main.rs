//! `plg`: scaffold, build, list and run plg plugins.
//!
//! The binary is thin: it parses arguments, calls plg-loader, and turns errors into
//! messages and exit codes (see `EXIT CODES` in `plg --help`).
#![forbid(unsafe_code)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use plg_loader::{
    build::{build_crate, stage, BuildError, BuildOptions},
    bundle::{pack_library, Bundle, BundleError, Limits, Packed},
    git::{fetch_and_build, GitError, GitOptions, GitProgress, Phase},
    install::{install_file, install_library, uninstall, InstallError, InstallOptions},
    keys::{generate_key, read_public_key, read_signing_key, write_key_pair, Keyring},
    origin::library_of,
    scaffold::{scaffold, PlgApiSource},
    Context, ExecError, LoadError, PluginManager, PluginsDir, Value, ValueMap,
};
use serde::Serialize;

const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  an error not listed below
  2  bad command-line arguments
  3  the plugin was not found
  4  the plugin failed to load (bad manifest, library, ABI or hook)
  5  the plugin's execute failed (error, panic, cancellation, deadline)
  6  building failed
  7  the bundle is invalid, corrupt or hostile
  8  the bundle's signature is missing or not trusted
  9  fetching or building a git repository failed";

/// Load and run plg plugins.
#[derive(Parser)]
#[command(name = "plg", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args)]
struct Global {
    /// The plugins directory [default: $PLG_PLUGINS_DIR, else the per-user data directory,
    /// e.g. ~/.local/share/plg/plugins on Linux]
    #[arg(long, global = true, value_name = "DIR")]
    plugins_dir: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Show debug logs (plugins' and plg's). `RUST_LOG` works too.
    #[arg(long, short, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new plugin crate that builds as it is.
    New(NewArgs),
    /// Build a plugin crate (release) and stage it in the plugins directory.
    Build(BuildArgs),
    /// List the plugins in the plugins directory, with each one's status.
    List,
    /// Load a plugin, execute it once, and print the resulting context as JSON.
    Run(RunArgs),
    /// Pack a plugin crate (built first) or a staged plugin directory into NAME-VERSION.plg.
    Pack(PackArgs),
    /// Show a bundle's manifest, entries, sizes, checksums and signature, installing nothing.
    Inspect(InspectArgs),
    /// Verify a .plg bundle (or a plugin crate / staged directory) and install it atomically.
    Install(InstallArgs),
    /// Remove an installed plugin (one version, or all).
    Uninstall(UninstallArgs),
    /// Create an ed25519 key pair for signing bundles: NAME.key (secret) and NAME.pub.
    Keygen(KeygenArgs),
    /// Trust a public key (NAME.pub) for installs into the plugins directory.
    Trust(TrustArgs),
}

#[derive(Args)]
struct PackArgs {
    /// A plugin crate (Cargo.toml + plugin.json) or a staged plugin directory [default: .].
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the bundle [default: ./NAME-VERSION.plg].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Sign the bundle with this secret key (from `plg keygen`).
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
}

#[derive(Args)]
struct InspectArgs {
    /// The bundle.
    file: PathBuf,
}

#[derive(Args)]
struct InstallArgs {
    /// A .plg bundle, a plugin crate, a staged plugin directory, or a git repository URL
    /// with an optional `#REV` (branch, tag or commit). Building a repository runs its code.
    source: String,
    /// With a git URL: the plugin crate's directory inside the repository.
    #[arg(long, value_name = "DIR")]
    subdir: Option<PathBuf>,
    /// With a git URL: also allow this URL scheme (https and ssh are allowed; `file` must be
    /// allowed explicitly). Repeatable.
    #[arg(long, value_name = "SCHEME")]
    allow_scheme: Vec<String>,
    /// With a git URL: also fetch submodules.
    #[arg(long)]
    submodules: bool,
    /// Replace an installed plugin of the same name and version.
    #[arg(long)]
    force: bool,
    /// Refuse bundles that are unsigned or signed by a key not in the keyring. Also turned on
    /// by `{"require_signature": true}` in PLUGINS_DIR/.plg/config.json.
    #[arg(long)]
    require_signature: bool,
}

#[derive(Args)]
struct UninstallArgs {
    /// NAME or NAME@VERSION.
    plugin: String,
}

#[derive(Args)]
struct KeygenArgs {
    /// The key pair's path prefix: writes PREFIX.key and PREFIX.pub.
    prefix: PathBuf,
}

#[derive(Args)]
struct TrustArgs {
    /// The public key file (from `plg keygen`).
    public_key: PathBuf,
    /// The name to list it under [default: the file's stem].
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args)]
struct NewArgs {
    /// The plugin's name: lowercase letters, digits, `_` and `-`.
    name: String,
    /// Where to create the crate [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// The plg checkout's `plugin-api` directory. Default: $PLG_API_PATH, else the checkout
    /// this `plg` was built from.
    #[arg(long, value_name = "DIR", env = "PLG_API_PATH")]
    plg_api: Option<PathBuf>,
}

#[derive(Args)]
struct BuildArgs {
    /// The plugin crate [default: .].
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Build in debug mode instead of release.
    #[arg(long)]
    debug: bool,
}

#[derive(Args)]
struct RunArgs {
    /// The plugin, optionally with a semver requirement: `hello`, `hello@^1.2`, `hello@=1.2.0`.
    plugin: String,
    /// Set a context value. VALUE is read as JSON if it parses (`n=5`, `ok=true`,
    /// `l=[1,2]`), otherwise as a string (`name=Ada`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Read the initial context from a JSON object file (`-` for stdin). `--set` applies
    /// on top.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// The operation label passed to the plugin.
    #[arg(long)]
    label: Option<String>,
    /// Cancel the call after this many seconds (the plugin must poll `is_cancelled`).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
}

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = if error.downcast_ref::<ExecError>().is_some() {
            5
        } else if let Some(e) = error.downcast_ref::<LoadError>() {
            match e {
                LoadError::NotInstalled { .. } | LoadError::Lookup(_) => 3,
                _ => 4,
            }
        } else if let Some(e) = error.downcast_ref::<BuildError>() {
            match e {
                BuildError::Stage(_) => 4,
                _ => 6,
            }
        } else if error.downcast_ref::<GitError>().is_some() {
            9
        } else if error.downcast_ref::<BundleError>().is_some() {
            7
        } else if let Some(e) = error.downcast_ref::<InstallError>() {
            match e {
                InstallError::Bundle(_) => 7,
                InstallError::Load(_) => 4,
                InstallError::Unsigned { .. } | InstallError::UnknownKey { .. } => 8,
                InstallError::NotInstalled { .. } => 3,
                _ => 1,
            }
        } else {
            1
        };
        Failure { code, error }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json {
                let msg =
                    serde_json::json!({ "error": format!("{:#}", f.error), "exit_code": f.code });
                eprintln!("{msg}");
            } else {
                eprintln!("error: {:#}", f.error);
            }
            ExitCode::from(f.code)
        }
    }
}

fn init_logging(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .try_init();
}

fn plugins_dir(global: &Global) -> anyhow::Result<PluginsDir> {
    match &global.plugins_dir {
        Some(d) => Ok(PluginsDir::new(d)),
        None => Ok(PluginsDir::from_env()?),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let g = &cli.global;
    match cli.command {
        Cmd::New(a) => cmd_new(g, a),
        Cmd::Build(a) => cmd_build(g, a),
        Cmd::List => cmd_list(g),
        Cmd::Run(a) => cmd_run(g, a),
        Cmd::Pack(a) => cmd_pack(g, a),
        Cmd::Inspect(a) => cmd_inspect(g, a),
        Cmd::Install(a) => cmd_install(g, a),
        Cmd::Uninstall(a) => cmd_uninstall(g, a),
        Cmd::Keygen(a) => cmd_keygen(g, a),
        Cmd::Trust(a) => cmd_trust(g, a),
    }
}

/// The manifest and library of a plugin crate (building it) or a staged plugin directory.
fn local_library(dir: &Path) -> Result<(plg_loader::Manifest, PathBuf), Failure> {
    if dir.join("Cargo.toml").is_file() {
        let built = build_crate(dir, &BuildOptions::default())?;
        Ok((built.manifest, built.library))
    } else {
        Ok(library_of(dir)?)
    }
}

/// Packs a crate (building it) or a staged directory into memory.
fn pack_source(
    dir: &Path,
    key: Option<&plg_loader::bundle::SigningKey>,
) -> Result<Packed, Failure> {
    let (manifest, library) = local_library(dir)?;
    Ok(pack_library(&manifest, &library, key)?)
}

fn cmd_pack(g: &Global, a: PackArgs) -> Result<(), Failure> {
    let key = a.sign.as_deref().map(read_signing_key).transpose()?;
    let packed = pack_source(&a.dir, key.as_ref())?;
    let out = a
        .output
        .unwrap_or_else(|| PathBuf::from(packed.file_name()));
    std::fs::write(&out, &packed.bytes).with_context(|| format!("writing {}", out.display()))?;
    if g.json {
        print_json(&serde_json::json!({
            "name": packed.manifest.name,
            "version": packed.manifest.version.to_string(),
            "bundle": out,
            "bytes": packed.bytes.len(),
            "signed": key.is_some(),
        }))
    } else {
        println!(
            "packed {} into {} ({} bytes{})",
            packed.manifest.id(),
            out.display(),
            packed.bytes.len(),
            if key.is_some() { ", signed" } else { "" }
        );
        Ok(())
    }
}

fn cmd_inspect(g: &Global, a: InspectArgs) -> Result<(), Failure> {
    let bundle = Bundle::read(&a.file, &Limits::default())?;
    let keyring = match plugins_dir(g) {
        Ok(dir) => Keyring::load(&dir).unwrap_or_default(),
        Err(_) => Keyring::default(),
    };
    let signature = bundle.signature().map(|s| {
        let trusted = keyring.trusts(&s.public_key).map(str::to_owned);
        serde_json::json!({ "public_key": s.key_hex(), "valid": true, "trusted_as": trusted })
    });
    if g.json {
        let entries: Vec<_> = bundle
            .entries()
            .iter()
            .map(
                |e| serde_json::json!({ "name": e.name, "size": e.data.len(), "sha256": e.sha256 }),
            )
            .collect();
        let manifest: serde_json::Value = serde_json::from_str(&bundle.manifest().to_json())?;
        return print_json(&serde_json::json!({
            "bundle": a.file,
            "compressed_size": bundle.compressed_size(),
            "manifest": manifest,
            "entries": entries,
            "signature": signature,
        }));
    }
    let m = bundle.manifest();
    println!(
        "{} ({} bytes compressed)",
        a.file.display(),
        bundle.compressed_size()
    );
    println!("  plugin:      {}", m.id());
    // Text from the bundle is escaped: control characters could forge or hide lines.
    if let Some(d) = &m.description {
        println!("  description: {}", d.escape_debug());
    }
    if !m.maintainers.is_empty() {
        println!("  maintainers: {}", m.maintainers.join(", ").escape_debug());
    }
    println!("  library:     {}", bundle.library_name());
    println!("  entries:");
    for e in bundle.entries() {
        println!(
            "    {:<28} {:>10} bytes  sha256 {}",
            e.name,
            e.data.len(),
            e.sha256
        );
    }
    match bundle.signature() {
        None => println!("  signature:   none (unsigned)"),
        Some(s) => match keyring.trusts(&s.public_key) {
            Some(name) => println!(
                "  signature:   valid, by trusted key `{name}` ({})",
                s.key_hex()
            ),
            None => println!(
                "  signature:   valid, by key {} (not in the keyring)",
                s.key_hex()
            ),
        },
    }
    Ok(())
}

/// `true` for `scheme://…` and `user@host:path` sources that are not local paths.
fn looks_like_git_url(source: &str) -> bool {
    if Path::new(source).exists() {
        return false;
    }
    source.contains("://")
        || source
            .split_once(':')
            .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'))
}

/// Draws git progress on a terminal; silent otherwise.
struct CliProgress(indicatif::ProgressBar);

impl CliProgress {
    fn new(visible: bool) -> Self {
        let bar = if visible {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        CliProgress(bar)
    }
}

impl GitProgress for CliProgress {
    fn phase(&self, phase: Phase) {
        let msg = match phase {
            Phase::Resolve => "resolving the revision",
            Phase::Clone => "cloning",
            Phase::Build => "building with cargo (the repository's build scripts run now)",
            Phase::Install => "verifying and installing",
            _ => "done",
        };
        self.0.set_message(msg);
        if phase == Phase::Clone {
            self.0.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {pos}/{len} objects",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
        } else {
            self.0
                .set_style(indicatif::ProgressStyle::default_spinner());
        }
    }
    fn transfer(&self, received: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(received as u64);
    }
}

fn install_from_git(
    g: &Global,
    a: &InstallArgs,
    dir: &PluginsDir,
    progress: &CliProgress,
) -> Result<(plg_loader::Manifest, PathBuf), Failure> {
    let (url, rev) = match a.source.rsplit_once('#') {
        Some((u, r)) if !r.is_empty() => (u, Some(r)),
        _ => (a.source.as_str(), None),
    };
    let mut opts = GitOptions::for_plugins_dir(dir)?;
    opts.allowed_schemes.extend(a.allow_scheme.iter().cloned());
    opts.fetch_submodules = a.submodules;
    // Refuse a URL before warning about building it.
    plg_loader::git::check_url(url, &opts.allowed_schemes)?;
    eprintln!(
        "warning: building {url} runs code from that repository (build.rs, proc macros, \
         .cargo/config.toml) with your permissions; install only repositories you trust"
    );
    let built = fetch_and_build(url, rev, a.subdir.as_deref(), &opts, progress)?;
    if !g.json {
        progress.0.suspend(|| {
            eprintln!(
                "{} {} at commit {}",
                if built.reused {
                    "reusing the cached build of"
                } else {
                    "built"
                },
                built.manifest.id(),
                built.provenance.commit
            )
        });
    }
    progress.phase(Phase::Install);
    let lib = match &built.manifest.source {
        plg_loader::Source::LocalSo { path } => built.dir.join(path),
        plg_loader::Source::RemoteGit { .. } => unreachable!("builds are local"),
    };
    Ok((built.manifest, lib))
}

fn cmd_install(g: &Global, a: InstallArgs) -> Result<(), Failure> {
    let dir = plugins_dir(g)?;
    let opts = InstallOptions {
        force: a.force,
        require_signature: a.require_signature,
        ..InstallOptions::default()
    };
    let source = PathBuf::from(&a.source);
    let installed = if looks_like_git_url(&a.source) {
        let progress =
            CliProgress::new(!g.json && std::io::IsTerminal::is_terminal(&std::io::stderr()));
        let result = install_from_git(g, &a, &dir, &progress)
            .and_then(|(m, lib)| Ok(install_library(&m, &lib, &dir, &opts)?));
        progress.0.finish_and_clear();
        result?
    } else if source.is_dir() {
        let (manifest, library) = local_library(&source)?;
        install_library(&manifest, &library, &dir, &opts)?
    } else {
        install_file(&source, &dir, &opts)?
    };
    if g.json {
        print_json(&serde_json::json!({
            "name": installed.manifest.name,
            "version": installed.manifest.version.to_string(),
            "dir": installed.dir,
            "signed_by": installed.signed_by,
            "replaced": installed.replaced,
        }))
    } else {
        println!(
            "installed {} in {}{}{}",
            installed.manifest.id(),
            installed.dir.display(),
            installed
                .signed_by
                .map(|k| format!(" (signed by `{k}`)"))
                .unwrap_or_default(),
            if installed.replaced {
                " (replaced the previous copy)"
            } else {
                ""
            }
        );
        Ok(())
    }
}

fn cmd_uninstall(g: &Global, a: UninstallArgs) -> Result<(), Failure> {
    let dir = plugins_dir(g)?;
    let (name, version) = match a.plugin.split_once('@') {
        Some((n, v)) => (
            n,
            Some(
                plg_loader::semver::Version::parse(v)
                    .with_context(|| format!("`{v}` is not a version; write NAME@1.2.3"))?,
            ),
        ),
        None => (a.plugin.as_str(), None),
    };
    let removed = uninstall(&dir, name, version.as_ref())?;
    if g.json {
        print_json(&serde_json::json!({ "removed": removed }))
    } else {
        for r in removed {
            println!("removed {}", r.display());
        }
        Ok(())
    }
}

fn cmd_keygen(g: &Global, a: KeygenArgs) -> Result<(), Failure> {
    let key = generate_key();
    let (secret, public) = write_key_pair(&key, &a.prefix)?;
    if g.json {
        print_json(&serde_json::json!({ "secret_key": secret, "public_key": public }))
    } else {
        println!("secret key: {} (keep it private)", secret.display());
        println!(
            "public key: {} (trust it with `plg trust {}`)",
            public.display(),
            public.display()
        );
        Ok(())
    }
}

fn cmd_trust(g: &Global, a: TrustArgs) -> Result<(), Failure> {
    let dir = plugins_dir(g)?;
    let key = read_public_key(&a.public_key)?;
    let name = match a.name {
        Some(n) => n,
        None => a
            .public_key
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "key".into()),
    };
    Keyring::add(&dir, &name, &key)?;
    if g.json {
        print_json(&serde_json::json!({ "name": name, "keyring": dir.keyring_file() }))
    } else {
        println!("trusted key `{name}` in {}", dir.keyring_file().display());
        Ok(())
    }
}

fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn cmd_new(g: &Global, a: NewArgs) -> Result<(), Failure> {
    let dir = a.path.unwrap_or_else(|| PathBuf::from(&a.name));
    let api = match a.plg_api {
        Some(p) => p,
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api");
            if !built_from.join("Cargo.toml").is_file() {
                return Err(anyhow::anyhow!(
                    "cannot find plg-api: pass --plg-api PATH_TO_CHECKOUT/plugin-api (or set PLG_API_PATH)"
                )
                .into());
            }
            built_from
        }
    };
    let api = api
        .canonicalize()
        .with_context(|| format!("--plg-api {}", api.display()))?;
    let dir = scaffold(&a.name, &dir, &PlgApiSource::Path(api))?;
    if g.json {
        print_json(&serde_json::json!({ "name": a.name, "path": dir }))?;
    } else {
        println!("created plugin crate `{}` in {}", a.name, dir.display());
        println!(
            "next: plg build {}  &&  plg run {} --set name=you",
            dir.display(),
            a.name
        );
    }
    Ok(())
}

fn cmd_build(g: &Global, a: BuildArgs) -> Result<(), Failure> {
    let opts = BuildOptions {
        release: !a.debug,
        ..BuildOptions::default()
    };
    let built = build_crate(&a.dir, &opts)?;
    let dest = stage(&built, &plugins_dir(g)?)?;
    if g.json {
        print_json(&serde_json::json!({
            "name": built.manifest.name,
            "version": built.manifest.version.to_string(),
            "library": built.library,
            "staged": dest,
        }))?;
    } else {
        println!("staged {} in {}", built.manifest.id(), dest.display());
    }
    Ok(())
}

#[derive(Serialize)]
struct ListRow {
    name: Option<String>,
    version: Option<String>,
    status: &'static str,
    error: Option<String>,
    manifest: PathBuf,
}

fn cmd_list(g: &Global) -> Result<(), Failure> {
    let dir = plugins_dir(g)?;
    let manager = PluginManager::new(&dir);
    let rows: Vec<ListRow> = manager
        .scan()?
        .into_iter()
        .map(|e| ListRow {
            name: e.manifest.as_ref().map(|m| m.name.clone()),
            version: e.manifest.as_ref().map(|m| m.version.to_string()),
            status: if e.status.is_ok() { "ok" } else { "error" },
            error: e.status.err().map(|e| e.to_string()),
            manifest: e.manifest_path,
        })
        .collect();
    if g.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!(
            "no plugins in {}; build one with `plg build DIR` (see `plg new --help`)",
            dir.path().display()
        );
        return Ok(());
    }
    for r in &rows {
        match (&r.name, &r.version, &r.error) {
            (Some(n), Some(v), None) => println!("{n:<24} {v:<12} ok"),
            (Some(n), Some(v), Some(e)) => println!("{n:<24} {v:<12} error: {e}"),
            (_, _, e) => println!(
                "{:<24} {:<12} error: {}",
                "?",
                "?",
                e.as_deref().unwrap_or("invalid manifest")
            ),
        }
    }
    Ok(())
}

/// Parses `--set KEY=VALUE`: JSON if it parses, else a string.
fn parse_set(s: &str) -> anyhow::Result<(String, Value)> {
    let Some((k, v)) = s.split_once('=') else {
        bail!("--set {s:?}: expected KEY=VALUE");
    };
    if k.is_empty() {
        bail!("--set {s:?}: the key is empty");
    }
    let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::from(v));
    Ok((k.to_owned(), value))
}

fn read_input(path: &Path) -> anyhow::Result<ValueMap> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading --input from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading --input {}", path.display()))?
    };
    serde_json::from_str(&text)
        .with_context(|| format!("--input {}: expected a JSON object", path.display()))
}

fn cmd_run(g: &Global, a: RunArgs) -> Result<(), Failure> {
    let (name, req) = match a.plugin.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (a.plugin.as_str(), None),
    };
    let mut values = match &a.input {
        Some(p) => read_input(p)?,
        None => ValueMap::new(),
    };
    for s in &a.set {
        let (k, v) = parse_set(s)?;
        values.insert(k, v);
    }
    let manager = PluginManager::new(plugins_dir(g)?);
    let plugin = manager.load_matching(name, req)?;
    let mut ctx = Context::from_values(values);
    if let Some(label) = a.label {
        ctx.set_label(label);
    }
    if let Some(secs) = a.timeout {
        let d = Duration::try_from_secs_f64(secs)
            .map_err(|_| anyhow::anyhow!("--timeout {secs}: expected a number of seconds"))?;
        ctx.set_timeout(d);
    }
    plugin.execute(&mut ctx)?;
    print_json(ctx.values())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_are_json_when_they_parse_and_strings_otherwise() {
        assert_eq!(parse_set("n=5").unwrap(), ("n".into(), Value::Int(5)));
        assert_eq!(
            parse_set("s=Ada").unwrap(),
            ("s".into(), Value::from("Ada"))
        );
        assert_eq!(
            parse_set("s=\"5\"").unwrap(),
            ("s".into(), Value::from("5"))
        );
        assert_eq!(parse_set("e=").unwrap(), ("e".into(), Value::from("")));
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("=x").is_err());
    }

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
