//! The strings users type, parsed once into types: `HOST:PORT` addresses and
//! `PROTO[,sni=..][,alpn=..][,host=..][,regex=..]=ADDR` route specs.

mod addr;
mod forward;
mod route_spec;

pub use addr::{HostPort, SpecError};
pub(crate) use forward::{parse_port_digits, valid_host};
pub use forward::{
    BindAddr, Forward, ForwardError, ForwardFlag, ForwardProblem, PortForward, Transport,
};
pub use route_spec::parse_route;
