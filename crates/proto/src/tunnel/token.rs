//! Client tokens: 256 random bits each, shown to people as 43 characters of
//! unpadded base64url (`A-Z a-z 0-9 - _`), stored by the server only as a
//! salted SHA-256 hash, compared in constant time.
//!
//! **Encoding.** base64url without padding: the shortest text that survives
//! a URL (it sits in the user part of `onedoor://TOKEN@host`), a shell, a
//! TOML string and a double-click selection, with nothing to escape. Decoding
//! is strict (exactly 43 characters, canonical final character), so one token
//! has exactly one spelling; surrounding whitespace (a token file's newline)
//! is ignored.
//!
//! **Hash.** The server keeps `SHA-256("onedoor client token v1\0" ‖ salt ‖
//! token)`, where `salt` is 32 random bytes made once per server (state dir)
//! and every field has a fixed length. The label separates these digests from
//! every other SHA-256 onedoor computes (certificate fingerprints, probe
//! replies); the salt makes the registries of two servers unrelated even if a
//! token were reused, so a leaked registry says nothing about another server.
//!
//! **Why no slow KDF** (argon2, scrypt, PBKDF2): those make guessing a
//! low-entropy *password* expensive. A token is 256 bits from the OS's CSPRNG:
//! guessing one takes ~2²⁵⁵ SHA-256 evaluations, out of reach at any hash
//! speed, so a stolen registry reveals no token. A slow hash would only make
//! every authentication attempt cost the server CPU, an easy denial of
//! service for unauthenticated peers.
//!
//! **Comparison.** [`TokenHash`] equality and [`TokenHash::find_in`] take time
//! independent of where (or whether) the bytes differ and of which entry
//! matched.
//!
//! Randomness comes in as an argument ([`Token::from_bytes`],
//! [`TokenSalt::from_bytes`]): the caller fills the bytes from the OS CSPRNG.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// The length of a token in bytes (256 bits).
pub const TOKEN_LEN: usize = 32;

/// The length of a token as text: 32 bytes of unpadded base64url.
pub const TOKEN_TEXT_LEN: usize = 43;

/// The domain-separation label hashed in front of every token.
const HASH_LABEL: &[u8] = b"onedoor client token v1\0";

/// A value that must not reach logs: `Debug` prints `Secret(***)`, and there
/// is no `Display`. Read it with [`Secret::expose`], where it is meant to go
/// (stdout once, a file with tight permissions, the wire).
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wrap a secret value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself. Call it only where the secret is meant to go.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwrap the secret. Same care as [`Secret::expose`].
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a token (or a stored hex value) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not 43 characters long.
    #[error("a token is {TOKEN_TEXT_LEN} characters of base64url, found {0}")]
    Length(usize),
    /// A character outside `A-Z a-z 0-9 - _`, or a non-canonical last one.
    #[error("a token is base64url (A-Z a-z 0-9 - _ only, no padding)")]
    Alphabet,
    /// A stored salt or hash is not 64 hex digits.
    #[error("expected 64 hexadecimal digits")]
    Hex,
}

/// A client's secret token: 256 bits. `Debug` masks it; equality is
/// constant-time; there is no `Display` (use [`Token::encode`]).
#[derive(Clone)]
pub struct Token([u8; TOKEN_LEN]);

impl Token {
    /// A token from 32 bytes the caller drew from a CSPRNG.
    pub fn from_bytes(bytes: [u8; TOKEN_LEN]) -> Token {
        Token(bytes)
    }

