//! The Condition element: operators, their typed values, and how one
//! condition (one operator, one key, its values) is evaluated against the
//! request context.
//!
//! Policy values are parsed once (numbers, dates, CIDRs, base64, ARN and
//! string patterns) so that evaluation only has to read the request side.
//!
//! Choices where AWS leaves room (also in docs/policy.md):
//! - a single-valued operator applied to a multi-valued context key is true
//!   for a positive operator when any context value matches, and for a
//!   negated operator only when no context value matches;
//! - a multi-valued key given as an empty list counts as absent;
//! - a context value of the wrong type (e.g. `abc` for NumericEquals) is an
//!   evaluation error; the statement then fails closed (see `eval`);
//! - so is a condition that reads an ambiguous key (see
//!   [`Context::insert_ambiguous`]), whether as its key or in a policy
//!   variable, whatever the operator: even `Null` or `...IfExists` would
//!   otherwise answer for a value nobody can tell.

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::arn::{split_arn, ArnPattern};
use crate::context::{lowercase, Context, ContextValue, AMBIGUOUS};
use crate::error::did_you_mean;
use crate::pattern::{Syntax, Template};

/// Comparison of a context value (left) with a policy value (right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn test<T: PartialOrd>(self, ctx: T, policy: T) -> bool {
        match self {
            Cmp::Eq => ctx == policy,
            Cmp::Lt => ctx < policy,
            Cmp::Le => ctx <= policy,
            Cmp::Gt => ctx > policy,
            Cmp::Ge => ctx >= policy,
        }
    }
}

/// What an operator tests, before negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Test {
    StrEquals,
    StrEqualsIgnoreCase,
    StrLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

/// The base operators (without set prefix or IfExists), what they test, and
/// whether they are negated.
const OPERATORS: &[(&str, Test, bool)] = &[
    ("StringEquals", Test::StrEquals, false),
    ("StringNotEquals", Test::StrEquals, true),
    ("StringEqualsIgnoreCase", Test::StrEqualsIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Test::StrEqualsIgnoreCase, true),
    ("StringLike", Test::StrLike, false),
    ("StringNotLike", Test::StrLike, true),
    ("NumericEquals", Test::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Test::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Test::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Test::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Test::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Test::Numeric(Cmp::Ge), false),
    ("DateEquals", Test::Date(Cmp::Eq), false),
    ("DateNotEquals", Test::Date(Cmp::Eq), true),
    ("DateLessThan", Test::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Test::Date(Cmp::Le), false),
    ("DateGreaterThan", Test::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Test::Date(Cmp::Ge), false),
    ("Bool", Test::Bool, false),
    ("BinaryEquals", Test::Binary, false),
    ("IpAddress", Test::Ip, false),
    ("NotIpAddress", Test::Ip, true),
    ("ArnEquals", Test::Arn, false),
    ("ArnLike", Test::Arn, false),
    ("ArnNotEquals", Test::Arn, true),
    ("ArnNotLike", Test::Arn, true),
    ("Null", Test::Null, false),
];

const FOR_ALL: &str = "ForAllValues:";
const FOR_ANY: &str = "ForAnyValue:";
const IF_EXISTS: &str = "IfExists";

/// The set operator prefix of a condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOp {
    Single,
    ForAllValues,
    ForAnyValue,
}

/// A parsed condition operator such as `ForAnyValue:StringLikeIfExists`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operator {
    pub name: String,
    pub test: Test,
    pub negated: bool,
    pub set: SetOp,
    pub if_exists: bool,
}

/// Every valid operator spelling, for "did you mean" hints.
fn all_operator_names() -> Vec<String> {
    let mut names = Vec::new();
    for (base, test, _) in OPERATORS {
        for prefix in ["", FOR_ALL, FOR_ANY] {
            if *test == Test::Null && !prefix.is_empty() {
                continue;
            }
            names.push(format!("{prefix}{base}"));
            if *test != Test::Null {
                names.push(format!("{prefix}{base}{IF_EXISTS}"));
            }
        }
    }
    names
}

