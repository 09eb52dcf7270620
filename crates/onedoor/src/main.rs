//! The `onedoor` binary: parses the command line, sets up logging, calls the
//! subcommand's `run`, and turns its outcome into an exit code (0 ok,
//! 1 runtime failure, 2 usage or configuration error).

mod cli;
mod exit;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    logging::init(args.verbose, args.quiet);
    let outcome = match args.command {
        cli::Command::Serve(a) => cli::serve::run(a),
        cli::Command::Lab(a) => cli::lab::run(a),
    };
    exit::report(outcome)
}
