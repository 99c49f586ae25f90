//! `xm`: a thin shell over [`xm_rs::cli`].

fn main() -> std::process::ExitCode {
    xm_rs::cli::run()
}
