//! The strings users type, parsed once into types: `HOST:PORT` addresses and
//! `PROTO[,sni=..][,alpn=..][,host=..][,regex=..]=ADDR` route specs.

mod addr;
mod route_spec;

pub use addr::{HostPort, SpecError};
pub use route_spec::parse_route;
