//! `onedoor probe --report FILE.html`: one self-contained page that draws
//! the network as a house with its doors and says what the map means.
//!
//! The page is HTML with inline CSS and inline SVG, nothing else: no
//! script, no font, image or style sheet from anywhere, so it opens the same
//! offline, in a mail client or on the network admin's desk. It is written
//! as well-formed XML-ish markup (every element closed, attributes quoted)
//! and everything that came from the user or the network (the server's
//! name, what answered on an intercepted door) is escaped.
//!
//! The picture, top to bottom:
//! - a roof ("your network") and, outside, a cloud for the server;
//! - the house's wall: all 65,536 port numbers as a 256 × 256 grid, one
//!   square per door, row `r` holding ports `256·r` to `256·r + 255`,
//!   coloured by state; port 0 (not a door) and doors not probed in the
//!   wall's grey. Each state's squares are one SVG path of run-length
//!   rectangles, so a 65,535-door map stays a few kilobytes;
//! - the open and intercepted doors ringed on the grid and named in a
//!   column to the right;
//! - at the bottom, the house's front doors: one drawn door per open (then
//!   intercepted) port, or a bricked-up doorway when none is open;
//! - below, the UDP doors as tiles (or a smaller grid past 64 of them), the
//!   legend with counts, the named doors with what was seen, and the rest
//!   as port ranges per reason.

use std::fmt::Write as _;

use super::{summary, thousands, Doors, Report, ALL_DOORS};
use crate::probe::{PortState, State};

/// Side of the grid, in squares.
const SIDE: u32 = 256;
/// Pixels per square in the TCP grid.
const CELL: u32 = 2;
/// The grid's top-left corner in the house picture.
const GRID_X: u32 = 88;
const GRID_Y: u32 = 246;
/// Where the name column starts.
const LABEL_X: u32 = 676;
/// The picture's width.
const WIDTH: u32 = 860;
/// Most doors named beside the grid.
const MAX_CALLOUTS: usize = 20;
/// Most front doors drawn.
const MAX_FRONT_DOORS: usize = 10;
/// Most UDP doors drawn as tiles (more: a grid).
const MAX_TILES: usize = 64;
/// Most rows in the named-doors table.
const MAX_TABLE_ROWS: usize = 200;
/// Longest port list shown in the page, in characters.
const MAX_LIST: usize = 400;

/// The wall's colour: port 0 and doors not probed.
const NOT_PROBED: &str = "#d6cfc4";

/// The fill of a state, chosen to be told apart also by most colour-blind
/// readers (green/orange/red are backed by position and names).
pub fn colour(state: State) -> &'static str {
    match state {
        State::Open => "#1a9850",
        State::Intercepted => "#f28e2b",
        State::Rejected => "#d73027",
        State::Filtered => "#4d5360",
        State::OutOnly => "#4e79a7",
        State::NoReply => "#8e6bbf",
    }
}

/// The page for `report`.
pub fn html(report: &Report) -> String {
    let s = summary(report);
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("The doors of your network, to {}", report.server);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = writeln!(out, "<h1>The doors of your network</h1>");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Mapped by <code>onedoor probe</code> from this machine to {}, \
         server <code>{}</code>, on {}, in {:.1} s.</p>",
        esc(&report.target_text()),
        esc(&report.fingerprint_text()),
        esc(&report.started_text()),
        report.duration.as_secs_f64()
    );
    let _ = writeln!(out, "<section class=\"verdict\">");
    let _ = writeln!(out, "<p class=\"headline\">{}</p>", prose(&s.headline));
    for sentence in &s.sentences {
        let _ = writeln!(out, "<p>{}</p>", prose(sentence));
    }
    let _ = writeln!(out, "</section>");

    let _ = writeln!(out, "<figure>");
    house(&mut out, report, &s.headline);
    let _ = writeln!(
        out,
        "<figcaption>TCP: every square is a door (a port). Row by row, 256 doors to a row: \
         the number at the left is the first door of its row.</figcaption>"
    );
    legend(&mut out, &report.tcp, true);
    let _ = writeln!(out, "</figure>");

    if !report.udp.probed.is_empty() {
        let _ = writeln!(out, "<h2>UDP doors</h2>\n<figure>");
        udp(&mut out, &report.udp);
        legend(&mut out, &report.udp, false);
        let _ = writeln!(out, "</figure>");
    }

    details(&mut out, report);
    let _ = writeln!(
        out,
        "<footer>A door is <b>open</b> only when your onedoor server itself answered, \
         verified by its key; <b>intercepted</b> when something else answered in its place; \
         <b>rejected</b> when refused outright; <b>filtered</b> when nothing came back. For UDP, \
         <b>out-only</b> means the server received the datagram but no reply got back, \
         <b>no-reply</b> that nothing came back and the server saw nothing. This page loads \
         nothing from the network.</footer>\n</body>\n</html>"
    );
    out
}

