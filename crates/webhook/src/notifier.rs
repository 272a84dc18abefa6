//! [`Notifier`]: opens the queue directory, runs the journal writer (group commit) and one
//! delivery task per endpoint.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use url::Url;

use crate::cursor::{self, Loaded};
use crate::deliver::{self, Endpoint};
use crate::journal::{self, Pos, SegmentWriter};
use crate::{Envelope, Event, Result, WebhookError};

/// Most events committed by one journal write.
const MAX_BATCH: usize = 512;
/// Queued enqueue calls waiting for the writer.
const CHANNEL: usize = 4096;
/// How long `open` waits for a previous owner of the directory to let go.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// An HMAC key; never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Settings of a [`Notifier`].
#[derive(Debug, Clone)]
pub struct NotifierOptions {
    /// Queue directory (created if missing).
    pub dir: PathBuf,
    /// Endpoints (http or https); each gets every event.
    pub endpoints: Vec<Url>,
    /// HMAC-SHA256 key; when set every delivery carries `X-Ocireg-Signature`.
    pub secret: Option<Secret>,
    /// Timeout of one delivery attempt (connect + response).
    pub timeout: Duration,
    /// Delay before the first retry; doubles per failure.
    pub retry_delay: Duration,
    /// Longest delay between attempts.
    pub retry_max_delay: Duration,
    /// A journal segment is closed and a new one started past this size (bytes).
    pub segment_bytes: u64,
}

