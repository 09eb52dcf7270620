//! End-to-end tests of `onedoor init` and `onedoor client …` (SPEC §4):
//! the real binary in temporary state directories. The access key is the
//! only thing on stdout; its fingerprint is the one OpenSSL computes from
//! the certificate (skipped without `openssl`, unless
//! `ONEDOOR_E2E=require`); no token is ever stored; usage errors exit 2.

// util's `args!` macro serves the other test binaries.
#[allow(unused_imports)]
mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use onedoor_proto::tunnel::AccessKey;
use util::{need, onedoor, run_bounded, which, Run, TempDir};

const BOUND: Duration = Duration::from_secs(30);

/// Run `onedoor ARGS...` to completion.
fn od(args: &[&str]) -> Run {
    run_bounded(onedoor().args(args).env("RUST_LOG", "warn"), BOUND)
}

/// A temporary directory and, inside it, the path of a state directory
/// that does not exist yet.
fn scratch() -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let state = tmp.path().join("state");
    (tmp, state)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The run succeeded and printed exactly one line on stdout: an access key.
fn one_key(r: &Run) -> AccessKey {
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must be the key alone: {:?}",
        r.stdout
    );
    assert_eq!(
        r.stdout,
        format!("{}\n", lines[0]),
        "nothing else on stdout"
    );
    lines[0]
        .parse()
        .unwrap_or_else(|e| panic!("{:?} is not an access key: {e}", lines[0]))
}

/// Exit 2, nothing on stdout, and stderr mentions each of `words`.
fn usage_error(r: &Run, words: &[&str]) {
    assert_eq!(
        r.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.is_empty(), "stdout: {}", r.stdout);
    for w in words {
        assert!(r.stderr.contains(w), "stderr lacks {w:?}: {}", r.stderr);
    }
}

fn init(state: &Path, extra: &[&str]) -> (Run, AccessKey) {
    let mut args = vec!["init", "--state-dir", s(state)];
    args.extend_from_slice(extra);
    let r = od(&args);
    let key = one_key(&r);
    (r, key)
}

