//! Tests across the sniffers: first flights captured from real clients
//! (`testdata/`, see its README), checked against every sniffer and parser;
//! and property tests that every answer is prefix-consistent, i.e. does not
//! depend on how TCP chunked the bytes.

use std::fmt::Debug;

use proptest::prelude::*;

use super::http::{self, HostParse};
use super::tls::{self, ClientHelloInfo, HelloParse};
use super::{Protocol, Verdict};
use crate::route::{Decision, NamePattern, Route, Router};
use crate::spec::HostPort;

/// Assert that `f` is prefix-consistent on `buf`: feeding every prefix in
/// turn, the answers are `pending` until some prefix decides, and every
/// longer prefix then gives that same answer. Returns the answer on `buf`.
pub(super) fn assert_prefix_consistent<T: PartialEq + Debug>(
    buf: &[u8],
    f: impl Fn(&[u8]) -> T,
    pending: impl Fn(&T) -> bool,
) -> T {
    let mut decided: Option<(usize, T)> = None;
    for k in 0..=buf.len() {
        let answer = f(&buf[..k]);
        match &decided {
            Some((at, first)) => assert_eq!(
                &answer, first,
                "the {k}-byte prefix disagrees with the answer decided at {at} bytes"
            ),
            None if !pending(&answer) => decided = Some((k, answer)),
            None => {}
        }
    }
    f(buf)
}

/// Every protocol that has a sniffer of its own.
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

/// A captured first flight and the protocol it is.
struct Fixture {
    file: &'static str,
    bytes: &'static [u8],
    protocol: Protocol,
}

macro_rules! fixtures {
    ($($file:literal => $protocol:ident,)*) => {
        &[$(Fixture {
            file: $file,
            bytes: include_bytes!(concat!("testdata/", $file)),
            protocol: Protocol::$protocol,
        },)*]
    };
}

const FIXTURES: &[Fixture] = fixtures! {
    "openssh-9.2p1.bin" => Ssh,
    "curl-7.88.1-tls-sni-a.example.bin" => Tls,
    "openssl-3.0.19-s_client-sni-alpn.bin" => Tls,
    "openssl-3.0.19-s_client-nosni.bin" => Tls,
    "openssl-3.0.19-s_client-maxfrag512-multirecord.bin" => Tls,
    "wget-1.21.3-gnutls-3.7.9-tls-sni-localhost.bin" => Tls,
    "openjdk-17.0.15-jsse-sni-alpn.bin" => Tls,
    "curl-7.88.1-http-host.bin" => Http,
    "curl-7.88.1-http-host-ipv6.bin" => Http,
    "curl-7.88.1-http-proxy-absolute-form.bin" => Http,
    "curl-7.88.1-http-proxy-connect.bin" => Http,
    "curl-7.88.1-h2c-prior-knowledge.bin" => Http,
    "wget-1.21.3-http-host.bin" => Http,
    "openvpn-2.6.14-hard-reset-v2.bin" => OpenVpn,
    "openvpn-2.6.14-hard-reset-v2-tls-auth.bin" => OpenVpn,
    "openvpn-2.6.14-hard-reset-v2-tls-crypt.bin" => OpenVpn,
    "openvpn-2.6.14-hard-reset-v3-tls-crypt-v2.bin" => OpenVpn,
    "curl-7.88.1-socks5.bin" => Socks5,
    "curl-7.88.1-socks5-userpass.bin" => Socks5,
    "tinc-1.0.36-id.bin" => Tinc,
    "sendxmpp-1.24-stream-open.bin" => Xmpp,
    "adb-29.0.6-cnxn.bin" => Adb,
};

fn fixture(file: &str) -> &'static [u8] {
    FIXTURES
        .iter()
        .find(|f| f.file == file)
        .unwrap_or_else(|| panic!("no fixture {file}"))
        .bytes
}

fn tls_fixtures() -> impl Iterator<Item = &'static Fixture> {
    FIXTURES.iter().filter(|f| f.protocol == Protocol::Tls)
}

