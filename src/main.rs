use clap::Parser;

/// The `flotilla` binary allocates with mimalloc. Every request is many small allocations (a
/// doc's id, fields, tensors; their protobuf and Raft-log encodings) made on one thread and
/// freed on another; glibc's allocator spent a fifth of a stateful index's CPU time in malloc,
/// free and consolidation, and mimalloc about a third of that (measured with `perf`: 100,000
/// docs over gRPC, plain 1.0 → 0.7 s, 3 stateful replicas 1.9 → 1.3–1.5 s). Tiny in-process
/// posts pay for it (20–35% fewer per second: the README's A/B run). A program that embeds
/// the library chooses its own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
