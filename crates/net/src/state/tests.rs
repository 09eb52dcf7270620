//! Tests of the state directory as a whole: init, open, edits that persist,
//! authentication, permissions, and files damaged by hand.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use onedoor_proto::tunnel::{AccessKey, AllowList, AllowPattern};

use super::*;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn fresh() -> (tempfile::TempDir, StateDir, Identity) {
    let tmp = tempfile::tempdir().unwrap();
    let (state, id) =
        StateDir::init(tmp.path().join("state"), "door.example", 8443, false).unwrap();
    (tmp, state, id)
}

fn token(i: u32) -> Token {
    let mut b = [0x5a; 32];
    b[..4].copy_from_slice(&i.to_be_bytes());
    Token::from_bytes(b)
}

fn patterns(ps: &[&str]) -> Vec<AllowPattern> {
    ps.iter().map(|p| p.parse().unwrap()).collect()
}

#[test]
fn init_then_open() {
    let (_tmp, state, id) = fresh();
    let dir = state.path();
    assert_eq!(
        names_in(dir),
        [
            ".lock",
            CLIENTS_TOML,
            IDENTITY_CRT,
            IDENTITY_KEY,
            SERVER_TOML
        ]
    );
    assert_eq!(mode(dir), 0o700);
    assert_eq!(mode(&dir.join(IDENTITY_KEY)), 0o600);
    assert_eq!(mode(&dir.join(CLIENTS_TOML)), 0o600);
    assert_eq!(mode(&dir.join(".lock")), 0o600);
    assert_eq!(mode(&dir.join(IDENTITY_CRT)), 0o644);

    let opened = StateDir::open(dir).unwrap();
    assert_eq!(opened.server(), state.server());
    assert_eq!(opened.server().name, "door.example");
    assert_eq!(opened.server().port, 8443);
    let loaded = opened.identity().unwrap();
    assert_eq!(loaded.fingerprint(), id.fingerprint());
    assert_eq!(loaded.cert_der, id.cert_der);
    assert_eq!(loaded.signing_key.to_bytes(), id.signing_key.to_bytes());
    assert!(opened.registry().unwrap().is_empty());

    let key = opened.access_key(token(1), id.fingerprint());
    let text = key.encode().into_exposed();
    assert!(text.starts_with("onedoor://"), "{text}");
    assert!(text.contains("@door.example:8443?fp=SHA256:"), "{text}");
    assert_eq!(text.parse::<AccessKey>().unwrap(), key);
}

#[test]
fn open_without_init_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let e = StateDir::open(tmp.path()).unwrap_err();
    assert!(matches!(e, StateError::NotInitialised { .. }), "{e}");
    assert!(e.is_usage());
    assert!(e.to_string().contains("onedoor init"), "{e}");
}

#[test]
fn init_refuses_an_existing_identity_unless_forced() {
    let (_tmp, state, id) = fresh();
    state
        .edit_registry(|r| r.add("alice", AllowList::everything()))
        .unwrap();
    let e = StateDir::init(state.path(), "door.example", 443, false).unwrap_err();
    assert!(matches!(e, StateError::Exists { .. }), "{e}");
    assert!(e.is_usage());
    assert!(e.to_string().contains("--force"), "{e}");
    // Nothing changed.
    assert_eq!(state.identity().unwrap().fingerprint(), id.fingerprint());
    assert_eq!(state.registry().unwrap().len(), 1);

    let (again, id2) = StateDir::init(state.path(), "other.example", 443, true).unwrap();
    assert_ne!(id2.fingerprint(), id.fingerprint());
    assert_ne!(again.server().salt, state.server().salt);
    assert_eq!(again.server().name, "other.example");
    assert!(again.registry().unwrap().is_empty());
    let reopened = StateDir::open(state.path()).unwrap();
    assert_eq!(
        reopened.identity().unwrap().fingerprint(),
        id2.fingerprint()
    );
    assert_eq!(
        names_in(state.path()),
        [
            ".lock",
            CLIENTS_TOML,
            IDENTITY_CRT,
            IDENTITY_KEY,
            SERVER_TOML
        ]
    );
}

#[test]
fn init_refuses_bad_names_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let e = StateDir::init(&dir, "bad name", 443, false).unwrap_err();
    assert!(matches!(e, StateError::BadServerName { .. }), "{e}");
    assert!(!dir.exists());
    assert!(matches!(
        StateDir::init(&dir, "ok.example", 0, false),
        Err(StateError::BadPort)
    ));
}

