//! Containment: whether the Allow statements of a session policy are
//! provably within a user's identity policies.
//!
//! A user asking the console for instance credentials may put statements of
//! their own in the credentials' session policy. The credentials must never
//! do what the user could not do themselves, so every Allow statement of the
//! session policy must be *proved* covered: for every request it allows, the
//! user's identity policies allow that request too. [`uncovered`] lists what
//! it cannot prove.
//!
//! The proof works on patterns, never on requests, and is deliberately
//! simple; whenever it cannot tell, it reports the statement as uncovered:
//! - no identity Deny may overlap the statement's action and resource,
//!   whatever the Deny's conditions;
//! - some identity Allow must include the action and the resource (glob
//!   inclusion), and each of its conditions must either hold for the user
//!   whatever the request (a condition on one of the user's own keys, given
//!   in `variables`) or be *carried* by the session statement: same
//!   operator, key and values (for positive string and ARN matching, values
//!   each within one of the Allow's).
//!
//! "The same request" needs care: AWS evaluates the session policy for the
//! credentials' principal, the identity policies are evaluated for the user.
//! Both see the same request and resource keys, but not the same principal
//! keys (`aws:username`, `aws:PrincipalTag/...`, `aws:SourceIp`, ...). So a
//! condition is carried only on a key that describes the request or the
//! resource ([`carried_key`]), and the user's own keys are read from
//! `variables`, which must hold exactly the keys whose values the user's
//! evaluation has whatever the request (`aws:username`, `aws:userid`, ...).

use crate::arn::ArnPattern;
use crate::condition::{Condition, Test, Values};
use crate::context::{Context, ContextValue};
use crate::eval::StatementRef;
use crate::pattern::{Part, Template, Variable};
use crate::policy::{Effect, Policy, Statement};

/// One action and resource of a session Allow statement that is not
/// provably allowed by the identity policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    /// The session statement.
    pub statement: StatementRef,
    /// The statement's action pattern, as written. For
    /// [`UncoveredReason::NotProvable`], which concerns the whole statement,
    /// the whole element (e.g. `ec2:StartInstances, ec2:StopInstances`, or
    /// `NotAction ec2:TerminateInstances`).
    pub action: String,
    /// The statement's resource pattern, as written (the whole element for
    /// [`UncoveredReason::NotProvable`]).
    pub resource: String,
    /// Why it is not provably allowed.
    pub reason: UncoveredReason,
}

/// Why an action and resource of a session statement are not provably
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UncoveredReason {
    /// This identity Deny statement may apply to some request the session
    /// statement allows (its conditions are not considered).
    DeniedBy(StatementRef),
    /// No identity Allow statement covers it, unconditionally or with
    /// conditions the session statement carries.
    NotAllowed,
    /// The session statement is beyond what can be proved (NotAction,
    /// NotResource, policy variables), in words.
    NotProvable(String),
}

/// Every action and resource of every Allow statement of `session` that is
/// not provably allowed by `identity` (all the user's policies); empty when
/// whatever `session` allows, `identity` allows too. Deny statements of
/// `session` only narrow it, so they are never reported.
///
/// `variables` holds the user's own keys (`aws:username`, `aws:userid`,
/// ...): they resolve `${...}` in the identity policies and decide the
/// identity conditions on those keys. An identity variable whose key is not
/// in `variables` is unknown: a Deny using it is taken to overlap, and an
/// Allow using it does not cover.
pub fn uncovered(session: &Policy, identity: &[Policy], variables: &Context) -> Vec<Uncovered> {
    let known = compile_identity(identity, variables);
    let mut out = Vec::new();
    for (index, st) in session.statements.iter().enumerate() {
        if st.effect == Effect::Deny {
            continue;
        }
        let statement = StatementRef {
            policy_id: session.id().to_string(),
            index,
            sid: st.sid.clone(),
        };
        out.extend(statement_uncovered(statement, st, &known, variables));
    }
    out
}

