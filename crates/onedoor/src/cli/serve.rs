//! `onedoor serve` (to be written).

use crate::exit::Outcome;

/// Arguments of `onedoor serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {}

pub(crate) fn run(_args: ServeArgs) -> Outcome {
    Ok(())
}
