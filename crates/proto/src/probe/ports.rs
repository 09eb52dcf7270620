//! Port lists as users type them (`--tcp PORTS`, `--udp PORTS`) and as the
//! probe's table prints them.
//!
//! Accepted: a comma-separated list of items, each a port (`443`), a range
//! (`1-1024`, both ends included) or `top100` ([`TOP100`]); spaces around items
//! are ignored, so `22, 80,443` works. Ports go from 1 to 65535. The result is
//! a [`PortSet`]: sorted, without duplicates, stored as ranges, so
//! `1-65535` costs one range and not 65,535 entries.
//!
//! [`PortSet`]'s `Display` is the compact form the table uses: ranges merged
//! and joined by commas (`1-79,81-442,444-65535`), single ports alone. It
//! parses back to the same set.

use std::fmt;
use std::str::FromStr;

/// The highest port.
const MAX_PORT: u16 = u16::MAX;

/// The 100 ports most worth knowing about when mapping a network's egress,
/// sorted. `top100` is the default `--tcp` set and works for `--udp` too, so
/// the list mixes ports of both transports (IKE, WireGuard, NTP and STUN are
/// UDP).
///
/// Chosen for what a traveller behind a strict firewall wants to reach (and
/// what a tunnel could use as its door), not for how often a scanner finds a
/// port open on the internet:
/// - the web and its usual alternates (13): 80, 443, 3000, 5000, 8000, 8008,
///   8080, 8081, 8443, 8888, 9000, 9090, 9443;
/// - remote access (7): 22 and 2222 (SSH), 23 (telnet), 3389 (RDP), 5900
///   (VNC), 5938 (TeamViewer), 1494 (Citrix);
/// - VPNs and proxies, the doors a tunnel would use (16): 500 and 4500
///   (IPsec), 1194 (OpenVPN), 1701 (L2TP), 1723 (PPTP), 51820 (WireGuard),
///   41641 (Tailscale), 9993 (ZeroTier), 992 (SoftEther), 4443 and 10443
///   (SSL VPN portals), 1080 (SOCKS), 3128 (Squid), 8388 (Shadowsocks),
///   9001 (Tor), 8801 (Zoom's media relay);
/// - mail and news (10): 25, 110, 143, 465, 587, 993, 995, 2525 (the
///   submission port mail providers offer when 587 is blocked), 119, 563;
/// - name, time and directory services (8): 53, 853 (DNS over TLS), 123
///   (NTP), 88 and 464 (Kerberos), 389 and 636 (LDAP), 161 (SNMP);
/// - file transfer and sharing (13): 20, 21 (FTP), 69 (TFTP), 989, 990
///   (FTPS), 873 (rsync), 135, 139, 445 (Windows RPC, NetBIOS, SMB), 2049
///   (NFS), 631 (IPP printing), 9418 (git), 6881 (BitTorrent);
/// - voice, video and chat (13): 5060, 5061 (SIP), 3478, 5349, 19302 (STUN
///   and TURN, for WebRTC calls), 5222, 5223 (XMPP, Apple push), 5228 (Google
///   push), 6667, 6697 (IRC), 8448 (Matrix), 554 (RTSP), 1935 (RTMP);
/// - message brokers and IoT (4): 1883, 8883 (MQTT), 5672 (AMQP), 9092 (Kafka);
/// - databases a developer reaches remotely (7): 1433 (SQL Server), 1521
///   (Oracle), 3306 (MySQL), 5432 (PostgreSQL), 6379 (Redis), 9200
///   (Elasticsearch), 27017 (MongoDB);
/// - operations (6): 2375, 2376 (Docker), 6443 (Kubernetes API), 5985, 5986
///   (WinRM), 10000 (Webmin);
/// - games (3): 3074 (Xbox Live), 25565 (Minecraft), 27015 (Steam, Source).
pub const TOP100: [u16; 100] = [
    20, 21, 22, 23, 25, 53, 69, 80, 88, 110, 119, 123, 135, 139, 143, 161, 389, 443, 445, 464, 465,
    500, 554, 563, 587, 631, 636, 853, 873, 989, 990, 992, 993, 995, 1080, 1194, 1433, 1494, 1521,
    1701, 1723, 1883, 1935, 2049, 2222, 2375, 2376, 2525, 3000, 3074, 3128, 3306, 3389, 3478, 4443,
    4500, 5000, 5060, 5061, 5222, 5223, 5228, 5349, 5432, 5672, 5900, 5938, 5985, 5986, 6379, 6443,
    6667, 6697, 6881, 8000, 8008, 8080, 8081, 8388, 8443, 8448, 8801, 8883, 8888, 9000, 9001, 9090,
    9092, 9200, 9418, 9443, 9993, 10000, 10443, 19302, 25565, 27015, 27017, 41641, 51820,
];