/// The house picture alone: one `<svg>` element (inline, no script, no
/// font from the network) with the roof, the server, the wall of 65,535
/// doors coloured by state, the open and intercepted doors named, and the
/// front doors. For pages that embed the map (the lab's report); its
/// accessible label is the summary's headline.
pub fn house_svg(report: &Report) -> String {
    let mut out = String::with_capacity(16 * 1024);
    house(&mut out, report, &summary(report).headline);
    out
}

const CSS: &str = "\
body{font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;\
background:#faf8f4;max-width:920px;margin:2em auto;padding:0 1em}\
h1{font-size:1.7em;margin:.2em 0}h2{font-size:1.3em;margin-top:1.6em}\
.meta{color:#666;font-size:.9em}.headline{font-size:1.45em;font-weight:600;margin:.4em 0}\
.verdict p{margin:.45em 0}figure{margin:1.2em 0}svg{width:100%;height:auto;display:block}\
figcaption{color:#555;font-size:.9em;margin:.4em 0}\
ul.legend{list-style:none;padding:0;margin:.5em 0;display:flex;flex-wrap:wrap;gap:.4em 1.2em}\
.sw{display:inline-block;width:.95em;height:.95em;border-radius:2px;vertical-align:-.12em;\
margin-right:.35em;border:1px solid rgba(0,0,0,.25)}\
table{border-collapse:collapse;width:100%;font-size:.95em}\
th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #e2ddd5;vertical-align:top}\
td:first-child,td:nth-child(2){white-space:nowrap}\
code,.ports{font-family:ui-monospace,'SFMono-Regular',Menlo,Consolas,monospace;font-size:.92em}\
footer{margin-top:2em;color:#666;font-size:.85em}";

