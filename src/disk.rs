//! Disk space: owns asking how much room a file system has (statvfs), recognising an I/O
//! error that means it is full, and the directory a file being written goes in
//! (`output_dir`). Used by `bundle::write` and `bundle::parts` (and `pack` before
//! downloading) and by `engine` (the engine's data root before a load).

use std::io;
use std::path::{Path, PathBuf};

/// The directory a file at `output` is written in (its temporary files, and the parts of a
/// split bundle, go there too): the parent, or `.` for a bare file name.
pub fn output_dir(output: &Path) -> PathBuf {
    output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Free bytes (for unprivileged users) of the file system holding `path`; `None` when it
/// cannot be asked (no such path).
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs struct.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Whether `e` says the disk (or the user's quota) is full. By kind, which `fs_err` keeps
/// when it wraps the OS error to name the file (the raw OS error is then hidden).
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_of_tmp() {
        assert!(free_bytes(Path::new("/tmp")).is_some_and(|n| n > 0));
        assert!(free_bytes(Path::new("/nonexistent/dir")).is_none());
    }

    #[test]
    fn full_disk_errors() {
        assert!(is_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_full(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_full(&io::Error::from_raw_os_error(libc::EACCES)));
        // fs_err wraps the OS error to name the file; still full.
        let e = fs_err::write("/dev/full", b"x").unwrap_err();
        assert!(e.raw_os_error().is_none() && is_full(&e), "{e:?}");
    }
}
