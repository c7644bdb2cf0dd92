//! Errors found while parsing and validating a policy document.
//!
//! Validation collects every problem it can find rather than stopping at the
//! first, so that a person fixing a policy in the console sees them all at
//! once. Each error carries structured fields (for JSON output) and renders
//! as one line naming the policy, the statement and the element.

use std::fmt;

use serde::Serialize;

/// One problem in a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
pub struct PolicyError {
    /// The id given to [`crate::Policy::parse`].
    pub policy_id: String,
    /// Index of the statement (0-based) when the problem is inside one.
    pub statement: Option<usize>,
    /// The statement's Sid, when it has one.
    pub sid: Option<String>,
    /// The element concerned (`Version`, `Action`, `Condition`, ...).
    pub element: Option<String>,
    /// What is wrong, in words.
    pub message: String,
    /// Line of a JSON syntax error (1-based).
    pub line: Option<usize>,
    /// Column of a JSON syntax error (1-based).
    pub column: Option<usize>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {:?}", self.policy_id)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ", line {line}, column {column}")?;
        }
        if let Some(index) = self.statement {
            write!(f, ", statement[{index}]")?;
            if let Some(sid) = &self.sid {
                write!(f, " (Sid {sid:?})")?;
            }
        }
        if let Some(element) = &self.element {
            write!(f, ", {element}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one policy document; never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct PolicyErrors {
    errors: Vec<PolicyError>,
}

impl PolicyErrors {
    pub(crate) fn new(errors: Vec<PolicyError>) -> Self {
        PolicyErrors { errors }
    }

    /// The individual problems, in document order as far as it is known.
    pub fn errors(&self) -> &[PolicyError] {
        &self.errors
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Levenshtein distance, on characters, ignoring ASCII case.
#[expect(
    clippy::indexing_slicing,
    reason = "both rows have b.len() + 1 cells and j < b.len()"
)]
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely
/// typo (a few edits, and less than half the word).
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 2).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("StringEqual", "StringEquals"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ALLOW", "Allow"), 0);
    }

    #[test]
    fn suggestions() {
        let ops = ["StringEquals", "StringLike", "NumericEquals"];
        assert_eq!(did_you_mean("StringEqual", ops), Some("StringEquals"));
        assert_eq!(did_you_mean("Nonsense", ops), None);
    }

    #[test]
    fn display_names_everything() {
        let e = PolicyError {
            policy_id: "p".into(),
            statement: Some(1),
            sid: Some("S".into()),
            element: Some("Action".into()),
            message: "bad".into(),
            line: None,
            column: None,
        };
        assert_eq!(
            e.to_string(),
            r#"policy "p", statement[1] (Sid "S"), Action: bad"#
        );
        let all = PolicyErrors::new(vec![e.clone(), e]);
        assert_eq!(all.to_string().lines().count(), 2);
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(json[0]["policyId"], "p");
    }
}
