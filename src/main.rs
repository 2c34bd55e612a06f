//! The `faultline` command: see `faultline --help`.

// The checker's search allocates a small state per step; mimalloc's
// thread-local free lists make that markedly cheaper than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(faultline::cli::main());
}
