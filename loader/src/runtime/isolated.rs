//! Loading a plugin into a worker process instead of this one: the file checks run here (so
//! their errors are the same `LoadError` variants as in-process), the rest in the worker.

use std::{path::Path, sync::Arc};

use super::{manager::PluginManager, plugin::Instance, schemas::Schemas};
use crate::{
    error::{LoadError, WorkerError},
    manifest::{Manifest, Source},
};

impl PluginManager {
    /// Opens `manifest`'s plugin in a supervised worker ([`WorkerPolicy`](super::WorkerPolicy)).
    /// `local`/`local_path` are the local manifest (a `remote_git` source already built).
    pub(super) fn open_in_worker(
        &self,
        manifest: Manifest,
        manifest_path: &Path,
        (local, local_path): (&Manifest, &Path),
        schemas: Option<Schemas>,
        description: Vec<u8>,
    ) -> Result<Arc<Instance>, LoadError> {
        can_run_apart(&manifest)?;
        #[cfg(not(feature = "isolation"))]
        {
            let _ = (manifest_path, local, local_path, schemas, description);
            Err(without_isolation(&manifest))
        }
        #[cfg(feature = "isolation")]
        {
            use super::{open::inspect, worker::Program};
            use crate::manifest::preflight::check_before_load;
            let (_, library) = inspect(local, local_path)?;
            let file = std::fs::File::open(&library).map_err(|_| LoadError::NotFound {
                path: library.clone(),
                manifest: local_path.to_owned(),
            })?;
            let preflight =
                check_before_load(&file).map_err(|reason| LoadError::NotSharedObject {
                    path: library.clone(),
                    reason,
                })?;
            let program = super::worker::find_worker(self.worker_policy.program.as_deref())
                .map_err(|source| worker_error(&manifest, source))?;
            let program = Program {
                path: program,
                args: vec![local_path.as_os_str().to_owned()],
                env: Vec::new(),
                is_plg_worker: true,
                spares: self.spares.clone(),
            };
            let origin = super::provenance::Origin::opened(description, file);
            self.start_apart(
                manifest,
                manifest_path,
                schemas,
                program,
                library,
                preflight,
                origin,
            )
        }
    }

    /// Starts an executable plugin (`source.mode: "exec"`): always a supervised process.
    pub(super) fn open_exec(
        &self,
        manifest: Manifest,
        manifest_path: &Path,
        schemas: Option<Schemas>,
        description: Vec<u8>,
    ) -> Result<Arc<Instance>, LoadError> {
        can_run_apart(&manifest)?;
        let Source::Exec { args, env, .. } = &manifest.source else {
            unreachable!("open_exec is called for exec sources only");
        };
        let real_program = super::open::locate_program(&manifest, manifest_path)?;
        #[cfg(not(feature = "isolation"))]
        {
            let _ = (args, env, schemas, real_program, description);
            Err(without_isolation(&manifest))
        }
        #[cfg(feature = "isolation")]
        {
            let program = super::worker::Program {
                path: real_program.clone(),
                args: args.iter().map(Into::into).collect(),
                env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                is_plg_worker: false,
                spares: None,
            };
            let unknown = crate::manifest::preflight::Unmappable::Unknown;
            let origin = super::provenance::Origin::new(description, &real_program);
            self.start_apart(
                manifest,
                manifest_path,
                schemas,
                program,
                real_program,
                unknown,
                origin,
            )
        }
    }

    /// Starts `program` for `manifest`'s plugin under the worker policy and wraps it in an
    /// instance with the manager's hooks and metrics. `file` is what the instance reports as
    /// its library; `origin`, what a reload compares to notice a change.
    #[cfg(feature = "isolation")]
    #[allow(clippy::too_many_arguments)]
    fn start_apart(
        &self,
        manifest: Manifest,
        manifest_path: &Path,
        schemas: Option<Schemas>,
        program: super::worker::Program,
        file: std::path::PathBuf,
        preflight: crate::manifest::preflight::Unmappable,
        origin: super::provenance::Origin,
    ) -> Result<Arc<Instance>, LoadError> {
        let runtime = super::worker::start(
            &manifest,
            program,
            file,
            preflight,
            self.worker_policy.clone(),
        )
        // A failed load check is the same variant an in-process load returns.
        .map_err(|e| e.into_load_error(&manifest.id()))?;
        let calls = self.call_site(&manifest.name, &manifest.version);
        Ok(Instance::with_runtime(
            manifest,
            manifest_path.to_owned(),
            runtime,
            schemas,
            origin,
            calls,
        ))
    }
}

fn worker_error(manifest: &Manifest, source: WorkerError) -> LoadError {
    LoadError::Worker {
        plugin: manifest.id(),
        source,
    }
}

/// A plugin in a process of its own cannot reach its dependencies yet: refused.
fn can_run_apart(manifest: &Manifest) -> Result<(), LoadError> {
    if manifest.dependencies.is_empty() {
        return Ok(());
    }
    Err(worker_error(
        manifest,
        WorkerError::Unsupported {
            reason: "a plugin with dependencies cannot run in a worker or as an exec plugin \
                     yet (its Context::call would not reach them); run it in-process"
                .into(),
        },
    ))
}

#[cfg(not(feature = "isolation"))]
fn without_isolation(manifest: &Manifest) -> LoadError {
    worker_error(
        manifest,
        WorkerError::Unsupported {
            reason: "this host was built without plg-loader's `isolation` feature, which runs \
                     workers and exec plugins; enable it, or run the plugin in-process"
                .into(),
        },
    )
}
