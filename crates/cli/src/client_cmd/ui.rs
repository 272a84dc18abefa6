//! Output modes and progress: a bar on stderr only when it is a terminal and neither `--json`
//! nor `--quiet` is given; the client library's workflows report through [`Progress`].

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use ocireg_client::workflow::{Meter, Progress};
use serde_json::Value;

use super::OutputArgs;

/// The bars drawn so far, so that an interrupted command can erase them: their owners may be
/// tasks that outlive the cancelled future.
static DRAWN: Mutex<Vec<ProgressBar>> = Mutex::new(Vec::new());

/// Erases the progress bar still on screen (after Ctrl-C). The bars are hidden first, so that
/// their owners (tasks that may outlive the cancelled future) cannot draw them again; then the
/// line the cursor is on (where the terminal echoed `^C`) and the bar's line above it (bars are
/// drawn with a line feed after them) are erased, and the cursor is left at the bar's line.
pub(crate) fn clear_bars() {
    let Ok(mut drawn) = DRAWN.lock() else {
        return;
    };
    let shown = drawn.iter().any(|b| !b.is_finished());
    for bar in drawn.drain(..) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if shown {
        eprint!("\r\x1b[2K\x1b[1A\x1b[2K");
    }
}

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
        // A bar dropped before it finished (an error) erases itself.
        let pb = ProgressBar::new(len).with_finish(ProgressFinish::AndClear);
        if let Ok(mut drawn) = DRAWN.lock() {
            drawn.retain(|b| !b.is_finished());
            drawn.push(pb.clone());
        }
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

/// A progress bar as the client library's byte meter.
struct Bar(ProgressBar);

impl Meter for Bar {
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Ui {
    fn status(&self, message: &str) {
        Ui::status(self, message);
    }

    fn meter(&self, what: &str, total: u64) -> Option<Arc<dyn Meter>> {
        self.bar(total, what)
            .map(|b| Arc::new(Bar(b)) as Arc<dyn Meter>)
    }
}

/// `1.5 MiB`-style size.
pub(crate) fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}
