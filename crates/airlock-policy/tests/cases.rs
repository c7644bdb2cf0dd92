//! Runs the shared decision corpus `tests/cases.json` through the public
//! API. The same file is meant to be replayed through the CLI and the HTTP
//! API, so its format is fixed: name, policies, request, decision.

#![allow(clippy::unwrap_used)]

use airlock_policy::{evaluate, Decision, Policy, Request};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    policies: Vec<serde_json::Value>,
    request: Request,
    decision: Decision,
}

fn load() -> Vec<Case> {
    let text = include_str!("cases.json");
    serde_json::from_str(text).unwrap()
}

#[test]
fn corpus_decisions_match() {
    let cases = load();
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let policies: Result<Vec<Policy>, _> = case
            .policies
            .iter()
            .enumerate()
            .map(|(i, p)| Policy::parse(&format!("policy{i}"), &p.to_string()))
            .collect();
        let policies = match policies {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: policy does not parse:\n{e}", case.name));
                continue;
            }
        };
        let response = evaluate(&policies, &case.request);
        if response.decision != case.decision {
            failures.push(format!(
                "{}: expected {:?}, got {:?} (matched {:?}, errors {:?})",
                case.name,
                case.decision,
                response.decision,
                response.matched_statements,
                response.errors
            ));
        }
        // The statements listed must be the ones of the deciding kind.
        match response.decision {
            Decision::ImplicitDeny => assert!(response.matched_statements.is_empty()),
            _ => assert!(!response.matched_statements.is_empty(), "{}", case.name),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn case_names_are_unique() {
    let cases = load();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len());
}
