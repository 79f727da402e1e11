//! HTTP/1.1 and uwsgi wire formats for ruwsgi: bytes in, values out.
//!
//! This crate owns parsing and encoding only. It does no I/O, never blocks, never allocates
//! on error paths and holds no state between calls except inside [`ChunkedDecoder`]. The
//! runtime's connection loop (`ruwsgi::net`) owns the sockets and buffers: it calls the
//! `parse_*` functions on what it has read so far (`Ok(None)` means "read more") and the
//! `encode_*` functions to build what it writes.
//!
//! - [`parse_request_head`]: one HTTP/1.x request head, with request-smuggling checks
//!   (RFC 9112) that httparse alone does not do.
//! - [`ChunkedDecoder`]: incremental `Transfer-Encoding: chunked` body decoder.
//! - [`parse_uwsgi_packet`] / [`encode_uwsgi_packet`]: the uwsgi binary protocol.
//! - [`encode_response_head`], [`encode_chunk`], [`LAST_CHUNK`]: response framing.
//! - [`validate_response_header`]: checks on headers a WSGI app passes to `start_response`.
//! - [`percent_decode`]: `PATH_INFO` decoding.
//! - [`parse_frame_head`], [`encode_frame`], [`Assembler`], [`websocket_accept_key`]: WebSocket
//!   (RFC 6455) framing for the server side, with permessage-deflate ([`negotiate_deflate`]).
//! - [`parse_proxy_header`]: the optional PROXY protocol (v1/v2) header opening a connection.
//! - [`parse_spool_file`] / [`encode_spool_file`]: uWSGI's spooler task files.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod chunked;
mod h2frame;
mod head;
mod percent;
mod proxy;
mod response;
mod spool;
mod syntax;
mod uwsgi;
mod websocket;

pub use chunked::{ChunkError, ChunkedDecoder, FORBIDDEN_TRAILERS, MAX_CHUNK_LINE, MAX_TRAILER_SECTION};
pub use h2frame::{
    frame_type, parse_frame_header, Flood, FrameBudget, FrameHeader, FrameLimits, FrameScanner, FLAG_ACK,
    FLAG_END_STREAM, FRAME_HEADER_LEN, H2_PREFACE,
};
pub use head::{
    parse_request_head, BodyFraming, HeadError, Limits, RequestHead, DEFAULT_MAX_HEAD, DEFAULT_MAX_HEADERS,
    MAX_CONTENT_LENGTH,
};
pub use percent::percent_decode;
pub use proxy::{
    encode_proxy_v1, encode_proxy_v2, parse_proxy_header, ProxyError, ProxyHeader, ProxyStart, MAX_PROXY_V1_LINE,
    PROXY_V2_SIGNATURE,
};
pub use response::{
    encode_chunk, encode_response_head, parse_response_head, validate_response_header, HeaderError, ParsedResponseHead,
    ResponseFraming, ResponseHeadError, CHUNK_END, LAST_CHUNK,
};
pub use spool::{
    compare_spool_names, encode_spool_file, encode_spool_name, is_priority_name, is_spool_file_name, parse_spool_file,
    spool_routing, SpoolError, SpoolName, SpoolRouting, SpoolTask, MAX_SPOOL_VARS, SPOOL_FILE_PREFIX, SPOOL_MODIFIER1,
};
pub use uwsgi::{
    encode_uwsgi_packet, parse_uwsgi_packet, try_encode_uwsgi_packet, PacketError, UwsgiPacket, UwsgiPacketWriter,
    UwsgiVar, UWSGI_HEADER_LEN,
};
pub use websocket::{
    encode_close_payload, encode_compressed_frame, encode_frame, frame_extent, negotiate_deflate, parse_close_payload,
    parse_frame_head, unmask, websocket_accept_key, Assembler, Deflate, FrameError, FrameHead, Message, Opcode,
    MAX_CONTROL_PAYLOAD,
};
