//! Plugins in worker processes: the host's [`WorkerPolicy`], and (with the `isolation`
//! feature) the supervised `plg-worker` process a plugin's calls go to over plg's protocol.
//!
//! `cgroup` gives a worker a cgroup v2 with `memory.max`; `policy` is plain configuration; `adopt` is how `plg-worker` takes on the parent-death
//! signal and limits a host passes it. `process` starts a worker and shakes hands, `output`
//! reads what it writes, `socket_dir` makes its sockets' directory; `check`
//! finds `plg-worker` and runs load checks in a throwaway one; `spare` keeps one started
//! ahead of need; `client`
//! talks gRPC to it; `supervisor` owns one plugin's worker: it restarts it with backoff after
//! a crash, kills it when a call overruns its deadline, and shuts it down at unload.

mod adopt;
mod policy;

pub use adopt::{adopt_from_env, Adopted};
pub use policy::{WorkerPolicy, WorkerStop};

#[cfg(feature = "isolation")]
mod cgroup;
#[cfg(feature = "isolation")]
mod check;
#[cfg(feature = "isolation")]
mod client;
#[cfg(feature = "isolation")]
mod frames;
#[cfg(feature = "isolation")]
mod output;
#[cfg(feature = "isolation")]
mod process;
#[cfg(feature = "isolation")]
mod reply;
#[cfg(feature = "isolation")]
mod socket_dir;
#[cfg(feature = "isolation")]
mod spare;
#[cfg(feature = "isolation")]
mod supervisor;

#[cfg(feature = "isolation")]
pub(crate) use check::{check_in_worker, find_worker};
#[cfg(feature = "isolation")]
pub(crate) use spare::Spares;
#[cfg(feature = "isolation")]
pub(crate) use supervisor::{start, Program};
