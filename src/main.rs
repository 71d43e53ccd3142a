//! amictl: everything is in the library (src/lib.rs); the binary only runs it.

fn main() -> std::process::ExitCode {
    amictl::main()
}
