//! Lambda's CPU share of a memory setting, as a cgroup-v1 CPU quota.
//!
//! Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU, so 128 MB is
//! about 7% of a core. A function process placed in a [`CpuShare`] gets that fraction of one
//! core: `cpu.cfs_quota_us = cpu.cfs_period_us * memory / 1769`. A burst of work longer than its
//! quota within one period waits for the next period, which is what makes a cold start's CPU
//! work (TLS, parsing certificates) so much slower at 128 MB than on a whole core.
//!
//! Needs the cgroup-v1 `cpu` controller mounted and writable (root); [`CpuShare::create`] says
//! so when it is not, and the caller decides whether to go on without a quota.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Where the cgroup-v1 `cpu` controller is mounted.
pub const CPU_CONTROLLER: &str = "/sys/fs/cgroup/cpu";
/// The memory setting that buys one full vCPU.
pub const MB_PER_VCPU: u32 = 1769;
/// The CFS period used unless told otherwise: 20 ms, the interval at which Lambda has been
/// observed to throttle (a function that uses more than its share in the first 20 ms pauses
/// until the 20 ms are over; pwrdrvr/lambda-dispatch#246). The kernel's default is 100 ms,
/// which makes each pause five times longer.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(20);

/// Why a CPU share could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CpuShareError {
    #[error(
        "the cgroup-v1 cpu controller is not mounted at {CPU_CONTROLLER} (no {0}): \
         CPU shares need it (and root)"
    )]
    NoController(String),
    #[error(
        "cannot {action} {path}: {source} (CPU shares need root and a writable cgroup-v1 cpu controller)"
    )]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("memory {0} MB is outside Lambda's 128..=10240")]
    Memory(u32),
}

/// One cgroup with the CPU quota of a memory setting. Removed on drop (once its processes are
/// gone: drop the functions placed in it first).
#[derive(Debug)]
pub struct CpuShare {
    dir: PathBuf,
    quota_us: u64,
    period_us: u64,
}

impl CpuShare {
    /// A fresh cgroup under the `cpu` controller with the quota of `memory_mb` over `period`.
    pub fn create(memory_mb: u32, period: Duration) -> Result<Self, CpuShareError> {
        if !(128..=10240).contains(&memory_mb) {
            return Err(CpuShareError::Memory(memory_mb));
        }
        let controller = Path::new(CPU_CONTROLLER);
        if !controller.join("cpu.cfs_quota_us").exists() {
            return Err(CpuShareError::NoController(format!(
                "{CPU_CONTROLLER}/cpu.cfs_quota_us"
            )));
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = controller.join(format!(
            "cognito-user-sync-{}-{}-{memory_mb}mb",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let io = |action: &'static str, path: &Path| {
            let path = path.display().to_string();
            move |source| CpuShareError::Io { action, path, source }
        };
        std::fs::create_dir(&dir).map_err(io("create", &dir))?;
        let period_us = period.as_micros() as u64;
        let quota_us = quota_us(memory_mb, period_us);
        let share = Self {
            dir,
            quota_us,
            period_us,
        };
        let period_file = share.dir.join("cpu.cfs_period_us");
        std::fs::write(&period_file, period_us.to_string()).map_err(io("write", &period_file))?;
        let quota_file = share.dir.join("cpu.cfs_quota_us");
        std::fs::write(&quota_file, quota_us.to_string()).map_err(io("write", &quota_file))?;
        Ok(share)
    }

    /// The file a process writes its pid to, to join the share.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The fraction of one core, e.g. 0.072 for 128 MB.
    pub fn fraction(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

impl Drop for CpuShare {
    fn drop(&mut self) {
        // A cgroup can be removed once its last process has exited; killed processes take a
        // moment to be reaped.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The quota of `memory_mb` within a period of `period_us`: Lambda's proportional share.
pub fn quota_us(memory_mb: u32, period_us: u64) -> u64 {
    (period_us * u64::from(memory_mb) / u64::from(MB_PER_VCPU)).max(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_is_the_memory_share_of_one_core() {
        assert_eq!(quota_us(1769, 100_000), 100_000);
        assert_eq!(quota_us(128, 100_000), 7235);
        assert_eq!(quota_us(3538, 100_000), 200_000);
        // The kernel refuses quotas under 1 ms.
        assert_eq!(quota_us(128, 10_000), 1000);
    }
}
