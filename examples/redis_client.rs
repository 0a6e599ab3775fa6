//! diskv through the `redis` crate. Start diskv with the Redis protocol (`make run`
//! serves it on 127.0.0.1:6380), then:
//!
//! ```sh
//! cargo run --example redis_client [-- HOST:PORT]
//! ```

fn main() -> redis::RedisResult<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6380".into());
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let mut con = client.get_connection()?;

    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query(&mut con)?;
    let greeting: String = redis::cmd("GET").arg("greeting").query(&mut con)?;
    println!("GET greeting -> {greeting}");
    // One replicated increment, applied exactly once even if the store retries it.
    let visits: i64 = redis::cmd("INCR").arg("visits").query(&mut con)?;
    println!("INCR visits -> {visits}");
    // A conditional write: only the first caller gets the lock.
    let won: bool = redis::cmd("SETNX").arg("lock").arg("me").query(&mut con)?;
    println!("SETNX lock -> {won}");
    let len: i64 = redis::cmd("APPEND")
        .arg("log")
        .arg("line;")
        .query(&mut con)?;
    println!("APPEND log -> {len}");

    // Plain pipelining: many commands in flight, answered in order.
    let mut pipe = redis::pipe();
    for _ in 0..10 {
        pipe.cmd("INCR").arg("visits");
    }
    let counts: Vec<i64> = pipe.query(&mut con)?;
    println!("10 pipelined INCR -> {:?}", counts.last());
    Ok(())
}
