//! The root module a plugin exports, and the [`export_plugin!`](crate::export_plugin) macro.

use std::sync::atomic::{AtomicBool, Ordering};

use abi_stable::{
    std_types::{RResult, RStr},
    type_layout::TypeLayout,
    StableAbi,
};

use crate::{CallRouter, Context, PluginError};

/// The version of the plg binary interface. A host refuses a plugin whose declaration carries
/// another number. It changes only when a change cannot be expressed by appending fields to
/// [`PluginModule`] (see the crate docs, "ABI and compatibility").
pub const ABI_VERSION: u32 = 1;

/// The bytes every [`PluginDeclaration`] starts with.
pub const MAGIC: [u8; 8] = *b"plg\0decl";

/// The name of the symbol every plugin exports.
pub const DECLARATION_SYMBOL: &str = "PLG_PLUGIN_DECLARATION";

/// The name of the plugin's note: a byte string a host reads from the library *file*, without
/// loading it, to list and inspect plugins without running their code. Its text is
/// `plg-note-v1\nabi=ABI_VERSION\nname=NAME\nversion=VERSION\n`; new `key=value` lines may be
/// appended, and readers ignore keys they do not know.
pub const NOTE_SYMBOL: &str = "PLG_PLUGIN_NOTE";

/// [`ABI_VERSION`] as a literal, for the note `export_plugin!` builds at compile time. Not a
/// public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __plg_abi_version {
    () => {
        "1"
    };
}

const _: () = assert!(
    ABI_VERSION == 1 && matches!(__plg_abi_version!().as_bytes(), b"1"),
    "keep __plg_abi_version! equal to ABI_VERSION"
);

/// `execute` and `on_load` as seen across the boundary.
pub type ExecuteFn = extern "C" fn(&mut Context) -> RResult<(), PluginError>;

/// `on_unload` as seen across the boundary.
pub type HookFn = extern "C" fn(&mut Context) -> RResult<(), PluginError>;

/// The plugin's entry points.
///
/// It is an abi_stable *prefix type*: a host built against a later plg-api, which may append
/// fields, can still load a plugin built today, and reads a missing appended field as absent.
///
/// **Rule: never reorder, remove or change a field. Append new fields only after the one
/// marked `last_prefix_field`, and make them optional for the host.**
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    /// The plugin's one entry point.
    pub execute: extern "C" fn(&mut Context) -> RResult<(), PluginError>,
    /// Runs once after the host loaded and checked the library, before the first `execute`.
    pub on_load: Option<extern "C" fn(&mut Context) -> RResult<(), PluginError>>,
    /// Runs once before the host unloads the library, after calls in flight returned.
    pub on_unload: Option<extern "C" fn(&mut Context) -> RResult<(), PluginError>>,
    /// Sets the library-wide stop flag that [`Context::is_cancelled`] reports. The host sets it
    /// when unloading begins, and clears it on load.
    ///
    /// ABI rule: this is the last field of ABI version 1's prefix. Append new fields after
    /// it only.
    #[sabi(last_prefix_field)]
    pub set_stop: extern "C" fn(bool),
    // ---- Appended in module revision 2 (hot upgrade). A host reads each as `Option`:
    // `None` from a plugin built before they existed.
    /// Hot upgrade, on the version being replaced: write the state to carry over into the
    /// context's values. Runs after the new version loaded, while this one still serves.
    pub save_state: Option<extern "C" fn(&mut Context) -> RResult<(), PluginError>>,
    /// Hot upgrade, on the new version before it serves its first call: read the values the
    /// old version's `save_state` wrote. An error refuses the upgrade (the old version keeps
    /// serving).
    pub restore_state: Option<extern "C" fn(&mut Context) -> RResult<(), PluginError>>,
    /// Runs once after `on_load` when the host loads a new version to replace a running one
    /// (and whenever a host asks for a check): an error refuses the new version.
    pub self_test: Option<extern "C" fn(&mut Context) -> RResult<(), PluginError>>,
    /// `true` if the plugin was built with `panic = "abort"`: its panics abort the process
    /// instead of reaching the host as errors, so a host cannot protect itself in-process.
    pub panic_aborts: bool,
    // ---- Appended in module revision 3 (calls between plugins).
    /// Installs the host's [`CallRouter`], through which [`Context::call`] reaches other
    /// plugins. The host calls it once after loading, before `on_load`.
    pub set_router: Option<extern "C" fn(CallRouter)>,
}

