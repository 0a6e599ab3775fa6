//! Reading commands from a RESP byte stream: arrays of bulk strings (what every
//! client library sends) and inline commands (a line of words, what `telnet` and
//! `redis-cli` in some modes send).
//!
//! The [`Decoder`] is incremental: it consumes what it can of the bytes it is given
//! (whole header lines, whole bulk strings), keeps the arguments of a command that
//! is not complete yet, and says how many bytes it consumed. A bulk string is
//! copied only once all its bytes are there, so an announced length never makes it
//! allocate ahead of the bytes. Every length is bounded by [`Limits`]; anything out
//! of bounds is a [`ParseError`] (the connection answers it and closes).

use crate::op::MAX_VALUE_BYTES;

/// One command: its name and arguments, as raw bytes.
pub type Args = Vec<Vec<u8>>;

/// Longest `*N` or `$N` header line, digits and sign (Redis allows 32 bytes too).
const MAX_HEADER: usize = 32;

/// Bounds on what one command may announce or hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string: [`MAX_VALUE_BYTES`] plus 1 MiB, so that a value a
    /// little over the store's limit gets the store's clear "over the limit"
    /// error instead of a protocol error.
    pub max_bulk: usize,
    /// Most elements of one array (1,048,576).
    pub max_args: usize,
    /// Longest inline command line (64 KiB, as Redis).
    pub max_inline: usize,
    /// Most bytes of bulk strings in one command (64 MiB).
    pub max_command: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: MAX_VALUE_BYTES + (1 << 20),
            max_args: 1 << 20,
            max_inline: 64 << 10,
            max_command: 64 << 20,
        }
    }
}

/// Why the bytes are not a RESP command. `Display` is what the client is sent
/// after `-ERR ` (Redis's own wording where Redis has one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `*N` with N not a number or above [`Limits::max_args`].
    #[error("Protocol error: invalid multibulk length")]
    ArrayLength,
    /// `$N` with N not a number, negative, or above [`Limits::max_bulk`].
    #[error("Protocol error: invalid bulk length")]
    BulkLength,
    /// An array element that is not a bulk string.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// A `*N` or `$N` line longer than a number can be.
    #[error("Protocol error: too big count string")]
    HeaderTooLong,
    /// An inline command longer than [`Limits::max_inline`].
    #[error("Protocol error: too big inline request")]
    InlineTooLong,
    /// An inline command with a quote that is not closed, or closed mid-word.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A bulk string not followed by `\r\n`.
    #[error("Protocol error: bulk string not terminated by CRLF")]
    Unterminated,
    /// The bulk strings of one command add up to more than [`Limits::max_command`].
    #[error("Protocol error: command larger than {0} bytes")]
    CommandTooLarge(usize),
}

/// An array whose elements are still arriving.
#[derive(Debug)]
struct Partial {
    /// Elements still to read.
    left: usize,
    /// Elements read so far.
    args: Args,
    /// Bytes of the elements read so far.
    bytes: usize,
}

/// Reads commands incrementally; see the module docs.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    partial: Option<Partial>,
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            partial: None,
        }
    }

    /// Bytes of the command read so far, not yet complete (its whole elements).
    pub fn holds(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.bytes)
    }

    /// Reads from `buf` until one command is complete or the bytes run out.
    /// Returns how many bytes of `buf` were consumed (the caller drops them and
    /// passes what follows next time) and the command, if one completed; `None`
    /// means every byte of `buf` that can be used without more was used.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(usize, Option<Args>), ParseError> {
        let mut pos = 0;
        loop {
            let Some(partial) = &mut self.partial else {
                let Some(&first) = buf.get(pos) else {
                    return Ok((pos, None));
                };
                if first != b'*' {
                    match self.inline(buf, pos)? {
                        (next, None) if next > pos => {
                            // An empty line is no command (Redis skips it too).
                            pos = next;
                            continue;
                        }
                        done => return Ok(done),
                    }
                }
                let Some((count, next)) = header(buf, pos + 1)? else {
                    return Ok((pos, None));
                };
                pos = next;
                let count = count
                    .filter(|&n| n <= self.limits.max_args as i64)
                    .ok_or(ParseError::ArrayLength)?;
                // `*0` and `*-1` are no command at all: Redis skips them too.
                if count > 0 {
                    self.partial = Some(Partial {
                        left: count as usize,
                        args: Vec::with_capacity((count as usize).min(16)),
                        bytes: 0,
                    });
                }
                continue;
            };
            if partial.left == 0 {
                let done = self.partial.take().map(|p| p.args);
                return Ok((pos, done));
            }
            let Some(&first) = buf.get(pos) else {
                return Ok((pos, None));
            };
            if first != b'$' {
                return Err(ParseError::ExpectedBulk(char::from(first)));
            }
            let Some((len, start)) = header(buf, pos + 1)? else {
                return Ok((pos, None));
            };
            let len = len
                .filter(|&n| (0..=self.limits.max_bulk as i64).contains(&n))
                .ok_or(ParseError::BulkLength)? as usize;
            if partial.bytes + len > self.limits.max_command {
                return Err(ParseError::CommandTooLarge(self.limits.max_command));
            }
            // The header stays unconsumed until the whole bulk is here: the next
            // call reads it again (a few bytes), and nothing is copied early.
            let end = start + len;
            if buf.len() < end + 2 {
                return Ok((pos, None));
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ParseError::Unterminated);
            }
            partial.args.push(buf[start..end].to_vec());
            partial.bytes += len;
            partial.left -= 1;
            pos = end + 2;
        }
    }

    /// An inline command at `pos`: words separated by spaces, up to `\n`, and
    /// where the next command starts; no words for an empty line.
    fn inline(&self, buf: &[u8], pos: usize) -> Result<(usize, Option<Args>), ParseError> {
        let window = &buf[pos..buf.len().min(pos + self.limits.max_inline + 1)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            if window.len() > self.limits.max_inline {
                return Err(ParseError::InlineTooLong);
            }
            return Ok((pos, None));
        };
        let args = split_inline(&window[..nl]).ok_or(ParseError::UnbalancedQuotes)?;
        Ok((pos + nl + 1, (!args.is_empty()).then_some(args)))
    }
}

