//! Fuzz targets for every decoder of diskv that reads bytes from the network or
//! the disk, and a runner for them on stable Rust (no cargo-fuzz, no nightly).
//!
//! Each module of [`targets`] has one `pub fn target(data: &[u8])` that hands the
//! bytes to the product's own entry point (the frame parser, the segment log's
//! recovery, the tarpc codec, the checkpoint loaders, ...), and checks what it
//! returns: `Ok` or a typed error, never a panic, never a hang (the runner gives
//! each input a deadline), never an allocation out of proportion to the input (see
//! [`alloc`]), and, where a value decoded, that encoding it again decodes to the
//! same value. Checksummed formats are fed twice: as they are, and with their
//! checksums repaired ([`fixup`]), so that mutations reach the decoder behind the
//! checksum.
//!
//! [`runner`] runs a target over its corpus (`fuzz/corpus/<target>/`) and then over
//! seeded mutations of it ([`mutate`]); the `diskv-fuzz` binary and the test in
//! `fuzz/tests/` drive it. See docs/TESTING.md, "Fuzzing".

pub mod alloc;
pub mod fixup;
pub mod mutate;
pub mod runner;
pub mod targets;

/// One fuzz target.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its name: `--target NAME`, and the folder of its corpus.
    pub name: &'static str,
    /// The product function it reaches, for `--list` and the docs.
    pub reaches: &'static str,
    /// Feeds one input to the product; panics (caught by the runner) on a failure.
    pub run: fn(&[u8]),
    /// Valid inputs made by the product's own encoders: the start of the corpus.
    pub seeds: fn() -> Vec<(String, Vec<u8>)>,
    /// Bytes an input may make live, where the product allows more than the
    /// runner's default (`None`: [`runner::Options::alloc_limit`]).
    pub alloc_limit: Option<usize>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish()
    }
}

/// Every target, in the order `--target all` runs them.
pub fn all() -> &'static [Target] {
    targets::ALL
}

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    all().iter().find(|t| t.name == name)
}

/// The folder of the crate (`fuzz/`), where `corpus/` and `crashes/` live.
pub fn crate_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
