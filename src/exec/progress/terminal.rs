//! The live display on a terminal: the ticker that redraws the spinners
//! while steps print nothing, and the guard that silences the display for
//! good once stderr fails.

use super::*;

/// The ticker's thread: wakes every tick, or at once to stop.
pub(super) struct Ticker {
    pub(super) running: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

impl Ticker {
    pub(super) fn start(shared: Arc<Shared>, tick: Duration) -> Ticker {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                loop {
                    match stopped.recv_timeout(tick) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    // Nobody to show anything to any more.
                    if shared.gone.load(Ordering::Relaxed) {
                        return;
                    }
                    shared.tick();
                }
            });
        // Without its thread the display still prints its permanent lines.
        Ticker {
            running: Mutex::new(thread.ok().map(|thread| (stop, thread))),
        }
    }

    pub(super) fn stop(&self) {
        let taken = lock(&self.running).take();
        if let Some((stop, thread)) = taken {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// stderr as indicatif's terminal, remembering the first failed write and
/// writing nothing after it.
#[derive(Debug)]
pub(super) struct Guarded {
    pub(super) term: console::Term,
    pub(super) gone: Arc<AtomicBool>,
}

impl Guarded {
    fn write(&self, op: impl FnOnce(&console::Term) -> io::Result<()>) -> io::Result<()> {
        if self.gone.load(Ordering::Relaxed) {
            return Ok(());
        }
        if op(&self.term).is_err() {
            self.gone.store(true, Ordering::Relaxed);
        }
        // indicatif unwraps some of these results; the failure is ours to
        // remember, not its to report.
        Ok(())
    }
}

impl TermLike for Guarded {
    fn width(&self) -> u16 {
        self.term.size().1
    }

    fn height(&self) -> u16 {
        self.term.size().0
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.write(|t| t.move_cursor_up(n))
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.write(|t| t.move_cursor_down(n))
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.write(|t| t.move_cursor_right(n))
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.write(|t| t.move_cursor_left(n))
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write(|t| t.write_line(s))
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.write(|t| t.write_str(s))
    }

    fn clear_line(&self) -> io::Result<()> {
        self.write(console::Term::clear_line)
    }

    fn flush(&self) -> io::Result<()> {
        self.write(console::Term::flush)
    }
}

/// Whether stderr gets spinners: a terminal that can move its cursor.
pub(super) fn is_live(terminal: bool, term: Option<&std::ffi::OsStr>) -> bool {
    terminal && term.is_none_or(|term| term != "dumb")
}
