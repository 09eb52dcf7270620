//! From what the client saw on one port to that port's one state (SPEC §3),
//! with its reason.
//!
//! The probe's async shell records each attempt on a port as a
//! [`TcpAttempt`] or [`UdpAttempt`] and asks [`classify_tcp`] or
//! [`classify_udp`] what to do next: try again ([`Next::Attempt`]), ask the
//! server which UDP hellos arrived ([`Next::AskArrivals`]), or stop with a
//! [`PortState`]. Only silence is retried — a port is called `filtered` (or,
//! for UDP, `out-only` / `no-reply`) after [`MAX_TRIES`] unanswered tries —
//! and the last attempt decides.
//!
//! | state | when |
//! |---|---|
//! | `open` | our server's reply verified, and it saw the port dialled |
//! | `intercepted` | something answered but not verifiably our server ([`Interception`]) |
//! | `rejected` | TCP RST or ICMP unreachable ([`Refusal`]) |
//! | `filtered` | TCP: no answer to the SYN, twice |
//! | `out-only` | UDP: nothing back, twice, but the server recorded the arrival |
//! | `no-reply` | UDP: nothing back, twice, and the server saw nothing (or could not be asked) |

use std::fmt;

use base64::Engine as _;

use super::hello::{ReplyError, Verified};

/// How many times a silent port is tried before silence is believed.
pub const MAX_TRIES: usize = 2;

/// The six states of SPEC §3, without their reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Reached the onedoor server itself, verified.
    Open,
    /// Something answered, but not verifiably our server.
    Intercepted,
    /// Actively refused (TCP RST or ICMP unreachable).
    Rejected,
    /// Silently dropped (no answer within the timeout).
    Filtered,
    /// UDP: the datagram reached the server, no reply came back.
    OutOnly,
    /// UDP: nothing came back and the server saw nothing.
    NoReply,
}

impl State {
    /// Every state, in the order of SPEC §3.
    pub const ALL: [State; 6] = [
        State::Open,
        State::Intercepted,
        State::Rejected,
        State::Filtered,
        State::OutOnly,
        State::NoReply,
    ];

    /// The state's name in output and JSON: `open`, `intercepted`,
    /// `rejected`, `filtered`, `out-only`, `no-reply`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Intercepted => "intercepted",
            State::Rejected => "rejected",
            State::Filtered => "filtered",
            State::OutOnly => "out-only",
            State::NoReply => "no-reply",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt was actively refused. The shell maps the socket error:
/// `ECONNREFUSED` → [`Refusal::Refused`], `EHOSTUNREACH` →
/// [`Refusal::HostUnreachable`], `ENETUNREACH` → [`Refusal::NetUnreachable`],
/// `EACCES` / `EPERM` → [`Refusal::Prohibited`]. Local failures (`EMFILE`,
/// `EADDRNOTAVAIL`, …) say nothing about the door and are not attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Connection refused: a TCP RST to the SYN, or ICMP port unreachable.
    Refused,
    /// ICMP host unreachable (Linux also reports "administratively
    /// filtered", code 13, this way).
    HostUnreachable,
    /// ICMP network unreachable.
    NetUnreachable,
    /// ICMP "administratively prohibited", or this machine's own firewall.
    Prohibited,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Refused => "refused (TCP reset, or ICMP port unreachable)",
            Refusal::HostUnreachable => "ICMP host unreachable",
            Refusal::NetUnreachable => "ICMP network unreachable",
            Refusal::Prohibited => {
                "administratively prohibited (by ICMP, or this machine's own firewall)"
            }
        })
    }
}

/// One try at a TCP door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpAttempt {
    /// The connect was refused.
    Refused(Refusal),
    /// The connect did not complete within the timeout.
    NoAnswer,
    /// The TCP handshake completed (by someone) and the hello was sent.
    Connected(Exchange),
}

/// What happened on a TCP connection after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// The probe wrapped its hello in TLS, and the certificate presented has
    /// another SHA-256 fingerprint than the pinned one (TLS interception).
    CertificateMismatch {
        /// The fingerprint of what was presented.
        seen: [u8; 32],
    },
    /// The hello was sent and nothing came back within the timeout.
    Silence,
    /// The peer closed the connection (FIN) without sending a byte.
    Closed,
    /// The peer reset the connection after the hello, without a byte.
    Reset,
    /// Bytes came back.
    Answered {
        /// [`super::ProbeKey::check_reply`]'s final answer, or
        /// [`ReplyError::Truncated`] if the stream ended or the wait timed
        /// out while it still said `NeedMore`.
        check: Result<Verified, ReplyError>,
        /// The first bytes received (a few dozen are enough), to say what
        /// answered when it was not our server.
        first_bytes: Vec<u8>,
    },
}

