//! UDP through the tunnel: one stream per flow, each datagram a DATAGRAM
//! capsule (RFC 9297: varint type, varint length, then context ID 0 and the
//! payload), so a datagram arrives whole or not at all and boundaries stay.

use std::fmt;
use std::io;
use std::task::{ready, Poll};

use bytes::{Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use onedoor_proto::tunnel::session::{
    datagram_header, datagram_payload, parse_capsule, CAPSULE_DATAGRAM,
};
use tokio::net::UdpSocket;

use super::stream::h2_to_io;

/// The largest UDP payload.
pub(crate) const MAX_DATAGRAM: usize = 65_535;

/// Capsules read from a stream.
pub(crate) struct CapsuleReader {
    recv: RecvStream,
    buf: BytesMut,
}

impl CapsuleReader {
    pub(crate) fn new(recv: RecvStream) -> Self {
        CapsuleReader {
            recv,
            buf: BytesMut::new(),
        }
    }

    /// The next capsule (type and payload), `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> io::Result<Option<(u64, Bytes)>> {
        loop {
            match parse_capsule(&self.buf) {
                Ok(Some(c)) => {
                    let whole = self.buf.split_to(c.len).freeze();
                    return Ok(Some((c.ty, whole.slice(c.payload))));
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            match self.recv.data().await {
                Some(Ok(b)) => {
                    let _ = self.recv.flow_control().release_capacity(b.len());
                    self.buf.extend_from_slice(&b);
                }
                Some(Err(e)) => return Err(h2_to_io(e)),
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "tunnel stream ended inside a capsule",
                    ))
                }
            }
        }
    }

    /// The next datagram's payload; capsules of other types and contexts
    /// are skipped (RFC 9297: unknown capsules are ignored).
    pub(crate) async fn next_datagram(&mut self) -> io::Result<Option<Bytes>> {
        while let Some((ty, payload)) = self.next().await? {
            if ty != CAPSULE_DATAGRAM {
                continue;
            }
            if let Some(p) = datagram_payload(&payload) {
                let start = payload.len() - p.len();
                return Ok(Some(payload.slice(start..)));
            }
        }
        Ok(None)
    }
}

/// Send one datagram as a capsule, waiting for flow-control room for all of
/// it (so a datagram is never split across a wait).
pub(crate) async fn send_datagram(send: &mut SendStream<Bytes>, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_DATAGRAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a UDP datagram is at most 65535 bytes",
        ));
    }
    let header = datagram_header(payload.len());
    let mut b = BytesMut::with_capacity(header.len() + payload.len());
    b.extend_from_slice(&header);
    b.extend_from_slice(payload);
    send_capsule(send, b.freeze()).await
}

/// Send one whole capsule, once flow control has room for all of it.
pub(crate) async fn send_capsule(send: &mut SendStream<Bytes>, capsule: Bytes) -> io::Result<()> {
    let len = capsule.len();
    std::future::poll_fn(|cx| loop {
        send.reserve_capacity(len);
        if send.capacity() >= len {
            return Poll::Ready(Ok(()));
        }
        match ready!(send.poll_capacity(cx)) {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Poll::Ready(Err(h2_to_io(e))),
            None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    })
    .await?;
    send.send_data(capsule, false).map_err(h2_to_io)
}

/// A UDP flow to one destination through the tunnel: datagrams keep their
/// boundaries. Dropping it ends the flow at the server. Use
/// [`UdpFlow::split`] to send and receive from different tasks.
pub struct UdpFlow {
    sender: UdpSender,
    receiver: UdpReceiver,
}

impl fmt::Debug for UdpFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpFlow")
            .field("stream", &self.sender.send.stream_id().as_u32())
            .finish()
    }
}

impl UdpFlow {
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        UdpFlow {
            sender: UdpSender { send },
            receiver: UdpReceiver {
                reader: CapsuleReader::new(recv),
            },
        }
    }

    /// Send one datagram (at most 65535 bytes) to the destination. Waits
    /// while the session's flow control has no room for it.
    pub async fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.sender.send(datagram).await
    }

    /// The next datagram from the destination; `None` once the server ended
    /// the flow.
    pub async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        self.receiver.recv().await
    }

    /// Separate halves, for a sending and a receiving task.
    pub fn split(self) -> (UdpSender, UdpReceiver) {
        (self.sender, self.receiver)
    }
}

/// The sending half of a [`UdpFlow`].
pub struct UdpSender {
    send: SendStream<Bytes>,
}

impl fmt::Debug for UdpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSender").finish_non_exhaustive()
    }
}

impl UdpSender {
    /// Send one datagram (at most 65535 bytes).
    pub async fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        send_datagram(&mut self.send, datagram).await
    }

    /// End the flow from this side (the server closes its socket once the
    /// flow has ended both ways).
    pub fn finish(&mut self) -> io::Result<()> {
        self.send.send_data(Bytes::new(), true).map_err(h2_to_io)
    }
}

/// The receiving half of a [`UdpFlow`].
pub struct UdpReceiver {
    reader: CapsuleReader,
}

impl fmt::Debug for UdpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpReceiver").finish_non_exhaustive()
    }
}

impl UdpReceiver {
    /// The next datagram; `None` once the server ended the flow.
    pub async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        self.reader.next_datagram().await
    }
}

/// The server's side of a flow: datagrams between `socket` (connected to the
/// destination) and the stream, until the client ends the stream or it
/// fails. ICMP errors on the socket (port unreachable) do not end the flow.
pub(crate) async fn pump_udp(
    socket: UdpSocket,
    mut send: SendStream<Bytes>,
    recv: RecvStream,
) -> io::Result<()> {
    let mut reader = CapsuleReader::new(recv);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            r = socket.recv(&mut buf) => match r {
                Ok(n) => send_datagram(&mut send, &buf[..n]).await?,
                Err(e) if is_icmp_error(&e) => {}
                Err(e) => return Err(e),
            },
            d = reader.next_datagram() => match d? {
                Some(p) => match socket.send(&p).await {
                    Ok(_) => {}
                    Err(e) if is_icmp_error(&e) => {}
                    Err(e) => return Err(e),
                },
                None => {
                    let _ = send.send_data(Bytes::new(), true);
                    return Ok(());
                }
            },
        }
    }
}

/// Errors a connected UDP socket reports for ICMP from the destination.
fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
