//! WebSocket door tickets: how the `ws`/`wss` transports knock.
//!
//! A client opens its WebSocket with the request line
//! `GET /<ticket> HTTP/1.1` (or `GET /prefix/<ticket> HTTP/1.1` behind a
//! reverse proxy that routes a path prefix), where `<ticket>` is 43
//! characters of unpadded base64url: 32 bytes that only someone holding the
//! server's fingerprint can make. Serve recognises such a request by its
//! first line alone ([`parse_request_line`]); there is no fixed path, header
//! or banner a scanner could match, and every other request goes to the
//! fallback website.
//!
//! **Ticket bytes.** `nonce (11) ‖ unix_secs (4, big-endian) ‖ flags (1) ‖
//! mac (16)`, where `flags` bit 0 is [`Ticket::inner`] and every other bit is
//! zero, and `mac = HMAC-SHA256(key, "onedoor ws ticket v1" ‖ first 16
//! bytes)[..16]`. The key ([`TicketKey`]) is
//! `SHA-256("onedoor ws ticket v1\0" ‖ fingerprint digest)`: the client takes
//! the fingerprint it pinned or the one of the certificate it verified, serve
//! the one of its identity. A 128-bit MAC is checked in constant time.
//!
//! **Replays.** A ticket seen on the wire (plain `ws`, or at a
//! TLS-terminating proxy) could be replayed to learn that this website is a
//! door. [`TicketGuard`] admits each ticket once, and only while its time is
//! within a window of serve's clock; its memory is bounded and it fails
//! closed when full.
//!
//! Pure: time comes in as arguments, randomness (the nonce) from the caller.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::replay::{NonceGuard, WhenFull};

/// The length of a ticket in bytes.
pub const TICKET_LEN: usize = 32;

/// The length of a ticket as text: 32 bytes of unpadded base64url.
pub const TICKET_TEXT_LEN: usize = 43;

/// The longest request line (`GET ... HTTP/1.1\r\n`, CRLF included) that
/// [`parse_request_line`] will wait for.
pub const MAX_REQUEST_LINE: usize = 2048;

/// The length of a ticket's nonce.
pub const NONCE_LEN: usize = 11;

/// Domain separation for the key derivation.
const KEY_LABEL: &[u8] = b"onedoor ws ticket v1\0";

/// Domain separation for the MAC input.
const MAC_LABEL: &[u8] = b"onedoor ws ticket v1";

/// The bytes of a ticket covered by its MAC.
const BODY_LEN: usize = 16;

/// The length of the (truncated) MAC.
const MAC_LEN: usize = TICKET_LEN - BODY_LEN;

/// The flag bit for [`Ticket::inner`].
const FLAG_INNER: u8 = 1;

/// The request line's fixed start.
const METHOD: &[u8] = b"GET ";

/// The request line's fixed end, after the path.
const VERSION: &[u8] = b" HTTP/1.1\r\n";

type HmacSha256 = Hmac<Sha256>;

/// The key that issues and opens tickets, derived from the server's
/// fingerprint. `Debug` does not show it.
#[derive(Clone)]
pub struct TicketKey([u8; 32]);

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(***)")
    }
}

/// What a ticket says, once opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// Random bytes from the client: makes every ticket unique, so the
    /// server can refuse a replay.
    pub nonce: [u8; NONCE_LEN],
    /// When the client made the ticket (seconds since the Unix epoch, the
    /// client's clock).
    pub unix_secs: u32,
    /// The session inside is wrapped in an inner encrypted layer (the outer
    /// transport is not trusted to be private).
    pub inner: bool,
}

impl TicketKey {
    /// The ticket key for the server whose fingerprint (SHA-256 digest) is
    /// `fingerprint`: `SHA-256("onedoor ws ticket v1\0" ‖ fingerprint)`.
    pub fn for_key(fingerprint: &[u8; 32]) -> TicketKey {
        let mut h = Sha256::new();
        h.update(KEY_LABEL);
        h.update(fingerprint);
        TicketKey(h.finalize().into())
    }

