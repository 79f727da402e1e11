//! ruwsgi: a uWSGI-compatible WSGI server. This crate is the runtime, built as the Python
//! extension module `ruwsgi._ruwsgi`:
//! - `cli`: command line → config → master
//! - `master/`: supervises workers (single-threaded, forks on every respawn)
//! - `worker/`: one worker process: threads, recycling
//! - `net/`: listeners, the per-thread connection loop, body reading, socket helpers
//! - `wsgi/`: everything that touches Python (the only pyo3 user)
//! - `interface`: the `Application` trait between the connection loop and the app side
//! - `hooks`: runs the `hook-*`/`exec-*` actions of a phase
//! - `scoreboard`: counters shared between master and workers
//! - `signals`: uWSGI's signal framework and user locks, shared by every process
//! - `log/`: server log set-up and the request-log line
//! - `routing/`: `route*` rules run before static files and the app
//! - `static_files/`: `static-map`/`check-static` files served without Python
//! - `spooler`: spool task files and the spooler processes that run them
//! - `mule`: mule processes and their message queues
#![deny(unsafe_code)]

mod cli;
mod hooks;
mod interface;
mod log;
mod master;
mod mule;
mod net;
mod routing;
mod scoreboard;
mod signals;
mod spooler;
mod static_files;
mod worker;
mod wsgi;
