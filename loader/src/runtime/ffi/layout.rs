//! The abi_stable layout check of a plugin's module against this host's.

use abi_stable::{
    abi_stability::abi_checking::{check_layout_compatibility_with_globals, CheckingGlobals},
    type_layout::TypeLayout,
    StableAbi,
};
use plg_api::PluginModuleRef;

/// Checks a plugin's module layout against this host's. abi_stable's checker lets the
/// *implementation* have more prefix-type fields than the *interface*, so a plugin built
/// against a later plg-api (which appended fields) passes as it is. A plugin built against an
/// earlier plg-api has fewer fields; for it, the roles are swapped, which checks that its
/// fields are exactly this host's first ones. Either way every type the two share is checked
/// field by field; the fields a plugin lacks are read as `None` by its own prefix metadata.
/// `Err` carries abi_stable's report of the first check.
pub(super) fn check_module_layout(plugin: &'static TypeLayout) -> Result<(), String> {
    let host = <PluginModuleRef as StableAbi>::LAYOUT;
    // A fresh CheckingGlobals per check: abi_stable's process-wide one would keep pointers
    // into this library's layouts after it is unloaded.
    let newer_or_same =
        check_layout_compatibility_with_globals(host, plugin, &CheckingGlobals::new());
    let Err(errors) = newer_or_same else {
        return Ok(());
    };
    match check_layout_compatibility_with_globals(plugin, host, &CheckingGlobals::new()) {
        Ok(()) => Ok(()),
        Err(_) => Err(errors.to_string()),
    }
}

/// Condenses abi_stable's report (blocks of `Error:<what>` / `Expected:` / `Found:`) into
/// one line: `incompatible type size (expected 128, found 120); …`.
pub(super) fn summarize_layout_errors(report: &str) -> String {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let mut items: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(what) = line.strip_prefix("Error:") {
            let after = |label: &str| {
                lines[i..]
                    .iter()
                    .position(|l| *l == label)
                    .and_then(|j| lines.get(i + j + 1))
                    .copied()
                    .unwrap_or("?")
            };
            let item = format!(
                "{} (expected {}, found {})",
                what.trim(),
                after("Expected:"),
                after("Found:")
            );
            if !items.contains(&item) {
                items.push(item);
            }
        }
    }
    if items.is_empty() {
        "see the full report".to_owned()
    } else {
        items.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_reports_are_summarized_on_one_line() {
        let report = "noise\nError:incompatible type size\nExpected:\n    128\nFound:\n    120\n\
                      more\nError:mismatched type\nExpected:\n    A\nFound:\n    B\n";
        assert_eq!(
            summarize_layout_errors(report),
            "incompatible type size (expected 128, found 120); mismatched type (expected A, found B)"
        );
    }
}
