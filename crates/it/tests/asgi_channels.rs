//! Django Channels (issue 15): a Django project whose `asgi.py` routes HTTP to Django and
//! WebSocket connections to an `AsyncJsonWebsocketConsumer` (`ProtocolTypeRouter`,
//! `URLRouter`), with a group broadcast through the in-memory channel layer
//! (`tests/apps/django_chat`), served by `asgi = chatproj.asgi:application` directly and
//! behind nginx `proxy_pass`.

use std::net::SocketAddr;
use std::time::Duration;

use it::json::{self, Value};
use it::nginx::Nginx;
use it::ws::Ws;
use it::Server;

const SECS: Duration = Duration::from_secs(10);

/// One worker (the in-memory channel layer spans one process) with one thread.
fn chat_server() -> Server {
    let dir = it::repo().join("tests/apps/django_chat").display().to_string();
    Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--chdir",
        &dir,
        "--asgi",
        "chatproj.asgi:application",
        "--threads",
        "1",
    ])
}

fn text_json(frame: (u8, Vec<u8>)) -> Value {
    assert_eq!(frame.0, 1, "a text frame: {frame:?}");
    let text = String::from_utf8(frame.1).unwrap();
    json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

fn join(addr: SocketAddr, room: &str) -> (Ws, Value) {
    let (mut ws, head) = Ws::connect(addr, &format!("/ws/chat/{room}/"), None);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let hello = text_json(ws.recv());
    (ws, hello)
}

/// Two members of a room and one of another: a message reaches both members of its room
/// (through the group) and not the other room.
fn chat(addr: SocketAddr) {
    let (mut alice, hello) = join(addr, "lobby");
    assert_eq!(hello["joined"], "lobby");
    assert_eq!(hello["members"], 1);
    let (mut bob, hello) = join(addr, "lobby");
    assert_eq!(hello["members"], 2);
    let (mut carol, _) = join(addr, "kitchen");
    alice.send(true, 1, br#"{"text": "hi all"}"#);
    assert_eq!(text_json(alice.recv())["text"], "hi all");
    assert_eq!(text_json(bob.recv())["text"], "hi all");
    carol.send(true, 1, br#"{"text": "only the kitchen"}"#);
    assert_eq!(text_json(carol.recv())["text"], "only the kitchen");
    bob.send(true, 1, br#"{"text": "bye"}"#);
    assert_eq!(text_json(alice.recv())["text"], "bye");
    assert_eq!(text_json(bob.recv())["text"], "bye");
    for ws in [&mut alice, &mut bob, &mut carol] {
        ws.send(true, 8, &1000u16.to_be_bytes());
        assert_eq!(ws.recv().0, 8);
    }
}

#[test]
fn channels_consumer_broadcasts_to_its_group_over_http_socket() {
    let srv = chat_server();
    let r = srv.get("/rooms");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), srv.log());
    let v: Value = json::from_str(&r.text()).unwrap();
    assert_eq!(v["async"], true);
    chat(srv.addr());
    assert!(srv.wait_for(SECS, |l| l.matches("chat consumer left").count() == 3), "{}", srv.log());
}

#[test]
fn channels_consumer_behind_nginx_proxy_pass() {
    let srv = chat_server();
    let nginx = Nginx::start(&format!(
        "location / {{\n    proxy_pass http://{};\n    proxy_http_version 1.1;\n    \
         proxy_set_header Upgrade $http_upgrade;\n    proxy_set_header Connection \"upgrade\";\n}}\n",
        srv.addr()
    ));
    assert_eq!(nginx.get("/rooms").status, 200, "{}", nginx.log());
    chat(nginx.addr);
    assert!(srv.wait_for(SECS, |l| l.matches("chat consumer left").count() == 3), "{}", srv.log());
}