#[test]
fn edits_persist() {
    let (_tmp, state, _) = fresh();
    let t_alice = state
        .edit_registry(|r| r.add("alice", AllowList::new()))
        .unwrap();
    let t_bob = state
        .edit_registry(|r| r.add("bob", AllowList::everything()))
        .unwrap();
    assert_ne!(t_alice, t_bob);

    let granted = state
        .edit_registry(|r| {
            r.allow(
                "alice",
                &patterns(&["10.0.0.0/8:22", "udp/*:53", "10.0.0.0/8:22"]),
            )
        })
        .unwrap();
    assert_eq!(granted, patterns(&["10.0.0.0/8:22", "udp/*:53"]));
    let again = state
        .edit_registry(|r| r.allow("alice", &patterns(&["udp/*:53"])))
        .unwrap();
    assert!(again.is_empty());

    let reg = StateDir::open(state.path()).unwrap().registry().unwrap();
    let alice = reg.get("alice").unwrap();
    assert_eq!(alice.allow.to_string(), "10.0.0.0/8:22 udp/*:53");
    assert_eq!(reg.authenticate(&t_alice).unwrap().name, "alice");
    assert_eq!(reg.authenticate(&t_bob).unwrap().name, "bob");

    let denied = state
        .edit_registry(|r| r.deny("alice", &patterns(&["10.0.0.0/8:22", "*:443"])))
        .unwrap();
    assert_eq!(denied, patterns(&["10.0.0.0/8:22"]));
    let reg = state.registry().unwrap();
    assert_eq!(reg.get("alice").unwrap().allow.to_string(), "udp/*:53");

    let removed = state.edit_registry(|r| r.remove("bob")).unwrap();
    assert_eq!(removed.name, "bob");
    let reg = state.registry().unwrap();
    assert_eq!(
        reg.list()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    assert!(reg.authenticate(&t_bob).is_none());

    // Refused edits write nothing.
    let before = state.clients_stamp().unwrap();
    for e in [
        state.edit_registry(|r| r.add("ALICE", AllowList::new()).map(drop)),
        state.edit_registry(|r| r.add("-x", AllowList::new()).map(drop)),
        state.edit_registry(|r| r.remove("carol").map(drop)),
        state.edit_registry(|r| r.allow("carol", &[]).map(drop)),
        state.edit_registry(|r| r.deny("carol", &[]).map(drop)),
    ] {
        let e = e.unwrap_err();
        assert!(e.is_usage(), "{e}");
    }
    assert_eq!(state.clients_stamp().unwrap(), before);
    assert_eq!(
        names_in(state.path()),
        [
            ".lock",
            CLIENTS_TOML,
            IDENTITY_CRT,
            IDENTITY_KEY,
            SERVER_TOML
        ]
    );
    assert_eq!(mode(&state.file(CLIENTS_TOML)), 0o600);
}

#[test]
fn stamps_tell_changes() {
    let (_tmp, state, _) = fresh();
    let loaded = state.registry().unwrap();
    assert_eq!(loaded.stamp(), state.clients_stamp().unwrap());
    assert!(loaded.stamp().is_some());
    state
        .edit_registry(|r| r.add("alice", AllowList::new()))
        .unwrap();
    assert_ne!(loaded.stamp(), state.clients_stamp().unwrap());
    let reloaded = state.registry().unwrap();
    assert_eq!(reloaded.stamp(), state.clients_stamp().unwrap());
    let mut copy = reloaded.clone();
    copy.save(&state).unwrap();
    assert_eq!(copy.stamp(), state.clients_stamp().unwrap());
    assert_ne!(copy.stamp(), reloaded.stamp());
}

#[test]
fn authenticate_finds_the_right_one_among_many() {
    let salt = TokenSalt::from_bytes([7; 32]);
    let mut reg = Registry::new(salt);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for i in 0..300 {
        reg.insert(&format!("c{i}"), AllowList::new(), &token(i), t0)
            .unwrap();
    }
    for i in [0, 1, 150, 298, 299] {
        assert_eq!(reg.authenticate(&token(i)).unwrap().name, format!("c{i}"));
    }
    assert!(reg.authenticate(&token(300)).is_none());
    assert!(reg.authenticate(&Token::from_bytes([0; 32])).is_none());
    // The same token under another salt is another hash.
    let other = Registry::parse(
        Path::new("x"),
        &reg.to_toml(),
        TokenSalt::from_bytes([8; 32]),
    )
    .unwrap();
    assert!(other.authenticate(&token(3)).is_none());
    assert!(Registry::new(salt).authenticate(&token(0)).is_none());
}

#[test]
fn registry_text_roundtrips() {
    let salt = TokenSalt::from_bytes([1; 32]);
    let mut reg = Registry::new(salt);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    reg.insert("first", AllowList::everything(), &token(1), t0)
        .unwrap();
    reg.insert(
        "lab.alice_2",
        AllowList::parse_each([
            "*.corp.example:443",
            "10.0.0.0/8:22,80-90",
            "[::1]:5432",
            "udp/*:53",
            "bind/127.0.0.1:8022",
        ])
        .unwrap(),
        &token(2),
        t0 + Duration::from_secs(60),
    )
    .unwrap();
    reg.insert("nothing", AllowList::new(), &token(3), t0)
        .unwrap();
    let text = reg.to_toml();
    let back = Registry::parse(Path::new("clients.toml"), &text, salt).unwrap();
    assert_eq!(back.list(), reg.list());
    assert_eq!(back.to_toml(), text);
    assert!(text.contains("allow = []"), "{text}");
    assert!(text.contains("created = 2023-11-14T22:13:20Z"), "{text}");
    for t in [token(1), token(2), token(3)] {
        assert!(!text.contains(t.encode().expose().as_str()));
    }
}

#[test]
fn no_plaintext_token_on_disk() {
    let (_tmp, state, _) = fresh();
    let t = state
        .edit_registry(|r| r.add("alice", AllowList::everything()))
        .unwrap();
    let text = t.encode().into_exposed();
    let hex: String = t
        .expose_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for name in names_in(state.path()) {
        let bytes = fs::read(state.path().join(&name)).unwrap();
        let content = String::from_utf8_lossy(&bytes);
        assert!(!content.contains(&text), "{name}");
        assert!(!content.contains(&hex), "{name}");
        assert!(!bytes.windows(32).any(|w| w == t.expose_bytes()), "{name}");
    }
}

/// Every damaged file is refused with `file:line` and what is wrong.
#[test]
fn damaged_toml_names_file_and_line() {
    let (_tmp, state, _) = fresh();
    state
        .edit_registry(|r| r.add("alice", AllowList::everything()))
        .unwrap();
    let clients = fs::read_to_string(state.file(CLIENTS_TOML)).unwrap();
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let with = |find: &str, replace: &str| {
        assert!(clients.contains(find), "{find}");
        clients.replacen(find, replace, 1)
    };
    let hash_line = line_of(&clients, "token-hash");
    let allow_line = line_of(&clients, "allow");
    let name_line = line_of(&clients, "name");
    let created_line = line_of(&clients, "created");
    let dup = format!(
        "{clients}\n[[client]]\nname = \"Alice\"\ntoken-hash = \"{}\"\nallow = []\ncreated = 2025-01-01T00:00:00Z\n",
        "0".repeat(64)
    );
    let dup_line = dup.lines().count() - 3;
    let cases: Vec<(String, usize, &str)> = vec![
        (
            with("allow = ", "colour = \"blue\"\nallow = "),
            allow_line,
            "unknown key `colour`",
        ),
        (
            with("allow = [\"*\"]", "allow = [\"*\", \"10.0.0.0/8:0\"]"),
            allow_line,
            "bad ports",
        ),
        (
            with("allow = [\"*\"]", "allow = \"*\""),
            allow_line,
            "allow",
        ),
        (
            with("token-hash = \"", "token-hash = \"zz"),
            hash_line,
            "token-hash",
        ),
        (
            with("name = \"alice\"", "name = \"-alice\""),
            name_line,
            "letter or a digit",
        ),
        (
            with("created = ", "created = 2025-13-01T00:00:00Z #"),
            created_line,
            "",
        ),
        (
            with("created = ", "created = 2025-01-01 #"),
            created_line,
            "offset",
        ),
        (dup, dup_line, "comes earlier"),
    ];
    for (text, line, what) in cases {
        fs::write(state.file(CLIENTS_TOML), &text).unwrap();
        let e = state.registry().unwrap_err();
        let msg = e.to_string();
        assert!(e.is_usage(), "{msg}");
        let want = format!("{}:{line}: ", state.file(CLIENTS_TOML).display());
        assert!(msg.starts_with(&want), "{msg}\nwanted {want}\n{text}");
        assert!(msg.contains(what), "{msg}\nwanted {what}");
    }

    // A client without `allow`: the line of its [[client]] header or below.
    fs::write(
        state.file(CLIENTS_TOML),
        "\n[[client]]\nname = \"x\"\ntoken-hash = \"00\"\ncreated = 2025-01-01T00:00:00Z\n",
    )
    .unwrap();
    let msg = state.registry().unwrap_err().to_string();
    assert!(msg.contains("missing key `allow`"), "{msg}");
    assert!(
        msg.contains("clients.toml:2") || msg.contains("clients.toml:3"),
        "{msg}"
    );

    let server = fs::read_to_string(state.file(SERVER_TOML)).unwrap();
    let port_line = line_of(&server, "port");
    for (text, line, what) in [
        (
            server.replace("port = 8443", "port = 8443\nbogus = 1"),
            port_line + 1,
            "unknown key `bogus`",
        ),
        (server.replace("port = 8443", "port = 0"), port_line, "port"),
        (server.replace("port = 8443", "port = \"x\""), port_line, ""),
        (
            server.replace("token-salt = \"", "token-salt = \"0"),
            line_of(&server, "token-salt"),
            "token-salt",
        ),
        (
            server.replace("name = \"door.example\"", "name = \"door example\""),
            line_of(&server, "name"),
            "server name",
        ),
    ] {
        fs::write(state.file(SERVER_TOML), &text).unwrap();
        let e = StateDir::open(state.path()).unwrap_err();
        let msg = e.to_string();
        assert!(e.is_usage(), "{msg}");
        let want = format!("{}:{line}: ", state.file(SERVER_TOML).display());
        assert!(msg.starts_with(&want), "{msg}\nwanted {want}");
        assert!(msg.contains(what), "{msg}");
    }
}

#[test]
fn damaged_identity_is_refused() {
    let (_tmp, state, _) = fresh();
    let crt = fs::read_to_string(state.file(IDENTITY_CRT)).unwrap();
    let key = fs::read_to_string(state.file(IDENTITY_KEY)).unwrap();

    // Another key than the certificate's.
    let other = Identity::from_key(
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        "door.example",
        SystemTime::now(),
        [1; 16],
    )
    .unwrap();
    fs::write(state.file(IDENTITY_KEY), other.key_pem().expose()).unwrap();
    let msg = state.identity().unwrap_err().to_string();
    assert!(
        msg.contains("identity.crt: ") && msg.contains("another key"),
        "{msg}"
    );
    fs::write(state.file(IDENTITY_KEY), &key).unwrap();

    // A certificate for another name.
    fs::write(
        state.file(SERVER_TOML),
        fs::read_to_string(state.file(SERVER_TOML))
            .unwrap()
            .replace("door.example", "other.example"),
    )
    .unwrap();
    let msg = StateDir::open(state.path())
        .unwrap()
        .identity()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not the server name"), "{msg}");

    // Garbage, a truncated certificate, a missing file.
    fs::write(state.file(IDENTITY_KEY), "hello\n").unwrap();
    let e = state.identity().unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("identity.key: "),
        "{e}"
    );
    fs::write(state.file(IDENTITY_KEY), &key).unwrap();
    let cut: String = crt
        .lines()
        .filter(|l| !l.starts_with("MI"))
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(state.file(IDENTITY_CRT), cut).unwrap();
    let e = state.identity().unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("identity.crt: "),
        "{e}"
    );
    fs::remove_file(state.file(IDENTITY_CRT)).unwrap();
    let e = state.identity().unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    fs::write(state.file(IDENTITY_CRT), &crt).unwrap();
    state.identity().unwrap();
}

#[test]
fn default_paths() {
    let p = |root, xdg: Option<&str>, home: Option<&str>| {
        default_path_for(root, xdg.map(PathBuf::from), home.map(PathBuf::from))
    };
    assert_eq!(
        p(true, Some("/x"), Some("/h")),
        Some(PathBuf::from("/var/lib/onedoor"))
    );
    assert_eq!(
        p(false, Some("/x"), Some("/h")),
        Some(PathBuf::from("/x/onedoor"))
    );
    assert_eq!(
        p(false, Some("rel"), Some("/h")),
        Some(PathBuf::from("/h/.local/share/onedoor"))
    );
    assert_eq!(
        p(false, None, Some("/h")),
        Some(PathBuf::from("/h/.local/share/onedoor"))
    );
    assert_eq!(p(false, None, None), None);
    assert_eq!(p(false, None, Some("")), None);
}
