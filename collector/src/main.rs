fn main() -> std::process::ExitCode {
    millwatch::cli::main()
}