/// A set of ports, 1-65535, kept as sorted, merged ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortSet {
    /// Inclusive ranges, sorted, non-overlapping and non-adjacent (`1-5,7-9`
    /// is kept as two ranges, `1-5,6-9` as one).
    ranges: Vec<(u16, u16)>,
}

impl PortSet {
    /// The empty set.
    pub fn new() -> Self {
        PortSet::default()
    }

    /// Every port, 1-65535.
    pub fn all() -> Self {
        PortSet {
            ranges: vec![(1, MAX_PORT)],
        }
    }

    /// The `top100` set ([`TOP100`]).
    pub fn top100() -> Self {
        TOP100.into_iter().collect()
    }

    /// Parse a port list (see the module docs for the syntax).
    pub fn parse(s: &str) -> Result<Self, PortsError> {
        if s.trim().is_empty() {
            return Err(PortsError {
                problem: PortsProblem::Empty,
                part: String::new(),
            });
        }
        let mut set = PortSet::new();
        for raw in s.split(',') {
            let item = raw.trim();
            let bad = |problem| PortsError {
                problem,
                part: shorten(item),
            };
            if item.is_empty() {
                return Err(bad(PortsProblem::EmptyItem));
            }
            if item.eq_ignore_ascii_case("top100") {
                set.extend(TOP100);
                continue;
            }
            match item.split_once('-') {
                Some((a, b)) => {
                    let lo = port(a.trim()).map_err(bad)?;
                    let hi = port(b.trim()).map_err(bad)?;
                    if lo > hi {
                        return Err(bad(PortsProblem::Reversed));
                    }
                    set.insert_range(lo, hi);
                }
                None => {
                    let p = port(item).map_err(bad)?;
                    set.insert_range(p, p);
                }
            }
        }
        Ok(set)
    }

    /// Add one port. Port 0 is not a door and is ignored.
    pub fn insert(&mut self, port: u16) {
        if port != 0 {
            self.insert_range(port, port);
        }
    }

    /// Add every port from `lo` to `hi`, both included (0 is left out; an
    /// empty range when `lo > hi` adds nothing).
    pub fn insert_range(&mut self, lo: u16, hi: u16) {
        let lo = lo.max(1);
        if lo > hi {
            return;
        }
        // First range that could touch [lo, hi]: one whose end is >= lo - 1.
        let start = self
            .ranges
            .partition_point(|&(_, e)| u32::from(e) + 1 < u32::from(lo));
        // Ranges from `start` whose start is <= hi + 1 merge with it.
        let mut end = start;
        let (mut new_lo, mut new_hi) = (lo, hi);
        while end < self.ranges.len() && u32::from(self.ranges[end].0) <= u32::from(hi) + 1 {
            new_lo = new_lo.min(self.ranges[end].0);
            new_hi = new_hi.max(self.ranges[end].1);
            end += 1;
        }
        self.ranges.splice(start..end, [(new_lo, new_hi)]);
    }

    /// Is `port` in the set?
    pub fn contains(&self, port: u16) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| e < port);
        self.ranges.get(i).is_some_and(|&(s, _)| s <= port)
    }

    /// How many ports.
    pub fn len(&self) -> usize {
        self.ranges
            .iter()
            .map(|&(s, e)| usize::from(e - s) + 1)
            .sum()
    }

    /// No port at all?
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ports in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.ranges.iter().flat_map(|&(s, e)| s..=e)
    }

    /// The merged inclusive ranges, in increasing order; what `Display`
    /// prints.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }
}

/// One port number of an item.
fn port(s: &str) -> Result<u16, PortsProblem> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortsProblem::NotAPort);
    }
    // All digits: only too many of them can fail to parse.
    match s.parse::<u32>() {
        Ok(0) => Err(PortsProblem::Zero),
        Ok(n) => u16::try_from(n).map_err(|_| PortsProblem::TooHigh),
        Err(_) => Err(PortsProblem::TooHigh),
    }
}

