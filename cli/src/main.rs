//! `plg`: scaffold, build, pack, install, list and run plg plugins.
//!
//! The binary is thin: it parses arguments (`args`), calls plg-loader (`commands`), and turns
//! results and errors into messages and exit codes (`output`, `failure`). Every byte of text
//! that came from a plugin, manifest, bundle or repository is escaped before it reaches the
//! terminal (`output`).
#![forbid(unsafe_code)]

mod args;
mod commands;
mod failure;
mod output;
mod progress;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use plg_loader::PluginsDir;

use crate::{
    commands::{build, bundle, dev, install, keys, list, new, run},
    failure::{Failure, EXIT_CODES},
    output::Output,
};

/// Load and run plg plugins.
#[derive(Parser)]
#[command(name = "plg", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

/// Options every command takes.
#[derive(Args)]
pub struct Global {
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

impl Global {
    /// The plugins directory: `--plugins-dir`, else [`PluginsDir::from_env`].
    pub fn plugins_dir(&self) -> Result<PluginsDir, Failure> {
        match &self.plugins_dir {
            Some(d) => Ok(PluginsDir::new(d)),
            None => Ok(PluginsDir::from_env()?),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new plugin crate that builds as it is.
    New(new::NewArgs),
    /// Build a plugin crate (release) and stage it in the plugins directory.
    Build(build::BuildArgs),
    /// Watch a plugin crate: on every save, rebuild it, hot-upgrade it in this running host
    /// and execute it, printing the result and the time from save to result.
    Dev(dev::DevArgs),
    /// List the plugins in the plugins directory, with each one's status. Reads files only;
    /// `--check` also loads each library, in a child process.
    List(list::ListArgs),
    /// Load a plugin, execute it once, and print the resulting context as JSON.
    Run(run::RunArgs),
    /// Pack a plugin crate (built first) or a staged plugin directory into NAME-VERSION.plg.
    Pack(bundle::PackArgs),
    /// Show a bundle's manifest, entries, sizes, checksums and signature, installing nothing.
    Inspect(bundle::InspectArgs),
    /// Verify a .plg bundle (or a plugin crate / staged directory) and install it atomically.
    Install(install::InstallArgs),
    /// Remove an installed plugin (one version, or all).
    Uninstall(install::UninstallArgs),
    /// Create an ed25519 key pair for signing bundles: NAME.key (secret) and NAME.pub.
    Keygen(keys::KeygenArgs),
    /// Trust a public key (NAME.pub) for installs into the plugins directory.
    Trust(keys::TrustArgs),
    /// Checks that one plugin loads, in this process (what `list --check` runs in a child).
    #[command(name = "__check-load", hide = true)]
    CheckLoad(list::CheckLoadArgs),
}

fn main() -> ExitCode {
    // While plg has one thread: then the registration costs nothing.
    plg_loader::prepare_process();
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let out = Output::new(cli.global.json);
    match run(&cli.global, cli.command, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            out.error(&failure);
            ExitCode::from(failure.code)
        }
    }
}

fn run(g: &Global, command: Cmd, out: &Output) -> Result<(), Failure> {
    let no_plugins_dir = match &command {
        Cmd::New(_) => Some("new"),
        Cmd::Pack(_) => Some("pack"),
        Cmd::Keygen(_) => Some("keygen"),
        _ => None,
    };
    if let (Some(cmd), Some(_)) = (no_plugins_dir, &g.plugins_dir) {
        return Err(Failure::new(
            2,
            format!("--plugins-dir does not apply to `plg {cmd}`, which writes no plugins directory; leave it out"),
        ));
    }
    match command {
        Cmd::New(a) => new::run(a, out),
        Cmd::Build(a) => build::run(g, a, out),
        Cmd::Dev(a) => dev::run(g, a, out),
        Cmd::List(a) => list::run(g, a, out),
        Cmd::Run(a) => run::run(g, a, out),
        Cmd::Pack(a) => bundle::pack(a, out),
        Cmd::Inspect(a) => bundle::inspect(g, a, out),
        Cmd::Install(a) => install::install(g, a, out),
        Cmd::Uninstall(a) => install::uninstall(g, a, out),
        Cmd::Keygen(a) => keys::keygen(a, out),
        Cmd::Trust(a) => keys::trust(g, a, out),
        Cmd::CheckLoad(a) => list::check_load(g, a, out),
    }
}

/// Logs go to stderr. Plugin log lines arrive escaped: plg-loader escapes them before they
/// reach `tracing`.
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

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
