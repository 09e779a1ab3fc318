//! Starting the project's binaries as real processes, killed when the test is done.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A binary of this workspace, found next to the test executable in the target directory.
#[derive(Clone, Debug)]
pub struct Binary {
    /// Full path of the executable.
    pub path: PathBuf,
}

/// Locates `name` (e.g. `pledgesync-fetcher`) in the target directory this test was built into.
/// `cargo test --workspace` and `cargo nextest run --workspace` build every binary first.
pub fn binary(name: &str) -> anyhow::Result<Binary> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test-binary>: the binaries sit in target/<profile>.
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).ok_or_else(|| {
        anyhow::anyhow!("cannot locate the target directory from {}", exe.display())
    })?;
    let path = profile_dir.join(name);
    if !path.exists() {
        anyhow::bail!(
            "{} is not built; run `cargo build --workspace --bins` (make test does)",
            path.display()
        );
    }
    Ok(Binary { path })
}

impl Binary {
    /// A command for this binary with a clean `PLEDGESYNC__*` environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.path);
        for (key, _) in std::env::vars() {
            if key.starts_with("PLEDGESYNC__") {
                command.env_remove(key);
            }
        }
        command.stdin(Stdio::null());
        command
    }

    /// Runs to completion with the given arguments and environment.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Output> {
        let mut command = self.command();
        command.args(args).envs(env.iter().copied());
        Ok(command.output()?)
    }

    /// Starts the binary in the background with its output (logs) appended to `log`; it is
    /// killed when the returned handle drops. Tests print the log when they fail.
    pub fn spawn_logged(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> anyhow::Result<Running> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut command = self.command();
        command
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        Ok(Running {
            child: command.spawn()?,
        })
    }

    /// Starts the binary in the background; it is killed when the returned handle drops.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Running> {
        let mut command = self.command();
        command
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Ok(Running {
            child: command.spawn()?,
        })
    }
}

/// A running child process, killed (SIGKILL) on drop unless it has exited.
#[derive(Debug)]
pub struct Running {
    /// The process; tests may signal or wait on it.
    pub child: std::process::Child,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as Kubernetes does before it kills a pod.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.pid());
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself (after [`Running::terminate`]).
    pub fn wait_for_exit(
        &mut self,
        timeout: std::time::Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "process {} did not exit within {timeout:?}",
                self.pid()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends SIGKILL and reaps the process: a crash, as far as the rest of the system can tell.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
