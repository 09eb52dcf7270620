//! The pasteable access key, `onedoor://TOKEN@host:port?fp=SHA256:BASE64`,
//! and the server fingerprint it pins.
//!
//! - `TOKEN` is the client's [`Token`] (43 characters of base64url, nothing
//!   to escape in a URL).
//! - `host:port` is the door; a bare host means port 443 (SPEC §1), IPv6 goes
//!   in brackets (`onedoor://TOKEN@[2001:db8::1]:443`). A single trailing `/`
//!   is accepted, any other path is not.
//! - `fp=` pins the server: `SHA256:` followed by the unpadded standard base64
//!   of a SHA-256 digest, exactly as OpenSSH prints key fingerprints
//!   (`SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU`). `+`, `/` and `:`
//!   may also arrive percent-encoded (`%2B`, `%2F`, `%3A`) after a trip
//!   through a URL tool. Without `fp=` the server must present a certificate
//!   that verifies against the system roots. No other parameter is defined,
//!   and an unknown one is an error rather than silently ignored.
//!
//! The key holds a secret: [`AccessKey`]'s `Debug` masks the token and it has
//! no `Display`. [`AccessKey::encode`] gives the full text (for `init` and
//! `client add` to print once, alone on stdout); [`AccessKey::redacted`]
//! gives a form for logs and messages.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::token::{Secret, Token, TokenError};
use crate::spec::{parse_port_digits, valid_host, HostPort};

/// The port of a server given without one.
pub const DEFAULT_PORT: u16 = 443;

/// The scheme of access keys, with its `//`.
pub const SCHEME: &str = "onedoor://";

/// Why a fingerprint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// It does not start with `SHA256:`.
    #[error("a fingerprint starts with SHA256: (as `onedoor init` and OpenSSH print it)")]
    Prefix,
    /// The part after `SHA256:` is not base64.
    #[error("a fingerprint is SHA256: followed by base64 (A-Z a-z 0-9 + /)")]
    Base64,
    /// The digest is not 32 bytes long.
    #[error("a SHA256 fingerprint has 43 base64 characters (32 bytes)")]
    Length,
}

/// A server's pinned identity: the SHA-256 digest of what the transport
/// authenticates (the transport decides what it hashes and documents it).
/// Printed and parsed as `SHA256:` + unpadded standard base64, OpenSSH's form.
/// Public: `Debug` shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// A fingerprint from a SHA-256 digest computed elsewhere.
    pub fn from_digest(digest: [u8; 32]) -> Fingerprint {
        Fingerprint(digest)
    }

    /// The fingerprint of `bytes`: their SHA-256 digest.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(bytes).into())
    }

    /// The digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Parse `SHA256:BASE64` (label in any case; one trailing `=` of padding and
/// surrounding whitespace are tolerated).
impl FromStr for Fingerprint {
    type Err = FingerprintError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let b64 = match s.split_at_checked(7) {
            Some((label, rest)) if label.eq_ignore_ascii_case("SHA256:") => rest,
            _ => return Err(FingerprintError::Prefix),
        };
        let b64 = b64.strip_suffix('=').unwrap_or(b64);
        if !b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        {
            return Err(FingerprintError::Base64);
        }
        if b64.len() != 43 {
            return Err(FingerprintError::Length);
        }
        let mut buf = [0u8; 35];
        let n = STANDARD_NO_PAD
            .decode_slice(b64, &mut buf)
            .map_err(|_| FingerprintError::Base64)?;
        buf.get(..n)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Fingerprint)
            .ok_or(FingerprintError::Length)
    }
}

