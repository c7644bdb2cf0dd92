//! Property tests: the fast wildcard matcher against a tiny, obviously
//! correct recursive matcher, on small alphabets where wildcards, literal
//! stars from `${*}` and multi-byte characters collide often; and the
//! containment prover against the evaluator, on small alphabets of actions,
//! resources and conditions where proofs succeed often enough to mean
//! something.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestRunner};
use serde_json::{json, Map, Value};

use crate::contain::{glob, glob_includes, globs_overlap, Glob};
use crate::context::Context;
use crate::pattern::{glob_match, Syntax, Template};
use crate::{evaluate, uncovered, Decision, Policy, Request};

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

/// One piece of pattern source text, and its meaning.
type Piece = (&'static str, R);

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        Just(("a", R::Char('a'))),
        Just(("b", R::Char('b'))),
        Just(("é", R::Char('é'))),
        Just(("*", R::Star)),
        Just(("?", R::Any)),
        Just(("${*}", R::Char('*'))),
        Just(("${?}", R::Char('?'))),
    ]
}

fn joined(pieces: &[Piece]) -> (String, Vec<R>) {
    let text = pieces.iter().map(|(t, _)| *t).collect::<String>();
    let meaning = pieces.iter().map(|(_, r)| *r).collect();
    (text, meaning)
}

/// Pattern source text plus its meaning for the reference matcher.
fn pattern() -> impl Strategy<Value = (String, Vec<R>)> {
    proptest::collection::vec(piece(), 0..8).prop_map(|pieces| joined(&pieces))
}

/// Two patterns, the second a few edits away from the first, so that they
/// are often nearly or exactly included in each other: random pairs almost
/// never are, and would leave inclusion untested.
fn pattern_pair() -> impl Strategy<Value = ((String, Vec<R>), (String, Vec<R>))> {
    // Per piece: keep it (None), drop it (Some(None)), or replace it.
    let edit = proptest::option::weighted(0.3, proptest::option::of(piece()));
    (
        proptest::collection::vec(piece(), 0..7),
        proptest::collection::vec(edit, 7),
    )
        .prop_map(|(pieces, edits)| {
            let edited: Vec<Piece> = pieces
                .iter()
                .zip(&edits)
                .filter_map(|(p, e)| match e {
                    None => Some(*p),
                    Some(replacement) => *replacement,
                })
                .collect();
            (joined(&pieces), joined(&edited))
        })
}

fn subject() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just('a'), Just('b'), Just('é'), Just('*'), Just('?')],
        0..10,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// A pattern as the prover compiles it.
fn compiled(text: &str) -> Glob {
    let syntax = Syntax {
        wildcards: true,
        variables: true,
        lowercase: false,
    };
    glob(
        &Template::parse(text, syntax).unwrap(),
        &Context::new(),
        false,
    )
    .unwrap()
}

/// Every string of up to five characters over the patterns' alphabet, to
/// look for a counterexample exhaustively.
static SUBJECTS: std::sync::LazyLock<Vec<Vec<char>>> = std::sync::LazyLock::new(short_subjects);

fn short_subjects() -> Vec<Vec<char>> {
    let mut all = vec![vec![]];
    let mut last = vec![vec![]];
    for _ in 0..5 {
        last = last
            .iter()
            .flat_map(|s: &Vec<char>| {
                ['a', 'b', 'é', '*', '?'].map(|c| {
                    let mut t = s.clone();
                    t.push(c);
                    t
                })
            })
            .collect();
        all.extend(last.iter().cloned());
    }
    all
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
    fn glob_inclusion_and_overlap_are_sound(
        ((a_text, a), (b_text, b)) in pattern_pair(),
        swap in any::<bool>(),
    ) {
        let ((a_text, a), (b_text, b)) = if swap {
            ((b_text, b), (a_text, a))
        } else {
            ((a_text, a), (b_text, b))
        };
        let (ga, gb) = (compiled(&a_text), compiled(&b_text));
        prop_assert!(glob_includes(&ga, &ga), "{:?} includes itself", a_text);
        let includes = glob_includes(&ga, &gb);
        let overlaps = globs_overlap(&ga, &gb);
        for s in SUBJECTS.iter() {
            let (in_a, in_b) = (reference(&a, s), reference(&b, s));
            prop_assert!(!includes || !in_b || in_a, "{:?} includes {:?} but not {:?}", a_text, b_text, s);
            prop_assert!(overlaps || !(in_a && in_b), "{:?} and {:?} both match {:?}", a_text, b_text, s);
        }
    }

    #[test]
    fn parse_never_panics(json in "\\PC{0,200}") {
        let _ = crate::Policy::parse("fuzz", &json);
    }
}

