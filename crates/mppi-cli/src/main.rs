//! `mppi`: run the built-in MPPI tasks from the command line.
//!
//! `mppi tasks` lists the tasks; `mppi run <task>` runs one in closed loop, prints a summary and
//! with `--out DIR` writes CSV, JSON and plots; `mppi theory` and `mppi bench` run the theory
//! experiments and the timing benchmark. Errors are one line on stderr starting with
//! `error: `; the exit status is 2 for usage and configuration errors and 1 for failures at
//! run time (or an unmet `--require-success`).

mod alloc_count;
mod animate;
mod bench;
mod cli;
mod commands;
mod diffusion;
mod error;
mod learn;
mod output;
mod plots;
mod policy_search;
mod registry;
mod theory;

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;

use crate::error::single_line;

fn main() -> ExitCode {
    // A bug must still end in one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error (please report it): {}{at}",
            single_line(&what)
        );
    }));

    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Report a command-line parsing outcome: help and version go to stdout (status 0); a missing
/// subcommand prints the help to stderr (status 2); anything else is one `error: ` line.
fn clap_exit(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            eprintln!("error: {}", clap_one_line(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

/// Fold clap's multi-line error (message, tips, usage, "for more information") into one line.
fn clap_one_line(rendered: &str) -> String {
    let mut message = vec![];
    let mut usage = None;
    for line in rendered.lines().map(str::trim) {
        if let Some(u) = line.strip_prefix("Usage:") {
            usage = Some(u.trim().to_string());
        } else if line.starts_with("For more information") || line.is_empty() {
            continue;
        } else {
            message.push(line.strip_prefix("error:").unwrap_or(line).trim());
        }
    }
    let mut text = single_line(&message.join("\n"));
    if let Some(usage) = usage {
        text.push_str(&format!(" (usage: {usage}; see --help)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: unexpected argument '--fo' found\n\n  tip: a similar argument exists: '--out'\n\nUsage: mppi run [OPTIONS] <TASK>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_one_line(rendered),
            "unexpected argument '--fo' found tip: a similar argument exists: '--out' (usage: mppi run [OPTIONS] <TASK>; see --help)"
        );
    }
}
