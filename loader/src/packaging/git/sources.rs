//! [`GitSources`]: the packaging layer's answer to the runtime's question "where is this
//! `remote_git` plugin's library?".

use std::path::{Path, PathBuf};

use super::{fetch_and_build, GitOptions, NoProgress};
use crate::{
    error::LoadError,
    manifest::{Manifest, Source, SourceResolver},
    plugins_dir::PluginsDir,
};

/// Fetches and builds `remote_git` sources for a
/// [`PluginManager`](crate::PluginManager), caching them in the plugins directory.
#[derive(Debug, Clone)]
pub struct GitSources {
    plugins_dir: PluginsDir,
    /// Fixed options; `None`: read from the plugins directory's configuration at each load.
    options: Option<GitOptions>,
}

impl GitSources {
    /// Options from `plugins_dir` (its `.plg/config.json` and `.plg/git-cache`), read at
    /// each load.
    pub fn new(plugins_dir: PluginsDir) -> Self {
        Self {
            plugins_dir,
            options: None,
        }
    }

    /// Fixed options.
    pub fn with_options(plugins_dir: PluginsDir, options: GitOptions) -> Self {
        Self {
            plugins_dir,
            options: Some(options),
        }
    }

    /// The options in force.
    pub fn options(&self) -> Result<GitOptions, LoadError> {
        match &self.options {
            Some(o) => Ok(o.clone()),
            None => Ok(GitOptions::for_plugins_dir(&self.plugins_dir)?),
        }
    }
}

impl SourceResolver for GitSources {
    fn localize(
        &self,
        manifest: &Manifest,
        manifest_path: &Path,
        offline: bool,
    ) -> Result<(Manifest, PathBuf), LoadError> {
        let Source::RemoteGit { url, rev, subdir } = &manifest.source else {
            return Ok((manifest.clone(), manifest_path.to_owned())); // already local
        };
        // A git build carries no signature: where signatures are required it can never be
        // admitted, so refuse before fetching and building (which runs the repository's code).
        if self.plugins_dir.config()?.require_signature {
            return Err(LoadError::UnsignedSource {
                manifest: manifest_path.to_owned(),
                url: crate::manifest::git_url::redact(url),
                config: self.plugins_dir.config_file(),
            });
        }
        let mut opts = self.options()?;
        opts.offline = offline;
        let built = fetch_and_build(url, rev.as_deref(), subdir.as_deref(), &opts, &NoProgress)?;
        let path = built.manifest_path();
        Ok((built.manifest, path))
    }
}
