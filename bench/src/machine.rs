//! The machine a sweep ran on, for the record.

use serde::{Deserialize, Serialize};

/// What the benchmark ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model, from /proc/cpuinfo.
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// Operating system and kernel.
    pub os: String,
    /// File system of the temporary directory, where spawned clusters keep their data.
    #[serde(default)]
    pub temp_fs: String,
}

/// The file system type holding `path`, by its statfs(2) magic number.
fn fs_type(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return String::new();
    };
    // SAFETY: statfs(2) fills the zeroed struct we own from a valid C string.
    let magic = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::statfs(c.as_ptr(), &mut st) != 0 {
            return String::new();
        }
        st.f_type as i64
    };
    match magic {
        0xEF53 => "ext2/3/4".into(),
        0x0102_1994 => "tmpfs (no real fsync)".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("file system 0x{other:x}"),
    }
}

impl Machine {
    /// Reads the machine's description (fields left empty when unknown).
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            os: format!("{} {}", std::env::consts::OS, kernel.trim()),
            temp_fs: fs_type(&std::env::temp_dir()),
        }
    }

    /// One line for the docs.
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {} GiB RAM, {}; data in {} on {}",
            self.cores,
            if self.cpu.is_empty() {
                "unknown CPU"
            } else {
                &self.cpu
            },
            self.memory_gib,
            self.os,
            std::env::temp_dir().display(),
            if self.temp_fs.is_empty() {
                "an unknown file system"
            } else {
                &self.temp_fs
            }
        )
    }
}
