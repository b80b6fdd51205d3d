//! `plan fmt`: rewrite plans in the canonical layout, or with `--check`
//! print what would change.

use std::io::Write;

use crate::cli::FmtArgs;
use crate::commands::{UsageError, plan_files, print, report};
use crate::exit::Ending;
use crate::{analysis, fmt, parse};

pub fn run(args: &FmtArgs) -> Result<Ending, UsageError> {
    let mut exit = Ending::checked(false);
    for path in plan_files(&args.paths)? {
        let (source, not_utf8) = analysis::read(&path).map_err(|source| UsageError::Io {
            path: path.clone(),
            source,
        })?;
        let parsed = parse::parse(&source);
        let mut errors: Vec<_> = not_utf8.into_iter().collect();
        errors.extend(parsed.diagnostics);
        if !errors.is_empty() {
            // A file that does not parse is never rewritten.
            report(&errors, &source);
            exit = Ending::checked(true);
            continue;
        }
        let formatted = fmt::format(&parsed.file, &source);
        if formatted == source.text() {
            continue;
        }
        if args.check {
            print(&diff(&source.name(), source.text(), &formatted));
            exit = Ending::checked(true);
        } else {
            // A byte order mark is not layout: the file keeps the one it had.
            let formatted = if source.had_bom() {
                format!("{}{formatted}", crate::source::BOM)
            } else {
                formatted
            };
            write_atomically(&path, &formatted).map_err(|source| UsageError::Write {
                path: path.clone(),
                source,
            })?;
            eprintln!("formatted {}", path.display());
        }
    }
    Ok(exit)
}

fn diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(name, &format!("{name} (formatted)"))
        .to_string()
}

/// Replaces the file in one rename, so an interrupted `fmt` never leaves a
/// half-written plan; keeps the file's permissions.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = folder.join(format!(".{name}.fmt-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
