//! A blocking netlink socket that sends requests and collects their
//! acknowledgements, replies or dumps, with a bounded wait.
//!
//! `rtnl` (links, addresses, routes), `nft` (the firewall) and `sockets`
//! (socket diagnostics) all speak through this: they hand over serialized
//! messages whose sequence numbers they took from [`Netlink::next_seq`], and
//! get back the first error the kernel reported, tied to the message that
//! caused it, or the messages of a dump. The socket belongs to the network
//! namespace of the thread that opened it.

use std::io;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr};
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use nix::sys::time::TimeVal;

/// How long the kernel may take to answer one batch.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// `NLM_F_DUMP_INTR`: the dump saw the kernel's state change under it.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// A connected netlink socket of one protocol, in one namespace.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

/// A request the kernel refused.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct NlError {
    /// The request, in words.
    pub what: String,
    /// The kernel's answer (or the socket's failure).
    #[source]
    pub source: io::Error,
}

impl From<NlError> for io::Error {
    /// The same kind, with the request in the message.
    fn from(e: NlError) -> io::Error {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

impl Netlink {
    /// Open a socket of `protocol` (e.g. `NETLINK_ROUTE`) in the calling
    /// thread's network namespace.
    pub fn open(protocol: isize) -> io::Result<Netlink> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        let tv = TimeVal::new(ACK_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &tv).map_err(io::Error::from)?;
        Ok(Netlink { sock, seq: 1 })
    }

    /// Make room to send `len` bytes in one message (a large nf_tables
    /// batch): the kernel refuses a send larger than the socket's send
    /// buffer with `EMSGSIZE`. Beyond `net.core.wmem_max` this takes
    /// `CAP_NET_ADMIN` (`SO_SNDBUFFORCE`), which batches need anyway.
    pub fn reserve_send(&mut self, len: usize) -> io::Result<()> {
        let want = len + 4096;
        let have: usize = getsockopt(&self.sock, sockopt::SndBuf).map_err(io::Error::from)?;
        if have >= want {
            return Ok(());
        }
        setsockopt(&self.sock, sockopt::SndBufForce, &want)
            .or_else(|_| setsockopt(&self.sock, sockopt::SndBuf, &want))
            .map_err(io::Error::from)
    }

    /// A fresh sequence number for the next message.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Send `bytes` (one or several netlink messages) and wait until the
    /// kernel has acknowledged every sequence number in `acks`. `describe`
    /// names the request a sequence number belongs to, for errors.
    pub fn transact(
        &mut self,
        bytes: &[u8],
        acks: &[u32],
        describe: &dyn Fn(u32) -> String,
    ) -> Result<(), NlError> {
        let sys = |what: &str, source: io::Error| NlError {
            what: what.to_owned(),
            source,
        };
        self.sock
            .send(bytes, 0)
            .map_err(|e| sys("sending a netlink request", e))?;
        let mut pending: Vec<u32> = acks.to_vec();
        let mut first_error: Option<NlError> = None;
        let mut deadline = Instant::now() + ACK_TIMEOUT;
        while !pending.is_empty() {
            let buf = match self.recv_before(deadline) {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break,
                Err(e) => return Err(sys("reading the kernel's answer", e)),
            };
            for (seq, code) in parse_acks(&buf) {
                pending.retain(|s| *s != seq);
                if code != 0 && first_error.is_none() {
                    first_error = Some(NlError {
                        what: describe(seq),
                        source: io::Error::from_raw_os_error(-code),
                    });
                    // The rest of a failed batch answers at once, if at all.
                    deadline = deadline.min(Instant::now() + Duration::from_millis(200));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if pending.is_empty() => Ok(()),
            None => Err(sys(
                "waiting for the kernel's answer",
                io::Error::from(io::ErrorKind::TimedOut),
            )),
        }
    }

    /// Send one request (without `NLM_F_ACK`) and return the first reply
    /// message carrying `seq`, or the kernel's error.
    pub fn query(&mut self, bytes: &[u8], seq: u32, what: &str) -> Result<Vec<u8>, NlError> {
        let sys = |source: io::Error| NlError {
            what: what.to_owned(),
            source,
        };
        self.sock.send(bytes, 0).map_err(sys)?;
        let deadline = Instant::now() + ACK_TIMEOUT;
        loop {
            let buf = self.recv_before(deadline).map_err(sys)?;
            for m in messages(&buf) {
                if m.seq == seq {
                    if m.ty == NLMSG_ERROR {
                        if let Some((_, code)) = parse_acks(m.bytes).first() {
                            if *code != 0 {
                                return Err(sys(io::Error::from_raw_os_error(-code)));
                            }
                        }
                    } else {
                        return Ok(m.bytes.to_vec());
                    }
                }
            }
        }
    }

    /// Send one dump request (with `NLM_F_DUMP`) carrying `seq` and collect
    /// every message of the answer until `NLMSG_DONE`. A dump the kernel
    /// marks as interrupted (its state changed under it) fails with
    /// [`io::ErrorKind::Interrupted`], so the caller can ask again.
    pub fn dump(&mut self, bytes: &[u8], seq: u32, what: &str) -> Result<Vec<Vec<u8>>, NlError> {
        let sys = |source: io::Error| NlError {
            what: what.to_owned(),
            source,
        };
        self.sock.send(bytes, 0).map_err(sys)?;
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let buf = self.recv_before(deadline).map_err(sys)?;
            for m in messages(&buf) {
                if m.seq == seq {
                    interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                    match m.ty {
                        NLMSG_DONE => {
                            if interrupted {
                                return Err(sys(io::Error::new(
                                    io::ErrorKind::Interrupted,
                                    "the dump was interrupted",
                                )));
                            }
                            return Ok(out);
                        }
                        NLMSG_ERROR => {
                            let code = parse_acks(m.bytes).first().map_or(0, |(_, c)| *c);
                            return Err(sys(if code != 0 {
                                io::Error::from_raw_os_error(-code)
                            } else {
                                io::Error::other("an acknowledgement instead of a dump")
                            }));
                        }
                        _ => out.push(m.bytes.to_vec()),
                    }
                }
            }
        }
    }

    /// The next datagram from the kernel, waiting no later than `deadline`
    /// (`TimedOut` past it).
    fn recv_before(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let tv = TimeVal::new(left.as_secs() as _, left.subsec_micros().max(1000) as _);
        setsockopt(&self.sock, sockopt::ReceiveTimeout, &tv).map_err(io::Error::from)?;
        match self.sock.recv_from_full() {
            Ok((buf, _)) => Ok(buf),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::TimedOut.into()),
            Err(e) => Err(e),
        }
    }
}

/// One netlink message of a received datagram.
struct Message<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    /// The whole message, header included.
    bytes: &'a [u8],
}

