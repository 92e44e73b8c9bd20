//! Progress bars on stderr for anything that pages or loops. indicatif draws nothing when stderr
//! is not a terminal (CI, a pipe, the tests), so output that scripts read is never interleaved
//! with bar frames; lines meant for the operator go through [`note`] so that they survive either
//! way.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner for work of unknown length (pages of users, a table scan).
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.to_owned());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}] {pos}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar for work whose size is known (approximately: a queue's depth).
pub fn bar(length: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(length).with_message(message.to_owned());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{elapsed}] {wide_bar} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Prints a line to stderr above the bar (the bar's own `println` prints nothing when hidden).
pub fn note(bar: &ProgressBar, line: &str) {
    bar.suspend(|| eprintln!("{line}"));
}
