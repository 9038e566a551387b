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

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc 3's
/// `mimalloc.h`; the `-sys` crate names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How often mimalloc returns the memory the process holds free to the OS, in ms (mimalloc's
/// default: 1,000). mimalloc 3 sets the clock going at the first free after a purge and, when
/// it runs out, gives back every free page, however recently freed: with a steady stream of
/// frees that is a purge every period. Memory given back is faulted in again, zeroed, when it
/// is next used, and on a VM with free page reporting that costs far more than reusing it: on
/// this project's 2-vCPU test VM fresh memory is first written at 0.4–2.5 GB/s, reused memory
/// at 8 GB/s. The seed's stateful index frees and reallocates 3 replicas' 64 MB indexes, and
/// the decoded docs and log entries of 100,000 docs, every run: with 1 s it faulted them in
/// again every run (44,000 page faults over five runs); with 5 s one run in two or three still
/// met a purge (3 stateful replicas over gRPC: 0.61–0.70 s in `flotilla bench`, 0.53–0.56 s
/// with none; the plain run 0.42–0.44 s against 0.36–0.39). With 30 s a run rarely does.
/// The price: memory freed stays in the process's RSS until the next purge, up to 30 s.
/// A purge delay in the environment (`MIMALLOC_PURGE_DELAY`, in any case, or its old name
/// `MIMALLOC_RESET_DELAY`) still decides: mimalloc read it when the process loaded, and a
/// default does not override it.
const PURGE_DELAY_MS: std::ffi::c_long = 30_000;

/// `flotilla bench` never purges (mimalloc's -1). Its runs follow one another, each building
/// its indexes afresh, and a purge gives back whatever is free at the moment its clock runs
/// out: the run after it faults its memory in again, the 3 stateful replicas' three indexes
/// above all (one such run of the interleaved rounds: 3,414 page faults and 0.83 s, against
/// 0–65 faults and 0.48–0.55 s for the others). The runs should measure flotilla, not where
/// the allocator's clock happened to fall. The bench holds its peak memory until it exits
/// (only blocks beyond mimalloc's largest arena object, 2 GiB, still go straight back).
const BENCH_PURGE_DELAY_MS: std::ffi::c_long = -1;

fn tune_allocator(purge_delay_ms: std::ffi::c_long) {
    // SAFETY: `mi_option_set_default` stores a number in mimalloc's table of options, unless
    // the environment set that option; it takes no pointers, and an option index out of range
    // is ignored. It runs in `main` before any thread of this program exists, so no
    // allocation reads the value while it is written.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, purge_delay_ms) };
}

fn main() -> std::process::ExitCode {
    tune_allocator(PURGE_DELAY_MS);
    let cli = flotilla::cli::Cli::parse();
    if matches!(cli.command, flotilla::cli::Command::Bench { .. }) {
        tune_allocator(BENCH_PURGE_DELAY_MS);
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_mimallocs_purge_delay() {
        // Its default (1,000 ms in mimalloc 3) identifies the option behind the number, so a
        // reordered enum in another mimalloc fails here instead of tuning something else.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads one number from mimalloc's table of options.
            let value = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
            assert_eq!(value, 1_000);
        }
    }
}
