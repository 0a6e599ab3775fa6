//! Redis's glob patterns, for `KEYS` and `SCAN ... MATCH`: `*` (any run of bytes),
//! `?` (one byte), `[abc]`, `[^abc]`, `[a-z]`, and `\x` for a literal `x`.
//!
//! Matching backtracks only to the last `*`, so it takes at most
//! `pattern.len() * text.len()` steps, whatever the pattern (a pattern such as
//! `*a*a*a*a*b` cannot make it exponential).

/// True if `text` matches `pattern`.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after a mismatch: the pattern after the last `*`, and the
    // text position that `*` currently stops at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            star = Some((p, t));
            continue;
        }
        if let Some(next) = one(pattern, p, text[t]) {
            p = next;
            t += 1;
            continue;
        }
        match star {
            Some((sp, st)) => {
                star = Some((sp, st + 1));
                p = sp;
                t = st + 1;
            }
            None => return false,
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

/// If the one-byte element of `pattern` at `p` matches `c`, where the next
/// element starts.
fn one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match *pattern.get(p)? {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => class(pattern, p + 1, c),
        x => (x == c).then_some(p + 1),
    }
}

/// A `[...]` class whose body starts at `p`. An unclosed class runs to the end
/// of the pattern, as in Redis.
fn class(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    while let Some(&b) = pattern.get(p) {
        match b {
            b']' => {
                p += 1;
                break;
            }
            b'\\' if p + 1 < pattern.len() => {
                hit |= pattern[p + 1] == c;
                p += 2;
            }
            _ if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                let (lo, hi) = (b.min(pattern[p + 2]), b.max(pattern[p + 2]));
                hit |= (lo..=hi).contains(&c);
                p += 3;
            }
            _ => {
                hit |= b == c;
                p += 1;
            }
        }
    }
    (hit != negate).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(p: &str, t: &str) -> bool {
        matches(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn matches_like_redis() {
        // (pattern, text, matches)
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("user:*", "user:42", true),
            ("user:*", "users:42", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*a*b", "xxaxxab", true),
            ("*a*b", "xxaxxa", false),
            // An unclosed class runs to the end of the pattern.
            ("k[ab", "kb", true),
            ("k[", "k", false),
            ("", "x", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(m(pattern, text), want, "{pattern:?} on {text:?}");
        }
    }

    #[test]
    fn a_pathological_pattern_is_quick() {
        let text = "a".repeat(1000);
        let pattern = "*a".repeat(50) + "b";
        let started = std::time::Instant::now();
        assert!(!m(&pattern, &text));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
