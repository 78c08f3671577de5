//! The Docker CLI plugin binary: install as `~/.docker/cli-plugins/docker-airlock`.
fn main() -> std::process::ExitCode {
    airlock::cli::main()
}
