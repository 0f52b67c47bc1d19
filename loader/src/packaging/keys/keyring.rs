//! `PLUGINS_DIR/.plg/keyring.json`: the public keys whose bundle signatures are trusted.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::parse_public_key;
use crate::{
    error::InstallError,
    plugins_dir::{read_json_or_default, write_atomically, PluginsDir},
};

/// One trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// A name for people.
    pub name: String,
    /// The ed25519 public key, hex.
    pub public_key: String,
}

/// `PLUGINS_DIR/.plg/keyring.json`: the public keys whose signatures are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyring {
    /// The keys.
    #[serde(default)]
    pub keys: Vec<TrustedKey>,
}

impl Keyring {
    /// Reads the keyring; a missing file is empty.
    pub fn load(plugins_dir: &PluginsDir) -> Result<Self, InstallError> {
        let path = plugins_dir.keyring_file();
        let ring: Keyring = read_json_or_default(&path)?;
        for k in &ring.keys {
            parse_public_key(&k.public_key).map_err(|problem| InstallError::Config {
                path: path.clone(),
                problem: format!("key `{}`: {problem}", k.name),
            })?;
        }
        Ok(ring)
    }

    /// The trusted key's name, if `key` is trusted.
    pub fn trusts(&self, key: &VerifyingKey) -> Option<&str> {
        let hex = hex::encode(key.as_bytes());
        self.keys
            .iter()
            .find(|k| k.public_key.eq_ignore_ascii_case(&hex))
            .map(|k| k.name.as_str())
    }

    /// Adds `key` under `name` (replacing a key of the same name) and saves the keyring.
    pub fn add(
        plugins_dir: &PluginsDir,
        name: &str,
        key: &VerifyingKey,
    ) -> Result<(), InstallError> {
        let mut ring = Self::load(plugins_dir)?;
        ring.keys.retain(|k| k.name != name);
        ring.keys.push(TrustedKey {
            name: name.to_owned(),
            public_key: hex::encode(key.as_bytes()),
        });
        let text = serde_json::to_string_pretty(&ring).expect("a keyring serializes");
        Ok(write_atomically(
            &plugins_dir.keyring_file(),
            text.as_bytes(),
        )?)
    }
}
