//! Parsing and validating a policy document into a typed, pre-compiled AST.
//!
//! Airlock's policies are identity policies (attached to console users), so
//! the grammar is IAM's minus Principal. Validation keeps going after a
//! problem so that every problem in the document is reported together.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::arn::ArnPattern;
use crate::condition::{Condition, Operator};
use crate::error::{did_you_mean, PolicyError, PolicyErrors};
use crate::pattern::{Syntax, Template};

/// The policy language version, which decides whether `${...}` is a
/// variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V2008,
    V2012,
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// One compiled statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// Lowercased action patterns.
    pub actions: Vec<Template>,
    /// The action patterns as written, for messages.
    pub action_texts: Vec<String>,
    /// The list came from NotAction: the statement covers every other action.
    pub not_action: bool,
    pub resources: Vec<ArnPattern>,
    /// The resource patterns as written, for messages.
    pub resource_texts: Vec<String>,
    /// The list came from NotResource.
    pub not_resource: bool,
    /// All must hold (AND across operators and keys).
    pub conditions: Vec<Condition>,
}

/// A parsed and validated IAM identity policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    id: String,
    version: Version,
    pub(crate) statements: Vec<Statement>,
}

const TOP_LEVEL: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_ELEMENTS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Principal",
    "NotPrincipal",
];

impl Policy {
    /// Parses and validates a policy document.
    ///
    /// `id` names the policy in errors and in decisions (e.g. "admin" or a
    /// file name). On failure every problem found is returned.
    pub fn parse(id: &str, json: &str) -> Result<Policy, PolicyErrors> {
        let mut p = Parser {
            id,
            errors: Vec::new(),
        };
        let value: Value = match serde_json::from_str(json) {
            Ok(v) => v,
            Err(e) => {
                let (line, column) = (e.line(), e.column());
                p.errors.push(PolicyError {
                    policy_id: id.to_string(),
                    statement: None,
                    sid: None,
                    element: None,
                    message: format!("invalid JSON: {}", strip_position(&e.to_string())),
                    line: (line > 0).then_some(line),
                    column: (line > 0).then_some(column),
                });
                return Err(PolicyErrors::new(p.errors));
            }
        };
        let policy = p.document(&value);
        match policy {
            Some(policy) if p.errors.is_empty() => Ok(policy),
            _ => Err(PolicyErrors::new(p.errors)),
        }
    }

    /// The id given to [`Policy::parse`].
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The policy language version, `"2012-10-17"` or `"2008-10-17"`.
    pub fn version(&self) -> &'static str {
        match self.version {
            Version::V2012 => "2012-10-17",
            Version::V2008 => "2008-10-17",
        }
    }

    /// Number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }
}

/// serde_json appends " at line L column C"; the position has its own
/// fields, so the message does not repeat it.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Where in the document a problem is.
#[derive(Clone, Copy)]
struct At<'a> {
    statement: Option<usize>,
    sid: Option<&'a str>,
    element: Option<&'a str>,
}

const TOP: At<'static> = At {
    statement: None,
    sid: None,
    element: None,
};

impl<'a> At<'a> {
    fn element(self, element: &'a str) -> At<'a> {
        At {
            element: Some(element),
            ..self
        }
    }
}

struct Parser<'a> {
    id: &'a str,
    errors: Vec<PolicyError>,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A string or a non-empty list of strings (Action, Resource, ...).
fn string_list(v: &Value) -> Result<Vec<&str>, String> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if items.is_empty() => Err("must not be an empty list".to_string()),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| format!("list items must be strings, found {}", json_type(i)))
            })
            .collect(),
        other => Err(format!(
            "must be a string or a list of strings, found {}",
            json_type(other)
        )),
    }
}

/// Condition values: a string, number or boolean, or a non-empty list of
/// those, all read as text (AWS accepts `true` and `"true"` alike).
fn condition_values(v: &Value) -> Result<Vec<String>, String> {
    fn scalar(v: &Value) -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!(
                "condition values must be strings, numbers or booleans, found {}",
                json_type(other)
            )),
        }
    }
    match v {
        Value::Array(items) if items.is_empty() => {
            Err("the list of condition values must not be empty".to_string())
        }
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

/// Checks the `service:Action` shape and compiles the pattern.
fn parse_action(action: &str) -> Result<Template, String> {
    let syntax = Syntax {
        wildcards: true,
        variables: false,
        lowercase: true,
    };
    if action == "*" {
        return Template::parse(action, syntax);
    }
    let shape = || {
        format!(
            "{action:?} is not an action: expected service:Action (e.g. ec2:RunInstances), \
             with * and ? as wildcards, or * alone"
        )
    };
    let (service, name) = action.split_once(':').ok_or_else(shape)?;
    let service_ok = !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '*' | '?'));
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '?'));
    if !service_ok || !name_ok {
        return Err(shape());
    }
    Template::parse(action, syntax)
}

