//! The `preheat` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    preheat::cli::main()
}
