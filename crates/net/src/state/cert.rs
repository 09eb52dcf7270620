//! The identity's certificate: made with rcgen and self-signed by the
//! identity key, and checked when read back with a small DER reader that
//! walks just the fields the check needs (RFC 5280 §4.1).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use onedoor_proto::probe::hello::ED25519_SPKI_PREFIX;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyIdMethod,
    KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use sha2::{Digest, Sha256};

/// The DER `AlgorithmIdentifier` of Ed25519 (RFC 8410): `1.3.101.112`, no
/// parameters.
const ED25519_ALG: [u8; 7] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
/// The OID of the subjectAltName extension, `2.5.29.17`.
const SAN_OID: [u8; 3] = [0x55, 0x1d, 0x11];

/// The identity key as rcgen sees it.
struct RcgenKey<'a> {
    key: &'a SigningKey,
    public: [u8; 32],
}

impl PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// The DER `SubjectPublicKeyInfo` of an Ed25519 public key.
pub(super) fn spki(public: &[u8; 32]) -> Vec<u8> {
    [&ED25519_SPKI_PREFIX[..], public].concat()
}

/// A self-signed certificate for `key` whose only subjectAltName (and
/// common name) is `name` (an IP address becomes an iPAddress name), valid
/// from a day before `now` (clock skew) to 9999-12-31 (RFC 5280's "no
/// well-defined expiration date"), for TLS server authentication.
/// `serial` should be random.
pub(super) fn make(
    key: &SigningKey,
    name: &str,
    now: SystemTime,
    serial: [u8; 16],
) -> Result<Vec<u8>, rcgen::Error> {
    let public = key.verifying_key().to_bytes();
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let since = now
        .checked_sub(Duration::from_secs(86_400))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(since)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    params.not_after = time::Date::from_calendar_date(9999, time::Month::December, 31)
        .and_then(|d| d.with_hms(23, 59, 59))
        .map(|t| t.assume_utc())
        .expect("9999-12-31T23:59:59Z exists");
    let mut serial = serial;
    // A positive INTEGER of 16 bytes (RFC 5280 allows up to 20).
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // RFC 7093 method 1: the leftmost 160 bits of the SPKI's SHA-256.
    params.key_identifier_method =
        KeyIdMethod::PreSpecified(Sha256::digest(spki(&public))[..20].to_vec());
    let cert = params.self_signed(&RcgenKey { key, public })?;
    Ok(cert.der().to_vec())
}

