//! The plugins directory's signature policy, checked in one place that every way into the
//! directory goes through.

use std::path::{Path, PathBuf};

use super::InstallError;
use crate::{
    packaging::{bundle::BundleSignature, keys::Keyring},
    plugins_dir::PluginsDir,
};

/// What is known about where a copy comes from, for the plugins directory's signature
/// policy. Every way into a plugins directory (install from a bundle, a directory or git,
/// `plg build`'s staging) goes through [`place`](self) with one, and the one policy check
/// ([`Admission::admit`]) runs there.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    /// The bundle or library, for messages.
    pub source: PathBuf,
    /// Its signature, verified against its contents (not yet against the keyring).
    pub signature: Option<BundleSignature>,
    /// The caller requires a trusted signature (on top of the directory's configuration).
    pub require_signature: bool,
}

impl Admission {
    /// A copy with no signature: a built library, a staged directory, a git build.
    pub(crate) fn unsigned(source: &Path, require_signature: bool) -> Self {
        Self {
            source: source.to_owned(),
            signature: None,
            require_signature,
        }
    }

    /// Applies the signature policy (the caller's `require_signature` or the directory's):
    /// the trusted key's name; `None` for an unsigned or untrusted copy where that is
    /// allowed; an error where it is not.
    pub(crate) fn admit(&self, plugins_dir: &PluginsDir) -> Result<Option<String>, InstallError> {
        let require = self.require_signature || plugins_dir.config()?.require_signature;
        let keyring = Keyring::load(plugins_dir)?;
        match &self.signature {
            Some(sig) => match keyring.trusts(&sig.public_key) {
                Some(name) => Ok(Some(name.to_owned())),
                None if require => Err(InstallError::UnknownKey {
                    bundle: self.source.clone(),
                    key: sig.key_hex(),
                    keyring: plugins_dir.keyring_file(),
                }),
                None => Ok(None),
            },
            None if require => Err(InstallError::Unsigned {
                bundle: self.source.clone(),
            }),
            None => Ok(None),
        }
    }
}
