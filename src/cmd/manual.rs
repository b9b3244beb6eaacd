//! `govtrust completions SHELL` and `govtrust man DIR`: shell completion
//! scripts (clap_complete) and man pages (clap_mangen) from the same clap
//! definitions as `--help`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::output::Output;

/// `govtrust completions SHELL`: the script on standard output.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "govtrust", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `govtrust man DIR`: `govtrust.1` and one page per subcommand
/// (`govtrust-cert-list.1`, …).
pub fn man(dir: &Path, out: Output) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(Cli::command(), "govtrust", dir, &mut written)?;
    out.emit(&written, || {
        format!("wrote {} man pages to {}", written.len(), dir.display())
    });
    Ok(ExitCode::SUCCESS)
}

fn write_pages(
    command: clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> Result<()> {
    let command = command
        .display_name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let mut buffer = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut buffer)
        .with_context(|| format!("rendering the page of {name}"))?;
    let file = dir.join(format!("{name}.1"));
    std::fs::write(&file, buffer).with_context(|| format!("writing {}", file.display()))?;
    written.push(file.display().to_string());
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(sub.clone(), &sub_name, dir, written)?;
    }
    Ok(())
}
