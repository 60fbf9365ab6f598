//! The `keyward` binary: parse the command line and hand over to the library.

/// mimalloc: a request allocates and frees many small buffers from two worker threads; glibc's
/// allocator spent about a tenth of the server's time on them (malloc, free, consolidation).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keyward::cli::main()
}
