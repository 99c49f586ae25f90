//! A cache of decompressed kernels, so building the same bzImage again skips decompressing it.
//!
//! Under emulation most of a PV build is spent inflating the kernel (xz: seconds); a dom0
//! boots the same few kernels over and over, so the decompressed ELF is kept on disk, keyed
//! on the kernel file's device, inode, size, mtime and ctime. Replacing or rewriting the
//! kernel changes the key, so a stale entry can never be hit; entries beyond the newest
//! [`KernelCache::DEFAULT_MAX_ENTRIES`] are pruned. The directory must belong to us and be
//! closed to everyone else (mode 0700): whoever can write it chooses what guests boot, so a
//! directory that fails that check is not used at all.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::image::{ImageError, KernelImage};

/// Where `xm create` keeps decompressed kernels unless told otherwise.
pub const DEFAULT_DIR: &str = "/var/cache/xm-rs/kernels";

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The decompressed ELF came from the cache.
    Hit,
    /// Not cached yet: the caller read the original and may [`KernelCache::store`] it.
    Miss,
    /// No caching (disabled, or the directory is unusable).
    Off,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Off => "off",
        }
    }
}

/// Where a loaded kernel's bytes are.
#[derive(Debug)]
pub enum KernelSource {
    /// A cache entry (a decompressed ELF), opened: it is parsed with positioned reads and
    /// its segments go straight into guest memory, so tens of MiB are never copied into
    /// this process first.
    Cached(File),
    /// The kernel file as it is on disk.
    Original(Vec<u8>),
}

/// A kernel, and where it came from.
#[derive(Debug)]
pub struct LoadedKernel {
    /// The cache entry on a hit, else the kernel file's bytes.
    pub source: KernelSource,
    pub outcome: CacheOutcome,
    /// The entry to fill after a miss.
    entry: Option<PathBuf>,
}

impl LoadedKernel {
    /// Parses the kernel: the cached ELF in place, or the file's bytes (an ELF, or a bzImage
    /// whose payload may decompress to at most `max_decompressed` bytes).
    pub fn parse(&self, max_decompressed: usize) -> Result<KernelImage<'_>, ImageError> {
        match &self.source {
            KernelSource::Cached(file) => KernelImage::parse_elf_file(file),
            KernelSource::Original(bytes) => KernelImage::parse(bytes, max_decompressed),
        }
    }
}

/// A directory of decompressed kernels.
#[derive(Debug, Clone)]
pub struct KernelCache {
    dir: PathBuf,
    max_entries: usize,
}

impl KernelCache {
    /// How many decompressed kernels are kept (each is tens of MiB).
    pub const DEFAULT_MAX_ENTRIES: usize = 4;

    pub fn new(dir: impl Into<PathBuf>) -> KernelCache {
        KernelCache {
            dir: dir.into(),
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }

    pub fn with_max_entries(mut self, max_entries: usize) -> KernelCache {
        self.max_entries = max_entries.max(1);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the kernel at `path`: from the cache when an entry matches the file, else the
    /// file itself. Only reading `path` can fail; cache trouble falls back to the file.
    pub fn load(cache: Option<&KernelCache>, path: &Path) -> io::Result<LoadedKernel> {
        let entry = cache.and_then(|c| c.entry_for(path));
        if let Some(entry) = &entry {
            match open_elf(entry) {
                Ok(Some(file)) => {
                    debug!(entry = %entry.display(), "kernel cache hit");
                    return Ok(LoadedKernel {
                        source: KernelSource::Cached(file),
                        outcome: CacheOutcome::Hit,
                        entry: None,
                    });
                }
                Ok(None) => {
                    warn!(entry = %entry.display(), "kernel cache entry is not an ELF; ignoring it");
                    let _ = fs::remove_file(entry);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => warn!(entry = %entry.display(), "kernel cache: {e}"),
            }
        }
        let outcome = if entry.is_some() {
            CacheOutcome::Miss
        } else {
            CacheOutcome::Off
        };
        Ok(LoadedKernel {
            source: KernelSource::Original(fs::read(path)?),
            outcome,
            entry,
        })
    }

    /// Keeps `elf`, the decompressed form of a kernel loaded with a miss. Failures only cost
    /// the next build some time, so they are logged, not returned.
    pub fn store(&self, loaded: &LoadedKernel, elf: &[u8]) {
        let Some(entry) = &loaded.entry else { return };
        let temporary = entry.with_extension(format!("tmp{}", std::process::id()));
        let stored = fs::write(&temporary, elf).and_then(|()| fs::rename(&temporary, entry));
        if let Err(err) = stored {
            warn!("kernel cache {}: {err}", entry.display());
            let _ = fs::remove_file(&temporary);
            return;
        }
        self.prune();
    }

    /// The entry for the kernel at `path`, creating the directory if needed; `None` when the
    /// file cannot be examined or the directory is not safe to use.
    fn entry_for(&self, path: &Path) -> Option<PathBuf> {
        let m = fs::metadata(path).ok()?;
        if let Err(reason) = self.usable_dir() {
            warn!(dir = %self.dir.display(), "kernel cache not used: {reason}");
            return None;
        }
        let key = format!(
            "{:x}-{:x}-{:x}-{:x}.{:x}-{:x}.{:x}.elf",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        );
        Some(self.dir.join(key))
    }

    /// Creates the directory (0700) if missing; refuses one that others could write to.
    fn usable_dir(&self) -> Result<(), String> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| e.to_string())?;
        let m = fs::symlink_metadata(&self.dir).map_err(|e| e.to_string())?;
        if !m.is_dir() {
            return Err("not a directory".into());
        }
        let euid = effective_uid();
        if m.uid() != euid {
            return Err(format!("owned by uid {}, not {euid}", m.uid()));
        }
        if m.mode() & 0o022 != 0 {
            return Err(format!(
                "mode {:o} lets others write to it",
                m.mode() & 0o777
            ));
        }
        Ok(())
    }

    /// Removes the oldest entries beyond `max_entries`, and stray temporaries.
    fn prune(&self) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = dir
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "elf"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        entries.sort();
        let excess = entries.len().saturating_sub(self.max_entries);
        for (_, path) in entries.into_iter().take(excess) {
            debug!(entry = %path.display(), "kernel cache: pruning");
            let _ = fs::remove_file(path);
        }
    }
}