/// A cursor over DER: one tag-length-value at a time.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element: its tag, its contents and its whole encoding.
    fn next(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), String> {
        const TRUNCATED: &str = "not a DER certificate (truncated or malformed)";
        let b = self.0;
        let (&tag, rest) = b.split_first().ok_or(TRUNCATED)?;
        if tag & 0x1f == 0x1f {
            return Err(TRUNCATED.into());
        }
        let (&first, mut rest) = rest.split_first().ok_or(TRUNCATED)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(TRUNCATED.into());
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, &d| a << 8 | usize::from(d));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return Err(TRUNCATED.into());
        }
        let header = b.len() - rest.len();
        let whole = &b[..header + len];
        self.0 = &rest[len..];
        Ok((tag, &rest[..len], whole))
    }

    /// The next element, which must have `tag`: its contents and encoding.
    fn expect(&mut self, tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
        match self.next()? {
            (t, contents, whole) if t == tag => Ok((contents, whole)),
            _ => Err(format!("not an X.509 certificate (expected {what})")),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Check that `der` is a certificate for `public`, signed by it (Ed25519),
/// whose only subjectAltName is `name`. Says what is wrong otherwise.
pub(super) fn check(der: &[u8], public: &VerifyingKey, name: &str) -> Result<(), String> {
    let mut top = Der(der);
    let (cert, _) = top.expect(0x30, "a Certificate")?;
    if !top.is_empty() {
        return Err("data after the certificate".into());
    }
    let mut c = Der(cert);
    let (tbs, tbs_der) = c.expect(0x30, "a TBSCertificate")?;
    let (_, alg) = c.expect(0x30, "a signature algorithm")?;
    let (sig, _) = c.expect(0x03, "a signature")?;
    if !c.is_empty() {
        return Err("not an X.509 certificate (extra fields)".into());
    }
    if alg != ED25519_ALG {
        return Err("not signed with Ed25519".into());
    }

    let mut t = Der(tbs);
    if t.peek() == Some(0xa0) {
        t.next()?;
    }
    t.expect(0x02, "a serial number")?;
    let (_, inner_alg) = t.expect(0x30, "a signature algorithm")?;
    if inner_alg != ED25519_ALG {
        return Err("not signed with Ed25519".into());
    }
    for what in ["an issuer", "a validity", "a subject"] {
        t.expect(0x30, what)?;
    }
    let (_, key_info) = t.expect(0x30, "a public key")?;
    if key_info != spki(public.as_bytes()) {
        return Err("the certificate is for another key than identity.key".into());
    }
    let mut san = None;
    while !t.is_empty() {
        let (tag, contents, _) = t.next()?;
        if tag != 0xa3 {
            continue;
        }
        let (list, _) = Der(contents).expect(0x30, "extensions")?;
        let mut exts = Der(list);
        while !exts.is_empty() {
            let (ext, _) = exts.expect(0x30, "an extension")?;
            let mut ext = Der(ext);
            let (oid, _) = ext.expect(0x06, "an extension id")?;
            if ext.peek() == Some(0x01) {
                ext.next()?;
            }
            let (value, _) = ext.expect(0x04, "an extension value")?;
            if oid == SAN_OID {
                if san.is_some() {
                    return Err("two subjectAltName extensions".into());
                }
                san = Some(value);
            }
        }
    }
    let san = san.ok_or("no subjectAltName: it names no server")?;
    let (names, _) = Der(san).expect(0x30, "a list of names")?;
    let mut names = Der(names);
    let (tag, value, _) = names.next()?;
    if !names.is_empty() {
        return Err(format!(
            "the certificate names more than the server name {name:?}"
        ));
    }
    let matches = match (tag, name.parse::<IpAddr>()) {
        (0x82, Err(_)) => value.eq_ignore_ascii_case(name.as_bytes()),
        (0x87, Ok(IpAddr::V4(ip))) => value == ip.octets(),
        (0x87, Ok(IpAddr::V6(ip))) => value == ip.octets(),
        _ => false,
    };
    if !matches {
        return Err(format!(
            "the certificate's name is not the server name {name:?} of server.toml"
        ));
    }

    let sig = match sig {
        [0, rest @ ..] => <[u8; 64]>::try_from(rest).ok(),
        _ => None,
    }
    .ok_or("not an Ed25519 signature")?;
    public
        .verify_strict(tbs_der, &Signature::from_bytes(&sig))
        .map_err(|_| "the certificate's signature is not by identity.key".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_732_800)
    }

    #[test]
    fn made_certificates_pass() {
        for name in ["door.example", "198.18.0.1", "2001:db8::1"] {
            let der = make(&key(1), name, now(), [7; 16]).unwrap();
            check(&der, &key(1).verifying_key(), name).unwrap();
            check(&der, &key(1).verifying_key(), &name.to_uppercase()).unwrap();
        }
    }

    #[test]
    fn mismatches_are_named() {
        let der = make(&key(1), "door.example", now(), [7; 16]).unwrap();
        let e = check(&der, &key(2).verifying_key(), "door.example").unwrap_err();
        assert!(e.contains("another key"), "{e}");
        let e = check(&der, &key(1).verifying_key(), "other.example").unwrap_err();
        assert!(e.contains("not the server name"), "{e}");
        // A certificate for key 1 signed by key 2.
        let public = key(1).verifying_key().to_bytes();
        let params = CertificateParams::new(vec!["door.example".to_owned()]).unwrap();
        let mut params = params;
        params.serial_number = Some(SerialNumber::from_slice(&[1]));
        let issuer_key = key(2);
        let issuer = rcgen::Issuer::from_params(
            &params,
            RcgenKey {
                key: &issuer_key,
                public: issuer_key.verifying_key().to_bytes(),
            },
        );
        let forged = params
            .signed_by(
                &RcgenKey {
                    key: &key(1),
                    public,
                },
                &issuer,
            )
            .unwrap();
        let e = check(forged.der(), &key(1).verifying_key(), "door.example").unwrap_err();
        assert!(e.contains("signature"), "{e}");
        // Any flipped byte is caught by one check or another.
        for i in (0..der.len()).step_by(7) {
            let mut bad = der.clone();
            bad[i] ^= 0x01;
            assert!(
                check(&bad, &key(1).verifying_key(), "door.example").is_err(),
                "byte {i}"
            );
        }
        assert!(check(
            &der[..der.len() - 1],
            &key(1).verifying_key(),
            "door.example"
        )
        .is_err());
        assert!(check(b"", &key(1).verifying_key(), "door.example").is_err());
    }
}
