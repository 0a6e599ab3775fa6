//! The recovery rule: what is a torn tail (cut) and what is corruption (refused).

use super::*;
use crate::storage::frame;
use std::fs::OpenOptions;
use std::io::Write;
use tempfile::TempDir;

/// Writes `records` to a fresh single-segment log; returns the segment file and the
/// byte offset at which each record's frame starts.
fn one_segment(dir: &Path, records: &[Record]) -> (PathBuf, Vec<u64>) {
    let mut log = open(dir, 1 << 20);
    let mut offsets = Vec::new();
    for record in records {
        offsets.push(log.tail().1);
        log.append(std::slice::from_ref(record)).unwrap();
    }
    log.sync().unwrap();
    (log.tail().0, offsets)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn flip_byte(path: &Path, offset: u64) {
    flip_bits(path, offset, 0x10);
}

fn flip_bits(path: &Path, offset: u64, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

/// Opening the single-segment log in `dir` must fail with corruption at `offset`
/// of `file`, and leave the file as it was. `what` names the case.
fn assert_refused_untouched(dir: &Path, file: &Path, offset: u64, what: &str) {
    let len = file_len(file);
    let err = SegmentLog::open(dir, opts(1 << 20))
        .expect_err(&format!("{what}: opened (cut as a torn tail?)"));
    assert_corrupt_at(err, file, offset);
    assert_eq!(
        file_len(file),
        len,
        "{what}: a corrupt segment was truncated"
    );
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn a_torn_last_record_is_cut_at_every_byte_and_the_log_stays_appendable() {
    let records: Vec<Record> = (0..4).map(|slot| accepted(slot, 1)).collect();
    let template = TempDir::new().unwrap();
    let (template_file, offsets) = one_segment(template.path(), &records);
    let full = std::fs::read(&template_file).unwrap();
    let last_start = offsets[3] as usize;
    for cut in last_start..full.len() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join(template_file.file_name().unwrap());
        std::fs::write(&file, &full[..cut]).unwrap();
        let mut log = open(dir.path(), 1 << 20);
        assert_eq!(log.load().unwrap(), records[..3], "cut at {cut}");
        assert_eq!(
            file_len(&file),
            last_start as u64,
            "torn bytes stay after a cut at {cut}"
        );
        log.append(&[accepted(9, 2)]).unwrap();
        log.sync().unwrap();
        drop(log);
        let mut expected = records[..3].to_vec();
        expected.push(accepted(9, 2));
        assert_eq!(
            reopen_and_load(dir.path(), 1 << 20),
            expected,
            "cut at {cut}"
        );
    }
}

#[test]
fn a_zero_filled_tail_is_cut() {
    let dir = TempDir::new().unwrap();
    let records = [accepted(0, 1), accepted(1, 1)];
    let (file, _) = one_segment(dir.path(), &records);
    let good_len = file_len(&file);
    append_bytes(&file, &[0; 4096]);
    let mut log = open(dir.path(), 1 << 20);
    assert_eq!(log.load().unwrap(), records);
    assert_eq!(file_len(&file), good_len);
    log.append(&[accepted(2, 1)]).unwrap();
    drop(log);
    assert_eq!(reopen_and_load(dir.path(), 1 << 20).len(), 3);
}

#[test]
fn a_flipped_byte_in_a_segment_that_is_not_the_last_is_corruption() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1);
    for slot in 0..3 {
        log.append(&[accepted(slot, 1), accepted(slot + 100, 1)])
            .unwrap();
    }
    drop(log);
    let middle = &segment_files(dir.path())[1];
    let len = file_len(middle);
    // The segment's last byte: inside its last record, nothing valid after it in
    // this file, yet corruption because a later segment exists.
    flip_byte(middle, len - 1);
    let err = SegmentLog::open(dir.path(), opts(1)).unwrap_err();
    let last_frame_start = {
        let bytes = std::fs::read(middle).unwrap();
        let mut offset = 0;
        while let Ok((_, n)) = frame::parse(&bytes[offset..]) {
            offset += n;
        }
        offset as u64
    };
    assert_corrupt_at(err, middle, last_frame_start);
    assert_eq!(
        file_len(middle),
        len,
        "a corrupt segment must not be truncated"
    );
}

#[test]
fn a_flipped_byte_followed_by_valid_records_in_the_last_segment_is_corruption() {
    let dir = TempDir::new().unwrap();
    let records: Vec<Record> = (0..5).map(|slot| accepted(slot, 1)).collect();
    let (file, offsets) = one_segment(dir.path(), &records);
    flip_byte(&file, offsets[2] + 12); // inside the payload of the third record
    assert_refused_untouched(dir.path(), &file, offsets[2], "a payload byte");
}