/// What of one session Allow statement is not provably covered.
fn statement_uncovered(
    statement: StatementRef,
    st: &Statement,
    known: &[Known<'_>],
    variables: &Context,
) -> Vec<Uncovered> {
    let (actions, resources) = match session_patterns(st) {
        Ok(p) => p,
        Err(why) => {
            return vec![Uncovered {
                statement,
                action: element_text(&st.action_texts, st.not_action, "NotAction"),
                resource: element_text(&st.resource_texts, st.not_resource, "NotResource"),
                reason: UncoveredReason::NotProvable(why),
            }]
        }
    };
    let mut out = Vec::new();
    for (a, action) in actions.iter().zip(&st.action_texts) {
        for (r, resource) in resources.iter().zip(&st.resource_texts) {
            if let Some(reason) = pair_reason(a, r, &st.conditions, known, variables) {
                out.push(Uncovered {
                    statement: statement.clone(),
                    action: action.clone(),
                    resource: resource.clone(),
                    reason,
                });
            }
        }
    }
    out
}

/// Why one action and resource pattern of a session statement (with its
/// `conditions`) is not covered, or `None` when it is.
fn pair_reason(
    a: &Glob,
    r: &ArnGlob,
    conditions: &[Condition],
    known: &[Known<'_>],
    variables: &Context,
) -> Option<UncoveredReason> {
    let deny = known
        .iter()
        .find(|d| d.st.effect == Effect::Deny && d.may_apply(a, r));
    if let Some(d) = deny {
        return Some(UncoveredReason::DeniedBy(d.sref.clone()));
    }
    let covered = known
        .iter()
        .any(|p| p.st.effect == Effect::Allow && p.covers(a, r, conditions, variables));
    (!covered).then_some(UncoveredReason::NotAllowed)
}

/// `a, b` or `NotAction a, b`: an element as written, for messages.
fn element_text(texts: &[String], negated: bool, not_name: &str) -> String {
    let list = texts.join(", ");
    if negated {
        format!("{not_name} {list}")
    } else {
        list
    }
}

/// The action and resource patterns of a session Allow statement, or why it
/// cannot be proved.
fn session_patterns(st: &Statement) -> Result<(Vec<Glob>, Vec<ArnGlob>), String> {
    if st.not_action {
        return Err("it uses NotAction, which allows every action but those listed".to_string());
    }
    if st.not_resource {
        return Err(
            "it uses NotResource, which allows every resource but those listed".to_string(),
        );
    }
    let resources = st.resources.iter().flat_map(ArnPattern::templates);
    let conditions = st.conditions.iter().flat_map(Condition::templates);
    let mut vars = st.actions.iter().chain(resources).chain(conditions);
    if let Some(v) = vars.find_map(|t| t.vars.first()) {
        return Err(format!(
            "it uses the policy variable ${{{}}}, which would take the credentials' \
             value rather than yours",
            v.key
        ));
    }
    // Without variables, compiling cannot fail; `None` only stands for the
    // impossible case, reported rather than unwrapped.
    let none = Context::new();
    let actions = st.actions.iter().map(|t| glob(t, &none, false)).collect();
    let resources = st.resources.iter().map(|r| arn_glob(r, &none)).collect();
    match (actions, resources) {
        (Some(a), Some(r)) => Ok((a, r)),
        _ => Err("it has a pattern that cannot be compiled".to_string()),
    }
}

/// An identity statement, its patterns compiled with the user's variables.
struct Known<'a> {
    sref: StatementRef,
    st: &'a Statement,
    /// `None` for a pattern with a variable `variables` does not resolve.
    actions: Vec<Option<Glob>>,
    resources: Vec<Option<ArnGlob>>,
}

fn compile_identity<'a>(identity: &'a [Policy], variables: &Context) -> Vec<Known<'a>> {
    let mut out = Vec::new();
    for policy in identity {
        for (index, st) in policy.statements.iter().enumerate() {
            out.push(Known {
                sref: StatementRef {
                    policy_id: policy.id().to_string(),
                    index,
                    sid: st.sid.clone(),
                },
                st,
                actions: st
                    .actions
                    .iter()
                    .map(|t| glob(t, variables, false))
                    .collect(),
                resources: st
                    .resources
                    .iter()
                    .map(|r| arn_glob(r, variables))
                    .collect(),
            });
        }
    }
    out
}

impl Known<'_> {
    /// Whether the statement may apply to some request with an action
    /// matched by `a` and a resource matched by `r`, ignoring conditions.
    fn may_apply(&self, a: &Glob, r: &ArnGlob) -> bool {
        may_match_some(&self.actions, self.st.not_action, a)
            && may_match_some(&self.resources, self.st.not_resource, r)
    }

    /// Whether the statement applies to every request matched by `a` and
    /// `r` that satisfies `session_conditions`.
    fn covers(
        &self,
        a: &Glob,
        r: &ArnGlob,
        session_conditions: &[Condition],
        variables: &Context,
    ) -> bool {
        matches_all(&self.actions, self.st.not_action, a)
            && matches_all(&self.resources, self.st.not_resource, r)
            && self
                .st
                .conditions
                .iter()
                .all(|c| condition_proved(c, session_conditions, variables))
    }
}

