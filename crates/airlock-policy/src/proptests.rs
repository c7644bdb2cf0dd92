//! Property tests: the fast wildcard matcher against a tiny, obviously
//! correct recursive matcher, on small alphabets where wildcards, literal
//! stars from `${*}` and multi-byte characters collide often.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use crate::context::Context;
use crate::pattern::{glob_match, Syntax, Template};

/// A pattern element for the reference matcher.
#[derive(Debug, Clone, Copy, PartialEq)]
enum R {
    Char(char),
    Star,
    Any,
}

fn reference(p: &[R], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((R::Star, rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
        Some((R::Any, rest)) => !s.is_empty() && reference(rest, &s[1..]),
        Some((R::Char(c), rest)) => s.first() == Some(c) && reference(rest, &s[1..]),
    }
}

/// Pattern source text plus its meaning for the reference matcher.
fn pattern() -> impl Strategy<Value = (String, Vec<R>)> {
    let piece = prop_oneof![
        Just(("a", R::Char('a'))),
        Just(("b", R::Char('b'))),
        Just(("é", R::Char('é'))),
        Just(("*", R::Star)),
        Just(("?", R::Any)),
        Just(("${*}", R::Char('*'))),
        Just(("${?}", R::Char('?'))),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|pieces| {
        let text = pieces.iter().map(|(t, _)| *t).collect::<String>();
        let meaning = pieces.iter().map(|(_, r)| *r).collect();
        (text, meaning)
    })
}

fn subject() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just('a'), Just('b'), Just('é'), Just('*'), Just('?')],
        0..10,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #[test]
    fn matcher_agrees_with_reference((text, meaning) in pattern(), s in subject()) {
        let syntax = Syntax { wildcards: true, variables: true, lowercase: false };
        let t = Template::parse(&text, syntax).unwrap();
        let chars: Vec<char> = s.chars().collect();
        prop_assert_eq!(
            t.matches(&s, &Context::new(), false),
            reference(&meaning, &chars),
            "pattern {:?} subject {:?}", text, s
        );
    }

    #[test]
    fn ascii_fold_is_case_insensitive((text, _m) in pattern(), s in subject()) {
        let syntax = Syntax { wildcards: true, variables: true, lowercase: true };
        let t = Template::parse(&text, syntax).unwrap();
        let upper = s.to_ascii_uppercase();
        prop_assert_eq!(
            glob_match(&t.parts, &[], &s, true),
            glob_match(&t.parts, &[], &upper, true)
        );
    }

    #[test]
    fn parse_never_panics(json in "\\PC{0,200}") {
        let _ = crate::Policy::parse("fuzz", &json);
    }
}