impl Operator {
    /// Parses an operator name; names are case-sensitive, as in AWS's
    /// documentation, but a wrong case gets a hint.
    pub fn parse(name: &str) -> Result<Operator, String> {
        let (set, rest) = if let Some(r) = name.strip_prefix(FOR_ALL) {
            (SetOp::ForAllValues, r)
        } else if let Some(r) = name.strip_prefix(FOR_ANY) {
            (SetOp::ForAnyValue, r)
        } else {
            (SetOp::Single, name)
        };
        let (if_exists, base) = match rest.strip_suffix(IF_EXISTS) {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let Some(&(_, test, negated)) = OPERATORS.iter().find(|(n, _, _)| *n == base) else {
            let names = all_operator_names();
            let hint = did_you_mean(name, names.iter().map(String::as_str))
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default();
            return Err(format!("unknown condition operator {name:?}{hint}"));
        };
        if test == Test::Null && if_exists {
            return Err(
                "NullIfExists is not an operator: Null already tests whether the key exists"
                    .to_string(),
            );
        }
        if test == Test::Null && set != SetOp::Single {
            return Err(format!(
                "{name:?}: Null cannot take a ForAllValues/ForAnyValue prefix; \
                 it tests whether the key exists"
            ));
        }
        Ok(Operator {
            name: name.to_string(),
            test,
            negated,
            set,
            if_exists,
        })
    }
}

/// An IPv4 or IPv6 network, with host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || format!("{text:?} is not an IP address or CIDR block");
        let (addr, len) = match text.trim().split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u32>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        match addr.parse::<IpAddr>().map_err(|_| bad())? {
            IpAddr::V4(a) => {
                let len = len.unwrap_or(32);
                if len > 32 {
                    return Err(bad());
                }
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                Ok(Cidr::V4 {
                    net: u32::from(a) & mask,
                    mask,
                })
            }
            IpAddr::V6(a) => {
                let len = len.unwrap_or(128);
                if len > 128 {
                    return Err(bad());
                }
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                Ok(Cidr::V6 {
                    net: u128::from(a) & mask,
                    mask,
                })
            }
        }
    }

    fn contains(self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket is still that client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self, ip) {
            (Cidr::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == net,
            (Cidr::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == net,
            _ => false,
        }
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Dates as AWS accepts them: ISO 8601 / RFC 3339 date-times (a missing
/// zone means UTC), plain dates, and epoch seconds.
pub(crate) fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return DateTime::from_timestamp(t.parse().ok()?, 0);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
        .ok()
}

/// The policy values of one condition, compiled for their operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    Str(Vec<Template>),
    Num(Vec<f64>),
    Date(Vec<DateTime<Utc>>),
    Bool(Vec<bool>),
    Binary(Vec<Vec<u8>>),
    Ip(Vec<Cidr>),
    Arn(Vec<ArnPattern>),
    Null(Vec<bool>),
}

/// One operator applied to one key with its list of values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub op: Operator,
    /// Lowercased, as context keys are case-insensitive.
    pub key: String,
    /// As written, for messages.
    pub key_name: String,
    pub values: Values,
}

fn collect<T>(
    raw: &[String],
    errors: &mut Vec<String>,
    f: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    raw.iter()
        .filter_map(|v| f(v).map_err(|e| errors.push(e)).ok())
        .collect()
}

impl Condition {
    /// Compiles one condition. `raw` holds the values as text (JSON numbers
    /// and booleans already turned into their text). Returns every problem.
    pub fn parse(
        op: Operator,
        key_name: &str,
        raw: &[String],
        variables: bool,
    ) -> Result<Condition, Vec<String>> {
        let mut errors = Vec::new();
        let kind_err = |what: &str, v: &str| format!("{v:?} is not {what}");
        let values = match op.test {
            Test::StrEquals | Test::StrEqualsIgnoreCase | Test::StrLike => {
                let syntax = Syntax {
                    wildcards: op.test == Test::StrLike,
                    variables,
                    lowercase: op.test == Test::StrEqualsIgnoreCase,
                };
                Values::Str(collect(raw, &mut errors, |v| Template::parse(v, syntax)))
            }
            Test::Numeric(_) => Values::Num(collect(raw, &mut errors, |v| {
                parse_number(v).ok_or_else(|| kind_err("a number", v))
            })),
            Test::Date(_) => Values::Date(collect(raw, &mut errors, |v| {
                parse_date(v).ok_or_else(|| {
                    kind_err(
                        "a date (ISO 8601, e.g. 2024-01-31T12:00:00Z, or epoch seconds)",
                        v,
                    )
                })
            })),
            Test::Bool => Values::Bool(collect(raw, &mut errors, |v| {
                parse_bool(v).ok_or_else(|| kind_err("true or false", v))
            })),
            Test::Null => Values::Null(collect(raw, &mut errors, |v| {
                parse_bool(v).ok_or_else(|| kind_err("true or false", v))
            })),
            Test::Binary => Values::Binary(collect(raw, &mut errors, |v| {
                decode_base64(v).ok_or_else(|| kind_err("base64", v))
            })),
            Test::Ip => Values::Ip(collect(raw, &mut errors, Cidr::parse)),
            Test::Arn => Values::Arn(collect(raw, &mut errors, |v| {
                ArnPattern::parse(v, variables)
            })),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Condition {
            op,
            key: key_name.to_lowercase(),
            key_name: key_name.to_string(),
            values,
        })
    }