/// Why an access key or server address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessKeyError {
    /// It does not start with `onedoor://`.
    #[error("an access key starts with onedoor:// (onedoor://TOKEN@host[:port][?fp=SHA256:...])")]
    Scheme,
    /// There is no `TOKEN@` before the host.
    #[error("no token: expected onedoor://TOKEN@host[:port][?fp=SHA256:...]")]
    MissingToken,
    /// The token is malformed.
    #[error("token: {0}")]
    Token(TokenError),
    /// The host is not a host name or IP literal.
    #[error("the server is not a host name or IP address (write IPv6 as [::1]:443)")]
    Host,
    /// The port is not 1-65535.
    #[error("the server port must be a number, 1-65535 (none means {DEFAULT_PORT})")]
    Port,
    /// The `fp=` value is malformed.
    #[error("fp=: {0}")]
    Fingerprint(FingerprintError),
    /// A query parameter other than `fp`.
    #[error("unknown parameter (the only one defined is fp=SHA256:...)")]
    UnknownParameter,
    /// `fp=` given twice.
    #[error("fp= given more than once")]
    DuplicateParameter,
    /// A path (other than `/`) or a `#fragment` after the address.
    #[error("unexpected path or fragment after host:port")]
    Path,
}

/// Parse a server address as the command line takes it: `HOST`, `HOST:PORT`,
/// `[IPv6]` or `[IPv6]:PORT`; no port means [`DEFAULT_PORT`] (443). Used for
/// the `SERVER` argument, `--server` and the address inside access keys.
pub fn parse_server(s: &str) -> Result<HostPort, AccessKeyError> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or(AccessKeyError::Host)?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AccessKeyError::Host);
        }
        match after {
            "" => (h, None),
            _ => (
                h,
                Some(after.strip_prefix(':').ok_or(AccessKeyError::Host)?),
            ),
        }
    } else {
        match s.split_once(':') {
            Some((_, p)) if p.contains(':') => return Err(AccessKeyError::Host),
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || !valid_host(host) {
        return Err(AccessKeyError::Host);
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match parse_port_digits(p) {
            Some(0) | None => return Err(AccessKeyError::Port),
            Some(p) => p,
        },
    };
    Ok(HostPort::new(host, port))
}

/// A single pasteable access key. `Debug` masks the token; use
/// [`AccessKey::encode`] for the text and [`AccessKey::redacted`] for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The client's secret token.
    pub token: Token,
    /// The door to connect to (`--server` may override it).
    pub server: HostPort,
    /// The server's pinned fingerprint; `None`: verify a CA-signed
    /// certificate against the system roots.
    pub fingerprint: Option<Fingerprint>,
}

impl AccessKey {
    /// The full key text, `onedoor://TOKEN@host:port[?fp=SHA256:...]`, which
    /// [`AccessKey::from_str`] reads back. The port is always written.
    pub fn encode(&self) -> Secret<String> {
        Secret::new(format!(
            "{SCHEME}{}@{}",
            self.token.encode().expose(),
            Tail(self)
        ))
    }

    /// A form fit for logs and error messages: the token as `***`.
    pub fn redacted(&self) -> impl fmt::Display + '_ {
        Redacted(self)
    }
}

/// `host:port[?fp=...]`: the non-secret part of a key.
struct Tail<'a>(&'a AccessKey);

impl fmt::Display for Tail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.server)?;
        match &self.0.fingerprint {
            Some(fp) => write!(f, "?fp={fp}"),
            None => Ok(()),
        }
    }
}

struct Redacted<'a>(&'a AccessKey);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}***@{}", Tail(self.0))
    }
}