/// The TCP picture: roof, cloud, the wall of doors, callouts, front doors.
fn house(out: &mut String, report: &Report, label: &str) {
    let front_y = GRID_Y + SIDE * CELL + 46;
    let wall_bottom = front_y + 64 + 18;
    let height = wall_bottom + 22;
    let _ = writeln!(
        out,
        "<svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\" \
         font-family=\"system-ui,sans-serif\">",
        esc(label)
    );
    let _ = writeln!(out, "<title>{}</title>", esc(label));
    // Sky, chimney, roof.
    let _ = writeln!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#eef4f8\"/>\n\
         <rect x=\"520\" y=\"92\" width=\"40\" height=\"100\" fill=\"#5b2a20\"/>\n\
         <polygon points=\"24,226 344,58 664,226\" fill=\"#7a3b2e\"/>\n\
         <text x=\"344\" y=\"172\" text-anchor=\"middle\" font-size=\"24\" fill=\"#fff\" \
         font-weight=\"600\">your network</text>\n\
         <text x=\"344\" y=\"196\" text-anchor=\"middle\" font-size=\"13\" fill=\"#f3e2dc\">\
         65,535 doors to the outside, one square each</text>"
    );
    // The server, outside.
    let name: String = if report.server.chars().count() > 26 {
        let s: String = report.server.chars().take(25).collect();
        format!("{s}…")
    } else {
        report.server.clone()
    };
    let _ = writeln!(
        out,
        "<g fill=\"#fff\" stroke=\"#9fb6c8\" stroke-width=\"1.5\">\
         <circle cx=\"724\" cy=\"98\" r=\"30\"/><circle cx=\"772\" cy=\"80\" r=\"42\"/>\
         <circle cx=\"822\" cy=\"102\" r=\"28\"/>\
         <rect x=\"694\" y=\"98\" width=\"156\" height=\"34\" rx=\"17\"/></g>\n\
         <rect x=\"696\" y=\"94\" width=\"152\" height=\"36\" fill=\"#fff\"/>\n\
         <text x=\"772\" y=\"96\" text-anchor=\"middle\" font-size=\"11\" fill=\"#557\">\
         your onedoor server</text>\n\
         <text x=\"772\" y=\"116\" text-anchor=\"middle\" font-size=\"12\" fill=\"#223\" \
         font-weight=\"600\">{}</text>",
        esc(&name)
    );
    // The wall and its grid of doors.
    let _ = writeln!(
        out,
        "<rect x=\"48\" y=\"226\" width=\"592\" height=\"{}\" fill=\"#efe6d8\" \
         stroke=\"#7a6a55\" stroke-width=\"2\"/>",
        wall_bottom - 226
    );
    for row in (0..SIDE).step_by(32) {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"9\" fill=\"#6b5e4e\">{}</text>",
            GRID_X - 4,
            GRID_Y + row * CELL + 7,
            thousands((row * SIDE).max(1) as usize)
        );
    }
    grid(out, &report.tcp, GRID_X, GRID_Y, CELL);
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#6b5e4e\">\
         256 doors to a row, numbered from left to right</text>",
        GRID_X + SIDE * CELL / 2,
        GRID_Y + SIDE * CELL + 15
    );
    callouts(out, &report.tcp);
    front_doors(out, &report.tcp, front_y);
    let _ = writeln!(
        out,
        "<rect x=\"0\" y=\"{wall_bottom}\" width=\"{WIDTH}\" height=\"22\" fill=\"#7fae5a\"/>\n</svg>"
    );
}

