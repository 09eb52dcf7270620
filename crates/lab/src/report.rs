//! The story's results for machines (JSON) and for people (one
//! self-contained HTML page: inline CSS and SVG, no scripts, no network).
//!
//! The page draws each run as the house, the router with its doors, and
//! the internet with its services; each door is coloured by what happened
//! when the house knocked on it, and the way through door 443 is drawn
//! through `onedoor serve`. Then the steps, the verdict, and the router's
//! rules.

use std::fmt::Write as _;

use serde::Serialize;

use crate::outcome::{Observed, Path, Run, Step};
use crate::policy::Door;

/// Everything `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    /// True when every run's verdict holds and nothing stopped early.
    pub ok: bool,
    /// One entry per policy run.
    pub runs: Vec<Run>,
}

impl LabReport {
    /// Wrap finished runs.
    pub fn new(runs: Vec<Run>) -> LabReport {
        let ok = !runs.is_empty()
            && runs
                .iter()
                .all(|r| r.stopped.is_none() && r.verdict.as_ref().is_some_and(|v| v.holds));
        LabReport { ok, runs }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }
}

/// Escape text for HTML and SVG: the probe report's escaper, so both pages
/// escape alike.
pub use onedoor_proto::report::html::esc as escape;

/// A colour per kind of outcome.
fn colour(o: Option<&Observed>) -> &'static str {
    match o {
        Some(Observed::Reached { .. }) => "#2e7d32",
        Some(Observed::Intercepted { .. }) => "#ef6c00",
        Some(Observed::Dropped { .. }) => "#8e1b1b",
        Some(Observed::Refused { .. }) => "#d32f2f",
        Some(Observed::Failed { .. }) => "#6a1b9a",
        Some(Observed::Skipped { .. }) | None => "#9e9e9e",
    }
}

fn find<'a>(run: &'a Run, id: &str) -> Option<&'a Step> {
    run.steps.iter().find(|s| s.id == id)
}

/// One door on the router's wall.
struct DoorMark<'a> {
    label: &'static str,
    y: i32,
    step: Option<&'a Step>,
    note: String,
}

fn doors(run: &Run) -> Vec<DoorMark<'_>> {
    let direct22 = find(run, "library-door-22").or_else(|| find(run, "ssh-door-22"));
    let through = find(run, "library-door-443");
    let door443 = through.filter(|s| s.path == Path::ThroughDoor443);
    let mut out = vec![
        DoorMark {
            label: "door 22",
            y: 70,
            step: direct22,
            note: direct22
                .map(|s| s.observed.label().to_owned())
                .unwrap_or_default(),
        },
        DoorMark {
            label: "door 80",
            y: 130,
            step: find(run, "website-door-80"),
            note: find(run, "website-door-80")
                .map(|s| s.observed.label().to_owned())
                .unwrap_or_default(),
        },
        DoorMark {
            label: "door 443",
            y: 190,
            step: door443,
            note: match (door443, through) {
                (Some(s), _) => s.observed.label().to_owned(),
                (None, Some(_)) => "closed".into(),
                (None, None) => String::new(),
            },
        },
        DoorMark {
            label: "UDP 1194",
            y: 250,
            step: find(run, "crosswords-door-1194"),
            note: find(run, "crosswords-door-1194")
                .map(|s| s.observed.label().to_owned())
                .unwrap_or_default(),
        },
    ];
    if through.is_some() && door443.is_none() {
        // proxy-only: door 443 is shut; the proxy goes out on the router's
        // own behalf.
        out[2].note = "shut".into();
    }
    out
}

