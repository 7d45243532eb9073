//! Receiver conformance on a real socket: every row of Go's status-code table.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use routerd_federation::receiver::{self, Receiver};
use routerd_federation::GroupConfig;
use routerd_model::{signature, GoDuration, Timestamp};
use routerd_state::{EventQuery, ManualClock, Store};
use tokio::sync::watch;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_780_142_700;

fn group() -> GroupConfig {
    GroupConfig {
        group: "cloudedge".into(),
        node_name: "cloud-router".into(),
        listen: None,
        secret_file: Default::default(),
        replay_window: GoDuration::from_secs(300),
        peers: vec![],
        max_age: None,
        max_events: 0,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    receiver: Arc<Receiver>,
    addr: std::net::SocketAddr,
    _stop: watch::Sender<bool>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_unix(NOW));
    let store = Store::open(&dir.path().join("r.db"), Arc::new(clock)).unwrap();
    let receiver = Arc::new(Receiver {
        group: group(),
        secret: SECRET.to_vec(),
        store: Arc::new(Mutex::new(store)),
        counters: Default::default(),
        stored: None,
    });
    let (stop, stopped) = watch::channel(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let r = receiver.clone();
    // The receiver runs on its own thread and runtime, as in the daemon.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (listener, _) = receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            receiver::serve(listener, r, stopped).await;
        });
    });
    let addr = rx.recv().unwrap();
    Fixture {
        _dir: dir,
        receiver,
        addr,
        _stop: stop,
    }
}

/// A raw HTTP/1.1 exchange: (status, headers, body).
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap();
    (status, head.to_lowercase(), body.to_string())
}

fn post(
    addr: std::net::SocketAddr,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String, String) {
    let mut req = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes)
}

fn signed(ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-Routerd-Timestamp", ts.to_string()),
        ("X-Routerd-Signature", signature::sign(SECRET, ts, body)),
    ]
}

const V2_BODY: &[u8] = br#"{"id":"evt-1","group":"cloudedge","sourceNode":"onprem-router","type":"routerd.client.ipv4.observed","subject":"10.88.60.9/32","dedupeKey":"evt-1","payload":{"address":"10.88.60.9/32","domain":"cloudedge-same-subnet","ownerSide":"onprem"},"observedAt":"2026-05-30T12:00:00Z","expiresAt":"2026-05-30T12:30:00Z"}"#;