/// A flipped bit in the last record (synced, so possibly revealed) is corruption,
/// not a torn write: cutting it would lose a promise or a vote (found by the
/// simulator, where it lost a membership record). Two flipped bits there still
/// read as a torn tail: the documented limit.
#[test]
fn a_flipped_bit_in_the_last_record_is_corruption() {
    let dir = TempDir::new().unwrap();
    let records: Vec<Record> = (0..5).map(|slot| accepted(slot, 1)).collect();
    let (file, offsets) = one_segment(dir.path(), &records);
    flip_byte(&file, offsets[4] + 12);
    assert_refused_untouched(dir.path(), &file, offsets[4], "a payload bit");
}

#[test]
fn two_flipped_bits_in_the_last_record_read_as_a_torn_tail() {
    let dir = TempDir::new().unwrap();
    let records: Vec<Record> = (0..5).map(|slot| accepted(slot, 1)).collect();
    let (file, offsets) = one_segment(dir.path(), &records);
    flip_bits(&file, offsets[4] + 12, 0x11);
    assert_eq!(reopen_and_load(dir.path(), 1 << 20), records[..4]);
    assert_eq!(file_len(&file), offsets[4]);
}

#[test]
fn a_checksummed_record_that_does_not_decode_is_corruption_even_at_the_tail() {
    let dir = TempDir::new().unwrap();
    let (file, _) = one_segment(dir.path(), &[accepted(0, 1)]);
    let good_len = file_len(&file);
    let junk = [0xFF_u8; 6];
    let mut frame = (junk.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&crc32c::crc32c(&junk).to_le_bytes());
    frame.extend_from_slice(&junk);
    append_bytes(&file, &frame);
    let err = SegmentLog::open(dir.path(), opts(1 << 20)).unwrap_err();
    assert_corrupt_at(err, &file, good_len);
}

#[test]
fn a_huge_length_field_is_rejected_without_a_huge_allocation() {
    let dir = TempDir::new().unwrap();
    let (file, _) = one_segment(dir.path(), &[accepted(0, 1)]);
    let good_len = file_len(&file);
    let mut garbage = 0xF000_0000_u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xAB; 60]);
    append_bytes(&file, &garbage);
    let (records, largest) = alloc::largest_allocation(|| reopen_and_load(dir.path(), 1 << 20));
    assert_eq!(records, vec![accepted(0, 1)]);
    assert!(largest < 1 << 20, "load allocated {largest} bytes at once");
    assert_eq!(file_len(&file), good_len);
}

#[test]
fn a_huge_length_field_in_a_segment_that_is_not_the_last_is_corruption() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1);
    log.append(&[accepted(0, 1)]).unwrap();
    log.append(&[accepted(1, 1)]).unwrap();
    drop(log);
    let first = &segment_files(dir.path())[0];
    let offset = file_len(first);
    append_bytes(first, &u32::MAX.to_le_bytes());
    append_bytes(first, &[0; 4]);
    assert_corrupt_at(
        SegmentLog::open(dir.path(), opts(1)).unwrap_err(),
        first,
        offset,
    );
}

#[test]
fn a_torn_head_of_the_last_segment_is_restated_so_compaction_keeps_the_facts() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), 1);
    let facts = [
        Record::Promised(Ballot::new(8, 0)),
        Record::Committed { upto: 1 },
    ];
    log.append(&[facts[0].clone(), facts[1].clone(), accepted(0, 1)])
        .unwrap();
    log.append(&[accepted(1, 1)]).unwrap(); // segment 1: head, then slot 1
    drop(log);
    // Crash right after segment 1 was created: its whole content, head included, is lost.
    let files = segment_files(dir.path());
    std::fs::write(&files[1], b"").unwrap();
    let mut log = open(dir.path(), 1 << 20);
    assert_eq!(
        log.load().unwrap(),
        [facts[0].clone(), facts[1].clone(), accepted(0, 1)]
    );
    log.append(&[accepted(5, 1)]).unwrap(); // still segment 1
                                            // Segment 0 may go only because segment 1 restates its promise and commit.
    log.compact(5).unwrap();
    assert_eq!(segment_files(dir.path()), vec![files[1].clone()]);
    drop(log);
    let state = Replayed::of(&reopen_and_load(dir.path(), 1 << 20));
    assert_eq!((state.promised, state.committed), (Ballot::new(8, 0), 1));
    assert_eq!(state.accepted.keys().copied().collect::<Vec<_>>(), vec![5]);
}