impl NotifierOptions {
    /// Options with the schema's defaults: 10 s timeout, 1 s first retry, 300 s longest delay.
    pub fn new(dir: impl Into<PathBuf>, endpoints: Vec<Url>) -> Self {
        Self {
            dir: dir.into(),
            endpoints,
            secret: None,
            timeout: Duration::from_secs(10),
            retry_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(300),
            segment_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Counters since `open`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifierStats {
    /// Events made durable.
    pub enqueued: u64,
    /// `enqueue` calls that failed (the event is lost).
    pub enqueue_failures: u64,
    /// Successful (2xx) deliveries, summed over endpoints.
    pub delivered: u64,
    /// Failed delivery attempts, summed over endpoints.
    pub failed_attempts: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) enqueue_failures: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
}

/// State shared by the notifier and its tasks. Holding it holds the directory lock.
pub(crate) struct Shared {
    pub(crate) journal: PathBuf,
    pub(crate) cursors: PathBuf,
    pub(crate) client: reqwest::Client,
    pub(crate) secret: Option<Secret>,
    pub(crate) timeout: Duration,
    pub(crate) retry_delay: Duration,
    pub(crate) retry_max_delay: Duration,
    /// End of the durable journal; delivery tasks follow it.
    pub(crate) head: watch::Sender<Pos>,
    /// Every endpoint's cursor (index = endpoint), for segment cleanup.
    pub(crate) positions: Mutex<Vec<Pos>>,
    pub(crate) stats: Counters,
    /// The `flock`ed lock file; closing it releases the lock.
    _lock: File,
}

impl Shared {
    pub(crate) fn positions(&self) -> MutexGuard<'_, Vec<Pos>> {
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Job {
    body: Vec<u8>,
    done: oneshot::Sender<Result<()>>,
}

/// The webhook notifier: a durable queue plus one delivery task per endpoint.
pub struct Notifier {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    stop: watch::Sender<bool>,
    writer: Mutex<Option<JoinHandle<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("journal", &self.shared.journal)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_options(opts: &NotifierOptions) -> Result<()> {
    if opts.endpoints.is_empty() {
        return Err(WebhookError::Options("no endpoints".into()));
    }
    for (i, url) in opts.endpoints.iter().enumerate() {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookError::Options(format!(
                "endpoint {i} ({}): only http and https are supported",
                cursor::display(url)
            )));
        }
        if opts.endpoints[..i].contains(url) {
            return Err(WebhookError::Options(format!(
                "endpoint {i} repeats an earlier endpoint"
            )));
        }
    }
    if opts.timeout.is_zero() || opts.retry_delay.is_zero() {
        return Err(WebhookError::Options(
            "timeout and retry_delay must be positive".into(),
        ));
    }
    if opts.retry_max_delay < opts.retry_delay {
        return Err(WebhookError::Options(
            "retry_max_delay must not be shorter than retry_delay".into(),
        ));
    }
    Ok(())
}

/// Takes the directory's lock, waiting up to [`LOCK_WAIT`] for a previous owner to finish.
fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| WebhookError::io("opening", &path, e))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {
                if std::time::Instant::now() >= deadline {
                    return Err(WebhookError::Locked(dir.to_path_buf()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(WebhookError::io("locking", &path, e.into())),
        }
    }
}

/// What `open` prepares on the blocking pool.
struct Prepared {
    lock: File,
    writer: SegmentWriter,
    starts: Vec<Pos>,
}

fn prepare(
    opts: &NotifierOptions,
    keys: &[String],
    journal: &Path,
    cursors: &Path,
) -> Result<Prepared> {
    for d in [&opts.dir, &journal.to_path_buf(), &cursors.to_path_buf()] {
        fs::create_dir_all(d).map_err(|e| WebhookError::io("creating", d, e))?;
    }
    let lock = take_lock(&opts.dir)?;
    let segs = journal::recover(journal).map_err(|e| WebhookError::io("recovering", journal, e))?;
    journal::remove_temp_files(cursors).map_err(|e| WebhookError::io("cleaning", cursors, e))?;
    let new_seg = segs.last().map_or(1, |s| s + 1);
    let fresh = Pos {
        seg: new_seg,
        off: 0,
    };
    let oldest = Pos {
        seg: segs.first().copied().unwrap_or(new_seg),
        off: 0,
    };
    let mut starts = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let loaded =
            cursor::load(cursors, key).map_err(|e| WebhookError::io("reading", cursors, e))?;
        let start = match loaded {
            Loaded::At(p) if p <= fresh => p,
            Loaded::At(p) => {
                tracing::warn!(
                    endpoint = i,
                    ?p,
                    "webhook cursor is past the journal; restarting it at the end"
                );
                fresh
            }
            Loaded::Missing => fresh,
            Loaded::Unreadable => {
                tracing::warn!(
                    endpoint = i,
                    "unreadable webhook cursor; redelivering every retained event"
                );
                oldest
            }
        };
        cursor::store(cursors, key, start)
            .map_err(|e| WebhookError::io("writing cursor in", cursors, e))?;
        starts.push(start);
    }
    for stale in
        cursor::stale(cursors, keys).map_err(|e| WebhookError::io("reading", cursors, e))?
    {
        tracing::info!(file = %stale.display(), "removing the cursor of an endpoint no longer configured");
        fs::remove_file(&stale).map_err(|e| WebhookError::io("removing", &stale, e))?;
    }
    let writer = SegmentWriter::create(journal, new_seg)
        .map_err(|e| WebhookError::io("creating a segment in", journal, e))?;
    Ok(Prepared {
        lock,
        writer,
        starts,
    })
}

impl Notifier {
    /// Opens (or creates) the queue in `opts.dir` and starts delivering: every endpoint resumes
    /// from its cursor; an endpoint seen for the first time gets events enqueued from now on.
    pub async fn open(opts: NotifierOptions) -> Result<Notifier> {
        check_options(&opts)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.timeout)
            .user_agent(concat!("ocireg-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookError::Options(format!("HTTP client: {e}")))?;
        let keys: Vec<String> = opts.endpoints.iter().map(cursor::key).collect();
        let journal_dir = opts.dir.join("journal");
        let cursors_dir = opts.dir.join("cursors");
        let prepared = {
            let (opts, keys) = (opts.clone(), keys.clone());
            let (j, c) = (journal_dir.clone(), cursors_dir.clone());
            tokio::task::spawn_blocking(move || prepare(&opts, &keys, &j, &c))
                .await
                .map_err(|e| WebhookError::Options(format!("opening the queue: {e}")))??
        };
        let head = Pos {
            seg: prepared.writer.seg,
            off: 0,
        };
        let (head_tx, _) = watch::channel(head);
        let shared = Arc::new(Shared {
            journal: journal_dir,
            cursors: cursors_dir,
            client,
            secret: opts.secret.clone(),
            timeout: opts.timeout,
            retry_delay: opts.retry_delay,
            retry_max_delay: opts.retry_max_delay,
            head: head_tx,
            positions: Mutex::new(prepared.starts.clone()),
            stats: Counters::default(),
            _lock: prepared.lock,
        });
        deliver::collect_segments(&shared).await;
        let (stop, _) = watch::channel(false);
        let (tx, rx) = mpsc::channel(CHANNEL);
        let writer = tokio::spawn(write_loop(
            shared.clone(),
            rx,
            prepared.writer,
            opts.segment_bytes,
        ));
        let tasks = opts
            .endpoints
            .iter()
            .zip(keys)
            .zip(prepared.starts)
            .enumerate()
            .map(|(idx, ((url, key), start))| {
                let ep = Endpoint {
                    idx,
                    shown: cursor::display(url),
                    url: url.clone(),
                    key,
                };
                tracing::info!(endpoint = %ep.shown, "webhook endpoint");
                tokio::spawn(deliver::run(
                    shared.clone(),
                    ep,
                    start,
                    shared.head.subscribe(),
                    stop.subscribe(),
                ))
            })
            .collect();
        Ok(Notifier {
            tx: Mutex::new(Some(tx)),
            stop,
            writer: Mutex::new(Some(writer)),
            tasks: Mutex::new(tasks),
            shared,
        })
    }

    /// Queues an event; returns once it is durable on disk (or with the reason it is not).
    pub async fn enqueue(&self, event: &Event) -> Result<()> {
        let result = self.enqueue_inner(event).await;
        if result.is_err() {
            self.shared
                .stats
                .enqueue_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn enqueue_inner(&self, event: &Event) -> Result<()> {
        let body = Envelope::new(event.clone()).to_body()?;
        let tx = lock(&self.tx).clone().ok_or(WebhookError::Closed)?;
        let (done, wait) = oneshot::channel();
        tx.send(Job { body, done })
            .await
            .map_err(|_| WebhookError::Closed)?;
        wait.await.map_err(|_| WebhookError::Closed)?
    }

    /// Counters since `open`.
    pub fn stats(&self) -> NotifierStats {
        let s = &self.shared.stats;
        NotifierStats {
            enqueued: s.enqueued.load(Ordering::Relaxed),
            enqueue_failures: s.enqueue_failures.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            failed_attempts: s.failed_attempts.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting events, lets queued `enqueue` calls finish their journal write, then stops
    /// the delivery tasks (an attempt in flight is abandoned and redelivered after the next
    /// `open`). Idempotent.
    pub async fn shutdown(&self) {
        drop(lock(&self.tx).take());
        let writer = lock(&self.writer).take();
        if let Some(w) = writer {
            let _ = w.await;
        }
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(w) = lock(&self.writer).take() {
            w.abort();
        }
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Job>,
    writer: SegmentWriter,
    segment_bytes: u64,
) {
    let mut writer = Some(writer);
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut records = Vec::with_capacity(jobs.len());
        let mut waiting = Vec::with_capacity(jobs.len());
        for job in jobs {
            match journal::encode(&job.body) {
                Ok(r) => {
                    records.push(r);
                    waiting.push(job.done);
                }
                Err(e) => {
                    let _ = job
                        .done
                        .send(Err(WebhookError::io("encoding", &shared.journal, e)));
                }
            }
        }
        if records.is_empty() {
            continue;
        }
        let Some(mut w) = writer.take() else {
            for done in waiting {
                let _ = done.send(Err(WebhookError::Closed));
            }
            continue;
        };
        let hold = shared.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let _hold = hold;
            if w.len >= segment_bytes {
                match w.rotate() {
                    Ok(next) => w = next,
                    Err(e) => return (w, Err(e)),
                }
            }
            let r = w.append(&records);
            (w, r)
        })
        .await;
        match outcome {
            Ok((w, Ok(()))) => {
                shared.head.send_replace(Pos {
                    seg: w.seg,
                    off: w.len,
                });
                writer = Some(w);
                let n = waiting.len() as u64;
                shared.stats.enqueued.fetch_add(n, Ordering::Relaxed);
                for done in waiting {
                    let _ = done.send(Ok(()));
                }
            }
            Ok((w, Err(e))) => {
                tracing::error!(error = %e, "webhook journal write failed");
                writer = Some(w);
                for done in waiting {
                    let err = std::io::Error::new(e.kind(), e.to_string());
                    let _ = done.send(Err(WebhookError::io("appending to", &shared.journal, err)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "webhook journal writer stopped");
                for done in waiting {
                    let _ = done.send(Err(WebhookError::Closed));
                }
            }
        }
    }
}
