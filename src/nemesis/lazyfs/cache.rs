//! The page cache of `faultline lazyfs`: what was written to a file but
//! not yet fsynced, kept in memory per file, over the backing file that
//! holds what is durable.
//!
//! A file with unsynced changes has a [`Pending`]: its dirty pages
//! ([`PAGE`] bytes each, read from the backing file on first touch), its
//! size as the writer sees it, and `valid`, how much of the backing file
//! still means anything (a truncation below it makes the bytes past it
//! read as zeros, even though the backing file still holds them). Reads
//! see the pending state; `fsync` ([`Cache::sync`]) writes it to the
//! backing file and syncs that; [`Cache::drop_all`] forgets it, as a
//! power failure would, and says how much was lost.
//!
//! Invariant: in every dirty page, the bytes at or past the file's size
//! are zeros, so growing a file reads zeros in the gap.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The size of a cached page.
pub const PAGE: u64 = 4096;

/// The unsynced state of one file.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Dirty pages by index; each [`PAGE`] bytes long.
    pages: BTreeMap<u64, Box<[u8]>>,
    /// The size the writer sees.
    size: u64,
    /// The prefix of the backing file that is still the file's content
    /// where no page is dirty.
    valid: u64,
}

impl Pending {
    fn new(backing_len: u64) -> Pending {
        Pending {
            pages: BTreeMap::new(),
            size: backing_len,
            valid: backing_len,
        }
    }

    /// The bytes of data written and not synced: each dirty page's bytes
    /// below the size.
    fn dirty_bytes(&self) -> u64 {
        self.pages
            .keys()
            .map(|&i| PAGE.min(self.size.saturating_sub(i * PAGE)))
            .sum()
    }
}

/// What [`Cache::drop_all`] threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Files that had unsynced changes (data or size).
    pub files: u64,
    /// Bytes of their dirty pages below each file's end: the unsynced
    /// contents lost, counted in whole pages as a kernel's page cache
    /// would write them back.
    pub bytes: u64,
}

/// The unsynced state of every file, by inode number.
#[derive(Debug, Default)]
pub struct Cache {
    files: HashMap<u64, Pending>,
    /// Dirty pages over all files, to bound memory.
    pages: u64,
}

