//! `tiny-pv-image [OUTPUT]`: writes the tiny-pv kernel embedded at build time
//! to OUTPUT (or stdout), so a dom0 without a build tree can boot it.

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage: tiny-pv-image [OUTPUT]\n\
    Writes the tiny-pv PV guest kernel (an ELF with Xen notes) to OUTPUT, or to stdout.";

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let result = match args.as_slice() {
        [] => std::io::stdout()
            .lock()
            .write_all(tiny_pv::TINY_PV_ELF)
            .map_err(|e| format!("writing the image to stdout: {e}")),
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        [output] => std::fs::write(output, tiny_pv::TINY_PV_ELF)
            .map_err(|e| format!("writing the image to {}: {e}", output.to_string_lossy())),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tiny-pv-image: {message}");
            ExitCode::FAILURE
        }
    }
}
