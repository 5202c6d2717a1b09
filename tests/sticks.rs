//! Stick detection and handling inside one process, on real folders: the
//! watcher (`appliance::mounts`) on temporary mount roots, the stick loop
//! (`appliance::sticks`) with handlers the test controls, the node status, and
//! the status LED on a fake LED-class directory.
//!
//! Nothing here waits for a fixed time to pass before asserting: every wait
//! is for an event or a status change, with a generous deadline that only
//! matters when the code is broken. "Nothing happened" is checked with a
//! sentinel: a later change whose event must be the next one seen.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firmware::{LedSpec, Pattern};
use ssb_node::appliance::mounts::{self, StickEvent, SNEAKERNET_DIR};
use ssb_node::appliance::status::{Status, StickState};
use ssb_node::appliance::status_led;
use ssb_node::appliance::sticks::{self, StickFailure, StickHandler};
use tokio::sync::{mpsc, Notify};

#[path = "support/fake_led.rs"]
mod fake_led;
use fake_led::{fake_led, LedRecorder};

/// Long enough for any machine; only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(20);

/// Makes `dir` (outside the roots) a folder stick holding `SSB-SNEAKERNET/`.
fn folder_stick(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join(SNEAKERNET_DIR)).unwrap();
    dir.to_path_buf()
}

async fn next(rx: &mut mpsc::Receiver<StickEvent>) -> StickEvent {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("no stick event within the deadline")
        .expect("watcher stopped")
}

fn appeared(p: &Path) -> StickEvent {
    StickEvent::Appeared(p.to_path_buf())
}

fn vanished(p: &Path) -> StickEvent {
    StickEvent::Vanished(p.to_path_buf())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_sees_folder_sticks_at_any_depth_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media").canonicalize_or_create();
    let stage = dir.path().join("stage");
    // Present at start.
    let early = folder_stick(&root.join("early"));
    std::fs::create_dir_all(&stage).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let _watcher = mounts::spawn(vec![root.clone()], tx).unwrap();
    assert_eq!(next(&mut rx).await, appeared(&early));

    // Depth 1, moved in with rename(2).
    let one = root.join("one");
    std::fs::rename(folder_stick(&stage.join("one")), &one).unwrap();
    assert_eq!(next(&mut rx).await, appeared(&one));

    // Depth 2, moved in under an existing directory.
    std::fs::create_dir(root.join("user")).unwrap();
    let two = root.join("user/two");
    std::fs::rename(folder_stick(&stage.join("two")), &two).unwrap();
    assert_eq!(next(&mut rx).await, appeared(&two));

    // Depth 3, made in place: folders first, SSB-SNEAKERNET/ last.
    let three = root.join("a/b/c");
    std::fs::create_dir_all(&three).unwrap();
    std::fs::create_dir(three.join(SNEAKERNET_DIR)).unwrap();
    assert_eq!(next(&mut rx).await, appeared(&three));

    // Writing inside a stick, a symlink to a stick, a stick deeper than the
    // bound and a plain file named SSB-SNEAKERNET are not sticks; the
    // sentinel after them must be the next event.
    std::fs::write(one.join(SNEAKERNET_DIR).join("bundle"), b"x").unwrap();
    std::fs::create_dir(one.join(SNEAKERNET_DIR).join("sub")).unwrap();
    std::os::unix::fs::symlink(folder_stick(&stage.join("linked")), root.join("link")).unwrap();
    let four = root.join("a/b/c2/d");
    std::fs::create_dir_all(&four).unwrap();
    std::fs::create_dir(four.join(SNEAKERNET_DIR)).unwrap();
    std::fs::create_dir(root.join("f")).unwrap();
    std::fs::write(root.join("f").join(SNEAKERNET_DIR), b"not a folder").unwrap();
    let sentinel = root.join("sentinel");
    std::fs::rename(folder_stick(&stage.join("sentinel")), &sentinel).unwrap();
    assert_eq!(next(&mut rx).await, appeared(&sentinel));

    // Pulled (moved out), then re-inserted: reported again.
    std::fs::rename(&one, stage.join("one-out")).unwrap();
    assert_eq!(next(&mut rx).await, vanished(&one));
    std::fs::rename(stage.join("one-out"), &one).unwrap();
    assert_eq!(next(&mut rx).await, appeared(&one));

    // Removed with everything in it.
    std::fs::remove_dir_all(root.join("a")).unwrap();
    assert_eq!(next(&mut rx).await, vanished(&three));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_that_appears_later_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let root = dir.join("run/media");
    let (tx, mut rx) = mpsc::channel(16);
    let _watcher = mounts::spawn(vec![root.clone()], tx).unwrap();
    // Noise next to the missing root wakes nothing that matters.
    std::fs::create_dir(dir.join("other")).unwrap();
    std::fs::create_dir_all(root.join("pi")).unwrap();
    let stick = root.join("pi/STICK");
    std::fs::rename(folder_stick(&dir.join("stage")), &stick).unwrap();
    assert_eq!(next(&mut rx).await, appeared(&stick));
    // The root goes away and comes back.
    std::fs::remove_dir_all(dir.join("run")).unwrap();
    assert_eq!(next(&mut rx).await, vanished(&stick));
    std::fs::create_dir_all(root.join("pi")).unwrap();
    std::fs::rename(folder_stick(&dir.join("stage2")), &stick).unwrap();
    assert_eq!(next(&mut rx).await, appeared(&stick));
}

