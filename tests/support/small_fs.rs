//! A small file system made by a test: a tmpfs of a given size mounted on a
//! folder, filled up and freed on demand, unmounted when dropped. Needs root (the
//! machines of this project have it); [`SmallFs::mount`] returns `None`, and the
//! test says it skipped, where mounting is not allowed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs.
pub struct SmallFs {
    /// Where it is mounted.
    pub path: PathBuf,
    /// The file [`SmallFs::fill`] writes.
    filler: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `mib` MiB on `path` (created if missing). `None`, after
    /// printing why, if this machine does not allow it.
    pub fn mount(path: &Path, mib: u64) -> Option<SmallFs> {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallFs {
                path: path.to_path_buf(),
                filler: path.join("filler"),
            }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs on {} (needs root): {}",
                    path.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Writes a filler file until the file system is full. Returns its size.
    pub fn fill(&self) -> u64 {
        let mut f = std::fs::File::create(&self.filler).expect("filler file");
        let chunk = vec![0xAB_u8; 64 << 10];
        let mut written = 0;
        // Bounded: a tmpfs of at most a few hundred MiB fills in well under this.
        for _ in 0..100_000 {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // Whatever is left (less than a chunk) goes too.
        for _ in 0..(64 << 10) {
            if !matches!(f.write(&[0xAB]), Ok(1)) {
                break;
            }
            written += 1;
        }
        written
    }

    /// Makes the file system read-only (`mount -o remount,ro`).
    pub fn make_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot remount {} read-only", self.path.display());
    }

    /// Removes the filler file: the space is free again.
    pub fn free(&self) {
        std::fs::remove_file(&self.filler).expect("remove the filler file");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy: a process of the test that still holds a file here (it is killed
        // by its own guard) does not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
