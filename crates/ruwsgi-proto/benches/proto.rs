//! Criterion benches for the proto parsers: typical requests and adversarial inputs.
//! Report medians from `cargo bench -p ruwsgi-proto`; timings never go into assertions.

use std::fmt::Write as _;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ruwsgi_proto::{
    encode_chunk, encode_response_head, encode_uwsgi_packet, parse_request_head, parse_uwsgi_packet, ChunkedDecoder,
    Limits, ResponseFraming, CHUNK_END, LAST_CHUNK,
};

const SMALL_GET: &[u8] = b"GET /hello HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk\r\n\r\n";

fn browser_request() -> Vec<u8> {
    let mut s = String::from("GET /static/app.js?v=12345 HTTP/1.1\r\nHost: www.example.com\r\n");
    s.push_str("User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n");
    s.push_str("Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n");
    s.push_str("Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n");
    s.push_str("Cookie: sessionid=abcdef0123456789; csrftoken=0123456789abcdef0123456789abcdef\r\n");
    for i in 0..34 {
        let _ = write!(s, "X-Custom-Header-{i}: value-{i}-aaaaaaaaaaaaaaaa\r\n");
        // String writes can't fail
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn chunked(chunk_size: usize, total: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    let data = vec![b'x'; chunk_size];
    for _ in 0..total / chunk_size {
        encode_chunk(&mut wire, chunk_size);
        wire.extend_from_slice(&data);
        wire.extend_from_slice(CHUNK_END);
    }
    wire.extend_from_slice(LAST_CHUNK);
    wire
}

fn bench_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let browser = browser_request();
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for _ in 0..98 {
        many.push_str("A: b\r\n");
    }
    many.push_str("\r\n");
    let many_limits = Limits { max_head: 1 << 16, max_headers: 100 };
    let mut over = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for _ in 0..1000 {
        over.push_str("A: b\r\n");
    }
    over.push_str("\r\n");
    let over_limits = Limits { max_head: 1 << 16, max_headers: 100 };

    let mut g = c.benchmark_group("request_head");
    g.throughput(Throughput::Bytes(SMALL_GET.len() as u64));
    g.bench_function("small_get", |b| {
        b.iter(|| parse_request_head(black_box(SMALL_GET), &limits));
    });
    g.throughput(Throughput::Bytes(browser.len() as u64));
    g.bench_function("browser_40_headers", |b| {
        b.iter(|| parse_request_head(black_box(&browser), &limits));
    });
    g.throughput(Throughput::Bytes(many.len() as u64));
    g.bench_function("adversarial_99_headers", |b| {
        b.iter(|| parse_request_head(black_box(many.as_bytes()), &many_limits));
    });
    g.throughput(Throughput::Bytes(over.len() as u64));
    g.bench_function("adversarial_1000_headers_rejected", |b| {
        b.iter(|| parse_request_head(black_box(over.as_bytes()), &over_limits));
    });
    g.finish();
}

fn bench_chunked(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunked");
    for (name, size, total) in [("4k_chunks_64k", 4096, 65_536), ("1_byte_chunks_4k", 1, 4096)] {
        let wire = chunked(size, total);
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(total);
            b.iter(|| {
                out.clear();
                ChunkedDecoder::new().decode(black_box(&wire), &mut out, usize::MAX)
            });
        });
    }
    g.finish();
}

fn bench_uwsgi(c: &mut Criterion) {
    let vars: &[(&[u8], &[u8])] = &[
        (b"QUERY_STRING", b"a=1&b=2"),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"REQUEST_URI", b"/hello?a=1&b=2"),
        (b"PATH_INFO", b"/hello"),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"localhost"),
        (b"HTTP_HOST", b"localhost"),
        (b"HTTP_USER_AGENT", b"curl/8.5.0"),
        (b"HTTP_ACCEPT", b"*/*"),
    ];
    let packet = encode_uwsgi_packet(0, 0, vars);
    let tiny: Vec<(Vec<u8>, Vec<u8>)> = (0..1000).map(|_| (Vec::new(), Vec::new())).collect();
    let tiny: Vec<(&[u8], &[u8])> = tiny.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let empty_vars = encode_uwsgi_packet(0, 0, &tiny);

    let mut g = c.benchmark_group("uwsgi");
    g.throughput(Throughput::Bytes(packet.len() as u64));
    g.bench_function("nginx_packet", |b| {
        b.iter(|| parse_uwsgi_packet(black_box(&packet), 4096));
    });
    g.bench_function("encode_nginx_packet", |b| {
        b.iter(|| encode_uwsgi_packet(0, 0, black_box(vars)));
    });
    g.throughput(Throughput::Bytes(empty_vars.len() as u64));
    g.bench_function("adversarial_1000_empty_vars", |b| {
        b.iter(|| parse_uwsgi_packet(black_box(&empty_vars), 65_535));
    });
    g.finish();
}

fn bench_response(c: &mut Criterion) {
    let headers: &[(&[u8], &[u8])] =
        &[(b"Content-Type", b"text/html; charset=utf-8"), (b"X-Frame-Options", b"DENY"), (b"Vary", b"Cookie")];
    c.bench_function("response_head", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            encode_response_head(&mut out, 1, b"200 OK", black_box(headers), ResponseFraming::Length(1234), true);
        });
    });
}

criterion_group!(benches, bench_heads, bench_chunked, bench_uwsgi, bench_response);
criterion_main!(benches);
