//! The WebSocket opening handshake (RFC 6455 §4) as pure code, both ends.
//!
//! Serve, having seen a ticket request line
//! ([`parse_request_line`](super::ticket::parse_request_line)), reads the
//! request head up to its blank line ([`request_head_end`]), checks that it
//! is a valid upgrade and takes its key ([`websocket_key`]), and answers
//! [`switching_protocols`]. Anything that is not a valid upgrade goes to the
//! fallback website like any stranger's request.
//!
//! The client sends a browser-like request ([`upgrade_request`], nothing in
//! it names onedoor) and checks the reply ([`check_upgrade_response`]): a
//! `101` with the right `Sec-WebSocket-Accept`, or a refusal whose status
//! and reason it can report ("the door answered 404 Not Found").
//!
//! Parsing uses `httparse`; nothing here reads or writes a socket.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// A sensible bound for a request or response head (both ends use it).
pub const MAX_HEAD: usize = 16 * 1024;

/// The most header lines a head may have.
const MAX_HEADERS: usize = 64;

/// RFC 6455 §1.3: appended to the key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The User-Agent of [`upgrade_request`]: a common browser's, so the
/// request looks like one of millions.
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// The longest reason phrase kept from a refusal.
const MAX_REASON: usize = 64;

/// Where an HTTP head ends, for [`request_head_end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadParse {
    /// No blank line yet: read more.
    NeedMore,
    /// No blank line within the bound: give up on this head.
    TooLong,
    /// The head is `buf[..head_len]`, its final `\r\n\r\n` included; what
    /// follows belongs to the next layer.
    Done {
        /// The head's length in bytes.
        head_len: usize,
    },
}

/// Find the end (`\r\n\r\n`) of an HTTP request or response head in `buf`.
/// The head, terminator included, must fit in `max` bytes; bytes past
/// `max` are never looked at.
pub fn request_head_end(buf: &[u8], max: usize) -> HeadParse {
    let seen = &buf[..buf.len().min(max)];
    match seen.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => HeadParse::Done { head_len: i + 4 },
        None if buf.len() >= max => HeadParse::TooLong,
        None => HeadParse::NeedMore,
    }
}

/// The values of every header called `name` (case-insensitive).
fn values<'h>(
    headers: &'h [httparse::Header<'_>],
    name: &'h str,
) -> impl Iterator<Item = &'h [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The single value of header `name`, trimmed; `None` if absent or repeated.
fn single<'h>(headers: &'h [httparse::Header<'_>], name: &'h str) -> Option<&'h [u8]> {
    let mut it = values(headers, name);
    let v = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(v.trim_ascii())
}

/// Does some header `name` list `token` (comma-separated, case-insensitive)?
fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    values(headers, name)
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Is `key` a Sec-WebSocket-Key: canonical padded base64 of 16 bytes?
fn valid_key(key: &[u8]) -> bool {
    if key.len() != 24 {
        return false;
    }
    let mut buf = [0u8; 18];
    matches!(STANDARD.decode_slice(key, &mut buf), Ok(16))
}

/// Is this complete request head (from [`request_head_end`]) a valid
/// WebSocket upgrade (RFC 6455 §4.2.1): `GET`, `HTTP/1.1`, one `Host`,
/// `Upgrade: websocket`, a `Connection` listing `upgrade`,
/// `Sec-WebSocket-Version: 13`, and one `Sec-WebSocket-Key` that is base64
/// of 16 bytes? Returns the key (trimmed), for [`switching_protocols`].
///
/// `None` for anything else, including a head with more than 64 header
/// lines or one that is not complete.
pub fn websocket_key(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let headers: &[httparse::Header<'_>] = req.headers;
    if !matches!(single(headers, "Host"), Some(h) if !h.is_empty())
        || !has_token(headers, "Upgrade", "websocket")
        || !has_token(headers, "Connection", "upgrade")
        || single(headers, "Sec-WebSocket-Version") != Some(b"13")
    {
        return None;
    }
    let key = single(headers, "Sec-WebSocket-Key")?;
    if !valid_key(key) {
        return None;
    }
    // valid_key checked the base64 alphabet, so this is ASCII.
    String::from_utf8(key.to_vec()).ok()
}

/// The `Sec-WebSocket-Accept` value for `key`: base64 of
/// SHA-1(key ‖ the RFC 6455 GUID).
pub fn websocket_accept(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(ACCEPT_GUID);
    STANDARD.encode(h.finalize())
}

/// Serve's reply accepting the upgrade whose key is `key`: a complete
/// `101 Switching Protocols` head.
pub fn switching_protocols(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        websocket_accept(key)
    )
    .into_bytes()
}

