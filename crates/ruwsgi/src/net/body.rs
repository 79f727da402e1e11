//! Request bodies: the bytes the app reads through `wsgi.input`. Framing comes from proto
//! (Content-Length or chunked); the socket waits happen through a caller-supplied wait
//! function so `wsgi/` can release the GIL around them.

use std::io;

use ruwsgi_proto::ChunkedDecoder;

use super::transport::Io;

/// Largest single socket read for a body.
const READ_CHUNK: usize = 64 * 1024;

/// How the remaining body is delimited.
#[derive(Debug)]
enum Framing {
    /// `remaining` body bytes are still on the socket (beyond `raw`).
    Length { remaining: u64 },
    /// Chunked: `raw` holds undecoded bytes.
    Chunked(Box<ChunkedDecoder>),
    /// The body has ended.
    Done,
}

/// Reads one request's body from its connection.
#[derive(Debug)]
pub struct BodyReader {
    /// The connection, non-blocking. `-1` after the request ended.
    io: Io,
    /// Bytes read from the socket and not yet handed out (raw chunked bytes for chunked bodies).
    raw: Vec<u8>,
    /// Consumed prefix of `raw`.
    pos: usize,
    /// What's left.
    framing: Framing,
    /// An `Expect: 100-continue` request whose interim response is not sent yet.
    continue_pending: bool,
    /// Set once the peer vanished or broke the framing; the connection can't be reused.
    broken: bool,
}

/// Outcome of one read attempt.
pub enum Progress {
    /// This many body bytes were appended.
    Data(usize),
    /// The body has ended.
    End,
    /// The socket has nothing now; wait for readability and retry.
    WouldBlock,
}

impl BodyReader {
    /// An empty body.
    pub fn empty() -> Self {
        Self {
            io: Io::closed(),
            raw: Vec::new(),
            pos: 0,
            framing: Framing::Done,
            continue_pending: false,
            broken: false,
        }
    }

    /// A body of `length` bytes of which `already` arrived with the head.
    pub fn with_length(io: Io, already: Vec<u8>, length: u64, expect_continue: bool) -> Self {
        let remaining = length - already.len() as u64;
        let framing = if length == 0 { Framing::Done } else { Framing::Length { remaining } };
        Self { io, raw: already, pos: 0, framing, continue_pending: expect_continue && remaining > 0, broken: false }
    }

    /// A chunked body; `already` holds the raw bytes that followed the head.
    pub fn chunked(io: Io, already: Vec<u8>, expect_continue: bool) -> Self {
        Self {
            io,
            raw: already,
            pos: 0,
            framing: Framing::Chunked(Box::default()),
            continue_pending: expect_continue,
            broken: false,
        }
    }

