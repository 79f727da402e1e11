//! Sockets and connections: listeners (bound by the master, shared by workers) and the
//! per-thread connection loop that drives the proto parsers and calls the app.

pub mod activation;
pub mod body;
pub mod client;
pub mod connection;
mod health;
pub mod http2;
pub mod listener;
mod read_buf;
pub mod socket_io;
pub mod stream_pipe;
pub mod tls;
pub mod transport;
