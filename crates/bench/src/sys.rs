//! Process-level helpers: the file-descriptor limit and error classification.

use std::collections::BTreeMap;
use std::io;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft
/// limit. Failure leaves the limit as it was (and returns it).
pub(crate) fn raise_nofile() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 0,
    }
}

/// A short, stable name for an I/O error, used as a JSON key when counting.
pub(crate) fn error_kind(e: &io::Error) -> &'static str {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "refused",
        K::ConnectionReset => "reset",
        K::ConnectionAborted => "aborted",
        K::BrokenPipe => "broken_pipe",
        K::TimedOut | K::WouldBlock => "timeout",
        K::UnexpectedEof => "eof",
        K::AddrNotAvailable => "addr_not_available",
        _ if e.raw_os_error() == Some(libc_emfile()) => "emfile",
        _ => "other",
    }
}

/// `EMFILE` without a libc dependency (nix re-exports errno values).
fn libc_emfile() -> i32 {
    nix::errno::Errno::EMFILE as i32
}

/// Counts of error kinds, printed as a JSON object.
#[derive(Debug, Default, Clone)]
pub(crate) struct ErrorCounts(BTreeMap<&'static str, u64>);

impl ErrorCounts {
    /// Counts one error of `kind`.
    pub(crate) fn add(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }

    /// Total number of errors counted.
    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The counts as a JSON object, e.g. `{"reset":3,"timeout":1}`.
    pub(crate) fn to_json(&self) -> String {
        self.0
            .iter()
            .fold(crate::json::Obj::new(), |o, (k, v)| o.int(k, *v))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let mut a = ErrorCounts::default();
        a.add("reset");
        a.add("reset");
        a.add("timeout");
        assert_eq!(a.total(), 3);
        assert_eq!(a.to_json(), r#"{"reset":2,"timeout":1}"#);
        assert_eq!(
            error_kind(&io::Error::from(io::ErrorKind::ConnectionReset)),
            "reset"
        );
        assert_eq!(error_kind(&io::Error::from_raw_os_error(24)), "emfile");
    }
}
