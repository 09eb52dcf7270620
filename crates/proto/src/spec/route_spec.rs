//! Route specs: `PROTO[,sni=NAME][,alpn=ID][,host=NAME][,regex=RE]=ADDR`.
//!
//! The backend is after the last `=`. `regex=` takes the rest of the options
//! verbatim (it may contain commas), so it must come last.

use super::{HostPort, SpecError};
use crate::route::{NamePattern, Route};
use crate::sniff::Protocol;

/// Parse one `--route` value.
pub fn parse_route(spec: &str) -> Result<Route, SpecError> {
    let bad = |why: &str| SpecError::BadRoute {
        spec: spec.to_owned(),
        why: why.to_owned(),
    };
    let (head, target) = spec
        .rsplit_once('=')
        .ok_or_else(|| bad("expected PROTO[,option=value]...=HOST:PORT"))?;
    let target: HostPort = target.parse().map_err(|e: SpecError| bad(&e.to_string()))?;
    let (proto, mut opts) = match head.split_once(',') {
        Some((p, o)) => (p, o),
        None => (head, ""),
    };
    let protocol: Protocol = proto
        .parse()
        .map_err(|e: crate::sniff::UnknownProtocol| bad(&e.to_string()))?;
    let mut route = Route::new(protocol, target);
    while !opts.is_empty() {
        let (key, rest) = opts
            .split_once('=')
            .ok_or_else(|| bad(&format!("option `{opts}` is not key=value")))?;
        if key == "regex" {
            let re = regex::bytes::Regex::new(rest).map_err(|e| bad(&format!("regex: {e}")))?;
            route.regex = Some(re);
            break;
        }
        let (value, next) = match rest.split_once(',') {
            Some((v, n)) => (v, n),
            None => (rest, ""),
        };
        if value.is_empty() {
            return Err(bad(&format!("`{key}=` needs a value")));
        }
        match key {
            "sni" => route.sni = Some(NamePattern::new(value)),
            "alpn" => route.alpn = Some(value.to_owned()),
            "host" => route.host = Some(NamePattern::new(value)),
            other => {
                return Err(bad(&format!(
                    "unknown option `{other}` (expected sni, alpn, host or regex)"
                )))
            }
        }
        opts = next;
    }
    check_filters(&route).map_err(|why| bad(&why))?;
    Ok(route)
}

/// Filters only make sense on some protocols: `sni`/`alpn` on `tls`, `host`
/// on `http`. `regex` goes anywhere.
pub(crate) fn check_filters(route: &Route) -> Result<(), String> {
    use Protocol::*;
    if (route.sni.is_some() || route.alpn.is_some()) && route.protocol != Tls {
        return Err("sni= and alpn= apply to tls routes only".into());
    }
    if route.host.is_some() && route.protocol != Http {
        return Err("host= applies to http routes only".into());
    }
    if route.protocol == Regex && route.regex.is_none() {
        return Err("a regex route needs regex=PATTERN".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_routes() {
        let r = parse_route("tls,sni=*.a.example,alpn=h2=127.0.0.1:8443").unwrap();
        assert_eq!(r.protocol, Protocol::Tls);
        assert_eq!(r.alpn.as_deref(), Some("h2"));
        assert!(r.sni.as_ref().unwrap().matches("x.a.example"));
        assert_eq!(r.target, HostPort::new("127.0.0.1", 8443));
        let r = parse_route("regex,regex=^(a|b),c=[::1]:9").unwrap();
        assert_eq!(r.regex.unwrap().as_str(), "^(a|b),c");
        assert!(parse_route("ssh=127.0.0.1:22").is_ok());
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "ssh",
            "nope=1.2.3.4:5",
            "ssh,sni=a=1.2.3.4:5",
            "http,host==1.2.3.4:5",
            "tls,foo=bar=1.2.3.4:5",
            "regex=1.2.3.4:5",
            "tls=1.2.3.4",
            "regex,regex=(=1.2.3.4:5",
        ] {
            assert!(parse_route(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,60}") {
            let _ = parse_route(&s);
        }
    }
}
