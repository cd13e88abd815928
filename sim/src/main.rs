//! `lockmgr-sim`: seeded chaos runs of the real server under madsim (see the README's
//! "Simulation" section).

#[cfg(madsim)]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    lockmgr_sim::cli::main()
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "lockmgr-sim runs only in a simulation build:\n  RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim cargo run --release -p lockmgr-sim -- --seed 1"
    );
    std::process::ExitCode::from(2)
}
