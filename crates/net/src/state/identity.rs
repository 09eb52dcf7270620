//! The server's identity: one Ed25519 key, a self-signed certificate that
//! names the server, and the fingerprint clients pin.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::SigningKey;
use onedoor_proto::probe::hello::fingerprint;
use onedoor_proto::tunnel::{Fingerprint, Secret};
use pem_rfc7468::LineEnding;

use super::{cert, files, StateError};

/// The PEM label of the certificate.
const CERT_LABEL: &str = "CERTIFICATE";

/// The server's identity. `Debug` shows the name and the fingerprint, never
/// the private key.
pub struct Identity {
    /// The Ed25519 private key (serve signs probe replies and the TLS
    /// handshake with it).
    pub signing_key: SigningKey,
    /// The DER of the self-signed certificate for that key (for the TLS
    /// server configuration).
    pub cert_der: Vec<u8>,
    /// The server's name: the certificate's only subjectAltName.
    pub name: String,
}

impl Identity {
    /// A new identity named `name`, its key and certificate serial drawn
    /// from the OS CSPRNG; `now` dates the certificate.
    pub fn generate(name: &str, now: SystemTime) -> Result<Identity, StateError> {
        let secret: [u8; 32] = files::random().map_err(StateError::Random)?;
        let serial: [u8; 16] = files::random().map_err(StateError::Random)?;
        Identity::from_key(SigningKey::from_bytes(&secret), name, now, serial)
    }

    /// The identity of an existing key: makes its certificate for `name`
    /// (checked as [`check_server_name`] does), dated `now`, with `serial`.
    pub fn from_key(
        signing_key: SigningKey,
        name: &str,
        now: SystemTime,
        serial: [u8; 16],
    ) -> Result<Identity, StateError> {
        let name = check_server_name(name)?;
        let cert_der = cert::make(&signing_key, &name, now, serial)
            .map_err(|e| StateError::Certificate(e.to_string()))?;
        Ok(Identity {
            signing_key,
            cert_der,
            name,
        })
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// What clients pin: the SHA-256 of the key's DER SubjectPublicKeyInfo,
    /// as [`onedoor_proto::probe::hello::fingerprint`] defines it (the
    /// certificate's SPKI hashes to the same value).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::from_digest(fingerprint(&self.public_key()))
    }

    /// The private key as PKCS#8 DER (for a TLS library): version 1, the
    /// 32-byte seed only (RFC 8410 §7), as `openssl genpkey` writes it;
    /// OpenSSL 3.0 cannot read the version 2 form with the public key.
    pub fn key_pkcs8_der(&self) -> Secret<Vec<u8>> {
        let doc = self
            .seed_only()
            .to_pkcs8_der()
            .expect("an Ed25519 key always encodes");
        Secret::new(doc.as_bytes().to_vec())
    }

    /// The private key as PKCS#8 PEM (`identity.key`), in the form of
    /// [`Identity::key_pkcs8_der`].
    pub fn key_pem(&self) -> Secret<String> {
        let pem = self
            .seed_only()
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 key always encodes");
        Secret::new(pem.as_str().to_owned())
    }

    fn seed_only(&self) -> KeypairBytes {
        KeypairBytes {
            secret_key: self.signing_key.to_bytes(),
            public_key: None,
        }
    }

    /// The certificate as PEM (`identity.crt`).
    pub fn cert_pem(&self) -> String {
        pem_rfc7468::encode_string(CERT_LABEL, LineEnding::LF, &self.cert_der)
            .expect("a certificate always encodes")
    }

