//! Fuzz access keys (`onedoor://TOKEN@host:port?fp=SHA256:...`), server
//! addresses, fingerprints and token text. Never panics; whatever parses
//! encodes back to an equal value, and a key's `Debug` never shows its token.

#![no_main]

use libfuzzer_sys::fuzz_target;
use onedoor_proto::tunnel::{parse_server, AccessKey, Fingerprint, Token};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = s.parse::<AccessKey>() {
        let text = key.encode().into_exposed();
        assert_eq!(text.parse::<AccessKey>(), Ok(key.clone()));
        let token = key.token.encode().into_exposed();
        assert!(!format!("{key:?}").contains(&token));
        assert!(!key.redacted().to_string().contains(&token));
    }
    if let Ok(server) = parse_server(s) {
        assert_eq!(parse_server(&server.to_string()), Ok(server));
    }
    if let Ok(fp) = s.parse::<Fingerprint>() {
        assert_eq!(fp.to_string().parse(), Ok(fp));
    }
    if let Ok(token) = s.parse::<Token>() {
        assert_eq!(token.encode().expose().as_str(), s.trim());
    }
});