    /// The raw bytes. Same care as [`Secret::expose`].
    pub fn expose_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }

    /// The token as people see it: 43 characters of unpadded base64url.
    pub fn encode(&self) -> Secret<String> {
        Secret(URL_SAFE_NO_PAD.encode(self.0))
    }

    /// What the server stores for this token under `salt`.
    pub fn hash(&self, salt: &TokenSalt) -> TokenHash {
        let mut h = Sha256::new();
        h.update(HASH_LABEL);
        h.update(salt.0);
        h.update(self.0);
        TokenHash(h.finalize().into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Token {}

/// Parse the 43-character text; surrounding whitespace is ignored.
impl FromStr for Token {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() != TOKEN_TEXT_LEN {
            return Err(TokenError::Length(s.len()));
        }
        let mut buf = [0u8; TOKEN_LEN + 3];
        let n = URL_SAFE_NO_PAD
            .decode_slice(s, &mut buf)
            .map_err(|_| TokenError::Alphabet)?;
        let bytes: [u8; TOKEN_LEN] = buf
            .get(..n)
            .and_then(|b| b.try_into().ok())
            .ok_or(TokenError::Alphabet)?;
        buf.fill(0);
        Ok(Token(bytes))
    }
}

/// A server's token salt: 32 random bytes made once (by `init`) and kept in
/// the state dir beside the client registry. Not secret. Stored as 64 lower
/// case hex digits (`Display`/`FromStr`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenSalt([u8; 32]);

impl TokenSalt {
    /// A salt from 32 bytes the caller drew from a CSPRNG.
    pub fn from_bytes(bytes: [u8; 32]) -> TokenSalt {
        TokenSalt(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The stored form of a token: see the module docs for how it is computed.
/// Stored as 64 lower case hex digits (`Display`/`FromStr`). Equality is
/// constant-time; to find a client by token use [`TokenHash::find_in`], not
/// a map keyed by hash (whose lookup time would depend on the bytes).
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// A hash from its bytes (as read back from storage).
    pub fn from_bytes(bytes: [u8; 32]) -> TokenHash {
        TokenHash(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Does `token` hash to this under `salt`? Constant-time.
    pub fn verify(&self, token: &Token, salt: &TokenSalt) -> bool {
        *self == token.hash(salt)
    }

    /// The index of the first stored hash equal to `self`, visiting every
    /// entry and comparing in constant time, so the time taken depends only
    /// on how many entries there are, not on which one (if any) matched.
    pub fn find_in<'a, I>(&self, stored: I) -> Option<usize>
    where
        I: IntoIterator<Item = &'a TokenHash>,
    {
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, h) in stored.into_iter().enumerate() {
            let hit = self.0.ct_eq(&h.0) & !found;
            index.conditional_assign(&(i as u64), hit);
            found |= hit;
        }
        bool::from(found).then_some(index as usize)
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenHash {}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn parse_hex32(s: &str) -> Result<[u8; 32], TokenError> {
    let s = s.trim().as_bytes();
    if s.len() != 64 {
        return Err(TokenError::Hex);
    }
    let digit = |c: u8| (c as char).to_digit(16).ok_or(TokenError::Hex);
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Ok(out)
}

impl fmt::Display for TokenSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TokenSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSalt({self})")
    }
}

impl FromStr for TokenSalt {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s).map(TokenSalt)
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

impl FromStr for TokenHash {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s).map(TokenHash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token(b: u8) -> Token {
        Token::from_bytes([b; 32])
    }

    #[test]
    fn text_form() {
        let t = Token::from_bytes(std::array::from_fn(|i| i as u8 * 8));
        let text = t.encode().into_exposed();
        assert_eq!(text.len(), TOKEN_TEXT_LEN);
        assert_eq!(text, "AAgQGCAoMDhASFBYYGhweICIkJigqLC4wMjQ2ODo8Pg");
        assert_eq!(text.parse::<Token>(), Ok(t.clone()));
        assert_eq!(format!(" {text}\n").parse::<Token>(), Ok(t));
        assert_eq!(
            *token(0xff).encode().expose(),
            format!("{}8", "_".repeat(42))
        );
    }

    #[test]
    fn strict_decoding() {
        let good = token(7).encode().into_exposed();
        assert_eq!("".parse::<Token>(), Err(TokenError::Length(0)));
        assert_eq!(good[1..].parse::<Token>(), Err(TokenError::Length(42)));
        assert_eq!(
            format!("{good}=").parse::<Token>(),
            Err(TokenError::Length(44))
        );
        let plus = format!("+{}", &good[1..]);
        assert_eq!(plus.parse::<Token>(), Err(TokenError::Alphabet));
        // The last character carries 2 spare bits: a non-zero one is refused.
        let mut noncanon = good.clone().into_bytes();
        *noncanon.last_mut().unwrap() = b'x';
        let noncanon = String::from_utf8(noncanon).unwrap();
        assert_ne!(noncanon, good);
        assert_eq!(noncanon.parse::<Token>(), Err(TokenError::Alphabet));
    }

    #[test]
    fn debug_masks() {
        let t = token(0x41);
        let text = t.encode().into_exposed();
        for shown in [format!("{t:?}"), format!("{:?}", t.encode())] {
            assert!(!shown.contains(&text), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    #[test]
    fn hash_is_salted_and_labelled() {
        let (s1, s2) = (
            TokenSalt::from_bytes([1; 32]),
            TokenSalt::from_bytes([2; 32]),
        );
        let t = token(9);
        assert_ne!(t.hash(&s1), t.hash(&s2));
        assert_ne!(t.hash(&s1), token(10).hash(&s1));
        assert!(t.hash(&s1).verify(&t, &s1));
        assert!(!t.hash(&s1).verify(&t, &s2));
        assert!(!t.hash(&s1).verify(&token(10), &s1));
        // Not the bare SHA-256 of the token, nor of salt ‖ token.
        let bare: [u8; 32] = Sha256::digest(t.expose_bytes()).into();
        assert_ne!(t.hash(&s1), TokenHash::from_bytes(bare));
        let mut h = Sha256::new();
        h.update(s1.as_bytes());
        h.update(t.expose_bytes());
        let unlabelled: [u8; 32] = h.finalize().into();
        assert_ne!(t.hash(&s1), TokenHash::from_bytes(unlabelled));
        // A fixed vector, so the stored form never changes by accident.
        assert_eq!(
            token(0).hash(&TokenSalt::from_bytes([0; 32])).to_string(),
            {
                let mut h = Sha256::new();
                h.update(b"onedoor client token v1\0");
                h.update([0u8; 64]);
                TokenHash::from_bytes(h.finalize().into()).to_string()
            }
        );
    }

    #[test]
    fn find_in_visits_all() {
        let salt = TokenSalt::from_bytes([3; 32]);
        let stored: Vec<TokenHash> = (0..5).map(|i| token(i).hash(&salt)).collect();
        assert_eq!(token(3).hash(&salt).find_in(&stored), Some(3));
        assert_eq!(token(0).hash(&salt).find_in(&stored), Some(0));
        assert_eq!(token(9).hash(&salt).find_in(&stored), None);
        assert_eq!(token(9).hash(&salt).find_in(&[]), None);
        let dup = [stored[1], stored[1]];
        assert_eq!(stored[1].find_in(&dup), Some(0));
    }

    #[test]
    fn hex_storage() {
        let salt = TokenSalt::from_bytes(std::array::from_fn(|i| i as u8));
        let text = salt.to_string();
        assert_eq!(&text[..8], "00010203");
        assert_eq!(text.parse(), Ok(salt));
        assert_eq!("zz".parse::<TokenSalt>(), Err(TokenError::Hex));
        assert_eq!("g".repeat(64).parse::<TokenHash>(), Err(TokenError::Hex));
        assert_eq!("é".repeat(32).parse::<TokenHash>(), Err(TokenError::Hex));
        let h = token(1).hash(&salt);
        assert_eq!(h.to_string().to_uppercase().parse(), Ok(h));
    }

    proptest! {
        #[test]
        fn token_roundtrips(b in any::<[u8; 32]>()) {
            let t = Token::from_bytes(b);
            prop_assert_eq!(t.encode().expose().parse::<Token>(), Ok(t));
        }

        #[test]
        fn hash_roundtrips(b in any::<[u8; 32]>()) {
            let h = TokenHash::from_bytes(b);
            prop_assert_eq!(h.to_string().parse::<TokenHash>(), Ok(h));
        }

        #[test]
        fn token_parse_never_panics(s in ".{0,50}") {
            if let Ok(t) = s.parse::<Token>() {
                let text = t.encode().into_exposed();
                prop_assert_eq!(text.as_str(), s.trim());
            }
            let _ = s.parse::<TokenHash>();
        }
    }
}