/// The doors as squares: one background, then one path per state made of
/// run-length rectangles in square units.
fn grid(out: &mut String, doors: &Doors, x: u32, y: u32, cell: u32) {
    let _ = writeln!(
        out,
        "<g transform=\"translate({x} {y}) scale({cell})\" shape-rendering=\"crispEdges\">\n\
         <rect width=\"{SIDE}\" height=\"{SIDE}\" fill=\"{NOT_PROBED}\"/>"
    );
    for state in State::ALL {
        let mut d = String::new();
        for row in 0..SIDE {
            let mut col = 0;
            while col < SIDE {
                let port = row * SIDE + col;
                if doors.state(port as u16) != Some(state) || port == 0 {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < SIDE && doors.state((row * SIDE + col) as u16) == Some(state) {
                    col += 1;
                }
                let _ = write!(d, "M{start} {row}h{}v1h-{}z", col - start, col - start);
            }
        }
        if !d.is_empty() {
            let _ = writeln!(out, "<path fill=\"{}\" d=\"{d}\"/>", colour(state));
        }
    }
    let _ = writeln!(out, "</g>");
}

/// Ring the open and intercepted doors on the grid and name them in the
/// column to the right, labels spread so they never overlap.
fn callouts(out: &mut String, doors: &Doors) {
    let named: Vec<(u16, State)> = doors
        .states
        .iter()
        .filter(|(_, s)| matches!(s.state(), State::Open | State::Intercepted))
        .map(|(&p, s)| (p, s.state()))
        .collect();
    if named.is_empty() {
        return;
    }
    let shown = &named[..named.len().min(MAX_CALLOUTS)];
    let centre = |p: u16| {
        let p = u32::from(p);
        (
            GRID_X + (p % SIDE) * CELL + CELL / 2,
            GRID_Y + (p / SIDE) * CELL + CELL / 2,
        )
    };
    // Labels: at their door's height, pushed down to keep 15 px apart,
    // then pulled up if the last would fall below the grid.
    const GAP: u32 = 15;
    let bottom = GRID_Y + SIDE * CELL;
    let mut ys: Vec<u32> = Vec::with_capacity(shown.len());
    for &(p, _) in shown {
        let want = centre(p).1.max(GRID_Y + 4);
        let y = ys.last().map_or(want, |&prev| want.max(prev + GAP));
        ys.push(y);
    }
    let mut limit = bottom;
    for y in ys.iter_mut().rev() {
        *y = (*y).min(limit);
        limit = y.saturating_sub(GAP);
    }
    for (&(port, state), &ly) in shown.iter().zip(&ys) {
        let (cx, cy) = centre(port);
        let c = colour(state);
        let _ = writeln!(
            out,
            "<g><title>door {port}: {state}</title>\
             <polyline points=\"{},{cy} {},{ly} {},{ly}\" fill=\"none\" stroke=\"{c}\" \
             stroke-width=\"1.2\" stroke-opacity=\".85\"/>\
             <circle cx=\"{cx}\" cy=\"{cy}\" r=\"5\" fill=\"none\" stroke=\"#111\" stroke-width=\"2.6\"/>\
             <circle cx=\"{cx}\" cy=\"{cy}\" r=\"5\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.6\"/>\
             <text x=\"{LABEL_X}\" y=\"{}\" font-size=\"12\" fill=\"#222\">\
             <tspan font-weight=\"700\">{port}</tspan> {state}</text></g>",
            cx + 5,
            LABEL_X - 18,
            LABEL_X - 4,
            ly + 4,
        );
    }
    if named.len() > shown.len() {
        let _ = writeln!(
            out,
            "<text x=\"{LABEL_X}\" y=\"{}\" font-size=\"11\" fill=\"#555\">and {} more</text>",
            ys.last().copied().unwrap_or(GRID_Y) + 18,
            thousands(named.len() - shown.len())
        );
    }
}

/// The front doors at the foot of the wall: open ones first, then
/// intercepted; a bricked-up doorway when nothing is open or intercepted.
fn front_doors(out: &mut String, doors: &Doors, y: u32) {
    let mut list: Vec<(u16, State)> = doors
        .states
        .iter()
        .filter(|(_, s)| s.state() == State::Open)
        .map(|(&p, _)| (p, State::Open))
        .collect();
    list.extend(
        doors
            .states
            .iter()
            .filter(|(_, s)| s.state() == State::Intercepted)
            .map(|(&p, _)| (p, State::Intercepted)),
    );
    const W: u32 = 36;
    const H: u32 = 64;
    const STEP: u32 = 56;
    let wall_centre = 48 + 592 / 2;
    if list.is_empty() {
        let x = wall_centre - W / 2;
        let _ = writeln!(
            out,
            "<g><title>no open door</title>{}\
             <path d=\"M{x} {y}l{W} {H}M{} {y}l-{W} {H}\" stroke=\"#7a6a55\" stroke-width=\"3\"/>\
             <text x=\"{wall_centre}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\" \
             fill=\"#5b4c3a\">no open door</text></g>",
            door_shape(x, y, W, H, NOT_PROBED),
            x + W,
            y - 8
        );
        return;
    }
    let more = list.len().saturating_sub(MAX_FRONT_DOORS);
    let shown = &list[..list.len().min(if more > 0 {
        MAX_FRONT_DOORS - 1
    } else {
        MAX_FRONT_DOORS
    })];
    let slots = shown.len() as u32 + u32::from(more > 0);
    let total = slots * STEP - (STEP - W);
    let mut x = wall_centre - total / 2;
    for &(port, state) in shown {
        let _ = writeln!(
            out,
            "<g><title>door {port}: {state}</title>{}\
             <circle cx=\"{}\" cy=\"{}\" r=\"2.6\" fill=\"#f5e6a8\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"700\" \
             fill=\"#222\">{port}</text></g>",
            door_shape(x, y, W, H, colour(state)),
            x + W - 8,
            y + H / 2 + 6,
            x + W / 2,
            y - 6,
        );
        x += STEP;
    }
    if more > 0 {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#333\">\
             +{}</text>",
            x + W / 2,
            y + H / 2,
            thousands(list.len() - shown.len())
        );
    }
}