/// One try at a UDP door: a hello datagram sent, then a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpAttempt {
    /// An ICMP error came back (reported on the connected socket).
    Refused(Refusal),
    /// No datagram for this hello within the timeout.
    Nothing,
    /// A datagram came back for this port.
    Answered {
        /// [`super::ProbeKey::check_reply_datagram`]'s answer.
        check: Result<Verified, ReplyError>,
        /// The datagram's first bytes.
        first_bytes: Vec<u8>,
    },
}

/// What the server's arrivals report says about a UDP port's hellos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalStatus {
    /// Not asked yet: [`classify_udp`] answers [`Next::AskArrivals`] when it
    /// needs to know.
    Pending,
    /// The server could not be asked (no open TCP door, or the report failed
    /// to verify).
    Unavailable,
    /// One of this port's hellos arrived (the first one reported).
    Seen {
        /// The port the server saw it arrive on.
        port_seen: u16,
    },
    /// The report lists none of this port's hellos.
    NotSeen,
}

/// What the shell does next for a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Make an attempt (the first one, or a retry after silence), with a
    /// fresh hello.
    Attempt,
    /// UDP: fetch the server's arrivals report, then classify again with it.
    AskArrivals,
    /// The port's state is known.
    Done(PortState),
}

/// Why a port is `intercepted`: what was seen instead of our server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interception {
    /// TLS interception: another certificate than the pinned one.
    Certificate {
        /// The fingerprint of the certificate presented.
        seen: [u8; 32],
    },
    /// Our server answered, but saw the hello arrive on another port:
    /// something on the way (a NAT) rewrote the port.
    PortRewritten {
        /// The port the server saw.
        seen: u16,
    },
    /// A reply sealed with the fingerprint but signed by another key.
    OtherKey,
    /// Our server's reply, altered on the way (the signature fails).
    Altered,
    /// Bytes that are not our reply: a captive portal, a transparent proxy,
    /// another service.
    Foreign {
        /// What they looked like (`HTTP/1.1 302 Found`, `a TLS alert`, …).
        what: String,
    },
    /// The handshake completed, then nothing came back: a firewall or proxy
    /// that completes every handshake itself.
    Silence,
    /// The handshake completed, then the connection was closed unanswered.
    Closed,
    /// The handshake completed, then the connection was reset after the
    /// hello (a middlebox that inspects payloads).
    Reset,
}

/// A port's one state, with its reason. `Display` is the reason in plain
/// words; [`PortState::state`] the state alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    /// Reached our server, verified, and it saw the port dialled.
    Open,
    /// Something answered, but not verifiably our server.
    Intercepted(Interception),
    /// Actively refused.
    Rejected(Refusal),
    /// TCP: no answer to the SYN, in this many tries.
    Filtered {
        /// How many tries went unanswered.
        tries: usize,
    },
    /// UDP: the server recorded the arrival, no reply came back.
    OutOnly {
        /// The port the server saw it arrive on.
        port_seen: u16,
    },
    /// UDP: nothing came back, and the server saw nothing.
    NoReply {
        /// Whether the server could be asked; if not, whether the datagrams
        /// arrived is unknown.
        asked: bool,
    },
}

impl PortState {
    /// The state without its reason.
    pub fn state(&self) -> State {
        match self {
            PortState::Open => State::Open,
            PortState::Intercepted(_) => State::Intercepted,
            PortState::Rejected(_) => State::Rejected,
            PortState::Filtered { .. } => State::Filtered,
            PortState::OutOnly { .. } => State::OutOnly,
            PortState::NoReply { .. } => State::NoReply,
        }
    }

