//! Fuzz the probe's wire parsers (`onedoor_proto::probe::hello`).
//!
//! On the raw input: the hello, reply and arrivals-report parsers never
//! panic, are prefix-consistent (an answer decided on `data[..k]` is the
//! answer on `data`), never accept a reply or a report (nobody without the
//! server's signing key forges one), and a hello they open seals back to
//! the same bytes.
//!
//! On messages built from the input: a sealed hello opens to the same
//! fields, a reply verifies with the port seen, and altering the byte the
//! input points at makes the reply fail.
//!
//! Seed corpus: `fuzz/corpus/probe_hello/`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use onedoor_proto::probe::{
    fingerprint, ChunkParse, Hello, HelloKind, HelloParse, ProbeKey, ReplyCheck, Signer,
    SigningKey, HELLO_LEN, NONCE_LEN, REPLY_LEN, RUN_ID_LEN,
};

fn server() -> &'static (SigningKey, ProbeKey) {
    static SERVER: OnceLock<(SigningKey, ProbeKey)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7; 32]);
        let probe = ProbeKey::new(fingerprint(&key.public_key()));
        (key, probe)
    })
}

/// Every decided answer on a prefix equals the answer on the whole.
fn consistent<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    f: impl Fn(&[u8]) -> T,
    pending: impl Fn(&T) -> bool,
) -> T {
    let whole = f(data);
    for k in 0..data.len().min(400) {
        let part = f(&data[..k]);
        if !pending(&part) {
            assert_eq!(part, whole, "prefix of {k} of {} bytes", data.len());
        }
    }
    whole
}

/// A hello made of the input's first bytes (zeros where it runs out).
fn hello_from(data: &[u8]) -> Hello {
    let mut b = [0u8; 1 + 2 + NONCE_LEN + 8 + RUN_ID_LEN];
    let n = b.len().min(data.len());
    b[..n].copy_from_slice(&data[..n]);
    let kind = match b[0] % 3 {
        0 => HelloKind::Tcp,
        1 => HelloKind::Udp,
        _ => HelloKind::Arrivals,
    };
    Hello {
        kind,
        port: u16::from_be_bytes([b[1], b[2]]),
        nonce: b[3..19].try_into().unwrap(),
        unix_secs: u64::from_be_bytes(b[19..27].try_into().unwrap()),
        run: b[27..35].try_into().unwrap(),
    }
}

fuzz_target!(|data: &[u8]| {
    let (signer, key) = server();
    let h = hello_from(data);

    // Raw input against every parser.
    let parsed = consistent(data, |b| key.parse(b), |v| *v == HelloParse::NeedMore);
    for opened in [parsed, key.parse_datagram(data)] {
        // Only a tag made with the key opens: the fields seal back to the
        // very same bytes.
        if let HelloParse::Hello(found) = opened {
            if let Ok(again) = key.seal(&found) {
                assert_eq!(&again[..], &data[..HELLO_LEN]);
            }
        }
    }
    let reply = consistent(
        data,
        |b| key.check_reply(&h, b),
        |v| *v == ReplyCheck::NeedMore,
    );
    assert!(!matches!(reply, ReplyCheck::Verified(_)));
    assert!(!matches!(
        key.check_reply_datagram(&h, data),
        ReplyCheck::Verified(_)
    ));
    let pk = signer.public_key();
    let chunk = consistent(
        data,
        |b| key.parse_arrivals_chunk(&h, &pk, 0, b),
        |v| *v == ChunkParse::NeedMore,
    );
    assert!(!matches!(chunk, ChunkParse::Chunk(_)));

    // Messages built from the input.
    if let Ok(bytes) = key.seal(&h) {
        let opened = if h.kind == HelloKind::Udp {
            key.parse_datagram(&bytes)
        } else {
            key.parse(&bytes)
        };
        assert_eq!(opened, HelloParse::Hello(h));
        let at = usize::from(data.last().copied().unwrap_or(0)) % HELLO_LEN;
        let mut bad = bytes;
        bad[at] ^= 0x01;
        assert_eq!(key.parse(&bad), HelloParse::NotHello);
    }
    let seen = h
        .port
        .rotate_left(u32::from(data.first().copied().unwrap_or(0)));
    let good = key.reply(&h, seen, signer);
    match key.check_reply(&h, &good) {
        ReplyCheck::Verified(v) => assert_eq!(v.port_seen, seen),
        other => panic!("own reply refused: {other:?}"),
    }
    let at = usize::from(data.last().copied().unwrap_or(0)) % REPLY_LEN;
    let mut bad = good;
    bad[at] ^= data.get(1).copied().unwrap_or(0).max(1);
    assert!(matches!(key.check_reply(&h, &bad), ReplyCheck::Invalid(_)));
});
