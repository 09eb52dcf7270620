//! `onedoor init` (being written).

use crate::exit::{Failure, Outcome};

/// Arguments of `onedoor init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {}

pub(crate) fn run(_args: InitArgs) -> Outcome {
    Err(Failure::Usage(anyhow::anyhow!("`onedoor init` is not available yet")))
}
