//! [`PortRanges`]: a set of ports kept as sorted, merged ranges.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// A set of ports 1–65535 as sorted, disjoint, non-adjacent inclusive
/// ranges (port 0, which no one can dial, never belongs to it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortRanges(Vec<(u16, u16)>);

impl PortRanges {
    /// No ports.
    pub fn new() -> PortRanges {
        PortRanges(Vec::new())
    }

    /// Every port, 1–65535.
    pub fn all() -> PortRanges {
        PortRanges(vec![(1, u16::MAX)])
    }

    /// The union of `ranges` (in any order, overlapping or not; empty
    /// ranges and port 0 are ignored).
    pub fn from_ranges(ranges: impl IntoIterator<Item = RangeInclusive<u16>>) -> PortRanges {
        let mut v: Vec<(u16, u16)> = ranges
            .into_iter()
            .filter_map(|r| {
                let (lo, hi) = (*r.start().max(&1), *r.end());
                (lo <= hi).then_some((lo, hi))
            })
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        PortRanges(out)
    }

    /// The given ports.
    pub fn from_ports(ports: impl IntoIterator<Item = u16>) -> PortRanges {
        PortRanges::from_ranges(ports.into_iter().map(|p| p..=p))
    }

    /// The ranges, sorted, as `(first, last)`.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    /// Does `port` belong to the set?
    pub fn contains(&self, port: u16) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < port);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= port)
    }

    /// How many ports.
    pub fn count(&self) -> u32 {
        self.0
            .iter()
            .map(|&(lo, hi)| u32::from(hi) - u32::from(lo) + 1)
            .sum()
    }

    /// No ports at all?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every port, ascending.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().flat_map(|&(lo, hi)| lo..=hi)
    }

    /// This set without `ports`.
    pub fn without(&self, ports: impl IntoIterator<Item = u16>) -> PortRanges {
        let mut holes: Vec<u16> = ports.into_iter().collect();
        holes.sort_unstable();
        holes.dedup();
        let mut out = Vec::with_capacity(self.0.len() + holes.len());
        let mut h = holes.iter().peekable();
        for &(lo, hi) in &self.0 {
            let mut start = u32::from(lo);
            let end = u32::from(hi);
            while let Some(&&p) = h.peek() {
                let p = u32::from(p);
                if p > end {
                    break;
                }
                h.next();
                if p < start {
                    continue;
                }
                if p > start {
                    out.push((start as u16, (p - 1) as u16));
                }
                start = p + 1;
            }
            if start <= end {
                out.push((start as u16, end as u16));
            }
        }
        PortRanges(out)
    }
}

/// A port list that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {why} (expected ports and ranges such as `1-65535` or `53,123,443`)")]
pub struct PortRangesError {
    /// The offending piece.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl FromStr for PortRanges {
    type Err = PortRangesError;

    /// `1-65535`, `53,123,443,1194`, `1000-2000,3000` (spaces around the
    /// commas are allowed).
    fn from_str(s: &str) -> Result<PortRanges, PortRangesError> {
        let err = |text: &str, why| PortRangesError {
            text: text.to_owned(),
            why,
        };
        let port = |t: &str| -> Result<u16, PortRangesError> {
            match t.trim().parse::<u16>() {
                Ok(0) => Err(err(t, "port 0 cannot be dialled")),
                Ok(p) => Ok(p),
                Err(_) => Err(err(t, "not a port number 1-65535")),
            }
        };
        if s.trim().is_empty() {
            return Err(err(s, "no ports"));
        }
        let mut ranges = Vec::new();
        for piece in s.split(',') {
            let range = match piece.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (port(a)?, port(b)?);
                    if a > b {
                        return Err(err(piece, "a range must go upwards"));
                    }
                    a..=b
                }
                None => {
                    let p = port(piece)?;
                    p..=p
                }
            };
            ranges.push(range);
        }
        Ok(PortRanges::from_ranges(ranges))
    }
}

impl fmt::Display for PortRanges {
    /// `1-1499,1501-65535`; an empty set is `-` (nothing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_sorted_merged_and_never_hold_port_zero() {
        let empty = RangeInclusive::new(30, 29);
        let r = PortRanges::from_ranges([10..=20, 0..=3, 21..=25, 15..=16, empty, 40..=40]);
        assert_eq!(r.ranges(), [(1, 3), (10, 25), (40, 40)]);
        assert_eq!(r.count(), 3 + 16 + 1);
        assert!(r.contains(1) && r.contains(25) && r.contains(40));
        assert!(!r.contains(0) && !r.contains(26) && !r.contains(41) && !r.contains(9));
        assert_eq!(PortRanges::from_ports([5, 3, 4, 9]).to_string(), "3-5,9");
        assert_eq!(PortRanges::all().count(), 65535);
        assert_eq!(PortRanges::new().to_string(), "-");
    }

    #[test]
    fn without_punches_holes() {
        let all = PortRanges::all();
        assert_eq!(
            all.without([1, 22, 443, 444, 65535, 0]).to_string(),
            "2-21,23-442,445-65534"
        );
        let r: PortRanges = "1000-2000,5000-5010".parse().unwrap();
        assert_eq!(
            r.without([1500, 999, 2001, 5000]).to_string(),
            "1000-1499,1501-2000,5001-5010"
        );
        assert_eq!(r.without(r.ports().collect::<Vec<_>>()), PortRanges::new());
        assert_eq!(r.without([]), r);
    }

    #[test]
    fn parses_lists_and_ranges() {
        let p = |s: &str| s.parse::<PortRanges>().map(|r| r.to_string());
        assert_eq!(p("1-65535").unwrap(), "1-65535");
        assert_eq!(p("53,123,443,1194").unwrap(), "53,123,443,1194");
        assert_eq!(p(" 443 , 80-81,82").unwrap(), "80-82,443");
        assert_eq!(p("0").unwrap_err().why, "port 0 cannot be dialled");
        assert_eq!(p("2-1").unwrap_err().why, "a range must go upwards");
        assert_eq!(p("65536").unwrap_err().why, "not a port number 1-65535");
        assert_eq!(p("").unwrap_err().why, "no ports");
        assert_eq!(p("1,,2").unwrap_err().why, "not a port number 1-65535");
        assert!(p("x-3").unwrap_err().to_string().contains("`x`"));
    }

    /// Property: `without` agrees with the set difference, port by port.
    #[test]
    fn without_is_set_difference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let ranges: Vec<RangeInclusive<u16>> = (0..(next() % 6))
                .map(|_| {
                    let a = (next() % 300) as u16;
                    a..=a + (next() % 40) as u16
                })
                .collect();
            let holes: Vec<u16> = (0..(next() % 30)).map(|_| (next() % 340) as u16).collect();
            let r = PortRanges::from_ranges(ranges.clone());
            let got = r.without(holes.clone());
            for p in 0..=400u16 {
                let want = p != 0 && ranges.iter().any(|x| x.contains(&p)) && !holes.contains(&p);
                assert_eq!(got.contains(p), want, "{p} in {r} minus {holes:?}");
            }
            for w in got.ranges().windows(2) {
                assert!(
                    u32::from(w[0].1) + 1 < u32::from(w[1].0),
                    "not merged: {got}"
                );
            }
        }
    }
}