/// Whether an Action/Resource element (its patterns, and whether it is the
/// negated form) may match something `x` matches. An unknown pattern may
/// match anything, and cannot prove an exclusion.
fn may_match_some<T: Set>(patterns: &[Option<T>], negated: bool, x: &T) -> bool {
    if negated {
        !patterns.iter().flatten().any(|p| p.includes(x))
    } else {
        patterns
            .iter()
            .any(|p| p.as_ref().is_none_or(|p| p.overlaps(x)))
    }
}

/// Whether an Action/Resource element provably matches everything `x`
/// matches. An unknown pattern proves nothing.
fn matches_all<T: Set>(patterns: &[Option<T>], negated: bool, x: &T) -> bool {
    if negated {
        patterns
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| !p.overlaps(x)))
    } else {
        patterns.iter().flatten().any(|p| p.includes(x))
    }
}

/// Whether the identity condition `c` holds for every request that
/// satisfies the session statement's `session` conditions.
fn condition_proved(c: &Condition, session: &[Condition], variables: &Context) -> bool {
    if !c
        .templates()
        .flat_map(|t| &t.vars)
        .all(|v| known(v, variables).is_some())
    {
        return false;
    }
    if variables.get_lowercased(&c.key).is_some() || variables.is_ambiguous_lowercased(&c.key) {
        // One of the user's own keys: its value for the user's evaluation is
        // known now, whatever the request.
        return c.evaluate(variables) == Ok(true);
    }
    carried_key(&c.key) && session.iter().any(|s| carries(s, c, variables))
}

/// Whether a condition key has the same value when AWS evaluates the session
/// policy (for the credentials' principal) as when the user's policies are
/// evaluated for the same request: keys about the request and the resource,
/// not about who asks. Global (`aws:`) keys are listed one by one; service
/// keys qualify except those about the caller and the namespaces of
/// identity services and of the console itself (which AWS never sets).
fn carried_key(key: &str) -> bool {
    const GLOBAL: &[&str] = &[
        "aws:requestedregion",
        "aws:tagkeys",
        "aws:currenttime",
        "aws:epochtime",
        "aws:resourceaccount",
        "aws:resourceorgid",
        "aws:resourceorgpaths",
    ];
    const GLOBAL_PREFIXES: &[&str] = &["aws:requesttag/", "aws:resourcetag/"];
    const CALLER: &[&str] = &["ec2:sourceinstancearn", "ec2:roledelivery"];
    const CALLER_NAMESPACES: &[&str] = &["airlock:", "iam:", "sts:"];
    if key.starts_with("aws:") {
        return GLOBAL.contains(&key) || GLOBAL_PREFIXES.iter().any(|p| key.starts_with(p));
    }
    !CALLER.contains(&key) && !CALLER_NAMESPACES.iter().any(|p| key.starts_with(p))
}

/// Whether the session condition `s` implies the identity condition `p`:
/// same operator and key, and the same values, or for positive string and
/// ARN matching, values each within one of `p`'s (fewer or narrower values
/// can only match less).
fn carries(s: &Condition, p: &Condition, variables: &Context) -> bool {
    if s.key != p.key || s.op != p.op {
        return false;
    }
    let narrower_ok = !p.op.negated
        && matches!(
            p.op.test,
            Test::StrEquals | Test::StrEqualsIgnoreCase | Test::StrLike | Test::Arn
        );
    let none = Context::new();
    match (&s.values, &p.values) {
        (Values::Str(sv), Values::Str(pv)) => {
            // Case-insensitive operators compare lowercased text, and so
            // lowercase what a variable substitutes.
            let lower = p.op.test == Test::StrEqualsIgnoreCase;
            let sv = sv.iter().map(|t| glob(t, &none, lower)).collect();
            let pv = pv.iter().map(|t| glob(t, variables, lower)).collect();
            values_carried(sv, pv, narrower_ok)
        }
        (Values::Arn(sv), Values::Arn(pv)) => {
            let sv = sv.iter().map(|a| arn_glob(a, &none)).collect();
            let pv = pv.iter().map(|a| arn_glob(a, variables)).collect();
            values_carried(sv, pv, narrower_ok)
        }
        (Values::Num(a), Values::Num(b)) => same_set(a, b),
        (Values::Date(a), Values::Date(b)) => same_set(a, b),
        (Values::Bool(a), Values::Bool(b)) => same_set(a, b),
        (Values::Binary(a), Values::Binary(b)) => same_set(a, b),
        (Values::Ip(a), Values::Ip(b)) => same_set(a, b),
        (Values::Null(a), Values::Null(b)) => same_set(a, b),
        _ => false,
    }
}

