//! What [`PluginManager::new`] wires in: the one place where the runtime meets the packaging
//! layer. The runtime defines the [`SourceResolver`](crate::manifest::SourceResolver) seam; with
//! the `git` feature, a new manager gets the git resolver, so `remote_git` manifests load.

use crate::{plugins_dir::PluginsDir, runtime::PluginManager};

impl PluginManager {
    /// A manager for plugins under `plugins_dir`. Nothing is read until you load. With the
    /// `git` feature, `remote_git` manifests are fetched and built with the directory's git
    /// options (`git::GitOptions::for_plugins_dir`); without it, this is
    /// [`PluginManager::local_only`].
    pub fn new(plugins_dir: impl Into<PluginsDir>) -> Self {
        let plugins_dir = plugins_dir.into();
        #[cfg(feature = "git")]
        {
            let git = crate::git::GitSources::new(plugins_dir.clone());
            Self::local_only(plugins_dir).with_source_resolver(std::sync::Arc::new(git))
        }
        #[cfg(not(feature = "git"))]
        Self::local_only(plugins_dir)
    }

    /// Sets how `remote_git` sources are fetched and built, instead of the plugins
    /// directory's configuration.
    #[cfg(feature = "git")]
    pub fn with_git_options(self, options: crate::git::GitOptions) -> Self {
        let git = crate::git::GitSources::with_options(self.plugins_dir().clone(), options);
        self.with_source_resolver(std::sync::Arc::new(git))
    }
}