trait CanonicalOrCreate {
    fn canonicalize_or_create(&self) -> PathBuf;
}

impl CanonicalOrCreate for PathBuf {
    fn canonicalize_or_create(&self) -> PathBuf {
        std::fs::create_dir_all(self).unwrap();
        self.canonicalize().unwrap()
    }
}

/// A stick handler that says when it starts and waits to be released; then
/// it does real I/O on the stick (a file in its SSB-SNEAKERNET folder).
#[derive(Clone, Default)]
struct Gate {
    started: Arc<Notify>,
    release: Arc<Notify>,
}

impl Gate {
    fn handler(&self) -> StickHandler {
        let gate = self.clone();
        Arc::new(move |stick: PathBuf| {
            let gate = gate.clone();
            Box::pin(async move {
                gate.started.notify_one();
                gate.release.notified().await;
                std::fs::write(stick.join(SNEAKERNET_DIR).join("written"), b"x")?;
                Ok(String::from("wrote one file"))
            })
        })
    }

    async fn wait_started(&self) {
        tokio::time::timeout(DEADLINE, self.started.notified())
            .await
            .expect("handler did not start");
    }
}

/// Waits until `pred` holds for the status.
async fn until(
    status: &Status,
    what: &str,
    pred: impl Fn(&ssb_node::appliance::status::Snapshot) -> bool,
) {
    let mut rx = status.subscribe();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if pred(&rx.borrow_and_update()) {
            return;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            panic!("status never became {what}: {:?}", status.snapshot());
        }
    }
}

/// Waits until some stick's state matches `pred`.
async fn until_stick(status: &Status, what: &str, pred: impl Fn(&StickState) -> bool) {
    until(status, what, |s| s.sticks.iter().any(|x| pred(&x.state))).await;
}

/// Makes a folder stick in `dir` and moves it into `root` as `root/stick`.
fn drop_in(dir: &Path, root: &Path) -> PathBuf {
    let stick = root.join("stick");
    std::fs::rename(folder_stick(&dir.join("s")), &stick).unwrap();
    stick
}

fn state_of(status: &Status, path: &Path) -> Option<StickState> {
    status
        .snapshot()
        .sticks
        .iter()
        .find(|s| s.path == path)
        .map(|s| s.state.clone())
}

