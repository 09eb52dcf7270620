//! The `tls` transport: TLS straight to the door (1.3 with our server), ALPN `h2`.
//!
//! Who answered is decided before anything secret is sent (the token goes
//! in the first bytes *inside* TLS, after the handshake):
//!
//! - With a pinned fingerprint (the access key's `fp=`, or
//!   `--fingerprint`), the server's certificate is accepted exactly when the
//!   SHA-256 of its DER SubjectPublicKeyInfo is the pin (the value
//!   [`onedoor_proto::probe::hello::fingerprint`] gives for the server's
//!   Ed25519 key), and the handshake signature is verified with that
//!   certificate's key (rustls' [`verify_tls13_signature`] with the crypto
//!   provider's algorithms), so a middlebox cannot replay the certificate.
//!   Names, dates and chains do not matter: the key is the identity.
//! - Without a pin, the chain must verify against the system roots
//!   (`rustls-native-certs`) for the server name (`--sni`, else the host).
//!
//! Either way a refusal names what answered: its subject, issuer and SPKI
//! fingerprint ([`CertInfo`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Answered, Transport, TransportError};

/// The cryptography every TLS of onedoor uses (client, serve's tunnel,
/// the inner layer): aws-lc-rs. Against ring on the same tunnel run it cut
/// CPU per GB moved by 6-7 % (AES-GCM is 15-20 % of each side's CPU;
/// BENCHMARKS.md, tunnel follow-up).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The ALPN protocol the tunnel's own server side (tests) offers.
pub const ALPN: &[u8] = b"h2";

/// What the client offers, as a browser does: `h2` and `http/1.1`. serve
/// picks `http/1.1` when it fronts an HTTP/1.1 website (`--fallback`), and
/// the tunnel does not depend on the choice (it speaks first, with its own
/// hello), so offering only `h2` would fail there and mark us besides.
pub const CLIENT_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How the client side of the `tls` transport verifies the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientOptions {
    /// The pinned fingerprint; `None`: verify against the system roots.
    pub fingerprint: Option<Fingerprint>,
    /// The name sent as SNI and verified (CA mode); `None`: the server's
    /// host (an IP address sends no SNI).
    pub sni: Option<String>,
    /// How long TCP connect plus TLS handshake may take.
    pub timeout: Duration,
}

