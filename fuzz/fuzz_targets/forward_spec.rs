//! Fuzz the forward specs of `connect` (`-L`, `-R`, `-D`, `-W`): the first
//! byte picks the flag, the rest is the spec. Never panics; a spec that
//! parses prints back to an equal forward for the same flag.

#![no_main]

use libfuzzer_sys::fuzz_target;
use onedoor_proto::spec::{Forward, ForwardFlag};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(spec) = std::str::from_utf8(rest) else {
        return;
    };
    let flag = match selector % 4 {
        0 => ForwardFlag::Local,
        1 => ForwardFlag::Remote,
        2 => ForwardFlag::Dynamic,
        _ => ForwardFlag::Stdio,
    };
    match Forward::parse(flag, spec) {
        Ok(f) => {
            assert_eq!(f.flag(), flag);
            assert_eq!(Forward::parse(flag, &f.to_string()), Ok(f));
        }
        Err(e) => assert_eq!(e.flag, flag),
    }
});
