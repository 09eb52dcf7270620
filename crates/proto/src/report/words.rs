//! What a result means, in plain words: the same sentences end the table
//! on stderr and open the HTML page.

use super::{list_ports, thousands, Report, ALL_DOORS};
use crate::probe::{PortState, State};

/// The most ports named in one sentence.
const NAMED_IN_PROSE: usize = 8;

/// What a result means: one headline and the sentences that explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The count of open TCP doors, and which (`2 of 65,535 doors are open:
    /// 22 and 443.`).
    pub headline: String,
    /// What follows from it, then the rest of the map and UDP.
    pub sentences: Vec<String>,
}

/// The summary of `report`.
pub fn summary(report: &Report) -> Summary {
    let tcp = &report.tcp;
    let probed = tcp.probed_count();
    let open: Vec<u16> = tcp.ports_in(State::Open).iter().collect();
    let intercepted: Vec<u16> = tcp.ports_in(State::Intercepted).iter().collect();
    let rejected = tcp.count(State::Rejected);
    let filtered = tcp.count(State::Filtered);
    let mut sentences = Vec::new();

    let headline = match (probed, open.len()) {
        (0, _) => "No TCP door was probed.".to_owned(),
        (ALL_DOORS, 0) => "None of the 65,535 doors is open to your server.".to_owned(),
        (ALL_DOORS, n) => format!(
            "{} of 65,535 doors {} open: {}.",
            thousands(n),
            is_are(n),
            list_ports(&open, NAMED_IN_PROSE)
        ),
        (1, 0) => format!(
            "Door {} is not open to your server.",
            tcp.probed.iter().next().unwrap_or_default()
        ),
        (1, _) => format!("Door {} is open.", open[0]),
        (p, 0) => format!(
            "None of the {} doors probed is open to your server.",
            thousands(p)
        ),
        (p, n) => format!(
            "{} of the {} doors probed {} open: {}.",
            thousands(n),
            thousands(p),
            is_are(n),
            list_ports(&open, NAMED_IN_PROSE)
        ),
    };

    if let Some(&door) = open.iter().find(|&&p| p == 443).or(open.first()) {
        sentences.push(if door == 443 {
            "With door 443 open, every service can be reached through onedoor: \
             blocking the others costs convenience, not security."
                .to_owned()
        } else {
            format!(
                "With door {door} open, every service can be reached through onedoor \
                 (with `onedoor serve` listening on door {door}): blocking the others \
                 costs convenience, not security."
            )
        });
    }
    if !intercepted.is_empty() {
        let n = intercepted.len();
        sentences.push(format!(
            "{} {} answered, but not as your server ({}): something on the way \
             (a transparent proxy, a captive portal, a NAT) answers in its place, so \
             what goes through {} is seen or changed by someone else.",
            thousands(n),
            if n == 1 { "door" } else { "doors" },
            list_ports(&intercepted, NAMED_IN_PROSE),
            if n == 1 { "it" } else { "them" },
        ));
    }
    if probed > 0 && open.is_empty() {
        sentences.push(if rejected == probed {
            "Every door probed was refused outright: either the network refuses \
             everything, or nothing listens on the server (check that it runs \
             `onedoor serve --reflect`)."
                .to_owned()
        } else {
            "Nothing probed reaches your server from here. If this network offers an \
             HTTP proxy, `onedoor connect --proxy` may still go out through it; and \
             check that the server runs `onedoor serve --reflect` and that the \
             fingerprint (or access key) is the one its `onedoor init` printed: \
             with another one, your own server answers like a stranger."
                .to_owned()
        });
    }
    let mut rest = Vec::new();
    if filtered > 0 {
        rest.push(format!(
            "{} {} filtered (dropped without a word)",
            thousands(filtered),
            is_are(filtered)
        ));
    }
    if rejected > 0 && rejected != probed {
        rest.push(format!(
            "{} {} rejected (refused outright)",
            thousands(rejected),
            is_are(rejected)
        ));
    }
    if !rest.is_empty() {
        let lead = if open.is_empty() && intercepted.is_empty() {
            "Of the doors probed"
        } else {
            "Of the others"
        };
        sentences.push(format!("{lead}, {}.", rest.join(" and ")));
    }
    if probed > 0 && probed < ALL_DOORS {
        let n = ALL_DOORS - probed;
        sentences.push(format!(
            "The other {} {} not probed: nothing is known about {}.",
            thousands(n),
            if n == 1 { "door was" } else { "doors were" },
            if n == 1 { "it" } else { "them" },
        ));
    }
    udp_sentences(report, &mut sentences);
    Summary {
        headline,
        sentences,
    }
}

