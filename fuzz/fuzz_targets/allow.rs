//! Fuzz allow-lists: the first line is a list of patterns, the second a
//! request `KIND HOST PORT [ADDR]...` (KIND: tcp, udp, bind). Never panics; a
//! list that parses prints back to an equal list; and unless the list holds
//! `*`, an allowed name never reaches a special address that the same
//! request typed as that IP would not.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use onedoor_proto::tunnel::{AccessKind, AddrClass, AllowList, AllowPattern, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (patterns, request) = text.split_once('\n').unwrap_or((text, ""));
    for p in patterns.split_whitespace() {
        if let Ok(p) = p.parse::<AllowPattern>() {
            assert_eq!(p.to_string().parse::<AllowPattern>(), Ok(p));
        }
    }
    let Ok(list) = patterns.parse::<AllowList>() else {
        return;
    };
    assert_eq!(list.to_string().parse::<AllowList>(), Ok(list.clone()));

    let mut words = request.split_whitespace();
    let kind = match words.next() {
        Some("udp") => AccessKind::Udp,
        Some("bind") => AccessKind::Bind,
        _ => AccessKind::Tcp,
    };
    let host = words.next().unwrap_or("");
    let port = words.next().and_then(|p| p.parse().ok()).unwrap_or(443);
    let resolved: Vec<IpAddr> = words.filter_map(|a| a.parse().ok()).collect();
    let req = Request {
        resolved: &resolved,
        ..Request::new(kind, host, port)
    };
    let allowed = match list.check(&req) {
        Ok(()) => true,
        Err(refusal) => {
            let _ = refusal.to_string();
            false
        }
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let used = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolved.clone(),
    };
    if allowed && !list.patterns().contains(&AllowPattern::Everything) {
        for a in &used {
            if req.class_of(*a) != AddrClass::Public || kind == AccessKind::Bind {
                let ip = a.to_string();
                assert!(
                    list.allows(&Request::new(kind, &ip, port)),
                    "{list}: {host} -> {a}"
                );
            }
        }
    }
});