/// A door with an arched top, `w` × `h` at (`x`, `y`).
fn door_shape(x: u32, y: u32, w: u32, h: u32, fill: &str) -> String {
    let r = w / 2;
    format!(
        "<path d=\"M{x} {}V{}A{r} {r} 0 0 1 {} {}V{}Z\" fill=\"{fill}\" stroke=\"#3b2f22\" \
         stroke-width=\"2\"/>",
        y + h,
        y + r,
        x + w,
        y + r,
        y + h
    )
}

/// The UDP doors: a tile each (a handful), or a grid like TCP's.
fn udp(out: &mut String, doors: &Doors) {
    let n = doors.probed_count();
    if n > MAX_TILES {
        let side = SIDE + 40;
        let _ = writeln!(
            out,
            "<svg viewBox=\"0 0 {side} {side}\" role=\"img\" aria-label=\"UDP doors\">"
        );
        grid(out, doors, 20, 20, 1);
        let _ = writeln!(out, "</svg>");
        return;
    }
    const PER_ROW: usize = 12;
    const TW: usize = 64;
    const TH: usize = 46;
    const STEP: usize = 70;
    let rows = n.div_ceil(PER_ROW);
    let _ = writeln!(
        out,
        "<svg viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"UDP doors\" \
         font-family=\"system-ui,sans-serif\">",
        STEP * PER_ROW,
        rows * (TH + 8)
    );
    for (i, port) in doors.probed.iter().enumerate() {
        let (x, y) = ((i % PER_ROW) * STEP, (i / PER_ROW) * (TH + 8));
        let (fill, name) = match doors.states.get(&port) {
            Some(s) => (colour(s.state()), s.state().as_str()),
            None => (NOT_PROBED, "?"),
        };
        let _ = writeln!(
            out,
            "<g><title>UDP {port}: {name}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{TW}\" height=\"{TH}\" rx=\"6\" fill=\"{fill}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"700\" \
             fill=\"#fff\">{port}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#fff\">{name}</text></g>",
            x + TW / 2,
            y + 21,
            x + TW / 2,
            y + 37
        );
    }
    let _ = writeln!(out, "</svg>");
}

/// Swatches with counts; `not probed` for TCP.
fn legend(out: &mut String, doors: &Doors, with_unprobed: bool) {
    let _ = writeln!(out, "<ul class=\"legend\">");
    for state in State::ALL {
        let n = doors.count(state);
        if n == 0 && matches!(state, State::OutOnly | State::NoReply) && with_unprobed {
            continue;
        }
        let _ = writeln!(
            out,
            "<li><span class=\"sw\" style=\"background:{}\"></span>{} <b>{}</b></li>",
            colour(state),
            state.as_str(),
            thousands(n)
        );
    }
    if with_unprobed {
        let _ = writeln!(
            out,
            "<li><span class=\"sw\" style=\"background:{NOT_PROBED}\"></span>not probed <b>{}</b></li>",
            thousands(ALL_DOORS - doors.probed_count().min(ALL_DOORS))
        );
    }
    let _ = writeln!(out, "</ul>");
}

