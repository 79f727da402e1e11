//! The per-connection input buffer: bytes read from the socket and not yet consumed.

use std::io;
use std::os::fd::RawFd;

use super::socket_io;

/// Initial size; grows up to the head limit or the pre-buffered body size.
const INITIAL: usize = 16 * 1024;

/// A byte window `data[start..end]` over a reusable allocation.
#[derive(Debug, Default)]
pub struct ReadBuf {
    /// Backing storage; its length is the capacity in use.
    data: Vec<u8>,
    /// First unconsumed byte.
    start: usize,
    /// One past the last byte read.
    end: usize,
}

impl ReadBuf {
    /// The unconsumed bytes.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Number of unconsumed bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Marks `n` bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Puts bytes back in front of the unconsumed ones (pipelined bytes a body reader over-read).
    pub fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut v = Vec::with_capacity(bytes.len() + self.len());
        v.extend_from_slice(bytes);
        v.extend_from_slice(self.filled());
        let n = v.len();
        v.resize(n.max(INITIAL), 0);
        self.data = v;
        self.start = 0;
        self.end = n;
    }

    /// Reads once from `fd`, making room for at least `want` unconsumed bytes.
    /// `Ok(0)` means the peer closed.
    pub fn read_from(&mut self, fd: RawFd, want: usize) -> io::Result<usize> {
        if self.start > 0 && (self.end == self.data.len() || self.start > self.data.len() / 2) {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let need = want.max(INITIAL).max(self.end + 4096);
        if self.data.len() < need {
            self.data.resize(need, 0);
        }
        let n = socket_io::try_read(fd, &mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Frees a large allocation once the connection is idle again.
    pub fn shrink(&mut self) {
        if self.len() == 0 && self.data.len() > 4 * INITIAL {
            self.data = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}