/// Reads up to `PAGE` bytes of page `index` of `file`, zero beyond
/// `valid` (and beyond the end of the file).
fn load_page(file: &File, index: u64, valid: u64) -> io::Result<Box<[u8]>> {
    let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
    let start = index * PAGE;
    let want = valid.saturating_sub(start).min(PAGE) as usize;
    let mut got = 0;
    while got < want {
        match file.read_at(&mut page[got..want], start + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(page)
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    fn entry(&mut self, ino: u64, file: &File) -> io::Result<&mut Pending> {
        match self.files.entry(ino) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                Ok(e.insert(Pending::new(file.metadata()?.len())))
            }
        }
    }

    /// The size of `ino` as the writer sees it, when it has unsynced
    /// changes.
    pub fn size(&self, ino: u64) -> Option<u64> {
        self.files.get(&ino).map(|p| p.size)
    }

    /// Whether `ino` has unsynced changes.
    pub fn is_dirty(&self, ino: u64) -> bool {
        self.files.contains_key(&ino)
    }

    /// The inodes with unsynced changes.
    pub fn dirty_inodes(&self) -> Vec<u64> {
        self.files.keys().copied().collect()
    }

    /// Dirty pages over all files.
    pub fn dirty_pages(&self) -> u64 {
        self.pages
    }

    /// Bytes of unsynced data over all files.
    pub fn dirty_bytes(&self) -> u64 {
        self.files.values().map(Pending::dirty_bytes).sum()
    }

    /// Writes `data` at `offset` of `ino` (backed by `file`) in memory.
    pub fn write(&mut self, ino: u64, file: &File, offset: u64, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut added = 0;
        let p = self.entry(ino, file)?;
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let n = ((PAGE - pos % PAGE).min(end - pos)) as usize;
            if !p.pages.contains_key(&index) {
                let page = load_page(file, index, p.valid.min(p.size))?;
                p.pages.insert(index, page);
                added += 1;
            }
            let from = (pos - offset) as usize;
            if let Some(page) = p.pages.get_mut(&index) {
                page[in_page..in_page + n].copy_from_slice(&data[from..from + n]);
            }
            pos += n as u64;
        }
        p.size = p.size.max(end);
        self.pages += added;
        Ok(())
    }

    /// Reads up to `len` bytes at `offset` of `ino` as the writer sees it.
    pub fn read(&self, ino: u64, file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let (size, valid) = match self.files.get(&ino) {
            Some(p) => (p.size, p.valid.min(p.size)),
            None => {
                let l = file.metadata()?.len();
                (l, l)
            }
        };
        let end = size.min(offset.saturating_add(len));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let n = ((PAGE - pos % PAGE).min(end - pos)) as usize;
            match self.files.get(&ino).and_then(|p| p.pages.get(&index)) {
                Some(page) => out.extend_from_slice(&page[in_page..in_page + n]),
                None => {
                    let page = load_page(file, index, valid)?;
                    out.extend_from_slice(&page[in_page..in_page + n]);
                }
            }
            pos += n as u64;
        }
        Ok(out)
    }

    /// Sets the size of `ino` in memory (ftruncate, O_TRUNC, growth).
    pub fn truncate(&mut self, ino: u64, file: &File, size: u64) -> io::Result<()> {
        let p = self.entry(ino, file)?;
        let before = p.pages.len() as u64;
        if size < p.size {
            p.valid = p.valid.min(size);
            let first_gone = size.div_ceil(PAGE);
            p.pages.retain(|&i, _| i < first_gone);
            if size % PAGE != 0 {
                if let Some(page) = p.pages.get_mut(&(size / PAGE)) {
                    page[(size % PAGE) as usize..].fill(0);
                }
            }
        }
        p.size = size;
        let after = p.pages.len() as u64;
        self.pages = self.pages.saturating_sub(before) + after;
        Ok(())
    }

    /// Makes `ino`'s unsynced changes durable in `file` (fsync): the
    /// backing file is cut to what is still valid, the dirty pages are
    /// written, the size set, and the file synced. Nothing to do is fine.
    pub fn sync(&mut self, ino: u64, file: &File) -> io::Result<()> {
        let Some(p) = self.files.get(&ino) else {
            return Ok(());
        };
        let backing_len = file.metadata()?.len();
        if p.valid < backing_len {
            file.set_len(p.valid)?;
        }
        for (&index, page) in &p.pages {
            let start = index * PAGE;
            let n = PAGE.min(p.size.saturating_sub(start)) as usize;
            if n > 0 {
                file.write_all_at(&page[..n], start)?;
            }
        }
        file.set_len(p.size)?;
        file.sync_data()?;
        self.forget(ino);
        Ok(())
    }

    /// Forgets `ino`'s unsynced changes (after a sync, or when the file is
    /// gone); what was forgotten.
    pub fn forget(&mut self, ino: u64) -> Dropped {
        match self.files.remove(&ino) {
            Some(p) => {
                self.pages = self.pages.saturating_sub(p.pages.len() as u64);
                Dropped {
                    files: 1,
                    bytes: p.dirty_bytes(),
                }
            }
            None => Dropped::default(),
        }
    }

    /// Forgets every unsynced change, as a power failure would: the
    /// backing files keep what was synced. Says how much was lost.
    pub fn drop_all(&mut self) -> Dropped {
        let mut d = Dropped::default();
        for ino in self.dirty_inodes() {
            let one = self.forget(ino);
            d.files += one.files;
            d.bytes += one.bytes;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backing(content: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, content).expect("write");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        (dir, file)
    }

    fn on_disk(file: &File) -> Vec<u8> {
        let len = file.metadata().expect("stat").len();
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, 0).expect("read");
        buf
    }

    #[test]
    fn a_write_is_seen_by_reads_but_not_on_disk_until_fsync() {
        let (_d, f) = backing(b"hello world");
        let mut c = Cache::new();
        c.write(7, &f, 6, b"there, friend").expect("write");
        assert_eq!(c.size(7), Some(19));
        assert_eq!(c.read(7, &f, 0, 100).expect("read"), b"hello there, friend");
        assert_eq!(on_disk(&f), b"hello world", "not synced yet");
        c.sync(7, &f).expect("sync");
        assert_eq!(on_disk(&f), b"hello there, friend");
        assert!(!c.is_dirty(7));
        assert_eq!(c.dirty_pages(), 0);
    }

    #[test]
    fn a_partial_overwrite_across_pages_keeps_the_bytes_around_it() {
        let original: Vec<u8> = (0..3 * PAGE).map(|i| (i % 251) as u8).collect();
        let (_d, f) = backing(&original);
        let mut c = Cache::new();
        let at = PAGE - 3;
        c.write(1, &f, at, &[0xAA; 10]).expect("write");
        assert_eq!(c.dirty_pages(), 2, "the write straddles two pages");
        let mut want = original.clone();
        want[at as usize..at as usize + 10].fill(0xAA);
        assert_eq!(c.read(1, &f, 0, 3 * PAGE).expect("read"), want);
        // A read inside one clean page comes from the backing file.
        assert_eq!(
            c.read(1, &f, 2 * PAGE + 5, 4).expect("read"),
            &original[2 * PAGE as usize + 5..2 * PAGE as usize + 9]
        );
        c.sync(1, &f).expect("sync");
        assert_eq!(on_disk(&f), want);
    }

    #[test]
    fn drop_forgets_unsynced_data_and_counts_it_but_keeps_what_was_synced() {
        let (_d, f) = backing(b"");
        let (_d2, g) = backing(b"");
        let mut c = Cache::new();
        c.write(3, &f, 0, b"durable").expect("write");
        c.sync(3, &f).expect("sync");
        c.write(3, &f, 7, b" and lost").expect("write");
        c.write(4, &g, 0, &[1u8; 5000]).expect("write");
        let d = c.drop_all();
        // Counted in dirty pages, up to each file's end: the whole first
        // page of the first file (16 bytes long), both pages of the second.
        assert_eq!(
            d,
            Dropped {
                files: 2,
                bytes: 16 + 5000
            }
        );
        assert_eq!(c.read(3, &f, 0, 100).expect("read"), b"durable");
        assert_eq!(on_disk(&f), b"durable");
        assert_eq!(c.read(4, &g, 0, 100).expect("read"), b"");
        assert_eq!(c.dirty_pages(), 0);
        assert_eq!(c.drop_all(), Dropped::default());
    }

    #[test]
    fn truncate_then_grow_reads_zeros_and_fsync_makes_it_so() {
        let (_d, f) = backing(&[9u8; 2 * PAGE as usize]);
        let mut c = Cache::new();
        c.truncate(5, &f, 10).expect("truncate");
        assert_eq!(c.size(5), Some(10));
        assert_eq!(on_disk(&f).len(), 2 * PAGE as usize, "not synced yet");
        // Written past the end: the gap reads as zeros, not the old bytes.
        c.write(5, &f, PAGE + 100, b"x").expect("write");
        let got = c.read(5, &f, 0, 2 * PAGE).expect("read");
        assert_eq!(got.len(), PAGE as usize + 101);
        assert_eq!(&got[..10], &[9u8; 10]);
        assert!(got[10..PAGE as usize + 100].iter().all(|&b| b == 0));
        assert_eq!(got[PAGE as usize + 100], b'x');
        c.sync(5, &f).expect("sync");
        assert_eq!(on_disk(&f), got);
    }

    #[test]
    fn truncate_inside_a_dirty_page_zeroes_its_tail() {
        let (_d, f) = backing(b"");
        let mut c = Cache::new();
        c.write(2, &f, 0, b"abcdefgh").expect("write");
        c.truncate(2, &f, 3).expect("truncate");
        c.truncate(2, &f, 6).expect("grow");
        assert_eq!(c.read(2, &f, 0, 100).expect("read"), b"abc\0\0\0");
        // A truncation alone is a change that a drop loses.
        c.sync(2, &f).expect("sync");
        c.truncate(2, &f, 0).expect("truncate");
        assert_eq!(c.drop_all(), Dropped { files: 1, bytes: 0 });
        assert_eq!(on_disk(&f), b"abc\0\0\0");
    }
}
