//! `onedoor client` (being written).

use crate::exit::{Failure, Outcome};

/// Arguments of `onedoor client`.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientArgs {}

pub(crate) fn run(_args: ClientArgs) -> Outcome {
    Err(Failure::Usage(anyhow::anyhow!("`onedoor client` is not available yet")))
}
