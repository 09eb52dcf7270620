//! Fuzz the serve config: any text parses to a config or to an error that
//! names a `file:line`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onedoor_proto::config::{Origin, ServeLayer};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ServeLayer::from_toml("fuzz.toml", text).and_then(ServeLayer::validate) {
        Ok(_) => {}
        Err(e) => {
            if let Origin::File { line, .. } = e.origin {
                assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
            }
        }
    }
});
