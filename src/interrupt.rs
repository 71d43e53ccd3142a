//! Ctrl-C, once per run. One listener, started by `main`; work that can stop cleanly (a plan
//! being carried out, `create --wait`) holds a [`Handling`] guard while it runs.
//!
//! - While something handles it, the first Ctrl-C asks it to stop: it starts nothing new,
//!   lets the requests in flight end and reports (exit 130). The second quits at once.
//! - Otherwise the first Ctrl-C quits at once.
//!
//! Quitting is `main`'s decision: it waits on [`Interrupt::quit`] beside the command.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// How far the user has asked amictl to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    Nothing,
    Stop,
    Quit,
}

/// The run's Ctrl-C.
#[derive(Debug, Clone)]
pub struct Interrupt {
    asked: watch::Receiver<Asked>,
    handlers: Arc<AtomicUsize>,
}

/// While alive, the first Ctrl-C asks to stop rather than to quit.
#[derive(Debug)]
pub struct Handling {
    handlers: Arc<AtomicUsize>,
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.handlers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Interrupt {
    /// Starts listening for Ctrl-C (within the runtime).
    pub fn listen() -> Interrupt {
        let (tell, asked) = watch::channel(Asked::Nothing);
        let handlers = Arc::new(AtomicUsize::new(0));
        let handled = Arc::clone(&handlers);
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                let next = match *tell.borrow() {
                    Asked::Nothing if handled.load(Ordering::SeqCst) > 0 => Asked::Stop,
                    _ => Asked::Quit,
                };
                tell.send_replace(next);
                if next == Asked::Quit {
                    return;
                }
            }
        });
        Interrupt { asked, handlers }
    }

    /// An interrupt that never fires, for tests.
    #[cfg(test)]
    pub fn never() -> Interrupt {
        let (tell, asked) = watch::channel(Asked::Nothing);
        std::mem::forget(tell);
        Interrupt {
            asked,
            handlers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// This work handles the first Ctrl-C itself, for as long as the guard lives.
    pub fn handle(&self) -> Handling {
        self.handlers.fetch_add(1, Ordering::SeqCst);
        Handling {
            handlers: Arc::clone(&self.handlers),
        }
    }

    /// Whether the user asked to stop (or quit).
    pub fn is_stopped(&self) -> bool {
        *self.asked.borrow() != Asked::Nothing
    }

    /// Resolves when the user asks to stop (or quit).
    pub async fn stopped(&self) {
        self.wait_for(|asked| asked != Asked::Nothing).await;
    }

    /// Resolves when the user asks to quit at once.
    pub async fn quit(&self) {
        self.wait_for(|asked| asked == Asked::Quit).await;
    }

    async fn wait_for(&self, wanted: impl Fn(Asked) -> bool) {
        let mut asked = self.asked.clone();
        if asked.wait_for(|a| wanted(*a)).await.is_err() {
            // No listener any more: nothing will ever be asked.
            std::future::pending::<()>().await;
        }
    }
}
