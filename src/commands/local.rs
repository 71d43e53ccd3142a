//! `amictl completions` and `amictl man`: generated from the command line's definition.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::output::Printer;

pub fn completions(printer: &Printer, shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "amictl", &mut script);
    printer.raw(&script)
}

pub fn man(printer: &Printer) -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    printer.raw(&page)
}