/// Watcher + stick loop on one root, with `handler`.
fn start(root: &Path, handler: StickHandler) -> (Status, mounts::StickWatcher) {
    let status = Status::new();
    status.set_ready();
    let (tx, rx) = mpsc::channel(16);
    let watcher = mounts::spawn(vec![root.to_path_buf()], tx).unwrap();
    tokio::spawn(sticks::run(status.clone(), handler, rx));
    (status, watcher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stick_pulled_while_its_handler_runs_is_pulled_early() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media").canonicalize_or_create();
    let gate = Gate::default();
    let (status, _w) = start(&root, gate.handler());

    let stick = drop_in(dir.path(), &root);
    gate.wait_started().await;
    assert_eq!(state_of(&status, &stick), Some(StickState::Busy));
    assert_eq!(status.snapshot().pattern(), Pattern::StickBusy);

    // Pulled mid-way; the handler then fails on the missing stick.
    std::fs::rename(&stick, dir.path().join("pulled")).unwrap();
    until_stick(&status, "pulled early", |x| {
        matches!(x, StickState::PulledEarly { .. })
    })
    .await;
    gate.release.notify_one();
    // The handler's I/O error must not turn it into anything else.
    let snap = status.snapshot();
    assert_eq!(snap.pattern(), Pattern::Attention);
    let st = &snap.sticks[0];
    assert!(!st.present && st.attention, "{st:?}");

    // Re-inserted and synced fine: attention is cleared.
    std::fs::rename(dir.path().join("pulled"), &stick).unwrap();
    gate.wait_started().await;
    assert_eq!(status.snapshot().pattern(), Pattern::StickBusy);
    gate.release.notify_one();
    until(&status, "done", |s| s.pattern() == Pattern::StickDone).await;
    assert_eq!(
        state_of(&status, &stick),
        Some(StickState::Done {
            summary: "wrote one file".into()
        })
    );
    assert!(stick.join(SNEAKERNET_DIR).join("written").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_failing_because_its_stick_is_gone_counts_as_pulled_early() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media").canonicalize_or_create();
    let outside = dir.path().join("outside");
    // The handler sees the stick go before the watcher does (as with a real
    // pull: I/O errors come before the unmount), then fails.
    let out = outside.clone();
    let handler: StickHandler = Arc::new(move |stick: PathBuf| {
        let out = out.clone();
        Box::pin(async move {
            std::fs::rename(&stick, &out).unwrap();
            std::fs::write(stick.join(SNEAKERNET_DIR).join("x"), b"x")?;
            Ok(String::from("impossible"))
        })
    });
    let (status, _w) = start(&root, handler);
    drop_in(dir.path(), &root);
    until_stick(&status, "pulled early", |x| {
        matches!(x, StickState::PulledEarly { .. })
    })
    .await;
    let snap = status.snapshot();
    assert_eq!(snap.pattern(), Pattern::Attention);
    match &snap.sticks[0].state {
        StickState::PulledEarly { detail: Some(d) } => {
            assert!(d.contains("No such file"), "{d}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stick_that_stays_is_an_error_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media").canonicalize_or_create();
    let handler: StickHandler = Arc::new(|_stick: PathBuf| {
        Box::pin(async { Err(StickFailure::Incomplete("stick full".into())) })
    });
    let (status, _w) = start(&root, handler);
    let stick = drop_in(dir.path(), &root);
    until_stick(&status, "error", |x| matches!(x, StickState::Failed { .. })).await;
    let snap = status.snapshot();
    assert_eq!(snap.pattern(), Pattern::Attention);
    assert!(snap.sticks[0].present);
    assert_eq!(snap.sticks[0].state.text(), Some("stick full"));
    // Pulled afterwards: still a problem, now of a stick that is gone.
    std::fs::rename(&stick, dir.path().join("gone")).unwrap();
    until(&status, "pulled", |s| s.sticks.iter().all(|x| !x.present)).await;
    assert_eq!(status.snapshot().pattern(), Pattern::Attention);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_led_plays_heartbeat_then_flicker_while_busy_then_solid() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media").canonicalize_or_create();
    let led_dir = fake_led(dir.path());
    let recorder = LedRecorder::start(&led_dir);
    let gate = Gate::default();
    let (status, _w) = start(&root, gate.handler());
    let spec: LedSpec = format!("sysfs:{}", led_dir.display()).parse().unwrap();
    let led = status_led::start(&spec, &status).unwrap().unwrap();
    assert_eq!(
        std::fs::read_to_string(led_dir.join("trigger")).unwrap(),
        "none"
    );

    // Idle heartbeat: on, off, on, off…
    tokio::task::block_in_place(|| recorder.wait_writes(0, 4));
    let idle = recorder.since(0);
    assert!(
        idle.contains(&"255".into()) && idle.contains(&"0".into()),
        "{idle:?}"
    );

    // A stick: busy flicker for as long as its handler runs.
    let stick = drop_in(dir.path(), &root);
    gate.wait_started().await;
    assert_eq!(status.snapshot().pattern(), Pattern::StickBusy);
    let busy_from = recorder.count();
    let busy_since = Instant::now();
    // The flicker writes 20 times a second, the heartbeat 4 times in 2 s: 24
    // writes take the flicker 1.2 s and the heartbeat over 10 s. The bound
    // below leaves a slow machine 6 times the flicker's time.
    tokio::task::block_in_place(|| recorder.wait_writes(busy_from, 24));
    let took = busy_since.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "24 LED writes took {took:?}: not the busy flicker"
    );
    assert_eq!(status.snapshot().pattern(), Pattern::StickBusy);
    gate.release.notify_one();
    until(&status, "done", |s| s.pattern() == Pattern::StickDone).await;

    // Solid: lit, and no more writes (the heartbeat would write within 1.65 s).
    tokio::task::block_in_place(|| recorder.wait_steady());
    assert_eq!(
        std::fs::read_to_string(led_dir.join("brightness")).unwrap(),
        "255"
    );

    // Pulled after done: back to the heartbeat.
    let from = recorder.count();
    std::fs::rename(&stick, dir.path().join("out")).unwrap();
    until(&status, "idle", |s| s.pattern() == Pattern::Idle).await;
    tokio::task::block_in_place(|| recorder.wait_writes(from, 2));
    assert!(recorder.since(from).contains(&"0".into()));

    // Stopping the LED turns it off and gives the trigger back.
    drop(led);
    assert_eq!(
        std::fs::read_to_string(led_dir.join("brightness")).unwrap(),
        "0"
    );
    assert_eq!(
        std::fs::read_to_string(led_dir.join("trigger")).unwrap(),
        "mmc0"
    );
}