const IDENTITY_ACTIONS: &[&str] = &[
    "ec2:StartInstances",
    "ec2:Sta?tInstances",
    "ec2:StopInstances",
    "ec2:Stop*",
    "ec2:*",
    "ec2:*Instances",
    "s3:GetObject",
    "*",
];

/// Mostly single actions, as people ask for them.
const SESSION_ACTIONS: &[&str] = &[
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:stopinstances",
    "ec2:TerminateInstances",
    "s3:GetObject",
    "ec2:Stop*",
    "ec2:St?rt*",
    "ec2:*",
];

const INSTANCES: &str = "arn:aws:ec2:us-east-1:123456789012:instance/*";

const IDENTITY_RESOURCES: &[&str] = &[
    "*",
    INSTANCES,
    "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
    "arn:aws:ec2:us-east-1:123456789012:instance/${aws:username}",
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:s3:::logs/*",
];

const SESSION_RESOURCES: &[&str] = &[
    "*",
    INSTANCES,
    "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
    "arn:aws:ec2:us-east-1:123456789012:instance/bob",
    "arn:aws:s3:::logs/*",
];

/// One condition: an operator, a key and its values.
#[derive(Debug, Clone, PartialEq)]
struct Cond {
    op: &'static str,
    key: &'static str,
    values: Vec<&'static str>,
}

const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringEqualsIfExists",
    "ForAnyValue:StringEquals",
    "ForAllValues:StringNotEquals",
    "Null",
];

/// The values conditions compare a key with (`Null` takes true/false).
fn values_of(op: &str, key: &str) -> &'static [&'static str] {
    match (op, key) {
        ("Null", _) => &["true", "false"],
        (_, "ec2:ResourceTag/env") => &["prod", "dev", "test", "d*"],
        (_, "ec2:ResourceTag/owner") => &["${aws:username}", "bob", "alice"],
        _ => &["bob", "alice"],
    }
}

/// An identity condition.
fn condition() -> impl Strategy<Value = Cond> {
    let key = prop_oneof![
        3 => Just("ec2:ResourceTag/env"),
        2 => Just("ec2:ResourceTag/owner"),
        1 => Just("aws:username"),
    ];
    (select(OPERATORS), key)
        .prop_flat_map(|(op, key)| {
            let values = proptest::sample::subsequence(values_of(op, key), 1..=2);
            (Just(op), Just(key), values)
        })
        .prop_map(|(op, key, values)| Cond { op, key, values })
}

/// A small edit of a condition; values are picked by index among those of
/// the condition's operator and key.
#[derive(Debug, Clone)]
enum Edit {
    Keep,
    Operator(&'static str),
    DropValue,
    AddValue(usize),
    ReplaceValue(usize),
}

impl Edit {
    fn apply(&self, mut c: Cond) -> Cond {
        let all = values_of(c.op, c.key);
        let pick = |i: usize| all[i % all.len()];
        match self {
            Edit::Keep => {}
            // Null takes other values; swapping it in or out is a new condition.
            Edit::Operator(op) if c.op != "Null" && *op != "Null" => c.op = op,
            Edit::Operator(_) => {}
            Edit::DropValue if c.values.len() > 1 => {
                c.values.remove(0);
            }
            Edit::DropValue => {}
            Edit::AddValue(i) if !c.values.contains(&pick(*i)) => c.values.push(pick(*i)),
            Edit::AddValue(_) => {}
            Edit::ReplaceValue(i) => {
                c.values.retain(|v| *v != pick(*i));
                match c.values.first_mut() {
                    Some(first) => *first = pick(*i),
                    None => c.values.push(pick(*i)),
                }
            }
        }
        c
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => Just(Edit::Keep),
        1 => select(OPERATORS).prop_map(Edit::Operator),
        1 => Just(Edit::DropValue),
        1 => (0..4usize).prop_map(Edit::AddValue),
        1 => (0..4usize).prop_map(Edit::ReplaceValue),
    ]
}

/// A session condition: mostly one of the identity's `seen` conditions,
/// perhaps edited, so that proofs and near misses are common; with
/// `${aws:username}` written out, since session statements cannot use
/// variables.
fn session_condition(seen: Vec<Cond>) -> BoxedStrategy<Cond> {
    let resolve = |mut c: Cond| {
        for v in &mut c.values {
            if *v == "${aws:username}" {
                *v = "bob";
            }
        }
        c
    };
    if seen.is_empty() {
        return condition().prop_map(resolve).boxed();
    }
    let derived = (select(seen), edit()).prop_map(|(c, e)| e.apply(c));
    prop_oneof![1 => condition(), 3 => derived]
        .prop_map(resolve)
        .boxed()
}

/// One generated statement.
#[derive(Debug, Clone)]
struct St {
    effect: &'static str,
    not_action: bool,
    actions: Vec<&'static str>,
    not_resource: bool,
    resources: Vec<&'static str>,
    conditions: Vec<Cond>,
}

impl St {
    fn json(&self) -> Value {
        let mut st = Map::new();
        st.insert("Effect".into(), json!(self.effect));
        let action = if self.not_action {
            "NotAction"
        } else {
            "Action"
        };
        st.insert(action.into(), json!(self.actions));
        let resource = if self.not_resource {
            "NotResource"
        } else {
            "Resource"
        };
        st.insert(resource.into(), json!(self.resources));
        let mut conditions = Map::new();
        for c in &self.conditions {
            let block = conditions.entry(c.op).or_insert_with(|| json!({}));
            block[c.key] = json!(c.values);
        }
        if !conditions.is_empty() {
            st.insert("Condition".into(), Value::Object(conditions));
        }
        Value::Object(st)
    }
}

fn policy_of(id: &str, statements: &[St]) -> Policy {
    let statements: Vec<Value> = statements.iter().map(St::json).collect();
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    Policy::parse(id, &doc.to_string()).unwrap()
}

/// How a statement is drawn: its alphabets, how often it is a Deny (out of
/// 10), how often it uses NotAction/NotResource, and how many resources it
/// lists at most. Every pattern of a session statement must be proved, so
/// session statements are kept short for proofs to succeed often enough.
struct Draw {
    actions: &'static [&'static str],
    resources: &'static [&'static str],
    conditions: BoxedStrategy<Cond>,
    deny: u32,
    negated: f64,
    max_resources: usize,
}

fn statement(d: Draw) -> impl Strategy<Value = St> {
    (
        prop_oneof![10 - d.deny => Just("Allow"), d.deny => Just("Deny")],
        proptest::bool::weighted(d.negated),
        proptest::collection::vec(select(d.actions), 1..=2),
        proptest::bool::weighted(d.negated),
        proptest::collection::vec(select(d.resources), 1..=d.max_resources),
        proptest::collection::vec(d.conditions, 0..=2),
    )
        .prop_map(
            |(effect, not_action, actions, not_resource, resources, conditions)| St {
                effect,
                not_action,
                actions,
                not_resource,
                resources,
                conditions,
            },
        )
}

/// A request, as what varies in it.
#[derive(Debug, Clone)]
struct Req {
    action: &'static str,
    resource: &'static str,
    env: Option<&'static str>,
    owner: Option<&'static str>,
    /// Tagged both env and Env, say.
    env_ambiguous: bool,
    /// `aws:username` of the credentials' principal, if any.
    session_user: Option<&'static str>,
}

fn request() -> impl Strategy<Value = Req> {
    (
        prop_oneof![
            3 => Just("ec2:StopInstances"),
            2 => Just("ec2:StartInstances"),
            1 => Just("EC2:stopinstances"),
            1 => Just("ec2:TerminateInstances"),
            1 => Just("s3:GetObject"),
        ],
        prop_oneof![
            3 => Just("arn:aws:ec2:us-east-1:123456789012:instance/i-1"),
            2 => Just("arn:aws:ec2:us-east-1:123456789012:instance/bob"),
            1 => Just("arn:aws:ec2:us-east-1:123456789012:instance/i-2"),
            1 => Just("arn:aws:ec2:eu-west-1:123456789012:instance/i-1"),
            1 => Just("arn:aws:s3:::logs/a"),
            1 => Just("*"),
        ],
        proptest::option::weighted(
            0.8,
            select(&["prod", "dev", "dev-1", "test", "prod+dev"][..]),
        ),
        proptest::option::of(select(&["bob", "alice"][..])),
        proptest::bool::weighted(0.1),
        proptest::option::of(select(&["alice", "bob", "i-1"][..])),
    )
        .prop_map(
            |(action, resource, env, owner, env_ambiguous, session_user)| Req {
                action,
                resource,
                env,
                owner,
                env_ambiguous,
                session_user,
            },
        )
}

impl Req {
    fn with(&self, keys: &[(&str, &str)]) -> Request {
        let mut r = Request::new(self.action, self.resource);
        match self.env {
            Some("prod+dev") => r.context.insert("ec2:ResourceTag/env", vec!["prod", "dev"]),
            Some(env) => r.context.insert("ec2:ResourceTag/env", env),
            None => {}
        }
        if self.env_ambiguous {
            r.context.insert_ambiguous("ec2:ResourceTag/Env");
        }
        if let Some(owner) = self.owner {
            r.context.insert("ec2:ResourceTag/owner", owner);
        }
        for (k, v) in keys {
            r.context.insert(k, *v);
        }
        r
    }
}

/// The deploying user's own keys.
fn bob() -> Context {
    [("aws:username", "bob"), ("aws:userid", "AIDABOB")]
        .into_iter()
        .collect()
}

/// How often a run exercised the property, to keep the generator honest.
#[derive(Default)]
struct Tally {
    /// Proved, and the session allowed the request.
    exercised: usize,
    /// ... and an identity Allow with conditions took part.
    conditional: usize,
}

/// Checks one case; `Err` describes a request the session allows, proved
/// within the identity policies, that the identity policies do not allow.
/// Several requests share one proof, which costs more than an evaluation.
fn containment_case(
    identity: &[Vec<St>],
    session: &[St],
    requests: &[Req],
    tally: &mut Tally,
) -> Result<(), String> {
    let identity_policies: Vec<Policy> = identity
        .iter()
        .enumerate()
        .map(|(i, sts)| policy_of(&format!("id{i}"), sts))
        .collect();
    let session_policy = policy_of("session", session);
    if !uncovered(&session_policy, &identity_policies, &bob()).is_empty() {
        return Ok(());
    }
    for req in requests {
        request_case(identity, &identity_policies, &session_policy, req, tally)?;
    }
    Ok(())
}

/// One request of [`containment_case`], once the session is proved.
fn request_case(
    identity: &[Vec<St>],
    identity_policies: &[Policy],
    session_policy: &Policy,
    req: &Req,
    tally: &mut Tally,
) -> Result<(), String> {
    let session_keys: Vec<(&str, &str)> = req
        .session_user
        .map(|u| ("aws:username", u))
        .into_iter()
        .collect();
    let as_session = req.with(&session_keys);
    if evaluate(std::slice::from_ref(session_policy), &as_session).decision != Decision::Allowed {
        return Ok(());
    }
    let mut as_user = req.with(&[]);
    for (k, v) in bob().iter() {
        as_user.context.insert(k, v.clone());
    }
    let response = evaluate(identity_policies, &as_user);
    if response.decision != Decision::Allowed {
        return Err(format!(
            "{req:?}: identity says {:?}: {response:?}",
            response.decision
        ));
    }
    tally.exercised += 1;
    let conditional = response.matched_statements.iter().any(|m| {
        let policy: usize = m.policy_id.trim_start_matches("id").parse().unwrap();
        !identity[policy][m.index].conditions.is_empty()
    });
    tally.conditional += usize::from(conditional);
    Ok(())
}

/// Whatever a proved session policy allows, the identity policies allow.
#[test]
fn proved_session_policies_stay_within_identity() {
    const CASES: u32 = 2000;
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        // Generating the cases takes most of the time; ChaCha, the default,
        // is slow without optimizations.
        rng_algorithm: RngAlgorithm::XorShift,
        ..Config::default()
    };
    let identity_statement = statement(Draw {
        actions: IDENTITY_ACTIONS,
        resources: IDENTITY_RESOURCES,
        conditions: condition().boxed(),
        deny: 2,
        negated: 0.15,
        max_resources: 2,
    });
    let identity =
        proptest::collection::vec(proptest::collection::vec(identity_statement, 1..=3), 1..=2);
    let cases = identity.prop_flat_map(|identity| {
        let seen: Vec<Cond> = identity
            .iter()
            .flatten()
            .flat_map(|s| s.conditions.clone())
            .collect();
        let session_statement = statement(Draw {
            actions: SESSION_ACTIONS,
            resources: SESSION_RESOURCES,
            conditions: session_condition(seen),
            deny: 1,
            negated: 0.03,
            max_resources: 1,
        });
        let session = proptest::collection::vec(session_statement, 1..=2);
        (
            Just(identity),
            session,
            proptest::collection::vec(request(), 8),
        )
    });
    let tally = std::cell::RefCell::new(Tally::default());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&cases, |(identity, session, requests)| {
        containment_case(&identity, &session, &requests, &mut tally.borrow_mut())
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Shrinking can run more cases than CASES; the shares are rough.
    let tally = tally.into_inner();
    assert!(
        tally.exercised >= CASES as usize / 20,
        "exercised {}",
        tally.exercised
    );
    assert!(
        tally.conditional >= CASES as usize / 100,
        "conditional {}",
        tally.conditional
    );
}
