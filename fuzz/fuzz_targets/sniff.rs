//! Fuzz the first-bytes sniffers: every sniffer, `tls::parse_client_hello`
//! and `http::parse_host` run on the input and on its prefixes, and must be
//! prefix-consistent (an answer decided on `data[..k]` is the answer on
//! `data`); a ClientHello that parses must parse the same when re-split into
//! small records; nothing may panic.
//!
//! Seed corpus: `fuzz/corpus/sniff/` (copies of
//! `crates/proto/src/sniff/testdata/*.bin`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use onedoor_proto::sniff::http::{self, HostParse};
use onedoor_proto::sniff::tls::{self, HelloParse};
use onedoor_proto::sniff::{Protocol, Verdict};

/// Protocols with a sniffer of their own.
const SNIFFERS: [Protocol; 8] = [
    Protocol::Ssh,
    Protocol::Tls,
    Protocol::Http,
    Protocol::OpenVpn,
    Protocol::Socks5,
    Protocol::Tinc,
    Protocol::Xmpp,
    Protocol::Adb,
];

/// The prefix lengths checked: all of them for short inputs, an even spread
/// (plus the last few) for long ones, to keep each run fast.
fn split_points(len: usize) -> impl Iterator<Item = usize> {
    let step = if len <= 1024 { 1 } else { len / 512 };
    (0..len).step_by(step).chain(len.saturating_sub(8)..len)
}

/// Every decided answer on a prefix equals the answer on the whole.
fn check<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    f: impl Fn(&[u8]) -> T,
    pending: impl Fn(&T) -> bool,
) -> T {
    let whole = f(data);
    for k in split_points(data.len()) {
        let part = f(&data[..k]);
        if !pending(&part) {
            assert_eq!(part, whole, "prefix of {k} of {} bytes", data.len());
        }
    }
    whole
}

fuzz_target!(|data: &[u8]| {
    for p in SNIFFERS {
        check(data, |b| p.sniff(b), |v| *v == Verdict::NeedMore);
    }
    let hello = check(data, tls::parse_client_hello, |v| {
        *v == HelloParse::NeedMore
    });
    if let HelloParse::Hello(_) = &hello {
        assert_eq!(tls::sniff(data), Verdict::Match);
        let msg = tls::client_hello_message(data).expect("a parsed hello has a message");
        let fragment = data.len() % 61 + 1;
        let resplit = tls::frame_records(&msg, fragment);
        assert_eq!(tls::parse_client_hello(&resplit), hello);
    }
    let host = check(data, http::parse_host, |v| *v == HostParse::NeedMore);
    if let HostParse::Host(_) = host {
        assert_eq!(http::sniff(data), Verdict::Match);
    }
});