#[test]
fn a_flipped_bit_in_a_length_field_of_the_last_segment_is_corruption() {
    let records: Vec<Record> = (0..5).map(|slot| accepted(slot, 1)).collect();
    // Every bit of the length field of a middle record, and of the last record.
    for target in [2, 4] {
        for bit in 0..32 {
            let dir = TempDir::new().unwrap();
            let (file, offsets) = one_segment(dir.path(), &records);
            flip_bits(&file, offsets[target] + bit / 8, 1 << (bit % 8));
            let what = format!("record {target}, length bit {bit}");
            assert_refused_untouched(dir.path(), &file, offsets[target], &what);
        }
    }
}

#[test]
fn a_zeroed_header_with_valid_records_after_it_is_corruption() {
    let dir = TempDir::new().unwrap();
    let records: Vec<Record> = (0..4).map(|slot| accepted(slot, 1)).collect();
    let (file, offsets) = one_segment(dir.path(), &records);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[offsets[1] as usize..offsets[1] as usize + 8].fill(0);
    std::fs::write(&file, bytes).unwrap();
    assert_refused_untouched(dir.path(), &file, offsets[1], "a zeroed header");
}

#[test]
fn a_flipped_bit_in_the_checksum_field_of_the_last_record_is_corruption() {
    let dir = TempDir::new().unwrap();
    let records: Vec<Record> = (0..3).map(|slot| accepted(slot, 1)).collect();
    let (file, offsets) = one_segment(dir.path(), &records);
    flip_byte(&file, offsets[2] + 6);
    assert_refused_untouched(dir.path(), &file, offsets[2], "a checksum bit");
}

#[test]
fn a_torn_batch_of_records_followed_by_garbage_is_still_a_torn_tail() {
    // One append of several records, torn inside the second, then a page of
    // garbage: nothing valid follows the defect.
    let template = TempDir::new().unwrap();
    let (file, offsets) = one_segment(template.path(), &[accepted(0, 1)]);
    let mut log = open(template.path(), 1 << 20);
    let batch: Vec<Record> = (1..4).map(|slot| accepted(slot, 1)).collect();
    log.append(&batch).unwrap();
    drop(log);
    let full = std::fs::read(&file).unwrap();
    let second = offsets[0] as usize + (full.len() - offsets[0] as usize) / 4 * 2;
    for cut in [second, second + 3, second + 9, full.len() - 1] {
        let dir = TempDir::new().unwrap();
        let torn_file = dir.path().join(file.file_name().unwrap());
        let mut bytes = full[..cut].to_vec();
        bytes.extend((0..4096_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        std::fs::write(&torn_file, bytes).unwrap();
        let loaded = reopen_and_load(dir.path(), 1 << 20);
        assert!(loaded.len() < 4, "cut at {cut}");
        assert_eq!(
            loaded[..],
            [[accepted(0, 1)].as_slice(), &batch][..].concat()[..loaded.len()]
        );
    }
}

/// Found by `diskv-fuzz --target segment_log` (corpus file
/// `fuzz/corpus/segment_log/crash-membership-incarnation-max`): a log holding two
/// membership records, the later one naming an incarnation of `u64::MAX`, made
/// the scan's `Membership::version` overflow: a panic in a build with overflow
/// checks, a wrong "newer membership" otherwise.
#[test]
fn a_membership_record_with_the_largest_incarnation_opens_and_restores() {
    use crate::core::{CoreConfig, Membership, Replica};
    use crate::types::Reincarnation;
    let mut reincarnated = Membership::initial(3);
    reincarnated.reincarnate(
        40,
        8,
        Reincarnation {
            node: 1,
            nonce: 7,
            replaces: Some(0),
        },
    );
    // One epoch from slot 0: members (u64::MAX, 0), (1, 0), (0, 0).
    let mut bytes = vec![1, 0, 3];
    bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    bytes.extend_from_slice(&[0, 1, 0, 0, 0]);
    // (As logs stored it before membership changes: read as a legacy record.)
    let huge: Membership = postcard::from_bytes::<crate::membership::LegacyMembership>(&bytes)
        .unwrap()
        .into();
    assert_eq!(huge.latest()[0].incarnation, u64::MAX);
    let records = vec![
        Record::Membership(reincarnated.clone()),
        Record::Membership(huge.clone()),
    ];
    let dir = TempDir::new().unwrap();
    one_segment(dir.path(), &records);
    let loaded = reopen_and_load(dir.path(), 1 << 20);
    assert_eq!(loaded, records);
    let replica = Replica::restore(CoreConfig::new(0, 3), loaded);
    assert_eq!(
        replica.incarnation(),
        Some(u64::MAX),
        "the newest membership wins"
    );
}
