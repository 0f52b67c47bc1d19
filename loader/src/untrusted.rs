//! Text from a plugin, a manifest, a bundle or a repository is untrusted: [`escape`] makes it
//! safe to show on a terminal. plg runs everything that reaches a terminal through it. It is
//! defined in plg-api, which plugins share, so that their panic hook uses the same rule.

pub use plg_api::untrusted::{escape, needs_escape};
