//! The per-connection input buffer: bytes read from the socket and not yet consumed.
//!
//! A connection between requests holds no buffer at all: each loop thread keeps one spare
//! buffer, lends it to whichever connection becomes readable, and takes it back once the
//! request(s) in it are served (`settle`). Only a connection left holding part of a request
//! keeps bytes of its own, in an allocation about their size. So 10,000 idle keep-alive
//! connections cost no buffer memory, and a burst of them leaves nothing behind.

use std::io;

use super::transport::Io;

/// Smallest read: a request head of typical size fits in one.
const MIN_READ: usize = 16 * 1024;
/// Largest allocation a thread keeps as its spare; bigger ones (a large pre-buffered body)
/// are freed when their connection goes idle.
const SPARE_MAX: usize = 128 * 1024;

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
        self.end = v.len();
        self.start = 0;
        self.data = v;
    }

    /// Reads once from `io` into the free space, first making room for at least as many
    /// bytes as are already held (so a large body arrives in a few reads). `Ok(0)` means
    /// the peer closed.
    pub fn read_from(&mut self, io: &Io) -> io::Result<usize> {
        if self.start > 0 && (self.end == self.data.len() || self.start > self.data.len() / 2) {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let need = self.end + MIN_READ.max(self.len());
        if self.data.len() < need {
            self.data.resize(need, 0);
        }
        let n = io.try_read(&mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Appends `bytes` as if read (an HTTP/2 stream's request head, handed over as a value).
    pub fn put(&mut self, bytes: &[u8]) -> usize {
        if self.data.len() < self.end + bytes.len() {
            self.data.resize((self.end + bytes.len()).max(MIN_READ), 0);
        }
        self.data[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        bytes.len()
    }

    /// Borrows the thread's `spare` allocation for a read on a connection that holds none.
    pub fn borrow_spare(&mut self, spare: &mut ReadBuf) {
        if self.data.is_empty() {
            std::mem::swap(self, spare);
            self.start = 0;
            self.end = 0;
        }
    }

    /// After serving: an empty buffer goes back to the thread as its `spare` (or is freed),
    /// and a loosely filled one is copied into an allocation its size, so a connection
    /// waiting for the rest of a request holds about what it received.
    pub fn settle(&mut self, spare: &mut ReadBuf) {
        if self.len() == 0 {
            let mine = std::mem::take(self);
            if spare.data.is_empty() && mine.data.len() <= SPARE_MAX {
                *spare = ReadBuf { data: mine.data, start: 0, end: 0 };
            }
        } else if self.data.len() > 2 * self.len() + 4096 {
            *self = ReadBuf { data: self.filled().to_vec(), start: 0, end: self.len() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(bytes: &[u8]) -> ReadBuf {
        let mut b = ReadBuf { data: vec![0; 64 * 1024], start: 0, end: 0 };
        b.data[..bytes.len()].copy_from_slice(bytes);
        b.end = bytes.len();
        b
    }

    #[test]
    fn an_idle_connection_gives_its_buffer_back_to_the_thread() {
        let mut spare = ReadBuf::default();
        let mut conn = filled(b"GET / HTTP/1.1\r\n\r\n");
        conn.consume(conn.len());
        conn.settle(&mut spare);
        assert_eq!(conn.data.capacity(), 0);
        assert_eq!(spare.data.len(), 64 * 1024);
        let mut other = ReadBuf::default();
        other.borrow_spare(&mut spare);
        assert_eq!((other.data.len(), spare.data.len()), (64 * 1024, 0));
    }

    #[test]
    fn a_partial_request_keeps_an_allocation_its_size() {
        let mut spare = ReadBuf::default();
        let mut conn = filled(b"GET / HTTP/1.1\r\nHost: a");
        conn.settle(&mut spare);
        assert_eq!(conn.filled(), b"GET / HTTP/1.1\r\nHost: a");
        assert!(conn.data.len() < 100, "{}", conn.data.len());
        assert_eq!(spare.data.len(), 0);
    }

    #[test]
    fn a_large_buffer_is_freed_not_kept_as_the_spare() {
        let mut spare = ReadBuf::default();
        let mut conn = ReadBuf { data: vec![0; 4 * SPARE_MAX], start: 0, end: 0 };
        conn.settle(&mut spare);
        assert_eq!((conn.data.capacity(), spare.data.len()), (0, 0));
    }
}
