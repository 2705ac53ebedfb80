//! A job's output files: what its driver writes to `$EMC_OUTPUT_DIR` on the head
//! member, listed and read back in pages for the router (`/v1/jobs/{id}/files`).
//!
//! The driver runs on the head (Ray's job entrypoint), so the directory is on the
//! head's disk: tasks on other members return their results to the driver, which
//! writes what the client should get. Reads stay inside the directory: a path is
//! relative with no `..`, symlinks are neither listed nor followed, and a listing
//! stops at [`MAX_FILES`] files and [`MAX_DEPTH`] levels.

use crate::CallError;
use emc_protocol::wire::pool_jobs::{relative_path, MAX_FILES, MAX_LOG_PAGE};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// Deepest folder a listing descends into.
pub const MAX_DEPTH: usize = 8;

fn io(what: &Path, e: std::io::Error) -> CallError {
    CallError::Runtime(format!("{}: {e}", what.display()))
}

/// `(relative path, bytes)` of every regular file under `dir`, sorted.
pub fn list(dir: &Path) -> Result<Vec<(String, u64)>, CallError> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(&d, e))?;
            let meta = entry.path().symlink_metadata().map_err(|e| io(&d, e))?;
            if meta.is_dir() && depth + 1 < MAX_DEPTH {
                stack.push((entry.path(), depth + 1));
            } else if meta.is_file() {
                let rel = entry.path().strip_prefix(dir).map(Path::to_path_buf);
                if let Some(rel) = rel.ok().and_then(|r| r.to_str().map(str::to_string)) {
                    out.push((rel, meta.len()));
                }
                if out.len() >= MAX_FILES {
                    out.sort();
                    return Ok(out);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Up to [`MAX_LOG_PAGE`] bytes of output `path` from byte `from`; where the next
/// page starts; the file's size.
pub fn read(dir: &Path, path: &str, from: u64) -> Result<(Vec<u8>, u64, u64), CallError> {
    relative_path(path)?;
    let full = dir.join(path);
    // No component may be a symlink: the file is the one the listing shows.
    let mut at = dir.to_path_buf();
    for c in Path::new(path).components() {
        at.push(c);
        let meta = at
            .symlink_metadata()
            .map_err(|_| CallError::NotFound(format!("the job wrote no {path}")))?;
        if meta.file_type().is_symlink() {
            return Err(CallError::Forbidden(format!("{path} is a link")));
        }
    }
    let mut f = std::fs::File::open(&full).map_err(|e| io(&full, e))?;
    let size = f.metadata().map_err(|e| io(&full, e))?.len();
    if !f.metadata().map_err(|e| io(&full, e))?.is_file() {
        return Err(CallError::NotFound(format!("{path} is not a file")));
    }
    let from = from.min(size);
    f.seek(std::io::SeekFrom::Start(from))
        .map_err(|e| io(&full, e))?;
    let mut buf = Vec::with_capacity(MAX_LOG_PAGE.min((size - from) as usize));
    f.take(MAX_LOG_PAGE as u64)
        .read_to_end(&mut buf)
        .map_err(|e| io(&full, e))?;
    let next = from + buf.len() as u64;
    Ok((buf, next, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_listed_and_read_in_pages_and_nothing_outside_is() {
        let d = tempfile::tempdir().expect("tmp");
        let out = d.path().join("out");
        std::fs::create_dir_all(out.join("a/b")).expect("dirs");
        std::fs::write(out.join("loss.csv"), b"0,1.5\n").expect("write");
        std::fs::write(out.join("a/b/w.bin"), vec![7u8; MAX_LOG_PAGE + 10]).expect("write");
        std::fs::write(d.path().join("secret"), b"no").expect("write");
        std::os::unix::fs::symlink(d.path().join("secret"), out.join("link")).expect("link");
        let listed = list(&out).expect("lists");
        assert_eq!(
            listed,
            vec![
                ("a/b/w.bin".to_string(), MAX_LOG_PAGE as u64 + 10),
                ("loss.csv".to_string(), 6)
            ],
            "links are not listed"
        );
        let (page, next, size) = read(&out, "a/b/w.bin", 0).expect("reads");
        assert_eq!(
            (page.len(), next, size),
            (MAX_LOG_PAGE, MAX_LOG_PAGE as u64, size)
        );
        let (rest, next, _) = read(&out, "a/b/w.bin", next).expect("reads");
        assert_eq!((rest.len() as u64, next), (10, size));
        assert_eq!(read(&out, "loss.csv", 0).expect("reads").0, b"0,1.5\n");
        assert_eq!(
            read(&out, "../secret", 0).expect_err("outside").status(),
            400
        );
        assert_eq!(read(&out, "link", 0).expect_err("link").status(), 403);
        assert_eq!(read(&out, "nope", 0).expect_err("absent").status(), 404);
        assert!(list(&d.path().join("none")).expect("empty").is_empty());
    }
}
