//! Fuzz the strings users type for `serve`: `--route` specs and `HOST:PORT`
//! addresses. Never panics; an address that parses prints back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use onedoor_proto::spec::{parse_route, HostPort};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_route(s);
    let _ = HostPort::parse_listen(s);
    if let Ok(hp) = s.parse::<HostPort>() {
        assert_eq!(hp.to_string().parse::<HostPort>(), Ok(hp));
    }
});
