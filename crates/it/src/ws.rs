//! A minimal WebSocket client for the tests: raw RFC 6455 frames over a `TcpStream`, so a
//! test sees exactly the bytes the server sends.
#![allow(clippy::cast_possible_truncation)]

use std::io::{BufRead, BufReader, Read, Write};

/// A minimal WebSocket client for the tests: raw frames over a `TcpStream`.
pub struct Ws {
    pub reader: BufReader<std::net::TcpStream>,
    pub writer: std::net::TcpStream,
}

impl Ws {
    /// Opens `path` (offering `protocol`, if any); returns the client and the 101 response head.
    pub fn connect(addr: std::net::SocketAddr, path: &str, protocol: Option<&str>) -> (Ws, String) {
        let offer = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
        Self::connect_with(addr, path, &offer)
    }

    /// Opens `path` with `extra` header lines.
    pub fn connect_with(addr: std::net::SocketAddr, path: &str, offer: &str) -> (Ws, String) {
        let s = crate::connect(addr);
        let mut writer = s.try_clone().unwrap();
        write!(
            writer,
            "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        (Ws { reader, writer }, head)
    }

    /// Sends one masked frame.
    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 0x7f);
            frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.writer.write_all(&frame).unwrap();
    }

    /// Reads one frame: (opcode, payload).
    pub fn recv(&mut self) -> (u8, Vec<u8>) {
        let (b0, payload) = self.recv_raw();
        assert_eq!(b0 & 0x70, 0, "no RSV bits without an extension");
        (b0 & 0x0f, payload)
    }

    /// Reads one frame: (its first byte, payload).
    pub fn recv_raw(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.reader.read_exact(&mut h).unwrap();
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.reader.read_exact(&mut b).unwrap();
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                self.reader.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        self.reader.read_exact(&mut payload).unwrap();
        (h[0], payload)
    }
}