/// Compares compiled session (`s`) and identity (`p`) values; `None` when
/// one could not be compiled.
fn values_carried<T: Set + PartialEq>(
    s: Option<Vec<T>>,
    p: Option<Vec<T>>,
    narrower_ok: bool,
) -> bool {
    let (Some(s), Some(p)) = (s, p) else {
        return false;
    };
    if narrower_ok {
        s.iter().all(|x| p.iter().any(|y| y.includes(x)))
    } else {
        same_set(&s, &p)
    }
}

fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// One token of a compiled pattern: a character that must appear as is, or
/// a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Char(char),
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    Any,
}

/// A pattern with its variables substituted, as tokens. Substituted text is
/// literal (a `*` in a user name is not a wildcard), as in evaluation.
pub(crate) type Glob = Vec<Tok>;

/// A Resource pattern with its variables substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ArnGlob {
    /// `*`: every resource, ARN or not.
    Any,
    /// Six segment patterns.
    Segments(Vec<Glob>),
}

/// The value a variable has in the user's evaluation, known from
/// `variables` alone; `None` when the key is not there (the request might
/// set it) or is ambiguous.
fn known<'a>(var: &'a Variable, variables: &'a Context) -> Option<&'a str> {
    match variables.get_lowercased(&var.key)? {
        ContextValue::Single(s) => Some(s),
        // Evaluation substitutes the default for a multi-valued key.
        ContextValue::Multi(_) => var.default.as_deref(),
    }
}

/// Compiles `t` with its variables substituted from `variables`
/// (lowercased for case-insensitive operators); `None` when one is unknown.
pub(crate) fn glob(t: &Template, variables: &Context, lowercase: bool) -> Option<Glob> {
    let mut out = Vec::new();
    for part in &t.parts {
        match part {
            Part::Lit(s) => out.extend(s.chars().map(Tok::Char)),
            // A variable substituted by nothing can bring two stars together.
            Part::Star if out.last() == Some(&Tok::Star) => {}
            Part::Star => out.push(Tok::Star),
            Part::Any => out.push(Tok::Any),
            Part::Var(i) => {
                let value = known(t.vars.get(*i)?, variables)?;
                if lowercase {
                    out.extend(value.to_lowercase().chars().map(Tok::Char));
                } else {
                    out.extend(value.chars().map(Tok::Char));
                }
            }
        }
    }
    Some(out)
}

fn arn_glob(p: &ArnPattern, variables: &Context) -> Option<ArnGlob> {
    match p {
        ArnPattern::Any => Some(ArnGlob::Any),
        ArnPattern::Segments(segs) => segs
            .iter()
            .map(|t| glob(t, variables, false))
            .collect::<Option<_>>()
            .map(ArnGlob::Segments),
    }
}

/// Sets of strings described by patterns, compared without enumerating them.
trait Set {
    /// Whether some string is in both (may say yes when unsure).
    fn overlaps(&self, other: &Self) -> bool;
    /// Whether every string in `inner` is in `self` (may say no when unsure).
    fn includes(&self, inner: &Self) -> bool;
}

impl Set for Glob {
    fn overlaps(&self, other: &Self) -> bool {
        globs_overlap(self, other)
    }
    fn includes(&self, inner: &Self) -> bool {
        glob_includes(self, inner)
    }
}

impl Set for ArnGlob {
    /// Segment by segment, as ARNs are matched: two ARN patterns can match
    /// a common ARN only if every pair of segments can match a common text.
    fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (ArnGlob::Segments(a), ArnGlob::Segments(b)) => {
                a.iter().zip(b).all(|(x, y)| globs_overlap(x, y))
            }
            // `*` overlaps everything, and every ARN pattern matches some ARN.
            _ => true,
        }
    }
    /// `*` includes everything; an ARN pattern never includes `*`, which
    /// also matches resources that are not ARNs.
    fn includes(&self, inner: &Self) -> bool {
        match (self, inner) {
            (ArnGlob::Any, _) => true,
            (ArnGlob::Segments(_), ArnGlob::Any) => false,
            (ArnGlob::Segments(o), ArnGlob::Segments(i)) => {
                o.iter().zip(i).all(|(x, y)| glob_includes(x, y))
            }
        }
    }
}