/// Opens a cache entry; `None` when it does not start like an ELF file.
fn open_elf(entry: &Path) -> io::Result<Option<File>> {
    let file = File::open(entry)?;
    let mut magic = [0u8; 4];
    match file.read_exact_at(&mut magic, 0) {
        Ok(()) if crate::image::elf::has_elf_magic(&magic) => Ok(Some(file)),
        Ok(()) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// The effective uid, from procfs (this crate has no unsafe and no libc).
fn effective_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xm-rs-kcache-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const ELF: &[u8] = b"\x7fELF\x02\x01\x01 decompressed";

    /// What a load holds: the cache entry's bytes on a hit, else the file's.
    fn contents(loaded: &LoadedKernel) -> Vec<u8> {
        match &loaded.source {
            KernelSource::Original(bytes) => bytes.clone(),
            KernelSource::Cached(file) => {
                let mut bytes = vec![0; file.metadata().unwrap().len() as usize];
                file.read_exact_at(&mut bytes, 0).unwrap();
                bytes
            }
        }
    }

    #[test]
    fn a_miss_reads_the_file_and_the_stored_entry_is_hit_next_time() {
        let root = scratch("hit");
        let kernel = root.join("vmlinuz");
        fs::write(&kernel, b"compressed bzImage").unwrap();
        let cache = KernelCache::new(root.join("cache"));
        let first = KernelCache::load(Some(&cache), &kernel).unwrap();
        assert_eq!(first.outcome, CacheOutcome::Miss);
        assert_eq!(contents(&first), b"compressed bzImage");
        cache.store(&first, ELF);
        let second = KernelCache::load(Some(&cache), &kernel).unwrap();
        assert_eq!(second.outcome, CacheOutcome::Hit);
        assert_eq!(contents(&second), ELF);
        let mode = fs::metadata(cache.dir()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn rewriting_the_kernel_misses_instead_of_booting_the_old_one() {
        let root = scratch("stale");
        let kernel = root.join("vmlinuz");
        fs::write(&kernel, b"old kernel").unwrap();
        let cache = KernelCache::new(root.join("cache"));
        let first = KernelCache::load(Some(&cache), &kernel).unwrap();
        cache.store(&first, ELF);
        // A new kernel of another size at the same path (what a package upgrade does).
        fs::remove_file(&kernel).unwrap();
        fs::write(&kernel, b"the new kernel").unwrap();
        let again = KernelCache::load(Some(&cache), &kernel).unwrap();
        assert_eq!(again.outcome, CacheOutcome::Miss);
        assert_eq!(contents(&again), b"the new kernel");
    }

    #[test]
    fn a_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let root = scratch("open");
        let dir = root.join("cache");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let kernel = root.join("vmlinuz");
        fs::write(&kernel, b"k").unwrap();
        let loaded = KernelCache::load(Some(&KernelCache::new(&dir)), &kernel).unwrap();
        assert_eq!(loaded.outcome, CacheOutcome::Off);
        assert_eq!(contents(&loaded), b"k");
    }

    #[test]
    fn an_entry_that_is_not_an_elf_is_dropped() {
        let root = scratch("junk");
        let kernel = root.join("vmlinuz");
        fs::write(&kernel, b"bz").unwrap();
        let cache = KernelCache::new(root.join("cache"));
        let first = KernelCache::load(Some(&cache), &kernel).unwrap();
        cache.store(&first, b"not an elf at all");
        let again = KernelCache::load(Some(&cache), &kernel).unwrap();
        assert_eq!(again.outcome, CacheOutcome::Miss);
        assert_eq!(contents(&again), b"bz");
    }

    #[test]
    fn only_the_newest_entries_are_kept() {
        let root = scratch("prune");
        let cache = KernelCache::new(root.join("cache")).with_max_entries(2);
        for i in 0..4 {
            let kernel = root.join(format!("vmlinuz-{i}"));
            fs::write(&kernel, vec![b'k'; i + 1]).unwrap();
            let loaded = KernelCache::load(Some(&cache), &kernel).unwrap();
            cache.store(&loaded, ELF);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let kept = fs::read_dir(cache.dir()).unwrap().count();
        assert_eq!(kept, 2);
        let newest = root.join("vmlinuz-3");
        let hit = KernelCache::load(Some(&cache), &newest).unwrap();
        assert_eq!(hit.outcome, CacheOutcome::Hit);
    }

    #[test]
    fn no_cache_means_the_file_as_it_is() {
        let root = scratch("off");
        let kernel = root.join("vmlinuz");
        fs::write(&kernel, b"plain").unwrap();
        let loaded = KernelCache::load(None, &kernel).unwrap();
        assert_eq!(loaded.outcome, CacheOutcome::Off);
        assert_eq!(contents(&loaded), b"plain");
    }
}
