//! Fuzz `http_connect`: the proxy's reply head, proxy URLs and `NO_PROXY`
//! lists. Never panics; the reply verdict is prefix-consistent (an
//! established tunnel's head is exactly its first `head_len` bytes, one
//! byte fewer still needs more); a parsed proxy URL survives `to_url` and
//! its `Display` and `Debug` never show a password.

#![no_main]

use libfuzzer_sys::fuzz_target;
use onedoor_proto::http_connect::{
    no_proxy_matches, parse_connect_reply, ConnectReply, ProxyUrl, MAX_REPLY_HEAD,
};

fuzz_target!(|data: &[u8]| {
    let whole = parse_connect_reply(data);
    match &whole {
        ConnectReply::Established { head_len } => {
            let n = *head_len;
            assert!(
                n > 0 && n <= data.len() && n <= MAX_REPLY_HEAD,
                "{n} of {}",
                data.len()
            );
            assert_eq!(parse_connect_reply(&data[..n]), whole);
            assert_eq!(parse_connect_reply(&data[..n - 1]), ConnectReply::NeedMore);
        }
        ConnectReply::Refused { status, reason, .. } => {
            assert!(!(200..300).contains(status));
            assert!(!reason.chars().any(char::is_control));
        }
        ConnectReply::NeedMore => assert!(data.len() < MAX_REPLY_HEAD),
        ConnectReply::NotHttp => {}
    }
    // A shorter prefix either needs more or already says the same.
    if !data.is_empty() {
        let half = parse_connect_reply(&data[..data.len() / 2]);
        assert!(
            half == ConnectReply::NeedMore || half == whole,
            "{half:?} vs {whole:?}"
        );
    }

    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = ProxyUrl::parse(s) {
        assert_ne!(url.port, 0);
        assert_eq!(ProxyUrl::parse(&url.to_url()), Ok(url.clone()));
        if let Some(c) = &url.auth {
            // What is shown is the same URL with the password as `***`.
            let shown = ProxyUrl::parse(&url.to_string()).expect("Display parses");
            assert_eq!(shown.addr(), url.addr());
            let shown = shown.auth.expect("Display keeps the user");
            assert_eq!((&shown.user, shown.password.as_str()), (&c.user, "***"));
            assert_eq!(
                format!("{c:?}"),
                format!("Credentials {{ user: {:?}, password: \"***\" }}", c.user)
            );
        }
    }
    // NO_PROXY list, host and port from one input: `list|host|port`.
    let mut parts = s.splitn(3, '|');
    if let (Some(list), Some(host)) = (parts.next(), parts.next()) {
        let port = parts.next().and_then(|p| p.parse().ok()).unwrap_or(443);
        let _ = no_proxy_matches(list, host, port);
    }
});
