//! Git progress on a terminal: a spinner per phase, a bar while cloning. Silent elsewhere.

use std::time::Duration;

use plg_loader::git::{GitProgress, Phase};

pub struct CliProgress(indicatif::ProgressBar);

impl CliProgress {
    /// A spinner on stderr when `visible`, else nothing.
    pub fn new(visible: bool) -> Self {
        let bar = if visible {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        CliProgress(bar)
    }

    /// Runs `f` with the bar out of the way, so its output is not overdrawn.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.suspend(f)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl GitProgress for CliProgress {
    fn phase(&self, phase: Phase) {
        let msg = match phase {
            Phase::Resolve => "resolving the revision",
            Phase::Clone => "cloning",
            Phase::Build => "building with cargo (the repository's build scripts run now)",
            Phase::Install => "verifying and installing",
            _ => "done",
        };
        self.0.set_message(msg);
        let style = if phase == Phase::Clone {
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} objects",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
        } else {
            indicatif::ProgressStyle::default_spinner()
        };
        self.0.set_style(style);
    }

    fn transfer(&self, received: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(received as u64);
    }
}
