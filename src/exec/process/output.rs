//! A step's log: opened private, lines the runner adds, the first line
//! that matches `fail_on_output`, the last lines for the summary.

use super::*;

/// The most of one line of a step's output the runner holds, matches or
/// copies into a report or the journal; the log keeps the whole line.
/// (One 200 MB line once cost 1.9 GB of memory and a 629 MB report.)
pub(super) const MAX_LINE_BYTES: usize = 4 * 1024;

/// The most of a log's tail read for its last lines.
const MAX_TAIL_BYTES: u64 = 1024 * 1024;

/// `line` cut to [`MAX_LINE_BYTES`] on a character boundary, saying how
/// much was left out.
fn capped(line: &str) -> String {
    if line.len() <= MAX_LINE_BYTES {
        return line.to_string();
    }
    let mut cut = MAX_LINE_BYTES;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… ({} more bytes in the log)",
        &line[..cut],
        line.len() - cut
    )
}

/// Opens (or creates) the log for appending, readable by its owner only,
/// also when an earlier run left it with a wider mode.
pub(super) fn open_log(path: &Path) -> Result<File, ProcessError> {
    let log_error = |source| ProcessError::Log {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)
        .map_err(log_error)?;
    file.set_permissions(Permissions::from_mode(0o600))
        .map_err(log_error)?;
    Ok(file)
}

/// Appends a runner line, on a line of its own even when the child's last
/// output had no final newline.
pub(super) fn write_line(log: &File, line: &str) -> io::Result<()> {
    let len = log.metadata()?.len();
    let mut last = [0u8; 1];
    let glued = len > 0 && log.read_at(&mut last, len - 1)? == 1 && last[0] != b'\n';
    let text = if glued {
        format!("\n{line}")
    } else {
        line.to_string()
    };
    let mut log = log;
    log.write_all(text.as_bytes())
}

/// The first line of the log from `from` on that matches, redacted.
pub(super) fn matching_line(
    path: &Path,
    from: u64,
    pattern: &Regex,
    redactor: &Redactor,
) -> io::Result<Option<String>> {
    let mut file = File::open(path)?;
    let end = file.metadata()?.len();
    file.seek(SeekFrom::Start(from))?;
    // Only this attempt's bytes, as they stand at its exit: a server the
    // step started may go on writing.
    let mut reader = BufReader::new(file.take(end.saturating_sub(from)));
    let mut line = Vec::new();
    loop {
        line.clear();
        // At most MAX_LINE_BYTES of a line are held; the rest is skipped.
        let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX);
        if reader.by_ref().take(limit).read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') {
            reader.skip_until(b'\n')?;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if pattern.is_match(text) {
            return Ok(Some(redactor.redact(text).into_owned()));
        }
    }
}

/// The last `n` lines of the log from `start` on, redacted; reads backwards
/// in growing chunks so a large log costs only its tail.
pub(super) fn last_lines(
    path: &Path,
    start: u64,
    n: usize,
    redactor: &Redactor,
) -> io::Result<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let file = File::open(path)?;
    let end = file.metadata()?.len();
    let start = start.min(end);
    let mut chunk: u64 = 8 * 1024;
    loop {
        let from = end.saturating_sub(chunk).max(start);
        let len = usize::try_from(end - from).map_err(io::Error::other)?;
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, from)?;
        let text = String::from_utf8_lossy(&bytes);
        let text = redactor.redact(&text);
        let mut lines: Vec<&str> = text.split('\n').collect();
        if text.ends_with('\n') {
            lines.pop();
        }
        // A tail past MAX_TAIL_BYTES is not read further: its first line
        // is then cut like a line too long.
        let whole = from == start || chunk >= MAX_TAIL_BYTES;
        if !whole && !lines.is_empty() {
            // Cut somewhere inside: not a whole line.
            lines.remove(0);
        }
        if whole || lines.len() >= n {
            let skip = lines.len().saturating_sub(n);
            return Ok(lines
                .into_iter()
                .skip(skip)
                .map(|line| capped(line.trim_end_matches('\r')))
                .collect());
        }
        chunk = chunk.saturating_mul(2);
    }
}
