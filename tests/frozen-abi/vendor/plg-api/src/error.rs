//! [`PluginError`]: what a plugin's `execute` returns on failure.

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

use crate::ContextError;

/// The kind of a [`PluginError`]. Hosts map each to their own error kind.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginErrorKind {
    /// The plugin could not do what was asked.
    Failed,
    /// The context lacked a value, or held one of the wrong kind.
    InvalidInput,
    /// The plugin stopped because [`Context::is_cancelled`](crate::Context::is_cancelled)
    /// turned true.
    Cancelled,
    /// The plugin panicked; set only by the [`export_plugin!`](crate::export_plugin) shim.
    Panicked,
}

/// An error returned by a plugin across the boundary.
///
/// ```
/// use plg_api::{Context, PluginError, PluginErrorKind};
///
/// fn execute(ctx: &mut Context) -> Result<(), PluginError> {
///     let n: i64 = ctx.get("n")?; // a ContextError becomes InvalidInput
///     if n < 0 {
///         return Err(PluginError::failed(format!("n must be >= 0, got {n}")));
///     }
///     Ok(())
/// }
/// let err = execute(&mut Context::new()).unwrap_err();
/// assert_eq!(err.kind(), PluginErrorKind::InvalidInput);
/// ```
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    kind: PluginErrorKind,
    message: RString,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: PluginErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: RString::from(message.to_string()),
        }
    }

    /// A [`PluginErrorKind::Failed`] error.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::new(PluginErrorKind::Failed, message)
    }

    /// A [`PluginErrorKind::InvalidInput`] error.
    pub fn invalid_input(message: impl fmt::Display) -> Self {
        Self::new(PluginErrorKind::InvalidInput, message)
    }

    /// A [`PluginErrorKind::Cancelled`] error, returned when the plugin saw
    /// [`Context::is_cancelled`](crate::Context::is_cancelled).
    pub fn cancelled() -> Self {
        Self::new(PluginErrorKind::Cancelled, "cancelled")
    }

    /// A [`PluginErrorKind::Panicked`] error carrying the panic message.
    pub fn panicked(message: impl fmt::Display) -> Self {
        Self::new(PluginErrorKind::Panicked, message)
    }

    /// The kind.
    pub fn kind(&self) -> PluginErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<ContextError> for PluginError {
    fn from(e: ContextError) -> Self {
        Self::invalid_input(e)
    }
}

impl From<crate::ValueError> for PluginError {
    fn from(e: crate::ValueError) -> Self {
        Self::invalid_input(e)
    }
}

impl From<String> for PluginError {
    fn from(message: String) -> Self {
        Self::failed(message)
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> Self {
        Self::failed(message)
    }
}
