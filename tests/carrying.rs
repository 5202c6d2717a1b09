//! End to end, with real `ssb-node run` processes, `ssb-node sync`, a real
//! ssb-server 16 and folders as sticks: the carrying policy (`carry =
//! "connected"`: a feed that connects is carried in that session, after a
//! restart, and up to `carry_max`), how far behind peers and sticks are in
//! `status --json`, and two site boxes that carry each other's communities
//! on a stick carried A → B → A, set up through their config files only.
#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;
#[path = "support/ssb_server.rs"]
mod ssb_server;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use site::{ok, Site};
use support::running::{sigterm, spawn_run, Node};
use support::ssb_at;

const DEADLINE: Duration = Duration::from_secs(30);

fn status(node: &Node) -> Value {
    serde_json::from_str(&ok(ssb_at(&node.data, &["status", "--json"]))).unwrap()
}

/// What `data` (a running node's, through its socket, or a stopped one's)
/// holds of `feed`.
fn seq(data: &Path, feed: &str) -> u64 {
    let clock: Value = serde_json::from_str(&ok(ssb_at(data, &["clock"]))).unwrap();
    clock[feed].as_u64().unwrap_or(0)
}

fn whoami(data: &Path) -> String {
    ok(ssb_at(data, &["whoami"])).trim().to_owned()
}

/// `phone` syncs with the running `node` once.
fn sync(phone: &Site, node: &Node) -> String {
    ok(ssb_at(
        &phone.data,
        &["sync", &node.addr, "--timeout", "30"],
    ))
}

/// The `behind` entry of `status` for `kind` (`peers`/`sticks`) named `name`.
fn behind<'a>(s: &'a Value, kind: &str, key: &str, name: &str) -> Option<&'a Value> {
    s["behind"][kind]
        .as_array()?
        .iter()
        .find(|e| e[key].as_str() == Some(name))
}

fn lag(e: Option<&Value>) -> (u64, u64) {
    let e = e.expect("an entry");
    (
        e["we_lack"].as_u64().unwrap(),
        e["they_lack"].as_u64().unwrap(),
    )
}

/// Restarts a node on its data dir with its config; waits until it listens.
fn restart(node: Node, dir: &Path, name: &str) -> Node {
    let data = node.data.clone();
    sigterm(&node.child);
    drop(node);
    let log = dir.join(format!("{name}-2.log"));
    let (child, addr) = spawn_run(
        &data,
        &[],
        &[],
        &[("SSB_NODE_LOG", "ssb_node=debug")],
        std::fs::File::create(&log).unwrap().into(),
    );
    let (net, shs) = addr.split_once("~shs:").unwrap();
    Node {
        child,
        data,
        log,
        socket: net.strip_prefix("net:").unwrap().parse().unwrap(),
        key: ssb_node::net::shs::PublicKey(
            ssb_node::feed::ids::decode_base64_exact::<32>(shs).unwrap(),
        ),
        addr,
    }
}

