//! `onedoor lab` (to be written).

use crate::exit::Outcome;

/// Arguments of `onedoor lab`.
#[derive(Debug, clap::Args)]
pub(crate) struct LabArgs {}

pub(crate) fn run(_args: LabArgs) -> Outcome {
    Ok(())
}
