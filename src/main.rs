//! The `faultline` command: see `faultline --help`.

fn main() {
    std::process::exit(faultline::cli::main());
}