/// The named doors with what was seen, then the rest per reason.
fn details(out: &mut String, report: &Report) {
    let named: Vec<(&str, u16, &PortState)> = report
        .tcp
        .named()
        .map(|(p, s)| ("TCP", p, s))
        .chain(report.udp.named().map(|(p, s)| ("UDP", p, s)))
        .collect();
    if !named.is_empty() {
        let _ = writeln!(
            out,
            "<h2>The doors that answered</h2>\n<table>\n\
             <tr><th>door</th><th>state</th><th>what was seen</th></tr>"
        );
        for &(t, port, s) in named.iter().take(MAX_TABLE_ROWS) {
            let _ = writeln!(
                out,
                "<tr><td>{t} {port}</td><td><span class=\"sw\" style=\"background:{}\"></span>{}</td>\
                 <td>{}</td></tr>",
                colour(s.state()),
                s.state(),
                prose(&s.reason())
            );
        }
        if named.len() > MAX_TABLE_ROWS {
            let _ = writeln!(
                out,
                "<tr><td colspan=\"3\">and {} more (all of them in <code>--json</code>)</td></tr>",
                thousands(named.len() - MAX_TABLE_ROWS)
            );
        }
        let _ = writeln!(out, "</table>");
    }
    let _ = writeln!(out, "<h2>All the doors, by state</h2>\n<ul>");
    for (t, doors) in [("TCP", &report.tcp), ("UDP", &report.udp)] {
        for state in State::ALL {
            for (_, reason, ports) in doors.by_reason(state) {
                let mut list = ports.to_string();
                if list.len() > MAX_LIST {
                    let cut = list[..MAX_LIST].rfind(',').unwrap_or(MAX_LIST);
                    list.truncate(cut);
                    list.push_str(", …");
                }
                let _ = writeln!(
                    out,
                    "<li><span class=\"sw\" style=\"background:{}\"></span>{t} {state} \
                     ({}): <span class=\"ports\">{}</span> — {}</li>",
                    colour(state),
                    thousands(ports.len()),
                    esc(&list).replace(',', ",<wbr/>"),
                    prose(&reason)
                );
            }
        }
    }
    let _ = writeln!(out, "</ul>");
}

