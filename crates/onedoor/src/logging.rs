//! Logging: `tracing` to stderr, level from `-v`/`-q`, `RUST_LOG` overrides.

use tracing_subscriber::EnvFilter;

/// Install the subscriber. Only the binary does this.
pub(crate) fn init(verbose: u8, quiet: u8) {
    let level = match (verbose as i8) - (quiet as i8) {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
