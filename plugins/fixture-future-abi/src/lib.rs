//! Fixture: a declaration that is valid except for its ABI version, as a plugin built with a
//! newer plg-api would carry. Hosts must refuse it before touching the module.

use plg_api::{Context, PluginDeclaration, PluginError, PluginModule, PluginModuleRef};

fn execute(_ctx: &mut Context) -> Result<(), PluginError> {
    Ok(())
}

extern "C" fn raw_execute(ctx: &mut Context) -> plg_api::__private::RResult<(), PluginError> {
    plg_api::__private::guard("fixture-future-abi", ctx, execute)
}

const MODULE: &plg_api::__private::WithMetadata<PluginModule> =
    &plg_api::__private::WithMetadata::new(PluginModule {
        execute: raw_execute,
        on_load: None,
        on_unload: None,
        set_stop: plg_api::__private::set_stop,
    });

/// Exported under the real symbol name, with `abi_version` bumped.
#[unsafe(no_mangle)]
pub static PLG_PLUGIN_DECLARATION: PluginDeclaration = {
    let mut decl = PluginDeclaration::new(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        PluginModuleRef(MODULE.static_as_prefix()),
    );
    decl.abi_version = plg_api::ABI_VERSION + 1;
    decl
};
