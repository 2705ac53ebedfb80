use super::*;

const SECRET: [u8; 32] = [5; 32];

fn at<'a>(call: u8, app: &'a str, path: &'a str) -> Binding<'a> {
    Binding {
        chain_id: 1337,
        call: B256::repeat_byte(call),
        app,
        path,
    }
}

#[test]
fn a_sealed_call_opens_only_for_its_node_chain_call_app_and_path() {
    let pk = public_key(&SECRET).expect("pk");
    let (envelope, mut opener) = seal_request(
        &pk,
        at(1, "chat", "/v1/chat"),
        "application/json",
        b"{\"q\":1}",
    )
    .expect("seal");
    assert!(
        !envelope.windows(7).any(|w| w == b"{\"q\":1}"),
        "no plaintext"
    );
    let mut opened = open_request(&SECRET, at(1, "chat", "/v1/chat"), &envelope).expect("open");
    assert_eq!(opened.content_type, "application/json");
    assert_eq!(opened.body, b"{\"q\":1}");
    for other in [
        at(2, "chat", "/v1/chat"),
        at(1, "chat2", "/v1/chat"),
        at(1, "chat", "/v1/other"),
        Binding {
            chain_id: 1,
            ..at(1, "chat", "/v1/chat")
        },
    ] {
        let e = open_request(&SECRET, other, &envelope)
            .err()
            .expect("refused");
        assert_eq!(e.status(), 400, "{e}");
    }
    assert!(open_request(&[6; 32], at(1, "chat", "/v1/chat"), &envelope).is_err());
    for i in [0, ENC_LEN, envelope.len() - 1] {
        let mut t = envelope.clone();
        t[i] ^= 1;
        assert!(
            open_request(&SECRET, at(1, "chat", "/v1/chat"), &t).is_err(),
            "byte {i}"
        );
    }
    // The reply, in records, read back in odd pieces.
    let mut stream = opened.reply.record(b"hello ", false);
    stream.extend(opened.reply.record(b"world", false));
    stream.extend(opened.reply.record(b"", true));
    let mut got = Vec::new();
    for piece in stream.chunks(7) {
        got.extend(opener.push(piece).expect("opens"));
    }
    opener.finish().expect("ended");
    assert_eq!(got, b"hello world");
}

#[test]
fn a_reply_cut_short_reordered_or_changed_does_not_open() {
    let pk = public_key(&SECRET).expect("pk");
    let fresh = || {
        let (env, opener) = seal_request(&pk, at(1, "a", "/"), "", b"x").expect("seal");
        let opened = open_request(&SECRET, at(1, "a", "/"), &env).expect("open");
        (opened.reply, opener)
    };
    let (mut s, mut o) = fresh();
    let (a, b) = (s.record(b"one", false), s.record(b"two", true));
    o.push(&a).expect("first");
    assert!(o.finish().is_err(), "no last record yet");
    let (mut s, mut o) = fresh();
    let (a, b2) = (s.record(b"one", false), s.record(b"two", true));
    assert!(o.push(&b2).is_err(), "out of order");
    let _ = (a, b);
    let (mut s, mut o) = fresh();
    let mut r = s.record(b"one", true);
    let last = r.len() - 1;
    r[last] ^= 1;
    assert!(o.push(&r).is_err(), "changed");
    let mut o2 = fresh().1;
    assert!(
        o2.push(&[0xff, 0xff, 0xff, 0xff]).is_err(),
        "a length past any record"
    );
}
