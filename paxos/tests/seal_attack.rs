//! Side finding of the attack-b3 sweep (diskv-sim seed 2504, not caused by
//! f6cbb78): one flipped bit in the seal line's marker (`# crc32c `) makes
//! `unseal` take the record for a legacy unsealed one and return it whole, with
//! no checksum check; the damaged marker is a `#` comment the record parsers skip.
//! The next flipped bit in the content (seed 2504: "peers 3" -> "peers 7" in the
//! shardmaster's cluster file, two restarts later) is then read as the truth.

use paxos::fs::durable::{seal, unseal};

#[test]
fn a_flip_in_the_seal_marker_is_detected() {
    let text = b"shards 4\nme 2\npeers 3\n";
    let sealed = seal(text);
    let marker_at = text.len() + 3; // inside "\n# crc32c "
    for bit in 0..8 {
        let mut damaged = sealed.clone();
        damaged[marker_at] ^= 1 << bit;
        assert!(
            unseal(&damaged).is_err(),
            "bit {bit} of byte {marker_at} flipped: unseal returned {:?}",
            String::from_utf8_lossy(unseal(&damaged).unwrap())
        );
    }
}

#[test]
fn a_second_flip_after_a_flip_in_the_seal_marker_is_detected() {
    let text = b"shards 4\nme 2\npeers 3\n";
    let mut damaged = seal(text);
    damaged[text.len() + 3] ^= 1; // 'c' of "crc32c" -> 'b'
    let peers_digit = text.len() - 2;
    damaged[peers_digit] ^= 1 << 2; // '3' -> '7'
    assert!(
        unseal(&damaged).is_err(),
        "read back as {:?}",
        String::from_utf8_lossy(unseal(&damaged).unwrap())
    );
}