/// Every sniffer and both parsers are prefix-consistent on `buf`, and the
/// parsers agree with their sniffers.
fn check_all(buf: &[u8]) {
    for p in SNIFFERS {
        assert_prefix_consistent(buf, |b| p.sniff(b), |v| *v == Verdict::NeedMore);
    }
    let hello =
        assert_prefix_consistent(buf, tls::parse_client_hello, |v| *v == HelloParse::NeedMore);
    let host = assert_prefix_consistent(buf, http::parse_host, |v| *v == HostParse::NeedMore);
    match tls::sniff(buf) {
        Verdict::NoMatch => assert_eq!(hello, HelloParse::NotTls),
        Verdict::NeedMore => assert_eq!(hello, HelloParse::NeedMore),
        Verdict::Match => {}
    }
    if let HelloParse::Hello(_) = hello {
        assert_eq!(tls::sniff(buf), Verdict::Match);
    }
    match http::sniff(buf) {
        Verdict::NoMatch => assert_eq!(host, HostParse::NotHttp),
        Verdict::NeedMore => assert_eq!(host, HostParse::NeedMore),
        Verdict::Match => {}
    }
}

#[test]
fn every_fixture_is_listed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/sniff/testdata");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|f| f.file.to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn each_fixture_matches_its_protocol_and_no_other() {
    for f in FIXTURES {
        for p in SNIFFERS {
            let want = if p == f.protocol {
                Verdict::Match
            } else {
                Verdict::NoMatch
            };
            assert_eq!(p.sniff(f.bytes), want, "{} sniffed as {p}", f.file);
        }
    }
}

#[test]
fn parsers_refuse_other_protocols() {
    for f in FIXTURES {
        if f.protocol != Protocol::Tls {
            assert_eq!(
                tls::parse_client_hello(f.bytes),
                HelloParse::NotTls,
                "{}",
                f.file
            );
        }
        if f.protocol != Protocol::Http {
            assert_eq!(http::parse_host(f.bytes), HostParse::NotHttp, "{}", f.file);
        }
    }
}

#[test]
fn every_fixture_is_prefix_consistent() {
    for f in FIXTURES {
        check_all(f.bytes);
    }
}

fn info(sni: Option<&str>, alpn: &[&str]) -> ClientHelloInfo {
    ClientHelloInfo {
        sni: sni.map(str::to_owned),
        alpn: alpn.iter().map(|&a| a.to_owned()).collect(),
    }
}

/// What each TLS client was told to send (see testdata/README.md).
fn expected_hellos() -> Vec<(&'static str, ClientHelloInfo)> {
    let h2 = ["h2", "http/1.1"];
    let mut many: Vec<String> = h2.iter().map(|&s| s.to_owned()).collect();
    many.extend((0..40).map(|i| format!("x-onedoor-{i:02}")));
    vec![
        (
            "curl-7.88.1-tls-sni-a.example.bin",
            info(Some("a.example"), &h2),
        ),
        (
            "openssl-3.0.19-s_client-sni-alpn.bin",
            info(Some("x.example"), &h2),
        ),
        ("openssl-3.0.19-s_client-nosni.bin", info(None, &[])),
        (
            "openssl-3.0.19-s_client-maxfrag512-multirecord.bin",
            ClientHelloInfo {
                sni: Some("multi.example".into()), // sent as Multi.Example
                alpn: many,
            },
        ),
        (
            "wget-1.21.3-gnutls-3.7.9-tls-sni-localhost.bin",
            info(Some("localhost"), &[]),
        ),
        (
            "openjdk-17.0.15-jsse-sni-alpn.bin",
            info(Some("java.example"), &h2),
        ),
    ]
}

#[test]
fn sni_and_alpn_from_fixtures() {
    let expected = expected_hellos();
    assert_eq!(expected.len(), tls_fixtures().count());
    for (file, want) in expected {
        assert_eq!(
            tls::parse_client_hello(fixture(file)),
            HelloParse::Hello(want),
            "{file}"
        );
    }
}

#[test]
fn multirecord_fixture_spans_two_records() {
    let buf = fixture("openssl-3.0.19-s_client-maxfrag512-multirecord.bin");
    let first_record = 5 + usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    assert!(first_record < buf.len());
    assert_eq!(tls::sniff(&buf[..first_record]), Verdict::Match);
    assert_eq!(
        tls::parse_client_hello(&buf[..first_record]),
        HelloParse::NeedMore
    );
    assert_eq!(
        tls::parse_client_hello(&buf[..buf.len() - 1]),
        HelloParse::NeedMore
    );
}

