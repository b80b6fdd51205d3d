//! Reading a step's log from the outside: its last whole line, shown
//! printable and cut to the terminal's width.

use super::*;

pub(super) fn is_end(byte: u8) -> bool {
    byte == b'\n' || byte == b'\r'
}

/// The last non-blank whole line (ended by `\n`, or by the `\r` of a
/// progress meter) of the file after byte `from`; `None` when there is
/// none yet or it is longer than the window.
pub(super) fn last_line(path: &Path, from: u64) -> io::Result<Option<String>> {
    let file = File::open(path)?;
    let end = file.metadata()?.len();
    if end <= from {
        return Ok(None);
    }
    let mut window = TAIL_WINDOW;
    loop {
        let start = end.saturating_sub(window).max(from);
        let len = usize::try_from(end - start).map_err(io::Error::other)?;
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, start)?;
        let whole = start == from;
        // What follows the last line end is a line still being written.
        let Some(mut stop) = bytes.iter().rposition(|&b| is_end(b)) else {
            if whole || window >= MAX_TAIL_WINDOW {
                return Ok(None);
            }
            window = window.saturating_mul(4);
            continue;
        };
        loop {
            let begin = match bytes
                .get(..stop)
                .and_then(|b| b.iter().rposition(|&b| is_end(b)))
            {
                Some(at) => at + 1,
                // The line starts before the window, unless the window
                // starts where the step's output does.
                None if whole => 0,
                None => break,
            };
            let line = String::from_utf8_lossy(bytes.get(begin..stop).unwrap_or_default());
            if !line.trim().is_empty() && !is_runner_line(&line) {
                return Ok(Some(line.into_owned()));
            }
            if begin == 0 {
                return Ok(None);
            }
            stop = begin - 1;
        }
        if whole || window >= MAX_TAIL_WINDOW {
            return Ok(None);
        }
        window = window.saturating_mul(4);
    }
}

/// The lines `exec::process` writes around each attempt
/// (`--- 2026-05-01T12:00:00Z attempt 1 of 1, in /srv: ...`): the display
/// shows what the step says, not the runner's bookkeeping.
pub(super) fn is_runner_line(line: &str) -> bool {
    let stamp = line.get(4..24).unwrap_or("");
    line.starts_with("--- ")
        && stamp.len() == 20
        && stamp.ends_with('Z')
        && stamp.get(10..11) == Some("T")
        && line
            .get(24..)
            .is_some_and(|rest| rest.starts_with(" attempt "))
}

/// Text without what would move the cursor or change colours: escape
/// sequences (CSI and OSC) and control characters go, tabs become spaces.
pub(super) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST (ESC \).
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, `…` standing for the rest.
pub(super) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => {
            let kept = text.get(..at).unwrap_or(text);
            format!("{kept}…")
        }
    }
}
