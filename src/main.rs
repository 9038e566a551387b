use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = flotilla::cli::Cli::parse();
    if matches!(cli.command, flotilla::cli::Command::Bench { .. }) {
        // A benchmark should not measure its own logging: warnings only, unless RUST_LOG says.
        flotilla::bench::init_logging();
    } else {
        flotilla::logging::init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flotilla: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(flotilla::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flotilla: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
