//! The compact table `onedoor probe` prints on stderr: the doors worth
//! naming one per line with their reason, the rest as port ranges per
//! state, then what it means ([`super::summary`]).
//!
//! ```text
//! door.example (198.18.0.2), SHA256:BwcH…, 2025-06-15T15:06:40Z, 12.3 s
//!
//! TCP: 65,535 doors probed
//!   22     open          the onedoor server answered, verified
//!   80     intercepted   something else answered: `HTTP/1.1 302 Found`
//!   rejected         19  1-19
//!                        refused (TCP reset, or ICMP port unreachable)
//!   filtered     65,512  20-21,23-79,81-442,444-65535
//!                        no answer within the timeout (2 tries)
//! ```

use std::fmt::Write as _;

use super::{summary, thousands, Doors, Report};
use crate::probe::State;

/// A named state with more ports than this is shown as ranges instead.
const MAX_NAMED_PER_STATE: usize = 20;
/// Lines are wrapped at this width.
const WIDTH: usize = 100;
/// Where range text and reasons start on a range line.
const RANGE_COLUMN: usize = 23;
/// The most lines one range list takes before it is cut short.
const MAX_RANGE_LINES: usize = 6;

/// The table for `report`, ending with a newline.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}, {}, {}, {:.1} s",
        report.target_text(),
        report.fingerprint_text(),
        report.started_text(),
        report.duration.as_secs_f64()
    );
    for (name, doors) in [("TCP", &report.tcp), ("UDP", &report.udp)] {
        if doors.probed.is_empty() {
            continue;
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{name}: {} {} probed",
            thousands(doors.probed_count()),
            if doors.probed_count() == 1 {
                "door"
            } else {
                "doors"
            }
        );
        transport(&mut out, doors);
    }
    let s = summary(report);
    out.push('\n');
    wrap(&mut out, &s.headline, 0, 0);
    for sentence in &s.sentences {
        wrap(&mut out, sentence, 0, 0);
    }
    out
}

fn transport(out: &mut String, doors: &Doors) {
    // The doors worth naming first, one per line; then ranges.
    let one_by_one = |state: State| {
        matches!(state, State::Open | State::Intercepted | State::OutOnly)
            && doors.count(state) <= MAX_NAMED_PER_STATE
    };
    for state in State::ALL.into_iter().filter(|&s| one_by_one(s)) {
        for (port, s) in doors.states.iter().filter(|(_, s)| s.state() == state) {
            let head = format!("  {port:<6} {:<13} ", state.as_str());
            wrap(out, &format!("{head}{s}"), 0, RANGE_COLUMN);
        }
    }
    for state in State::ALL.into_iter().filter(|&s| !one_by_one(s)) {
        for (_, reason, ports) in doors.by_reason(state) {
            let head = format!("  {:<11} {:>7}  ", state.as_str(), thousands(ports.len()));
            ranges(out, &head, &ports.to_string());
            wrap(out, &reason, RANGE_COLUMN, RANGE_COLUMN);
        }
    }
    let unknown = doors.probed_count() - doors.states.len();
    if unknown > 0 {
        let _ = writeln!(out, "  {:<11} {:>7}  (no result)", "?", thousands(unknown));
    }
}

/// `head` then the comma-separated `list`, broken after commas at
/// [`WIDTH`], continued at [`RANGE_COLUMN`], at most [`MAX_RANGE_LINES`].
fn ranges(out: &mut String, head: &str, list: &str) {
    let mut line = head.to_owned();
    let mut lines = 0;
    let items: Vec<&str> = list.split(',').collect();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item},")
        } else {
            (*item).to_owned()
        };
        if line.len() + piece.len() > WIDTH && line.len() > RANGE_COLUMN {
            lines += 1;
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(RANGE_COLUMN);
            if lines == MAX_RANGE_LINES {
                line.push_str("… (all of them in --json)");
                break;
            }
        }
        line.push_str(&piece);
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `text` wrapped at [`WIDTH`] on spaces: the first line indented by
/// `first`, the others by `rest`.
fn wrap(out: &mut String, text: &str, first: usize, rest: usize) {
    let body = text.trim_start_matches(' ');
    let mut line = " ".repeat(first + text.len() - body.len());
    let mut empty = true;
    for word in body.split(' ') {
        if !empty && line.len() + 1 + word.chars().count() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(rest);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = word.is_empty() && empty;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;
    use crate::probe::{PortSet, PortState};

    #[test]
    fn full_map() {
        let t = table(&sample::web());
        let want_start = "\
door.example (198.18.0.2), SHA256:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc, 2025-06-15T15:06:40Z, 12.3 s

TCP: 65,535 doors probed
  22     open          the onedoor server answered, verified
  443    open          the onedoor server answered, verified
  80     intercepted   something else answered: `HTTP/1.1 302 Found`
  8080   intercepted   the server saw the hello arrive on port 8081: the port was rewritten on the
                       way (NAT)
  rejected         19  1-19
                       refused (TCP reset, or ICMP port unreachable)
  filtered     65,512  20-21,23-79,81-442,444-8079,8081-65535
                       no answer within the timeout (2 tries)

UDP: 4 doors probed
  443    open          the onedoor server answered, verified
  53     out-only      the server received the datagram (on port 53) but no reply came back
  rejected          1  1194
                       refused (TCP reset, or ICMP port unreachable)
  no-reply          1  123
                       nothing came back, and the server received nothing

2 of 65,535 doors are open: 22 and 443.
With door 443 open, every service can be reached through onedoor: blocking the others costs
convenience, not security.
";
        assert!(t.starts_with(want_start), "{t}");
        assert!(t.lines().skip(1).all(|l| l.chars().count() <= WIDTH), "{t}");
    }

    #[test]
    fn many_open_doors_become_ranges_and_long_lists_are_cut() {
        let mut r = sample::shut();
        r.tcp = Doors::new(PortSet::all());
        for p in 1..=65535u16 {
            r.tcp.set(
                p,
                if p % 2 == 0 {
                    PortState::Open
                } else {
                    PortState::Filtered { tries: 2 }
                },
            );
        }
        let t = table(&r);
        assert!(t.contains("  open         32,767  2,4,6,8,"), "{t}");
        assert!(t.contains("… (all of them in --json)"), "{t}");
        assert!(t.lines().count() < 40, "{t}");
    }
}
