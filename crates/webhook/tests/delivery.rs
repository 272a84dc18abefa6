//! The notifier against real local receivers: retries with backoff until recovery, order,
//! HMAC signatures, independent endpoints, restarts (at-least-once, exactly once after dedup),
//! torn queue files after a crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod receiver;

use std::path::Path;
use std::time::Duration;

use ocireg_webhook::{Action, Event, Notifier, NotifierOptions, Secret, Url, WebhookError};
use receiver::{dedup, free_port, wait_until, Mode, Receiver};

const SECRET: &[u8] = b"s3cret-key";

fn opts(dir: &Path, endpoints: Vec<Url>) -> NotifierOptions {
    let mut o = NotifierOptions::new(dir, endpoints);
    o.timeout = Duration::from_secs(5);
    o.retry_delay = Duration::from_millis(50);
    o.retry_max_delay = Duration::from_millis(200);
    o
}

fn event(i: usize) -> Event {
    let repo = format!("team/repo{}", i % 3);
    let mut e = Event::new(
        if i % 4 == 3 {
            Action::Delete
        } else {
            Action::Push
        },
        repo,
        format!("sha256:{:064x}", i),
        "application/vnd.oci.image.manifest.v1+json",
        100 + i as u64,
    );
    e.tag = (i % 2 == 0).then(|| format!("v{i}"));
    e.actor = Some("alice".into());
    e
}