    /// The templates of the policy values (string and ARN operators), where
    /// policy variables can appear.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        let (strs, arns): (&[Template], &[ArnPattern]) = match &self.values {
            Values::Str(t) => (t, &[]),
            Values::Arn(a) => (&[], a),
            _ => (&[], &[]),
        };
        strs.iter()
            .chain(arns.iter().flat_map(ArnPattern::templates))
    }

    /// `Err` when the condition reads an ambiguous key, as its key or
    /// through a policy variable in its values.
    fn check_ambiguity(&self, ctx: &Context) -> Result<(), String> {
        if !ctx.has_ambiguous() {
            return Ok(());
        }
        let at = || format!("{} on {}", self.op.name, self.key_name);
        if ctx.is_ambiguous_lowercased(&self.key) {
            return Err(format!("{}: the key is ambiguous: {AMBIGUOUS}", at()));
        }
        let mut vars = self.templates().flat_map(|t| &t.vars);
        match vars.find(|v| ctx.is_ambiguous_lowercased(&v.key)) {
            Some(v) => Err(format!(
                "{}: the policy variable ${{{}}} is ambiguous: {AMBIGUOUS}",
                at(),
                v.key
            )),
            None => Ok(()),
        }
    }

    /// Evaluates the condition. `Err` reports a context value of the wrong
    /// type or an ambiguous key; the caller decides what that means for the
    /// statement.
    pub fn evaluate(&self, ctx: &Context) -> Result<bool, String> {
        self.check_ambiguity(ctx)?;
        let values: &[String] = ctx
            .get_lowercased(&self.key)
            .map(ContextValue::as_slice)
            .unwrap_or(&[]);
        if let Values::Null(wants) = &self.values {
            // `"true"` asks for the key to be absent, `"false"` present.
            let absent = values.is_empty();
            return Ok(wants.contains(&absent));
        }
        let negated = self.op.negated;
        match self.op.set {
            SetOp::Single => {
                if values.is_empty() {
                    // AWS: a missing key makes a positive operator false and
                    // a negated one true; IfExists makes either true.
                    return Ok(self.op.if_exists || negated);
                }
                for v in values {
                    if self.matches_any(v, ctx)? {
                        return Ok(!negated);
                    }
                }
                Ok(negated)
            }
            SetOp::ForAllValues => {
                // Vacuously true for a missing or empty key, as AWS warns.
                for v in values {
                    if self.matches_any(v, ctx)? == negated {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            SetOp::ForAnyValue => {
                if values.is_empty() {
                    return Ok(self.op.if_exists);
                }
                for v in values {
                    if self.matches_any(v, ctx)? != negated {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Whether one context value matches any of the policy values (the
    /// un-negated test).
    fn matches_any(&self, v: &str, ctx: &Context) -> Result<bool, String> {
        let wrong = |what: &str| {
            format!(
                "{} on {}: context value {v:?} is not {what}",
                self.op.name, self.key_name
            )
        };
        Ok(match &self.values {
            Values::Str(templates) => {
                let ignore_case = self.op.test == Test::StrEqualsIgnoreCase;
                let subject: Cow<str> = if ignore_case {
                    lowercase(v)
                } else {
                    Cow::Borrowed(v)
                };
                templates
                    .iter()
                    .any(|t| t.matches(&subject, ctx, ignore_case))
            }
            Values::Num(nums) => {
                let x = parse_number(v).ok_or_else(|| wrong("a number"))?;
                let Test::Numeric(cmp) = self.op.test else {
                    return Ok(false);
                };
                nums.iter().any(|&n| cmp.test(x, n))
            }
            Values::Date(dates) => {
                let x = parse_date(v).ok_or_else(|| wrong("a date"))?;
                let Test::Date(cmp) = self.op.test else {
                    return Ok(false);
                };
                dates.iter().any(|&d| cmp.test(x, d))
            }
            Values::Bool(bools) => {
                let x = parse_bool(v).ok_or_else(|| wrong("true or false"))?;
                bools.contains(&x)
            }
            Values::Binary(blobs) => {
                let x = decode_base64(v).ok_or_else(|| wrong("base64"))?;
                blobs.contains(&x)
            }
            Values::Ip(cidrs) => {
                let x: IpAddr = v.trim().parse().map_err(|_| wrong("an IP address"))?;
                cidrs.iter().any(|c| c.contains(x))
            }
            Values::Arn(patterns) => {
                let split = split_arn(v);
                patterns.iter().any(|p| p.matches(split.as_ref(), ctx))
            }
            Values::Null(_) => false,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cond(op: &str, key: &str, values: &[&str]) -> Condition {
        let raw: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        Condition::parse(Operator::parse(op).unwrap(), key, &raw, true).unwrap()
    }

    fn ctx(pairs: &[(&str, ContextValue)]) -> Context {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn operator_names() {
        assert!(Operator::parse("ForAnyValue:StringLikeIfExists").is_ok());
        let e = Operator::parse("StringEqual").unwrap_err();
        assert!(e.contains("did you mean StringEquals?"), "{e}");
        let e = Operator::parse("stringequals").unwrap_err();
        assert!(e.contains("did you mean StringEquals?"), "{e}");
        assert!(Operator::parse("NullIfExists").is_err());
        assert!(Operator::parse("ForAllValues:Null").is_err());
        assert!(Operator::parse("Bogus").unwrap_err().ends_with("\"Bogus\""));
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.9".parse().unwrap()));
        assert!(!c.contains("203.0.114.9".parse().unwrap()));
        assert!(c.contains("::ffff:203.0.113.9".parse().unwrap()));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!c.contains("203.0.113.9".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4/33").is_err());
        assert!(Cidr::parse("1.2.3").is_err());
    }

    #[test]
    fn dates() {
        let a = parse_date("2024-01-31T12:00:00Z").unwrap();
        assert_eq!(parse_date("2024-01-31T13:00:00+01:00"), Some(a));
        assert_eq!(parse_date("2024-01-31T12:00:00"), Some(a));
        assert_eq!(parse_date("1706702400"), Some(a));
        assert!(parse_date("2024-01-31").unwrap() < a);
        assert!(parse_date("yesterday").is_none());
    }

    #[test]
    fn wrong_type_is_an_error() {
        let c = cond("NumericLessThan", "s3:max-keys", &["10"]);
        assert!(c.evaluate(&ctx(&[("s3:max-keys", "ten".into())])).is_err());
        assert!(c.evaluate(&ctx(&[("s3:max-keys", "5".into())])).unwrap());
    }

    #[test]
    fn set_operators_on_missing_and_empty() {
        let all = cond("ForAllValues:StringEquals", "aws:TagKeys", &["a"]);
        let any = cond("ForAnyValue:StringEquals", "aws:TagKeys", &["a"]);
        let empty = ctx(&[("aws:TagKeys", ContextValue::Multi(vec![]))]);
        assert!(all.evaluate(&Context::new()).unwrap());
        assert!(all.evaluate(&empty).unwrap());
        assert!(!any.evaluate(&Context::new()).unwrap());
        assert!(!any.evaluate(&empty).unwrap());
    }

    #[test]
    fn ambiguous_keys_are_errors_for_every_operator() {
        let mut amb = Context::new();
        amb.insert_ambiguous("ec2:ResourceTag/owner");
        let key = "ec2:ResourceTag/Owner";
        for (op, value) in [
            ("StringEquals", "alice"),
            ("StringNotEquals", "alice"),
            ("StringLikeIfExists", "a*"),
            ("StringNotEqualsIfExists", "alice"),
            ("ForAnyValue:StringEquals", "alice"),
            ("ForAllValues:StringNotLike", "a*"),
            ("Null", "true"),
            ("Null", "false"),
            ("NumericLessThanIfExists", "3"),
            ("ArnNotLike", "arn:aws:iam::1:user/*"),
        ] {
            let e = cond(op, key, &[value]).evaluate(&amb).unwrap_err();
            assert!(
                e.contains("ambiguous") && e.contains("differ only in case"),
                "{op}: {e}"
            );
        }
        // Read through a policy variable, default or not.
        for value in ["${ec2:ResourceTag/owner}", "${ec2:resourcetag/OWNER, 'x'}"] {
            let c = cond("StringNotEquals", "aws:username", &[value]);
            assert!(c.evaluate(&amb).is_err(), "{value}");
        }
        // Other keys are unaffected.
        let other = cond("StringEquals", "ec2:ResourceTag/env", &["prod"]);
        assert!(!other.evaluate(&amb).unwrap());
    }

    #[test]
    fn policy_values_are_validated() {
        let raw = vec!["not valid!".to_string()];
        for op in [
            "NumericEquals",
            "DateEquals",
            "Bool",
            "BinaryEquals",
            "IpAddress",
            "ArnLike",
        ] {
            let e = Condition::parse(Operator::parse(op).unwrap(), "k", &raw, true);
            assert!(e.is_err(), "{op}");
        }
    }
}
