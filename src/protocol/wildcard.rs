//! EC2 filter wildcards, compiled once per request and matched in linear time.
//!
//! `*` matches any run of characters, `?` exactly one, and a backslash makes
//! the next character literal. A backtracking matcher re-reading the pattern
//! for every candidate can be driven into quadratic work per value by a
//! hostile pattern (`*a*a*a*...b`), and a describe runs every pattern against
//! every value of every resource. Here a pattern compiles to a small
//! automaton (a bit per pattern position, runs of `*` collapsed), simulated
//! with whole-word bit operations: each character of a value costs one pass
//! over `len/64` words, whatever the pattern. Patterns are bounded in length
//! by the parameter parser ([`MAX_PATTERN_CHARS`]).

/// The longest filter value accepted (characters). EC2's longest filterable
/// strings (tag values, descriptions) are 256 characters; a pattern may
/// escape each of them.
pub const MAX_PATTERN_CHARS: usize = 512;

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// No wildcard at all: plain equality.
    Exact(String),
    /// `*` alone: everything matches.
    Everything,
    /// Anything else: the automaton.
    Automaton(Automaton),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
}

/// Bit `i` of a state: the first `i` tokens have been matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Automaton {
    /// Number of tokens (the accepting position).
    length: usize,
    words: usize,
    /// Positions whose token is `*`.
    star: Vec<u64>,
    /// Positions whose token is `?`.
    any_one: Vec<u64>,
    /// For each literal character, the positions whose token is that
    /// character (sorted by character, for a binary search).
    literals: Vec<(char, Vec<u64>)>,
}

impl Pattern {
    pub fn compile(pattern: &str) -> Self {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        let mut has_wildcard = false;
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                '\\' => Token::Literal(chars.next().unwrap_or('\\')),
                c => Token::Literal(c),
            };
            // An escape is special too: `a\\b` must unescape to `a\b`.
            has_wildcard |= matches!(c, '*' | '?' | '\\');
            // `**` matches what `*` matches.
            if !(token == Token::AnyRun && tokens.last() == Some(&Token::AnyRun)) {
                tokens.push(token);
            }
        }
        if !has_wildcard {
            return Pattern::Exact(pattern.to_string());
        }
        if tokens == [Token::AnyRun] {
            return Pattern::Everything;
        }
        if tokens.iter().all(|t| matches!(t, Token::Literal(_))) {
            // Only escapes: equality with the unescaped text.
            return Pattern::Exact(
                tokens
                    .iter()
                    .map(|t| match t {
                        Token::Literal(c) => *c,
                        _ => unreachable!(),
                    })
                    .collect(),
            );
        }
        Pattern::Automaton(Automaton::new(&tokens))
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(text) => text == value,
            Pattern::Everything => true,
            Pattern::Automaton(automaton) => automaton.matches(value),
        }
    }
}

fn set(bits: &mut [u64], position: usize) {
    bits[position / 64] |= 1 << (position % 64);
}

fn is_set(bits: &[u64], position: usize) -> bool {
    bits[position / 64] & (1 << (position % 64)) != 0
}

/// `target = source << 1` over the whole bit vector.
fn shift_left_one(source: &[u64], target: &mut [u64]) {
    let mut carry = 0;
    for (out, word) in target.iter_mut().zip(source) {
        *out = (word << 1) | carry;
        carry = word >> 63;
    }
}

impl Automaton {
    fn new(tokens: &[Token]) -> Self {
        let length = tokens.len();
        let words = length / 64 + 1;
        let mut star = vec![0; words];
        let mut any_one = vec![0; words];
        let mut literals: Vec<(char, Vec<u64>)> = Vec::new();
        for (position, token) in tokens.iter().enumerate() {
            match token {
                Token::AnyRun => set(&mut star, position),
                Token::AnyOne => set(&mut any_one, position),
                Token::Literal(c) => match literals.binary_search_by(|(l, _)| l.cmp(c)) {
                    Ok(i) => set(&mut literals[i].1, position),
                    Err(i) => {
                        let mut bits = vec![0; words];
                        set(&mut bits, position);
                        literals.insert(i, (*c, bits));
                    }
                },
            }
        }
        Self {
            length,
            words,
            star,
            any_one,
            literals,
        }
    }

    /// Adds the positions reachable by letting a `*` match nothing. Runs of
    /// `*` are collapsed, so one step reaches every such position (and the
    /// positions it adds are never `*` themselves, so this works in place).
    fn close(&self, state: &mut [u64]) {
        let mut carry = 0;
        for (word, star) in state.iter_mut().zip(&self.star) {
            let skipping = *word & star;
            *word |= (skipping << 1) | carry;
            carry = skipping >> 63;
        }
    }