#[test]
fn a_box_carrying_connected_feeds_takes_a_phone_at_its_first_sync_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let boxed = Node::start_with(dir.path(), "box", "carry = \"connected\"\n", &[]);
    let box_id = whoami(&boxed.data);
    let phone = Site::new(dir.path(), "phone", 5);
    ok(ssb_at(&phone.data, &["follow", &box_id]));

    // The phone's feed is carried in the session it connects in (EBT).
    let out = sync(&phone, &boxed);
    assert!(out.contains("sent 6 messages"), "{out}");
    assert_eq!(seq(&boxed.data, &phone.id), 6);
    let s = status(&boxed);
    assert_eq!(s["carry"]["mode"], "connected");
    assert_eq!(s["carry"]["feeds"], 2, "{s}");
    assert_eq!(s["carry"]["followed"], 1, "{s}");
    // The box followed it: its contact message went to the phone too.
    assert_eq!(phone.seq(&box_id), 1);

    // And after a restart, with no new follow.
    let boxed = restart(boxed, dir.path(), "box");
    phone.publish(3, "later");
    let out = sync(&phone, &boxed);
    assert!(out.contains("sent 3 messages"), "{out}");
    assert_eq!(seq(&boxed.data, &phone.id), 9);
    let s = status(&boxed);
    assert_eq!(
        (s["carry"]["feeds"].clone(), s["carry"]["followed"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(seq(&boxed.data, &box_id), 1, "one follow in all");

    // A box with the default policy carries only its follow graph.
    let plain = Node::start_with(dir.path(), "plain", "", &[]);
    let out = sync(&phone, &plain);
    assert!(out.contains("sent 0 messages"), "{out}");
    assert_eq!(seq(&plain.data, &phone.id), 0);
    assert_eq!(status(&plain)["carry"]["mode"], "follows");
}

#[test]
fn a_legacy_peer_is_carried_in_its_session_and_the_cap_stops_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let boxed = Node::start_with(
        dir.path(),
        "box",
        "carry = \"connected\"\ncarry_max = 1\n",
        &[],
    );
    // ssb-server 16 without ssb-ebt: createHistoryStream only.
    let mut server = ssb_server::SsbServer::start(ssb_server::Options::legacy());
    server.ok(json!({"cmd": "publishMany", "n": 4}));
    let server_id = server.id().to_owned();
    server.ok(json!({"cmd": "connect", "address": boxed.addr}));
    let deadline = Instant::now() + DEADLINE;
    while seq(&boxed.data, &server_id) < 4 {
        assert!(
            Instant::now() < deadline,
            "the legacy peer's feed never arrived: {}",
            boxed.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // carry_max = 1: the next feed that connects is served, not carried.
    let phone = Site::new(dir.path(), "phone", 2);
    let out = sync(&phone, &boxed);
    assert!(out.contains("sent 0 messages"), "{out}");
    let s = status(&boxed);
    assert_eq!(s["carry"]["refused"], 1, "{s}");
    assert_eq!(s["carry"]["feeds"], 2, "{s}");
    assert!(boxed.log().contains("not carrying a connecting feed"));
}

#[test]
fn status_shows_how_far_behind_each_peer_and_stick_is() {
    let dir = tempfile::tempdir().unwrap();
    // Q carries X; a stick gets one bundle from Q holding both feeds.
    let x = Site::new(dir.path(), "x", 8);
    let q = Site::new(dir.path(), "q", 5);
    q.replicate(&[&x.id]);
    let to_q = dir.path().join("stick-x");
    std::fs::create_dir(&to_q).unwrap();
    x.stick_sync(&to_q);
    q.stick_sync(&to_q);
    let stick = dir.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    q.stick_sync(&stick);

    let config = format!("carry = \"connected\"\nreplicate = [\"{}\"]\n", q.id);
    let boxed = Node::start_with(dir.path(), "box", &config, &[]);
    let box_id = whoami(&boxed.data);
    let p1 = Site::new(dir.path(), "p1", 2);
    let p2 = Site::new(dir.path(), "p2", 3);
    for p in [&p1, &p2] {
        ok(ssb_at(&p.data, &["follow", &box_id]));
        sync(p, &boxed);
    }
    // The box grows by 4 (four follows); p1 syncs again, p2 does not.
    for i in 0..4 {
        let other = Site::new(dir.path(), &format!("o{i}"), 0);
        ok(ssb_at(&boxed.data, &["follow", &other.id]));
    }
    sync(&p1, &boxed);
    let s = status(&boxed);
    assert_eq!(lag(behind(&s, "peers", "key", &p1.id)), (0, 0), "{s}");
    assert_eq!(lag(behind(&s, "peers", "key", &p2.id)), (0, 4), "{s}");

    // The stick: Q's part is imported, X's is not carried (yet).
    let report = ok(ssb_at(
        &boxed.data,
        &["stick", "sync", stick.to_str().unwrap(), "--json"],
    ));
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["imported_messages"], 5, "{report}");
    let id = report["stick"].as_str().unwrap().to_owned();
    let s = status(&boxed);
    assert_eq!(lag(behind(&s, "sticks", "id", &id)), (0, 0), "{s}");
    // The box starts carrying X: the stick holds its 8 messages, and lacks
    // the follow the box published.
    ok(ssb_at(&boxed.data, &["follow", &x.id]));
    let s = status(&boxed);
    assert_eq!(lag(behind(&s, "sticks", "id", &id)), (8, 1), "{s}");
    assert_eq!(s["carry"]["feeds"], 9, "{s}");
    let text = ok(ssb_at(&boxed.data, &["status"]));
    assert!(text.contains("carrying: 9 feeds (connected"), "{text}");
    assert!(
        text.contains(&format!("peer {}: we lack 0, it lacks 5", p2.id)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "stick {id} at {}: we lack 8, it lacks 1",
            stick.display()
        )),
        "{text}"
    );
}

/// Waits until `data` holds `n` messages of `feed`.
fn wait_seq(data: &Path, feed: &str, n: u64, node: &Node) {
    let deadline = Instant::now() + DEADLINE;
    while seq(data, feed) < n {
        assert!(
            Instant::now() < deadline,
            "{} never got {n} of {feed}: {}",
            data.display(),
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two site boxes A and B, each naming the other in `sites`, carrying
/// feeds that connect: each box's identity is made first (as the image's
/// first boot does), then each config names the other box, as a person
/// would write it on the boot partition.
fn two_sites(dir: &Path) -> (Node, String, Node, String) {
    let (a_data, b_data) = (dir.join("a"), dir.join("b"));
    let a_id = ok(ssb_at(&a_data, &["init"])).trim().to_owned();
    let b_id = ok(ssb_at(&b_data, &["init"])).trim().to_owned();
    let start = |data: &Path, other: &str, name: &str| {
        let config = format!("carry = \"connected\"\nsites = [\"{other}\"]\n");
        std::fs::write(data.join("ssb-node.toml"), config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let (child, addr) = spawn_run(
            data,
            &[],
            &[],
            &[("SSB_NODE_LOG", "ssb_node=debug")],
            std::fs::File::create(&log).unwrap().into(),
        );
        let (net, shs) = addr.split_once("~shs:").unwrap();
        Node {
            child,
            data: data.to_path_buf(),
            log,
            socket: net.strip_prefix("net:").unwrap().parse().unwrap(),
            key: ssb_node::net::shs::PublicKey(
                ssb_node::feed::ids::decode_base64_exact::<32>(shs).unwrap(),
            ),
            addr,
        }
    };
    let a = start(&a_data, &b_id, "a");
    let b = start(&b_data, &a_id, "b");
    (a, a_id, b, b_id)
}

/// `node` visits the folder stick `stick`; returns its report.
fn visit(node: &Node, stick: &Path) -> Value {
    serde_json::from_str(&ok(ssb_at(
        &node.data,
        &["stick", "sync", stick.to_str().unwrap(), "--json"],
    )))
    .unwrap()
}

#[test]
fn two_sites_set_up_by_config_carry_each_others_communities_on_a_stick() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_id, b, b_id) = two_sites(dir.path());

    // A phone at each site follows its box (at the default 2 hops: its
    // box follows the other site's phones) and syncs once.
    let phone = |name: &str, posts: usize, boxed: &str| {
        let p = Site::new(dir.path(), name, posts);
        ok(ssb_at(&p.data, &["follow", boxed]));
        p
    };
    let pa = phone("pa", 3, &a_id);
    let pb = phone("pb", 4, &b_id);
    sync(&pa, &a);
    sync(&pb, &b);
    assert_eq!(seq(&a.data, &pa.id), 4);
    assert_eq!(seq(&b.data, &pb.id), 5);

    // A stick carried A → B → A.
    let stick = dir.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    let visit = |node: &Node| visit(node, &stick);
    visit(&a);
    let at_b = visit(&b);
    // B takes A's feed and, in the same visit, A's community.
    assert_eq!(seq(&b.data, &a_id), 2, "{at_b}");
    assert_eq!(seq(&b.data, &pa.id), 4, "{at_b}");
    let at_a = visit(&a);
    assert!(seq(&a.data, &b_id) >= 2, "{at_a}");
    assert_eq!(seq(&a.data, &pb.id), 5, "{at_a}");
    // Each box follows the other site's phone (B has since followed pa).
    wait_seq(&a.data, &a_id, 3, &a);
    wait_seq(&b.data, &b_id, 3, &b);

    // Each phone's next LAN sync brings the other site's phone.
    sync(&pa, &a);
    sync(&pb, &b);
    assert_eq!(pa.seq(&pb.id), 5, "pa lacks pb");
    assert_eq!(pb.seq(&pa.id), 4, "pb lacks pa");

    // A phone's later post goes round: pb → B → stick → A → pa.
    pb.publish(2, "later");
    sync(&pb, &b);
    visit(&b);
    visit(&a);
    wait_seq(&a.data, &pb.id, 7, &a);
    sync(&pa, &a);
    assert_eq!(pa.seq(&pb.id), 7);
    let s = status(&a);
    assert_eq!(s["carry"]["feeds"], 4, "{s}");
    assert_eq!(seq(&a.data, &a_id), 3, "B, pa, pb: one follow each");
}

/// The ssb-server phone's feed goes phone → B → stick → A → pa. (The other
/// way, in the session the phone stays connected in, is
/// `live_peers_get_the_other_sites_feeds_a_stick_brings_without_reconnecting`.)
#[test]
fn an_ssb_server_phones_feed_reaches_the_other_sites_phone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_id, b, b_id) = two_sites(dir.path());
    let pa = Site::new(dir.path(), "pa", 3);
    ok(ssb_at(&pa.data, &["follow", &a_id]));
    sync(&pa, &a);

    // At B, a phone running ssb-server 16 (EBT, 2 hops) follows the box and
    // stays connected: B carries it from its first connection.
    let mut phone = ssb_server::SsbServer::start(ssb_server::Options::default());
    let phone_id = phone.id().to_owned();
    phone.ok(json!({"cmd": "follow", "id": b_id}));
    phone.ok(json!({"cmd": "publishMany", "n": 3}));
    phone.ok(json!({"cmd": "connect", "address": b.addr}));
    wait_seq(&b.data, &phone_id, 4, &b);

    let stick = dir.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    visit(&a, &stick);
    visit(&b, &stick);
    assert_eq!(seq(&b.data, &pa.id), 4);
    // B follows pa now.
    wait_seq(&b.data, &b_id, 3, &b);
    visit(&a, &stick);
    assert_eq!(seq(&a.data, &phone_id), 4);
    // A follows B, pa and the phone; pa's next sync gets the phone's feed.
    wait_seq(&a.data, &a_id, 3, &a);
    sync(&pa, &a);
    assert_eq!(pa.seq(&phone_id), 4, "pa lacks the ssb-server phone's feed");
}

#[test]
fn a_live_peer_shows_how_far_behind_it_is_while_it_stays_connected() {
    let dir = tempfile::tempdir().unwrap();
    let boxed = Node::start_with(dir.path(), "box", "carry = \"connected\"\n", &[]);
    let box_id = whoami(&boxed.data);
    let phone = Node::start_with(dir.path(), "phone", "", &["--connect", &boxed.addr]);
    let phone_id = whoami(&phone.data);
    ok(ssb_at(&phone.data, &["follow", &box_id]));
    wait_seq(&boxed.data, &phone_id, 1, &boxed);
    for i in 0..3 {
        let other = Site::new(dir.path(), &format!("o{i}"), 0);
        ok(ssb_at(&boxed.data, &["follow", &other.id]));
    }
    // The box's 4 follows reach the phone live.
    wait_seq(&phone.data, &box_id, 4, &phone);
    // The box's status says so while the link stays open (the clock it
    // shows is at most 10 s old).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = status(&boxed);
        if let Some(e) = behind(&s, "peers", "key", &phone_id) {
            if lag(Some(e)) == (0, 0) && e["feeds"].as_u64() >= Some(2) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the live peer's lag never showed: {s}\n{}",
            boxed.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status(&boxed)["peers_connected"], 1);
}

/// Live peers of B, an ssb-server 16 phone and a phone running our node,
/// both following B at 2 hops, stay connected while a stick from A brings
/// A's community to B: each gets the other site's phone's feed in the same
/// session, once B carries it, without reconnecting. B tells its note for
/// pa as soon as A's follow of pa is in (pa's messages not yet); the
/// ssb-server phone answers -1 (pa is 3 hops from it until B's own follow of
/// pa reaches it), and asks for pa only once B tells it holds more.
#[test]
fn live_peers_get_the_other_sites_feeds_a_stick_brings_without_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_id, b, b_id) = two_sites(dir.path());
    let pa = Site::new(dir.path(), "pa", 3);
    ok(ssb_at(&pa.data, &["follow", &a_id]));
    sync(&pa, &a);
    // A follows B and pa.
    wait_seq(&a.data, &a_id, 2, &a);

    let mut js = ssb_server::SsbServer::start(ssb_server::Options::default());
    let js_id = js.id().to_owned();
    js.ok(json!({"cmd": "follow", "id": b_id}));
    js.ok(json!({"cmd": "connect", "address": b.addr}));
    let ours = Node::start_with(dir.path(), "ours", "", &["--connect", &b.addr]);
    let ours_id = whoami(&ours.data);
    ok(ssb_at(&ours.data, &["follow", &b_id]));
    // B carries both; both hold B's feed (its follow of A, and of each phone).
    wait_seq(&b.data, &js_id, 1, &b);
    wait_seq(&b.data, &ours_id, 1, &b);
    wait_seq(&b.data, &b_id, 3, &b);
    js.wait_for(&b_id, 3, DEADLINE);
    wait_seq(&ours.data, &b_id, 3, &ours);
    let connects = js.ok(json!({"cmd": "stats"}))["connects"].clone();

    // The stick: A's feed and pa's reach B; B follows pa (a site's follow).
    let stick = dir.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    visit(&a, &stick);
    visit(&b, &stick);
    assert_eq!(seq(&b.data, &pa.id), 4);
    wait_seq(&b.data, &b_id, 4, &b);

    // Both phones get pa's feed in the session they stayed in.
    wait_seq(&ours.data, &pa.id, 4, &ours);
    assert_eq!(seq(&ours.data, &a_id), seq(&b.data, &a_id));
    let got = js.cmd(json!({"cmd": "waitFor", "id": pa.id, "seq": 4, "timeoutMs": 30_000}));
    assert!(
        got.get("error").is_none(),
        "the ssb-server phone lacks pa: {got}\n--- B ---\n{}",
        b.log()
    );
    assert_eq!(
        js.ok(json!({"cmd": "stats"}))["connects"],
        connects,
        "no reconnect"
    );
    assert_eq!(status(&b)["peers_connected"], 2);
}