impl Parser<'_> {
    fn error(&mut self, at: At<'_>, message: String) {
        self.errors.push(PolicyError {
            policy_id: self.id.to_string(),
            statement: at.statement,
            sid: at.sid.map(str::to_string),
            element: at.element.map(str::to_string),
            message,
            line: None,
            column: None,
        });
    }

    fn unknown_element(&mut self, at: At<'_>, key: &str, known: &[&str]) {
        let hint = did_you_mean(key, known.iter().copied())
            .map(|s| format!("; did you mean {s}?"))
            .unwrap_or_default();
        self.error(
            at,
            format!(
                "unknown element {key:?}{hint} (allowed: {})",
                known.join(", ")
            ),
        );
    }

    fn document(&mut self, value: &Value) -> Option<Policy> {
        let Some(obj) = value.as_object() else {
            self.error(
                TOP,
                format!("a policy must be a JSON object, found {}", json_type(value)),
            );
            return None;
        };
        for key in obj.keys() {
            if !TOP_LEVEL.contains(&key.as_str()) {
                self.unknown_element(TOP, key, TOP_LEVEL);
            }
        }
        let version = self.version(obj);
        self.id_element(obj);
        let statements = self.statement_list(obj)?;
        let statements = self.statements(statements, version);
        Some(Policy {
            id: self.id.to_string(),
            version,
            statements,
        })
    }

    /// AWS reads a policy without Version as 2008-10-17, where policy variables are plain text.
    fn version(&mut self, obj: &Map<String, Value>) -> Version {
        match obj.get("Version") {
            None => Version::V2008,
            Some(Value::String(s)) if s == "2012-10-17" => Version::V2012,
            Some(Value::String(s)) if s == "2008-10-17" => Version::V2008,
            Some(other) => {
                self.error(
                    TOP.element("Version"),
                    format!("must be \"2012-10-17\" (or the older \"2008-10-17\"), found {other}"),
                );
                Version::V2012
            }
        }
    }

    fn id_element(&mut self, obj: &Map<String, Value>) {
        if let Some(id) = obj.get("Id") {
            if !id.is_string() {
                self.error(
                    TOP.element("Id"),
                    format!("must be a string, found {}", json_type(id)),
                );
            }
        }
    }

    /// The Statement element as a list: AWS accepts one object or an array of them.
    fn statement_list<'v>(&mut self, obj: &'v Map<String, Value>) -> Option<Vec<&'v Value>> {
        let statements: Vec<&Value> = match obj.get("Statement") {
            None => {
                self.error(TOP.element("Statement"), "is missing".to_string());
                return None;
            }
            Some(Value::Array(items)) if items.is_empty() => {
                self.error(
                    TOP.element("Statement"),
                    "must contain at least one statement".to_string(),
                );
                return None;
            }
            Some(Value::Array(items)) => items.iter().collect(),
            Some(v @ Value::Object(_)) => vec![v],
            Some(other) => {
                self.error(
                    TOP.element("Statement"),
                    format!(
                        "must be an object or a list of objects, found {}",
                        json_type(other)
                    ),
                );
                return None;
            }
        };
        Some(statements)
    }

    /// Compiles each statement; Sids must be unique within the policy.
    fn statements(&mut self, statements: Vec<&Value>, version: Version) -> Vec<Statement> {
        let mut compiled = Vec::with_capacity(statements.len());
        let mut sids = HashSet::new();
        for (index, st) in statements.into_iter().enumerate() {
            if let Some(s) = self.statement(index, st, version) {
                if let Some(sid) = &s.sid {
                    if !sids.insert(sid.clone()) {
                        let at = At {
                            statement: Some(index),
                            sid: Some(sid),
                            element: Some("Sid"),
                        };
                        self.error(
                            at,
                            format!("duplicate Sid {sid:?}: Sids must be unique in a policy"),
                        );
                    }
                }
                compiled.push(s);
            }
        }
        compiled
    }

    fn statement(&mut self, index: usize, value: &Value, version: Version) -> Option<Statement> {
        let here = At {
            statement: Some(index),
            sid: None,
            element: None,
        };
        let Some(obj) = value.as_object() else {
            self.error(
                here,
                format!("a statement must be an object, found {}", json_type(value)),
            );
            return None;
        };
        let before = self.errors.len();
        let sid = self.sid(here, obj);
        let here = At { sid, ..here };
        self.statement_elements(here, obj);
        let effect = self.effect(here, obj);
        let variables = version == Version::V2012;
        let actions = self.pair(here, obj, "Action", "NotAction", parse_action);
        let resources = self.pair(here, obj, "Resource", "NotResource", |r| {
            ArnPattern::parse(r, variables)
        });
        let conditions = match obj.get("Condition") {
            None => Vec::new(),
            Some(c) => self.conditions(here.element("Condition"), c, variables),
        };
        let (
            Some(effect),
            Some((actions, action_texts, not_action)),
            Some((resources, resource_texts, not_resource)),
        ) = (effect, actions, resources)
        else {
            return None;
        };
        if self.errors.len() > before {
            return None;
        }
        Some(Statement {
            sid: sid.map(str::to_string),
            effect,
            actions,
            action_texts,
            not_action,
            resources,
            resource_texts,
            not_resource,
            conditions,
        })
    }

    fn sid<'v>(&mut self, here: At<'v>, obj: &'v Map<String, Value>) -> Option<&'v str> {
        let sid = match obj.get("Sid") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                self.error(
                    here.element("Sid"),
                    format!("must be a string, found {}", json_type(other)),
                );
                None
            }
        };
        if let Some(s) = sid {
            if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                self.error(
                    here.element("Sid"),
                    "may contain only letters A-Z, a-z and digits 0-9".to_string(),
                );
            }
        }
        sid
    }

    /// Only statement elements, and no Principal: these are identity policies.
    fn statement_elements(&mut self, here: At<'_>, obj: &Map<String, Value>) {
        for key in obj.keys() {
            match key.as_str() {
                "Principal" | "NotPrincipal" => self.error(
                    here.element(key),
                    "Airlock policies are identity policies, which apply to the user they \
                     are attached to: remove Principal/NotPrincipal"
                        .to_string(),
                ),
                k if STATEMENT_ELEMENTS.contains(&k) => {}
                k => self.unknown_element(here, k, STATEMENT_ELEMENTS.get(..7).unwrap_or_default()),
            }
        }
    }

    fn effect(&mut self, here: At<'_>, obj: &Map<String, Value>) -> Option<Effect> {
        match obj.get("Effect") {
            Some(Value::String(s)) if s == "Allow" => Some(Effect::Allow),
            Some(Value::String(s)) if s == "Deny" => Some(Effect::Deny),
            None => {
                self.error(here.element("Effect"), "is missing".to_string());
                None
            }
            Some(other) => {
                let hint = other
                    .as_str()
                    .and_then(|s| did_you_mean(s, ["Allow", "Deny"]))
                    .map(|s| format!("; did you mean {s}?"))
                    .unwrap_or_default();
                self.error(
                    here.element("Effect"),
                    format!("must be \"Allow\" or \"Deny\", found {other}{hint}"),
                );
                None
            }
        }
    }

    /// Reads exactly one of `name` / `not_name` and compiles its entries.
    /// Returns the entries, their text, and whether they came from the
    /// negated element.
    fn pair<T>(
        &mut self,
        here: At<'_>,
        obj: &serde_json::Map<String, Value>,
        name: &'static str,
        not_name: &'static str,
        compile: impl Fn(&str) -> Result<T, String>,
    ) -> Option<(Vec<T>, Vec<String>, bool)> {
        let (element, value, negated) = match (obj.get(name), obj.get(not_name)) {
            (Some(_), Some(_)) => {
                self.error(
                    here.element(name),
                    format!("a statement may have {name} or {not_name}, not both"),
                );
                return None;
            }
            (None, None) => {
                self.error(
                    here.element(name),
                    format!("a statement needs {name} or {not_name}"),
                );
                return None;
            }
            (Some(v), None) => (name, v, false),
            (None, Some(v)) => (not_name, v, true),
        };
        let entries = match string_list(value) {
            Ok(e) => e,
            Err(msg) => {
                self.error(here.element(element), msg);
                return None;
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        let texts = entries.iter().map(|e| e.to_string()).collect();
        let mut ok = true;
        for e in entries {
            match compile(e) {
                Ok(t) => out.push(t),
                Err(msg) => {
                    self.error(here.element(element), msg);
                    ok = false;
                }
            }
        }
        ok.then_some((out, texts, negated))
    }

    fn conditions(&mut self, here: At<'_>, value: &Value, variables: bool) -> Vec<Condition> {
        let Some(blocks) = value.as_object() else {
            self.error(
                here,
                format!(
                    "must be an object of operators, e.g. {{\"StringEquals\": {{\"aws:username\": \"alice\"}}}}, found {}",
                    json_type(value)
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (op_name, block) in blocks {
            let op = match Operator::parse(op_name) {
                Ok(op) => op,
                Err(msg) => {
                    self.error(here, msg);
                    continue;
                }
            };
            let Some(keys) = block.as_object() else {
                self.error(
                    here,
                    format!(
                        "{op_name}: must be an object of condition keys to values, found {}",
                        json_type(block)
                    ),
                );
                continue;
            };
            for (key, raw) in keys {
                if key.trim().is_empty() {
                    self.error(here, format!("{op_name}: empty condition key"));
                    continue;
                }
                let raw = match condition_values(raw) {
                    Ok(r) => r,
                    Err(msg) => {
                        self.error(here, format!("{op_name}: {key}: {msg}"));
                        continue;
                    }
                };
                match Condition::parse(op.clone(), key, &raw, variables) {
                    Ok(c) => out.push(c),
                    Err(msgs) => {
                        for msg in msgs {
                            self.error(here, format!("{op_name}: {key}: {msg}"));
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        Policy::parse("p", json)
            .unwrap_err()
            .errors()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn parses_single_statement_object() {
        let p = Policy::parse(
            "p",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        )
        .unwrap();
        assert_eq!(p.id(), "p");
        assert_eq!(p.version(), "2012-10-17");
        assert_eq!(p.statement_count(), 1);
    }

    #[test]
    fn syntax_error_has_position() {
        let e = Policy::parse(
            "p",
            "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n}",
        )
        .unwrap_err();
        let e = &e.errors()[0];
        assert_eq!(e.line, Some(4));
        assert!(e.column.is_some());
        assert!(
            e.to_string().starts_with("policy \"p\", line 4, column"),
            "{e}"
        );
    }

    #[test]
    fn collects_every_problem() {
        let errs = errors(
            r#"{"Version":"2012-10-17","Statement":[
                {"Sid":"One","Effect":"allow","Action":"ec2","Resource":"bucket"},
                {"Sid":"Two","Effect":"Allow","Action":"ec2:*","NotAction":"s3:*","Resource":"*",
                 "Condition":{"StringEqual":{"aws:username":"x"}}},
                {"Effect":"Deny","Resource":"*","Principal":"*","Actions":"x"}]}"#,
        );
        let all = errs.join("\n");
        assert!(all.contains(r#"statement[0] (Sid "One"), Effect"#), "{all}");
        assert!(all.contains("did you mean Allow?"), "{all}");
        assert!(all.contains(r#"statement[0] (Sid "One"), Action"#), "{all}");
        assert!(
            all.contains(r#"statement[0] (Sid "One"), Resource"#),
            "{all}"
        );
        assert!(all.contains("not both"), "{all}");
        assert!(all.contains("did you mean StringEquals?"), "{all}");
        assert!(all.contains("statement[2], Principal"), "{all}");
        assert!(all.contains("did you mean Action?"), "{all}");
        assert!(all.contains("statement[2], Action: a statement needs Action or NotAction"));
        assert!(errs.len() >= 8, "{all}");
    }

    #[test]
    fn top_level_checks() {
        assert!(errors(r#"{"Version":"2012-10-18","Statement":[]}"#).len() == 2);
        assert!(errors(r#"[]"#)[0].contains("must be a JSON object"));
        assert!(errors(r#"{"Version":"2012-10-17"}"#)[0].contains("Statement: is missing"));
        let dup = errors(
            r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},
            {"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        );
        assert!(dup[0].contains("duplicate Sid"));
        assert!(errors(
            r#"{"Statement":{"Sid":"a-b","Effect":"Allow","Action":"*","Resource":"*"}}"#
        )[0]
        .contains("Sid: may contain only"));
    }

    #[test]
    fn condition_value_problems() {
        let errs = errors(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*",
               "Condition":{"NumericLessThan":{"n":["x", 3]},"StringEquals":{"k":[]},
                            "Bool":{"b":null},"StringLike":{"s":"${aws:username"}}}}"#,
        );
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs.iter().all(|e| e.contains("Condition")));
    }

    #[test]
    fn actions_are_checked() {
        assert!(parse_action("ec2:Describe*").is_ok());
        assert!(parse_action("*").is_ok());
        assert!(parse_action("ec2:").is_err());
        assert!(parse_action("DescribeInstances").is_err());
        assert!(parse_action("ec2:Run Instances").is_err());
    }
}
