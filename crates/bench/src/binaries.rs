//! Where the release binaries are, and building them when asked.
//!
//! The harness runs from `target/release/pledgesync-bench`, so the binaries it measures are its
//! neighbours. `cargo build --release --bins` of the workspace is a no-op when they are fresh, so
//! the harness runs it before measuring unless told not to: a stale binary would measure old code
//! without saying so. It builds the whole workspace, as `make bench` does just before: building
//! only the four packages unifies dependency features differently, and every switch between the
//! two recompiled TLS and AMQP crates (about two minutes of each benchmark run).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{BenchError, Result};

/// The binaries a benchmark starts.
#[derive(Clone)]
pub struct Binaries {
    /// `pledgesync-scheduler`.
    pub scheduler: PathBuf,
    /// `pledgesync-fetcher`.
    pub fetcher: PathBuf,
    /// `pledgesync-sink`.
    pub sink: PathBuf,
    /// `zoho-emulator`.
    pub emulator: PathBuf,
    /// Settings other than the defaults, as `PLEDGESYNC__*` variables, for the scheduler,
    /// fetchers and sinks (`--set`).
    pub settings: Vec<(String, String)>,
}

/// Setting names only: a value given with `--set` may be a URL with a password or a key.
impl std::fmt::Debug for Binaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binaries")
            .field("scheduler", &self.scheduler)
            .field("fetcher", &self.fetcher)
            .field("sink", &self.sink)
            .field("emulator", &self.emulator)
            .field(
                "settings",
                &self
                    .settings
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Binaries {
    /// The binaries in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            scheduler: dir.join("pledgesync-scheduler"),
            fetcher: dir.join("pledgesync-fetcher"),
            sink: dir.join("pledgesync-sink"),
            emulator: dir.join("zoho-emulator"),
            settings: Vec::new(),
        }
    }

    /// The same binaries, run with `settings` (environment variables) over the defaults.
    pub fn with_settings(self, settings: Vec<(String, String)>) -> Self {
        Self { settings, ..self }
    }

    /// The binaries next to this executable (`target/release` under `cargo run --release`).
    pub fn beside_harness() -> Result<Self> {
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::io("locating the harness executable", e))?;
        let dir = exe
            .parent()
            .ok_or_else(|| BenchError::unexpected("the harness executable", "has no directory"))?;
        Ok(Self::in_dir(dir))
    }

    /// The ones that do not exist.
    pub fn missing(&self) -> Vec<&Path> {
        [&self.scheduler, &self.fetcher, &self.sink, &self.emulator]
            .into_iter()
            .filter(|p| !p.is_file())
            .map(PathBuf::as_path)
            .collect()
    }

    /// Whether they live in a release profile directory (debug binaries would measure nothing
    /// useful; the harness says so).
    pub fn is_release(&self) -> bool {
        self.fetcher
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|name| name == "release")
    }

    /// `cargo build --release --bins` of the workspace this harness was built in. Cargo takes
    /// `CARGO` from `cargo run`, else `cargo` on the PATH.
    pub fn build_release() -> Result<()> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut command = Command::new(cargo);
        command
            .current_dir(&workspace)
            .args(["build", "--release", "--bins"]);
        tracing::info!("building the release binaries (a no-op when they are fresh)");
        let status = command
            .status()
            .map_err(|e| BenchError::io("running cargo build --release", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(BenchError::Build(status.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_sit_side_by_side() {
        let b = Binaries::in_dir(Path::new("/w/target/release"));
        assert_eq!(b.sink, Path::new("/w/target/release/pledgesync-sink"));
        assert!(b.is_release());
        assert_eq!(b.missing().len(), 4);
        assert!(!Binaries::in_dir(Path::new("/w/target/debug")).is_release());
    }
}