/// Whether some string is matched by both `a` and `b`: a walk through both
/// patterns at once where each character of the common string comes from a
/// token of each (a star may also stand for nothing).
pub(crate) fn globs_overlap(a: &[Tok], b: &[Tok]) -> bool {
    let single = |t: Option<&Tok>| matches!(t, Some(Tok::Char(_) | Tok::Any));
    reachable(a.len(), b.len(), |i, j, next| {
        let (x, y) = (a.get(i), b.get(j));
        if x == Some(&Tok::Star) {
            next.push((i + 1, j));
            if single(y) {
                next.push((i, j + 1));
            }
        }
        if y == Some(&Tok::Star) {
            next.push((i, j + 1));
            if single(x) {
                next.push((i + 1, j));
            }
        }
        let same_char = match (x, y) {
            (Some(Tok::Char(c)), Some(Tok::Char(d))) => c == d,
            _ => single(x) && single(y),
        };
        if same_char {
            next.push((i + 1, j + 1));
        }
    })
}

/// Whether every string matched by `inner` is matched by `outer`, by
/// mapping each token of `inner` onto `outer`: a star of `outer` absorbs any
/// run of tokens (stars included), a `?` absorbs one character or `?`, a
/// character only itself. Sound, and exact for the usual patterns; when
/// unsure (e.g. `?*` against `*?`) it says no.
pub(crate) fn glob_includes(outer: &[Tok], inner: &[Tok]) -> bool {
    reachable(outer.len(), inner.len(), |i, j, next| {
        match (outer.get(i), inner.get(j)) {
            (Some(Tok::Star), y) => {
                next.push((i + 1, j));
                if y.is_some() {
                    next.push((i, j + 1));
                }
            }
            (Some(Tok::Any), Some(Tok::Char(_) | Tok::Any)) => next.push((i + 1, j + 1)),
            (Some(Tok::Char(c)), Some(Tok::Char(d))) if c == d => next.push((i + 1, j + 1)),
            _ => {}
        }
    })
}

