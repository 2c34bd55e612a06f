//! The FUSE filesystem behind `faultline lazyfs`: a passthrough over a
//! backing directory whose file data is kept in the [`Cache`] until the
//! writer fsyncs it, and the control socket through which the nemesis
//! asks it to lose what was not synced.
//!
//! Namespace operations (create, mkdir, unlink, rmdir, rename, link,
//! symlink, chmod, chown, utimes) go to the backing directory at once and
//! are durable, as in LazyFS; only file contents and sizes wait for an
//! fsync. A file created and never synced is therefore found empty after
//! a loss.
//!
//! The backing directory may be the mount point itself: the program makes
//! it its working directory before mounting and resolves every path
//! relative to it, so it keeps reaching the directory underneath the
//! mount. When it stops (SIGTERM, SIGINT, the `unmount` command) it writes
//! every unsynced change back, as a clean unmount of a real filesystem
//! would, and unmounts; the directory then holds everything that was
//! written.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, MountOption, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use serde_json::{json, Value};

use super::cache::{Cache, PAGE};
use super::FS_NAME;

/// Attributes and entries are never cached by the kernel: a loss changes
/// sizes under it.
const TTL: Duration = Duration::ZERO;

/// The root's inode number in FUSE.
const ROOT: u64 = 1;

/// Unsynced data kept before the program writes everything back, as a
/// kernel would under memory pressure: bounds its memory.
pub const DEFAULT_MAX_PENDING_MIB: u64 = 512;

/// What the filesystem and the control socket share.
#[derive(Debug)]
struct State {
    /// Path (relative to the backing directory) of every inode the kernel
    /// knows.
    paths: HashMap<u64, PathBuf>,
    /// The backing inode number of the root, swapped with [`ROOT`].
    root_ino: u64,
    cache: Cache,
    /// Open files by handle: the inode and the backing file.
    handles: HashMap<u64, (u64, Arc<File>)>,
    next_fh: u64,
    max_pending_pages: u64,
    /// Changes lost so far, over every `lose-unfsynced`.
    lost_files: u64,
    lost_bytes: u64,
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn to_time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH
    }
}