async fn enqueue_all(n: &Notifier, events: &[Event]) {
    for e in events {
        n.enqueue(e).await.unwrap();
    }
}

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoint_recovers_in_order_with_backoff_and_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(0, Mode::FailFirst(5), Some(SECRET), Duration::ZERO).await;
    let mut o = opts(dir.path(), vec![rx.url()]);
    o.retry_delay = Duration::from_millis(100);
    o.retry_max_delay = Duration::from_millis(400);
    o.secret = Some(Secret::new(SECRET));
    let n = Notifier::open(o).await.unwrap();
    let events: Vec<Event> = (0..20).map(event).collect();
    enqueue_all(&n, &events).await;
    wait_until(Duration::from_secs(20), "20 acknowledged events", || {
        rx.acked().len() >= 20
    })
    .await;
    let hits = rx.hits();
    // Strict queue order per endpoint (so per repository too), each event acknowledged once.
    assert_eq!(rx.acked(), ids(&events));
    // The first event took 5 failures then a success: attempts 1..=6, spaced by the backoff.
    let first: Vec<_> = hits.iter().filter(|h| h.id == ids(&events)[0]).collect();
    assert_eq!(first.len(), 6);
    assert_eq!(
        first.iter().map(|h| h.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert!(first[..5].iter().all(|h| h.status == 500) && first[5].status == 200);
    let expected_ms = [100u128, 200, 400, 400, 400];
    for (i, want) in expected_ms.iter().enumerate() {
        let gap = first[i + 1].at.duration_since(first[i].at).as_millis();
        assert!(
            gap * 10 >= want * 9 && gap < want + 1500,
            "gap {i}: {gap} ms, backoff wants {want} ms"
        );
    }
    // Every request was signed with the secret, and the payload is the event.
    assert!(hits.iter().all(|h| h.sig_ok == Some(true)));
    for (h, e) in hits.iter().filter(|h| h.status == 200).zip(&events) {
        assert_eq!(&h.env.event, e);
        assert_eq!(h.env.version, 1);
    }
    let stats = n.stats();
    assert_eq!(
        (stats.enqueued, stats.delivered, stats.failed_attempts),
        (20, 20, 5)
    );
    n.shutdown().await;
    assert!(matches!(
        n.enqueue(&event(99)).await,
        Err(WebhookError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_until_the_receiver_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap();
    let n = Notifier::open(opts(dir.path(), vec![url])).await.unwrap();
    let events: Vec<Event> = (0..6).map(event).collect();
    enqueue_all(&n, &events).await;
    wait_until(Duration::from_secs(10), "refused attempts", || {
        n.stats().failed_attempts >= 3
    })
    .await;
    assert_eq!(n.stats().delivered, 0);
    let rx = Receiver::start(port, Mode::Ok, None, Duration::ZERO).await;
    wait_until(Duration::from_secs(10), "6 events after recovery", || {
        rx.acked().len() >= 6
    })
    .await;
    assert_eq!(rx.acked(), ids(&events));
    assert!(rx.hits().iter().all(|h| h.sig_ok.is_none()));
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_endpoint_does_not_block_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let down = Receiver::start(0, Mode::Fail(503), None, Duration::ZERO).await;
    let up = Receiver::start(0, Mode::Ok, None, Duration::ZERO).await;
    let n = Notifier::open(opts(dir.path(), vec![down.url(), up.url()]))
        .await
        .unwrap();
    let events: Vec<Event> = (0..10).map(event).collect();
    enqueue_all(&n, &events).await;
    wait_until(Duration::from_secs(10), "healthy endpoint has all", || {
        up.acked().len() >= 10
    })
    .await;
    assert_eq!(up.acked(), ids(&events));
    // The failing endpoint only ever saw the head of the queue, retried.
    wait_until(Duration::from_secs(10), "failing endpoint retried", || {
        down.hits().len() >= 2
    })
    .await;
    let tried = down.hits();
    assert!(tried.iter().all(|h| h.id == ids(&events)[0]));
    down.set_mode(Mode::Ok);
    wait_until(
        Duration::from_secs(10),
        "recovered endpoint has all",
        || down.acked().len() >= 10,
    )
    .await;
    assert_eq!(down.acked(), ids(&events));
    assert_eq!(up.acked().len(), 10, "no redelivery to the healthy one");
    n.shutdown().await;
}

fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_queue_delivers_everything_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    // A slow endpoint (dropped mid-queue) and a failing one (nothing delivered before restart).
    let slow = Receiver::start(0, Mode::Ok, None, Duration::from_millis(30)).await;
    let failing = Receiver::start(0, Mode::Fail(500), None, Duration::ZERO).await;
    let endpoints = vec![slow.url(), failing.url()];
    let mut o = opts(dir.path(), endpoints.clone());
    o.segment_bytes = 2048; // several segments, so cleanup is exercised
    let n = Notifier::open(o.clone()).await.unwrap();
    let mut events: Vec<Event> = (0..30).map(event).collect();
    enqueue_all(&n, &events).await;
    wait_until(Duration::from_secs(10), "some delivered", || {
        slow.acked().len() >= 5
    })
    .await;
    drop(n); // no graceful shutdown: tasks are aborted mid-delivery
    let before = slow.acked().len();
    assert!(before < 30, "dropped mid-queue ({before} delivered)");
    failing.set_mode(Mode::Ok);
    let n = Notifier::open(o).await.unwrap();
    let more: Vec<Event> = (30..40).map(event).collect();
    enqueue_all(&n, &more).await;
    events.extend(more);
    for (name, rx) in [("slow", &slow), ("failing", &failing)] {
        wait_until(Duration::from_secs(20), name, || {
            dedup(&rx.acked()).len() >= 40
        })
        .await;
        // At least once, and after dedup by id exactly once each, in queue order.
        assert_eq!(dedup(&rx.acked()), ids(&events), "{name}");
        assert!(
            rx.acked().len() <= 41,
            "{name}: at most the in-flight one twice"
        );
    }
    // Every segment both endpoints finished is removed.
    wait_until(Duration::from_secs(5), "old segments removed", || {
        segments(dir.path()).len() <= 2
    })
    .await;
    n.shutdown().await;
    drop(n);
    // A third run redelivers nothing.
    let (a, b) = (slow.acked().len(), failing.acked().len());
    let n = Notifier::open(opts(dir.path(), endpoints)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((slow.acked().len(), failing.acked().len()), (a, b));
    assert_eq!(segments(dir.path()).len(), 1, "{:?}", segments(dir.path()));
    n.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_stray_queue_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap();
    let n = Notifier::open(opts(dir.path(), vec![url.clone()]))
        .await
        .unwrap();
    let events: Vec<Event> = (0..3).map(event).collect();
    enqueue_all(&n, &events).await;
    // Durable when enqueue returns: the bodies are in the journal on disk.
    let journal = dir.path().join("journal");
    let seg = journal.join(segments(dir.path()).last().unwrap());
    let data = std::fs::read(&seg).unwrap();
    for id in ids(&events) {
        assert!(
            data.windows(id.len()).any(|w| w == id.as_bytes()),
            "{id} on disk"
        );
    }
    // A second notifier cannot share the directory.
    assert!(matches!(
        Notifier::open(opts(dir.path(), vec![url.clone()])).await,
        Err(WebhookError::Locked(_))
    ));
    drop(n);
    // Simulate a crash mid-write: a torn record at the tail, temp files, junk.
    let mut torn = data[..40.min(data.len())].to_vec();
    torn.extend_from_slice(b"\xff\xff garbage");
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &torn).unwrap();
    drop(f);
    std::fs::write(journal.join("00000000000000000099.log.tmp"), b"partial").unwrap();
    std::fs::write(journal.join("notes.txt"), b"not a segment").unwrap();
    std::fs::write(dir.path().join("cursors").join("abc.json.tmp"), b"{\"segm").unwrap();
    let rx = Receiver::start(port, Mode::Ok, None, Duration::ZERO).await;
    let n = Notifier::open(opts(dir.path(), vec![url])).await.unwrap();
    let last = event(3);
    n.enqueue(&last).await.unwrap();
    wait_until(Duration::from_secs(10), "4 events", || {
        rx.acked().len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut want = ids(&events);
    want.push(last.id.to_string());
    assert_eq!(rx.acked(), want, "the torn tail delivered nothing");
    assert!(!journal.join("00000000000000000099.log.tmp").exists());
    n.shutdown().await;
}

#[tokio::test]
async fn bad_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ftp = Url::parse("ftp://127.0.0.1/x").unwrap();
    assert!(matches!(
        Notifier::open(opts(dir.path(), vec![ftp])).await,
        Err(WebhookError::Options(_))
    ));
    assert!(matches!(
        Notifier::open(opts(dir.path(), vec![])).await,
        Err(WebhookError::Options(_))
    ));
    let twice = Url::parse("http://127.0.0.1:9/x").unwrap();
    assert!(matches!(
        Notifier::open(opts(dir.path(), vec![twice.clone(), twice])).await,
        Err(WebhookError::Options(_))
    ));
    let mut o = opts(
        dir.path(),
        vec![Url::parse("http://127.0.0.1:9/x").unwrap()],
    );
    o.retry_max_delay = Duration::from_millis(1);
    assert!(matches!(
        Notifier::open(o).await,
        Err(WebhookError::Options(_))
    ));
    let s = format!("{:?}", Secret::new("topsecret"));
    assert!(!s.contains("topsecret"));
}