/// `client list --json`: name → allow patterns.
fn list(state: &Path) -> BTreeMap<String, Vec<String>> {
    let r = od(&["client", "list", "--json", "--state-dir", s(state)]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    doc["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(c["created"].as_str().unwrap().ends_with('Z'), "{c}");
            let allow = c["allow"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect();
            (c["name"].as_str().unwrap().to_owned(), allow)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// No file of the state directory holds the token, in any spelling.
fn assert_no_token_stored(state: &Path, key: &AccessKey) {
    let text = key.token.encode().into_exposed();
    let raw = key.token.expose_bytes();
    for entry in fs::read_dir(state).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        let content = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(
            !content.contains(&text.to_lowercase()),
            "{}",
            path.display()
        );
        assert!(!content.contains(&hex(raw)), "{}", path.display());
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw),
            "{}",
            path.display()
        );
    }
}

/// SHA-256 (hex) of the DER public key that OpenSSL reads from `what`.
fn openssl_spki_sha256(pipeline_head: &str) -> String {
    let script =
        format!("set -o pipefail; {pipeline_head} | openssl pkey -pubin -outform DER | sha256sum");
    let r = run_bounded(Command::new("bash").args(["-c", &script]), BOUND);
    assert_eq!(r.code(), Some(0), "{script}: {}", r.stderr);
    r.stdout.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn init_prints_the_key_alone_and_openssl_agrees_on_the_fingerprint() {
    let (_tmp, state) = scratch();
    let (r, key) = init(&state, &["--name", "door.example", "--port", "8443"]);
    assert_eq!(key.server.to_string(), "door.example:8443");
    let fp = key.fingerprint.expect("init's key pins the fingerprint");
    for w in [
        &fp.to_string()[..],
        "first",
        "EVERYTHING",
        "onedoor serve --tunnel",
        "onedoor connect",
        "-W",
        "stdout",
    ] {
        assert!(r.stderr.contains(w), "stderr lacks {w:?}: {}", r.stderr);
    }
    assert_eq!(
        list(&state),
        BTreeMap::from([("first".into(), vec!["*".into()])])
    );
    assert_no_token_stored(&state, &key);

    if need("init_fingerprint_openssl", which("openssl")).is_none() {
        return;
    }
    let crt = state.join("identity.crt");
    let from_cert = openssl_spki_sha256(&format!("openssl x509 -in '{}' -pubkey -noout", s(&crt)));
    assert_eq!(
        from_cert,
        hex(fp.digest()),
        "fingerprint vs the certificate"
    );
    let from_key = openssl_spki_sha256(&format!(
        "openssl pkey -in '{}' -pubout",
        s(&state.join("identity.key"))
    ));
    assert_eq!(from_key, hex(fp.digest()), "fingerprint vs the private key");
    let r = run_bounded(
        Command::new("openssl").args(["x509", "-in", s(&crt), "-noout", "-ext", "subjectAltName"]),
        BOUND,
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("DNS:door.example"), "{}", r.stdout);
    assert!(!r.stdout.contains(','), "one name only: {}", r.stdout);
    let r = run_bounded(
        Command::new("openssl").args(["verify", "-CAfile", s(&crt), s(&crt)]),
        BOUND,
    );
    assert_eq!(
        r.code(),
        Some(0),
        "self-signed by its key: {}{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn init_names_the_first_client_and_takes_ip_names() {
    let (_tmp, state) = scratch();
    let (r, key) = init(&state, &["--name", "[2001:db8::7]", "--client", "laptop"]);
    assert_eq!(key.server.to_string(), "[2001:db8::7]:443");
    assert!(r.stderr.contains("laptop"), "{}", r.stderr);
    assert_eq!(
        list(&state),
        BTreeMap::from([("laptop".into(), vec!["*".into()])])
    );
}

#[test]
fn init_defaults_to_the_hostname() {
    let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") else {
        return;
    };
    let host = host.trim().to_ascii_lowercase();
    let (_tmp, state) = scratch();
    let r = od(&["init", "--state-dir", s(&state)]);
    if r.code() == Some(2) {
        // A hostname that is no DNS name is refused, pointing at --name.
        usage_error(&r, &["--name"]);
        return;
    }
    let key = one_key(&r);
    assert_eq!(key.server.host, host);
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let (_tmp, state) = scratch();
    let (_, first) = init(&state, &["--name", "door.example"]);
    let r = od(&["client", "add", "alice", "--state-dir", s(&state)]);
    one_key(&r);
    let crt = fs::read(state.join("identity.crt")).unwrap();

    let r = od(&["init", "--state-dir", s(&state), "--name", "door.example"]);
    usage_error(&r, &["already", "--force"]);
    assert_eq!(fs::read(state.join("identity.crt")).unwrap(), crt);
    assert_eq!(list(&state).len(), 2);

    let (r, again) = init(&state, &["--name", "door.example", "--force"]);
    assert_ne!(again.fingerprint, first.fingerprint);
    assert!(r.stderr.contains("2 client"), "{}", r.stderr);
    assert_eq!(
        list(&state),
        BTreeMap::from([("first".into(), vec!["*".into()])])
    );
}

#[test]
fn client_add_list_allow_deny_remove() {
    let (_tmp, state) = scratch();
    let (_, first) = init(&state, &["--name", "door.example"]);
    let dir = s(&state);

    let r = od(&["client", "add", "alice", "--state-dir", dir]);
    let alice = one_key(&r);
    assert!(r.stderr.contains("NOTHING"), "{}", r.stderr);
    assert_eq!(alice.fingerprint, first.fingerprint);
    assert_eq!(alice.server, first.server);
    assert_ne!(alice.token, first.token);

    let r = od(&[
        "client",
        "add",
        "bob",
        "--allow",
        "10.0.0.0/8:22",
        "--allow",
        "udp/*:53",
        "--state-dir",
        dir,
    ]);
    let bob = one_key(&r);
    assert!(!r.stderr.contains("NOTHING"), "{}", r.stderr);
    assert_ne!(bob.token, alice.token);

    let v = |ps: &[&str]| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    assert_eq!(
        list(&state),
        BTreeMap::from([
            ("first".into(), v(&["*"])),
            ("alice".into(), v(&[])),
            ("bob".into(), v(&["10.0.0.0/8:22", "udp/*:53"])),
        ])
    );

    let r = od(&[
        "client",
        "allow",
        "alice",
        "*.corp.example:443",
        "[::1]:5432",
        "--state-dir",
        dir,
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let r = od(&[
        "client",
        "deny",
        "bob",
        "10.0.0.0/8:22",
        "*:443",
        "--state-dir",
        dir,
    ]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("did not have"), "{}", r.stderr);
    let r = od(&["client", "remove", "first", "--state-dir", dir]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(
        list(&state),
        BTreeMap::from([
            ("alice".into(), v(&["*.corp.example:443", "[::1]:5432"])),
            ("bob".into(), v(&["udp/*:53"])),
        ])
    );

    // The human listing (stderr) and the JSON show no token.
    let human = od(&["client", "list", "--state-dir", dir]);
    assert_eq!(human.code(), Some(0));
    assert!(human.stderr.contains("alice") && human.stderr.contains("udp/*:53"));
    let json = od(&["client", "list", "--json", "--state-dir", dir]);
    for key in [&first, &alice, &bob] {
        let t = key.token.encode().into_exposed();
        assert!(!human.stdout.contains(&t) && !human.stderr.contains(&t));
        assert!(!json.stdout.contains(&t));
        assert_no_token_stored(&state, key);
    }
}

#[test]
fn usage_errors_exit_2() {
    let (_tmp, state) = scratch();
    let dir = s(&state);

    // Before init: client commands say to run init.
    usage_error(
        &od(&["client", "add", "alice", "--state-dir", dir]),
        &["onedoor init"],
    );
    usage_error(
        &od(&["client", "list", "--state-dir", dir]),
        &["onedoor init"],
    );
    // Bad init flags create nothing.
    usage_error(
        &od(&["init", "--state-dir", dir, "--name", "door example"]),
        &["--name"],
    );
    usage_error(
        &od(&["init", "--state-dir", dir, "--name", "h", "--client", "a/b"]),
        &["--client"],
    );
    usage_error(
        &od(&["init", "--state-dir", dir, "--port", "0"]),
        &["--port"],
    );
    assert!(!state.exists());

    init(&state, &["--name", "door.example"]);
    usage_error(
        &od(&["client", "add", "first", "--state-dir", dir]),
        &["already exists"],
    );
    usage_error(
        &od(&["client", "add", "FIRST", "--state-dir", dir]),
        &["already exists"],
    );
    usage_error(
        &od(&["client", "add", "a b", "--state-dir", dir]),
        &["client name"],
    );
    usage_error(
        &od(&[
            "client",
            "add",
            "alice",
            "--allow",
            "10.0.0.0/8:22",
            "--allow",
            "10.0.0.1/8:22",
            "--state-dir",
            dir,
        ]),
        &["10.0.0.1/8:22", "host bits"],
    );
    usage_error(
        &od(&["client", "allow", "first", "db.lan:0", "--state-dir", dir]),
        &["db.lan:0", "ports"],
    );
    usage_error(
        &od(&["client", "allow", "first", "--state-dir", dir]),
        &["PATTERN"],
    );
    usage_error(
        &od(&["client", "allow", "nobody", "*:22", "--state-dir", dir]),
        &["no client named"],
    );
    usage_error(
        &od(&["client", "deny", "nobody", "*:22", "--state-dir", dir]),
        &["no client named"],
    );
    usage_error(
        &od(&["client", "remove", "nobody", "--state-dir", dir]),
        &["no client named"],
    );
    usage_error(&od(&["client", "frobnicate", "--state-dir", dir]), &[]);
    // A refused add left nothing behind.
    assert_eq!(list(&state).len(), 1);

    // A hand-damaged registry is refused with file:line.
    let clients = state.join("clients.toml");
    let text = fs::read_to_string(&clients).unwrap();
    let line = text.lines().position(|l| l.starts_with("allow")).unwrap() + 1;
    fs::write(
        &clients,
        text.replace("allow = [\"*\"]", "allow = [\"*\"]\ncolour = 1"),
    )
    .unwrap();
    usage_error(
        &od(&["client", "list", "--state-dir", dir]),
        &[
            &format!("clients.toml:{}:", line + 1),
            "unknown key `colour`",
        ],
    );
    usage_error(
        &od(&["client", "add", "bob", "--state-dir", dir]),
        &["clients.toml:"],
    );
}

#[test]
fn a_key_that_cannot_be_printed_is_not_kept() {
    let (_tmp, state) = scratch();
    init(&state, &["--name", "door.example"]);
    // stdout is a pipe whose reader is gone: writing the key fails (EPIPE).
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let out = onedoor()
        .args(["client", "add", "lost", "--state-dir", s(&state)])
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("removed again"), "{stderr}");
    assert_eq!(list(&state).keys().collect::<Vec<_>>(), ["first"]);
}
