//! Output modes and progress: a bar on stderr only when it is a terminal and neither `--json`
//! nor `--quiet` is given; byte-counting reader/writer wrappers feed the bar.

use std::io::IsTerminal;
use std::pin::Pin;
use std::task::{Context, Poll};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::OutputArgs;

/// How a command reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ui {
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
    bars: bool,
}

impl Ui {
    /// From the output flags and whether stderr is a terminal.
    pub fn new(out: OutputArgs) -> Ui {
        Ui {
            json: out.json,
            quiet: out.quiet,
            bars: !out.json && !out.quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A byte progress bar of `len` bytes, or `None` when bars are off.
    pub fn bar(&self, len: u64, what: &str) -> Option<ProgressBar> {
        if !self.bars {
            return None;
        }
        let pb = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:24!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(what.to_owned());
        Some(pb)
    }

    /// A status line on stderr (text mode only).
    pub fn status(&self, msg: &str) {
        if !self.json && !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// Prints the result: the JSON object with `--json`, `quiet` with `--quiet`, else `text`.
    pub fn result(&self, json: &Value, quiet: &str, text: &str) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(json).unwrap_or_default());
        } else if self.quiet {
            if !quiet.is_empty() {
                println!("{quiet}");
            }
        } else if !text.is_empty() {
            println!("{text}");
        }
    }
}

/// Finishes a bar, if any.
pub(crate) fn finish(bar: Option<&ProgressBar>) {
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

/// Counts bytes read through it on a progress bar.
pub(crate) struct CountingReader<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R> CountingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, bar: ProgressBar) -> Self {
        CountingReader { inner, bar }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.bar.inc(n as u64);
        }
        r
    }
}

/// Counts bytes written through it on a progress bar (when there is one).
pub(crate) struct CountingWriter<W> {
    inner: W,
    bar: Option<ProgressBar>,
}

impl<W> CountingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W, bar: Option<ProgressBar>) -> Self {
        CountingWriter { inner, bar }
    }

    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(bar)) = (&r, &self.bar) {
            bar.inc(*n as u64);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `1.5 MiB`-style size.
pub(crate) fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}