impl Default for TlsClientOptions {
    fn default() -> Self {
        TlsClientOptions {
            fingerprint: None,
            sni: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// TLS 1.3 to the door (client), or at a listener (server, for tests and
/// future use).
#[derive(Clone)]
pub struct TlsTransport {
    client: TlsClientOptions,
    provider: Arc<CryptoProvider>,
    roots: Arc<OnceLock<Result<Arc<RootCertStore>, String>>>,
    server: Option<Arc<ServerConfig>>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("client", &self.client)
            .field("server", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsTransport {
    /// A client transport.
    pub fn client(opts: TlsClientOptions) -> TlsTransport {
        TlsTransport {
            client: opts,
            provider: crypto_provider(),
            roots: Arc::new(OnceLock::new()),
            server: None,
        }
    }

    /// Also serve TLS 1.3 (ALPN `h2`) with this certificate chain and
    /// PKCS#8 key (DER).
    pub fn with_server(mut self, chain: Vec<Vec<u8>>, key_pkcs8: Vec<u8>) -> io::Result<Self> {
        let chain = chain.into_iter().map(CertificateDer::from).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8));
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(io::Error::other)?;
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        self.server = Some(Arc::new(cfg));
        Ok(self)
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, String> {
        self.roots
            .get_or_init(|| {
                let found = rustls_native_certs::load_native_certs();
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map_or_else(|| "none installed".to_owned(), |e| e.to_string());
                    return Err(format!(
                        "no system root certificates to verify the server with ({why}); \
                         pin it with --fingerprint SHA256:... (as `onedoor init` prints it)"
                    ));
                }
                Ok(Arc::new(store))
            })
            .clone()
    }

    /// A client configuration whose verifier acts on `mode`: `tls` and
    /// the inner layer refuse what is not the door (ALPN as a browser's),
    /// the outer TLS of `wss` observes (ALPN `http/1.1`, as a browser
    /// opening a WebSocket).
    fn client_config(&self, mode: Mode) -> Result<ClientConfig, String> {
        let webpki = match self.client.fingerprint {
            Some(_) => None,
            None => Some(
                WebPkiServerVerifier::builder_with_provider(self.roots()?, self.provider.clone())
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
        };
        // TLS 1.2 is offered too, as browsers do: our server always picks
        // 1.3, and a 1.2-only middlebox then shows the certificate it would
        // present, so the refusal can name it.
        let alpn: Vec<Vec<u8>> = match mode {
            Mode::Refuse(_) => CLIENT_ALPN.iter().map(|a| a.to_vec()).collect(),
            Mode::Observe(_) => vec![b"http/1.1".to_vec()],
        };
        let verifier = DoorVerifier {
            pin: self.client.fingerprint,
            webpki,
            algs: self.provider.signature_verification_algorithms,
            mode,
        };
        let mut cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        cfg.alpn_protocols = alpn;
        Ok(cfg)
    }

    async fn dial(&self, server: &HostPort) -> Result<TlsStream, TransportError> {
        let tcp = super::tcp_to(server).await?;
        self.handshake_over(server, tcp).await
    }

    /// The client's TLS handshake over `io` (a TCP connection, one through
    /// a proxy, or a WebSocket for the inner layer), verifying the door as
    /// the module docs say. Not bounded in time: the caller bounds it.
    pub async fn handshake_over<S>(
        &self,
        server: &HostPort,
        io: S,
    ) -> Result<tokio_rustls::client::TlsStream<S>, TransportError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = self.server_name(server).map_err(TransportError::Setup)?;
        let seen = Arc::new(Mutex::new(None));
        let cfg = self
            .client_config(Mode::Refuse(seen.clone()))
            .map_err(TransportError::Setup)?;
        match connect_tls(cfg, name, io).await {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Some(answered) = seen.lock().ok().and_then(|mut s| s.take()) {
                    return Err(TransportError::Intercepted {
                        server: server.clone(),
                        answered,
                    });
                }
                Err(classify(server, e))
            }
        }
    }

    /// The pinned fingerprint, if any.
    pub fn pin(&self) -> Option<Fingerprint> {
        self.client.fingerprint
    }

    /// How long connecting and the handshake may take.
    pub fn timeout(&self) -> Duration {
        self.client.timeout
    }

    /// The `Host` header for an HTTP request to `door`: the TLS name
    /// (`--sni`, else the host), with the port unless it is 80 or 443.
    pub fn host_header(&self, door: &HostPort) -> String {
        let name = self.client.sni.as_deref().unwrap_or(&door.host);
        let name = if name.contains(':') {
            format!("[{name}]")
        } else {
            name.to_owned()
        };
        match door.port {
            80 | 443 => name,
            p => format!("{name}:{p}"),
        }
    }

    /// The name sent as SNI and verified: `--sni`, else the server's host.
    pub fn server_name(&self, server: &HostPort) -> Result<ServerName<'static>, String> {
        let name = self.client.sni.as_deref().unwrap_or(&server.host);
        ServerName::try_from(name.to_owned())
            .map_err(|_| format!("{name:?} is not a valid TLS server name (--sni)"))
    }

    /// An *outer* TLS handshake over `io`, for `wss`: whatever certificate
    /// answers is accepted (the handshake signature is still checked with
    /// its key), and [`OuterSeen`] says whether it is the door's own —
    /// the pinned key, or without a pin, a chain the system roots vouch
    /// for. When it is not, the session must run in the inner layer.
    /// Offers TLS 1.3 and 1.2 and ALPN `http/1.1`, as a browser opening a
    /// WebSocket does.
    pub async fn outer_over<S>(
        &self,
        server: &HostPort,
        io: S,
    ) -> Result<(tokio_rustls::client::TlsStream<S>, OuterSeen), TransportError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = self.server_name(server).map_err(TransportError::Setup)?;
        let seen = Arc::new(Mutex::new(None));
        let cfg = self
            .client_config(Mode::Observe(seen.clone()))
            .map_err(TransportError::Setup)?;
        let tls = connect_tls(cfg, name, io)
            .await
            .map_err(|e| classify(server, e))?;
        let seen = seen
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| TransportError::Setup("TLS ended without a certificate".into()))?;
        Ok((tls, seen))
    }
}

/// What the outer TLS of `wss` presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OuterSeen {
    /// The certificate.
    pub cert: CertInfo,
    /// Is it the door's own (the pinned key, or a chain the system roots
    /// vouch for when nothing is pinned)?
    pub verified: bool,
    /// Why not, in words (the pin, or the verifier's complaint).
    pub why_not: Option<String>,
}

