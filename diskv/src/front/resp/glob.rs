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

/// Attack (review of the RESP door): `matches` against a line-by-line port of
/// Redis's recursive `stringmatchlen` (util.c, case-sensitive), on random
/// patterns over a small alphabet rich in `*`, `?`, `[`, `]`, `^`, `-`, `\`.
#[cfg(test)]
mod attack_tests {
    use super::matches;

    fn redis(p: &[u8], s: &[u8]) -> bool {
        let (mut p, mut s) = (p, s);
        while !p.is_empty() && !s.is_empty() {
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    while !s.is_empty() {
                        if redis(&p[1..], s) {
                            return true;
                        }
                        s = &s[1..];
                    }
                    return false;
                }
                b'?' => {
                    s = &s[1..];
                }
                b'[' => {
                    // pattern index i into the full remaining pattern p.
                    let mut i = 1;
                    let not = p.get(i) == Some(&b'^');
                    if not {
                        i += 1;
                    }
                    let mut hit = false;
                    loop {
                        let left = p.len().saturating_sub(i);
                        if p.get(i) == Some(&b'\\') && left >= 2 {
                            i += 1;
                            if p[i] == s[0] {
                                hit = true;
                            }
                        } else if p.get(i) == Some(&b']') {
                            break;
                        } else if left == 0 {
                            i -= 1;
                            break;
                        } else if left >= 3 && p[i + 1] == b'-' {
                            let (mut a, mut b) = (p[i], p[i + 2]);
                            if a > b {
                                std::mem::swap(&mut a, &mut b);
                            }
                            i += 2;
                            if s[0] >= a && s[0] <= b {
                                hit = true;
                            }
                        } else if p[i] == s[0] {
                            hit = true;
                        }
                        i += 1;
                    }
                    if not {
                        hit = !hit;
                    }
                    if !hit {
                        return false;
                    }
                    s = &s[1..];
                    p = &p[i..]; // p[0] is the closing ']' (or the last byte)
                }
                b'\\' if p.len() >= 2 => {
                    p = &p[1..];
                    if p[0] != s[0] {
                        return false;
                    }
                    s = &s[1..];
                }
                c => {
                    if c != s[0] {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p = &p[1..];
            if s.is_empty() {
                while !p.is_empty() && p[0] == b'*' {
                    p = &p[1..];
                }
                break;
            }
        }
        p.is_empty() && s.is_empty()
    }

    #[test]
    fn attack_glob_agrees_with_redis_stringmatchlen() {
        let alpha = b"ab*?[]^-\\";
        let text_alpha = b"ab-]^\\";
        let mut x: u64 = 0x2545F4914F6CDD1D;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut bad = Vec::new();
        for _ in 0..300_000 {
            let pl = next(7);
            let tl = 1 + next(5); // keys are never empty (Redis: "*" does not match "")
            let p: Vec<u8> = (0..pl).map(|_| alpha[next(alpha.len())]).collect();
            let t: Vec<u8> = (0..tl)
                .map(|_| text_alpha[next(text_alpha.len())])
                .collect();
            let (ours, theirs) = (matches(&p, &t), redis(&p, &t));
            if ours != theirs && bad.len() < 10 {
                bad.push(format!(
                    "pattern {:?} text {:?}: diskv {ours}, Redis {theirs}",
                    String::from_utf8_lossy(&p),
                    String::from_utf8_lossy(&t)
                ));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
