//! Fuzz the WebSocket door: ticket request lines, tickets, the replay guard
//! (`onedoor_proto::tunnel::ticket`) and the upgrade heads
//! (`onedoor_proto::tunnel::upgrade`).
//!
//! On the raw input: nothing panics; `parse_request_line` and
//! `request_head_end` are prefix-consistent (an answer decided on
//! `data[..k]` is the answer on `data`); a request line judged ours holds
//! the canonical text of the ticket it opened; text that opens is the
//! canonical text of its ticket; a request head that is a valid upgrade
//! gets a 101 the client accepts.
//!
//! On values built from the input: a ticket issued from the first 16 bytes
//! opens to itself, and flipping the bit the input points at refuses it;
//! the replay guard, driven by 3-byte operations, never admits a ticket
//! twice or outside its window and stays within its capacity.
//!
//! Seed corpus: `fuzz/corpus/ws_ticket/`.

#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use onedoor_proto::tunnel::ticket::{
    parse_request_line, RequestParse, Ticket, TicketGuard, TicketKey, NONCE_LEN, TICKET_TEXT_LEN,
};
use onedoor_proto::tunnel::upgrade::{
    check_upgrade_response, request_head_end, switching_protocols, websocket_key, HeadParse,
};

fn key() -> &'static TicketKey {
    static KEY: OnceLock<TicketKey> = OnceLock::new();
    KEY.get_or_init(|| TicketKey::for_key(&[7; 32]))
}

/// Every decided answer on a prefix equals the answer on the whole
/// (prefixes sampled on long inputs, to keep runs fast).
fn consistent<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    f: impl Fn(&[u8]) -> T,
    pending: impl Fn(&T) -> bool,
) -> T {
    let whole = f(data);
    let step = (data.len() / 256).max(1);
    for k in (0..data.len()).step_by(step) {
        let part = f(&data[..k]);
        if !pending(&part) {
            assert_eq!(part, whole, "decided on {k} bytes, changed later");
        }
    }
    whole
}

fuzz_target!(|data: &[u8]| {
    let k = key();

    let line = consistent(
        data,
        |d| parse_request_line(d, k),
        |a| *a == RequestParse::NeedMore,
    );
    if let RequestParse::Ticket(t) = line {
        let text = k.issue(&t);
        assert!(data.windows(TICKET_TEXT_LEN).any(|w| w == text.as_bytes()));
    }

    if let Some(t) = k.open(data) {
        assert_eq!(k.issue(&t).as_bytes(), data);
    }

    if data.len() >= 17 {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&data[..NONCE_LEN]);
        let secs = u32::from_be_bytes([data[11], data[12], data[13], data[14]]);
        let t = Ticket {
            nonce,
            unix_secs: secs,
            inner: data[15] & 1 == 1,
        };
        let mut text = k.issue(&t).into_bytes();
        assert_eq!(k.open(&text), Some(t));
        let bit = usize::from(data[16]) % (TICKET_TEXT_LEN * 8);
        text[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(k.open(&text), None);
    }

    let head = consistent(
        data,
        |d| request_head_end(d, 4096),
        |a| *a == HeadParse::NeedMore,
    );
    if let HeadParse::Done { head_len } = head {
        if let Some(ws_key) = websocket_key(&data[..head_len]) {
            assert_eq!(
                check_upgrade_response(&switching_protocols(&ws_key), &ws_key),
                Ok(())
            );
        }
    }
    let _ = websocket_key(data);
    let _ = check_upgrade_response(data, "dGhlIHNhbXBsZSBub25jZQ==");

    let cap = 4;
    let window = 30;
    let mut guard = TicketGuard::new(window, cap);
    let mut admitted = HashSet::new();
    for op in data.chunks_exact(3) {
        let t = Ticket {
            nonce: [op[0] % 16; NONCE_LEN],
            unix_secs: 1_000 + u32::from(op[1]),
            inner: false,
        };
        let now = 1_000 + u64::from(op[2]);
        if guard.admit(&t, now) {
            assert!(admitted.insert(t), "admitted twice: {t:?}");
            assert!(now.abs_diff(u64::from(t.unix_secs)) <= u64::from(window));
        }
        assert!(guard.len() <= cap);
    }
});
