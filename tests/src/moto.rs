//! moto in server mode on a free loopback port, stopped by PID when dropped.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::paths::{venv_python, workspace_root};

pub struct MotoServer {
    child: Child,
    port: u16,
}

impl MotoServer {
    /// Starts a moto server and waits until it accepts connections. Its output goes to
    /// `log_dir/moto.log`.
    pub fn start(log_dir: &Path) -> Result<Self> {
        let python = venv_python()?;
        let mut last_error = None;
        // A free port can be taken between our probe and moto's bind; try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let log = File::create(log_dir.join("moto.log")).context("cannot create moto.log")?;
            let mut command = Command::new(&python);
            command
                .arg(workspace_root().join("infra/local/moto_server.py"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PYTHONWARNINGS", "ignore::DeprecationWarning")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            // If the test process dies without running Drop, the kernel still stops moto.
            // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
            // async-signal-safe and touches no memory of ours.
            #[allow(unsafe_code)]
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = command
                .spawn()
                .with_context(|| format!("cannot start moto with {}", python.display()))?;
            let mut server = Self { child, port };
            match server.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return Ok(server),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto did not start")))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!("moto exited during start-up ({status}); see moto.log");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("moto did not listen on port {} within {timeout:?}", self.port)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that is free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}