fn svg(run: &Run) -> String {
    let mut s = String::new();
    let p = &run.plan;
    let _ = write!(
        s,
        r##"<svg viewBox="0 0 900 370" width="900" height="370" role="img" aria-label="the house, the router and the internet" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="13">
<rect x="0" y="0" width="900" height="370" fill="#fafafa"/>
<polygon points="30,120 115,55 200,120" fill="#c5a880" stroke="#5d4037" stroke-width="2"/>
<rect x="45" y="120" width="140" height="140" fill="#efe3c8" stroke="#5d4037" stroke-width="2"/>
<rect x="100" y="205" width="30" height="55" fill="#8d6e63"/>
<text x="115" y="150" text-anchor="middle" font-weight="bold">house</text>
<text x="115" y="170" text-anchor="middle">{house}</text>
<rect x="375" y="30" width="110" height="305" rx="6" fill="#eceff1" stroke="#37474f" stroke-width="2"/>
<text x="430" y="22" text-anchor="middle" font-weight="bold">router · {policy}</text>
<text x="430" y="355" text-anchor="middle">{lan} | {wan}</text>
<rect x="650" y="30" width="220" height="260" rx="14" fill="#e3f2fd" stroke="#1565c0" stroke-width="2"/>
<text x="760" y="22" text-anchor="middle" font-weight="bold">internet · {internet}</text>
"##,
        house = p.house,
        policy = escape(run.policy.name()),
        lan = p.router_lan,
        wan = p.router_wan,
        internet = p.internet,
    );
    let services = [
        (70, "library · door 22"),
        (130, "website · door 80"),
        (190, "onedoor serve · door 443"),
        (250, "crosswords · UDP 1194"),
    ];
    for (y, label) in services {
        let _ = writeln!(
            s,
            r##"<rect x="665" y="{}" width="190" height="30" rx="5" fill="#ffffff" stroke="#1565c0"/><text x="760" y="{}" text-anchor="middle">{}</text>"##,
            y - 15,
            y + 5,
            escape(label)
        );
    }
    for d in doors(run) {
        let c = colour(d.step.map(|s| &s.observed));
        let _ = write!(
            s,
            r##"<line x1="185" y1="190" x2="390" y2="{y}" stroke="{c}" stroke-width="3"/>
<rect x="390" y="{ry}" width="80" height="36" rx="3" fill="{c}" stroke="#263238"/>
<text x="430" y="{ty}" text-anchor="middle" fill="#ffffff" font-size="12" font-weight="bold">{label}</text>
<text x="430" y="{ny}" text-anchor="middle" fill="{c}" font-size="11">{note}</text>
"##,
            y = d.y,
            ry = d.y - 18,
            ty = d.y + 4,
            ny = d.y + 31,
            label = escape(d.label),
            note = escape(&d.note),
        );
        let observed = d.step.map(|s| &s.observed);
        if matches!(observed, Some(Observed::Reached { .. })) {
            let _ = writeln!(
                s,
                r##"<line x1="470" y1="{y}" x2="665" y2="{y}" stroke="{c}" stroke-width="3"/>"##,
                y = d.y
            );
        }
        if d.label == "door 80" && matches!(observed, Some(Observed::Intercepted { .. })) {
            let _ = write!(
                s,
                r##"<line x1="470" y1="130" x2="505" y2="130" stroke="{c}" stroke-width="3"/>
<rect x="505" y="115" width="145" height="30" rx="5" fill="#fff3e0" stroke="{c}"/><text x="577" y="134" text-anchor="middle" font-size="12">the router's portal</text>
"##
            );
        }
    }
    // proxy-only: the house's way out is the proxy, inside the router.
    let lib443 = find(run, "library-door-443");
    if let Some(st) = lib443.filter(|st| st.path == Path::ThroughProxy) {
        let c = colour(Some(&st.observed));
        let _ = write!(
            s,
            r##"<rect x="385" y="296" width="90" height="28" rx="5" fill="#f3e5f5" stroke="#6a1b9a"/><text x="430" y="314" text-anchor="middle" font-size="12">HTTP proxy</text>
<path d="M185,200 C280,300 320,310 385,310" fill="none" stroke="{c}" stroke-width="3" stroke-dasharray="6 3"/>
<path d="M475,310 C580,310 600,200 665,192" fill="none" stroke="{c}" stroke-width="3" stroke-dasharray="6 3"/>
"##
        );
    }
    // Behind door 443, serve hands the library and the website their
    // connections.
    for (st, y) in [(lib443, 70), (find(run, "website-door-443"), 130)] {
        if let Some(st) = st {
            let c = colour(Some(&st.observed));
            let _ = writeln!(
                s,
                r##"<path d="M855,190 C890,175 890,{y} 855,{y}" fill="none" stroke="{c}" stroke-width="2" stroke-dasharray="4 3"/>"##
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// The tunnel chapter: the command line and the throughput figure.
fn tunnel_section(out: &mut String, run: &Run) {
    let Some(t) = &run.tunnel else { return };
    let _ = write!(
        out,
        "<h3>Through the tunnel</h3>\n<p>In the house: <code>onedoor {}</code></p>\n",
        escape(&t.connect_args.join(" "))
    );
    if let Some(way) = &t.way {
        let _ = writeln!(out, r#"<p class="way">The way: {}.</p>"#, escape(way));
    }
    if let Some(why) = &t.not_tried {
        let _ = writeln!(out, "<p>Not tried: {}.</p>", escape(why));
    }
    if let Some(f) = &t.throughput {
        let _ = writeln!(
            out,
            r#"<p class="throughput">Throughput through the firewall: <strong>{:.0} MB/s</strong> ({} MiB in {} ms, counted by a sink on the internet).</p>"#,
            f.mb_per_s,
            f.bytes >> 20,
            f.ms
        );
    }
}

fn door_cell(d: Option<Door>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// The table's "way" column; `proxied`: the tunnel went through the
/// router's proxy.
fn path_words(p: Path, proxied: bool) -> &'static str {
    match p {
        Path::Direct => "straight",
        Path::ThroughDoor443 => "through door 443",
        Path::ThroughProxy => "through the proxy",
        Path::ThroughTunnel if proxied => "through the proxy and the tunnel on door 443",
        Path::ThroughTunnel => "through the tunnel on door 443",
        Path::Local => "on the server",
    }
}

/// The first chapter: the map in words, judged, and the probe's own
/// picture of the house and its doors.
fn map_section(out: &mut String, run: &Run) {
    use onedoor_proto::probe::State;
    use onedoor_proto::report::{html, json};
    let Some(map) = &run.map else {
        return;
    };
    let _ = write!(
        out,
        r#"<h3>First, the map of the doors</h3>
<p class="verdict {}">{} {}{} ({}).</p>
"#,
        if map.ok { "good" } else { "bad" },
        if map.ok { "✓" } else { "✗" },
        escape(&capitalise(&map.words)),
        if map.words.is_empty() { "No map" } else { "" },
        escape(&map.judgement(run.policy)),
    );
    if let Some(report) = map.probe.as_ref().and_then(|p| json::from_json(p).ok()) {
        let _ = write!(
            out,
            r#"<figure class="map">{}</figure>
<p class="legend">"#,
            html::house_svg(&report)
        );
        for state in State::ALL {
            let (t, u) = (report.tcp.count(state), report.udp.count(state));
            if t + u == 0 {
                continue;
            }
            let _ = write!(
                out,
                r#"<span><span class="dot" style="background:{}"></span>{} ({} TCP, {} UDP)</span>"#,
                html::colour(state),
                state.as_str(),
                t,
                u
            );
        }
        out.push_str("</p>\n");
    }
    let _ = writeln!(
        out,
        r#"<p class="cmd">In the house: <code>onedoor {}</code><br>On the internet: <code>onedoor {}</code></p>"#,
        escape(&map.probe_args.join(" ")),
        escape(&map.serve_args.join(" "))
    );
}

fn run_section(out: &mut String, run: &Run) {
    let verdict = run.verdict.as_ref();
    let holds = verdict.is_some_and(|v| v.holds) && run.stopped.is_none();
    let _ = write!(
        out,
        r#"<section><h2>Policy <code>{}</code></h2><p class="policy">{}.</p>
<figure>{}</figure>
"#,
        escape(run.policy.name()),
        escape(&capitalise(&run.policy_words)),
        svg(run)
    );
    map_section(out, run);
    out.push_str("<h3>Then the doors, tried</h3>\n<table><thead><tr><th></th><th>what the house tried</th><th>door</th><th>way</th><th>expected</th><th>what happened</th><th>time</th></tr></thead><tbody>\n");
    let proxied = run.tunnel.as_ref().is_some_and(|t| t.proxy.is_some());
    for st in &run.steps {
        let _ = writeln!(
            out,
            r#"<tr class="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><span class="dot" style="background:{}"></span>{}</td><td>{} ms</td></tr>"#,
            if st.ok { "ok" } else { "bad" },
            if st.ok { "✓" } else { "✗" },
            escape(&st.title),
            escape(&door_cell(st.door)),
            path_words(st.path, proxied),
            escape(st.expected.words()),
            colour(Some(&st.observed)),
            escape(&st.observed.to_string()),
            st.ms
        );
    }
    out.push_str("</tbody></table>\n");
    tunnel_section(out, run);
    match (verdict, &run.stopped) {
        (_, Some(stopped)) => {
            let _ = write!(
                out,
                r#"<p class="verdict bad">Stopped early: {}</p>"#,
                escape(stopped)
            );
        }
        (Some(v), None) => {
            let _ = write!(
                out,
                r#"<p class="verdict {}">{}</p>"#,
                if holds { "good" } else { "bad" },
                escape(&v.text)
            );
        }
        (None, None) => {}
    }
    let _ = write!(
        out,
        r#"
<details><summary>How it was set up</summary>
<p>Namespaces <code>{}</code>, <code>{}</code>, <code>{}</code>; built in {} ms{}.</p>
<p>On the internet: <code>onedoor {}</code></p>
<p>The router's firewall (as <code>nft list ruleset</code> would print it):</p><pre>{}</pre></details></section>
"#,
        escape(&run.plan.house_ns),
        escape(&run.plan.router_ns),
        escape(&run.plan.internet_ns),
        run.build_ms,
        run.teardown_ms
            .map(|t| format!(", taken down in {t} ms"))
            .unwrap_or_default(),
        escape(&run.serve_args.join(" ")),
        escape(&run.ruleset)
    );
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The whole page.
pub fn render_html(report: &LabReport) -> String {
    let mut out = String::from(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>onedoor lab: one open door is enough</title>
<style>
body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#212121;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #ddd}
figure{margin:1em 0;overflow-x:auto} figure.map svg{max-width:860px;width:100%;height:auto} .cmd{font-size:.85em;color:#555;word-break:break-all} table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{text-align:left;padding:.35em .5em;border-bottom:1px solid #eee;vertical-align:top}
tr.bad td{background:#ffebee} .dot{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:.4em}
.verdict{padding:.8em 1em;border-radius:6px;font-weight:600} .good{background:#e8f5e9;border:1px solid #2e7d32}
.bad{background:#ffebee;border:1px solid #c62828} .policy{color:#455a64}
pre{background:#263238;color:#eceff1;padding:1em;overflow-x:auto;border-radius:6px;font-size:.85em}
.legend span{margin-right:1.2em;white-space:nowrap}
</style></head><body>
<h1>onedoor lab: one open door is enough</h1>
<p>Real network namespaces on this machine: a <b>house</b> (the client) whose only way out is a <b>router</b> with a real
nftables firewall, and the <b>internet</b> (the server). The house knocks on each door; then <code>onedoor serve</code> opens on
door 443 and everything is reached through that one door.</p>
<p class="legend"><span><span class="dot" style="background:#2e7d32"></span>reached</span><span><span class="dot" style="background:#8e1b1b"></span>dropped</span><span><span class="dot" style="background:#d32f2f"></span>refused</span><span><span class="dot" style="background:#ef6c00"></span>intercepted</span><span><span class="dot" style="background:#9e9e9e"></span>not tried</span></p>
"#,
    );
    let _ = writeln!(
        out,
        r#"<p class="verdict {}">{}</p>"#,
        if report.ok { "good" } else { "bad" },
        if report.ok {
            format!(
                "The story held under {} polic{}: whatever the router blocked, one open door was enough.",
                report.runs.len(),
                if report.runs.len() == 1 { "y" } else { "ies" }
            )
        } else {
            "The story did not hold everywhere: see below.".to_owned()
        }
    );
    for run in &report.runs {
        run_section(&mut out, run);
    }
    out.push_str("<p><small>Made by <code>onedoor lab</code>. This page is self-contained: no scripts, no network.</small></p>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{verdict, Attempt, Refusal};
    use crate::plan::addr::{AddressPlan, Instance};
    use crate::plan::ruleset::Ruleset;
    use crate::policy::{Expect, Policy};

    fn run(policy: Policy) -> Run {
        let plan = AddressPlan::new(Instance(0));
        let a = |id: &str, service: &str, door, path, expected| Attempt {
            id: id.into(),
            title: format!("the {service} <{id}>"),
            service: service.into(),
            door: Some(door),
            path,
            expected,
        };
        let steps = vec![
            a(
                "library-door-22",
                "library",
                Door::Tcp(22),
                Path::Direct,
                Expect::Refused,
            )
            .observed(
                Observed::Refused {
                    how: Refusal::TcpReset,
                },
                1,
            ),
            a(
                "website-door-80",
                "website",
                Door::Tcp(80),
                Path::Direct,
                Expect::Intercepted,
            )
            .observed(
                Observed::Intercepted {
                    by: "a \"portal\" & co".into(),
                },
                2,
            ),
            a(
                "library-door-443",
                "library",
                Door::Tcp(443),
                Path::ThroughDoor443,
                Expect::Open,
            )
            .observed(
                Observed::Reached {
                    answer: "WELCOME".into(),
                },
                3,
            ),
        ];
        Run {
            policy,
            policy_words: policy.describe().into(),
            ruleset: Ruleset::for_policy(policy, &plan).to_string(),
            plan,
            map: None,
            serve_args: vec!["serve".into()],
            tunnel: None,
            verdict: Some(verdict(policy, &steps)),
            steps,
            build_ms: 10,
            teardown_ms: Some(5),
            total_ms: 100,
            stopped: None,
        }
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let html = render_html(&LabReport::new(vec![run(Policy::Intercept)]));
        assert!(html.starts_with("<!doctype html>"));
        assert!(!html.contains("<script"), "no scripts");
        assert!(
            !html.contains("http://")
                || html.matches("http://").count()
                    == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
            "no links out (only the SVG namespace)"
        );
        assert!(!html.contains("https://"));
        assert!(!html.contains("src="), "nothing loaded");
        assert!(html.contains("&lt;library-door-22&gt;"));
        assert!(html.contains("a &quot;portal&quot; &amp; co"));
        assert!(html.contains("<svg"));
        assert!(html.contains("the router's portal"));
        assert!(html.contains("table ip onedoor-lab"));
    }

    #[test]
    fn the_map_is_drawn_with_the_probes_own_picture() {
        use crate::map::{sample::ideal, DoorMap, MapPlan};
        let mut r = run(Policy::Intercept);
        r.map = Some(DoorMap::judged(
            Policy::Intercept,
            MapPlan::story(),
            vec!["serve".into()],
            vec!["probe".into(), "198.19.0.2".into()],
            ideal(Policy::Intercept),
            900,
        ));
        let html = render_html(&LabReport::new(vec![r.clone()]));
        assert!(html.contains("First, the map of the doors"));
        assert!(html.contains(
            "Door 443 is open; door 80 is intercepted; 98 others are dropped; \
             UDP 53, 123, 443 and 1194: no reply (as policy intercept says)."
        ));
        let picture = onedoor_proto::report::html::house_svg(
            &onedoor_proto::report::json::from_json(
                r.map.as_ref().unwrap().probe.as_ref().unwrap(),
            )
            .unwrap(),
        );
        assert!(html.contains(&picture), "the probe's own house, embedded");
        assert!(html.contains("intercepted (1 TCP, 0 UDP)"));
        assert!(html.contains("<code>onedoor probe 198.19.0.2</code>"));
        assert!(!html.contains("<script") && !html.contains("src="));
        let json: serde_json::Value =
            serde_json::from_str(&LabReport::new(vec![r]).to_json()).unwrap();
        let map = &json["runs"][0]["map"];
        assert_eq!(map["ok"], true);
        assert_eq!(map["probe"]["tcp"]["open"]["ports"], "443");
        assert_eq!(map["probe"]["tcp"]["intercepted"]["ports"], "80");
        assert_eq!(map["plan"]["tcp"], "top100");
    }

    #[test]
    fn the_tunnel_shows_its_way() {
        use crate::outcome::{Throughput, TunnelChapter};
        let mut r = run(Policy::ProxyOnly);
        r.steps.push(
            Attempt {
                id: "library-tunnel-443".into(),
                title: "the library on door 22, through the tunnel on door 443".into(),
                service: "library".into(),
                door: Some(Door::Tcp(443)),
                path: Path::ThroughTunnel,
                expected: Expect::Open,
            }
            .observed(
                Observed::Reached {
                    answer: "WELCOME".into(),
                },
                4,
            ),
        );
        r.tunnel = Some(TunnelChapter {
            connect_args: vec![
                "connect".into(),
                "onedoor://TOKEN@198.19.0.2:443".into(),
                "--proxy".into(),
                "http://198.18.0.1:3128".into(),
            ],
            throughput: Some(Throughput {
                bytes: 1 << 20,
                ms: 10,
                mb_per_s: 104.9,
            }),
            not_tried: None,
            transport: "tls".into(),
            proxy: Some("http://198.18.0.1:3128".into()),
            map_fed: false,
            way: Some("through the router's HTTP proxy to door 443".into()),
            auto_said: Vec::new(),
        });
        let html = render_html(&LabReport::new(vec![r.clone()]));
        assert!(html.contains(
            r#"<p class="way">The way: through the router&#39;s HTTP proxy to door 443.</p>"#
        ));
        assert!(html.contains("<td>through the proxy and the tunnel on door 443</td>"));
        assert!(html.contains("--proxy http://198.18.0.1:3128"));
        assert!(html.contains("Throughput through the firewall"));
        let json: serde_json::Value =
            serde_json::from_str(&LabReport::new(vec![r]).to_json()).unwrap();
        let t = &json["runs"][0]["tunnel"];
        assert_eq!(t["proxy"], "http://198.18.0.1:3128");
        assert_eq!(t["transport"], "tls");
        assert_eq!(t["map_fed"], false);
        assert_eq!(t["way"], "through the router's HTTP proxy to door 443");
        assert_eq!(t["auto_said"], serde_json::json!([]));
    }

    #[test]
    fn json_reports_ok_only_when_every_verdict_holds() {
        let good = LabReport::new(vec![run(Policy::Intercept)]);
        assert!(good.ok);
        let json: serde_json::Value = serde_json::from_str(&good.to_json()).unwrap();
        assert_eq!(json["ok"], true);
        assert_eq!(json["runs"][0]["policy"], "intercept");
        assert_eq!(
            json["runs"][0]["steps"][0]["observed"]["outcome"],
            "refused"
        );
        assert_eq!(json["runs"][0]["steps"][0]["observed"]["how"], "tcp-reset");
        assert_eq!(json["runs"][0]["plan"]["house_ns"], "onedoor-house");
        let mut stopped = run(Policy::Web);
        stopped.stopped = Some("interrupted".into());
        assert!(!LabReport::new(vec![stopped]).ok);
        assert!(!LabReport::new(vec![]).ok);
    }
}
