//! The limits of [`super`]: frame headers and the budget, idle and half-sent
//! connections, and a full listener making room.

use super::*;

fn frames(max: usize) -> Frames {
    Frames {
        max,
        header: [0; 4],
        header_len: 0,
        body_left: 0,
        held: None,
        due: None,
    }
}

fn framed(len: usize) -> Vec<u8> {
    let mut v = (len as u32).to_be_bytes().to_vec();
    v.resize(4 + len, 7);
    v
}

#[test]
fn a_header_announcing_more_than_the_limit_is_refused_before_the_body() {
    let budget = FrameBudget::new(1 << 20);
    let mut f = frames(1000);
    let why = f
        .feed(
            &0x0FFF_FFFFu32.to_be_bytes(),
            &budget,
            Duration::from_secs(1),
        )
        .unwrap_err();
    assert!(why.contains("above this service's limit"), "{why}");
    assert_eq!(budget.available(), 1 << 20);
}

#[test]
fn large_frames_hold_the_budget_until_they_have_arrived() {
    let budget = FrameBudget::new(300 << 10);
    let len = 200 << 10;
    let bytes = framed(len);
    let mut a = frames(1 << 20);
    // Header and half the body: the frame holds its bytes.
    a.feed(&bytes[..4 + len / 2], &budget, Duration::from_secs(1))
        .unwrap();
    assert_eq!(budget.available(), (300 << 10) - len);
    // A second connection's large frame does not fit now.
    let mut b = frames(1 << 20);
    let why = b
        .feed(&bytes[..4], &budget, Duration::from_secs(1))
        .unwrap_err();
    assert!(why.contains("already holds"), "{why}");
    // The rest arrives, byte by byte across calls: the budget comes back.
    for chunk in bytes[4 + len / 2..].chunks(7000) {
        a.feed(chunk, &budget, Duration::from_secs(1)).unwrap();
    }
    assert_eq!(budget.available(), 300 << 10);
    assert!(a.due.is_none());
    // Small frames, many in one read, need nothing from it.
    let mut many = Vec::new();
    for len in [0, 10, SMALL_FRAME, 3] {
        many.extend(framed(len));
    }
    let empty = FrameBudget::new(0);
    a.feed(&many, &empty, Duration::from_secs(1)).unwrap();
    assert_eq!(a.body_left, 0);
    assert_eq!(a.header_len, 0);
}

#[test]
fn headers_split_across_reads_are_followed() {
    let budget = FrameBudget::new(1 << 20);
    let bytes = framed(5);
    let mut f = frames(100);
    for b in &bytes {
        f.feed(std::slice::from_ref(b), &budget, Duration::from_secs(1))
            .unwrap();
    }
    assert_eq!((f.body_left, f.header_len), (0, 0));
    let mut over = frames(4);
    let err = bytes[..4]
        .iter()
        .try_for_each(|b| over.feed(std::slice::from_ref(b), &budget, Duration::from_secs(1)));
    assert!(err.is_err());
}

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connected pair: the server side admitted by `admission`.
async fn pair(
    listener: &TcpListener,
    admission: &Admission,
) -> (TcpStream, Result<Guarded<TcpStream>, Refused>) {
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, remote) = listener.accept().await.unwrap();
    (client, admission.admit(server, remote))
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn limits(max: usize) -> Limits {
    Limits {
        max_connections: max,
        max_per_ip: max,
        frame_deadline: Duration::from_secs(5),
        evictable_after: Duration::ZERO,
    }
}

/// What reading the server side gives, within a deadline.
async fn read_outcome(conn: &mut Guarded<TcpStream>) -> io::Result<usize> {
    let mut buf = vec![0u8; 1 << 16];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) => return Ok(0),
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the server side neither failed nor ended")
}

/// B6 of issue #18: a header announcing gigabytes closes the connection
/// before its body is buffered.
#[tokio::test]
async fn a_frame_bomb_closes_the_connection_at_its_header() {
    let l = listener().await;
    let budget = FrameBudget::new(64 << 20);
    let admission = Admission::new(limits(8), budget.clone());
    let (mut client, conn) = pair(&l, &admission).await;
    let mut conn = conn.unwrap();
    conn.expect_frames(32 << 20);
    client
        .write_all(&0x0FFF_FFFFu32.to_be_bytes())
        .await
        .unwrap();
    client.write_all(&[0u8; 4096]).await.unwrap();
    let err = read_outcome(&mut conn).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(
        err.to_string().contains("above this service's limit"),
        "{err}"
    );
    // Within the limit but beyond what the process holds for frames now.
    let (mut client, conn) = pair(&l, &admission).await;
    let mut conn = conn.unwrap();
    conn.expect_frames(usize::MAX);
    client
        .write_all(&(100u32 << 20).to_be_bytes())
        .await
        .unwrap();
    let err = read_outcome(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("already holds"), "{err}");
    assert_eq!(budget.available(), 64 << 20);
}

#[tokio::test]
async fn silent_and_half_sent_connections_are_closed() {
    let l = listener().await;
    let admission = Admission::new(
        Limits {
            frame_deadline: Duration::from_millis(300),
            ..limits(8)
        },
        FrameBudget::new(1 << 20),
    );
    let (_client, conn) = pair(&l, &admission).await;
    let mut conn = conn.unwrap();
    conn.set_idle(Duration::from_millis(100));
    let err = read_outcome(&mut conn).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("nothing received"), "{err}");
    // A frame trickled in: each byte keeps the connection from being idle,
    // but the frame must arrive whole within the frame deadline.
    let (mut client, conn) = pair(&l, &admission).await;
    let mut conn = conn.unwrap();
    conn.set_idle(Duration::from_secs(5));
    conn.expect_frames(1 << 20);
    let trickle = tokio::spawn(async move {
        client.write_all(&1000u32.to_be_bytes()).await.unwrap();
        for _ in 0..100 {
            if client.write_all(&[1]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let err = read_outcome(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("still incomplete"), "{err}");
    trickle.abort();
}

/// B7 of issue #18: a listener at its cap closes its longest-silent
/// connection for a new one; with none silent long enough, it refuses.
#[tokio::test]
async fn a_full_listener_makes_room_by_closing_the_longest_silent_connection() {
    let l = listener().await;
    let admission = Admission::new(limits(3), FrameBudget::new(1 << 20));
    let mut held = Vec::new();
    for _ in 0..3 {
        let (client, conn) = pair(&l, &admission).await;
        held.push((client, conn.unwrap()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The newest of them speaks: the oldest stays the longest silent.
    held[2].0.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    held[2].1.read_exact(&mut one).await.unwrap();
    let (_client, fourth) = pair(&l, &admission).await;
    assert!(fourth.is_ok());
    let err = read_outcome(&mut held[0].1).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    drop(held);
    drop(fourth);
    assert_eq!(admission.open(), 0, "slots given back");
    // Nobody silent long enough: refused, with the reason.
    let strict = Admission::new(
        Limits {
            evictable_after: Duration::from_secs(3600),
            ..limits(1)
        },
        FrameBudget::new(1 << 20),
    );
    let (_a, first) = pair(&l, &strict).await;
    assert!(first.is_ok());
    let (_b, second) = pair(&l, &strict).await;
    let Err(Refused(why)) = second else {
        panic!("admitted past the cap");
    };
    assert!(why.contains("none of them idle"), "{why}");
}