/// The well-formed messages of `buf`, in order (a malformed length ends it).
fn messages(mut buf: &[u8]) -> impl Iterator<Item = Message<'_>> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let m = Message {
            ty: u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            flags: u16::from_ne_bytes(buf[6..8].try_into().unwrap()),
            seq: u32::from_ne_bytes(buf[8..12].try_into().unwrap()),
            bytes: &buf[..len],
        };
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some(m)
    })
}

/// `(sequence, error code)` of every `NLMSG_ERROR` message in `buf` (code 0
/// is an acknowledgement, a negative code an errno).
pub fn parse_acks(buf: &[u8]) -> Vec<(u32, i32)> {
    messages(buf)
        .filter(|m| m.ty == NLMSG_ERROR && m.bytes.len() >= NLMSG_HDRLEN + 4 + NLMSG_HDRLEN)
        .map(|m| {
            let code = i32::from_ne_bytes(m.bytes[16..20].try_into().unwrap());
            // The request's own header follows the code.
            let seq = u32::from_ne_bytes(m.bytes[20 + 8..20 + 12].try_into().unwrap());
            (seq, code)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_msg(seq: u32, code: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&code.to_ne_bytes());
        // the original header
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&0x0a06u16.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m
    }

    #[test]
    fn parses_acks_and_errors_in_one_datagram() {
        let mut buf = error_msg(5, 0);
        buf.extend(error_msg(6, -95));
        assert_eq!(parse_acks(&buf), vec![(5, 0), (6, -95)]);
    }

    #[test]
    fn truncated_input_is_ignored() {
        let buf = error_msg(5, 0);
        assert_eq!(parse_acks(&buf[..20]), vec![]);
        assert_eq!(parse_acks(&[]), vec![]);
    }
}
