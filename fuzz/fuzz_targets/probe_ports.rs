//! Fuzz port lists (`--tcp PORTS`, `--udp PORTS`): never panics; a list that
//! parses is not empty, prints back to itself in its compact form, and an
//! error names a part of the input.
//!
//! Seed corpus: `fuzz/corpus/probe_ports/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use onedoor_proto::probe::PortSet;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match PortSet::parse(s) {
        Ok(set) => {
            assert!(!set.is_empty());
            assert!(!set.contains(0));
            let shown = set.to_string();
            assert_eq!(PortSet::parse(&shown).as_ref(), Ok(&set), "{shown}");
            assert_eq!(set.iter().count(), set.len());
        }
        Err(e) => {
            let part = e.part.trim_end_matches('…');
            assert!(s.contains(part), "error part {:?} not in {s:?}", e.part);
        }
    }
});
