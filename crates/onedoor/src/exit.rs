//! Exit codes, decided once: 0 ok, 1 runtime failure, 2 usage or
//! configuration error.

use std::process::ExitCode;

/// What a subcommand returns.
pub(crate) type Outcome = Result<(), Failure>;

/// Why a subcommand failed, by who must act.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The user's flags or config are wrong (exit 2). The message names the
    /// flag or `file:line`.
    Usage(anyhow::Error),
    /// Something failed at run time (exit 1).
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

/// Print the failure (if any) and pick the exit code.
pub(crate) fn report(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("onedoor: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("onedoor: {e:#}");
            ExitCode::from(1)
        }
    }
}