#[test]
fn fixtures_resplit_into_one_byte_records() {
    for (file, want) in expected_hellos() {
        let msg = tls::client_hello_message(fixture(file)).unwrap();
        let buf = tls::frame_records(&msg, 1);
        assert_eq!(
            tls::parse_client_hello(&buf),
            HelloParse::Hello(want),
            "{file}"
        );
    }
}

#[test]
fn host_from_fixtures() {
    let host = |h: &str| HostParse::Host(Some(h.to_owned()));
    for (file, want) in [
        ("curl-7.88.1-http-host.bin", host("www.example.org")),
        ("curl-7.88.1-http-host-ipv6.bin", host("2001:db8::1")),
        (
            "curl-7.88.1-http-proxy-absolute-form.bin",
            host("abs.example"),
        ),
        ("curl-7.88.1-http-proxy-connect.bin", host("tunnel.example")),
        ("curl-7.88.1-h2c-prior-knowledge.bin", HostParse::Host(None)),
        ("wget-1.21.3-http-host.bin", host("127.0.0.1")),
    ] {
        assert_eq!(http::parse_host(fixture(file)), want, "{file}");
    }
}

/// The router, fed each fixture a prefix at a time, settles on the route the
/// client was aimed at, and never changes its mind.
#[test]
fn router_routes_fixtures() {
    let to = HostPort::new("127.0.0.1", 1);
    let route = |p: Protocol| Route::new(p, to.clone());
    let routes = vec![
        route(Protocol::Ssh),
        Route {
            sni: Some(NamePattern::new("a.example")),
            ..route(Protocol::Tls)
        },
        Route {
            alpn: Some("h2".into()),
            ..route(Protocol::Tls)
        },
        route(Protocol::Tls),
        Route {
            host: Some(NamePattern::new("*.example.org")),
            ..route(Protocol::Http)
        },
        route(Protocol::Http),
        route(Protocol::OpenVpn),
        route(Protocol::Socks5),
        route(Protocol::Tinc),
        route(Protocol::Xmpp),
        route(Protocol::Adb),
    ];
    let router = Router::new(routes);
    let expected = |f: &Fixture| match f.file {
        "curl-7.88.1-tls-sni-a.example.bin" => 1,
        "openssl-3.0.19-s_client-sni-alpn.bin"
        | "openssl-3.0.19-s_client-maxfrag512-multirecord.bin"
        | "openjdk-17.0.15-jsse-sni-alpn.bin" => 2,
        "openssl-3.0.19-s_client-nosni.bin" | "wget-1.21.3-gnutls-3.7.9-tls-sni-localhost.bin" => 3,
        "curl-7.88.1-http-host.bin" => 4,
        _ => [
            (Protocol::Ssh, 0),
            (Protocol::Http, 5),
            (Protocol::OpenVpn, 6),
            (Protocol::Socks5, 7),
            (Protocol::Tinc, 8),
            (Protocol::Xmpp, 9),
            (Protocol::Adb, 10),
        ]
        .into_iter()
        .find(|(p, _)| *p == f.protocol)
        .map(|(_, i)| i)
        .unwrap(),
    };
    for f in FIXTURES {
        let got = assert_prefix_consistent(
            f.bytes,
            |b| router.decide(b, true),
            |d| *d == Decision::NeedMore,
        );
        assert_eq!(got, Decision::Route(expected(f)), "{}", f.file);
    }
}

/// Feed `data` in chunks of the given sizes, as a connection would, asking
/// `f` after each chunk; the first decided answer.
fn feed<T: PartialEq>(
    data: &[u8],
    chunks: &[usize],
    f: impl Fn(&[u8]) -> T,
    pending: impl Fn(&T) -> bool,
) -> Option<T> {
    let mut end = 0;
    let mut sizes = chunks.iter().cycle();
    while end < data.len() {
        end = (end + sizes.next().copied().unwrap_or(1).max(1)).min(data.len());
        let answer = f(&data[..end]);
        if !pending(&answer) {
            return Some(answer);
        }
    }
    None
}

/// Frame `msg` as handshake records with payload sizes taken in turn from
/// `sizes`.
fn frame_varying(msg: &[u8], sizes: &[usize], minor: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sizes = sizes.iter().cycle();
    let mut rest = msg;
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        out.extend_from_slice(&[0x16, 0x03, minor]);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(chunk);
        rest = tail;
    }
    out
}

