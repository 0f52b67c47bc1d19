//! One module per command or command group. Each holds its arguments and its messages; the
//! work is plg-loader's.

pub mod build;
pub mod bundle;
pub mod dev;
pub mod install;
pub mod keys;
pub mod list;
pub mod new;
pub mod run;
