//! Loading a plugin into a worker process instead of this one: the file checks run here (so
//! their errors are the same `LoadError` variants as in-process), the rest in the worker.

use std::{path::Path, sync::Arc};

use super::{manager::PluginManager, plugin::Instance, schemas::Schemas};
use crate::{
    error::{LoadError, WorkerError},
    manifest::Manifest,
};

impl PluginManager {
    /// Opens `manifest`'s plugin in a supervised worker ([`WorkerPolicy`](super::WorkerPolicy)).
    /// `local`/`local_path` are the local manifest (a `remote_git` source already built).
    pub(super) fn open_in_worker(
        &self,
        manifest: Manifest,
        manifest_path: &Path,
        local: &Manifest,
        local_path: &Path,
        schemas: Option<Schemas>,
    ) -> Result<Arc<Instance>, LoadError> {
        let refuse = |source| LoadError::Worker {
            plugin: manifest.id(),
            source,
        };
        if !manifest.dependencies.is_empty() {
            return Err(refuse(WorkerError::Unsupported {
                reason: "a plugin with dependencies cannot run in a worker yet (its \
                         Context::call would not reach them); run it in-process"
                    .into(),
            }));
        }
        #[cfg(not(feature = "isolation"))]
        {
            let _ = (manifest_path, local, local_path, schemas);
            Err(refuse(WorkerError::Unsupported {
                reason: "this host was built without plg-loader's `isolation` feature; \
                         enable it, or run the plugin in-process"
                    .into(),
            }))
        }
        #[cfg(feature = "isolation")]
        {
            use super::{images::Origin, open::inspect, worker};
            use crate::manifest::preflight::check_before_load;
            let (_, library) = inspect(local, local_path)?;
            let preflight =
                check_before_load(&library).map_err(|reason| LoadError::NotSharedObject {
                    path: library.clone(),
                    reason,
                })?;
            let program = find_worker(self.worker_policy.program.as_deref()).map_err(refuse)?;
            let runtime = worker::start(
                local,
                worker::Program {
                    path: program,
                    args: vec![local_path.as_os_str().to_owned()],
                    env: Vec::new(),
                },
                library.clone(),
                preflight,
                self.worker_policy.clone(),
            )
            .map_err(refuse)?;
            let calls = self.call_site(&manifest.name, &manifest.version);
            Ok(Instance::with_runtime(
                manifest,
                manifest_path.to_owned(),
                runtime,
                schemas,
                Origin::new(local_path, &library, None),
                calls,
            ))
        }
    }
}

impl PluginManager {
    /// Starts an executable plugin (`source.mode: "exec"`): always a supervised process.
    pub(super) fn open_exec(
        &self,
        manifest: Manifest,
        manifest_path: &Path,
        schemas: Option<Schemas>,
    ) -> Result<Arc<Instance>, LoadError> {
        let refuse = |source| LoadError::Worker {
            plugin: manifest.id(),
            source,
        };
        if !manifest.dependencies.is_empty() {
            return Err(refuse(WorkerError::Unsupported {
                reason: "an exec plugin cannot declare dependencies yet".into(),
            }));
        }
        let crate::manifest::Source::Exec { args, env, .. } = &manifest.source else {
            unreachable!("open_exec is called for exec sources only");
        };
        let real_program = super::open::locate_program(&manifest, manifest_path)?;
        #[cfg(not(feature = "isolation"))]
        {
            let _ = (args, env, schemas, real_program);
            Err(refuse(WorkerError::Unsupported {
                reason: "this host was built without plg-loader's `isolation` feature, which \
                         runs exec plugins; enable it"
                    .into(),
            }))
        }
        #[cfg(feature = "isolation")]
        {
            use super::{images::Origin, worker};
            let runtime = worker::start(
                &manifest,
                worker::Program {
                    path: real_program.clone(),
                    args: args.iter().map(Into::into).collect(),
                    env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                },
                real_program.clone(),
                crate::manifest::preflight::Unmappable::Unknown,
                self.worker_policy.clone(),
            )
            .map_err(refuse)?;
            let calls = self.call_site(&manifest.name, &manifest.version);
            Ok(Instance::with_runtime(
                manifest,
                manifest_path.to_owned(),
                runtime,
                schemas,
                Origin::new(manifest_path, &real_program, None),
                calls,
            ))
        }
    }
}

#[cfg(feature = "isolation")]
/// The `plg-worker` binary: `configured`, else `$PLG_WORKER`, else next to this program (or
/// one directory up, where cargo puts a test's binaries), else on `PATH`.
pub(crate) fn find_worker(configured: Option<&Path>) -> Result<std::path::PathBuf, WorkerError> {
    use std::path::PathBuf;
    let name = format!("plg-worker{}", std::env::consts::EXE_SUFFIX);
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = configured {
        candidates.push(p.to_owned());
    } else {
        if let Some(p) = std::env::var_os("PLG_WORKER") {
            candidates.push(p.into());
        }
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                candidates.push(dir.join(&name));
                if let Some(up) = dir.parent() {
                    candidates.push(up.join(&name));
                }
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            // Only absolute entries: an empty or relative one would resolve against the
            // current directory.
            candidates.extend(
                std::env::split_paths(&path)
                    .filter(|d| d.is_absolute())
                    .map(|d| d.join(&name)),
            );
        }
    }
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(WorkerError::NotFound {
            searched: candidates,
        }),
    }
}
