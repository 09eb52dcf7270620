//! The file system side of the state directory: a private directory,
//! atomic replacement of files, the writers' lock, change stamps, and
//! randomness from the OS.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::StateError;

/// Identifies one version of a file: device, inode, size and modification
/// time. Files are replaced by rename, so every save makes a new inode and a
/// new stamp, even within the same second. Compare with `==`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}

/// Running as root (picks the default state directory).
pub(super) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `N` bytes from the OS CSPRNG.
pub(super) fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Create `path` (and its missing parents) with the last component 0700.
/// An existing directory that others may read is tightened to 0700 when it
/// is empty, and refused otherwise (it may be a shared directory such as
/// `/tmp`, which must not be changed).
pub(super) fn create_private_dir(path: &Path) -> Result<(), StateError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| StateError::io(parent, e))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => return set_mode(path, 0o700),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StateError::io(path, e)),
    }
    let meta = fs::metadata(path).map_err(|e| StateError::io(path, e))?;
    if !meta.is_dir() {
        return Err(StateError::io(
            path,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ),
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let empty = fs::read_dir(path)
        .map_err(|e| StateError::io(path, e))?
        .next()
        .is_none();
    if !empty {
        return Err(StateError::Invalid {
            path: path.to_owned(),
            line: None,
            what: format!(
                "this directory is open to other users (mode {mode:04o}) and not empty; \
                 the state directory holds the server's private key: give a new \
                 directory, or `chmod 700` this one"
            ),
        });
    }
    set_mode(path, 0o700)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StateError> {
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|e| StateError::io(path, e))
}

/// Replace `dir/name` with `data` atomically: a temporary file in `dir`
/// (mode `mode`), written and flushed to disk, renamed over `name`, then the
/// directory flushed. On failure the temporary file is removed and the old
/// file, if any, is untouched.
pub(super) fn write_atomic(
    dir: &Path,
    name: &str,
    data: &[u8],
    mode: u32,
) -> Result<(), StateError> {
    let suffix: [u8; 6] = random().map_err(StateError::Random)?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.{}.{suffix}.tmp", std::process::id()));
    let target = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| StateError::io(&tmp, e))?;
    let written = (|| {
        // The umask may have taken bits away; set exactly `mode`.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &target)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(StateError::io(&target, e));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io(dir, e))
}

/// Read a whole text file with the [`Stamp`] of exactly the version read;
/// `None` if it does not exist.
pub(super) fn read(path: &Path) -> Result<Option<(String, Stamp)>, StateError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io(path, e)),
    };
    let meta = file.metadata().map_err(|e| StateError::io(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| StateError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| StateError::Invalid {
        path: path.to_owned(),
        line: Some(
            e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        ),
        what: "not UTF-8 text".into(),
    })?;
    Ok(Some((text, Stamp::of(&meta))))
}

/// The [`Stamp`] of `path` now; `None` if it does not exist.
pub(super) fn stamp(path: &Path) -> Result<Option<Stamp>, StateError> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp::of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io(path, e)),
    }
}

/// Remove `path`; fine if it is not there.
pub(super) fn remove_if_exists(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::io(path, e)),
    }
}

/// Log a warning when `path` grants any of `mask`'s permission bits.
pub(super) fn warn_if_loose(path: &Path, mask: u32) {
    if let Ok(m) = fs::metadata(path) {
        let mode = m.mode() & 0o777;
        if mode & mask != 0 {
            tracing::warn!(
                path = %path.display(),
                "mode {mode:04o} lets other users in; `chmod {:o}` it",
                mode & !mask
            );
        }
    }
}

/// The writers' lock, held until dropped.
pub(super) struct Lock {
    _held: Flock<File>,
}

/// Take the writers' lock `path` (created 0600), waiting for another writer.
pub(super) fn lock(path: &Path) -> Result<Lock, StateError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| StateError::io(path, e))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map(|held| Lock { _held: held })
        .map_err(|(_, errno)| StateError::io(path, io::Error::from(errno)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn atomic_write_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.toml", b"one", 0o600).unwrap();
        write_atomic(dir.path(), "a.toml", b"two", 0o644).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["a.toml"]);
        let p = dir.path().join("a.toml");
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o644);
    }

    #[test]
    fn failed_write_leaves_nothing_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a", b"old", 0o600).unwrap();
        // A directory in the way makes the rename fail.
        fs::create_dir(dir.path().join("b")).unwrap();
        fs::write(dir.path().join("b/x"), b"").unwrap();
        assert!(write_atomic(dir.path(), "b", b"new", 0o600).is_err());
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"old");
    }

    #[test]
    fn stamps_change_on_every_save() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        assert_eq!(stamp(&p).unwrap(), None);
        write_atomic(dir.path(), "c", b"same", 0o600).unwrap();
        let (text, s1) = read(&p).unwrap().unwrap();
        assert_eq!(text, "same");
        assert_eq!(stamp(&p).unwrap(), Some(s1));
        write_atomic(dir.path(), "c", b"same", 0o600).unwrap();
        assert_ne!(stamp(&p).unwrap(), Some(s1));
    }

    #[test]
    fn private_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/y/state");
        create_private_dir(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        create_private_dir(&p).unwrap();
        // An empty loose directory is tightened; a non-empty one refused.
        let loose = dir.path().join("loose");
        fs::create_dir(&loose).unwrap();
        fs::set_permissions(&loose, Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700);
        fs::set_permissions(&loose, Permissions::from_mode(0o755)).unwrap();
        fs::write(loose.join("f"), b"").unwrap();
        let e = create_private_dir(&loose).unwrap_err();
        assert!(e.is_usage(), "{e}");
        assert!(e.to_string().contains("0755"), "{e}");
        assert_eq!(mode(&loose), 0o755);
        // A file in the way.
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(create_private_dir(&file).is_err());
    }

    #[test]
    fn non_utf8_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        fs::write(&p, b"a\nb\n\xff\n").unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.to_string().ends_with("t:3: not UTF-8 text"), "{e}");
    }
}