    /// The MAC over a ticket's first 16 bytes.
    fn mac(&self, body: &[u8; BODY_LEN]) -> [u8; MAC_LEN] {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        m.update(MAC_LABEL);
        m.update(body);
        let full = m.finalize().into_bytes();
        let mut out = [0; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// Make the ticket text (43 characters of unpadded base64url) for `t`.
    pub fn issue(&self, t: &Ticket) -> String {
        let mut body = [0u8; BODY_LEN];
        body[..NONCE_LEN].copy_from_slice(&t.nonce);
        body[NONCE_LEN..NONCE_LEN + 4].copy_from_slice(&t.unix_secs.to_be_bytes());
        body[BODY_LEN - 1] = if t.inner { FLAG_INNER } else { 0 };
        let mut bytes = [0u8; TICKET_LEN];
        bytes[..BODY_LEN].copy_from_slice(&body);
        bytes[BODY_LEN..].copy_from_slice(&self.mac(&body));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Open ticket text made by [`TicketKey::issue`] under this key.
    ///
    /// `None` for anything else: a wrong length, a character outside the
    /// base64url alphabet, a non-canonical last character, padding, a MAC
    /// that does not match (compared in constant time) or unknown flag bits.
    /// Freshness and replays are [`TicketGuard`]'s business.
    pub fn open(&self, text: &[u8]) -> Option<Ticket> {
        if text.len() != TICKET_TEXT_LEN {
            return None;
        }
        // 43 characters decode to 32 bytes; the engine's length estimate
        // asks for a little more room than that.
        let mut buf = [0u8; TICKET_LEN + 3];
        let n = URL_SAFE_NO_PAD.decode_slice(text, &mut buf).ok()?;
        if n != TICKET_LEN {
            return None;
        }
        let mut body = [0u8; BODY_LEN];
        body.copy_from_slice(&buf[..BODY_LEN]);
        let expected = self.mac(&body);
        if !bool::from(expected.ct_eq(&buf[BODY_LEN..TICKET_LEN])) {
            return None;
        }
        let flags = body[BODY_LEN - 1];
        if flags & !FLAG_INNER != 0 {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&body[..NONCE_LEN]);
        let mut secs = [0u8; 4];
        secs.copy_from_slice(&body[NONCE_LEN..NONCE_LEN + 4]);
        Some(Ticket {
            nonce,
            unix_secs: u32::from_be_bytes(secs),
            inner: flags & FLAG_INNER != 0,
        })
    }
}

/// What the first bytes of a connection say, for [`parse_request_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestParse {
    /// So far these bytes could still be a ticket request line: read more.
    NeedMore,
    /// Not a ticket request line, whatever follows: hand the connection to
    /// the fallback (with the bytes already read).
    NotOurs,
    /// A complete request line whose path ends in a ticket that opens under
    /// the key. Replays and freshness are still to be checked
    /// ([`TicketGuard`]).
    Ticket(Ticket),
}

/// Judge the first bytes of a connection: is it the request line
/// `GET SP path SP HTTP/1.1 CRLF` (exactly `"GET "`, exactly
/// `" HTTP/1.1\r\n"`) where `path` starts with `/`, consists of visible
/// ASCII, and its last `/`-segment (a query `?...` ignored) is a ticket that
/// opens under `key`?
///
/// Only the first line is looked at, so the headers that follow (the
/// WebSocket upgrade, checked with
/// [`websocket_key`](super::upgrade::websocket_key)) don't matter here.
///
/// Prefix-consistent: once the answer is [`RequestParse::NotOurs`] or
/// [`RequestParse::Ticket`], every extension of `buf` gets the same answer.
/// The answer is `NotOurs` at the first byte that cannot lead to a match
/// (a first byte other than `G`, a path byte that would push the line past
/// [`MAX_REQUEST_LINE`], the space or `?` ending a last segment that is not
/// a valid ticket, ...), so a stranger's request is handed on as soon as
/// possible.
pub fn parse_request_line(buf: &[u8], key: &TicketKey) -> RequestParse {
    let buf = &buf[..buf.len().min(MAX_REQUEST_LINE)];
    let mut i = 0;
    // "GET "
    while i < METHOD.len() {
        match buf.get(i) {
            None => return RequestParse::NeedMore,
            Some(&b) if b != METHOD[i] => return RequestParse::NotOurs,
            Some(_) => i += 1,
        }
    }
    // The path: '/' then visible ASCII up to the space.
    match buf.get(i) {
        None => return RequestParse::NeedMore,
        Some(&b'/') => {}
        Some(_) => return RequestParse::NotOurs,
    }
    let mut last_slash = i;
    let mut ticket: Option<Ticket> = None;
    let mut in_query = false;
    loop {
        let Some(&b) = buf.get(i) else {
            return RequestParse::NeedMore;
        };
        if b == b' ' {
            break;
        }
        if !(0x21..=0x7e).contains(&b) {
            return RequestParse::NotOurs;
        }
        // This path byte needs at least the version after it.
        if i + 1 + VERSION.len() > MAX_REQUEST_LINE {
            return RequestParse::NotOurs;
        }
        if !in_query {
            match b {
                b'/' => last_slash = i,
                b'?' => {
                    in_query = true;
                    match key.open(&buf[last_slash + 1..i]) {
                        Some(t) => ticket = Some(t),
                        None => return RequestParse::NotOurs,
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    // `i` is at the space after the path.
    let ticket = match ticket {
        Some(t) => t,
        None => match key.open(&buf[last_slash + 1..i]) {
            Some(t) => t,
            None => return RequestParse::NotOurs,
        },
    };
    for &want in VERSION {
        match buf.get(i) {
            None => return RequestParse::NeedMore,
            Some(&b) if b != want => return RequestParse::NotOurs,
            Some(_) => i += 1,
        }
    }
    RequestParse::Ticket(ticket)
}

/// The request path for a ticket: `prefix` (such as `""` or `"/door"`; a
/// trailing `/` is dropped) joined with the ticket text: `"/door/<ticket>"`;
/// prefix `""` gives `"/<ticket>"`.
pub fn request_path(prefix: &str, ticket_text: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let mut path = String::with_capacity(prefix.len() + 1 + ticket_text.len());
    if !prefix.is_empty() && !prefix.starts_with('/') {
        path.push('/');
    }
    path.push_str(prefix);
    path.push('/');
    path.push_str(ticket_text);
    path
}

/// Serve's memory of recent tickets: a ticket is admitted once, and only
/// while its time is within `window` seconds of serve's clock, either way.
///
/// A nonce is remembered until its ticket would be refused as stale anyway.
/// Memory is bounded: at most `cap` nonces are remembered, and when that
/// many unexpired ones are, new tickets are refused (fail closed) rather
/// than a remembered one forgotten. Only a holder of the fingerprint can
/// make tickets, so only such a holder can fill the guard.
///
/// If serve's clock steps back, tickets older than what the guard may
/// already have forgotten (judged by the latest `now` it was given) stay
/// refused, so a step back never re-opens a replay.
#[derive(Debug, Clone)]
pub struct TicketGuard(NonceGuard<NONCE_LEN>);

impl TicketGuard {
    /// A guard accepting tickets within `window_secs` of the clock and
    /// remembering at most `cap` nonces (`cap` 0 refuses everything).
    pub fn new(window_secs: u32, cap: usize) -> Self {
        TicketGuard(NonceGuard::new(
            u64::from(window_secs),
            cap,
            WhenFull::Refuse,
        ))
    }

    /// Admit `t` at `now_unix` (serve's clock, seconds since the epoch)?
    /// Call it after the ticket opened; `false` means: a replay, a stale or
    /// future ticket, or a full guard — treat the request as a stranger's.
    pub fn admit(&mut self, t: &Ticket, now_unix: u64) -> bool {
        self.0
            .admit(t.nonce, u64::from(t.unix_secs), now_unix)
            .is_ok()
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nothing remembered?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_750_000_000;

    fn key() -> TicketKey {
        TicketKey::for_key(&[7; 32])
    }

    fn other_key() -> TicketKey {
        TicketKey::for_key(&[8; 32])
    }

    fn ticket(seed: u8) -> Ticket {
        Ticket {
            nonce: [seed; NONCE_LEN],
            unix_secs: NOW as u32,
            inner: seed % 2 == 1,
        }
    }

    fn line(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\n").into_bytes()
    }

    /// Feed `data` in the given chunks; return every answer along the way.
    fn feed(data: &[u8], cuts: &[usize], key: &TicketKey) -> Vec<RequestParse> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        cuts.push(data.len());
        cuts.sort_unstable();
        cuts.into_iter()
            .map(|c| parse_request_line(&data[..c], key))
            .collect()
    }

    /// Once decided, every later answer is the same.
    fn assert_consistent(answers: &[RequestParse]) {
        let mut decided = None;
        for a in answers {
            match (decided, a) {
                (None, RequestParse::NeedMore) => {}
                (None, a) => decided = Some(*a),
                (Some(d), a) => assert_eq!(d, *a, "answers {answers:?}"),
            }
        }
    }

    #[test]
    fn issue_and_open() {
        let k = key();
        for seed in 0..4 {
            let t = ticket(seed);
            let text = k.issue(&t);
            assert_eq!(text.len(), TICKET_TEXT_LEN);
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(k.open(text.as_bytes()), Some(t));
            assert_eq!(other_key().open(text.as_bytes()), None);
        }
    }

    #[test]
    fn key_is_the_labelled_hash_and_debug_hides_it() {
        let fp = [3u8; 32];
        let mut h = Sha256::new();
        h.update(b"onedoor ws ticket v1\0");
        h.update(fp);
        let want: [u8; 32] = h.finalize().into();
        let k = TicketKey::for_key(&fp);
        assert_eq!(k.0, want);
        assert_eq!(format!("{k:?}"), "TicketKey(***)");
    }

    #[test]
    fn layout_is_as_documented() {
        let k = key();
        let t = Ticket {
            nonce: *b"0123456789a",
            unix_secs: 0x0102_0304,
            inner: true,
        };
        let bytes = URL_SAFE_NO_PAD.decode(k.issue(&t)).unwrap();
        assert_eq!(&bytes[..11], b"0123456789a");
        assert_eq!(&bytes[11..15], &[1, 2, 3, 4]);
        assert_eq!(bytes[15], 1);
        let mut m = HmacSha256::new_from_slice(&k.0).unwrap();
        m.update(b"onedoor ws ticket v1");
        m.update(&bytes[..16]);
        assert_eq!(&bytes[16..], &m.finalize().into_bytes()[..16]);
    }

    #[test]
    fn known_vector() {
        // Computed independently (Python's hmac and hashlib), also the
        // fuzz seed `fuzz/corpus/ws_ticket/upgrade-root-ticket`.
        let t = Ticket {
            nonce: [1; NONCE_LEN],
            unix_secs: 1_750_000_000,
            inner: false,
        };
        let text = "AQEBAQEBAQEBAQFoTuGAAHkActY7zQwxTWdgbYDQSks";
        assert_eq!(key().issue(&t), text);
        assert_eq!(key().open(text.as_bytes()), Some(t));
        let t = Ticket {
            nonce: *b"\0\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a",
            unix_secs: 1_750_000_100,
            inner: true,
        };
        assert_eq!(
            key().issue(&t),
            "AAECAwQFBgcICQpoTuHkAaMlP1sawf7ABCL6ASOdYgs"
        );
    }

    #[test]
    fn open_refuses_bad_text() {
        let k = key();
        let text = k.issue(&ticket(1));
        assert_eq!(k.open(b""), None);
        assert_eq!(k.open(&text.as_bytes()[..42]), None);
        assert_eq!(k.open(format!("{text}=").as_bytes()), None);
        assert_eq!(k.open(format!("{text}A").as_bytes()), None);
        // Standard-alphabet characters are not base64url.
        let mut plus = text.clone().into_bytes();
        plus[0] = b'+';
        assert_eq!(k.open(&plus), None);
        // Unknown flag bits, even under a valid MAC.
        let mut body = [0u8; BODY_LEN];
        body[BODY_LEN - 1] = 0x02;
        let mut bytes = [0u8; TICKET_LEN];
        bytes[..BODY_LEN].copy_from_slice(&body);
        bytes[BODY_LEN..].copy_from_slice(&k.mac(&body));
        assert_eq!(k.open(URL_SAFE_NO_PAD.encode(bytes).as_bytes()), None);
    }

    #[test]
    fn request_lines() {
        let k = key();
        let t = ticket(3);
        let text = k.issue(&t);
        let ours = RequestParse::Ticket(t);
        assert_eq!(parse_request_line(&line(&format!("/{text}")), &k), ours);
        assert_eq!(
            parse_request_line(&line(&format!("/door/{text}")), &k),
            ours
        );
        assert_eq!(
            parse_request_line(&line(&format!("/a/b/{text}?x=/y&z")), &k),
            ours
        );
        assert_eq!(parse_request_line(&line(&format!("/{text}?")), &k), ours);
        // Headers after the line don't matter.
        let mut full = line(&format!("/{text}"));
        full.extend_from_slice(b"Host: example.com\r\n\r\n");
        assert_eq!(parse_request_line(&full, &k), ours);

        let not = RequestParse::NotOurs;
        assert_eq!(parse_request_line(&line(&format!("/{text}/")), &k), not);
        assert_eq!(parse_request_line(&line(&format!("/{text}x")), &k), not);
        assert_eq!(parse_request_line(&line(&format!("/x{text}")), &k), not);
        assert_eq!(parse_request_line(&line(&text), &k), not);
        assert_eq!(parse_request_line(&line("/"), &k), not);
        assert_eq!(
            parse_request_line(format!("get /{text} HTTP/1.1\r\n").as_bytes(), &k),
            not
        );
        assert_eq!(
            parse_request_line(format!("GET  /{text} HTTP/1.1\r\n").as_bytes(), &k),
            not
        );
        assert_eq!(
            parse_request_line(format!("GET /{text} HTTP/1.0\r\n").as_bytes(), &k),
            not
        );
        assert_eq!(
            parse_request_line(format!("GET /{text} HTTP/1.1\n").as_bytes(), &k),
            not
        );
        assert_eq!(
            parse_request_line(format!("POST /{text} HTTP/1.1\r\n").as_bytes(), &k),
            not
        );
        assert_eq!(
            parse_request_line(&line(&format!("/{}", other_key().issue(&t))), &k),
            not
        );
        // Decided early: the first wrong byte, the '?' after a bad segment.
        assert_eq!(parse_request_line(b"P", &k), not);
        assert_eq!(parse_request_line(b"GET x", &k), not);
        assert_eq!(parse_request_line(b"GET /index.html?", &k), not);
        assert_eq!(parse_request_line(b"GET /index.html ", &k), not);
        assert_eq!(parse_request_line(b"GET /a\tb", &k), not);
        assert_eq!(parse_request_line(b"GET /a\xc3\xa9", &k), not);
        // Still possible.
        assert_eq!(parse_request_line(b"", &k), RequestParse::NeedMore);
        assert_eq!(parse_request_line(b"GE", &k), RequestParse::NeedMore);
        assert_eq!(
            parse_request_line(b"GET /index.html", &k),
            RequestParse::NeedMore
        );
        let partial = format!("GET /{text} HTTP/1.");
        assert_eq!(
            parse_request_line(partial.as_bytes(), &k),
            RequestParse::NeedMore
        );
    }

    #[test]
    fn request_line_length_bound() {
        let k = key();
        let text = k.issue(&ticket(5));
        // Longest acceptable line: exactly MAX_REQUEST_LINE bytes.
        let fill = MAX_REQUEST_LINE - METHOD.len() - VERSION.len() - 2 - TICKET_TEXT_LEN;
        let path = format!("/{}/{text}", "a".repeat(fill));
        let l = line(&path);
        assert_eq!(l.len(), MAX_REQUEST_LINE);
        assert_eq!(parse_request_line(&l, &k), RequestParse::Ticket(ticket(5)));
        // One byte more is not ours, and decided at that path byte.
        let path = format!("/{}/{text}", "a".repeat(fill + 1));
        let l = line(&path);
        assert_eq!(parse_request_line(&l, &k), RequestParse::NotOurs);
        let decided_at = (1..=l.len())
            .find(|&n| parse_request_line(&l[..n], &k) != RequestParse::NeedMore)
            .unwrap();
        assert_eq!(decided_at, MAX_REQUEST_LINE - VERSION.len() + 1);
        // A long path that never ends.
        let mut junk = b"GET /".to_vec();
        junk.resize(MAX_REQUEST_LINE * 2, b'a');
        assert_eq!(parse_request_line(&junk, &k), RequestParse::NotOurs);
    }

    #[test]
    fn every_prefix_of_a_valid_line() {
        let k = key();
        let t = ticket(9);
        for path in [
            format!("/{}", k.issue(&t)),
            format!("/door/{}?q=1", k.issue(&t)),
            format!("/a/{}", other_key().issue(&t)),
        ] {
            let mut data = line(&path);
            data.extend_from_slice(b"Host: x\r\n\r\n");
            let answers: Vec<_> = (0..=data.len())
                .map(|n| parse_request_line(&data[..n], &k))
                .collect();
            assert_consistent(&answers);
            assert_ne!(*answers.last().unwrap(), RequestParse::NeedMore);
        }
    }

    #[test]
    fn request_paths() {
        assert_eq!(request_path("", "T"), "/T");
        assert_eq!(request_path("/", "T"), "/T");
        assert_eq!(request_path("/door", "T"), "/door/T");
        assert_eq!(request_path("/door/", "T"), "/door/T");
        assert_eq!(request_path("door", "T"), "/door/T");
        let k = key();
        let text = k.issue(&ticket(2));
        for prefix in ["", "/", "/door", "/a/b/"] {
            let l = line(&request_path(prefix, &text));
            assert_eq!(parse_request_line(&l, &k), RequestParse::Ticket(ticket(2)));
        }
    }

    #[test]
    fn guard_admits_once() {
        let mut g = TicketGuard::new(300, 10);
        let t = ticket(1);
        assert!(g.admit(&t, NOW));
        assert!(!g.admit(&t, NOW));
        assert!(!g.admit(&t, NOW + 10));
        assert!(g.admit(&ticket(2), NOW));
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn guard_refuses_stale_and_future() {
        let mut g = TicketGuard::new(300, 10);
        let t = |secs: u64, seed: u8| Ticket {
            nonce: [seed; NONCE_LEN],
            unix_secs: secs as u32,
            inner: false,
        };
        assert!(g.admit(&t(NOW - 300, 1), NOW));
        assert!(g.admit(&t(NOW + 300, 2), NOW));
        assert!(!g.admit(&t(NOW - 301, 3), NOW));
        assert!(!g.admit(&t(NOW + 301, 4), NOW));
        // A clock stepped back does not re-open old tickets.
        let mut g = TicketGuard::new(300, 10);
        assert!(g.admit(&t(NOW + 1000, 5), NOW + 1000));
        assert!(!g.admit(&t(NOW + 600, 6), NOW + 500));
        assert!(g.admit(&t(NOW + 750, 7), NOW + 500));
    }

    #[test]
    fn guard_is_bounded_and_fails_closed() {
        let mut g = TicketGuard::new(60, 3);
        for seed in 0..3 {
            assert!(g.admit(&ticket(seed), NOW));
        }
        assert!(!g.admit(&ticket(3), NOW));
        assert_eq!(g.len(), 3);
        // Once the remembered ones expire, room again; a replay of an
        // expired one is stale.
        assert!(g.admit(
            &Ticket {
                unix_secs: (NOW + 100) as u32,
                ..ticket(4)
            },
            NOW + 100
        ));
        assert_eq!(g.len(), 1);
        assert!(!g.admit(&ticket(0), NOW + 100));
        assert!(!TicketGuard::new(60, 0).admit(&ticket(0), NOW));
    }

    /// A ticket request line with some mutations, or random bytes.
    fn near_miss() -> impl Strategy<Value = Vec<u8>> {
        let k = key();
        let valid = (
            any::<[u8; NONCE_LEN]>(),
            "(/[a-z?=]{0,6}){0,3}",
            "(\\?[ -~]{0,8})?",
        )
            .prop_map(move |(nonce, prefix, query)| {
                let text = k.issue(&Ticket {
                    nonce,
                    unix_secs: NOW as u32,
                    inner: false,
                });
                let mut l = line(&format!("{prefix}/{text}{query}"));
                l.extend_from_slice(b"Host: a\r\n\r\n");
                l
            });
        let mutated =
            (valid.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut v, i, b)| {
                let i = i.index(v.len());
                v[i] = b;
                v
            });
        prop_oneof![
            valid,
            mutated,
            prop::collection::vec(any::<u8>(), 0..200),
            "GET /[ -~]{0,80}".prop_map(String::into_bytes)
        ]
    }

    proptest! {
        #[test]
        fn roundtrip(nonce in any::<[u8; NONCE_LEN]>(), secs in any::<u32>(), inner in any::<bool>()) {
            let k = key();
            let t = Ticket { nonce, unix_secs: secs, inner };
            prop_assert_eq!(k.open(k.issue(&t).as_bytes()), Some(t));
        }

        #[test]
        fn any_bit_flip_is_refused(nonce in any::<[u8; NONCE_LEN]>(), secs in any::<u32>(), bit in 0..TICKET_TEXT_LEN * 8) {
            let k = key();
            let mut text = k.issue(&Ticket { nonce, unix_secs: secs, inner: false }).into_bytes();
            text[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(k.open(&text), None);
        }

        #[test]
        fn open_never_panics(text in prop::collection::vec(any::<u8>(), 0..60)) {
            let _ = key().open(&text);
        }

        #[test]
        fn chunking_does_not_matter(data in near_miss(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
            let k = key();
            let answers = feed(&data, &cuts, &k);
            assert_consistent(&answers);
            prop_assert_eq!(*answers.last().unwrap(), parse_request_line(&data, &k));
            // Every prefix, too.
            let all: Vec<_> = (0..=data.len()).map(|n| parse_request_line(&data[..n], &k)).collect();
            assert_consistent(&all);
        }

        #[test]
        fn other_keys_are_not_ours(nonce in any::<[u8; NONCE_LEN]>(), fp in any::<[u8; 32]>()) {
            prop_assume!(fp != [7; 32]);
            let t = Ticket { nonce, unix_secs: NOW as u32, inner: false };
            let l = line(&format!("/{}", TicketKey::for_key(&fp).issue(&t)));
            prop_assert_eq!(parse_request_line(&l, &key()), RequestParse::NotOurs);
        }

        #[test]
        fn guard_stays_bounded(ops in prop::collection::vec((0u8..40, 0u64..200, 0u64..200), 1..300)) {
            let cap = 8;
            let mut g = TicketGuard::new(30, cap);
            let mut admitted = std::collections::HashSet::new();
            for (seed, secs_off, now_off) in ops {
                let t = Ticket { nonce: [seed; NONCE_LEN], unix_secs: (NOW + secs_off) as u32, inner: false };
                let now = NOW + now_off;
                if g.admit(&t, now) {
                    // Never twice, never outside the window.
                    prop_assert!(admitted.insert(t));
                    prop_assert!(now.abs_diff(u64::from(t.unix_secs)) <= 30);
                }
                prop_assert!(g.len() <= cap);
            }
        }
    }
}