/// Whether `(n, m)` can be reached from `(0, 0)`, where `step` pushes the
/// successors of a pair of positions (each at most `n` and `m`). Each pair
/// is visited once, so the cost is at most `(n + 1) * (m + 1)` steps.
fn reachable(n: usize, m: usize, step: impl Fn(usize, usize, &mut Vec<(usize, usize)>)) -> bool {
    let mut seen = vec![false; (n + 1) * (m + 1)];
    let mut stack = vec![(0, 0)];
    while let Some((i, j)) = stack.pop() {
        if (i, j) == (n, m) {
            return true;
        }
        match seen.get_mut(i * (m + 1) + j) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        step(i, j, &mut stack);
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pattern::Syntax;

    /// An action pattern as the parser compiles it.
    fn action(text: &str) -> Glob {
        let syntax = Syntax {
            wildcards: true,
            variables: false,
            lowercase: true,
        };
        glob(
            &Template::parse(text, syntax).unwrap(),
            &Context::new(),
            false,
        )
        .unwrap()
    }

    fn arn(text: &str) -> ArnGlob {
        arn_glob(&ArnPattern::parse(text, true).unwrap(), &Context::new()).unwrap()
    }

    #[test]
    fn action_inclusion() {
        assert!(action("ec2:*").includes(&action("ec2:Stop*")));
        assert!(!action("ec2:Stop*").includes(&action("ec2:*")));
        assert!(action("*").includes(&action("ec2:*Instances")));
        assert!(action("EC2:Get*").includes(&action("ec2:getobject")));
        assert!(action("ec2:Stop?nstances").includes(&action("ec2:StopInstances")));
        assert!(action("ec2:Stop?nstances").includes(&action("ec2:Stop?nstances")));
        assert!(!action("ec2:StopInstances").includes(&action("ec2:Stop?nstances")));
        assert!(!action("ec2:Stop?*").includes(&action("ec2:Stop*")));
        assert!(action("ec2:*Instances").includes(&action("ec2:Start*Instances")));
        assert!(!action("ec2:*Instances").includes(&action("ec2:Start*")));
        assert!(action("s3:*").includes(&action("s3:*")));
    }

    #[test]
    fn action_overlap() {
        assert!(action("ec2:Terminate*").overlaps(&action("ec2:*Instances")));
        assert!(!action("s3:*").overlaps(&action("ec2:*")));
        assert!(action("ec2:Stop?").overlaps(&action("ec2:*s")));
        assert!(!action("ec2:Stop?").overlaps(&action("ec2:Stop")));
        assert!(action("*").overlaps(&action("ec2:StopInstances")));
        assert!(!action("ec2:StopInstances").overlaps(&action("ec2:StartInstances")));
        assert!(action("ec2:*a*").overlaps(&action("ec2:*b*")));
    }

    #[test]
    fn literal_stars_are_not_wildcards() {
        let syntax = Syntax {
            wildcards: true,
            variables: true,
            lowercase: false,
        };
        let t = |s: &str| glob(&Template::parse(s, syntax).unwrap(), &Context::new(), false);
        let (lit, star) = (t("a${*}").unwrap(), t("a*").unwrap());
        assert!(star.includes(&lit));
        assert!(!lit.includes(&star));
        assert!(!lit.overlaps(&t("ab").unwrap()));
    }

    #[test]
    fn arn_segments() {
        let any_instance = arn("arn:aws:ec2:*:*:instance/*");
        assert!(any_instance.includes(&arn("arn:aws:ec2:us-east-1:1:instance/i-1")));
        assert!(!any_instance.includes(&arn("arn:aws:ec2:us-east-1:1:volume/*")));
        assert!(!any_instance.overlaps(&arn("arn:aws:ec2:us-east-1:1:volume/*")));
        assert!(any_instance.overlaps(&arn("arn:aws:ec2:us-east-1:*:*")));
        assert!(ArnGlob::Any.includes(&any_instance));
        assert!(!any_instance.includes(&ArnGlob::Any));
        assert!(any_instance.overlaps(&ArnGlob::Any));
        // A star stays in its segment.
        assert!(!arn("arn:aws:s3:::*").overlaps(&arn("arn:aws:ec2:::*")));
    }

    fn policy(id: &str, statements: &str) -> Policy {
        let json = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
        Policy::parse(id, &json).unwrap()
    }

    fn bob() -> Context {
        let mut v = Context::new();
        v.insert("aws:username", "bob");
        v.insert("aws:userid", "AIDAEXAMPLE");
        v
    }

    fn reasons(session: &str, identity: &[Policy]) -> Vec<UncoveredReason> {
        uncovered(&policy("session", session), identity, &bob())
            .into_iter()
            .map(|u| u.reason)
            .collect()
    }

    fn sref(policy_id: &str, index: usize) -> StatementRef {
        StatementRef {
            policy_id: policy_id.to_string(),
            index,
            sid: None,
        }
    }

    #[test]
    fn conditional_deny_still_denies() {
        let identity = [policy(
            "admin",
            r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*"},
               {"Effect":"Deny","Action":"ec2:TerminateInstances","Resource":"*",
                "Condition":{"StringEquals":{"ec2:ResourceTag/env":"prod"}}}"#,
        )];
        let r = reasons(
            r#"{"Effect":"Allow","Action":"ec2:TerminateInstances","Resource":"*"}"#,
            &identity,
        );
        assert_eq!(r, [UncoveredReason::DeniedBy(sref("admin", 1))]);
        // Even a session statement that asks for env=dev: a resource can
        // carry several values for a key.
        let r = reasons(
            r#"{"Effect":"Allow","Action":"ec2:TerminateInstances","Resource":"*",
                "Condition":{"StringEquals":{"ec2:ResourceTag/env":"dev"}}}"#,
            &identity,
        );
        assert_eq!(r, [UncoveredReason::DeniedBy(sref("admin", 1))]);
        assert!(reasons(
            r#"{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*"}"#,
            &identity
        )
        .is_empty());
    }

    #[test]
    fn owner_condition_must_be_carried() {
        let identity = [policy(
            "own",
            r#"{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*",
                "Condition":{"StringEquals":{"ec2:ResourceTag/owner":"${aws:username}"}}}"#,
        )];
        let carried = r#"{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*",
            "Condition":{"StringEquals":{"EC2:ResourceTag/Owner":"bob"}}}"#;
        assert!(reasons(carried, &identity).is_empty());
        let bare = r#"{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*"}"#;
        assert_eq!(reasons(bare, &identity), [UncoveredReason::NotAllowed]);
        for other in [
            carried.replace("bob", "alice"),
            carried.replace("\"bob\"", "[\"bob\",\"alice\"]"),
            carried.replace("StringEquals", "StringEqualsIfExists"),
            carried
                .replace("StringEquals", "StringLike")
                .replace("bob", "b*"),
        ] {
            assert_eq!(
                reasons(&other, &identity),
                [UncoveredReason::NotAllowed],
                "{other}"
            );
        }
        // Without aws:username, the Allow's value is unknown.
        let u = uncovered(&policy("s", carried), &identity, &Context::new());
        assert_eq!(u[0].reason, UncoveredReason::NotAllowed);
    }

    #[test]
    fn wildcard_deny_denies() {
        let identity = [policy(
            "p",
            r#"{"Effect":"Allow","Action":"*","Resource":"*"},
               {"Sid":"NoTerminate","Effect":"Deny","Action":"ec2:Terminate*","Resource":"*"}"#,
        )];
        let u = uncovered(
            &policy(
                "s",
                r#"{"Effect":"Allow","Action":["ec2:StopInstances","ec2:TerminateInstances"],
                    "Resource":"arn:aws:ec2:us-east-1:1:instance/*"}"#,
            ),
            &identity,
            &bob(),
        );
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].action, "ec2:TerminateInstances");
        assert_eq!(u[0].resource, "arn:aws:ec2:us-east-1:1:instance/*");
        let UncoveredReason::DeniedBy(d) = &u[0].reason else {
            panic!("{u:?}")
        };
        assert_eq!(d.to_string(), "p#1 (NoTerminate)");
    }

    #[test]
    fn resource_inclusion() {
        let identity = |resource: &str| {
            [policy(
                "p",
                &format!(r#"{{"Effect":"Allow","Action":"s3:Get*","Resource":"{resource}"}}"#),
            )]
        };
        let session =
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::logs/*"}"#;
        assert!(reasons(session, &identity("arn:aws:s3:::logs/*")).is_empty());
        assert_eq!(
            reasons(session, &identity("arn:aws:s3:::other/*")),
            [UncoveredReason::NotAllowed]
        );
        assert_eq!(
            reasons(
                &session.replace("arn:aws:s3:::logs/*", "*"),
                &identity("arn:aws:s3:::*")
            ),
            [UncoveredReason::NotAllowed]
        );
    }

    #[test]
    fn not_action_in_identity() {
        // PowerUser-style: everything but IAM.
        let identity = [policy(
            "power",
            r#"{"Effect":"Allow","NotAction":["iam:*","organizations:*"],"Resource":"*"},
               {"Effect":"Deny","NotAction":["ec2:Describe*","ec2:Start*","ec2:Stop*","s3:*"],"Resource":"*"}"#,
        )];
        let ok =
            r#"{"Effect":"Allow","Action":["ec2:StopInstances","s3:GetObject"],"Resource":"*"}"#;
        assert!(reasons(ok, &identity).is_empty());
        let r = reasons(
            r#"{"Effect":"Allow","Action":"ec2:TerminateInstances","Resource":"*"}"#,
            &identity,
        );
        assert_eq!(r, [UncoveredReason::DeniedBy(sref("power", 1))]);
        let r = reasons(
            r#"{"Effect":"Allow","Action":"iam:PassRole","Resource":"*"}"#,
            &identity,
        );
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn session_statements_that_cannot_be_proved() {
        let identity = [policy(
            "all",
            r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#,
        )];
        for (session, needle) in [
            (
                r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#,
                "NotAction",
            ),
            (
                r#"{"Effect":"Allow","Action":"ec2:*","NotResource":"arn:aws:ec2:*:*:instance/i-1"}"#,
                "NotResource",
            ),
            (
                r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::home/${aws:username}/*"}"#,
                "${aws:username}",
            ),
            (
                r#"{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*",
                    "Condition":{"StringEquals":{"ec2:ResourceTag/owner":"${aws:username}"}}}"#,
                "${aws:username}",
            ),
        ] {
            let u = uncovered(&policy("s", session), &identity, &bob());
            assert_eq!(u.len(), 1, "{session}");
            let UncoveredReason::NotProvable(why) = &u[0].reason else {
                panic!("{u:?}")
            };
            assert!(why.contains(needle), "{why}");
        }
        let u = uncovered(
            &policy(
                "s",
                r#"{"Effect":"Allow","NotAction":["iam:*","sts:*"],"Resource":"*"}"#,
            ),
            &identity,
            &bob(),
        );
        assert_eq!(u[0].action, "NotAction iam:*, sts:*");
    }

    #[test]
    fn session_denies_are_fine() {
        assert!(reasons(r#"{"Effect":"Deny","Action":"*","Resource":"*"}"#, &[]).is_empty());
        assert_eq!(
            reasons(
                r#"{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*"}"#,
                &[]
            ),
            [UncoveredReason::NotAllowed]
        );
    }

    #[test]
    fn narrower_values_are_carried() {
        let identity = [policy(
            "p",
            r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*",
                "Condition":{"StringLike":{"ec2:ResourceTag/env":["dev*","test"]},
                             "StringNotEquals":{"ec2:InstanceType":["p4d.24xlarge","p5.48xlarge"]}}}"#,
        )];
        let session = |like: &str, not: &str| {
            format!(
                r#"{{"Effect":"Allow","Action":"ec2:RunInstances","Resource":"*",
                    "Condition":{{"StringLike":{{"ec2:ResourceTag/env":{like}}},
                                 "StringNotEquals":{{"ec2:InstanceType":{not}}},
                                 "StringEquals":{{"aws:RequestedRegion":"eu-west-1"}}}}}}"#
            )
        };
        let same = r#"["p5.48xlarge","p4d.24xlarge"]"#;
        assert!(reasons(&session(r#"["dev-1*","test"]"#, same), &identity).is_empty());
        assert!(reasons(&session(r#""dev""#, same), &identity).is_empty());
        assert!(!reasons(&session(r#""de*""#, same), &identity).is_empty());
        // A negated operator needs the same values.
        assert!(!reasons(&session(r#""dev""#, r#""p5.48xlarge""#), &identity).is_empty());
    }

    #[test]
    fn other_values_must_be_the_same_set() {
        let identity = [policy(
            "p",
            r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*",
                "Condition":{"Null":{"ec2:ResourceTag/env":"false"},
                             "NumericLessThanEquals":{"ec2:VolumeSize":["100","200"]}}}"#,
        )];
        let session = |null: &str, size: &str| {
            format!(
                r#"{{"Effect":"Allow","Action":"ec2:CreateVolume","Resource":"*",
                    "Condition":{{"Null":{{"ec2:ResourceTag/env":{null}}},
                                 "NumericLessThanEquals":{{"ec2:VolumeSize":{size}}}}}}}"#
            )
        };
        assert!(reasons(&session(r#""false""#, r#"["200","100.0"]"#), &identity).is_empty());
        for (null, size) in [
            (r#""true""#, r#"["100","200"]"#),
            (r#"["true","false"]"#, r#"["100","200"]"#),
            (r#""false""#, r#""100""#),
        ] {
            assert_eq!(
                reasons(&session(null, size), &identity),
                [UncoveredReason::NotAllowed],
                "{null} {size}"
            );
        }
    }

    #[test]
    fn user_keys_are_decided_not_carried() {
        let identity = |username: &str| {
            [policy(
                "p",
                &format!(
                    r#"{{"Effect":"Allow","Action":"ec2:*","Resource":"*",
                        "Condition":{{"StringEquals":{{"aws:username":"{username}"}}}}}}"#
                ),
            )]
        };
        let session = r#"{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*",
            "Condition":{"StringEquals":{"aws:username":"alice"}}}"#;
        assert!(reasons(session, &identity("bob")).is_empty());
        assert_eq!(
            reasons(session, &identity("alice")),
            [UncoveredReason::NotAllowed]
        );
    }

    #[test]
    fn caller_keys_are_not_carried() {
        let identity = [policy(
            "p",
            r#"{"Effect":"Allow","Action":"ec2:*","Resource":"*",
                "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#,
        )];
        let session = r#"{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#;
        assert_eq!(reasons(session, &identity), [UncoveredReason::NotAllowed]);
        assert!(carried_key("aws:resourcetag/owner"));
        assert!(carried_key("ec2:instancetype"));
        assert!(!carried_key("aws:principaltag/team"));
        assert!(!carried_key("airlock:account"));
    }

    #[test]
    fn identity_variables() {
        let identity = [policy(
            "p",
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"},
               {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::home/${aws:PrincipalTag/team}/*"}"#,
        )];
        let get =
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::home/bob/*"}"#;
        assert!(reasons(get, &identity).is_empty());
        assert_eq!(
            reasons(&get.replace("bob", "alice"), &identity),
            [UncoveredReason::NotAllowed]
        );
        // The team is unknown: the Deny may apply.
        assert_eq!(
            reasons(&get.replace("GetObject", "DeleteObject"), &identity),
            [UncoveredReason::DeniedBy(sref("p", 1))]
        );
    }
}