    /// The reason, in plain words (the same text as `Display`).
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortState::Open => f.write_str("the onedoor server answered, verified"),
            PortState::Intercepted(i) => fmt::Display::fmt(i, f),
            PortState::Rejected(r) => fmt::Display::fmt(r, f),
            PortState::Filtered { tries } => {
                write!(f, "no answer within the timeout ({tries} tries)")
            }
            PortState::OutOnly { port_seen } => write!(
                f,
                "the server received the datagram (on port {port_seen}) but no reply came back"
            ),
            PortState::NoReply { asked: true } => {
                f.write_str("nothing came back, and the server received nothing")
            }
            PortState::NoReply { asked: false } => f.write_str(
                "nothing came back; whether anything reached the server is unknown \
                 (no open TCP door to ask it)",
            ),
        }
    }
}

impl fmt::Display for Interception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interception::Certificate { seen } => write!(
                f,
                "TLS interception: certificate SHA256:{} is not the server's",
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(seen)
            ),
            Interception::PortRewritten { seen } => write!(
                f,
                "the server saw the hello arrive on port {seen}: the port was rewritten on the way (NAT)"
            ),
            Interception::OtherKey => {
                f.write_str("answered by a key other than the pinned one")
            }
            Interception::Altered => f.write_str(
                "the server's reply was altered on the way (its signature does not verify)",
            ),
            Interception::Foreign { what } => write!(f, "something else answered: {what}"),
            Interception::Silence => f.write_str(
                "the connection was accepted, then nothing came back \
                 (something completes the handshake itself)",
            ),
            Interception::Closed => {
                f.write_str("the connection was accepted, then closed without an answer")
            }
            Interception::Reset => f.write_str(
                "the connection was accepted, then reset after the hello (payload inspection)",
            ),
        }
    }
}

/// The next step for a TCP port dialled as `dialled`, given its attempts so
/// far (oldest first). No attempt yet, or silence to the SYN fewer than
/// [`MAX_TRIES`] times: [`Next::Attempt`]. Otherwise the last attempt
/// decides.
pub fn classify_tcp(dialled: u16, attempts: &[TcpAttempt]) -> Next {
    let Some(last) = attempts.last() else {
        return Next::Attempt;
    };
    let state = match last {
        TcpAttempt::Refused(r) => PortState::Rejected(*r),
        TcpAttempt::NoAnswer if attempts.len() < MAX_TRIES => return Next::Attempt,
        TcpAttempt::NoAnswer => PortState::Filtered {
            tries: attempts.len(),
        },
        TcpAttempt::Connected(exchange) => PortState::Intercepted(match exchange {
            Exchange::CertificateMismatch { seen } => Interception::Certificate { seen: *seen },
            Exchange::Silence => Interception::Silence,
            Exchange::Closed => Interception::Closed,
            Exchange::Reset => Interception::Reset,
            Exchange::Answered { check, first_bytes } => {
                return Next::Done(answered(dialled, check, first_bytes))
            }
        }),
    };
    Next::Done(state)
}

/// The next step for a UDP port dialled as `dialled`, given its attempts so
/// far (oldest first) and what the arrivals report says. Silence is retried
/// until [`MAX_TRIES`]; then the report decides between `out-only` and
/// `no-reply` ([`Next::AskArrivals`] while it is [`ArrivalStatus::Pending`]).
pub fn classify_udp(dialled: u16, attempts: &[UdpAttempt], arrival: ArrivalStatus) -> Next {
    let Some(last) = attempts.last() else {
        return Next::Attempt;
    };
    Next::Done(match last {
        UdpAttempt::Refused(r) => PortState::Rejected(*r),
        UdpAttempt::Answered { check, first_bytes } => answered(dialled, check, first_bytes),
        UdpAttempt::Nothing if attempts.len() < MAX_TRIES => return Next::Attempt,
        UdpAttempt::Nothing => match arrival {
            ArrivalStatus::Pending => return Next::AskArrivals,
            ArrivalStatus::Seen { port_seen } => PortState::OutOnly { port_seen },
            ArrivalStatus::NotSeen => PortState::NoReply { asked: true },
            ArrivalStatus::Unavailable => PortState::NoReply { asked: false },
        },
    })
}

/// The state for bytes that came back.
fn answered(dialled: u16, check: &Result<Verified, ReplyError>, first_bytes: &[u8]) -> PortState {
    PortState::Intercepted(match check {
        Ok(v) if v.port_seen == dialled => return PortState::Open,
        Ok(v) => Interception::PortRewritten { seen: v.port_seen },
        Err(ReplyError::WrongKey) => Interception::OtherKey,
        Err(ReplyError::BadSignature) => Interception::Altered,
        Err(ReplyError::Version(v)) => Interception::Foreign {
            what: format!("a onedoor reply in probe protocol version {v}"),
        },
        Err(ReplyError::Foreign | ReplyError::Truncated) => Interception::Foreign {
            what: describe(first_bytes),
        },
    })
}