/// Which revision of [`PluginModule`] this plg-api exports: how many fields were appended
/// after the ABI version 1 prefix, in steps. Revision 1: `execute`, `on_load`, `on_unload`,
/// `set_stop`. Revision 2 appended `save_state`, `restore_state`, `self_test` and
/// `panic_aborts`; revision 3 appended `set_router`.
pub const MODULE_REVISION: u32 = 3;

/// What the `PLG_PLUGIN_DECLARATION` symbol points at.
///
/// Its first two fields (`magic`, `abi_version`) never move, so a host can read them from any
/// plugin and refuse one built for another ABI before touching anything else.
#[repr(C)]
pub struct PluginDeclaration {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// The [`ABI_VERSION`] the plugin was built with.
    pub abi_version: u32,
    /// The plugin crate's name (`CARGO_PKG_NAME`).
    pub name: RStr<'static>,
    /// The plugin crate's version (`CARGO_PKG_VERSION`).
    pub version: RStr<'static>,
    /// The version of plg-api the plugin was built with.
    pub api_version: RStr<'static>,
    /// The layout of [`PluginModuleRef`] as the plugin saw it; the host checks it against its
    /// own with abi_stable before using `module`.
    pub module_layout: &'static TypeLayout,
    /// The entry points.
    pub module: PluginModuleRef,
}

impl PluginDeclaration {
    /// A declaration for `module`, stamped with this plg-api's ABI version and layout.
    pub const fn new(name: &'static str, version: &'static str, module: PluginModuleRef) -> Self {
        Self {
            magic: MAGIC,
            abi_version: ABI_VERSION,
            name: RStr::from_str(name),
            version: RStr::from_str(version),
            api_version: RStr::from_str(env!("CARGO_PKG_VERSION")),
            module_layout: <PluginModuleRef as StableAbi>::LAYOUT,
            module,
        }
    }
}

/// The library-wide stop flag. Each plugin library links its own copy of plg-api, so each
/// has its own flag; the host's copy is never set.
static STOP: AtomicBool = AtomicBool::new(false);

pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Items the [`export_plugin!`](crate::export_plugin) expansion uses. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable::{
        prefix_type::{PrefixTypeTrait, WithMetadata},
        std_types::RResult,
    };

    use std::{
        any::Any,
        panic::{catch_unwind, AssertUnwindSafe},
        sync::atomic::Ordering,
    };

    use crate::{Context, PluginError};

    /// The bytes of `text`, as an array: the plugin's note. `N` must be `text.len()`.
    pub const fn note_bytes<const N: usize>(text: &str) -> [u8; N] {
        let bytes = text.as_bytes();
        assert!(bytes.len() == N);
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }

    /// Sets the stop flag of this copy of plg-api.
    pub extern "C" fn set_stop(stop: bool) {
        super::STOP.store(stop, Ordering::Relaxed);
    }

    /// Installs the host's call router in this copy of plg-api.
    pub extern "C" fn set_router(router: crate::CallRouter) {
        crate::calls::set_router(router);
    }

    fn panic_message(payload: &(dyn Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_owned()
        }
    }

    static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

    /// Installs, in the plugin's own copy of std (a cdylib has its own), a panic hook that
    /// prints a panic message with terminal controls in it escaped
    /// ([`untrusted::escape`](crate::untrusted::escape)): a message can carry text from a
    /// context or a file. A message that needs no escaping goes to the previous hook as it is
    /// (so `RUST_BACKTRACE` still works). Runs before the plugin's first entry point, so a
    /// plugin that sets its own hook in `on_load` or `execute` replaces this one.
    fn install_panic_hook() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = panic_message(info.payload());
            if !message.chars().any(crate::untrusted::needs_escape) {
                return previous(info);
            }
            // No thread name: `thread::current()` can register a thread-local destructor,
            // which would keep the plugin's image mapped after unload.
            let location = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            // Never `eprintln!`: it panics when stderr cannot be written (a full disk, a
            // closed pipe), and a panic inside the panic hook aborts the whole host.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "a plugin panicked{}:\n{}",
                crate::untrusted::escape(&location),
                crate::untrusted::escape(&message)
            );
        }));
    }

    /// Runs `f` so that nothing unwinds out of the `extern "C"` function that calls it: a panic
    /// becomes a [`PluginErrorKind::Panicked`](crate::PluginErrorKind::Panicked) error.
    ///
    /// Generic and inlined, so the entry point compiles into the shim that calls it: a call
    /// that succeeds costs a few stores and no indirect call.
    #[inline(always)]
    pub fn guard<F>(origin: &'static str, ctx: &mut Context, f: F) -> RResult<(), PluginError>
    where
        F: FnOnce(&mut Context) -> Result<(), PluginError>,
    {
        if !PANIC_HOOK.is_completed() {
            PANIC_HOOK.call_once(install_panic_hook);
        }
        ctx.__set_origin(origin);
        match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
            Ok(Ok(())) => RResult::ROk(()),
            Ok(Err(e)) => RResult::RErr(e),
            Err(payload) => panicked(payload),
        }
    }

    /// The error a caught panic becomes. Out of line: it runs only after a panic.
    #[cold]
    #[inline(never)]
    fn panicked(payload: Box<dyn Any + Send>) -> RResult<(), PluginError> {
        let message = panic_message(&*payload);
        // Dropping the payload can itself panic; that must not unwind either.
        if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(second);
        }
        RResult::RErr(PluginError::panicked(message))
    }
}