/// A fresh `Sec-WebSocket-Key` from 16 random bytes (the caller draws them
/// from the OS).
pub fn websocket_key_text(nonce: &[u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// Why [`upgrade_request`] refused to build a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRequestError {
    /// The Host value is empty or has characters other than visible ASCII.
    #[error(
        "the Host header value must be non-empty visible ASCII (no spaces or control characters)"
    )]
    BadHost,
    /// The path does not start with `/` or has characters other than
    /// visible ASCII.
    #[error("the request path must start with '/' and be visible ASCII (no spaces or control characters)")]
    BadPath,
    /// The key is not base64 of 16 bytes.
    #[error("the Sec-WebSocket-Key must be base64 of 16 bytes")]
    BadKey,
}

/// Visible ASCII only.
fn visible(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The client's opening request: `GET path HTTP/1.1` with `Host:
/// host_header` and the headers a browser sends for a WebSocket, in a
/// browser's order; `key` from [`websocket_key_text`]. Checked so that
/// nothing can inject a header.
pub fn upgrade_request(
    host_header: &str,
    path: &str,
    key: &str,
) -> Result<Vec<u8>, UpgradeRequestError> {
    if host_header.is_empty() || !visible(host_header) {
        return Err(UpgradeRequestError::BadHost);
    }
    if !path.starts_with('/') || !visible(path) {
        return Err(UpgradeRequestError::BadPath);
    }
    if !valid_key(key.as_bytes()) {
        return Err(UpgradeRequestError::BadKey);
    }
    Ok(format!(
        "GET {path} HTTP/1.1\r\n\
         Host: {host_header}\r\n\
         User-Agent: {USER_AGENT}\r\n\
         Accept: */*\r\n\
         Accept-Language: en-US,en;q=0.5\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         Connection: keep-alive, Upgrade\r\n\
         Pragma: no-cache\r\n\
         Cache-Control: no-cache\r\n\
         Upgrade: websocket\r\n\
         \r\n"
    )
    .into_bytes())
}

/// Why [`check_upgrade_response`] did not accept a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeResponseError {
    /// Not an HTTP/1.x response head at all.
    #[error("the reply is not an HTTP response")]
    Malformed,
    /// An HTTP response other than `101`: the door (or something in front
    /// of it) refused the upgrade.
    #[error("the door answered {status} {reason}")]
    Refused {
        /// The status code, such as 404.
        status: u16,
        /// The reason phrase as sent (control characters dropped, at most
        /// 64 characters), such as `Not Found`.
        reason: String,
    },
    /// A `101` that is not a valid WebSocket acceptance for our key.
    #[error("the 101 reply is not a valid WebSocket acceptance: {0}")]
    NotWebSocket(&'static str),
}

/// Check the reply head (from [`request_head_end`]) to a request made with
/// [`upgrade_request`] and `key` (RFC 6455 §4.1): status 101 on HTTP/1.1,
/// `Upgrade: websocket`, a `Connection` listing `upgrade`, the right
/// `Sec-WebSocket-Accept`, and no extension or subprotocol (none was
/// offered).
pub fn check_upgrade_response(head: &[u8], key: &str) -> Result<(), UpgradeResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(UpgradeResponseError::Malformed),
    }
    let status = resp.code.ok_or(UpgradeResponseError::Malformed)?;
    if status != 101 {
        let reason: String = resp
            .reason
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_REASON)
            .collect();
        return Err(UpgradeResponseError::Refused {
            status,
            reason: reason.trim().to_string(),
        });
    }
    let headers: &[httparse::Header<'_>] = resp.headers;
    if resp.version != Some(1) {
        return Err(UpgradeResponseError::NotWebSocket("not HTTP/1.1"));
    }
    if !has_token(headers, "Upgrade", "websocket") {
        return Err(UpgradeResponseError::NotWebSocket("no Upgrade: websocket"));
    }
    if !has_token(headers, "Connection", "upgrade") {
        return Err(UpgradeResponseError::NotWebSocket("no Connection: Upgrade"));
    }
    if single(headers, "Sec-WebSocket-Accept") != Some(websocket_accept(key).as_bytes()) {
        return Err(UpgradeResponseError::NotWebSocket(
            "wrong or missing Sec-WebSocket-Accept",
        ));
    }
    if values(headers, "Sec-WebSocket-Extensions").next().is_some()
        || values(headers, "Sec-WebSocket-Protocol").next().is_some()
    {
        return Err(UpgradeResponseError::NotWebSocket(
            "an extension or subprotocol that was not offered",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(extra: &str) -> String {
        format!(
            "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {RFC_KEY}\r\nOrigin: http://example.com\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    #[test]
    fn rfc_example_accept() {
        assert_eq!(websocket_accept(RFC_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let reply = switching_protocols(RFC_KEY);
        assert_eq!(
            reply,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        assert_eq!(check_upgrade_response(&reply, RFC_KEY), Ok(()));
    }

    #[test]
    fn head_end() {
        assert_eq!(request_head_end(b"", 100), HeadParse::NeedMore);
        assert_eq!(
            request_head_end(b"GET / HTTP/1.1\r\n", 100),
            HeadParse::NeedMore
        );
        assert_eq!(
            request_head_end(b"GET / HTTP/1.1\r\n\r\nxyz", 100),
            HeadParse::Done { head_len: 18 }
        );
        assert_eq!(
            request_head_end(b"GET / HTTP/1.1\r\n\r\n", 18),
            HeadParse::Done { head_len: 18 }
        );
        assert_eq!(
            request_head_end(b"GET / HTTP/1.1\r\n\r\n", 17),
            HeadParse::TooLong
        );
        assert_eq!(
            request_head_end(b"GET / HTTP/1.1\r\n\r", 17),
            HeadParse::TooLong
        );
        assert_eq!(
            request_head_end(b"GET / HTTP/1.1\n\n", 100),
            HeadParse::NeedMore
        );
    }

    #[test]
    fn rfc_example_request() {
        assert_eq!(
            websocket_key(request("").as_bytes()).as_deref(),
            Some(RFC_KEY)
        );
        // Tokens in lists, any case; headers in any case.
        let r = request("").replace("Connection: Upgrade", "connection: keep-alive, UPGRADE");
        let r = r.replace("Upgrade: websocket", "upgrade: WebSocket");
        assert_eq!(websocket_key(r.as_bytes()).as_deref(), Some(RFC_KEY));
    }

    #[test]
    fn invalid_requests() {
        let bad = [
            request("").replace("GET", "POST"),
            request("").replace("HTTP/1.1", "HTTP/1.0"),
            request("").replace("Host: server.example.com\r\n", ""),
            request("Host: again\r\n"),
            request("").replace("Upgrade: websocket", "Upgrade: h2c"),
            request("").replace("Connection: Upgrade", "Connection: keep-alive"),
            request("").replace("Version: 13", "Version: 8"),
            request("").replace(RFC_KEY, "dGhlIHNhbXBsZSBub25jZQ"),
            request("").replace(RFC_KEY, "dGhlIHNhbXBsZSBub25jZR=="),
            request("").replace(RFC_KEY, "c2hvcnQ="),
            request(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n")),
            request("").replace(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n"), ""),
            request("")[..60].to_string(),
            "garbage\r\n\r\n".to_string(),
            request(&"X-A: b\r\n".repeat(MAX_HEADERS)),
        ];
        for r in bad {
            assert_eq!(websocket_key(r.as_bytes()), None, "{r:?}");
        }
    }

    #[test]
    fn client_request_round_trips() {
        let key = websocket_key_text(&[9; 16]);
        let req = upgrade_request("door.example:8080", "/a/b?c=d", &key).unwrap();
        let text = String::from_utf8(req.clone()).unwrap();
        assert!(text.starts_with("GET /a/b?c=d HTTP/1.1\r\nHost: door.example:8080\r\n"));
        assert!(!text.to_ascii_lowercase().contains("onedoor"));
        assert_eq!(
            request_head_end(&req, MAX_HEAD),
            HeadParse::Done {
                head_len: req.len()
            }
        );
        assert_eq!(websocket_key(&req), Some(key.clone()));
        assert_eq!(
            check_upgrade_response(&switching_protocols(&key), &key),
            Ok(())
        );

        assert_eq!(
            upgrade_request("", "/", &key),
            Err(UpgradeRequestError::BadHost)
        );
        assert_eq!(
            upgrade_request("a\r\nX: y", "/", &key),
            Err(UpgradeRequestError::BadHost)
        );
        assert_eq!(
            upgrade_request("a", "x", &key),
            Err(UpgradeRequestError::BadPath)
        );
        assert_eq!(
            upgrade_request("a", "/ HTTP/1.0", &key),
            Err(UpgradeRequestError::BadPath)
        );
        assert_eq!(
            upgrade_request("a", "/", "abc"),
            Err(UpgradeRequestError::BadKey)
        );
    }

    #[test]
    fn responses() {
        let key = websocket_key_text(&[1; 16]);
        let refused = |r: &str| check_upgrade_response(r.as_bytes(), &key);
        assert_eq!(
            refused("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            Err(UpgradeResponseError::Refused {
                status: 404,
                reason: "Not Found".into()
            })
        );
        assert_eq!(
            refused("HTTP/1.1 404 Not Found\r\n\r\n")
                .unwrap_err()
                .to_string(),
            "the door answered 404 Not Found"
        );
        assert_eq!(
            refused("HTTP/1.0 502 \r\n\r\n"),
            Err(UpgradeResponseError::Refused {
                status: 502,
                reason: String::new()
            })
        );
        assert_eq!(
            refused("SSH-2.0-OpenSSH\r\n\r\n"),
            Err(UpgradeResponseError::Malformed)
        );
        assert_eq!(
            refused("HTTP/1.1 101 Switching"),
            Err(UpgradeResponseError::Malformed)
        );
        let good = String::from_utf8(switching_protocols(&key)).unwrap();
        assert_eq!(refused(&good), Ok(()));
        let wrong_accept = String::from_utf8(switching_protocols(RFC_KEY)).unwrap();
        assert!(matches!(
            refused(&wrong_accept),
            Err(UpgradeResponseError::NotWebSocket(_))
        ));
        let no_upgrade = good.replace("Upgrade: websocket\r\n", "");
        assert!(matches!(
            refused(&no_upgrade),
            Err(UpgradeResponseError::NotWebSocket(_))
        ));
        let no_conn = good.replace("Connection: Upgrade\r\n", "");
        assert!(matches!(
            refused(&no_conn),
            Err(UpgradeResponseError::NotWebSocket(_))
        ));
        let ext = good.replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        );
        assert!(matches!(
            refused(&ext),
            Err(UpgradeResponseError::NotWebSocket(_))
        ));
    }

    proptest! {
        #[test]
        fn accept_check_round_trips(nonce in any::<[u8; 16]>(), host in "[a-z0-9.:-]{1,30}", path in "/[!-~]{0,60}") {
            let key = websocket_key_text(&nonce);
            let req = upgrade_request(&host, &path, &key).unwrap();
            prop_assert_eq!(websocket_key(&req), Some(key.clone()));
            prop_assert_eq!(check_upgrade_response(&switching_protocols(&key), &key), Ok(()));
        }

        #[test]
        fn never_panics(data in prop::collection::vec(any::<u8>(), 0..400), max in 0usize..500) {
            let _ = request_head_end(&data, max);
            let _ = websocket_key(&data);
            let _ = check_upgrade_response(&data, RFC_KEY);
        }

        #[test]
        fn head_end_is_prefix_consistent(data in prop::collection::vec(prop::sample::select(b"\r\nab".to_vec()), 0..60), max in 1usize..60) {
            let all: Vec<_> = (0..=data.len()).map(|n| request_head_end(&data[..n], max)).collect();
            let first = all.iter().position(|a| *a != HeadParse::NeedMore);
            if let Some(i) = first {
                prop_assert!(all[i..].iter().all(|a| *a == all[i]));
            }
        }

        #[test]
        fn mutated_requests_never_panic(i in any::<prop::sample::Index>(), b in any::<u8>()) {
            let mut r = request("").into_bytes();
            let i = i.index(r.len());
            r[i] = b;
            if let Some(k) = websocket_key(&r) {
                prop_assert_eq!(k.len(), 24);
            }
        }
    }
}