fn kind_of(ft: fs::FileType) -> FileType {
    if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_socket() {
        FileType::Socket
    } else {
        FileType::RegularFile
    }
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

impl State {
    /// The FUSE inode number of a backing inode number.
    fn fuse_ino(&self, ino: u64) -> u64 {
        if ino == self.root_ino {
            ROOT
        } else if ino == ROOT {
            self.root_ino
        } else {
            ino
        }
    }

    fn path(&self, ino: u64) -> io::Result<PathBuf> {
        self.paths
            .get(&ino)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn child(&self, parent: u64, name: &OsStr) -> io::Result<PathBuf> {
        Ok(self.path(parent)?.join(name))
    }

    fn attr(&self, path: &Path) -> io::Result<FileAttr> {
        let m = fs::symlink_metadata(path)?;
        let ino = self.fuse_ino(m.ino());
        let size = self.cache.size(ino).unwrap_or(m.size());
        Ok(FileAttr {
            ino,
            size,
            blocks: m.blocks().max(size.div_ceil(512)),
            atime: to_time(m.atime(), m.atime_nsec()),
            mtime: to_time(m.mtime(), m.mtime_nsec()),
            ctime: to_time(m.ctime(), m.ctime_nsec()),
            crtime: to_time(m.ctime(), m.ctime_nsec()),
            kind: kind_of(m.file_type()),
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    /// Looks `path` up and remembers it under its inode.
    fn remember(&mut self, path: PathBuf) -> io::Result<FileAttr> {
        let a = self.attr(&path)?;
        self.paths.insert(a.ino, path);
        Ok(a)
    }

    /// A backing file for `ino`: an open handle's, else opened by path.
    fn file_of(&self, ino: u64, fh: Option<u64>) -> io::Result<Arc<File>> {
        if let Some((_, f)) = fh.and_then(|h| self.handles.get(&h)) {
            return Ok(f.clone());
        }
        if let Some((_, f)) = self.handles.values().find(|(i, _)| *i == ino) {
            return Ok(f.clone());
        }
        let p = self.path(ino)?;
        Ok(Arc::new(OpenOptions::new().read(true).write(true).open(p)?))
    }

    /// Writes every unsynced change back (a clean unmount, or memory
    /// pressure); a file that is gone loses its changes.
    fn sync_all(&mut self) -> io::Result<()> {
        let mut first_error = None;
        for ino in self.cache.dirty_inodes() {
            match self.file_of(ino, None) {
                Ok(f) => {
                    if let Err(e) = self.cache.sync(ino, &f) {
                        first_error.get_or_insert(e);
                    }
                }
                Err(_) => {
                    self.cache.forget(ino);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Points every remembered path under `from` at `to` (a rename).
    fn renamed(&mut self, from: &Path, to: &Path) {
        // What the target replaced is no longer reachable there.
        self.paths.retain(|_, p| p.as_path() != to);
        for p in self.paths.values_mut() {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    /// Gives a new file or directory the caller's owner, as the kernel
    /// would for a process creating it.
    fn own(&self, path: &Path, req: &Request<'_>) -> io::Result<()> {
        let c = cstr(path)?;
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        let rc = unsafe { libc::lchown(c.as_ptr(), req.uid(), req.gid()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The filesystem the kernel talks to.
struct LazyFs {
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    match state.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl LazyFs {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// What a new file or directory's mode is after the caller's umask.
fn masked(mode: u32, umask: u32) -> u32 {
    mode & !umask & 0o7777
}

impl Filesystem for LazyFs {
    fn init(&mut self, _req: &Request<'_>, _config: &mut KernelConfig) -> Result<(), libc::c_int> {
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.state();
        match s.child(parent, name).and_then(|p| s.remember(p)) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let s = self.state();
        match s.path(ino).and_then(|p| s.attr(&p)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let result = (|| -> io::Result<FileAttr> {
            let path = s.path(ino)?;
            if let Some(m) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(m & 0o7777))?;
            }
            if uid.is_some() || gid.is_some() {
                let c = cstr(&path)?;
                let (u, g) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
                // SAFETY: a valid path; -1 leaves an id unchanged.
                if unsafe { libc::lchown(c.as_ptr(), u, g) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(sz) = size {
                let f = s.file_of(ino, fh)?;
                s.cache.truncate(ino, &f, sz)?;
            }
            if atime.is_some() || mtime.is_some() {
                let ts = |t: Option<TimeOrNow>| match t {
                    None => libc::timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_OMIT,
                    },
                    Some(TimeOrNow::Now) => libc::timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_NOW,
                    },
                    Some(TimeOrNow::SpecificTime(t)) => {
                        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                        libc::timespec {
                            tv_sec: d.as_secs() as libc::time_t,
                            tv_nsec: d.subsec_nanos() as libc::c_long,
                        }
                    }
                };
                let times = [ts(atime), ts(mtime)];
                let c = cstr(&path)?;
                // SAFETY: a valid path and two timespecs.
                let rc = unsafe {
                    libc::utimensat(
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        times.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            s.attr(&path)
        })();
        match result {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        let s = self.state();
        match s.path(ino).and_then(fs::read_link) {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let result = (|| {
            let path = s.child(parent, name)?;
            let c = cstr(&path)?;
            let m = (mode & libc::S_IFMT) | masked(mode, umask);
            // SAFETY: a valid path.
            if unsafe { libc::mknod(c.as_ptr(), m, rdev as libc::dev_t) } != 0 {
                return Err(io::Error::last_os_error());
            }
            s.own(&path, req)?;
            s.remember(path)
        })();
        match result {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let result = (|| {
            let path = s.child(parent, name)?;
            fs::create_dir(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(masked(mode, umask)))?;
            s.own(&path, req)?;
            s.remember(path)
        })();
        match result {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let result = (|| {
            let path = s.child(parent, name)?;
            let m = fs::symlink_metadata(&path)?;
            let ino = s.fuse_ino(m.ino());
            fs::remove_file(&path)?;
            // The last name gone and nothing open: its unsynced data can
            // never be read or synced.
            let open = s.handles.values().any(|(i, _)| *i == ino);
            if m.nlink() <= 1 && !open {
                s.cache.forget(ino);
                s.paths.remove(&ino);
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let s = self.state();
        match s.child(parent, name).and_then(fs::remove_dir) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let result = (|| {
            let path = s.child(parent, link_name)?;
            std::os::unix::fs::symlink(target, &path)?;
            s.own(&path, req)?;
            s.remember(path)
        })();
        match result {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let result = (|| {
            let from = s.child(parent, name)?;
            let to = s.child(newparent, newname)?;
            let (a, b) = (cstr(&from)?, cstr(&to)?);
            // SAFETY: two valid paths relative to the working directory.
            let rc = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    flags,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            if flags & libc::RENAME_EXCHANGE != 0 {
                let tmp = PathBuf::from("\0exchange");
                s.renamed(&from, &tmp);
                s.renamed(&to, &from);
                s.renamed(&tmp, &to);
            } else {
                s.renamed(&from, &to);
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn link(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let s = self.state();
        let result = (|| {
            let from = s.path(ino)?;
            let to = s.child(newparent, newname)?;
            fs::hard_link(&from, &to)?;
            s.attr(&to)
        })();
        match result {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let mut s = self.state();
        let result = (|| {
            let path = s.path(ino)?;
            // Always readable (a partial page is read before it is
            // written); never O_APPEND or O_TRUNC on the backing file: the
            // kernel gives every write its offset, and a truncation waits
            // for fsync like any change of contents.
            let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
            let f = OpenOptions::new()
                .read(true)
                .write(writable)
                .custom_flags(flags & (libc::O_NOATIME | libc::O_NOFOLLOW))
                .open(path)?;
            let fh = s.next_fh;
            s.next_fh += 1;
            s.handles.insert(fh, (ino, Arc::new(f)));
            if flags & libc::O_TRUNC != 0 && writable {
                let f = s.file_of(ino, Some(fh))?;
                s.cache.truncate(ino, &f, 0)?;
            }
            Ok(fh)
        })();
        match result {
            Ok(fh) => reply.opened(fh, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.state();
        let result = (|| {
            let path = s.child(parent, name)?;
            let mut o = OpenOptions::new();
            o.read(true).write(true).mode(masked(mode, umask));
            if flags & libc::O_EXCL != 0 {
                o.create_new(true);
            } else {
                o.create(true);
            }
            let f = o.open(&path)?;
            s.own(&path, req)?;
            let a = s.remember(path)?;
            let fh = s.next_fh;
            s.next_fh += 1;
            s.handles.insert(fh, (a.ino, Arc::new(f)));
            if flags & libc::O_TRUNC != 0 && a.size > 0 {
                let f = s.file_of(a.ino, Some(fh))?;
                s.cache.truncate(a.ino, &f, 0)?;
            }
            let a = s.attr(&s.path(a.ino)?)?;
            Ok((a, fh))
        })();
        match result {
            Ok((a, fh)) => reply.created(&TTL, &a, 0, fh, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let s = self.state();
        let result = s
            .file_of(ino, Some(fh))
            .and_then(|f| s.cache.read(ino, &f, offset.max(0) as u64, size as u64));
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        let result = (|| {
            let f = s.file_of(ino, Some(fh))?;
            s.cache.write(ino, &f, offset.max(0) as u64, data)?;
            if s.cache.dirty_pages() > s.max_pending_pages {
                s.sync_all()?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lo: u64, reply: ReplyEmpty) {
        // Closing is no durability point.
        reply.ok();
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh);
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let mut s = self.state();
        let result = s.file_of(ino, Some(fh)).and_then(|f| s.cache.sync(ino, &f));
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.opened(0, 0);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.state();
        let result = (|| {
            let path = s.path(ino)?;
            let mut entries: Vec<(u64, FileType, std::ffi::OsString)> = vec![
                (ino, FileType::Directory, ".".into()),
                (ino, FileType::Directory, "..".into()),
            ];
            for e in fs::read_dir(&path)? {
                let e = e?;
                let fino = s.fuse_ino(e.ino());
                let kind = e.file_type().map(kind_of).unwrap_or(FileType::RegularFile);
                s.paths
                    .entry(fino)
                    .or_insert_with(|| path.join(e.file_name()));
                entries.push((fino, kind, e.file_name()));
            }
            Ok(entries)
        })();
        match result {
            Ok(entries) => {
                for (i, (ino, kind, name)) in
                    entries.iter().enumerate().skip(offset.max(0) as usize)
                {
                    if reply.add(*ino, (i + 1) as i64, *kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Namespace changes are durable already.
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        // SAFETY: statvfs is plain data, valid when zeroed; "." is a valid
        // path and `st` a valid out-parameter.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(c".".as_ptr(), &mut st) };
        if rc != 0 {
            reply.error(errno(&io::Error::last_os_error()));
            return;
        }
        reply.statfs(
            st.f_blocks,
            st.f_bfree,
            st.f_bavail,
            st.f_files,
            st.f_ffree,
            st.f_bsize as u32,
            st.f_namemax as u32,
            st.f_frsize as u32,
        );
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, _mask: i32, reply: ReplyEmpty) {
        // The kernel checks permissions (default_permissions).
        match self.state().path(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// Answers one control command (a line): `lose-unfsynced`, `sync`,
/// `stats` or `unmount`.
fn command(state: &Mutex<State>, mount: &Path, line: &str) -> Value {
    let mut s = lock(state);
    match line.trim() {
        "lose-unfsynced" => {
            let d = s.cache.drop_all();
            s.lost_files += d.files;
            s.lost_bytes += d.bytes;
            json!({ "files": d.files, "bytes": d.bytes })
        }
        "sync" => match s.sync_all() {
            Ok(()) => json!({ "synced": true }),
            Err(e) => json!({ "error": format!("sync: {e}") }),
        },
        "stats" => json!({
            "dirty_files": s.cache.dirty_inodes().len(),
            "dirty_bytes": s.cache.dirty_bytes(),
            "lost_files": s.lost_files,
            "lost_bytes": s.lost_bytes,
        }),
        "unmount" => {
            let synced = s.sync_all();
            drop(s);
            unmount_and_exit(mount, synced.err());
        }
        other => {
            json!({ "error": format!("unknown command {other:?} (lose-unfsynced, sync, stats, unmount)") })
        }
    }
}

/// Detaches the mount and ends the program; a failed final write-back is
/// reported on stderr (the log) first.
fn unmount_and_exit(mount: &Path, sync_error: Option<io::Error>) -> ! {
    if let Some(e) = sync_error {
        eprintln!("lazyfs: writing unsynced data back at unmount: {e}");
    }
    if let Ok(c) = cstr(mount) {
        // SAFETY: a valid path.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!(
                "lazyfs: unmount {}: {}",
                mount.display(),
                io::Error::last_os_error()
            );
        }
    }
    eprintln!("lazyfs: unmounted {}", mount.display());
    std::process::exit(0)
}

fn serve_control(listener: UnixListener, state: Arc<Mutex<State>>, mount: PathBuf) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let mut reader = BufReader::new(match conn.try_clone() {
            Ok(c) => c,
            Err(_) => continue,
        });
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        let answer = command(&state, &mount, &line);
        let mut conn = conn;
        let _ = writeln!(conn, "{answer}");
    }
}

/// Sends `cmd` to the program listening on `control` and returns its
/// answer (one JSON line).
pub fn send(control: &Path, cmd: &str) -> io::Result<String> {
    let mut conn = UnixStream::connect(control)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    writeln!(conn, "{cmd}")?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// Mounts the filesystem over `mount`, backed by `backing` (which may be
/// the same directory), serves `control`, and runs until SIGTERM, SIGINT
/// or the `unmount` command, which write everything back and unmount.
pub fn run(backing: &Path, mount: &Path, control: &Path, max_pending_mib: u64) -> io::Result<()> {
    let backing = backing.canonicalize()?;
    let mount = mount.canonicalize()?;
    let root_ino = fs::metadata(&backing)?.ino();
    // Named from where the program was started, not from the backing
    // directory it is about to move into.
    let control = std::path::absolute(control)?;
    // Every path is resolved from here, under the mount when it covers
    // the backing directory.
    std::env::set_current_dir(&backing)?;
    // Signals go to the thread that waits for them, not to the FUSE loop.
    // SAFETY: plain libc signal-mask calls on a set built here.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let state = Arc::new(Mutex::new(State {
        paths: HashMap::from([(ROOT, PathBuf::from("."))]),
        root_ino,
        cache: Cache::new(),
        handles: HashMap::new(),
        next_fh: 1,
        max_pending_pages: max_pending_mib.max(1) * (1 << 20) / PAGE,
        lost_files: 0,
        lost_bytes: 0,
    }));
    let _ = fs::remove_file(&control);
    let listener = UnixListener::bind(&control)?;
    {
        let (state, mount) = (state.clone(), mount.clone());
        std::thread::spawn(move || serve_control(listener, state, mount));
    }
    {
        let (state, mount) = (state.clone(), mount.clone());
        std::thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: waits on the blocked set built above.
            unsafe { libc::sigwait(&set, &mut sig) };
            let synced = lock(&state).sync_all();
            unmount_and_exit(&mount, synced.err());
        });
    }
    let options = [
        MountOption::FSName(FS_NAME.into()),
        MountOption::Subtype(FS_NAME.into()),
        MountOption::AllowOther,
        MountOption::DefaultPermissions,
        MountOption::RW,
        MountOption::Dev,
        MountOption::Suid,
    ];
    let mut session = fuser::Session::new(LazyFs { state }, &mount, &options)?;
    eprintln!(
        "lazyfs: mounted {} over {} (control {})",
        mount.display(),
        backing.display(),
        control.display()
    );
    let served = session.run();
    // The mount is gone (unmounted here, or by someone else): nothing is
    // left for the session to unmount when dropped.
    std::mem::forget(session);
    served
}
