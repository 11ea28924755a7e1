//! The `strata` binary: parse arguments, run the command, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;
use strata::cli::{self, Cli};
use strata::exit::Outcome;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match cli::run(&cli, &mut out, &mut err) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {}", strata::diagnostic::error_chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
