//! A file reader for `object::ReadCache` that reads at an offset (`pread`) and keeps its
//! position and length in memory: one system call per read, where `Read + Seek` on a `File`
//! costs a seek and a read, and `ReadCache` seeks before every read.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
};

/// Reads `file` at a position it keeps itself; the file's own offset is never moved.
pub(crate) struct Positional<'a> {
    file: &'a File,
    pos: u64,
    len: u64,
}

impl<'a> Positional<'a> {
    /// A reader at the start of `file`, whose length is read once, now.
    pub(crate) fn new(file: &'a File) -> io::Result<Self> {
        Ok(Positional {
            file,
            pos: 0,
            len: file.metadata()?.len(),
        })
    }
}

impl Read for Positional<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Positional<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, at)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_where_it_was_sought_and_leaves_the_file_offset_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let mut r = Positional::new(&file).unwrap();
        assert_eq!(r.seek(SeekFrom::End(-3)).unwrap(), 7);
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"789");
        r.seek(SeekFrom::Start(2)).unwrap();
        r.read_exact(&mut buf[..2]).unwrap();
        assert_eq!(&buf[..2], b"23");
        assert!(r.seek(SeekFrom::Current(-10)).is_err());
        assert_eq!((&file).stream_position().unwrap(), 0);
    }
}
