//! Replays every seed-corpus file through its fuzz property, so stable `cargo test` covers
//! what the fuzzer starts from (and any crash input saved there as a regression).

use std::fs;
use std::path::Path;

fn replay(target: &str, property: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("corpus dir exists") {
        let path = entry.expect("readable entry").path();
        let data = fs::read(&path).expect("readable corpus file");
        property(&data);
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn http_head_seeds_hold() {
    replay("http_head", ruwsgi_fuzz::http_head);
}

#[test]
fn chunked_seeds_hold() {
    replay("chunked", ruwsgi_fuzz::chunked);
}

#[test]
fn uwsgi_packet_seeds_hold() {
    replay("uwsgi_packet", ruwsgi_fuzz::uwsgi_packet);
}

#[test]
fn proxy_header_seeds_hold() {
    replay("proxy_header", ruwsgi_fuzz::proxy_header);
}

#[test]
fn spool_file_seeds_hold() {
    replay("spool_file", ruwsgi_fuzz::spool_file);
}

#[test]
fn ini_seeds_hold() {
    replay("ini", ruwsgi_fuzz::ini);
}

#[test]
fn websocket_seeds_hold() {
    replay("websocket", ruwsgi_fuzz::websocket);
}

#[test]
fn h2_frames_seeds_hold() {
    replay("h2_frames", ruwsgi_fuzz::h2_frames);
}
