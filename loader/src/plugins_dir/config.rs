//! `PLUGINS_DIR/.plg/config.json`: the directory's policy.

use std::{io, path::Path};

pub use crate::error::ConfigError;
use crate::error::IoError;
use serde::{Deserialize, Serialize};

/// `PLUGINS_DIR/.plg/config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Refuse unsigned bundles and bundles signed by unknown keys.
    #[serde(default)]
    pub require_signature: bool,
    /// URL schemes `remote_git` sources may use (default `https` and `ssh`; add `file` for
    /// local repositories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_schemes: Option<Vec<String>>,
}

impl Config {
    /// Reads the config at `path`; a missing file is the default.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        read_json_or_default(path)
    }
}

/// Reads a JSON file of plg's own; a missing file gives `T::default()`.
pub(crate) fn read_json_or_default<T: Default + for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<T, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            problem: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(IoError::new(path, source).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_the_default_and_unknown_keys_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        assert_eq!(Config::read(&path).unwrap(), Config::default());
        std::fs::write(
            &path,
            r#"{"require_signature": true, "git_schemes": ["file"]}"#,
        )
        .unwrap();
        let c = Config::read(&path).unwrap();
        assert!(c.require_signature);
        assert_eq!(c.git_schemes.as_deref(), Some(&["file".to_owned()][..]));
        std::fs::write(&path, r#"{"require_signatures": true}"#).unwrap();
        match Config::read(&path) {
            Err(ConfigError::Invalid { path: p, problem }) => {
                assert_eq!(p, path);
                assert!(problem.contains("require_signatures"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
    }
}
