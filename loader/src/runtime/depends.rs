//! The manager's side of dependencies between plugins: a plugin loads only when what it
//! needs is loaded, and unloading a plugin that others need is refused unless the caller
//! asks for a cascade. The resolution of a whole set before loading is [`resolve`](super::resolve).

use semver::Version;

use super::{manager::PluginManager, plugin::Plugin, UnloadReport};
use crate::{
    error::{DependencyProblem, LoadError, UnloadError},
    manifest::Manifest,
};

impl PluginManager {
    /// The name and version of every loaded plugin.
    pub(super) fn loaded_versions(&self) -> Vec<(String, Version)> {
        self.plugins()
            .iter()
            .map(|p| (p.name().to_owned(), p.version().clone()))
            .collect()
    }

    /// Checks that every dependency of `manifest` is loaded in a matching version.
    /// `candidates`: names the caller was about to load, whose absence means they failed.
    pub(super) fn check_dependencies(
        &self,
        manifest: &Manifest,
        candidates: &[&str],
    ) -> Result<(), LoadError> {
        let loaded = self.loaded_versions();
        for (name, req) in &manifest.dependencies {
            if loaded.iter().any(|(n, v)| n == name && req.matches(v)) {
                continue;
            }
            let versions: Vec<String> = loaded
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.to_string())
                .collect();
            let requirement = req.to_string();
            let problem = if candidates.contains(&name.as_str()) {
                DependencyProblem::Failed {
                    name: name.clone(),
                    requirement,
                }
            } else {
                DependencyProblem::unmet(name, requirement, versions)
            };
            return Err(LoadError::Dependency {
                chain: vec![manifest.id()],
                problem,
            });
        }
        Ok(())
    }

    /// The loaded plugins (other than those in `leaving`) that need `plugin` and have no
    /// other loaded version that would serve them.
    pub(super) fn dependents_of(&self, plugin: &Plugin, leaving: &[Plugin]) -> Vec<String> {
        let all = self.plugins();
        let staying = |p: &&Plugin| !leaving.iter().any(|l| l.same_instance(p));
        all.iter()
            .filter(staying)
            .filter(|p| {
                p.manifest()
                    .dependencies
                    .get(plugin.name())
                    .is_some_and(|req| {
                        req.matches(&plugin.version())
                            && !all.iter().filter(staying).any(|other| {
                                other.name() == plugin.name() && req.matches(&other.version())
                            })
                    })
            })
            .map(|p| p.id().to_owned())
            .collect()
    }

    /// Unloads `name` (one version, or all) and, first, every loaded plugin that needs it,
    /// recursively: what [`unload`](Self::unload) refuses with [`UnloadError::Dependents`].
    pub fn unload_cascade(
        &self,
        name: &str,
        version: Option<&Version>,
    ) -> Result<Vec<UnloadReport>, UnloadError> {
        let _loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        self.unload_cascade_locked(name, version)
    }

    fn unload_cascade_locked(
        &self,
        name: &str,
        version: Option<&Version>,
    ) -> Result<Vec<UnloadReport>, UnloadError> {
        let mut reports = Vec::new();
        loop {
            match self.unload_locked(name, version) {
                Ok(r) => {
                    reports.extend(r);
                    return Ok(reports);
                }
                Err(UnloadError::Dependents { dependents, .. }) => {
                    for id in dependents {
                        let (dep_name, dep_version) = id.split_once('@').unwrap_or((&id, ""));
                        let dep_version = Version::parse(dep_version).ok();
                        reports.extend(self.unload_cascade_locked(dep_name, dep_version.as_ref())?);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}