/// Decode `%XX` escapes (used for the `fp=` value only).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parse `onedoor://TOKEN@host[:port][/][?fp=SHA256:...]` (scheme in any case;
/// surrounding whitespace ignored).
impl FromStr for AccessKey {
    type Err = AccessKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = match s.split_at_checked(SCHEME.len()) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SCHEME) => rest,
            _ => return Err(AccessKeyError::Scheme),
        };
        if rest.contains('#') {
            return Err(AccessKeyError::Path);
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('/') {
            return Err(AccessKeyError::Path);
        }
        let (token, server) = authority
            .rsplit_once('@')
            .ok_or(AccessKeyError::MissingToken)?;
        if token.is_empty() {
            return Err(AccessKeyError::MissingToken);
        }
        if token.trim() != token {
            return Err(AccessKeyError::Token(TokenError::Alphabet));
        }
        let token: Token = token.parse().map_err(AccessKeyError::Token)?;
        let server = parse_server(server)?;
        let mut fingerprint = None;
        for param in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if key != "fp" {
                return Err(AccessKeyError::UnknownParameter);
            }
            if fingerprint.is_some() {
                return Err(AccessKeyError::DuplicateParameter);
            }
            let value = percent_decode(value)
                .ok_or(AccessKeyError::Fingerprint(FingerprintError::Base64))?;
            if value.trim() != value {
                return Err(AccessKeyError::Fingerprint(FingerprintError::Base64));
            }
            fingerprint = Some(value.parse().map_err(AccessKeyError::Fingerprint)?);
        }
        Ok(AccessKey {
            token,
            server,
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// OpenSSH prints `SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU`
    /// for the SHA-256 of nothing.
    const EMPTY_FP: &str = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";

    fn token_text() -> String {
        Token::from_bytes([0x5a; 32]).encode().into_exposed()
    }

    #[test]
    fn fingerprint_as_openssh_prints_it() {
        let fp = Fingerprint::of(b"");
        assert_eq!(fp.to_string(), EMPTY_FP);
        assert_eq!(EMPTY_FP.parse(), Ok(fp));
        assert_eq!(format!("{EMPTY_FP}=").parse(), Ok(fp));
        assert_eq!(
            EMPTY_FP.to_lowercase()[..7].parse::<Fingerprint>(),
            Err(FingerprintError::Length)
        );
        assert_eq!(format!("sha256:{}", &EMPTY_FP[7..]).parse(), Ok(fp));
        assert_eq!(
            "MD5:aa".parse::<Fingerprint>(),
            Err(FingerprintError::Prefix)
        );
        assert_eq!(
            "SHA256:".parse::<Fingerprint>(),
            Err(FingerprintError::Length)
        );
        assert_eq!(
            "SHA256:a-b".parse::<Fingerprint>(),
            Err(FingerprintError::Base64)
        );
        assert_eq!(
            EMPTY_FP[..49].parse::<Fingerprint>(),
            Err(FingerprintError::Length)
        );
        assert_eq!("SHAé".parse::<Fingerprint>(), Err(FingerprintError::Prefix));
        assert!(format!("{fp:?}").contains(EMPTY_FP));
    }

    #[test]
    fn parses_keys() {
        let t = token_text();
        let k: AccessKey = format!("onedoor://{t}@door.example:8443?fp={EMPTY_FP}")
            .parse()
            .unwrap();
        assert_eq!(k.token, Token::from_bytes([0x5a; 32]));
        assert_eq!(k.server, HostPort::new("door.example", 8443));
        assert_eq!(k.fingerprint, Some(Fingerprint::of(b"")));

        let k: AccessKey = format!("onedoor://{t}@door.example").parse().unwrap();
        assert_eq!(k.server, HostPort::new("door.example", 443));
        assert_eq!(k.fingerprint, None);

        let k: AccessKey = format!(
            "  ONEDOOR://{t}@[::1]/?fp={}\n",
            EMPTY_FP.replace('+', "%2B").replace('/', "%2f")
        )
        .parse()
        .unwrap();
        assert_eq!(k.server, HostPort::new("::1", 443));
        assert_eq!(k.fingerprint, Some(Fingerprint::of(b"")));

        let k: AccessKey = format!("onedoor://{t}@[2001:db8::1]:443").parse().unwrap();
        assert_eq!(k.server, HostPort::new("2001:db8::1", 443));
        assert_eq!(
            k.encode().expose(),
            &format!("onedoor://{t}@[2001:db8::1]:443")
        );
    }

    #[test]
    fn refuses_with_reasons() {
        use AccessKeyError::*;
        let t = token_text();
        let cases: Vec<(String, AccessKeyError)> = vec![
            (format!("https://{t}@h"), Scheme),
            ("onedoor:/x@h".into(), Scheme),
            ("onedoor://door.example".into(), MissingToken),
            ("onedoor://@door.example".into(), MissingToken),
            ("onedoor://abc@h".into(), Token(TokenError::Length(3))),
            (format!("onedoor://{t}@"), Host),
            (format!("onedoor://{t}@h:0"), Port),
            (format!("onedoor://{t}@h:x"), Port),
            (format!("onedoor://{t}@h:65536"), Port),
            (format!("onedoor://{t}@::1:443"), Host),
            (format!("onedoor://{t}@[::1"), Host),
            (format!("onedoor://{t}@[::1]443"), Host),
            (format!("onedoor://{t}@[h]:443"), Host),
            (format!("onedoor://{t}@h h"), Host),
            (format!("onedoor://{t}@h/path"), Path),
            (format!("onedoor://{t}@h#frag"), Path),
            (format!("onedoor://{t}@h?x=1"), UnknownParameter),
            (
                format!("onedoor://{t}@h?fp={EMPTY_FP}&fp={EMPTY_FP}"),
                DuplicateParameter,
            ),
            (
                format!("onedoor://{t}@h?fp=MD5:00"),
                Fingerprint(FingerprintError::Prefix),
            ),
            (
                format!("onedoor://{t}@h?fp=%zz"),
                Fingerprint(FingerprintError::Base64),
            ),
            (
                format!("onedoor://{t}@h?fp="),
                Fingerprint(FingerprintError::Prefix),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<AccessKey>(), Err(want), "{s}");
        }
        assert_eq!(
            Scheme.to_string(),
            "an access key starts with onedoor:// (onedoor://TOKEN@host[:port][?fp=SHA256:...])"
        );
    }

    #[test]
    fn masks_the_token() {
        let t = token_text();
        let k: AccessKey = format!("onedoor://{t}@door.example?fp={EMPTY_FP}")
            .parse()
            .unwrap();
        let debug = format!("{k:?}");
        assert!(!debug.contains(&t), "{debug}");
        assert!(debug.contains("***"), "{debug}");
        assert_eq!(
            k.redacted().to_string(),
            format!("onedoor://***@door.example:443?fp={EMPTY_FP}")
        );
        assert!(format!("{:?}", k.encode()).contains("***"));
    }

    #[test]
    fn bare_servers() {
        assert_eq!(
            parse_server("door.example"),
            Ok(HostPort::new("door.example", 443))
        );
        assert_eq!(
            parse_server("198.18.0.1:22"),
            Ok(HostPort::new("198.18.0.1", 22))
        );
        assert_eq!(parse_server("[::1]"), Ok(HostPort::new("::1", 443)));
        assert_eq!(parse_server("[::1]:80"), Ok(HostPort::new("::1", 80)));
        assert_eq!(parse_server("::1"), Err(AccessKeyError::Host));
        assert_eq!(parse_server(""), Err(AccessKeyError::Host));
        assert_eq!(parse_server(":443"), Err(AccessKeyError::Host));
        assert_eq!(parse_server("h:"), Err(AccessKeyError::Port));
    }

    fn arb_host() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<std::net::IpAddr>().prop_map(|a| a.to_string()),
            "[a-z0-9_-]{1,10}(\\.[a-z0-9-]{1,10}){0,3}",
        ]
    }

    proptest! {
        #[test]
        fn encode_roundtrips(
            tok in any::<[u8; 32]>(),
            host in arb_host(),
            port in 1u16..,
            fp in proptest::option::of(any::<[u8; 32]>()),
        ) {
            let key = AccessKey {
                token: Token::from_bytes(tok),
                server: HostPort::new(&host, port),
                fingerprint: fp.map(Fingerprint::from_digest),
            };
            prop_assert_eq!(key.encode().expose().parse::<AccessKey>(), Ok(key.clone()));
            let debug = format!("{:?}", key);
            let text = key.token.encode().into_exposed();
            prop_assert!(!debug.contains(&text));
        }

        #[test]
        fn fingerprint_roundtrips(d in any::<[u8; 32]>()) {
            let fp = Fingerprint::from_digest(d);
            prop_assert_eq!(fp.to_string().parse(), Ok(fp));
        }

        #[test]
        fn never_panics(s in "(onedoor://)?.{0,80}") {
            if let Ok(k) = s.parse::<AccessKey>() {
                prop_assert_eq!(k.encode().expose().parse::<AccessKey>(), Ok(k.clone()));
            }
            let _ = s.parse::<Fingerprint>();
            let _ = parse_server(&s);
        }
    }
}
