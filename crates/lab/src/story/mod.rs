//! The story: build a lab for a policy, knock on the doors from the house,
//! start `onedoor serve` on door 443, reach everything through it, give the
//! verdict, take it all down.
//!
//! [`run_story`] runs one story per policy, one after the other. It races
//! every run against a `stop` future (the binary passes Ctrl-C, SIGTERM and
//! SIGHUP): when `stop` wins, the run is dropped where it stands, and the
//! drop takes down serve, the services and the lab. Steps and times are
//! recorded as they happen, so an interrupted run still reports what it
//! saw.

mod checks;
mod map;
pub mod narrate;
pub mod serve;
mod tunnel;

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::lab::{Lab, LabConfig};
use crate::map::MapPlan;
use crate::outcome::{verdict, Attempt, Observed, Path, Run, Step};
use crate::plan::addr::{ports, AddressPlan, Instance};
use crate::policy::{Door, Expect, Policy};
use crate::services::sshd::{OpenSsh, RealSshd};
use crate::services::{LibraryPlace, Services};
use narrate::Narrator;
use serve::{serve_args, story_setup, ServeProcess};

/// How to tell the story.
#[derive(Debug, Clone)]
pub struct StoryOptions {
    /// The policies, in order (one run each).
    pub policies: Vec<Policy>,
    /// A fixed instance, or the lowest free one.
    pub instance: Option<Instance>,
    /// The `onedoor` binary whose `serve` guards door 443.
    pub exe: PathBuf,
    /// Put the machine's real sshd behind door 22 and log in with `ssh`.
    pub real_ssh: bool,
    /// Leave the (last) lab up until `stop`.
    pub keep: bool,
    /// Build the lab and keep it, with nothing running inside (no
    /// services, no serve, no story): for benchmarks and experiments.
    /// Implies `keep`.
    pub bare: bool,
    /// The first chapter's map: [`MapPlan::story`] (top100 and four UDP
    /// doors) or [`MapPlan::full`] (`--full-map`).
    pub map: MapPlan,
}

/// How a story ended early.
#[derive(Debug, thiserror::Error)]
pub enum StoryError {
    /// The lab could not be built or run.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A signal stopped it (the name of the signal).
    #[error("interrupted by {0}; everything the lab made was removed")]
    Interrupted(String),
}

/// The live parts of a lab run. Fields drop in order: serve, sshd and the
/// services before the lab itself.
struct Held {
    connect: Option<tunnel::Client>,
    serve: Option<ServeProcess>,
    tunnel: Option<tunnel::Identity>,
    sshd: Option<RealSshd>,
    services: Option<Services>,
    lab: Lab,
}

