//! The manager's side of dependencies between plugins: a plugin loads only when what it
//! needs is loaded, and unloading a plugin that others need is refused unless the caller
//! asks for a cascade. The resolution of a whole set before loading is [`resolve`](super::resolve).

use semver::Version;

use super::{manager::PluginManager, plugin::Plugin, route::Dependency, UnloadReport};
use crate::{
    error::{DependencyProblem, LoadError, UnloadError, MAX_DEPENDENCY_DEPTH},
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

    /// Refuses an upgrade to `manifest` that would close a cycle through the loaded plugins:
    /// one of its dependencies needs, directly or through others, a version of its plugin
    /// that `manifest`'s version matches. (At load time a cycle cannot form: a dependency
    /// must be loaded first. An upgrade can declare new dependencies on plugins that already
    /// need it.)
    pub(super) fn check_no_cycle(&self, manifest: &Manifest) -> Result<(), LoadError> {
        let loaded = self.plugins();
        // (plugin name, chain of ids from `manifest` to it)
        let mut todo: Vec<(String, Vec<String>)> = manifest
            .dependencies
            .keys()
            .map(|d| (d.clone(), vec![manifest.id()]))
            .collect();
        let mut seen: Vec<String> = Vec::new();
        while let Some((name, chain)) = todo.pop() {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name.clone());
            for p in loaded.iter().filter(|p| p.name() == name) {
                let needs = p.manifest();
                let mut chain = chain.clone();
                chain.push(p.id());
                for (dep, req) in &needs.dependencies {
                    if *dep == manifest.name && req.matches(&manifest.version) {
                        chain.push(manifest.id());
                        return Err(LoadError::Dependency {
                            chain,
                            problem: DependencyProblem::Cycle,
                        });
                    }
                    todo.push((dep.clone(), chain.clone()));
                }
            }
        }
        Ok(())
    }

    /// Loads each dependency of `manifest` that is not loaded in a matching version: the
    /// highest installed version that matches, with its own dependencies first. `chain`
    /// holds the ids from the plugin first asked for down to `manifest`.
    pub(super) fn load_dependencies(
        &self,
        manifest: &Manifest,
        chain: &mut Vec<String>,
    ) -> Result<(), LoadError> {
        if chain.len() >= MAX_DEPENDENCY_DEPTH {
            return Err(LoadError::Dependency {
                chain: chain.clone(),
                problem: DependencyProblem::TooDeep {
                    limit: MAX_DEPENDENCY_DEPTH,
                },
            });
        }
        for (name, req) in &manifest.dependencies {
            let loaded = self.loaded_versions();
            if loaded.iter().any(|(n, v)| n == name && req.matches(v)) {
                continue;
            }
            let requirement = req.to_string();
            if chain.iter().any(|id| id.split('@').next() == Some(name)) {
                let mut chain = chain.clone();
                chain.push(name.clone());
                return Err(LoadError::Dependency {
                    chain,
                    problem: DependencyProblem::Cycle,
                });
            }
            match self.load_matching_in(name, Some(&requirement), chain) {
                Ok(_) => {}
                Err(e @ LoadError::Dependency { .. }) => return Err(e),
                Err(LoadError::NotInstalled { versions, .. }) => {
                    return Err(LoadError::Dependency {
                        chain: chain.clone(),
                        problem: DependencyProblem::unmet(name, requirement, versions),
                    })
                }
                Err(e) => {
                    tracing::warn!(
                        plugin = chain.last().map(String::as_str).unwrap_or(""),
                        dependency = name.as_str(),
                        error = %crate::untrusted::escape(&e.to_string()),
                        "a dependency failed to load"
                    );
                    return Err(LoadError::Dependency {
                        chain: chain.clone(),
                        problem: DependencyProblem::Failed {
                            name: name.clone(),
                            requirement,
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// A handle to each of `manifest`'s dependencies, for [`Context::call`](plg_api::Context::call):
    /// the highest loaded version that matches, following upgrades that still match.
    pub(super) fn dependency_handles(
        &self,
        manifest: &Manifest,
    ) -> Result<Vec<Dependency>, LoadError> {
        manifest
            .dependencies
            .iter()
            .map(|(name, requirement)| {
                let handle = self
                    .get_matching(name, &requirement.to_string())
                    .map_err(|_| LoadError::Dependency {
                        chain: vec![manifest.id()],
                        problem: DependencyProblem::unmet(
                            name,
                            requirement.to_string(),
                            self.loaded_versions()
                                .into_iter()
                                .filter(|(n, _)| n == name)
                                .map(|(_, v)| v.to_string())
                                .collect(),
                        ),
                    })?;
                handle.mark_internal();
                Ok(Dependency {
                    name: name.clone(),
                    requirement: requirement.clone(),
                    handle,
                })
            })
            .collect()
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