/// A short description of foreign bytes: their first line when it is text
/// (`HTTP/1.1 302 Found`), a name for TLS records, else a hex prefix.
fn describe(bytes: &[u8]) -> String {
    const MAX_TEXT: usize = 60;
    const MAX_HEX: usize = 12;
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let printable = |b: &u8| (0x20..0x7f).contains(b) || *b == b'\t';
    if !line.is_empty() && line.iter().all(printable) {
        let text: String = line.iter().take(MAX_TEXT).map(|&b| char::from(b)).collect();
        let more = if line.len() > MAX_TEXT { "…" } else { "" };
        return format!("`{text}{more}`");
    }
    match bytes {
        [] => "an empty answer".to_owned(),
        [0x15, 0x03, ..] => "a TLS alert (something speaks TLS here)".to_owned(),
        [0x16, 0x03, ..] => "a TLS handshake (something speaks TLS here)".to_owned(),
        _ => {
            let hex: Vec<String> = bytes
                .iter()
                .take(MAX_HEX)
                .map(|b| format!("{b:02x}"))
                .collect();
            let more = if bytes.len() > MAX_HEX { " …" } else { "" };
            format!("{} bytes: {}{more}", bytes.len(), hex.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK: [u8; 32] = [1; 32];

    fn verified(port_seen: u16) -> Result<Verified, ReplyError> {
        Ok(Verified {
            port_seen,
            public_key: PK,
        })
    }

    fn tcp_answer(check: Result<Verified, ReplyError>, first: &[u8]) -> TcpAttempt {
        TcpAttempt::Connected(Exchange::Answered {
            check,
            first_bytes: first.to_vec(),
        })
    }

    fn udp_answer(check: Result<Verified, ReplyError>, first: &[u8]) -> UdpAttempt {
        UdpAttempt::Answered {
            check,
            first_bytes: first.to_vec(),
        }
    }

    fn done(next: Next) -> PortState {
        match next {
            Next::Done(s) => s,
            other => panic!("not done: {other:?}"),
        }
    }

    #[test]
    fn state_names() {
        let names: Vec<_> = State::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "open",
                "intercepted",
                "rejected",
                "filtered",
                "out-only",
                "no-reply"
            ]
        );
    }

    #[test]
    fn tcp_open() {
        let s = done(classify_tcp(443, &[tcp_answer(verified(443), b"")]));
        assert_eq!(s, PortState::Open);
        assert_eq!(s.state(), State::Open);
        assert_eq!(s.reason(), "the onedoor server answered, verified");
    }

    #[test]
    fn tcp_open_after_a_silent_first_try() {
        let s = done(classify_tcp(
            22,
            &[TcpAttempt::NoAnswer, tcp_answer(verified(22), b"")],
        ));
        assert_eq!(s, PortState::Open);
    }

    #[test]
    fn tcp_intercepted_certificate() {
        let s = done(classify_tcp(
            443,
            &[TcpAttempt::Connected(Exchange::CertificateMismatch {
                seen: [0; 32],
            })],
        ));
        assert_eq!(s.state(), State::Intercepted);
        assert_eq!(
            s.reason(),
            "TLS interception: certificate SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA is not the server's"
        );
    }

    #[test]
    fn tcp_intercepted_port_rewritten() {
        let s = done(classify_tcp(80, &[tcp_answer(verified(8080), b"")]));
        assert_eq!(
            s,
            PortState::Intercepted(Interception::PortRewritten { seen: 8080 })
        );
        assert!(s.reason().contains("port 8080"), "{s}");
    }

    #[test]
    fn tcp_intercepted_other_key() {
        let s = done(classify_tcp(
            443,
            &[tcp_answer(Err(ReplyError::WrongKey), b"")],
        ));
        assert_eq!(s, PortState::Intercepted(Interception::OtherKey));
    }

    #[test]
    fn tcp_intercepted_altered() {
        let s = done(classify_tcp(
            443,
            &[tcp_answer(Err(ReplyError::BadSignature), b"")],
        ));
        assert_eq!(s, PortState::Intercepted(Interception::Altered));
    }

    #[test]
    fn tcp_intercepted_captive_portal() {
        let portal = b"HTTP/1.1 302 Found\r\nLocation: http://login.example/\r\n\r\n";
        let s = done(classify_tcp(
            80,
            &[tcp_answer(Err(ReplyError::Foreign), portal)],
        ));
        assert_eq!(
            s,
            PortState::Intercepted(Interception::Foreign {
                what: "`HTTP/1.1 302 Found`".to_owned()
            })
        );
        assert_eq!(s.reason(), "something else answered: `HTTP/1.1 302 Found`");
    }

    #[test]
    fn tcp_intercepted_foreign_kinds() {
        let what = |check, bytes: &[u8]| match done(classify_tcp(1, &[tcp_answer(check, bytes)])) {
            PortState::Intercepted(Interception::Foreign { what }) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            what(Err(ReplyError::Foreign), b"SSH-2.0-OpenSSH_9.2\r\n"),
            "`SSH-2.0-OpenSSH_9.2`"
        );
        assert_eq!(
            what(
                Err(ReplyError::Foreign),
                &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]
            ),
            "a TLS alert (something speaks TLS here)"
        );
        assert_eq!(
            what(Err(ReplyError::Foreign), &[0x16, 0x03, 0x03, 0x00, 0x7a]),
            "a TLS handshake (something speaks TLS here)"
        );
        assert_eq!(
            what(Err(ReplyError::Truncated), &[0, 1, 2]),
            "3 bytes: 00 01 02"
        );
        assert_eq!(
            what(Err(ReplyError::Foreign), &[0xff; 20]),
            "20 bytes: ff ff ff ff ff ff ff ff ff ff ff ff …"
        );
        assert_eq!(
            what(Err(ReplyError::Foreign), "x".repeat(100).as_bytes()),
            format!("`{}…`", "x".repeat(60))
        );
        assert_eq!(what(Err(ReplyError::Truncated), b""), "an empty answer");
        assert_eq!(
            what(Err(ReplyError::Version(2)), b""),
            "a onedoor reply in probe protocol version 2"
        );
    }

    #[test]
    fn tcp_intercepted_handshake_then_silence() {
        let s = done(classify_tcp(
            25,
            &[TcpAttempt::Connected(Exchange::Silence)],
        ));
        assert_eq!(s, PortState::Intercepted(Interception::Silence));
        assert!(s.reason().contains("nothing came back"));
    }

    #[test]
    fn tcp_intercepted_handshake_then_close() {
        let s = done(classify_tcp(25, &[TcpAttempt::Connected(Exchange::Closed)]));
        assert_eq!(s, PortState::Intercepted(Interception::Closed));
    }

    #[test]
    fn tcp_intercepted_reset_after_hello() {
        let s = done(classify_tcp(25, &[TcpAttempt::Connected(Exchange::Reset)]));
        assert_eq!(s, PortState::Intercepted(Interception::Reset));
    }

    #[test]
    fn tcp_rejected() {
        for r in [
            Refusal::Refused,
            Refusal::HostUnreachable,
            Refusal::NetUnreachable,
            Refusal::Prohibited,
        ] {
            let s = done(classify_tcp(22, &[TcpAttempt::Refused(r)]));
            assert_eq!(s, PortState::Rejected(r));
            assert_eq!(s.state(), State::Rejected);
            assert_eq!(s.reason(), r.to_string());
        }
        // Refused on the retry after silence: the last attempt decides.
        let s = done(classify_tcp(
            22,
            &[TcpAttempt::NoAnswer, TcpAttempt::Refused(Refusal::Refused)],
        ));
        assert_eq!(s, PortState::Rejected(Refusal::Refused));
    }

    #[test]
    fn tcp_filtered_only_after_a_retry() {
        assert_eq!(classify_tcp(22, &[]), Next::Attempt);
        assert_eq!(classify_tcp(22, &[TcpAttempt::NoAnswer]), Next::Attempt);
        let s = done(classify_tcp(
            22,
            &[TcpAttempt::NoAnswer, TcpAttempt::NoAnswer],
        ));
        assert_eq!(s, PortState::Filtered { tries: 2 });
        assert_eq!(s.state(), State::Filtered);
        assert_eq!(s.reason(), "no answer within the timeout (2 tries)");
    }

    #[test]
    fn udp_open() {
        let s = done(classify_udp(
            53,
            &[udp_answer(verified(53), b"")],
            ArrivalStatus::Pending,
        ));
        assert_eq!(s, PortState::Open);
    }

    #[test]
    fn udp_intercepted() {
        let s = done(classify_udp(
            53,
            &[udp_answer(verified(5353), b"")],
            ArrivalStatus::Pending,
        ));
        assert_eq!(
            s,
            PortState::Intercepted(Interception::PortRewritten { seen: 5353 })
        );
        // A DNS server on the way answering the hello with something of its own.
        let s = done(classify_udp(
            53,
            &[udp_answer(
                Err(ReplyError::Foreign),
                &[0x12, 0x34, 0x81, 0x81],
            )],
            ArrivalStatus::Pending,
        ));
        assert_eq!(
            s,
            PortState::Intercepted(Interception::Foreign {
                what: "4 bytes: 12 34 81 81".to_owned()
            })
        );
        let s = done(classify_udp(
            53,
            &[udp_answer(Err(ReplyError::BadSignature), b"")],
            ArrivalStatus::NotSeen,
        ));
        assert_eq!(s, PortState::Intercepted(Interception::Altered));
    }

    #[test]
    fn udp_rejected() {
        let s = done(classify_udp(
            1194,
            &[UdpAttempt::Refused(Refusal::Refused)],
            ArrivalStatus::Pending,
        ));
        assert_eq!(s, PortState::Rejected(Refusal::Refused));
    }

    #[test]
    fn udp_silence_is_retried_then_asks_the_server() {
        assert_eq!(classify_udp(53, &[], ArrivalStatus::Pending), Next::Attempt);
        assert_eq!(
            classify_udp(53, &[UdpAttempt::Nothing], ArrivalStatus::Pending),
            Next::Attempt
        );
        assert_eq!(
            classify_udp(
                53,
                &[UdpAttempt::Nothing, UdpAttempt::Nothing],
                ArrivalStatus::Pending
            ),
            Next::AskArrivals
        );
    }

    #[test]
    fn udp_out_only() {
        let twice = [UdpAttempt::Nothing, UdpAttempt::Nothing];
        let s = done(classify_udp(
            53,
            &twice,
            ArrivalStatus::Seen { port_seen: 53 },
        ));
        assert_eq!(s, PortState::OutOnly { port_seen: 53 });
        assert_eq!(s.state(), State::OutOnly);
        assert_eq!(
            s.reason(),
            "the server received the datagram (on port 53) but no reply came back"
        );
    }

    #[test]
    fn udp_no_reply() {
        let twice = [UdpAttempt::Nothing, UdpAttempt::Nothing];
        let s = done(classify_udp(53, &twice, ArrivalStatus::NotSeen));
        assert_eq!(s, PortState::NoReply { asked: true });
        assert_eq!(s.state(), State::NoReply);
        assert_eq!(
            s.reason(),
            "nothing came back, and the server received nothing"
        );
        let s = done(classify_udp(53, &twice, ArrivalStatus::Unavailable));
        assert_eq!(s, PortState::NoReply { asked: false });
        assert!(s.reason().contains("unknown"));
    }

    #[test]
    fn every_reason_is_distinct() {
        let states = [
            PortState::Open,
            PortState::Intercepted(Interception::Certificate { seen: [2; 32] }),
            PortState::Intercepted(Interception::PortRewritten { seen: 1 }),
            PortState::Intercepted(Interception::OtherKey),
            PortState::Intercepted(Interception::Altered),
            PortState::Intercepted(Interception::Foreign { what: "x".into() }),
            PortState::Intercepted(Interception::Silence),
            PortState::Intercepted(Interception::Closed),
            PortState::Intercepted(Interception::Reset),
            PortState::Rejected(Refusal::Refused),
            PortState::Rejected(Refusal::HostUnreachable),
            PortState::Rejected(Refusal::NetUnreachable),
            PortState::Rejected(Refusal::Prohibited),
            PortState::Filtered { tries: 2 },
            PortState::OutOnly { port_seen: 1 },
            PortState::NoReply { asked: true },
            PortState::NoReply { asked: false },
        ];
        let reasons: std::collections::BTreeSet<String> =
            states.iter().map(PortState::reason).collect();
        assert_eq!(reasons.len(), states.len());
        let covered: std::collections::BTreeSet<State> =
            states.iter().map(PortState::state).collect();
        assert_eq!(covered.len(), State::ALL.len());
    }
}
