//! Errors of calling, looking up and unloading loaded plugins.

use std::time::Duration;

use thiserror::Error;

/// A call to `execute` failed. The host and the other plugins keep running.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// The plugin returned an error.
    #[error("plugin {plugin} failed: {message}")]
    Failed {
        /// `name@version`.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin refused its input.
    #[error("plugin {plugin} refused its input: {message}")]
    InvalidInput {
        /// `name@version`.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin returned, but the context does not match its `output_schema`.
    #[error("plugin {plugin}: {message}")]
    InvalidOutput {
        /// `name@version`.
        plugin: String,
        /// What does not match, with JSON pointers.
        message: String,
    },
    /// The plugin panicked; the panic was caught inside the plugin.
    #[error("plugin {plugin} panicked: {message}")]
    Panicked {
        /// `name@version`.
        plugin: String,
        /// The panic message.
        message: String,
    },
    /// The plugin stopped because its context was cancelled or it is being unloaded.
    #[error("plugin {plugin} was cancelled")]
    Cancelled {
        /// `name@version`.
        plugin: String,
    },
    /// The plugin stopped because the context's deadline passed.
    #[error("plugin {plugin} stopped: its deadline passed")]
    DeadlineExceeded {
        /// `name@version`.
        plugin: String,
    },
    /// A host call hook refused the call; the plugin was not called.
    #[error("a call to plugin {plugin} was refused by the host's `{hook}` hook: {message}")]
    Rejected {
        /// `name@version`.
        plugin: String,
        /// The hook's name ([`CallHook::name`](crate::CallHook::name)).
        hook: String,
        /// Why.
        message: String,
    },
    /// The plugin was unloaded (or is being unloaded); load it again to call it.
    #[error("plugin {plugin} is unloaded; load it again to call it")]
    Unloaded {
        /// `name@version`.
        plugin: String,
    },
    /// The plugin's worker process died during the call (a crash, an abort, a stack
    /// overflow, an exit, or the kernel's OOM killer). The next call starts a new worker.
    #[error(
        "plugin {plugin}'s worker {status} during the call{}",
        stderr_hint(stderr)
    )]
    WorkerCrashed {
        /// `name@version`.
        plugin: String,
        /// How it ended: `was killed by signal 11 (SIGSEGV)`, `exited with code 0`.
        status: String,
        /// The last lines it wrote on stderr, escaped.
        stderr: String,
    },
    /// The worker crashed too often: calls fail at once until the plugin is reloaded.
    #[error("plugin {plugin}'s worker crashed {crashes} times within {window:?}; plg stopped restarting it. Fix the plugin, then reload it{}", stderr_hint(stderr))]
    WorkerFailed {
        /// `name@version`.
        plugin: String,
        /// The crashes counted.
        crashes: u32,
        /// Within this window.
        window: Duration,
        /// The last crash's stderr tail, escaped.
        stderr: String,
    },
    /// The worker could not be started again, or the host could not talk to it.
    #[error("plugin {plugin}'s worker: {message}")]
    Worker {
        /// `name@version`.
        plugin: String,
        /// What went wrong.
        message: String,
    },
}

fn stderr_hint(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; its stderr ended with:\n{stderr}")
    }
}

/// No loaded plugin answers a lookup.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No plugin of that name is loaded.
    #[error("no plugin named `{name}` is loaded{}", hint(available))]
    NotLoaded {
        /// The name asked for.
        name: String,
        /// The names that are loaded.
        available: Vec<String>,
    },
    /// Plugins of that name are loaded, but none matches the requirement.
    #[error("no loaded version of `{name}` matches `{requirement}` (loaded: {})", versions.join(", "))]
    NoMatch {
        /// The name.
        name: String,
        /// The requirement.
        requirement: String,
        /// The versions loaded.
        versions: Vec<String>,
    },
    /// The requirement is not a semver requirement.
    #[error("`{requirement}` is not a version requirement ({message}); write e.g. ^1.2 or =1.2.3")]
    BadRequirement {
        /// What was given.
        requirement: String,
        /// The parser's message.
        message: String,
    },
}

fn hint(available: &[String]) -> String {
    if available.is_empty() {
        "; no plugins are loaded".into()
    } else {
        format!(" (loaded: {})", available.join(", "))
    }
}

/// A plugin could not be unloaded.
#[derive(Debug, Error)]
pub enum UnloadError {
    /// No such plugin is loaded.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// Calls were still running when the timeout ran out. The plugin refuses new calls and
    /// stays loaded; call `unload` again to wait longer.
    #[error("plugin {plugin}: {in_flight} call(s) still running after {waited:?}; it refuses new calls and stays loaded until they return (call unload again to wait longer)")]
    Busy {
        /// `name@version`.
        plugin: String,
        /// Calls still running.
        in_flight: usize,
        /// How long unload waited.
        waited: Duration,
    },
    /// Other loaded plugins depend on this one (and no other loaded version serves them).
    #[error("plugin {plugin} is needed by {}; unload those first, or use unload_cascade", dependents.join(", "))]
    Dependents {
        /// `name@version`.
        plugin: String,
        /// The plugins that need it.
        dependents: Vec<String>,
    },
}
