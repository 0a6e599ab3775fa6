//! One segment file: its name, creating and opening it, and reading it back under
//! the recovery rule (see [`crate::storage::segment_log`] for the rule and why).

use super::facts::Facts;
use super::frame::{self, FrameDefect};
use super::tail;
use super::StorageError;
use crate::fs::{FileHandle, FileSystem};
use crate::record::Record;
use std::ffi::OsStr;
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
pub(crate) fn list(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut segments: Vec<(u64, PathBuf)> = fs
        .read_dir(dir)
        .map_err(io_err(dir))?
        .into_iter()
        .filter_map(|name| parse_file_name(&name).map(|seq| (seq, dir.join(name))))
        .collect();
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

/// Creates the empty segment file `seq` in `dir` and opens it to append; durable
/// once `dir` is synced.
pub(crate) fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    seq: u64,
) -> Result<(Segment, Box<dyn FileHandle>), StorageError> {
    let path = dir.join(file_name(seq));
    let file = fs.create_new(&path).map_err(io_err(&path))?;
    info!(path = %path.display(), seq, "new log segment");
    let segment = Segment {
        seq,
        path,
        facts: Facts::default(),
        len: 0,
    };
    Ok((segment, file))
}

/// Opens segment `path` to append to it.
pub(crate) fn open_for_append(
    fs: &dyn FileSystem,
    path: &Path,
) -> Result<Box<dyn FileHandle>, StorageError> {
    fs.open_append(path).map_err(io_err(path))
}

/// Makes the creation and deletion of files in `dir` durable.
pub(crate) fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(), StorageError> {
    fs.sync_dir(dir).map_err(io_err(dir))
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
/// but does not decode, and [`tail::corruption`] finds no sign of a flipped bit
/// (a valid frame behind it, or a frame one bit from valid). Any other defective
/// frame is [`StorageError::Corrupt`].
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
        if let Some(reason) = tail::corruption(bytes, offset, &defect) {
            return Err(corrupt(reason));
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
