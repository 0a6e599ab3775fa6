//! Attack on batches (branch simb): a Redis pipeline's run of single-key
//! commands goes to the store as one batch, and its replies come back
//! together. A pipeline of GETs of one large value made the store build every
//! copy in one batch reply and the door encode them all before writing any:
//! no bound but the run's 128 commands (2 GiB for a 16 MiB value), where the
//! same GETs one at a time, or MGET, stay within the door's memory budget.

mod support;

use std::io::Read;
use support::resp::{command, growth_while_unread, line, RespNode, MB};

/// 64 pipelined `GET big` of a 16 MiB value, the client not reading: the
/// server's peak must stay far below the 1 GiB the values add up to, and the
/// first GETs must still be answered with the value.
#[test]
fn attack_pipeline_of_gets_of_one_big_value_is_bounded() {
    let root = tempfile::tempdir().unwrap();
    let node = RespNode::start(root.path());
    node.set_big("big", 16 * MB);
    let get = command(&[b"GET", b"big"]);
    let pipeline: Vec<u8> = std::iter::repeat_n(get, 64).flatten().collect();
    let (grew, mut s) = growth_while_unread(&node, &pipeline);
    assert!(
        grew < 512 * MB,
        "64 pipelined GETs of one 16 MiB value made the server grow by {} MB",
        grew / MB
    );
    // The first GET is answered with the value.
    assert_eq!(line(&mut s), format!("${}\r\n", 16 * MB));
    let mut value = vec![0u8; 16 * MB + 2];
    s.read_exact(&mut value).unwrap();
    assert!(value[..16 * MB].iter().all(|&b| b == b'v'));
}
