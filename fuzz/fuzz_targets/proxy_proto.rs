//! Fuzz `proxy_proto::parse`: never panics; a header it reports fits in the
//! input, is exactly its first `len` bytes, and its addresses survive a
//! re-encode in both versions.

#![no_main]

use libfuzzer_sys::fuzz_target;
use onedoor_proto::proxy_proto::{encode, parse, Parsed, ProxyVersion};

fuzz_target!(|data: &[u8]| {
    let Parsed::Header(h) = parse(data) else {
        return;
    };
    assert!(
        h.len > 0 && h.len <= data.len(),
        "len {} of {}",
        h.len,
        data.len()
    );
    // The header is its own bytes, no more and no fewer.
    assert_eq!(parse(&data[..h.len]), Parsed::Header(h));
    assert_eq!(parse(&data[..h.len - 1]), Parsed::NeedMore);
    if let (Some(src), Some(dst)) = (h.source, h.destination) {
        // Both come from one header, so they share a family and encode
        // needs no mapping: the same addresses must come back.
        assert_eq!(src.is_ipv4(), dst.is_ipv4());
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            let again = encode(version, src, dst);
            match parse(&again) {
                Parsed::Header(g) => {
                    assert_eq!(g.source, Some(src));
                    assert_eq!(g.destination, Some(dst));
                    assert_eq!(g.len, again.len());
                }
                other => panic!("re-encoded {version:?} header parses as {other:?}"),
            }
        }
    }
});