/// The words of an inline command line, as Redis's `sdssplitargs` splits them:
/// whitespace separates words; `"..."` may hold spaces and the escapes `\xHH`,
/// `\n`, `\r`, `\t`, `\b`, `\a` and `\` before any other byte; `'...'` may
/// hold spaces and `\'`. A closing quote must end its word. `None` for
/// unbalanced quotes.
fn split_inline(line: &[u8]) -> Option<Args> {
    // Redis splits a C string: a NUL byte ends the line.
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let hex = |b: u8| (b as char).to_digit(16);
    let n = line.len();
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < n && (line[i].is_ascii_whitespace() || line[i] == 0x0b) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut word = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                let c = *line.get(i)?;
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        word.push((h * 16 + l) as u8);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < n {
                    word.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            } else if insq {
                let c = *line.get(i)?;
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    word.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            } else {
                match line.get(i) {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                    Some(b'"') => inq = true,
                    Some(b'\'') => insq = true,
                    Some(&c) => word.push(c),
                }
                i += 1;
            }
        }
        args.push(word);
    }
}

/// The number of a `*N` / `$N` line whose digits start at `pos`, and where the
/// next line starts; `None` if the line is not complete yet. The number is `None`
/// when the line is not one.
fn header(buf: &[u8], pos: usize) -> Result<Option<(Option<i64>, usize)>, ParseError> {
    let window = &buf[pos.min(buf.len())..buf.len().min(pos + MAX_HEADER + 2)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        if window.len() >= MAX_HEADER + 2 {
            return Err(ParseError::HeaderTooLong);
        }
        return Ok(None);
    };
    let digits = &window[..cr];
    let number = std::str::from_utf8(digits)
        .ok()
        .filter(|s| !s.starts_with('+'))
        .and_then(|s| s.parse::<i64>().ok());
    Ok(Some((number, pos + cr + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(decoder: &mut Decoder, mut buf: &[u8]) -> Result<Vec<Args>, ParseError> {
        let mut out = Vec::new();
        loop {
            let (n, cmd) = decoder.decode(buf)?;
            buf = &buf[n..];
            match cmd {
                Some(c) => out.push(c),
                None => return Ok(out),
            }
        }
    }

    fn words(ws: &[&str]) -> Args {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn reads_arrays_of_bulk_strings_and_inline_commands() {
        let mut d = Decoder::default();
        let got = all(
            &mut d,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nPING\r\n  GET   k \n\r\n*0\r\n*1\r\n$4\r\nQUIT\r\n",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                words(&["SET", "k", ""]),
                words(&["PING"]),
                words(&["GET", "k"]),
                words(&["QUIT"])
            ]
        );
    }

    #[test]
    fn a_command_split_anywhere_decodes_the_same() {
        let wire = b"*2\r\n$4\r\nECHO\r\n$12\r\nhello\r\nworld\r\nPING\r\n";
        for cut in 0..wire.len() {
            let mut d = Decoder::default();
            let mut buf = wire[..cut].to_vec();
            let mut got = Vec::new();
            let mut fed = cut;
            loop {
                let (n, cmd) = d.decode(&buf).unwrap();
                buf.drain(..n);
                if let Some(c) = cmd {
                    got.push(c);
                    continue;
                }
                if fed == wire.len() {
                    break;
                }
                buf.push(wire[fed]);
                fed += 1;
            }
            assert_eq!(
                got,
                vec![words(&["ECHO", "hello\r\nworld"]), words(&["PING"])],
                "cut at {cut}"
            );
        }
    }

    /// Found by the fuzzer: a command after an empty line waited for more bytes.
    #[test]
    fn empty_lines_are_skipped_without_waiting_for_more_bytes() {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(b"\r\n\nGET k\n"),
            Ok((9, Some(words(&["GET", "k"]))))
        );
        assert_eq!(d.decode(b"\r\n"), Ok((2, None)));
    }

    #[test]
    fn announced_lengths_are_bounded_before_any_byte_arrives() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(b"*99999999999\r\n"), Err(ParseError::ArrayLength));
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(b"*1\r\n$999999999\r\n"),
            Err(ParseError::BulkLength)
        );
        let mut d = Decoder::default();
        assert_eq!(d.decode(b"*1\r\n$-1\r\n"), Err(ParseError::BulkLength));
        let mut d = Decoder::default();
        assert_eq!(d.decode(b"*x\r\n"), Err(ParseError::ArrayLength));
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(b"*1\r\n:1\r\n"),
            Err(ParseError::ExpectedBulk(':'))
        );
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(&[b'*'; 64]).unwrap_err(),
            ParseError::HeaderTooLong
        );
        let mut d = Decoder::default();
        assert_eq!(
            d.decode(b"*1\r\n$1\r\nab\r\n"),
            Err(ParseError::Unterminated)
        );
    }

    #[test]
    fn a_bulk_within_its_limit_waits_for_its_bytes_without_copying() {
        let mut d = Decoder::default();
        let head = format!("*2\r\n$3\r\nGET\r\n${}\r\n", MAX_VALUE_BYTES);
        let (n, cmd) = d.decode(head.as_bytes()).unwrap();
        assert_eq!(cmd, None);
        // The array header and the first bulk are consumed; the second is not.
        assert_eq!(n, "*2\r\n$3\r\nGET\r\n".len());
        let partial = d.partial.as_ref().unwrap();
        assert_eq!(partial.args.capacity(), 2);
        assert_eq!(partial.bytes, 3);
    }

    /// A decoder with the default limits changed by `change`.
    fn limited(change: impl FnOnce(&mut Limits)) -> Decoder {
        let mut limits = Limits::default();
        change(&mut limits);
        Decoder::new(limits)
    }

    #[test]
    fn the_total_size_of_one_command_is_bounded() {
        let mut d = limited(|l| l.max_command = 10);
        assert_eq!(
            d.decode(b"*3\r\n$5\r\naaaaa\r\n$5\r\nbbbbb\r\n$1\r\n"),
            Err(ParseError::CommandTooLarge(10))
        );
    }

    #[test]
    fn inline_lines_are_bounded() {
        let mut d = limited(|l| l.max_inline = 8);
        assert_eq!(d.decode(b"PING 123"), Ok((0, None)));
        assert_eq!(d.decode(b"PING 1234"), Err(ParseError::InlineTooLong));
        assert_eq!(
            d.decode(b"PING 123\n"),
            Ok((9, Some(words(&["PING", "123"]))))
        );
    }
}

