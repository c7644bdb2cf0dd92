//! ARN patterns, for the Resource element and the Arn condition operators.
//!
//! IAM matches an ARN segment by segment: `arn:partition:service:region:
//! account:resource`, the last segment being everything after the fifth
//! colon (it may itself contain `:` and `/`). Each segment is a wildcard
//! pattern of its own, so a `*` in the region never swallows the account.

use crate::context::Context;
use crate::pattern::{glob_match, Syntax, Template};

/// Number of colon-separated segments in an ARN.
const SEGMENTS: usize = 6;

/// A compiled Resource entry or Arn condition value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArnPattern {
    /// A lone `*`: every resource.
    Any,
    /// Six segment patterns.
    Segments(Box<[Template; SEGMENTS]>),
}

/// Splits `text` on the colons that are outside `${...}`, so that a variable
/// such as `${aws:username}` stays in one segment. At most six pieces: the
/// last keeps any further colons.
fn split_pattern(text: &str, variables: bool) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(SEGMENTS);
    let mut start = 0;
    let mut in_var = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while pieces.len() < SEGMENTS - 1 {
        let Some(&byte) = bytes.get(i) else { break };
        match byte {
            b'$' if variables && bytes.get(i + 1) == Some(&b'{') => {
                in_var = true;
                i += 1;
            }
            b'}' if in_var => in_var = false,
            b':' if !in_var => {
                pieces.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    pieces.push(&text[start..]);
    pieces
}

/// Splits a request ARN into its six segments, or `None` when it has fewer.
pub(crate) fn split_arn(arn: &str) -> Option<[&str; SEGMENTS]> {
    let mut out = [""; SEGMENTS];
    let mut it = arn.splitn(SEGMENTS, ':');
    for slot in out.iter_mut() {
        *slot = it.next()?;
    }
    Some(out)
}

impl ArnPattern {
    /// Compiles a Resource entry or Arn condition value. The error explains
    /// why it is not `*` or a six-segment ARN.
    pub fn parse(text: &str, variables: bool) -> Result<ArnPattern, String> {
        if text == "*" {
            return Ok(ArnPattern::Any);
        }
        let pieces = split_pattern(text, variables);
        if pieces.len() < SEGMENTS || pieces.first() != Some(&"arn") {
            return Err(format!(
                "{text:?} is neither \"*\" nor an ARN of the form \
                 arn:partition:service:region:account:resource"
            ));
        }
        let syntax = Syntax {
            wildcards: true,
            variables,
            lowercase: false,
        };
        let mut segs = Vec::with_capacity(SEGMENTS);
        for piece in pieces {
            segs.push(Template::parse(piece, syntax)?);
        }
        let segs: [Template; SEGMENTS] = segs
            .try_into()
            .map_err(|_| format!("{text:?} does not have six ARN segments"))?;
        Ok(ArnPattern::Segments(Box::new(segs)))
    }

    /// The segment templates; none for `*`.
    pub fn templates(&self) -> &[Template] {
        match self {
            ArnPattern::Any => &[],
            ArnPattern::Segments(segs) => &segs[..],
        }
    }

    /// Matches a request ARN already split by [`split_arn`] (`None` for a
    /// value that is not an ARN, which only `*` matches).
    pub fn matches(&self, arn: Option<&[&str; SEGMENTS]>, ctx: &Context) -> bool {
        match self {
            ArnPattern::Any => true,
            ArnPattern::Segments(segs) => {
                let Some(arn) = arn else { return false };
                segs.iter().zip(arn.iter()).all(|(pat, seg)| {
                    pat.with_resolved(ctx, false, |vars| glob_match(&pat.parts, vars, seg, false))
                        .unwrap_or(false)
                })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(pattern: &str, arn: &str, ctx: &Context) -> bool {
        ArnPattern::parse(pattern, true)
            .unwrap()
            .matches(split_arn(arn).as_ref(), ctx)
    }

    #[test]
    fn segments_match_separately() {
        let ctx = Context::new();
        assert!(m("*", "not-an-arn", &ctx));
        assert!(m(
            "arn:aws:ec2:us-east-1::snapshot/*",
            "arn:aws:ec2:us-east-1::snapshot/snap-1",
            &ctx
        ));
        assert!(!m(
            "arn:aws:ec2:us-east-1::snapshot/*",
            "arn:aws:ec2:us-east-1:123456789012:snapshot/snap-1",
            &ctx
        ));
        // A star in one segment does not run into the next.
        assert!(!m(
            "arn:aws:ec2:*:*:instance/*",
            "arn:aws:ec2:us-east-1:1:volume/i",
            &ctx
        ));
        assert!(!m(
            "arn:aws:ec2:us-*:*:*",
            "arn:aws:ec2:eu-west-1:us-1:x",
            &ctx
        ));
        assert!(m(
            "arn:aws:ec2:*:*:instance/*",
            "arn:aws:ec2:us-east-1:1:instance/i",
            &ctx
        ));
        // The resource segment keeps its colons.
        assert!(m(
            "arn:aws:logs:*:*:log-group:web:*",
            "arn:aws:logs:eu-west-1:1:log-group:web:log-stream:x",
            &ctx
        ));
        assert!(!m("arn:aws:s3:::b/*", "b/key", &ctx));
    }

    #[test]
    fn variables_with_colons_stay_whole() {
        let mut ctx = Context::new();
        ctx.insert("aws:RequestedRegion", "eu-west-1");
        assert!(m(
            "arn:aws:ec2:${aws:RequestedRegion}:*:volume/*",
            "arn:aws:ec2:eu-west-1:1:volume/v",
            &ctx
        ));
        assert!(!m(
            "arn:aws:ec2:${aws:RequestedRegion}:*:volume/*",
            "arn:aws:ec2:us-east-1:1:volume/v",
            &ctx
        ));
    }

    #[test]
    fn rejects_short_arns() {
        assert!(ArnPattern::parse("arn:aws:s3", true).is_err());
        assert!(ArnPattern::parse("bucket/*", true).is_err());
    }
}
