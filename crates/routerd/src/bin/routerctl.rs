fn main() -> std::process::ExitCode {
    routerd::main_from(std::env::args_os().collect())
}
