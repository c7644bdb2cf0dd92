//! Wildcard patterns and policy-variable templates.
//!
//! Every string in a policy that is compared against the request (actions,
//! ARN segments, string condition values) is compiled once, at parse time,
//! into a [`Template`]: a sequence of literal runs, `*`/`?` wildcards and
//! policy variables. Keeping wildcards as their own tokens is what lets
//! `${*}` produce a literal star that never acts as a wildcard, and lets
//! values substituted from the request (a user name containing `*`, say)
//! stay literal too.

use crate::context::{Context, ContextValue};

/// One compiled piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Text that must appear as is.
    Lit(String),
    /// `*`: any run of characters, including none.
    Star,
    /// `?`: exactly one character.
    Any,
    /// A policy variable, by its index in [`Template::vars`]; its value is
    /// literal text once resolved.
    Var(usize),
}

/// A `${key}` or `${key, 'default'}` policy variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variable {
    /// The context key, lowercased because keys are case-insensitive.
    pub key: String,
    /// Text used when the key is absent (or multi-valued), as AWS does.
    pub default: Option<String>,
}

/// How the text of a policy string should be read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (StringLike, ARNs, actions) rather than
    /// literal characters (StringEquals).
    pub wildcards: bool,
    /// `${...}` is a policy variable: only for Version 2012-10-17.
    pub variables: bool,
    /// Lowercase the literal text, for case-insensitive comparisons.
    pub lowercase: bool,
}

/// A compiled pattern, possibly containing policy variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub parts: Vec<Part>,
    pub vars: Vec<Variable>,
}

/// Most templates have no more than this many variables; resolving them
/// then needs no heap allocation.
const INLINE_VARS: usize = 4;

impl Template {
    /// Compiles `text`; the error explains a malformed policy variable.
    pub fn parse(text: &str, syntax: Syntax) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut vars = Vec::new();
        let mut lit = String::new();
        let push_lit = |lit: &mut String, parts: &mut Vec<Part>| {
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(lit)));
            }
        };
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if syntax.variables && rest.starts_with("${") {
                let (var, after) = parse_variable(rest)?;
                rest = after;
                match var {
                    Parsed::Literal(ch) => lit.push(ch),
                    Parsed::Var(mut v) => {
                        if syntax.lowercase {
                            v.default = v.default.map(|d| d.to_lowercase());
                        }
                        push_lit(&mut lit, &mut parts);
                        parts.push(Part::Var(vars.len()));
                        vars.push(v);
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if syntax.wildcards => {
                    push_lit(&mut lit, &mut parts);
                    // Consecutive stars are one star; merging keeps matching linear.
                    if parts.last() != Some(&Part::Star) {
                        parts.push(Part::Star);
                    }
                }
                '?' if syntax.wildcards => {
                    push_lit(&mut lit, &mut parts);
                    parts.push(Part::Any);
                }
                _ if syntax.lowercase => lit.extend(c.to_lowercase()),
                _ => lit.push(c),
            }
        }
        push_lit(&mut lit, &mut parts);
        Ok(Template { parts, vars })
    }

    /// Resolves the variables against `ctx` and calls `f` with their values.
    /// Returns `None` when a variable has no usable value and no default:
    /// AWS then treats the element containing it as not matching.
    pub fn with_resolved<R>(
        &self,
        ctx: &Context,
        lowercase: bool,
        f: impl FnOnce(&[&str]) -> R,
    ) -> Option<R> {
        if self.vars.is_empty() {
            return Some(f(&[]));
        }
        if lowercase {
            // Case-insensitive operators compare lowercased text, so the
            // substituted values must be lowercased too.
            let owned: Vec<String> = self
                .vars
                .iter()
                .map(|v| resolve(v, ctx).map(str::to_lowercase))
                .collect::<Option<_>>()?;
            let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
            return Some(f(&refs));
        }
        if self.vars.len() <= INLINE_VARS {
            let mut buf = [""; INLINE_VARS];
            for (slot, v) in buf.iter_mut().zip(&self.vars) {
                *slot = resolve(v, ctx)?;
            }
            return Some(f(buf.get(..self.vars.len()).unwrap_or_default()));
        }
        let values: Vec<&str> = self
            .vars
            .iter()
            .map(|v| resolve(v, ctx))
            .collect::<Option<_>>()?;
        Some(f(&values))
    }

    /// Matches `subject` with variables resolved from `ctx`; an unresolvable
    /// variable means no match.
    pub fn matches(&self, subject: &str, ctx: &Context, lowercase: bool) -> bool {
        self.with_resolved(ctx, lowercase, |vars| {
            glob_match(&self.parts, vars, subject, false)
        })
        .unwrap_or(false)
    }
}