    /// Appends up to `max` body bytes to `out`, doing at most one socket read.
    pub fn read_some(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<Progress> {
        match &mut self.framing {
            Framing::Done => Ok(Progress::End),
            Framing::Length { remaining } => {
                if self.pos < self.raw.len() {
                    let n = (self.raw.len() - self.pos).min(max);
                    out.extend_from_slice(&self.raw[self.pos..self.pos + n]);
                    self.pos += n;
                    if self.pos == self.raw.len() && *remaining == 0 {
                        self.framing = Framing::Done;
                    }
                    return Ok(Progress::Data(n));
                }
                if *remaining == 0 {
                    self.framing = Framing::Done;
                    return Ok(Progress::End);
                }
                let want = (*remaining).min(max.min(READ_CHUNK) as u64) as usize;
                let start = out.len();
                out.resize(start + want, 0);
                match self.socket_read(&mut out[start..]) {
                    Ok(n) => {
                        out.truncate(start + n);
                        if let Framing::Length { remaining } = &mut self.framing {
                            *remaining -= n as u64;
                            if *remaining == 0 {
                                self.framing = Framing::Done;
                            }
                        }
                        Ok(Progress::Data(n))
                    }
                    Err(e) => {
                        out.truncate(start);
                        if e.kind() == io::ErrorKind::WouldBlock {
                            Ok(Progress::WouldBlock)
                        } else {
                            Err(e)
                        }
                    }
                }
            }
            Framing::Chunked(decoder) => {
                if self.pos < self.raw.len() {
                    let before = out.len();
                    let (used, finished) = decoder.decode(&self.raw[self.pos..], out, max).map_err(|e| {
                        self.broken = true;
                        io::Error::new(io::ErrorKind::InvalidData, format!("bad chunked body: {e}"))
                    })?;
                    self.pos += used;
                    if finished {
                        self.framing = Framing::Done;
                    }
                    let produced = out.len() - before;
                    if produced > 0 || finished {
                        return Ok(if produced > 0 { Progress::Data(produced) } else { Progress::End });
                    }
                    if used > 0 {
                        // Consumed framing bytes only (a size line); decode again.
                        return self.read_some(out, max);
                    }
                }
                // Need more raw bytes.
                if self.pos > 0 {
                    self.raw.drain(..self.pos);
                    self.pos = 0;
                }
                let start = self.raw.len();
                self.raw.resize(start + READ_CHUNK, 0);
                let mut tmp = std::mem::take(&mut self.raw);
                let r = self.socket_read(&mut tmp[start..]);
                match r {
                    Ok(n) => {
                        tmp.truncate(start + n);
                        self.raw = tmp;
                        self.read_some(out, max)
                    }
                    Err(e) => {
                        tmp.truncate(start);
                        self.raw = tmp;
                        if e.kind() == io::ErrorKind::WouldBlock {
                            Ok(Progress::WouldBlock)
                        } else {
                            Err(e)
                        }
                    }
                }
            }
        }
    }

    /// Body bytes still to come of a `Content-Length` body (buffered or on the socket);
    /// `None` for a chunked one.
    pub fn length_left(&self) -> Option<u64> {
        match self.framing {
            Framing::Done => Some(0),
            Framing::Length { remaining } => Some(remaining + (self.raw.len() - self.pos) as u64),
            Framing::Chunked(_) => None,
        }
    }

    /// Body bytes already read from the socket and not handed out yet.
    pub fn buffered(&self) -> usize {
        self.raw.len() - self.pos
    }

    /// Copies body bytes of a `Content-Length` body straight into `buf` (the buffered ones,
    /// else one socket read of up to `buf.len()`), so a caller that knows the size reads it
    /// without a buffer in between. A chunked body answers `Unsupported`.
    pub fn read_into(&mut self, buf: &mut [u8]) -> io::Result<Progress> {
        let remaining = match self.framing {
            Framing::Done => return Ok(Progress::End),
            Framing::Length { remaining } => remaining,
            Framing::Chunked(_) => return Err(io::ErrorKind::Unsupported.into()),
        };
        if self.pos < self.raw.len() {
            let n = (self.raw.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.raw[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.raw.len() && remaining == 0 {
                self.framing = Framing::Done;
            }
            return Ok(Progress::Data(n));
        }
        if remaining == 0 {
            self.framing = Framing::Done;
            return Ok(Progress::End);
        }
        let want = remaining.min(buf.len() as u64) as usize;
        match self.socket_read(&mut buf[..want]) {
            Ok(n) => {
                let left = remaining - n as u64;
                self.framing = if left == 0 { Framing::Done } else { Framing::Length { remaining: left } };
                Ok(Progress::Data(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Progress::WouldBlock),
            Err(e) => Err(e),
        }
    }

    fn socket_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.io.is_closed() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "request already finished"));
        }
        if self.continue_pending {
            self.continue_pending = false;
            self.io.write_all(&[b"HTTP/1.1 100 Continue\r\n\r\n"], &mut 0, || {
                self.io.wait(true, std::time::Duration::from_secs(4))
            })?;
        }
        match self.io.try_read(buf) {
            Ok(0) => {
                self.broken = true;
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed the connection during the body"))
            }
            Ok(n) => Ok(n),
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// The whole body, when all of it is in memory already (or there is none), leaving the
    /// reader at its end; `None` when part of it is still on the socket, or it is chunked.
    pub fn take_whole(&mut self) -> Option<Vec<u8>> {
        match self.framing {
            Framing::Done if self.raw.is_empty() => Some(Vec::new()),
            Framing::Length { remaining: 0 } => {
                let body = self.raw[self.pos..].to_vec();
                self.pos = self.raw.len();
                self.framing = Framing::Done;
                Some(body)
            }
            _ => None,
        }
    }

    /// The body has been read to its end.
    pub fn is_ended(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    /// The stream to wait on.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// A wait (of at most `timeout`) for more of the body to arrive.
    pub fn readable(&self, timeout: std::time::Duration) -> super::client::Wait {
        super::client::Client::new(self.io.clone(), timeout).readable()
    }

    /// Part of the body is still on the socket (the app stopped reading early).
    pub fn unread_on_socket(&self) -> bool {
        !self.broken
            && !self.io.is_closed()
            && matches!(self.framing, Framing::Length { remaining: 1.. } | Framing::Chunked(_))
    }

    /// Ends the request: returns the bytes read past the body (a pipelined next request) and
    /// whether the connection can carry another request (body fully read, framing intact).
    pub fn finish(&mut self) -> (Vec<u8>, bool) {
        self.io = Io::closed();
        // A body that arrived whole with the head needn't be read by the app to reuse the
        // connection; one still on the socket would have to be drained, so that closes.
        let done = matches!(self.framing, Framing::Done | Framing::Length { remaining: 0 }) && !self.broken;
        if matches!(self.framing, Framing::Length { .. }) {
            self.pos = self.raw.len();
        }
        let mut raw = std::mem::take(&mut self.raw);
        let leftover = if done { raw.split_off(self.pos) } else { Vec::new() };
        self.pos = 0;
        (leftover, done)
    }
}