/// Exports a plugin's entry points. Invoke it once, at the crate root of a `cdylib`.
///
/// ```
/// use plg_api::{export_plugin, Context, PluginError};
///
/// fn execute(ctx: &mut Context) -> Result<(), PluginError> {
///     let name = ctx.get_str("name").unwrap_or("world").to_owned();
///     ctx.set("greeting", format!("Hello, {name}!"));
///     Ok(())
/// }
/// fn on_load(ctx: &mut Context) -> Result<(), PluginError> { ctx.info("ready"); Ok(()) }
/// fn on_unload(_ctx: &mut Context) -> Result<(), PluginError> { Ok(()) }
///
/// export_plugin!(execute: execute, on_load: on_load, on_unload: on_unload);
/// ```
///
/// Everything after `execute` is optional, in this order: `on_load`, `on_unload`,
/// `save_state`, `restore_state`, `self_test` (see [`PluginModule`] for when each runs). The
/// macro embeds the crate's name and version and plg-api's ABI version (in the declaration, and
/// in a note a host reads from the file without loading it, [`NOTE_SYMBOL`]), records whether
/// the crate was built with `panic = "abort"`, and wraps every entry point so that a panic
/// reaches the host as an error instead of unwinding across `extern "C"` (which would abort the
/// host).
///
/// State that should survive a hot upgrade goes through `save_state` and `restore_state`:
///
/// ```
/// use std::sync::atomic::{AtomicI64, Ordering};
/// use plg_api::{export_plugin, Context, PluginError};
///
/// static COUNT: AtomicI64 = AtomicI64::new(0);
///
/// fn execute(ctx: &mut Context) -> Result<(), PluginError> {
///     ctx.set("count", COUNT.fetch_add(1, Ordering::SeqCst) + 1);
///     Ok(())
/// }
/// fn save_state(ctx: &mut Context) -> Result<(), PluginError> {
///     ctx.set("count", COUNT.load(Ordering::SeqCst));
///     Ok(())
/// }
/// fn restore_state(ctx: &mut Context) -> Result<(), PluginError> {
///     COUNT.store(ctx.get::<i64>("count")?, Ordering::SeqCst);
///     Ok(())
/// }
///
/// export_plugin!(execute: execute, save_state: save_state, restore_state: restore_state);
/// ```
#[macro_export]
macro_rules! export_plugin {
    (
        execute: $execute:path
        $(, on_load: $on_load:path)?
        $(, on_unload: $on_unload:path)?
        $(, save_state: $save_state:path)?
        $(, restore_state: $restore_state:path)?
        $(, self_test: $self_test:path)?
        $(,)?
    ) => {
        const _: () = {
            use $crate::__private as __plg;

            extern "C" fn __plg_execute(
                ctx: &mut $crate::Context,
            ) -> __plg::RResult<(), $crate::PluginError> {
                __plg::guard(env!("CARGO_PKG_NAME"), ctx, $execute)
            }

            const __PLG_MODULE: &__plg::WithMetadata<$crate::PluginModule> =
                &__plg::WithMetadata::new($crate::PluginModule {
                    execute: __plg_execute,
                    on_load: $crate::__plg_hook!($($on_load)?),
                    on_unload: $crate::__plg_hook!($($on_unload)?),
                    set_stop: __plg::set_stop,
                    save_state: $crate::__plg_hook!($($save_state)?),
                    restore_state: $crate::__plg_hook!($($restore_state)?),
                    self_test: $crate::__plg_hook!($($self_test)?),
                    panic_aborts: cfg!(panic = "abort"),
                    set_router: ::core::option::Option::Some(__plg::set_router),
                });

            const __PLG_NOTE_TEXT: &str = concat!(
                "plg-note-v1\nabi=",
                $crate::__plg_abi_version!(),
                "\nname=",
                env!("CARGO_PKG_NAME"),
                "\nversion=",
                env!("CARGO_PKG_VERSION"),
                "\n",
            );

            /// What the library says about itself, readable from the file without loading it.
            #[unsafe(no_mangle)]
            pub static PLG_PLUGIN_NOTE: [u8; __PLG_NOTE_TEXT.len()] =
                __plg::note_bytes(__PLG_NOTE_TEXT);

            #[unsafe(no_mangle)]
            pub static PLG_PLUGIN_DECLARATION: $crate::PluginDeclaration =
                $crate::PluginDeclaration::new(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                    $crate::PluginModuleRef(__PLG_MODULE.static_as_prefix()),
                );
        };
    };
}

/// Builds the optional hook field of [`export_plugin!`]. Not a public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __plg_hook {
    () => {
        ::core::option::Option::None
    };
    ($hook:path) => {{
        extern "C" fn __plg_hook_fn(
            ctx: &mut $crate::Context,
        ) -> $crate::__private::RResult<(), $crate::PluginError> {
            $crate::__private::guard(env!("CARGO_PKG_NAME"), ctx, $hook)
        }
        ::core::option::Option::Some(__plg_hook_fn as $crate::HookFn)
    }};
}

#[cfg(test)]
mod tests {
    use super::__private::guard;
    use crate::{Context, PluginError, PluginErrorKind};

    fn boom(_: &mut Context) -> Result<(), PluginError> {
        panic!("boom {}", 42)
    }

    #[test]
    fn guard_turns_a_panic_into_an_error() {
        let err = guard("t", &mut Context::new(), boom).unwrap_err();
        assert_eq!(err.kind(), PluginErrorKind::Panicked);
        assert_eq!(err.message(), "boom 42");
    }
}