/// The bad part as it goes into an error message: at most 40 characters.
fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl Extend<u16> for PortSet {
    fn extend<I: IntoIterator<Item = u16>>(&mut self, iter: I) {
        for p in iter {
            self.insert(p);
        }
    }
}

impl FromIterator<u16> for PortSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut set = PortSet::new();
        set.extend(iter);
        set
    }
}

impl FromStr for PortSet {
    type Err = PortsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PortSet::parse(s)
    }
}

impl fmt::Display for PortSet {
    /// `1-79,81-442,444-65535`; a single port alone (`80`); the empty set as
    /// an empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(s, e)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if s == e {
                write!(f, "{s}")?;
            } else {
                write!(f, "{s}-{e}")?;
            }
        }
        Ok(())
    }
}

/// What is wrong with one item of a port list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PortsProblem {
    /// Nothing at all was given.
    #[error("the port list is empty")]
    Empty,
    /// Two commas in a row, or one at either end.
    #[error("empty item (two commas in a row, or one at an end)")]
    EmptyItem,
    /// Not digits, a range or `top100`.
    #[error("not a port (1-65535), a range A-B or top100")]
    NotAPort,
    /// Port 0.
    #[error("port 0 is not a door: ports go from 1 to 65535")]
    Zero,
    /// A number above 65535.
    #[error("ports go from 1 to 65535")]
    TooHigh,
    /// A range whose start is after its end.
    #[error("the range ends before it starts")]
    Reversed,
}

/// A port list that was refused: the problem, and the item it is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PortsError {
    /// What is wrong.
    pub problem: PortsProblem,
    /// The offending item as typed (trimmed, at most 40 characters); empty
    /// for [`PortsProblem::Empty`] and for an empty item.
    pub part: String,
}