    /// Read `identity.key` and `identity.crt` and check that they belong
    /// together and name `name`.
    pub(super) fn load(
        key_path: &Path,
        cert_path: &Path,
        name: &str,
    ) -> Result<Identity, StateError> {
        let invalid = |path: &Path, what: String| StateError::Invalid {
            path: path.to_owned(),
            line: None,
            what,
        };
        let missing = |path: &Path| {
            invalid(
                path,
                "missing; `onedoor init --force` makes a new identity".into(),
            )
        };
        let (key_text, _) = files::read(key_path)?.ok_or_else(|| missing(key_path))?;
        files::warn_if_loose(key_path, 0o077);
        let signing_key = SigningKey::from_pkcs8_pem(&key_text).map_err(|e| {
            invalid(
                key_path,
                format!("not an Ed25519 private key in PKCS#8 PEM ({e})"),
            )
        })?;
        drop(key_text);
        let (cert_text, _) = files::read(cert_path)?.ok_or_else(|| missing(cert_path))?;
        let (label, cert_der) = pem_rfc7468::decode_vec(cert_text.trim().as_bytes())
            .map_err(|e| invalid(cert_path, format!("not a PEM certificate ({e})")))?;
        if label != CERT_LABEL {
            return Err(invalid(
                cert_path,
                format!("a PEM {label:?}, not a CERTIFICATE"),
            ));
        }
        cert::check(&cert_der, &signing_key.verifying_key(), name)
            .map_err(|what| invalid(cert_path, what))?;
        Ok(Identity {
            signing_key,
            cert_der,
            name: name.to_owned(),
        })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Check a server name (`init --name`, `server.toml`'s `name`) and return
/// its canonical form: an IP address (IPv6 with or without brackets;
/// returned without), or a DNS name (letters, digits, `-`, `_`, dots; a
/// trailing dot dropped; lower case).
pub fn check_server_name(name: &str) -> Result<String, StateError> {
    let bad = |why| StateError::BadServerName {
        name: name.to_owned(),
        why,
    };
    let s = name.trim();
    let bare = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(bad("an unspecified address names no server"));
        }
        return Ok(ip.to_string());
    }
    let n = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    if n.is_empty() {
        return Err(bad("empty"));
    }
    if n.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Err(bad("an empty label (two dots in a row, or a leading dot)"));
        }
        if label.len() > 63 {
            return Err(bad("a label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(
                "a DNS name has only letters, digits, '-', '_' and dots (or give an IP address)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    if n.rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad(
            "neither an IP address nor a DNS name (all-numeric last label)",
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn server_names() {
        for (given, canonical) in [
            ("door.example", "door.example"),
            ("Door.Example.", "door.example"),
            ("localhost", "localhost"),
            ("my_host", "my_host"),
            ("198.18.0.1", "198.18.0.1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:DB8::1", "2001:db8::1"),
        ] {
            assert_eq!(check_server_name(given).unwrap(), canonical, "{given}");
        }
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a/b",
            "1.2.3",
            "999.1.1.1",
            "0.0.0.0",
            "[::]",
            "*.example",
            "door.example:443",
        ] {
            let e = check_server_name(bad).unwrap_err();
            assert!(e.is_usage(), "{bad}: {e}");
        }
        assert!(check_server_name(&"a".repeat(64)).is_err());
        assert!(check_server_name(&["a"; 130].join(".")).is_err());
    }

    #[test]
    fn fingerprint_is_the_certificate_spki_hash() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let id = Identity::from_key(
            SigningKey::from_bytes(&[9; 32]),
            "door.example",
            now,
            [1; 16],
        )
        .unwrap();
        let spki = cert::spki(&id.public_key());
        assert!(id.cert_der.windows(spki.len()).any(|w| w == spki));
        assert_eq!(id.fingerprint(), Fingerprint::of(&spki));
        let debug = format!("{id:?}");
        assert!(debug.contains(&id.fingerprint().to_string()), "{debug}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn pem_forms_read_back() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let id = Identity::from_key(
            SigningKey::from_bytes(&[5; 32]),
            "door.example",
            now,
            [1; 16],
        )
        .unwrap();
        let pem = id.key_pem();
        assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        // PKCS#8 version 1 (RFC 8410 §7), 48 bytes: what OpenSSL 3.0 reads.
        let der = id.key_pkcs8_der();
        assert_eq!(der.expose().len(), 48);
        assert_eq!(der.expose()[..5], [0x30, 0x2e, 0x02, 0x01, 0x00]);
        let back = SigningKey::from_pkcs8_pem(pem.expose()).unwrap();
        assert_eq!(back.to_bytes(), id.signing_key.to_bytes());
        let back = SigningKey::from_pkcs8_der(id.key_pkcs8_der().expose()).unwrap();
        assert_eq!(back.to_bytes(), id.signing_key.to_bytes());
        let cert_pem = id.cert_pem();
        let (label, der) = pem_rfc7468::decode_vec(cert_pem.as_bytes()).unwrap();
        assert_eq!((label, der), (CERT_LABEL, id.cert_der.clone()));
    }
}
