//! One segment file: its name, creating and opening it, and reading it back under
//! the recovery rule (see [`crate::storage::segment_log`] for the rule and why).

use super::facts::Facts;
use super::frame::{self, FrameDefect, HEADER_LEN};
use super::StorageError;
use crate::record::Record;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use tracing::info;

/// Digits of the sequence number in a segment's file name.
const SEQ_DIGITS: usize = 20;

/// Suffix of segment files.
const SUFFIX: &str = ".log";

/// The file name of segment `seq`: zero-padded so names sort in log order.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:0width$}{SUFFIX}", width = SEQ_DIGITS)
}

/// The sequence number of a segment file name, or `None` for any other file.
pub(crate) fn parse_file_name(name: &OsStr) -> Option<u64> {
    let digits = name.to_str()?.strip_suffix(SUFFIX)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files of `dir`, in log order. Other files are ignored.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let io = |source| StorageError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Some(seq) = parse_file_name(&entry.file_name()) {
            segments.push((seq, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(segments)
}

/// A segment file of the log.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Its sequence number, from its file name.
    pub(crate) seq: u64,
    /// Its file.
    pub(crate) path: PathBuf,
    /// What its records say.
    pub(crate) facts: Facts,
    /// Bytes of valid records it holds.
    pub(crate) len: u64,
}

/// Maps an I/O error about `path` to a [`StorageError`].
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the empty segment file `seq` in `dir`; durable once `dir` is synced.
pub(crate) fn create_segment(dir: &Path, seq: u64) -> Result<Segment, StorageError> {
    let path = dir.join(file_name(seq));
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(&path))?;
    info!(path = %path.display(), seq, "new log segment");
    Ok(Segment {
        seq,
        path,
        facts: Facts::default(),
        len: 0,
    })
}

/// Opens segment `path` to append to it.
pub(crate) fn open_for_append(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

/// Makes the creation and deletion of files in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StorageError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// What reading one segment found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// What the segment's valid records say.
    pub(crate) facts: Facts,
    /// Bytes of valid records from the start of the file.
    pub(crate) valid_len: u64,
    /// The defect of the torn record that ends the segment, if any. Only the last
    /// segment may end with one.
    pub(crate) torn: Option<FrameDefect>,
}

/// Decodes every record of segment `path` (whose content is `bytes`) into `out`.
///
/// A defective frame ends the segment as a torn tail (the scan stops there) only if
/// the segment is the last one, the frame is not a record that passes its checksum
/// but does not decode, and no valid frame starts where the frame's length field says
/// it ends. Any other defective frame is [`StorageError::Corrupt`].
pub(crate) fn scan(
    path: &Path,
    bytes: &[u8],
    is_last: bool,
    out: &mut Vec<Record>,
) -> Result<Scan, StorageError> {
    let mut facts = Facts::default();
    let mut offset = 0;
    while offset < bytes.len() {
        let defect = match frame::parse(&bytes[offset..]) {
            Ok((record, frame_len)) => {
                facts.observe(&record);
                out.push(record);
                offset += frame_len;
                continue;
            }
            Err(defect) => defect,
        };
        let corrupt = |reason: String| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        if let FrameDefect::Undecodable { .. } = defect {
            return Err(corrupt(defect.to_string()));
        }
        if !is_last {
            return Err(corrupt(format!(
                "{defect}, in a segment that is not the last"
            )));
        }
        if let Some(len) = defect.plausible_len() {
            let next = offset + HEADER_LEN + len;
            if next < bytes.len() && frame::parse(&bytes[next..]).is_ok() {
                return Err(corrupt(format!(
                    "{defect}, followed by a valid record at byte {next}"
                )));
            }
        }
        return Ok(Scan {
            facts,
            valid_len: offset as u64,
            torn: Some(defect),
        });
    }
    Ok(Scan {
        facts,
        valid_len: offset as u64,
        torn: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_in_log_order_and_parse_back() {
        let names: Vec<String> = [0, 9, 10, 42, u64::MAX]
            .iter()
            .map(|s| file_name(*s))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(parse_file_name(OsStr::new(&file_name(42))), Some(42));
        assert_eq!(
            parse_file_name(OsStr::new(&file_name(u64::MAX))),
            Some(u64::MAX)
        );
        for other in [
            "42.log",
            "0000000000000000004x.log",
            "00000000000000000042.tmp",
            "identity",
        ] {
            assert_eq!(parse_file_name(OsStr::new(other)), None, "{other}");
        }
    }
}