fn udp_sentences(report: &Report, out: &mut Vec<String>) {
    let udp = &report.udp;
    let probed = udp.probed_count();
    if probed == 0 {
        return;
    }
    let open: Vec<u16> = udp.ports_in(State::Open).iter().collect();
    let only = (probed == 1).then(|| udp.probed.iter().next()).flatten();
    out.push(match (open.len(), only) {
        (0, Some(p)) => format!("UDP: door {p} gets no answer from your server."),
        (_, Some(p)) => format!("UDP: door {p} is answered by your server."),
        (0, None) => format!(
            "UDP: none of the {} doors probed gets an answer from your server.",
            thousands(probed)
        ),
        (n, None) => format!(
            "UDP: {} of the {} doors probed {} answered by your server ({}).",
            thousands(n),
            thousands(probed),
            is_are(n),
            list_ports(&open, NAMED_IN_PROSE)
        ),
    });
    let out_only: Vec<u16> = udp.ports_in(State::OutOnly).iter().collect();
    if !out_only.is_empty() {
        out.push(format!(
            "UDP datagrams to {} reach the server, but no reply comes back: the \
             network lets them out and drops the answers.",
            list_ports(&out_only, NAMED_IN_PROSE)
        ));
    }
    let intercepted: Vec<u16> = udp.ports_in(State::Intercepted).iter().collect();
    if !intercepted.is_empty() {
        out.push(format!(
            "UDP {}: something else answers in your server's place.",
            list_ports(&intercepted, NAMED_IN_PROSE)
        ));
    }
    let unknown: Vec<u16> = udp
        .states
        .iter()
        .filter(|(_, s)| matches!(s, PortState::NoReply { asked: false }))
        .map(|(&p, _)| p)
        .collect();
    if !unknown.is_empty() {
        out.push(format!(
            "Whether datagrams to UDP {} arrive is unknown: no TCP door was open to \
             ask the server.",
            list_ports(&unknown, NAMED_IN_PROSE)
        ));
    }
}

fn is_are(n: usize) -> &'static str {
    if n == 1 {
        "is"
    } else {
        "are"
    }
}

#[cfg(test)]
mod tests {
    use super::super::{sample, Doors};
    use super::*;
    use crate::probe::{PortSet, Refusal};

    #[test]
    fn a_full_map_with_443_open() {
        let s = summary(&sample::web());
        assert_eq!(s.headline, "2 of 65,535 doors are open: 22 and 443.");
        assert_eq!(
            s.sentences[0],
            "With door 443 open, every service can be reached through onedoor: \
             blocking the others costs convenience, not security."
        );
        assert!(
            s.sentences[1].starts_with("2 doors answered, but not as your server (80 and 8080)")
        );
        assert_eq!(
            s.sentences[2],
            "Of the others, 65,512 are filtered (dropped without a word) and 19 are \
             rejected (refused outright)."
        );
        assert!(s.sentences[3].starts_with("UDP: 1 of the 4 doors probed is answered"));
        assert!(s.sentences[4].starts_with("UDP datagrams to 53 reach the server"));
        assert_eq!(s.sentences.len(), 5, "{s:#?}");
    }

    #[test]
    fn another_door_than_443() {
        let mut r = sample::web();
        r.tcp.set(443, PortState::Filtered { tries: 2 });
        let s = summary(&r);
        assert_eq!(s.headline, "1 of 65,535 doors is open: 22.");
        assert!(s.sentences[0].contains("With door 22 open"), "{s:?}");
        assert!(s.sentences[0].contains("listening on door 22"), "{s:?}");
    }

    #[test]
    fn nothing_open_and_nothing_asked() {
        let s = summary(&sample::shut());
        assert_eq!(
            s.headline,
            "None of the 100 doors probed is open to your server."
        );
        assert!(s.sentences[0].starts_with("Nothing probed reaches your server"));
        assert_eq!(
            s.sentences[1],
            "Of the doors probed, 100 are filtered (dropped without a word)."
        );
        assert_eq!(
            s.sentences[2],
            "The other 65,435 doors were not probed: nothing is known about them."
        );
        assert!(s.sentences[3].starts_with("UDP: none of the 4 doors"));
        assert!(s.sentences[4].contains("UDP 53, 123, 443 and 1194 arrive is unknown"));
    }

    #[test]
    fn everything_refused() {
        let mut r = sample::shut();
        r.udp = Doors::default();
        r.tcp = Doors::new(PortSet::parse("1-3").unwrap());
        for p in 1..=3 {
            r.tcp.set(p, PortState::Rejected(Refusal::Refused));
        }
        let s = summary(&r);
        assert_eq!(
            s.headline,
            "None of the 3 doors probed is open to your server."
        );
        assert!(s.sentences[0].starts_with("Every door probed was refused outright"));
        assert_eq!(s.sentences.len(), 2, "{s:?}");
    }

    #[test]
    fn one_door_or_none() {
        let mut r = sample::shut();
        r.udp = Doors::default();
        r.tcp = Doors::default();
        assert_eq!(summary(&r).headline, "No TCP door was probed.");
        r.tcp.set(443, PortState::Open);
        let s = summary(&r);
        assert_eq!(s.headline, "Door 443 is open.");
        assert!(s
            .sentences
            .last()
            .unwrap()
            .contains("65,534 doors were not probed"));
    }
}
