//! Each rule of the simulated disk, tested on its own.

use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A disk holding the durable directory `/d`.
fn disk_with_dir(options: SimOptions) -> SimFs {
    let fs = SimFs::with_options(options);
    fs.create_dir_all(p("/d")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs
}

/// Never a torn tail, so survivors are exact prefixes.
fn untorn() -> SimOptions {
    SimOptions {
        torn_chance: 0.0,
        ..SimOptions::default()
    }
}

/// Runs `scenario` on a fresh disk, crashes it with each of `seeds` seeds, and
/// collects what `observe` sees after each crash.
fn outcomes<T: Ord>(
    seeds: u64,
    options: SimOptions,
    scenario: impl Fn(&SimFs),
    observe: impl Fn(&SimFs) -> T,
) -> BTreeSet<T> {
    (0..seeds)
        .map(|seed| {
            let fs = disk_with_dir(options);
            scenario(&fs);
            fs.crash(&mut StdRng::seed_from_u64(seed));
            observe(&fs)
        })
        .collect()
}

#[test]
fn sync_data_makes_appended_bytes_durable_and_nothing_else_does() {
    let fs = disk_with_dir(SimOptions::default());
    let mut f = fs.create_new(p("/d/log")).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    f.append(b"synced").unwrap();
    f.sync_data().unwrap();
    f.append(b" and not").unwrap();
    assert_eq!(fs.read(p("/d/log")).unwrap(), b"synced and not");
    assert_eq!(fs.durable_read(p("/d/log")).unwrap(), b"synced");
    fs.crash_losing_unsynced();
    assert_eq!(fs.read(p("/d/log")).unwrap(), b"synced");
}

#[test]
fn a_synced_file_without_a_synced_directory_entry_is_lost() {
    let fs = disk_with_dir(SimOptions::default());
    let mut f = fs.create_new(p("/d/new")).unwrap();
    f.append(b"data").unwrap();
    f.sync_data().unwrap();
    fs.crash_losing_unsynced();
    assert!(!fs.exists(p("/d/new")), "the name was never made durable");

    let mut f = fs.create_new(p("/d/new")).unwrap();
    f.append(b"data").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.crash_losing_unsynced();
    assert_eq!(fs.read(p("/d/new")).unwrap(), b"data");
}

#[test]
fn sync_file_system_makes_every_file_and_entry_durable() {
    let fs = SimFs::new();
    fs.create_dir_all(p("/a/b")).unwrap();
    fs.write(p("/a/b/f"), b"one").unwrap();
    fs.write(p("/a/g"), b"two").unwrap();
    fs.sync_file_system(p("/a")).unwrap();
    fs.crash_losing_unsynced();
    assert_eq!(fs.files(), [p("/a/b/f"), p("/a/g")]);
    assert_eq!(fs.read(p("/a/b/f")).unwrap(), b"one");
}

#[test]
fn a_crash_keeps_a_prefix_in_order_of_each_directorys_unsynced_operations() {
    // Created in an order unlike the names' order.
    let order = ["e", "c", "a", "d", "b"];
    let seen = outcomes(
        200,
        SimOptions::default(),
        |fs| {
            for name in order {
                fs.write(&Path::new("/d").join(name), b"x").unwrap();
                fs.sync_file(&Path::new("/d").join(name)).unwrap();
            }
        },
        |fs| fs.read_dir(p("/d")).unwrap().len(),
    );
    // Every prefix length happens, and each outcome is that prefix.
    assert_eq!(seen, (0..=order.len()).collect());
    for seed in 0..50 {
        let fs = disk_with_dir(SimOptions::default());
        for name in order {
            fs.write(&Path::new("/d").join(name), b"x").unwrap();
        }
        fs.crash(&mut StdRng::seed_from_u64(seed));
        let left: BTreeSet<OsString> = fs.read_dir(p("/d")).unwrap().into_iter().collect();
        let prefix: BTreeSet<OsString> = order[..left.len()].iter().map(OsString::from).collect();
        assert_eq!(left, prefix, "seed {seed}");
    }
}

#[test]
fn a_removal_and_a_creation_survive_in_order() {
    // Remove `old`, then create `new`: no crash keeps `new` without removing `old`.
    let seen = outcomes(
        100,
        SimOptions::default(),
        |fs| {
            fs.write(p("/d/old"), b"o").unwrap();
            fs.sync_file_system(p("/")).unwrap();
            fs.remove_file(p("/d/old")).unwrap();
            fs.write(p("/d/new"), b"n").unwrap();
        },
        |fs| (fs.exists(p("/d/old")), fs.exists(p("/d/new"))),
    );
    assert_eq!(
        seen,
        [(false, false), (false, true), (true, false)]
            .into_iter()
            .collect()
    );
}

#[test]
fn a_rename_between_directories_survives_in_both_or_in_neither() {
    let seen = outcomes(
        200,
        SimOptions::default(),
        |fs| {
            fs.create_dir_all(p("/e")).unwrap();
            fs.write(p("/d/f"), b"f").unwrap();
            fs.write(p("/e/first"), b"1").unwrap();
            fs.sync_file_system(p("/")).unwrap();
            fs.write(p("/d/before"), b"b").unwrap();
            fs.rename(p("/d/f"), p("/e/f")).unwrap();
        },
        |fs| (fs.exists(p("/d/f")), fs.exists(p("/e/f"))),
    );
    assert_eq!(seen, [(false, true), (true, false)].into_iter().collect());
}

#[test]
fn syncing_one_directory_of_a_rename_makes_the_whole_rename_durable() {
    let fs = disk_with_dir(SimOptions::default());
    fs.create_dir_all(p("/e")).unwrap();
    fs.write(p("/d/f"), b"f").unwrap();
    fs.sync_file_system(p("/")).unwrap();
    fs.rename(p("/d/f"), p("/e/f")).unwrap();
    fs.sync_dir(p("/e")).unwrap();
    fs.crash_losing_unsynced();
    assert_eq!(fs.files(), [p("/e/f")]);
}

#[test]
fn unsynced_appends_survive_as_a_prefix_of_any_length() {
    let written: Vec<u8> = (0..=255).collect();
    let seen = outcomes(
        300,
        untorn(),
        |fs| {
            let mut f = fs.create_new(p("/d/log")).unwrap();
            f.append(&written[..100]).unwrap();
            f.sync_data().unwrap();
            fs.sync_dir(p("/d")).unwrap();
            f.append(&written[100..]).unwrap();
        },
        |fs| fs.read(p("/d/log")).unwrap(),
    );
    for bytes in &seen {
        assert!(bytes.len() >= 100, "synced bytes lost");
        assert_eq!(bytes[..], written[..bytes.len()]);
    }
    let lens: BTreeSet<usize> = seen.iter().map(Vec::len).collect();
    assert!(lens.contains(&100) && lens.contains(&256), "{lens:?}");
    assert!(lens.len() > 20, "too few distinct prefixes: {lens:?}");
}

#[test]
fn a_torn_tail_is_zeros_or_garbage_up_to_the_page_end() {
    let written = vec![0xAB_u8; 5000];
    let seen = outcomes(
        100,
        SimOptions {
            torn_chance: 1.0,
            ..SimOptions::default()
        },
        |fs| {
            let mut f = fs.create_new(p("/d/log")).unwrap();
            fs.sync_dir(p("/d")).unwrap();
            f.append(&written).unwrap();
        },
        |fs| fs.read(p("/d/log")).unwrap(),
    );
    let (mut zeros, mut pages) = (0, 0);
    for bytes in &seen {
        let kept = bytes
            .iter()
            .take_while(|&&b| b == 0xAB)
            .count()
            .min(written.len());
        let tail = &bytes[kept..];
        assert!(!tail.is_empty(), "no torn tail");
        if tail.iter().all(|&b| b == 0) {
            zeros += 1;
        } else {
            assert_eq!(bytes.len() % crash::PAGE, 0, "garbage ends at a page end");
            pages += 1;
        }
    }
    assert!(zeros > 0 && pages > 0, "zeros {zeros}, torn pages {pages}");
}

#[test]
fn a_rewritten_file_survives_as_its_old_bytes_or_a_prefix_of_its_new_ones() {
    let seen = outcomes(
        200,
        untorn(),
        |fs| {
            fs.write(p("/d/rec"), b"old record").unwrap();
            fs.sync_file_system(p("/")).unwrap();
            fs.write(p("/d/rec"), b"NEW").unwrap();
        },
        |fs| fs.read(p("/d/rec")).unwrap(),
    );
    let expected: BTreeSet<Vec<u8>> = [&b"old record"[..], b"", b"N", b"NE", b"NEW"]
        .iter()
        .map(|b| b.to_vec())
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn reordered_pages_can_keep_a_later_page_without_an_earlier_one() {
    let written = vec![7_u8; 3 * crash::PAGE];
    let reorder = SimOptions {
        reorder_pages: true,
        ..untorn()
    };
    let hole_then_data =
        |bytes: &Vec<u8>| bytes.len() > crash::PAGE && bytes[..crash::PAGE].iter().all(|&b| b == 0);
    let scenario = |fs: &SimFs| {
        let mut f = fs.create_new(p("/d/log")).unwrap();
        fs.sync_dir(p("/d")).unwrap();
        f.append(&written).unwrap();
    };
    let read = |fs: &SimFs| fs.read(p("/d/log")).unwrap();
    assert!(outcomes(64, reorder, scenario, read)
        .iter()
        .any(hole_then_data));
    assert!(!outcomes(64, untorn(), scenario, read)
        .iter()
        .any(hole_then_data));
}

#[test]
fn handles_and_locks_from_before_a_crash_are_dead() {
    let fs = disk_with_dir(SimOptions::default());
    let mut f = fs.create_new(p("/d/log")).unwrap();
    let lock = fs.lock(p("/d/lock")).unwrap();
    assert_eq!(
        fs.lock(p("/d/lock")).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    fs.sync_file_system(p("/")).unwrap();
    fs.crash(&mut StdRng::seed_from_u64(1));
    assert!(f.append(b"x").is_err());
    assert!(f.sync_data().is_err());
    assert!(f.len().is_err());
    let _relocked = fs.lock(p("/d/lock")).unwrap();
    drop(lock); // the dead lock does not release the new one
    assert!(fs.lock(p("/d/lock")).is_err());
    fs.open_append(p("/d/log")).unwrap().append(b"x").unwrap();
}

#[test]
fn a_killed_process_loses_nothing() {
    let fs = disk_with_dir(SimOptions::default());
    let mut f = fs.create_new(p("/d/log")).unwrap();
    f.append(b"in the page cache").unwrap();
    drop(f);
    assert_eq!(fs.read(p("/d/log")).unwrap(), b"in the page cache");
    assert_eq!(fs.durable_read(p("/d/log")), None, "nothing was synced");
}

#[test]
fn writes_beyond_the_capacity_fail_with_enospc_and_change_nothing() {
    let fs = disk_with_dir(SimOptions {
        capacity: Some(1000),
        ..SimOptions::default()
    });
    let mut f = fs.create_new(p("/d/log")).unwrap();
    f.append(&[1; 900]).unwrap();
    let err = f.append(&[2; 200]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert_eq!(f.len().unwrap(), 900);
    assert!(fs.write(p("/d/other"), &[3; 101]).is_err());
    f.set_len(0).unwrap();
    fs.write(p("/d/other"), &[3; 1000]).unwrap();
}

#[test]
fn space_of_replaced_files_is_freed() {
    let fs = disk_with_dir(SimOptions {
        capacity: Some(10_000),
        ..SimOptions::default()
    });
    for i in 0..1000 {
        fs.write(p("/d/rec.tmp"), &[i as u8; 1000]).unwrap();
        fs.rename(p("/d/rec.tmp"), p("/d/rec")).unwrap();
        fs.sync_dir(p("/d")).unwrap();
    }
    assert!(fs.used() <= 10_000);
    assert_eq!(fs.read(p("/d/rec")).unwrap(), [231_u8; 1000]);
}

#[test]
fn a_corrupted_bit_is_on_the_medium() {
    let fs = disk_with_dir(SimOptions::default());
    fs.write(p("/d/f"), b"abc").unwrap();
    fs.sync_file_system(p("/")).unwrap();
    fs.corrupt(p("/d/f"), 1, 0x01).unwrap();
    assert_eq!(fs.read(p("/d/f")).unwrap(), b"acc");
    fs.crash_losing_unsynced();
    assert_eq!(fs.read(p("/d/f")).unwrap(), b"acc");
    assert!(fs.corrupt(p("/d/f"), 3, 0x01).is_err(), "past the end");
}

#[test]
fn a_wiped_disk_is_empty_and_its_handles_dead() {
    let fs = disk_with_dir(SimOptions::default());
    let mut f = fs.create_new(p("/d/f")).unwrap();
    fs.sync_file_system(p("/")).unwrap();
    fs.wipe();
    assert!(fs.files().is_empty());
    assert!(!fs.exists(p("/d")));
    assert!(f.append(b"x").is_err());
}

#[test]
fn the_nth_write_or_sync_fails_with_eio() {
    let fs = disk_with_dir(SimOptions::default());
    let mut f = fs.create_new(p("/d/f")).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.fail_nth_write(2);
    f.append(b"1").unwrap();
    assert_eq!(f.append(b"2").unwrap_err().raw_os_error(), Some(libc::EIO));
    f.append(b"3").unwrap();
    assert_eq!(fs.read(p("/d/f")).unwrap(), b"13");
    fs.fail_nth_sync(1);
    assert!(f.sync_data().is_err());
    fs.crash_losing_unsynced();
    assert_eq!(
        fs.read(p("/d/f")).unwrap(),
        b"",
        "a failed sync made nothing durable"
    );
}

#[test]
fn remove_dir_all_is_durable_only_once_synced() {
    let fs = disk_with_dir(SimOptions::default());
    fs.create_dir_all(p("/d/sub/deeper")).unwrap();
    fs.write(p("/d/sub/deeper/f"), b"x").unwrap();
    fs.sync_file_system(p("/")).unwrap();
    fs.remove_dir_all(p("/d/sub")).unwrap();
    assert!(!fs.exists(p("/d/sub")));
    fs.crash_losing_unsynced();
    assert_eq!(fs.files(), [p("/d/sub/deeper/f")]);
    fs.remove_dir_all(p("/d/sub")).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.crash_losing_unsynced();
    assert!(fs.files().is_empty());
}

#[test]
fn the_same_seed_gives_the_same_disk() {
    let run = |seed| {
        let fs = disk_with_dir(SimOptions::default());
        for i in 0..20_u8 {
            let path = PathBuf::from(format!("/d/f{}", i % 7));
            fs.write(&path, &vec![i; usize::from(i) * 300]).unwrap();
            if i % 3 == 0 {
                fs.sync_file(&path).unwrap();
            }
            if i % 5 == 0 {
                fs.rename(&path, p("/d/renamed")).unwrap();
            }
        }
        fs.crash(&mut StdRng::seed_from_u64(seed));
        fs.files()
            .into_iter()
            .map(|f| (fs.read(&f).unwrap(), f))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
    assert!(
        (0..20).any(|seed| run(seed) != run(9)),
        "the seed changes nothing"
    );
}

#[test]
fn paths_and_errors_behave_like_a_real_file_system() {
    let fs = disk_with_dir(SimOptions::default());
    let code = |e: io::Error| e.raw_os_error();
    assert_eq!(code(fs.read(p("/d/none")).unwrap_err()), Some(libc::ENOENT));
    assert_eq!(code(fs.read(p("/d")).unwrap_err()), Some(libc::EISDIR));
    fs.write(p("/d/f"), b"x").unwrap();
    assert_eq!(
        code(fs.create_new(p("/d/f")).unwrap_err()),
        Some(libc::EEXIST)
    );
    assert_eq!(
        code(fs.read_dir(p("/d/f")).unwrap_err()),
        Some(libc::ENOTDIR)
    );
    assert_eq!(
        code(fs.remove_file(p("/d")).unwrap_err()),
        Some(libc::EISDIR)
    );
    assert_eq!(
        code(fs.rename(p("/d"), p("/d/in")).unwrap_err()),
        Some(libc::EINVAL)
    );
    // Relative paths start at the root; `.` and `..` resolve lexically.
    assert_eq!(fs.read(p("d/./x/../f")).unwrap(), b"x");
    assert!(fs.is_dir(p("/d")) && !fs.is_dir(p("/d/f")));
    assert_eq!(fs.metadata(p("/d/f")).unwrap().len, 1);
    assert_ne!(fs.identity(), SimFs::new().identity());
    assert_eq!(fs.identity(), fs.clone().identity());
}