fn resolve<'a>(var: &'a Variable, ctx: &'a Context) -> Option<&'a str> {
    match ctx.get_lowercased(&var.key) {
        Some(ContextValue::Single(s)) => Some(s.as_str()),
        // An ambiguous key has values, just not one that can be told: a
        // default would stand in for a value that exists. Callers report
        // the ambiguity before matching; this only keeps it from matching.
        _ if ctx.is_ambiguous_lowercased(&var.key) => None,
        // Multi-valued keys cannot be substituted; AWS falls back to the
        // default, or the element does not match.
        _ => var.default.as_deref(),
    }
}

enum Parsed {
    Literal(char),
    Var(Variable),
}

/// Parses one `${...}` at the start of `text`, returning it and the rest.
fn parse_variable(text: &str) -> Result<(Parsed, &str), String> {
    let body_start = &text[2..];
    // The closing brace is the first `}` outside the quoted default.
    let mut in_quote = false;
    let mut end = None;
    for (i, c) in body_start.char_indices() {
        match c {
            '\'' => in_quote = !in_quote,
            '}' if !in_quote => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(end) = end else {
        return Err(format!(
            "unterminated policy variable {:?}: expected a closing '}}'",
            text
        ));
    };
    let body = &body_start[..end];
    let rest = &body_start[end + 1..];
    let trimmed = body.trim();
    match trimmed {
        "*" => return Ok((Parsed::Literal('*'), rest)),
        "?" => return Ok((Parsed::Literal('?'), rest)),
        "$" => return Ok((Parsed::Literal('$'), rest)),
        _ => {}
    }
    let (key, default) = match trimmed.split_once(',') {
        None => (trimmed, None),
        Some((key, def)) => (key.trim_end(), Some(parse_default(def.trim(), body)?)),
    };
    if key.is_empty() {
        return Err(format!("empty policy variable \"${{{body}}}\""));
    }
    if key
        .chars()
        .any(|c| c.is_whitespace() || c == '\'' || c == '$' || c == '{')
    {
        return Err(format!(
            "invalid policy variable \"${{{body}}}\": the key must be one word"
        ));
    }
    Ok((
        Parsed::Var(Variable {
            key: key.to_lowercase(),
            default,
        }),
        rest,
    ))
}

/// Parses `'text'`, where `''` stands for one quote.
fn parse_default(quoted: &str, body: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "invalid default in policy variable \"${{{body}}}\": write it as ${{key, 'default'}}"
        )
    };
    let inner = quoted
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .ok_or_else(bad)?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return Err(bad());
        }
        out.push(c);
    }
    Ok(out)
}

/// Byte length of the UTF-8 character starting with `b`.
fn char_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

fn starts_with(subject: &[u8], lit: &[u8], fold: bool) -> bool {
    match subject.get(..lit.len()) {
        Some(head) if fold => head.eq_ignore_ascii_case(lit),
        Some(head) => head == lit,
        None => false,
    }
}