    fn matches(&self, value: &str) -> bool {
        let mut state = vec![0u64; self.words];
        let mut next = vec![0u64; self.words];
        let mut scratch = vec![0u64; self.words];
        set(&mut state, 0);
        self.close(&mut state);
        for c in value.chars() {
            let literal = self
                .literals
                .binary_search_by(|(l, _)| l.cmp(&c))
                .ok()
                .map(|i| &self.literals[i].1);
            // Positions that consume `c` and move on by one.
            for i in 0..self.words {
                let consuming = self.any_one[i] | literal.map_or(0, |bits| bits[i]);
                scratch[i] = state[i] & consuming;
            }
            shift_left_one(&scratch, &mut next);
            // A `*` consumes `c` and stays.
            let mut alive = 0;
            for i in 0..self.words {
                next[i] |= state[i] & self.star[i];
                alive |= next[i];
            }
            if alive == 0 {
                return false;
            }
            std::mem::swap(&mut state, &mut next);
            self.close(&mut state);
        }
        is_set(&state, self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, value: &str) -> bool {
        Pattern::compile(pattern).matches(value)
    }

    /// The obvious recursive definition, as the reference.
    fn reference(pattern: &[char], value: &[char]) -> bool {
        match pattern.first() {
            None => value.is_empty(),
            Some('*') => (0..=value.len()).any(|i| reference(&pattern[1..], &value[i..])),
            Some('?') => !value.is_empty() && reference(&pattern[1..], &value[1..]),
            Some('\\') => {
                let (literal, rest) = match pattern.get(1) {
                    Some(c) => (*c, &pattern[2..]),
                    None => ('\\', &pattern[1..]),
                };
                value.first() == Some(&literal) && reference(rest, &value[1..])
            }
            Some(c) => value.first() == Some(c) && reference(&pattern[1..], &value[1..]),
        }
    }

    #[test]
    fn wildcards() {
        assert!(matches("us-east-1a", "us-east-1a"));
        assert!(!matches("us-east-1a", "us-east-1b"));
        assert!(matches("us-east-1*", "us-east-1c"));
        assert!(matches("*", ""));
        assert!(matches("us-?ast-1?", "us-east-1b"));
        assert!(!matches("us-east-1?", "us-east-1"));
        assert!(matches("*east*b", "us-east-1b"));
        assert!(!matches("*east*b", "us-east-1c"));
        assert!(matches("a\\*b", "a*b"));
        assert!(!matches("a\\*b", "axb"));
        assert!(matches("web server*", "web server 1"));
        assert!(matches("**", "x"));
        assert!(matches("é*ü", "é-ü"));
    }

    #[test]
    fn long_patterns_cross_word_boundaries() {
        let value = "ab".repeat(100);
        assert!(matches(&format!("{}*", "a?".repeat(90)), &value));
        assert!(matches(&"?".repeat(200), &value));
        assert!(!matches(&"?".repeat(199), &value));
        assert!(matches(&format!("*{}", "ab".repeat(70)), &value));
    }

    #[test]
    fn hostile_patterns_stay_cheap() {
        // Exponential for a naive matcher, quadratic for a backtracking one.
        let pattern = format!("{}b", "*a".repeat(MAX_PATTERN_CHARS / 2 - 1));
        let value = "a".repeat(256);
        let compiled = Pattern::compile(&pattern);
        for _ in 0..1000 {
            assert!(!compiled.matches(&value));
        }
    }

    /// A value the pattern matches, built from it (random values rarely
    /// match a pattern, so the matching side needs its own generator).
    fn instance_of(pattern: &str, fill: &str) -> String {
        let mut out = String::new();
        let mut chars = pattern.chars();
        let mut fill = fill.chars().cycle();
        while let Some(c) = chars.next() {
            match c {
                '*' => out.extend(fill.by_ref().take(2)),
                '?' => out.extend(fill.next()),
                '\\' => out.push(chars.next().unwrap_or('\\')),
                c => out.push(c),
            }
        }
        out
    }

    #[test]
    fn escapes_unescape() {
        assert!(matches("a\\\\b", "a\\b"));
        assert!(!matches("a\\\\b", "a\\\\b"));
        assert!(matches("\\?", "?"));
        assert!(!matches("\\?", "x"));
        assert!(matches("a\\", "a\\"));
    }

    proptest! {
        #[test]
        fn agrees_with_the_definition(
            pattern in "[ab*?\\\\]{0,12}",
            value in "[ab*?\\\\]{0,12}",
        ) {
            let p: Vec<char> = pattern.chars().collect();
            let v: Vec<char> = value.chars().collect();
            prop_assert_eq!(matches(&pattern, &value), reference(&p, &v), "{} vs {}", pattern, value);
        }

        #[test]
        fn matches_what_it_describes(pattern in "[ab*?\\\\]{0,12}", fill in "[ab\\\\]{1,4}") {
            let value = instance_of(&pattern, &fill);
            let p: Vec<char> = pattern.chars().collect();
            let v: Vec<char> = value.chars().collect();
            prop_assert!(reference(&p, &v), "{} vs {}", pattern, value);
            prop_assert!(matches(&pattern, &value), "{} vs {}", pattern, value);
        }
    }
}
