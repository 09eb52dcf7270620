//! The probe reflector (`serve --reflect`): answers probe hellos sealed with
//! this server's key — on TCP through the door's normal sniffing, on UDP from
//! one socket per listed port — and keeps the log of UDP arrivals that an
//! arrivals query reads. Everyone else sees what any other connection sees.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use onedoor_proto::probe::hello::{
    fingerprint, Hello, HelloKind, HelloParse, ReplayGuard, HELLO_LEN,
};
use onedoor_proto::probe::hello::{DEFAULT_MAX_SKEW_SECS, DEFAULT_REPLAY_CAPACITY};
use onedoor_proto::probe::{ArrivalsLog, ProbeKey, SigningKey};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// What the reflector needs: the server's key, and its memory of what it saw.
pub struct Reflector {
    key: ProbeKey,
    signer: SigningKey,
    replay: Mutex<ReplayGuard>,
    arrivals: Mutex<ArrivalsLog>,
}

impl std::fmt::Debug for Reflector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reflector").finish_non_exhaustive()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Reflector {
    /// A reflector that signs with the server's identity key.
    pub fn new(signer: SigningKey) -> Self {
        let key = ProbeKey::new(fingerprint(&signer.verifying_key().to_bytes()));
        Reflector {
            key,
            signer,
            replay: Mutex::new(ReplayGuard::new(
                DEFAULT_MAX_SKEW_SECS,
                DEFAULT_REPLAY_CAPACITY,
            )),
            arrivals: Mutex::new(ArrivalsLog::new()),
        }
    }

    /// The key hellos are sealed with (for the router).
    pub fn key(&self) -> &ProbeKey {
        &self.key
    }

    /// Is this hello fresh (not replayed, clock within the skew)? A refused
    /// hello is treated as any other bytes.
    pub(crate) fn admit(&self, hello: &Hello) -> bool {
        match self
            .replay
            .lock()
            .expect("replay lock")
            .admit(hello, now_unix())
        {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(reason = %e, "probe hello refused");
                let result = match e {
                    onedoor_proto::probe::hello::Refused::Stale => "stale",
                    onedoor_proto::probe::hello::Refused::Replayed => "replayed",
                };
                metrics::counter!("onedoor_probe_hellos_total", "result" => result).increment(1);
                false
            }
        }
    }

    /// Answer an admitted TCP (or arrivals) hello that arrived on
    /// `port_seen`, then close.
    pub(crate) async fn answer_tcp(&self, mut stream: TcpStream, hello: Hello, port_seen: u16) {
        let mut out = self.key.reply(&hello, port_seen, &self.signer).to_vec();
        match hello.kind {
            HelloKind::Tcp => {}
            HelloKind::Arrivals => {
                let arrivals = self
                    .arrivals
                    .lock()
                    .expect("arrivals lock")
                    .arrivals(&hello.run, now_unix());
                out.extend(self.key.arrivals_report(&hello, &arrivals, &self.signer));
            }
            HelloKind::Udp => return,
        }
        tracing::debug!(port = port_seen, kind = ?hello.kind, "probe answered");
        let kind = if hello.kind == HelloKind::Arrivals {
            "answered_arrivals"
        } else {
            "answered_tcp"
        };
        metrics::counter!("onedoor_probe_hellos_total", "result" => kind).increment(1);
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    }

    /// Answer UDP hellos arriving on `socket` until `stop`.
    pub async fn run_udp(self: Arc<Self>, socket: UdpSocket, stop: CancellationToken) {
        let port_seen = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let mut buf = [0u8; 2048];
        loop {
            let (n, from): (usize, SocketAddr) = tokio::select! {
                _ = stop.cancelled() => return,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(r) => r,
                    Err(_) => continue,
                },
            };
            if n != HELLO_LEN {
                continue;
            }
            let HelloParse::Hello(hello) = self.key.parse_datagram(&buf[..n]) else {
                continue;
            };
            if hello.kind != HelloKind::Udp || !self.admit(&hello) {
                continue;
            }
            self.arrivals
                .lock()
                .expect("arrivals lock")
                .record(&hello, port_seen, now_unix());
            metrics::counter!("onedoor_probe_hellos_total", "result" => "answered_udp")
                .increment(1);
            let reply = self.key.reply(&hello, port_seen, &self.signer);
            let _ = socket.send_to(&reply, from).await;
        }
    }

    /// Answer UDP hellos arriving through the redirect on one transparent
    /// `socket` (see `onedoor_sys::reflect`), each answered from the door
    /// it was sent to, until `stop`.
    #[cfg(target_os = "linux")]
    pub async fn run_udp_redirected(self: Arc<Self>, socket: UdpSocket, stop: CancellationToken) {
        use onedoor_sys::reflect::{recv_dialled, send_from};
        let mut buf = [0u8; 2048];
        loop {
            let datagram = tokio::select! {
                _ = stop.cancelled() => return,
                r = socket.readable() => match r {
                    Ok(()) => match socket.try_io(tokio::io::Interest::READABLE, || recv_dialled(&socket, &mut buf)) {
                        Ok(d) => d,
                        Err(_) => continue,
                    },
                    Err(_) => return,
                },
            };
            if datagram.len != HELLO_LEN {
                continue;
            }
            let HelloParse::Hello(hello) = self.key.parse_datagram(&buf[..datagram.len]) else {
                continue;
            };
            if hello.kind != HelloKind::Udp || !self.admit(&hello) {
                continue;
            }
            let port_seen = datagram.dialled.port();
            self.arrivals
                .lock()
                .expect("arrivals lock")
                .record(&hello, port_seen, now_unix());
            metrics::counter!("onedoor_probe_hellos_total", "result" => "answered_udp")
                .increment(1);
            let reply = self.key.reply(&hello, port_seen, &self.signer);
            if let Err(e) = send_from(datagram.dialled, datagram.from, &reply) {
                tracing::debug!(error = %e, port = port_seen, "UDP probe reply not sent");
            }
        }
    }
}
