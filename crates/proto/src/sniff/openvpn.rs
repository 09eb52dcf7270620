//! Sniffer for OpenVPN over TCP: the client's first packet,
//! P_CONTROL_HARD_RESET_CLIENT_V2 or V3.
//!
//! Over TCP every OpenVPN packet is prefixed with its length (16 bits, big
//! endian); the packet starts with one byte `opcode << 3 | key_id`. The
//! client's first packet is a hard reset with key id 0. The rule is the one
//! OpenVPN's own `--port-share` applies (`is_openvpn_protocol` in `ps.c`):
//!
//! - V2 (opcode 7, byte `0x38`): length 14..=255; 14 is the bare packet, the
//!   rest leaves room for `--tls-auth` and `--tls-crypt`.
//! - V3 (opcode 10, byte `0x50`, sent with `--tls-crypt-v2`): length
//!   336..=1278, the wrapped client key included.
//!
//! The answer is final after three bytes. This is weak: any stream starting
//! with such a length and that byte matches. None of the other sniffers here
//! accepts a first byte below 5, so they never overlap with it.

use std::ops::RangeInclusive;

use super::Verdict;

/// `P_CONTROL_HARD_RESET_CLIENT_V2 << 3`, key id 0.
const HARD_RESET_CLIENT_V2: u8 = 7 << 3;
/// `P_CONTROL_HARD_RESET_CLIENT_V3 << 3`, key id 0.
const HARD_RESET_CLIENT_V3: u8 = 10 << 3;
/// Plausible packet lengths for V2.
const V2_LEN: RangeInclusive<u16> = 14..=255;
/// Plausible packet lengths for V3.
const V3_LEN: RangeInclusive<u16> = 336..=1278;

/// Is this the start of an OpenVPN TCP connection? Decided on the first
/// three bytes (length and opcode); `NeedMore` before that only while the
/// length bytes seen so far can still be in one of the ranges.
pub fn sniff(buf: &[u8]) -> Verdict {
    let plausible = |len: u16| V2_LEN.contains(&len) || V3_LEN.contains(&len);
    let verdict = |ok: bool| if ok { Verdict::Match } else { Verdict::NoMatch };
    match *buf {
        [] => Verdict::NeedMore,
        // The high byte alone: the largest plausible length is 1278 (0x04fe).
        [hi] if u16::from(hi) <= *V3_LEN.end() >> 8 => Verdict::NeedMore,
        [_] => Verdict::NoMatch,
        [hi, lo] if plausible(u16::from_be_bytes([hi, lo])) => Verdict::NeedMore,
        [_, _] => Verdict::NoMatch,
        [hi, lo, op, ..] => {
            let len = u16::from_be_bytes([hi, lo]);
            match op {
                HARD_RESET_CLIENT_V2 => verdict(V2_LEN.contains(&len)),
                HARD_RESET_CLIENT_V3 => verdict(V3_LEN.contains(&len)),
                _ => Verdict::NoMatch,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sniff::tests::assert_prefix_consistent;

    fn packet(len: u16, op: u8) -> [u8; 3] {
        let [hi, lo] = len.to_be_bytes();
        [hi, lo, op]
    }

    #[test]
    fn length_bounds() {
        for (len, op, want) in [
            (13, 0x38, Verdict::NoMatch),
            (14, 0x38, Verdict::Match),
            (255, 0x38, Verdict::Match),
            (256, 0x38, Verdict::NoMatch),
            (335, 0x50, Verdict::NoMatch),
            (336, 0x50, Verdict::Match),
            (1278, 0x50, Verdict::Match),
            (1279, 0x50, Verdict::NoMatch),
            // V2 lengths with the V3 opcode and the other way round.
            (14, 0x50, Verdict::NoMatch),
            (336, 0x38, Verdict::NoMatch),
            // Other key ids, other opcodes (P_CONTROL_V1, client V1 reset).
            (14, 0x39, Verdict::NoMatch),
            (14, 0x20, Verdict::NoMatch),
            (14, 0x08, Verdict::NoMatch),
        ] {
            let p = packet(len, op);
            assert_eq!(sniff(&p), want, "len {len} op {op:#x}");
            assert_prefix_consistent(&p, sniff, |v| *v == Verdict::NeedMore);
        }
    }

    #[test]
    fn early_answers() {
        assert_eq!(sniff(b""), Verdict::NeedMore);
        assert_eq!(sniff(b"\x00"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x04"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x05"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x00\x0d"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x00\x0e"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x01\x00"), Verdict::NoMatch);
        assert_eq!(sniff(b"\x01\x50"), Verdict::NeedMore);
        assert_eq!(sniff(b"\x04\xff"), Verdict::NoMatch);
    }
}
