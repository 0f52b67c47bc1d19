//! `plg install` and `plg uninstall`.

use std::path::PathBuf;

use clap::Args;
use plg_loader::{
    build::BuildOptions,
    git::{fetch_and_build, GitOptions, GitProgress, Phase},
    install::{
        admits_unsigned, install_file, install_library, uninstall as remove, InstallOptions,
        Installed,
    },
    origin::{library_in, GitRef, Origin},
    Manifest, PluginsDir,
};

use crate::{args::PluginVersion, failure::Failure, output::Output, progress::CliProgress, Global};

#[derive(Args)]
pub struct InstallArgs {
    /// A .plg bundle, a plugin crate, a staged plugin directory, or a git repository URL
    /// with an optional `#REV` (branch, tag or commit). Building a repository runs its code.
    source: Origin,
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
pub struct UninstallArgs {
    /// NAME or NAME@VERSION.
    plugin: PluginVersion,
}

pub fn install(g: &Global, a: InstallArgs, out: &Output) -> Result<(), Failure> {
    let dir = g.plugins_dir()?;
    let opts = InstallOptions {
        force: a.force,
        require_signature: a.require_signature,
        ..InstallOptions::default()
    };
    let installed = match &a.source {
        Origin::Bundle(path) => install_file(path, &dir, &opts)?,
        Origin::Dir(path) => {
            // Refuse before building: an unsigned build could never be placed here.
            admits_unsigned(path, &dir, &opts)?;
            // A crate from elsewhere builds in its own target/, not the shared directory
            // where its build scripts could reach other plugins' build output.
            let isolated = BuildOptions {
                target_dir: None,
                ..BuildOptions::default()
            };
            let (manifest, library) = library_in(path, &isolated)?;
            install_library(&manifest, &library, &dir, &opts)?
        }
        Origin::Git(git) => {
            // Refuse before cloning and building (which runs the repository's code).
            admits_unsigned(std::path::Path::new(&git.to_string()), &dir, &opts)?;
            let visible = !out.is_json() && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let progress = CliProgress::new(visible);
            let result = build_from_git(git, &a, &dir, &progress, out).and_then(|(m, lib)| {
                progress.phase(Phase::Install);
                Ok(install_library(&m, &lib, &dir, &opts)?)
            });
            progress.finish();
            result?
        }
    };
    report(&installed, out)
}

/// Fetches and builds `git` in the plugins directory's git cache, after saying that building
/// runs the repository's code. Returns the built manifest and library.
fn build_from_git(
    git: &GitRef,
    a: &InstallArgs,
    dir: &PluginsDir,
    progress: &CliProgress,
    out: &Output,
) -> Result<(Manifest, PathBuf), Failure> {
    let mut opts = GitOptions::for_plugins_dir(dir)?;
    opts.allowed_schemes.extend(a.allow_scheme.iter().cloned());
    opts.fetch_submodules = a.submodules;
    // Refuse a URL before warning about building it.
    opts.check_url(&git.url)?;
    // `GitRef`'s Display never shows credentials.
    out.note(format!(
        "warning: building {git} runs code from that repository (build.rs, proc macros, \
         .cargo/config.toml) with your permissions; install only repositories you trust"
    ));
    let built = fetch_and_build(
        &git.url,
        git.rev.as_deref(),
        a.subdir.as_deref(),
        &opts,
        progress,
    )?;
    if !out.is_json() {
        progress.suspend(|| {
            out.note(format!(
                "{} {} at commit {}",
                if built.reused {
                    "reusing the cached build of"
                } else {
                    "built"
                },
                built.manifest.id(),
                built.provenance.commit
            ))
        });
    }
    let library = built.library_path();
    Ok((built.manifest, library))
}

fn report(installed: &Installed, out: &Output) -> Result<(), Failure> {
    if out.is_json() {
        return out.json(&serde_json::json!({
            "name": installed.manifest.name,
            "version": installed.manifest.version.to_string(),
            "dir": installed.dir,
            "signed_by": installed.signed_by,
            "replaced": installed.replaced,
        }));
    }
    out.line(format!(
        "installed {} in {}{}{}",
        installed.manifest.id(),
        installed.dir.display(),
        installed
            .signed_by
            .as_ref()
            .map(|k| format!(" (signed by `{k}`)"))
            .unwrap_or_default(),
        if installed.replaced {
            " (replaced the previous copy)"
        } else {
            ""
        }
    ));
    Ok(())
}

pub fn uninstall(g: &Global, a: UninstallArgs, out: &Output) -> Result<(), Failure> {
    let dir = g.plugins_dir()?;
    let removed = remove(&dir, &a.plugin.name, a.plugin.version.as_ref())?;
    if out.is_json() {
        return out.json(&serde_json::json!({ "removed": removed }));
    }
    for r in removed {
        out.line(format!("removed {}", r.display()));
    }
    Ok(())
}