impl fmt::Display for PortsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            PortsProblem::Empty | PortsProblem::EmptyItem => {
                write!(f, "bad port list: {}", self.problem)
            }
            p => write!(f, "bad port list: `{}`: {p}", self.part),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(s: &str) -> PortSet {
        PortSet::parse(s).unwrap()
    }

    #[test]
    fn top100_is_a_hundred_sorted_distinct_ports() {
        assert!(TOP100.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
        assert_eq!(PortSet::top100().len(), 100);
        for p in [
            20, 21, 22, 23, 25, 53, 80, 110, 123, 143, 443, 465, 587, 993, 995, 1194, 1723, 3128,
            3389, 5060, 8080, 8443, 51820,
        ] {
            assert!(PortSet::top100().contains(p), "{p}");
        }
    }

    #[test]
    fn forms() {
        assert_eq!(set("1-65535"), PortSet::all());
        assert_eq!(set("1-65535").len(), 65535);
        assert_eq!(set("top100"), PortSet::top100());
        assert_eq!(set("TOP100"), PortSet::top100());
        assert_eq!(
            set("22,80,443,1194").iter().collect::<Vec<_>>(),
            [22, 80, 443, 1194]
        );
        let mixed = set("1-1024,8080");
        assert_eq!(mixed.len(), 1025);
        assert_eq!(mixed.to_string(), "1-1024,8080");
        assert_eq!(set(" 443 , 22 ,22,80-80 ").to_string(), "22,80,443");
        assert_eq!(set("top100,1-65535"), PortSet::all());
    }

    #[test]
    fn dedup_sort_and_merge() {
        assert_eq!(set("443,80,443,22").to_string(), "22,80,443");
        assert_eq!(set("5-9,1-5").to_string(), "1-9");
        assert_eq!(set("1-5,6-9").to_string(), "1-9", "adjacent ranges merge");
        assert_eq!(set("1-5,7-9").to_string(), "1-5,7-9");
        assert_eq!(set("10-20,1-100,50").to_string(), "1-100");
        assert_eq!(set("3,1,2").ranges(), &[(1, 3)]);
        assert_eq!(set("65535,65534").to_string(), "65534-65535");
    }

    #[test]
    fn display_of_holes() {
        let mut s = PortSet::all();
        s = s.iter().filter(|&p| p != 80 && p != 443).collect();
        assert_eq!(s.to_string(), "1-79,81-442,444-65535");
        assert_eq!(PortSet::new().to_string(), "");
    }

    #[test]
    fn contains_and_insert() {
        let mut s = set("10-20,30");
        assert!(s.contains(10) && s.contains(20) && s.contains(30));
        assert!(!s.contains(9) && !s.contains(21) && !s.contains(29) && !s.contains(31));
        s.insert(0);
        assert_eq!(s.to_string(), "10-20,30");
        s.insert_range(0, 3);
        assert_eq!(s.to_string(), "1-3,10-20,30");
        s.insert_range(5, 4);
        assert_eq!(s.to_string(), "1-3,10-20,30");
        s.insert_range(21, 29);
        assert_eq!(s.to_string(), "1-3,10-30");
    }

    #[test]
    fn errors_name_the_bad_part() {
        let err = |s: &str| PortSet::parse(s).unwrap_err();
        assert_eq!(err("").problem, PortsProblem::Empty);
        assert_eq!(err("  ").problem, PortsProblem::Empty);
        let e = err("22,,80");
        assert_eq!(e.problem, PortsProblem::EmptyItem);
        assert_eq!(err("22,").problem, PortsProblem::EmptyItem);
        let e = err("22,8o,443");
        assert_eq!((e.problem, e.part.as_str()), (PortsProblem::NotAPort, "8o"));
        assert_eq!(
            e.to_string(),
            "bad port list: `8o`: not a port (1-65535), a range A-B or top100"
        );
        let e = err("1-70000");
        assert_eq!(
            (e.problem, e.part.as_str()),
            (PortsProblem::TooHigh, "1-70000")
        );
        assert_eq!(err("99999999999999999999").problem, PortsProblem::TooHigh);
        assert_eq!(err("0").problem, PortsProblem::Zero);
        assert_eq!(err("0-10").problem, PortsProblem::Zero);
        let e = err("80-22");
        assert_eq!(
            (e.problem, e.part.as_str()),
            (PortsProblem::Reversed, "80-22")
        );
        assert_eq!(err("-5").problem, PortsProblem::NotAPort);
        assert_eq!(err("5-").problem, PortsProblem::NotAPort);
        assert_eq!(err("1-2-3").problem, PortsProblem::NotAPort);
        assert_eq!(err("+5").problem, PortsProblem::NotAPort);
        assert_eq!(err("top10").problem, PortsProblem::NotAPort);
        let long = "x".repeat(100);
        assert_eq!(err(&long).part.chars().count(), 41);
    }

    fn port_set() -> impl Strategy<Value = PortSet> {
        prop_oneof![
            proptest::collection::vec(any::<u16>(), 0..40).prop_map(PortSet::from_iter),
            proptest::collection::vec((any::<u16>(), 0u16..2000), 0..10).prop_map(|v| {
                let mut s = PortSet::new();
                for (lo, n) in v {
                    s.insert_range(lo, lo.saturating_add(n));
                }
                s
            }),
        ]
    }

    proptest! {
        #[test]
        fn display_parses_back(s in port_set()) {
            prop_assume!(!s.is_empty());
            prop_assert_eq!(PortSet::parse(&s.to_string()), Ok(s));
        }

        #[test]
        fn normalised(s in port_set()) {
            for w in s.ranges().windows(2) {
                prop_assert!(u32::from(w[0].1) + 1 < u32::from(w[1].0), "{:?}", s.ranges());
            }
            for &(a, b) in s.ranges() {
                prop_assert!(1 <= a && a <= b);
            }
            prop_assert_eq!(s.iter().count(), s.len());
        }

        #[test]
        fn same_ports_as_a_naive_set(ports in proptest::collection::vec(any::<u16>(), 0..60)) {
            let naive: std::collections::BTreeSet<u16> =
                ports.iter().copied().filter(|&p| p != 0).collect();
            let s: PortSet = ports.iter().copied().collect();
            prop_assert_eq!(s.iter().collect::<Vec<_>>(), naive.iter().copied().collect::<Vec<_>>());
            for p in 0..=u16::MAX {
                if p % 97 == 0 || naive.contains(&p) {
                    prop_assert_eq!(s.contains(p), naive.contains(&p));
                }
            }
        }

        #[test]
        fn never_panics(s in "[0-9a-z, \\-]{0,40}") {
            let _ = PortSet::parse(&s);
        }

        #[test]
        fn never_panics_on_anything(s in any::<String>()) {
            if let Ok(set) = PortSet::parse(&s) {
                prop_assert!(!set.is_empty());
            }
        }
    }
}
