//! `xm generate`: shell completion scripts (bash, zsh, fish) and man pages, generated from
//! the clap definition so they never drift from the real command line. Hidden from `xm help`;
//! packagers run it at build time (see the crate README).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Subcommand, ValueEnum};

use super::{Cli, Exit};

/// `xm generate completion SHELL` | `xm generate man DIR`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

/// What to generate.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Print the completion script for SHELL on stdout.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write xm.1 and one xm-COMMAND.1 per subcommand into DIR (created if missing).
    Man {
        /// Output directory, e.g. /usr/local/share/man/man1.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Shells we write completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash (bash-completion).
    Bash,
    /// zsh (a `_xm` function).
    Zsh,
    /// fish.
    Fish,
}

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut command, "xm", &mut script)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut command, "xm", &mut script)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut command, "xm", &mut script)
        }
    }
    script
}

/// Every man page: (file name, roff text) for `xm` and each visible subcommand.
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let command = Cli::command();
    let mut pages = Vec::new();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    pages.push(("xm.1".to_string(), page));
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("xm-{}", sub.get_name());
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone().name(name.clone()).bin_name(name.clone()))
            .render(&mut page)?;
        pages.push((format!("{name}.1"), page));
    }
    Ok(pages)
}

fn write_man(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let pages = man_pages()?;
    for (name, text) in &pages {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(pages.len())
}

/// Runs `xm generate`.
pub fn run(args: &GenerateArgs) -> Exit {
    match &args.what {
        Generate::Completion { shell } => {
            let script = completion(*shell);
            let written = std::io::stdout()
                .lock()
                .write_all(&script)
                .map_err(super::domain::io_error);
            super::after_output(written, Exit::Ok)
        }
        Generate::Man { dir } => match write_man(dir) {
            Ok(count) => {
                eprintln!("wrote {count} man pages to {}", dir.display());
                Exit::Ok
            }
            Err(e) => {
                eprintln!("Error: writing man pages to {}: {e}", dir.display());
                Exit::ConfigError
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible_subcommands() -> Vec<String> {
        Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect()
    }

    #[test]
    fn every_shell_completes_every_subcommand() {
        let names = visible_subcommands();
        assert!(names.len() > 30, "{names:?}");
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completion(shell)).expect("utf-8");
            for name in &names {
                assert!(script.contains(name.as_str()), "{shell:?} lacks {name}");
            }
        }
        // options of a subcommand are completed too
        let bash = String::from_utf8(completion(Shell::Bash)).expect("utf-8");
        assert!(bash.contains("--force") && bash.contains("--weight"));
    }

    #[test]
    fn there_is_a_man_page_for_xm_and_each_subcommand() {
        let pages = man_pages().expect("render");
        let files: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert!(files.contains(&"xm.1"));
        for name in visible_subcommands() {
            let file = format!("xm-{name}.1");
            let (_, text) = pages
                .iter()
                .find(|(n, _)| *n == file)
                .unwrap_or_else(|| panic!("no {file}"));
            let text = String::from_utf8_lossy(text);
            assert!(text.starts_with(".ie") || text.contains(".TH"), "{file}");
            assert!(
                text.contains(&format!("xm\\-{}", name.replace('-', "\\-"))),
                "{file}"
            );
        }
        let vcpu_pin = &pages
            .iter()
            .find(|(n, _)| n == "xm-vcpu-pin.1")
            .expect("page")
            .1;
        assert!(String::from_utf8_lossy(vcpu_pin).contains("CPUS"));
    }
}
