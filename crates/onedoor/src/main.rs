//! The `onedoor` binary: parses the command line, sets up logging, calls the
//! subcommand's `run`, and turns its outcome into an exit code (0 ok,
//! 1 runtime failure, 2 usage or configuration error).

mod cli;
mod exit;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    tune_malloc();
    let matches = cli::Cli::command().get_matches();
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    logging::init(args.verbose, args.quiet);
    let outcome = match args.command {
        cli::Command::Serve(a) => {
            let sub = matches.subcommand_matches("serve").expect("serve matches");
            cli::serve::run(*a, sub)
        }
        cli::Command::Probe(a) => cli::probe::run(*a),
        // Exit codes 3-5 of its own (see `onedoor connect --help`).
        cli::Command::Connect(a) => return cli::connect::run(*a),
        cli::Command::Init(a) => cli::init::run(a),
        cli::Command::Client(a) => cli::client::run(a),
        cli::Command::Lab(a) => cli::lab::run(a),
    };
    exit::report(outcome)
}

/// glibc's malloc gives buffers of 128 KiB and more back to the kernel at
/// once and faults them in again on the next use: h2 and the tunnel's
/// per-frame buffers (up to 1 MiB) paid 200-300 k page faults per 4 GB
/// moved. Higher thresholds keep them in the heap (BENCHMARKS.md, tunnel).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it runs first in
    // main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}