impl Held {
    async fn teardown(mut self) -> Result<Duration, LabError> {
        let started = Instant::now();
        if let Some(mut c) = self.connect.take() {
            c.stop();
        }
        if let Some(mut s) = self.serve.take() {
            s.stop();
        }
        drop(self.tunnel.take());
        drop(self.sshd.take());
        if let Some(s) = self.services.take() {
            s.stop().await;
        }
        self.lab.teardown()?;
        Ok(started.elapsed())
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Tell the story once per policy. Returns every run (also the one a
/// signal or an error cut short) and how the story ended.
pub async fn run_story(
    opts: &StoryOptions,
    narrator: &mut Narrator,
    stop: impl Future<Output = String>,
) -> (Vec<Run>, Result<(), StoryError>) {
    let mut stop = pin!(stop);
    let mut runs = Vec::new();
    for (i, &policy) in opts.policies.iter().enumerate() {
        let last = i + 1 == opts.policies.len();
        let started = Instant::now();
        let mut run = Run {
            policy,
            policy_words: policy.describe().to_owned(),
            plan: AddressPlan::new(opts.instance.unwrap_or(Instance(0))),
            ruleset: String::new(),
            map: None,
            serve_args: Vec::new(),
            steps: Vec::new(),
            tunnel: None,
            verdict: None,
            build_ms: 0,
            teardown_ms: None,
            total_ms: 0,
            stopped: None,
        };
        if i > 0 {
            narrator.say("");
        }
        narrator.say(format!(
            "onedoor lab · policy {policy}: {}.",
            policy.describe()
        ));
        let outcome = {
            let story = pin!(tell(policy, opts, narrator, &mut run));
            tokio::select! {
                r = story => r.map_err(StoryError::Lab),
                signal = &mut stop => Err(StoryError::Interrupted(signal)),
            }
            // The story future is dropped here: if the signal won, this
            // takes down serve, the services and the lab.
        };
        let held = match outcome {
            Ok(held) => held,
            Err(e) => {
                run.stopped = Some(e.to_string());
                run.total_ms = ms(started.elapsed());
                narrator.say(format!("  Stopped: {e}."));
                runs.push(run);
                return (runs, Err(e));
            }
        };
        if (opts.keep || opts.bare) && last {
            // Not an error: --keep ends with the signal that ends the wait.
            tell_how_to_step_in(narrator, &held, opts.bare);
            let signal = stop.as_mut().await;
            narrator.say(format!("  {signal}: taking the lab down."));
        }
        match held.teardown().await {
            Ok(d) => {
                run.teardown_ms = Some(ms(d));
                run.total_ms = ms(started.elapsed());
                narrator.say(format!(
                    "  Cleaned up in {}: no namespace, link or rule is left. Whole story: {}.",
                    secs(d),
                    secs(started.elapsed())
                ));
            }
            Err(e) => {
                run.stopped = Some(e.to_string());
                run.total_ms = ms(started.elapsed());
                narrator.say(format!(
                    "  Cleanup failed: {e}. `onedoor lab --clean` removes what is left."
                ));
                runs.push(run);
                return (runs, Err(StoryError::Lab(e)));
            }
        }
        runs.push(run);
    }
    (runs, Ok(()))
}

fn tell_how_to_step_in(n: &mut Narrator, held: &Held, bare: bool) {
    let p = held.lab.plan();
    n.say("");
    n.say("  The lab stays up until you press Ctrl-C (or send SIGTERM). From another terminal, step inside:");
    n.detail(format!(
        "sudo ip netns exec {} bash            # you are in the house",
        p.house_ns
    ));
    if bare {
        n.detail(format!(
            "sudo ip netns exec {} bash         # you are the server {}",
            p.internet_ns, p.internet
        ));
        n.detail(format!(
            "sudo ip netns exec {} nft list ruleset   # the router's firewall",
            p.router_ns
        ));
        return;
    }
    n.detail(format!(
        "printf 'HELLO library\\nBOOK 1\\nBYE\\n' | nc -w 3 {} 22     # door 22: blocked",
        p.internet
    ));
    if held.lab.policy().uses_proxy() {
        n.detail(format!(
            "curl -s -p -x http://{} http://{}:443/    # the website, through the proxy and door 443",
            p.proxy(),
            p.internet
        ));
    } else {
        n.detail(format!(
            "printf 'HELLO library\\nBOOK 1\\nBYE\\n' | nc -w 3 {} 443    # the library through door 443",
            p.internet
        ));
        n.detail(format!("curl -s http://{}:443/                            # the website, also through door 443", p.internet));
    }
    n.detail(format!(
        "sudo ip netns exec {} nft list ruleset   # the router's firewall",
        p.router_ns
    ));
}

/// Knock on `door` straight from the house.
async fn direct(lab: &Lab, attempt: Attempt) -> Step {
    let started = Instant::now();
    let plan = lab.plan();
    let observed = match attempt.door {
        Some(Door::Udp(port)) => checks::crosswords(lab, plan.internet_door(port)).await,
        Some(Door::Tcp(port)) => match checks::connect(lab, plan.internet_door(port)).await {
            Err(e) => e.observed(),
            Ok(stream) if attempt.service == "website" => {
                checks::website_visit(stream, &plan.internet.to_string()).await
            }
            Ok(stream) => checks::library_visit(stream).await,
        },
        None => Observed::Failed {
            error: "no door".into(),
        },
    };
    attempt.observed(observed, ms(started.elapsed()))
}

/// Reach `service` through door 443, straight or through the proxy.
async fn through_443(lab: &Lab, attempt: Attempt, port: u16) -> Step {
    let started = Instant::now();
    let plan = lab.plan();
    let target = plan.internet_door(port);
    let stream = if attempt.path == Path::ThroughProxy {
        checks::via_proxy(lab, plan.proxy(), target).await
    } else {
        checks::connect(lab, target).await
    };
    let observed = match stream {
        Err(e) => e.observed(),
        Ok(s) if attempt.service == "website" => {
            checks::website_visit(s, &plan.internet.to_string()).await
        }
        Ok(s) => checks::library_visit(s).await,
    };
    attempt.observed(observed, ms(started.elapsed()))
}

fn attempt(
    id: &str,
    title: String,
    service: &str,
    door: Door,
    path: Path,
    expected: Expect,
) -> Attempt {
    Attempt {
        id: id.to_owned(),
        title,
        service: service.to_owned(),
        door: Some(door),
        path,
        expected,
    }
}

/// One run, up to the verdict. Returns the live lab for teardown (or
/// `--keep`); dropping this future instead takes everything down.
async fn tell(
    policy: Policy,
    opts: &StoryOptions,
    n: &mut Narrator,
    run: &mut Run,
) -> Result<Held, LabError> {
    n.begin("Building the house, the router and the internet");
    let lab = Lab::build(LabConfig {
        policy,
        instance: opts.instance,
    })?;
    let plan = lab.plan().clone();
    run.plan = plan.clone();
    run.ruleset = lab.ruleset().to_string();
    run.build_ms = ms(lab.build_time());
    n.end(format!("done in {}", secs(lab.build_time())));
    n.detail(format!(
        "house {} ── router {} | {} ── internet {}   (namespaces {}, {}, {})",
        plan.house,
        plan.router_lan,
        plan.router_wan,
        plan.internet,
        plan.house_ns,
        plan.router_ns,
        plan.internet_ns
    ));
    n.detail(format!(
        "the router's firewall: {} rule{} in table ip {}",
        lab.ruleset().rule_count(),
        if lab.ruleset().rule_count() == 1 {
            ""
        } else {
            "s"
        },
        lab.ruleset().table
    ));
    if !lab.cleaned_leftovers().is_empty() {
        n.detail(format!(
            "(first removed what a killed run had left: {})",
            lab.cleaned_leftovers().join(", ")
        ));
    }
    let held = Held {
        connect: None,
        serve: None,
        tunnel: None,
        sshd: None,
        services: None,
        lab,
    };
    if opts.bare {
        n.detail("--bare: nothing runs inside: no services, no serve, no story");
        return Ok(held);
    }
    let mut held = held;

    // --real-ssh: is OpenSSH here?
    let openssh = if opts.real_ssh { OpenSsh::find() } else { None };
    if opts.real_ssh && openssh.is_none() {
        n.detail("--real-ssh: OpenSSH (sshd, ssh, ssh-keygen) is not installed here, so the ssh steps are skipped");
    }
    let place = if openssh.is_some() {
        LibraryPlace::BehindSshd
    } else {
        LibraryPlace::Door22
    };

    // The router's own services first: the portal answers door 80 also
    // for the map.
    let mut services = Services::router(&held.lab)
        .await
        .map_err(|e| LabError::Sys {
            what: "opening the router's services".into(),
            source: e,
        })?;
    if policy.has_portal() {
        n.detail(format!(
            "on the router, the captive portal ({}) answers door 80",
            plan.portal()
        ));
    }
    if policy.uses_proxy() {
        n.detail(format!("on the router, the HTTP proxy ({})", plan.proxy()));
    }

    // 0. The map of the doors, made with the server's identity.
    let (map, mut identity) = map::chapter(&held.lab, &opts.exe, opts.map.clone(), n).await;
    run.map = Some(map);

    let mut opening = String::from("Opening the services on the internet: ");
    opening.push_str(match place {
        LibraryPlace::Door22 => "the library (door 22)",
        LibraryPlace::BehindSshd => "a real sshd (door 22), the library (inside only)",
    });
    opening.push_str(", the crosswords (UDP door 1194), the website (door 80)");
    n.begin(opening);
    services
        .open_internet(&held.lab, place)
        .await
        .map_err(|e| LabError::Sys {
            what: "opening the services".into(),
            source: e,
        })?;
    held.services = Some(services);
    if let Some(ssh) = &openssh {
        match RealSshd::start(&held.lab, ssh) {
            Ok(s) => held.sshd = Some(s),
            Err(e) => {
                n.end("failed");
                return Err(LabError::Sys {
                    what: "starting the real sshd".into(),
                    source: e,
                });
            }
        }
    }
    n.end("open");

    // 1. Straight through the router.
    n.section("From the house, straight through the router (all at once):");
    let lab = &held.lab;
    let door22 = policy.expect(Door::Tcp(ports::LIBRARY));
    let d22 = async {
        match (&openssh, &held.sshd) {
            // door 22 is the real sshd: judge it by a real login.
            (Some(ssh), Some(sshd)) => {
                let greeting = "hello-from-the-internet";
                let args = sshd.login_args(plan.internet, ports::LIBRARY, greeting, None);
                let started = Instant::now();
                let observed = checks::ssh_login(lab, &ssh.ssh, &args, greeting).await;
                attempt(
                    "ssh-door-22",
                    "ssh on door 22 (the real sshd)".into(),
                    "ssh",
                    Door::Tcp(ports::LIBRARY),
                    Path::Direct,
                    door22,
                )
                .observed(observed, ms(started.elapsed()))
            }
            _ => {
                let a = attempt(
                    "library-door-22",
                    "the library on door 22".into(),
                    "library",
                    Door::Tcp(ports::LIBRARY),
                    Path::Direct,
                    door22,
                );
                direct(lab, a).await
            }
        }
    };
    let d1194 = direct(
        lab,
        attempt(
            "crosswords-door-1194",
            "the crosswords on UDP door 1194".into(),
            "crosswords",
            Door::Udp(ports::CROSSWORDS),
            Path::Direct,
            policy.expect(Door::Udp(ports::CROSSWORDS)),
        ),
    );
    let d80 = direct(
        lab,
        attempt(
            "website-door-80",
            "the website on door 80".into(),
            "website",
            Door::Tcp(ports::WEBSITE),
            Path::Direct,
            policy.expect(Door::Tcp(ports::WEBSITE)),
        ),
    );
    let (s22, s1194, s80) = tokio::join!(d22, d1194, d80);
    let direct_steps = [s22, s1194, s80];
    for s in direct_steps {
        n.step(&s);
        run.steps.push(s);
    }
    if policy.has_portal() {
        n.detail(format!(
            "(door 80 went to the router's portal on {}: the router answers in the website's name)",
            plan.portal()
        ));
    }

    // 2. The one door, which also carries the tunnel.
    let mut setup = story_setup(plan.internet, held.sshd.is_some());
    n.section("Starting onedoor serve on door 443 of the internet, with the tunnel:");
    let made = match identity.take() {
        Some(id) => {
            n.detail(format!(
                "the tunnel pins the server key the map was made with: {}",
                id.fingerprint()
            ));
            Ok(id)
        }
        None => tunnel::identity(&held.lab, &opts.exe, map::SERVER_DIR, n).await,
    };
    match made {
        Ok(id) => {
            setup.tunnel = Some(id.dir.0.clone());
            held.tunnel = Some(id);
        }
        Err(e) => n.say(format!(
            "    ✗ the tunnel's identity: {e}; serve runs without the tunnel"
        )),
    }
    run.serve_args = serve_args(&setup);
    n.begin(format!("$ onedoor {}", run.serve_args.join(" ")));
    let started = Instant::now();
    let serve_step = attempt(
        "serve-listens",
        "onedoor serve on door 443".into(),
        "onedoor serve",
        Door::Tcp(ports::SERVE),
        Path::Local,
        Expect::Open,
    );
    match ServeProcess::start(&held.lab, &opts.exe, &setup) {
        Ok(p) => {
            n.end(format!("listening after {}", secs(p.startup)));
            let answer = format!("listening on {} after {}", setup.listen, secs(p.startup));
            run.steps
                .push(serve_step.observed(Observed::Reached { answer }, ms(started.elapsed())));
            held.serve = Some(p);
        }
        Err(e) => {
            n.end("failed");
            let step = serve_step.observed(Observed::Failed { error: e }, ms(started.elapsed()));
            n.step(&step);
            run.steps.push(step);
            finish(policy, n, run);
            return Ok(held);
        }
    }

    // 3. Everything through door 443.
    let lab = &held.lab;
    let path = if policy.uses_proxy() {
        n.section(format!(
            "From the house, through the router's HTTP proxy on {} (the only way out):",
            plan.proxy()
        ));
        Path::ThroughProxy
    } else {
        n.section("From the house, through door 443:");
        Path::ThroughDoor443
    };
    let mut steps = Vec::new();
    if policy.uses_proxy() {
        let started = Instant::now();
        let observed =
            match checks::via_proxy(lab, plan.proxy(), plan.internet_door(ports::LIBRARY)).await {
                Ok(s) => checks::library_visit(s).await,
                Err(e) => e.observed(),
            };
        steps.push(
            attempt(
                "proxy-door-22",
                "asking the proxy for door 22".into(),
                "library",
                Door::Tcp(ports::LIBRARY),
                Path::ThroughProxy,
                Expect::Refused,
            )
            .observed(observed, ms(started.elapsed())),
        );
    }
    let via = if policy.uses_proxy() {
        "through the proxy to door 443"
    } else {
        "through door 443"
    };
    steps.push(
        through_443(
            lab,
            attempt(
                "library-door-443",
                format!("the library {via}"),
                "library",
                Door::Tcp(ports::SERVE),
                path,
                Expect::Open,
            ),
            ports::SERVE,
        )
        .await,
    );
    steps.push(
        through_443(
            lab,
            attempt(
                "website-door-443",
                format!("the website {via}"),
                "website",
                Door::Tcp(ports::SERVE),
                path,
                Expect::Open,
            ),
            ports::SERVE,
        )
        .await,
    );
    if let (Some(ssh), Some(sshd)) = (&openssh, &held.sshd) {
        let a = attempt(
            "ssh-door-443",
            format!("ssh {via}"),
            "ssh",
            Door::Tcp(ports::SERVE),
            path,
            Expect::Open,
        );
        let started = Instant::now();
        let greeting = "hello-through-door-443";
        // When the router's proxy is the only way out, ssh takes it the way
        // its users do: with a ProxyCommand.
        let via = policy.uses_proxy().then(|| ssh.proxy_command(plan.proxy()));
        let observed = match via {
            Some(None) => Observed::Skipped {
                reason: "ssh through an HTTP proxy needs a ProxyCommand, and socat, which would be it, is not installed".into(),
            },
            via => {
                let args = sshd.login_args(plan.internet, ports::SERVE, greeting, via.flatten());
                checks::ssh_login(lab, &ssh.ssh, &args, greeting).await
            }
        };
        steps.push(a.observed(observed, ms(started.elapsed())));
    }
    for s in steps {
        n.step(&s);
        run.steps.push(s);
    }

    // 4. The tunnel: onedoor connect in the house, everything through it,
    // the policy's way (straight, through the proxy, or as auto chooses).
    if let Some(id) = &held.tunnel {
        let route = tunnel_route(policy, &plan, run.map.as_ref());
        let mut chapter = crate::outcome::TunnelChapter {
            connect_args: tunnel::connect_args(
                id.shown_key(),
                &route,
                plan.instance,
                setup.library,
            ),
            throughput: None,
            not_tried: None,
            transport: route.transport().to_owned(),
            proxy: route.proxy_url(),
            map_fed: route.map.is_some(),
            way: None,
            auto_said: Vec::new(),
        };
        n.section(format!(
            "Through the tunnel: onedoor connect in the house, {}:",
            route.words()
        ));
        n.detail(format!("$ onedoor {}", chapter.connect_args.join(" ")));
        let told = tunnel::chapter(&held.lab, &opts.exe, id, &route, setup.library).await;
        held.connect = told.client;
        chapter.throughput = told.throughput;
        chapter.way = told.way;
        chapter.auto_said = told.auto_said;
        for (i, s) in told.steps.into_iter().enumerate() {
            n.step(&s);
            if let (0, true, Some(m)) = (i, s.ok, &route.map) {
                n.detail(format!("({})", tunnel::map_context(m)));
            }
            run.steps.push(s);
        }
        if let Some(mut c) = held.connect.take() {
            c.stop();
        }
        run.tunnel = Some(chapter);
    }
    finish(policy, n, run);
    Ok(held)
}

/// How the tunnel goes to door 443 under `policy`: through the router's
/// proxy when it is the only way out; the way `--transport auto` chooses
/// (fed the map, when it was made) past the intercepting router; else TLS
/// straight to the door.
fn tunnel_route(
    policy: Policy,
    plan: &AddressPlan,
    map: Option<&crate::map::DoorMap>,
) -> tunnel::Route {
    if policy.uses_proxy() {
        tunnel::Route {
            proxy: Some(plan.proxy()),
            ..tunnel::Route::default()
        }
    } else if policy.has_portal() {
        tunnel::Route {
            auto: true,
            map: map.filter(|m| m.ok).and_then(|m| m.probe.clone()),
            ..tunnel::Route::default()
        }
    } else {
        tunnel::Route::default()
    }
}

fn finish(policy: Policy, n: &mut Narrator, run: &mut Run) {
    let mut v = verdict(policy, &run.steps);
    match &run.map {
        Some(m) if !m.ok => {
            v = crate::outcome::Verdict {
                holds: false,
                text: match &m.error {
                    Some(e) => format!(
                        "The story did not hold under policy {policy}: the probe's map \
                         could not be made: {e}."
                    ),
                    None => format!(
                        "The story did not hold under policy {policy}: the probe's map was {}.",
                        m.judgement(policy)
                    ),
                },
            };
        }
        Some(m) if v.holds => {
            v.text
                .push_str(&format!(" The probe's map had said so first: {}.", m.words));
        }
        _ => {}
    }
    n.say("");
    n.say(format!(
        "  Verdict{}: {}",
        if v.holds { "" } else { " (FAILED)" },
        v.text
    ));
    run.verdict = Some(v);
}
