//! The packaging layer: how plugins travel and arrive.
//!
//! - [`bundle`]: the `.plg` format, reading, packing and signatures;
//! - [`keys`]: signing keys and the keyring;
//! - [`install`]: atomic install and uninstall into a plugins directory;
//! - [`origin`]: what a user hands `plg install` (a bundle, a crate, a staged directory or a
//!   git URL);
//! - `build` and `scaffold` (feature `build`): cargo builds and staging, new plugin crates;
//! - `git` (feature `git`): `remote_git` sources, cloned with libgit2 and built with cargo.
//!
//! Packaging sits beside the runtime and uses it through one door only: checking that a copy
//! it placed loads (`runtime::check_loads`). The runtime never imports packaging.

#[cfg(feature = "build")]
pub mod build;
pub mod bundle;
#[cfg(feature = "git")]
pub mod git;
pub mod install;
pub mod keys;
pub mod origin;
#[cfg(feature = "build")]
pub mod scaffold;
