//! Files written so that a crash or an error never leaves them half-written: a temporary sibling filled first,
//! then renamed into place (or removed when anything fails).
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Write a file so that it is either absent or complete: write a sibling temporary file, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| Error::io(tmp, e)))
}

/// [`write_atomic`] for writers that stream: `write` fills the temporary sibling (`<name>.<ext>.tmp<pid>`; the
/// parent folder is created first), which is renamed to `path` when `write` succeeds and removed when anything
/// fails, so `path` is never left half-written.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write a new folder atomically: `fill` writes into a temporary sibling of `root`, which is renamed to `root`
/// when `fill` succeeds and removed when it fails, so a failed write never leaves a folder that looks complete.
/// An existing `root` is refused. Returns `root`.
pub fn new_folder(root: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    if root.exists() {
        return Err(Error::File {
            path: root.to_path_buf(),
            message: "already exists; a new folder is written here".into(),
        });
    }
    let name =
        root.file_name().ok_or_else(|| Error::config("folder", format!("'{}' has no folder name", root.display())))?;
    let parent = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = parent.join(format!("{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = fill(&tmp).and_then(|()| std::fs::rename(&tmp, root).map_err(|e| Error::io(root, e)));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|()| root.to_path_buf())
}

/// Copy a folder tree (plain files and folders) to `dst`, which must not exist, atomically as [`new_folder`] does.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<PathBuf> {
    fn copy(src: &Path, dst: &Path) -> Result<()> {
        for entry in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
            let entry = entry.map_err(|e| Error::io(src, e))?;
            let (from, to) = (entry.path(), dst.join(entry.file_name()));
            if entry.file_type().map_err(|e| Error::io(&from, e))?.is_dir() {
                std::fs::create_dir(&to).map_err(|e| Error::io(&to, e))?;
                copy(&from, &to)?;
            } else {
                std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        Ok(())
    }
    new_folder(dst, |tmp| copy(src, tmp))
}

/// A name usable as a file name: ASCII letters, digits, `-` and `.` kept, everything else `_` (a preset given as
/// `configs/x.toml` or a factor named `object hue` becomes one file name).
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("dydis-atomic-{}", std::process::id()));
        let path = dir.join("x.png");
        write_atomic(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