/// The client's TLS stream.
pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A failed handshake without a certificate verdict: I/O trouble (reset,
/// EOF) is "unreachable"; an answer that is not TLS 1.3 is interception.
fn classify(server: &HostPort, e: io::Error) -> TransportError {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match tls {
        Some(t) => TransportError::Intercepted {
            server: server.clone(),
            answered: Answered::NotOurTls(t.to_string()),
        },
        None if e.kind() == io::ErrorKind::InvalidData => TransportError::Intercepted {
            server: server.clone(),
            answered: Answered::NotOurTls(e.to_string()),
        },
        None => TransportError::Unreachable {
            server: server.clone(),
            source: e,
        },
    }
}

impl Transport for TlsTransport {
    type Stream = TlsStream;

    fn server_key(stream: &TlsStream) -> Option<Fingerprint> {
        let (_, conn) = stream.get_ref();
        let leaf = conn.peer_certificates()?.first()?;
        cert_fingerprint(leaf)
    }
    type Acceptor = TcpListener;
    type Raw = TcpStream;
    type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

    fn name(&self) -> &'static str {
        "tls"
    }

    async fn connect(&self, server: &HostPort) -> Result<TlsStream, TransportError> {
        let after = self.client.timeout;
        match tokio::time::timeout(after, self.dial(server)).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout {
                server: server.clone(),
                after,
            }),
        }
    }

    async fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    async fn accept(&self, acceptor: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        acceptor.accept().await
    }

    async fn handshake(&self, raw: TcpStream) -> io::Result<Self::ServerStream> {
        let cfg = self.server.clone().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "this TLS transport has no server certificate",
            )
        })?;
        accept_tls(&TlsAcceptor::from(cfg), raw).await
    }
}

/// The client's TLS handshake with `cfg`, ready for a session's writes
/// ([`crate::tunnel::widen_tls_writes`]).
async fn connect_tls<S>(
    cfg: ClientConfig,
    name: ServerName<'static>,
    io: S,
) -> io::Result<tokio_rustls::client::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut tls = TlsConnector::from(Arc::new(cfg)).connect(name, io).await?;
    crate::tunnel::widen_tls_writes(tls.get_mut().1);
    Ok(tls)
}

/// The server's TLS handshake, ready for a session's writes
/// ([`crate::tunnel::widen_tls_writes`]): `TlsTransport`'s and serve's.
pub(crate) async fn accept_tls<S>(
    acceptor: &TlsAcceptor,
    io: S,
) -> io::Result<tokio_rustls::server::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut tls = acceptor.accept(io).await?;
    crate::tunnel::widen_tls_writes(tls.get_mut().1);
    Ok(tls)
}

/// What the verifier does with a certificate that is not the door's own.
#[derive(Debug)]
enum Mode {
    /// Refuse it, remembering what answered (`tls`, the inner layer).
    Refuse(Arc<Mutex<Option<Answered>>>),
    /// Accept it, remembering what it was (the outer TLS of `wss`; the
    /// inner layer will verify the server).
    Observe(Arc<Mutex<Option<OuterSeen>>>),
}

/// Decides whether the door's certificate is our server's: the pinned key,
/// or without a pin a chain the system roots vouch for. The handshake
/// signature is always checked with the presented certificate's key.
#[derive(Debug)]
struct DoorVerifier {
    pin: Option<Fingerprint>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algs: WebPkiSupportedAlgorithms,
    mode: Mode,
}

fn remember<T>(slot: &Mutex<Option<T>>, value: T) {
    if let Ok(mut s) = slot.lock() {
        *s = Some(value);
    }
}

