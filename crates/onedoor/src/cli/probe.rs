//! `onedoor probe` (being written).

use crate::exit::{Failure, Outcome};

/// Arguments of `onedoor probe`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {}

pub(crate) fn run(_args: ProbeArgs) -> Outcome {
    Err(Failure::Usage(anyhow::anyhow!("`onedoor probe` is not available yet")))
}
