//! Sniffer for the Android Debug Bridge: the host's `CNXN` message.
//!
//! A host that connects to a device over TCP (`adb connect`) sends a CONNECT
//! message first; its 24-byte header starts with the command `CNXN` (little
//! endian `0x4e584e43`). sslh also accepts an empty message before it; this
//! sniffer does not.

use super::Verdict;

/// The command of ADB's CONNECT message.
const CNXN: &[u8] = b"CNXN";

/// Is this the start of an ADB connection? `Match` once `buf` starts with
/// `CNXN`.
pub fn sniff(buf: &[u8]) -> Verdict {
    super::starts_with_any(buf, &[CNXN])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_message() {
        assert_eq!(sniff(b""), Verdict::NeedMore);
        assert_eq!(sniff(b"CNX"), Verdict::NeedMore);
        assert_eq!(sniff(b"CNXN\x01\x00\x00\x01"), Verdict::Match);
        assert_eq!(sniff(b"CNXX"), Verdict::NoMatch);
        assert_eq!(sniff(b"OPEN"), Verdict::NoMatch);
    }
}
