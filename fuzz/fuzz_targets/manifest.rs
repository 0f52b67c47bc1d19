//! Fuzzes plugin.json parsing and validation: any input must give a manifest or a typed
//! error, never a panic; a valid manifest must survive a round trip through `to_json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plg_loader::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Manifest::from_json(text, "fuzz/plugin.json") {
        let again = Manifest::from_json(&m.to_json(), "fuzz/plugin.json")
            .expect("a valid manifest re-parses");
        assert_eq!(again, m);
    }
});