#[test]
fn accepts_a_signed_event_and_reports_duplicates() {
    let f = fixture();
    let (status, head, body) = post(f.addr, &signed(NOW, V2_BODY), V2_BODY);
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("content-type: application/json"));
    assert_eq!(
        body,
        "{\"accepted\":true,\"duplicate\":false,\"id\":\"evt-1\"}\n"
    );
    let (_, _, body) = post(f.addr, &signed(NOW, V2_BODY), V2_BODY);
    assert_eq!(
        body,
        "{\"accepted\":true,\"duplicate\":true,\"id\":\"evt-1\"}\n"
    );
    let store = f.receiver.store.lock().unwrap();
    let events = store
        .list_events(&EventQuery {
            include_expired: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(events.len(), 1, "no duplicate rows");
    assert_eq!(events[0].event.payload["domain"], "cloudedge-same-subnet");
    drop(store);
    let (status, _, body) = raw(
        f.addr,
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "{\"node\":\"cloud-router\",\"group\":\"cloudedge\",\"received\":2,\"duplicate\":1,\"rejected\":0,\"storedEvents\":1,\"replayWindowSeconds\":300}\n"
    );
}

#[test]
fn every_error_row_of_the_status_table() {
    let f = fixture();
    let body = V2_BODY;
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a [u8], u16, &'a str);
    let cases: Vec<Case> = vec![
        ("no timestamp", vec![], body, 400, "bad timestamp\n"),
        (
            "timestamp not a number",
            vec![("X-Routerd-Timestamp", "soon".into())],
            body,
            400,
            "bad timestamp\n",
        ),
        (
            "stale before signature",
            vec![("X-Routerd-Timestamp", (NOW - 301).to_string())],
            body,
            403,
            "stale timestamp\n",
        ),
        (
            "missing signature",
            vec![("X-Routerd-Timestamp", NOW.to_string())],
            body,
            401,
            "bad signature\n",
        ),
        (
            "upper-case hex",
            vec![
                ("X-Routerd-Timestamp", NOW.to_string()),
                (
                    "X-Routerd-Signature",
                    signature::sign(SECRET, NOW, body).to_uppercase(),
                ),
            ],
            body,
            401,
            "bad signature\n",
        ),
        (
            "not JSON",
            signed(NOW, b"{nope"),
            b"{nope",
            400,
            "bad event body\n",
        ),
        (
            "non-string payload",
            signed(
                NOW,
                br#"{"id":"a","group":"cloudedge","type":"t","payload":{"n":1}}"#,
            ),
            br#"{"id":"a","group":"cloudedge","type":"t","payload":{"n":1}}"#,
            400,
            "bad event body\n",
        ),
        (
            "null body",
            signed(NOW, b"null"),
            b"null",
            400,
            "invalid event: federation event id is required\n",
        ),
        (
            "other group",
            signed(NOW, br#"{"id":"a","group":"elsewhere","type":"t"}"#),
            br#"{"id":"a","group":"elsewhere","type":"t"}"#,
            400,
            "invalid event: group \"elsewhere\" is not this receiver's group \"cloudedge\"\n",
        ),
    ];
    for (name, headers, body, want_status, want_body) in &cases {
        let (status, head, got) = post(f.addr, headers, body);
        assert_eq!((status, got.as_str()), (*want_status, *want_body), "{name}");
        assert!(
            head.contains("content-type: text/plain; charset=utf-8")
                && head.contains("x-content-type-options: nosniff"),
            "{name}: {head}"
        );
    }
    let (status, _, _) = raw(
        f.addr,
        b"GET /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    let (status, _, body) = raw(
        f.addr,
        b"GET /v2/other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status, body.as_str()), (404, "404 page not found\n"));
    let store = f.receiver.store.lock().unwrap();
    assert!(
        store
            .list_events(&EventQuery {
                include_expired: true,
                ..Default::default()
            })
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
    drop(store);
    let (_, _, status_body) = raw(
        f.addr,
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        status_body.contains(&format!("\"rejected\":{}", cases.len())),
        "{status_body}"
    );
}

#[test]
fn the_replay_window_edges_are_300_accepted_and_301_refused() {
    let f = fixture();
    let r = &f.receiver;
    let at = |ts: i64, id: &str| {
        let body = format!(r#"{{"id":"{id}","group":"cloudedge","type":"t"}}"#);
        r.push(
            Some(&ts.to_string()),
            Some(&signature::sign(SECRET, ts, body.as_bytes())),
            body.as_bytes(),
            NOW,
        )
        .status
    };
    assert_eq!(at(NOW - 300, "a"), 200);
    assert_eq!(at(NOW + 300, "b"), 200);
    assert_eq!(at(NOW - 301, "c"), 403);
    assert_eq!(at(NOW + 301, "d"), 403);
    // A non-canonical header parses, and the signature is over the canonical number.
    let body = br#"{"id":"e","group":"cloudedge","type":"t"}"#;
    let sig = signature::sign(SECRET, NOW, body);
    assert_eq!(
        r.push(Some(&format!("+{NOW}")), Some(&sig), body, NOW)
            .status,
        200
    );
}

#[test]
fn a_2_mib_body_is_refused_and_the_receiver_keeps_serving() {
    let f = fixture();
    let big = vec![b'x'; 2 * 1024 * 1024];
    let (status, _, body) = post(f.addr, &signed(NOW, &big), &big);
    assert_eq!(
        (status, body.as_str()),
        (401, "bad signature\n"),
        "verified on the first 1 MiB only"
    );
    let (status, _, _) = post(f.addr, &signed(NOW, V2_BODY), V2_BODY);
    assert_eq!(status, 200, "still serving");
}
