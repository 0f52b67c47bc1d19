//! Fixture: mimics a plugin built against an incompatible plg-api, whose `execute` takes an
//! extra argument. The magic and ABI version are right, so only abi_stable's layout check can
//! catch it; hosts must refuse it at load time, never call it.

use abi_stable::{
    prefix_type::WithMetadata,
    std_types::{RResult, RStr},
    type_layout::TypeLayout,
    StableAbi,
};
use plg_api::{Context, PluginError};

/// The incompatible module: `execute` has a second parameter.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = OldModuleRef)))]
#[sabi(missing_field(option))]
pub struct OldModule {
    /// Takes a `u32` flag the real ABI does not have.
    pub execute: extern "C" fn(&mut Context, u32) -> RResult<(), PluginError>,
    /// Same as the real ABI.
    #[sabi(last_prefix_field)]
    pub set_stop: extern "C" fn(bool),
}

/// The same fixed header as `plg_api::PluginDeclaration`, with the other module type.
#[repr(C)]
pub struct OldDeclaration {
    /// `plg_api::MAGIC`.
    pub magic: [u8; 8],
    /// `plg_api::ABI_VERSION`.
    pub abi_version: u32,
    /// Crate name.
    pub name: RStr<'static>,
    /// Crate version.
    pub version: RStr<'static>,
    /// plg-api version.
    pub api_version: RStr<'static>,
    /// Layout of `OldModuleRef`.
    pub module_layout: &'static TypeLayout,
    /// The module.
    pub module: OldModuleRef,
}

extern "C" fn execute(_ctx: &mut Context, _flag: u32) -> RResult<(), PluginError> {
    RResult::ROk(())
}

extern "C" fn set_stop(_stop: bool) {}

const MODULE: &WithMetadata<OldModule> = &WithMetadata::new(OldModule { execute, set_stop });

/// Exported under the real symbol name.
#[unsafe(no_mangle)]
pub static PLG_PLUGIN_DECLARATION: OldDeclaration = OldDeclaration {
    magic: plg_api::MAGIC,
    abi_version: plg_api::ABI_VERSION,
    name: RStr::from_str(env!("CARGO_PKG_NAME")),
    version: RStr::from_str(env!("CARGO_PKG_VERSION")),
    api_version: RStr::from_str("0.0.0-old"),
    module_layout: <OldModuleRef as StableAbi>::LAYOUT,
    module: OldModuleRef(MODULE.static_as_prefix()),
};