/// Escape text for HTML content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text where `` `pieces` `` in backquotes become `<code>`.
fn prose(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len() & 1 == 0 {
        // An unpaired backquote: keep it as text.
        return esc(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;
    use crate::probe::{Interception, PortSet};

    /// Check that tags nest and close (void elements must be written
    /// `<x/>`), that text has no raw `<`, and that every `&` starts an
    /// entity. Returns the element names in document order.
    fn well_formed(page: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = page;
        while let Some(i) = rest.find('<') {
            check_text(&rest[..i]);
            let tail = &rest[i..];
            let end = tail.find('>').expect("unclosed tag");
            let tag = &tail[1..end];
            rest = &tail[end + 1..];
            if tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack
                    .pop()
                    .unwrap_or_else(|| panic!("</{name}> closes nothing"));
                assert_eq!(open, name, "</{name}> closes <{open}>");
                continue;
            }
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(!name.is_empty(), "bad tag <{tag}>");
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in <{tag}>"
            );
            seen.push(name.clone());
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        seen
    }

    fn check_text(text: &str) {
        for (i, _) in text.match_indices('&') {
            let ent = &text[i..];
            let end = ent.find(';').expect("& without ;");
            let name = &ent[1..end];
            assert!(
                ["amp", "lt", "gt", "quot", "#39"].contains(&name),
                "unknown entity &{name};"
            );
        }
    }

    fn self_contained(page: &str) {
        let lower = page.to_ascii_lowercase();
        for bad in [
            "<script", "http:", "https:", "url(", "@import", "<img", "<link", "<iframe", "src=",
            "href=", "onload", "onclick",
        ] {
            assert!(!lower.contains(bad), "page contains {bad}");
        }
    }

    #[test]
    fn full_map_page() {
        let page = html(&sample::web());
        let tags = well_formed(&page);
        self_contained(&page);
        assert!(
            tags.iter().filter(|t| *t == "svg").count() == 2,
            "house and UDP"
        );
        assert!(page.len() < 60_000, "{} bytes", page.len());
        assert!(page.contains("2 of 65,535 doors are open: 22 and 443."));
        assert!(page.contains(
            "With door 443 open, every service can be reached through onedoor: \
             blocking the others costs convenience, not security."
        ));
        // One path per state present, run-length: the filtered path covers
        // about a row per rectangle, not a rectangle per door.
        let filtered = format!("<path fill=\"{}\"", colour(State::Filtered));
        let at = page.find(&filtered).unwrap();
        let path = &page[at..at + page[at..].find("/>").unwrap()];
        assert!(
            path.matches('M').count() < 300,
            "{}",
            path.matches('M').count()
        );
        assert!(page.contains(&format!("<path fill=\"{}\"", colour(State::Open))));
        // Callouts and front doors name 22, 80, 443, 8080.
        for p in [22, 80, 443, 8080] {
            assert!(
                page.contains(&format!("<tspan font-weight=\"700\">{p}</tspan>")),
                "{p}"
            );
            assert!(page.contains(&format!("<title>door {p}: ")), "{p}");
        }
        // Legend counts.
        assert!(page.contains("filtered <b>65,512</b>"));
        assert!(page.contains("not probed <b>0</b>"));
        assert!(page.contains("UDP 53: out-only"));
        assert!(page.contains("<td>TCP 8080</td>"));
        // The portal's answer is quoted as code.
        assert!(page.contains("<code>HTTP/1.1 302 Found</code>"));
    }

    #[test]
    fn nothing_open_page() {
        let page = html(&sample::shut());
        well_formed(&page);
        self_contained(&page);
        assert!(page.contains("None of the 100 doors probed is open to your server."));
        assert!(page.contains("no open door"));
        assert!(page.contains("not probed <b>65,435</b>"));
        assert!(!page.contains("The doors that answered"));
        assert!(page.contains("<code>onedoor serve --reflect</code>"));
    }

    #[test]
    fn names_from_outside_are_escaped() {
        let mut r = sample::web();
        r.server = "<script>alert(\"x\")</script>&'".into();
        r.address = None;
        r.tcp.set(
            8000,
            PortState::Intercepted(Interception::Foreign {
                what: "`<b onmouseover=x>&amp;`".into(),
            }),
        );
        let page = html(&r);
        well_formed(&page);
        assert!(!page.contains("<script"));
        assert!(!page.contains("<b onmouseover"));
        assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
        assert!(page.contains("<code>&lt;b onmouseover=x&gt;&amp;amp;</code>"));
    }

    #[test]
    fn many_named_doors_and_a_udp_grid() {
        let mut r = sample::web();
        r.tcp = Doors::new(PortSet::all());
        r.udp = Doors::new(PortSet::all());
        for p in 1..=65535u16 {
            let s = match p % 3 {
                0 => PortState::Open,
                1 => PortState::Intercepted(Interception::Silence),
                _ => PortState::Filtered { tries: 2 },
            };
            r.tcp.set(p, s.clone());
            r.udp.set(p, PortState::NoReply { asked: true });
        }
        let page = html(&r);
        well_formed(&page);
        self_contained(&page);
        assert!(page.len() < 3_000_000, "{} bytes", page.len());
        assert!(page.contains("and 43,670 more</text>"));
        assert!(page.contains("and 43,490 more (all of them"));
        assert_eq!(
            page.matches("<g><title>door ").count(),
            MAX_CALLOUTS + MAX_FRONT_DOORS - 1
        );
        assert!(page.contains("<svg viewBox=\"0 0 296 296\""));
    }

    #[test]
    fn prose_and_escape() {
        assert_eq!(esc("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(prose("run `serve` now"), "run <code>serve</code> now");
        assert_eq!(prose("odd ` one"), "odd ` one");
        assert_eq!(prose("`<x>`"), "<code>&lt;x&gt;</code>");
    }

    #[test]
    fn the_house_alone() {
        let r = sample::web();
        let svg = house_svg(&r);
        assert!(svg.starts_with("<svg viewBox=\"0 0 860 "), "{}", &svg[..60]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.contains(&esc(&summary(&r).headline)));
        assert!(html(&r).contains(&svg), "the same picture as the page's");
        assert!(!svg.contains("<script"));
    }
}