/// First bytes that lead the random inputs into each sniffer's deeper paths.
const MAGIC: &[&[u8]] = &[
    b"",
    b"\x16\x03\x01",
    b"\x16\x03\x01\x00\x04\x01\x00",
    b"GET ",
    b"GET / HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\nHost: ",
    b"PRI ",
    b"SSH-2.0-",
    b"\x00\x0e\x38",
    b"\x01\x61\x50",
    b"\x05\x02",
    b"0 ",
    b"<",
    b"<?xml version='1.0'?><stream:stream xmlns='",
    b"CNXN",
];

/// Random bytes, often behind a protocol's first bytes.
fn input() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(MAGIC),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(magic, tail)| [magic, &tail[..]].concat())
}

/// A fixture with a few bytes overwritten, inserted or cut off, and random
/// bytes after it.
fn mutated_fixture() -> impl Strategy<Value = Vec<u8>> {
    (
        0..FIXTURES.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 0..6),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(i, edits, tail)| {
            let mut buf = FIXTURES[i].bytes.to_vec();
            for (at, byte, kind) in edits {
                if buf.is_empty() {
                    break;
                }
                let at = at.index(buf.len());
                match kind {
                    0 => buf[at] = byte,
                    1 => buf.insert(at, byte),
                    _ => buf.truncate(at),
                }
            }
            buf.extend_from_slice(&tail);
            buf
        })
}

proptest! {
    #[test]
    fn random_input_is_prefix_consistent(buf in input()) {
        check_all(&buf);
    }

    #[test]
    fn mutated_fixtures_are_prefix_consistent(buf in mutated_fixture()) {
        check_all(&buf);
    }

    /// However a fixture (plus whatever follows) is chunked, each sniffer's
    /// first decided answer is its answer on the whole.
    #[test]
    fn chunking_does_not_change_verdicts(
        i in 0..FIXTURES.len(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
        chunks in prop::collection::vec(1usize..40, 1..10),
    ) {
        let data = [FIXTURES[i].bytes, &tail[..]].concat();
        for p in SNIFFERS {
            let whole = p.sniff(&data);
            let fed = feed(&data, &chunks, |b| p.sniff(b), |v| *v == Verdict::NeedMore);
            prop_assert_eq!(fed.unwrap_or(Verdict::NeedMore), whole, "{}", p);
        }
        let whole = tls::parse_client_hello(&data);
        let fed = feed(&data, &chunks, tls::parse_client_hello, |v| *v == HelloParse::NeedMore);
        prop_assert_eq!(fed.unwrap_or(HelloParse::NeedMore), whole);
        let whole = http::parse_host(&data);
        let fed = feed(&data, &chunks, http::parse_host, |v| *v == HostParse::NeedMore);
        prop_assert_eq!(fed.unwrap_or(HostParse::NeedMore), whole);
    }

    /// A captured ClientHello re-split into many small records (as large
    /// post-quantum hellos are) gives the same SNI and ALPN.
    #[test]
    fn resplit_client_hello_keeps_sni_and_alpn(
        i in 0..6usize,
        sizes in prop::collection::vec(1usize..80, 1..8),
        minor in 1..=3u8,
    ) {
        let (file, want) = &expected_hellos()[i];
        let msg = tls::client_hello_message(fixture(file)).unwrap();
        let buf = frame_varying(&msg, &sizes, minor);
        prop_assert_eq!(tls::sniff(&buf), Verdict::Match);
        prop_assert_eq!(tls::parse_client_hello(&buf), HelloParse::Hello(want.clone()));
        prop_assert_eq!(tls::parse_client_hello(&buf[..buf.len() - 1]), HelloParse::NeedMore);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same, every prefix checked (slower, fewer cases).
    #[test]
    fn resplit_client_hello_is_prefix_consistent(
        i in 0..6usize,
        sizes in prop::collection::vec(1usize..300, 1..4),
    ) {
        let (file, want) = &expected_hellos()[i];
        let msg = tls::client_hello_message(fixture(file)).unwrap();
        let buf = frame_varying(&msg, &sizes, 1);
        let got = assert_prefix_consistent(&buf, tls::parse_client_hello, |v| {
            *v == HelloParse::NeedMore
        });
        prop_assert_eq!(got, HelloParse::Hello(want.clone()));
    }
}