/// Glob match of `subject` against `parts`, where `Part::Var(i)` stands for
/// the literal text `vars[i]`. `fold` compares ASCII letters without case
/// (for actions).
///
/// The classic greedy algorithm that only ever backtracks to the most recent
/// star: it is exact for patterns whose non-star pieces have a fixed length,
/// and runs without allocation or recursion.
pub(crate) fn glob_match(parts: &[Part], vars: &[&str], subject: &str, fold: bool) -> bool {
    let s = subject.as_bytes();
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(part) = parts.get(pi) {
            let advanced = match part {
                Part::Star => {
                    if pi + 1 == parts.len() {
                        return true;
                    }
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                Part::Any => match s.get(si) {
                    Some(&b) => {
                        si += char_len(b);
                        true
                    }
                    None => false,
                },
                Part::Lit(l) => {
                    let ok = starts_with(s.get(si..).unwrap_or_default(), l.as_bytes(), fold);
                    if ok {
                        si += l.len();
                    }
                    ok
                }
                Part::Var(i) => {
                    let l = vars.get(*i).copied().unwrap_or_default();
                    let ok = starts_with(s.get(si..).unwrap_or_default(), l.as_bytes(), fold);
                    if ok {
                        si += l.len();
                    }
                    ok
                }
            };
            if advanced {
                pi += 1;
                continue;
            }
        } else if si == s.len() {
            return true;
        }
        match star {
            Some((sp, ss)) if ss < s.len() => {
                let next = ss + s.get(ss).copied().map_or(1, char_len);
                star = Some((sp, next));
                pi = sp + 1;
                si = next;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIKE: Syntax = Syntax {
        wildcards: true,
        variables: true,
        lowercase: false,
    };

    fn m(pattern: &str, subject: &str) -> bool {
        let t = Template::parse(pattern, LIKE).unwrap();
        t.matches(subject, &Context::new(), false)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*c", "abbbc"));
        assert!(m("a*c", "ac"));
        assert!(!m("a*c", "acb"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b*", "xxbxxaxx"));
        assert!(m("a*b*c", "abcbc"));
        assert!(m("?", "é"));
        assert!(!m("??", "é"));
        assert!(m("snap-*", "snap-0123"));
        assert!(!m("Snap-*", "snap-0123"));
    }

    #[test]
    fn special_variables_are_literal() {
        assert!(m("a${*}b", "a*b"));
        assert!(!m("a${*}b", "axb"));
        assert!(m("a${?}", "a?"));
        assert!(!m("a${?}", "ax"));
        assert!(m("${$}{x}", "${x}"));
    }

    #[test]
    fn variables_resolve_from_context() {
        let mut ctx = Context::new();
        ctx.insert("aws:username", "bob*");
        let t = Template::parse("home/${aws:UserName}/*", LIKE).unwrap();
        assert!(t.matches("home/bob*/x", &ctx, false));
        // A substituted star is literal text.
        assert!(!t.matches("home/bobby/x", &ctx, false));
        let t = Template::parse("${aws:PrincipalTag/team, 'none'}", LIKE).unwrap();
        assert!(t.matches("none", &ctx, false));
        let t = Template::parse("${missing}", LIKE).unwrap();
        assert!(!t.matches("", &ctx, false));
    }

    #[test]
    fn multi_valued_variable_uses_default_or_fails() {
        let mut ctx = Context::new();
        ctx.insert("k", vec!["a".to_string(), "b".to_string()]);
        assert!(!Template::parse("${k}", LIKE)
            .unwrap()
            .matches("a", &ctx, false));
        assert!(Template::parse("${k, 'd'}", LIKE)
            .unwrap()
            .matches("d", &ctx, false));
    }

    #[test]
    fn default_quoting() {
        let t = Template::parse("${k, 'it''s'}", LIKE).unwrap();
        assert!(t.matches("it's", &Context::new(), false));
        assert!(Template::parse("${k, nope}", LIKE).is_err());
        assert!(Template::parse("${k", LIKE).is_err());
        assert!(Template::parse("${}", LIKE).is_err());
        assert!(Template::parse("${a b}", LIKE).is_err());
    }

    #[test]
    fn variables_off_for_old_version() {
        let syntax = Syntax {
            variables: false,
            ..LIKE
        };
        let t = Template::parse("${aws:username}", syntax).unwrap();
        assert!(t.matches("${aws:username}", &Context::new(), false));
    }

    #[test]
    fn ascii_fold() {
        let t = Template::parse("ec2:describe*", LIKE).unwrap();
        assert!(glob_match(&t.parts, &[], "EC2:DescribeInstances", true));
        assert!(!glob_match(&t.parts, &[], "EC2:DescribeInstances", false));
    }
}