/// Attack (review of the RESP door): Redis splits an inline command with
/// `sdssplitargs`, which honours double and single quotes and `\x` escapes, so
/// `SET k "hello world"` (what a user types into telnet) stores `hello world`.
/// Here the quote characters become part of the words, and the command is
/// `SET k "hello world"` with 4 arguments.
#[cfg(test)]
mod attack_tests {
    use super::*;

    #[test]
    fn attack_inline_commands_honour_quotes_as_redis() {
        let mut d = Decoder::default();
        let (_, cmd) = d.decode(b"SET k \"hello world\"\r\n").unwrap();
        assert_eq!(
            cmd,
            Some(vec![
                b"SET".to_vec(),
                b"k".to_vec(),
                b"hello world".to_vec()
            ])
        );
        let words = |line: &[u8]| Decoder::default().decode(line).map(|(_, c)| c);
        let w = |ws: &[&[u8]]| Ok(Some(ws.iter().map(|w| w.to_vec()).collect::<Args>()));
        assert_eq!(words(b"SET k 'it''s'\n"), Err(ParseError::UnbalancedQuotes));
        assert_eq!(words(b"SET k 'it\\'s'\n"), w(&[b"SET", b"k", b"it's"]));
        assert_eq!(
            words(b"ECHO \"a\\x41\\n\\\"\" ''\r\n"),
            w(&[b"ECHO", b"aA\n\"", b""])
        );
        assert_eq!(words(b"ECHO a\"b c\"\n"), w(&[b"ECHO", b"ab c"]));
        assert_eq!(words(b"ECHO \"open\n"), Err(ParseError::UnbalancedQuotes));
        assert_eq!(words(b"  \t \r\n"), Ok(None));
        // Found by the fuzzer in the first version of this fix: a NUL byte
        // outside quotes made an endless run of empty words.
        assert_eq!(words(b"ECHO a\0b c\n"), w(&[b"ECHO", b"a"]));
    }
}