impl ServerCertVerifier for DoorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = CertInfo::parse(end_entity);
        let refusal = match (self.pin, &self.webpki) {
            (Some(pin), _) if cert.fingerprint == Some(pin) => None,
            (Some(pin), _) => Some(Answered::WrongKey {
                cert: cert.clone(),
                expected: pin,
            }),
            (None, Some(w)) => w
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .err()
                .map(|e| Answered::Untrusted {
                    cert: cert.clone(),
                    why: e.to_string(),
                }),
            (None, None) => Some(Answered::Untrusted {
                cert: cert.clone(),
                why: "nothing to verify it with".into(),
            }),
        };
        match (&self.mode, refusal) {
            (Mode::Refuse(_), None) => Ok(ServerCertVerified::assertion()),
            (Mode::Refuse(seen), Some(answered)) => {
                remember(seen, answered);
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
            (Mode::Observe(seen), refusal) => {
                let why_not = refusal.map(|r| match r {
                    Answered::WrongKey { expected, .. } => {
                        format!("the pinned fingerprint is {expected}")
                    }
                    Answered::Untrusted { why, .. } => why,
                    other => other.to_string(),
                });
                remember(
                    seen,
                    OuterSeen {
                        cert,
                        verified: why_not.is_none(),
                        why_not,
                    },
                );
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// What a certificate says about itself, for messages: subject, issuer and
/// the SHA-256 of its SubjectPublicKeyInfo (the value a pin compares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's CN/O/OU/C, `CN=…, O=…`.
    pub subject: String,
    /// The issuer, the same way.
    pub issuer: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo; `None` if the certificate
    /// could not be parsed.
    pub fingerprint: Option<Fingerprint>,
}

impl CertInfo {
    /// Read subject, issuer and SPKI out of a DER certificate. Never fails:
    /// what cannot be read is said so.
    pub fn parse(der: &[u8]) -> CertInfo {
        parse_cert(der).unwrap_or(CertInfo {
            subject: "(unreadable certificate)".into(),
            issuer: "(unreadable certificate)".into(),
            fingerprint: None,
        })
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subject == self.issuer {
            write!(f, "self-signed certificate for {}", self.subject)?;
        } else {
            write!(
                f,
                "certificate for {} issued by {}",
                self.subject, self.issuer
            )?;
        }
        match &self.fingerprint {
            Some(fp) => write!(f, ", fingerprint {fp}"),
            None => f.write_str(", fingerprint unknown"),
        }
    }
}

/// One DER TLV: tag, contents, the whole TLV, and what follows.
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn tlv(b: &[u8]) -> Option<Tlv<'_>> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    let whole = b.get(..end)?;
    Some((tag, &whole[hdr..], whole, &b[end..]))
}

/// The fingerprint of a certificate's key: SHA-256 of its DER
/// SubjectPublicKeyInfo, as access keys pin it.
pub fn cert_fingerprint(der: &[u8]) -> Option<Fingerprint> {
    parse_cert(der)?.fingerprint
}

fn parse_cert(der: &[u8]) -> Option<CertInfo> {
    let (_, cert, _, _) = tlv(der)?;
    let (_, tbs, _, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // version
        let (_, _, _, r) = tlv(rest)?; // serial
        rest = r;
    } else {
        rest = r; // that was the serial
    }
    let (_, _, _, r) = tlv(rest)?; // signature algorithm
    let (_, issuer, _, r) = tlv(r)?;
    let (_, _, _, r) = tlv(r)?; // validity
    let (_, subject, _, r) = tlv(r)?;
    let (_, _, spki, _) = tlv(r)?;
    Some(CertInfo {
        subject: name(subject),
        issuer: name(issuer),
        fingerprint: Some(Fingerprint::of(spki)),
    })
}

/// An X.501 Name's common attributes as `CN=…, O=…`.
fn name(mut rdns: &[u8]) -> String {
    let mut parts = Vec::new();
    while let Some((_, set, _, rest)) = tlv(rdns) {
        rdns = rest;
        let mut attrs = set;
        while let Some((_, atv, _, rest)) = tlv(attrs) {
            attrs = rest;
            let Some((_, oid, _, v)) = tlv(atv) else {
                continue;
            };
            let Some((_, value, _, _)) = tlv(v) else {
                continue;
            };
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                [0x55, 0x04, 0x06] => "C",
                _ => continue,
            };
            let text: String = String::from_utf8_lossy(value)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .take(128)
                .collect();
            parts.push(format!("{label}={text}"));
        }
    }
    if parts.is_empty() {
        "(no name)".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Identity;
    use std::time::SystemTime;

    #[test]
    fn cert_info_names_the_certificate_and_its_key() {
        let id = Identity::generate("door.example", SystemTime::now()).unwrap();
        let info = CertInfo::parse(&id.cert_der);
        assert_eq!(info.fingerprint, Some(id.fingerprint()));
        assert!(info.subject.contains("door.example") || info.subject == "(no name)");
        assert!(info.to_string().contains(&id.fingerprint().to_string()));
    }

    /// A whole 1 MiB HTTP/2 frame with its 9-byte head goes into the TLS
    /// layer in one write, on both sides: with rustls's default 64 KiB the
    /// 9 bytes left over went out alone (a record, a syscall, a segment).
    #[tokio::test]
    async fn a_whole_frame_is_taken_in_one_write_on_both_sides() {
        use std::io::Write;
        let id = Identity::generate("127.0.0.1", SystemTime::now()).unwrap();
        let t = TlsTransport::client(TlsClientOptions {
            fingerprint: Some(id.fingerprint()),
            ..TlsClientOptions::default()
        })
        .with_server(
            vec![id.cert_der.clone()],
            id.key_pkcs8_der().expose().clone(),
        )
        .unwrap();
        let listener = t.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let door = HostPort::new("127.0.0.1", listener.local_addr().unwrap().port());
        let (client, server) = tokio::join!(t.connect(&door), async {
            let (raw, _) = t.accept(&listener).await.unwrap();
            t.handshake(raw).await
        });
        let (mut client, mut server) = (client.unwrap(), server.unwrap());
        let frame = vec![0x42u8; (1 << 20) + 9];
        assert_eq!(
            client.get_mut().1.writer().write(&frame).unwrap(),
            frame.len()
        );
        assert_eq!(
            server.get_mut().1.writer().write(&frame).unwrap(),
            frame.len()
        );
    }

    #[test]
    fn garbage_is_said_to_be_unreadable() {
        let info = CertInfo::parse(&[0x30, 0x82, 0xff]);
        assert_eq!(info.fingerprint, None);
        assert!(info.to_string().contains("unreadable"));
    }
}
