//! Gloo's YAML, as users already write it, turned into a validated [`Config`]: `Upstream`
//! documents with `spec.awsEc2` (or the older `spec.upstreamSpec.awsEc2`), `VirtualService`
//! documents for routes, and `Secret` documents with AWS keys. Several documents per file.
//!
//! Pure: takes text, returns a config or every problem found, each naming the file, the
//! document, the object and the field. No file or network I/O happens here.

use crate::filter::TagFilter;
use base64::Engine;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Gloo's namespace when a document names none.
pub const DEFAULT_NAMESPACE: &str = "gloo-system";
/// The tag whose value overrides an upstream's port per instance, unless the upstream names another.
pub const DEFAULT_PORT_TAG: &str = "airlock:port";
/// The tag that places an instance in a discovered upstream (`--discover-upstreams`).
pub const UPSTREAM_TAG: &str = "airlock:upstream";
/// The `secretRef` namespace that names an Airlock console account instead of a Secret: the
/// upstream is listed through the console, and the account's key never leaves it.
pub const CONSOLE_NAMESPACE: &str = "airlock-console";
/// The ring size Envoy (and so Gloo) uses when `minimumRingSize` is not given.
pub const DEFAULT_RING_SIZE: usize = 1024;
/// The largest ring the gateway builds (Envoy's limit is 8M; this keeps a ring small enough
/// to rebuild on every refresh).
pub const MAX_RING_SIZE: usize = 1 << 20;

/// A namespaced name, as Gloo refers to objects (`namespace/name`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjRef {
    /// Namespace (defaults to `gloo-system`).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjRef {
    /// A reference from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An EC2 upstream: the instances its credentials see in its region that match every filter.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// Its name and namespace.
    pub id: ObjRef,
    /// Tag filters, all of which an instance must match.
    pub filters: Vec<TagFilter>,
    /// The AWS region to list.
    pub region: String,
    /// The Secret holding the access key; `None` means the gateway's default credentials.
    pub secret_ref: Option<ObjRef>,
    /// A role to assume before listing.
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    pub external_id: Option<String>,
    /// Route to the public address instead of the private one.
    pub public_ip: bool,
    /// The port, unless the port tag says otherwise.
    pub port: u16,
    /// The tag whose value overrides the port per instance.
    pub port_tag: String,
    /// True for upstreams made by `--discover-upstreams` rather than written in YAML.
    pub discovered: bool,
    /// Consistent hashing (Gloo's `loadBalancerConfig.ringHash` / `maglev`); `None` balances
    /// with the gateway's `--balance` policy.
    pub hashing: Option<Hashing>,
}

impl Upstream {
    /// The console account this upstream is listed through (`secretRef` in namespace
    /// [`CONSOLE_NAMESPACE`]), if any.
    pub fn console_account(&self) -> Option<&str> {
        self.secret_ref
            .as_ref()
            .filter(|r| r.namespace == CONSOLE_NAMESPACE)
            .map(|r| r.name.as_str())
    }
}

/// Consistent hashing over an upstream's endpoints, as Gloo configures it on the Upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hashing {
    /// A ketama-style ring (`loadBalancerConfig.ringHash`).
    RingHash {
        /// Entries on the ring (`ringHashConfig.minimumRingSize`, clamped to the maximum).
        ring_size: usize,
    },
    /// Maglev's lookup table (`loadBalancerConfig.maglev`).
    Maglev,
}

/// What a request is hashed on (a route's `options.lbHash.hashPolicies[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// The value of a request header (name lowercased: header names are case-insensitive).
    Header(String),
    /// The client's address.
    SourceIp,
}

/// One hash policy of a route, in order; as in Envoy, a `terminal` policy that produced a hash
/// stops the ones after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashPolicy {
    /// What is hashed.
    pub key: HashKey,
    /// Stop here when this policy produced a hash.
    pub terminal: bool,
}

/// How a route matches the request path (the query string is never part of the match).
#[derive(Clone, Debug)]
pub enum PathMatch {
    /// The path equals this.
    Exact(String),
    /// The path starts with this.
    Prefix(String),
    /// The whole path matches this regular expression.
    Regex(regex::Regex),
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
            (PathMatch::Prefix(a), PathMatch::Prefix(b)) => a == b,
            (PathMatch::Regex(a), PathMatch::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// One matcher of a route and where it sends traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// The path matcher.
    pub matcher: PathMatch,
    /// The upstream.
    pub upstream: ObjRef,
    /// Replaces the matched part of the path (Gloo's `options.prefixRewrite`).
    pub prefix_rewrite: Option<String>,
    /// What requests are hashed on for upstreams with consistent hashing (Gloo's
    /// `options.lbHash.hashPolicies`); empty means no hashing.
    pub hash_policies: Vec<HashPolicy>,
}

/// A Gloo VirtualService: domains and their ordered routes (first match wins).
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    /// Its name and namespace.
    pub id: ObjRef,
    /// Host names it serves; `*` and `*.suffix` wildcards as in Envoy.
    pub domains: Vec<String>,
    /// Routes in order.
    pub routes: Vec<Route>,
}

/// AWS keys from a `Secret` document.
#[derive(Clone, Debug)]
pub struct AwsSecret {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: SecretString,
    /// Session token, for temporary keys.
    pub session_token: Option<SecretString>,
}

/// A whole, validated gateway configuration.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Upstreams by id.
    pub upstreams: BTreeMap<ObjRef, Upstream>,
    /// Virtual services in file order.
    pub virtual_services: Vec<VirtualService>,
    /// AWS secrets by id.
    pub secrets: BTreeMap<ObjRef, AwsSecret>,
    /// Things that are not errors but deserve a log line (ignored kinds, for example).
    pub warnings: Vec<String>,
}

/// What loading needs besides the text.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// With `--discover-upstreams`, routes may name upstreams that only tags define.
    pub discover_upstreams: bool,
    /// The documents are stored in a console: `Secret` documents are refused (keys are never
    /// kept in configurations there; name a console account or a Secret of the gateway's
    /// `--secrets` file instead), and a `secretRef` may name a Secret that only the gateway has.
    pub stored_in_console: bool,
}

/// One problem in one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or source name).
    pub file: String,
    /// The document number in the file, from 1.
    pub document: usize,
    /// `Kind namespace/name`, when known.
    pub object: Option<String>,
    /// The field path, e.g. `spec.awsEc2.filters[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.document > 0 {
            write!(f, ": document {}", self.document)?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid gateway configuration:")?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

// ---- raw document shapes (what serde reads) ----

#[derive(Deserialize)]
struct RawMeta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct RawRef {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUpstream {
    metadata: RawMeta,
    spec: RawUpstreamSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUpstreamSpec {
    #[serde(default)]
    aws_ec2: Option<RawAwsEc2>,
    #[serde(default)]
    upstream_spec: Option<RawInnerSpec>,
    #[serde(default)]
    load_balancer_config: Option<RawLbConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInnerSpec {
    #[serde(default)]
    aws_ec2: Option<RawAwsEc2>,
    /// Where the older shape keeps it.
    #[serde(default)]
    load_balancer_config: Option<RawLbConfig>,
}

/// Gloo's `loadBalancerConfig`; only the consistent-hashing choices change anything here
/// (other fields, such as `healthyPanicThreshold`, are Envoy tuning the gateway does not have).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLbConfig {
    #[serde(default)]
    ring_hash: Option<RawRingHash>,
    #[serde(default)]
    maglev: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRingHash {
    #[serde(default)]
    ring_hash_config: Option<RawRingHashConfig>,
}

/// Protobuf's JSON writes 64-bit integers as strings, so both forms are read.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawCount {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRingHashConfig {
    #[serde(default)]
    minimum_ring_size: Option<RawCount>,
    #[serde(default)]
    maximum_ring_size: Option<RawCount>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAwsEc2 {
    #[serde(default)]
    filters: Vec<RawFilter>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    secret_ref: Option<RawRef>,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    public_ip: bool,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    port_tag: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    kv_pair: Option<RawKvPair>,
}

#[derive(Deserialize)]
struct RawKvPair {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVirtualService {
    metadata: RawMeta,
    spec: RawVsSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVsSpec {
    virtual_host: RawVirtualHost,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawVirtualHost {
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoute {
    #[serde(default)]
    matchers: Option<Vec<RawMatcher>>,
    /// Gloo before 1.0 had one `matcher`.
    #[serde(default)]
    matcher: Option<RawMatcher>,
    #[serde(default)]
    route_action: Option<RawRouteAction>,
    #[serde(default)]
    options: Option<RawRouteOptions>,
    /// Gloo before 1.0 put the rewrite under `routePlugins.prefixRewrite.prefixRewrite`.
    #[serde(default)]
    route_plugins: Option<RawRoutePlugins>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMatcher {
    #[serde(default)]
    exact: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    regex: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRouteAction {
    #[serde(default)]
    single: Option<RawSingle>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSingle {
    #[serde(default)]
    upstream: Option<RawRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRouteOptions {
    #[serde(default)]
    prefix_rewrite: Option<String>,
    #[serde(default)]
    lb_hash: Option<RawLbHash>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLbHash {
    #[serde(default)]
    hash_policies: Vec<RawHashPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHashPolicy {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    cookie: Option<serde_json::Value>,
    #[serde(default)]
    source_ip: Option<bool>,
    #[serde(default)]
    terminal: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoutePlugins {
    #[serde(default)]
    prefix_rewrite: Option<RawRouteOptions>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSecret {
    metadata: RawMeta,
    #[serde(default)]
    aws: Option<RawGlooAws>,
    #[serde(default)]
    data: Option<BTreeMap<String, String>>,
    #[serde(default)]
    string_data: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGlooAws {
    access_key: String,
    secret_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

/// Where a problem was found, to build [`ConfigError`]s.
struct Place<'a> {
    file: &'a str,
    document: usize,
    object: Option<String>,
}

impl Place<'_> {
    fn error(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            document: self.document,
            object: self.object.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One document of a YAML stream: its text and the line of the file it starts on (from 1).
struct Document {
    first_line: usize,
    text: String,
}

/// Splits a YAML stream into documents at `---` lines, keeping each document's text. A
/// document's line `n` is line `first_line + n - 1` of the file.
fn split_documents(text: &str) -> Vec<Document> {
    let mut docs = vec![Document {
        first_line: 1,
        text: String::new(),
    }];
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push(Document {
                first_line: index + 1,
                text: trimmed.trim_start_matches("---").trim_start().to_owned() + "\n",
            });
        } else if let Some(last) = docs.last_mut() {
            // A `...` end marker becomes an empty line, so line numbers stay the file's.
            if trimmed != "..." {
                last.text.push_str(line);
            }
            last.text.push('\n');
        }
    }
    docs
}

/// A YAML syntax error in words that never quote the document: the parser's messages and
/// snippets show the text around the error, which in a secrets file is a key. Only the
/// position (in the file) and the kind of mistake are given.
fn yaml_error(e: &serde_saphyr::Error, first_line: usize) -> String {
    match e.location() {
        Some(at) => format!(
            "not valid YAML at line {}, column {}: {}",
            first_line + at.line() as usize - 1,
            at.column(),
            yaml_mistake(e)
        ),
        None => format!("not valid YAML: {}", yaml_mistake(e)),
    }
}

/// The kind of a YAML error, from a fixed list.
fn yaml_mistake(e: &serde_saphyr::Error) -> &'static str {
    use serde_saphyr::Error as E;
    match e {
        E::WithSnippet { error, .. } | E::AliasError { error, .. } => yaml_mistake(error),
        E::Eof { .. } => "the document ends too early",
        E::DuplicateMappingKey { .. } => "a key is given twice",
        E::IndentationError { .. } => "wrong indentation",
        E::UnknownAnchor { .. } => "an alias names no anchor",
        E::InvalidUtf8Input => "the text is not UTF-8",
        E::InvalidScalar { .. } | E::InvalidBooleanStrict { .. } | E::NonFiniteFloat { .. } => {
            "a value does not have the form its tag says"
        }
        E::QuotingRequired { .. } => "a value must be quoted",
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => "too large or too deeply nested",
        _ => "a syntax error (unbalanced brackets or quotes, a tab for indentation, a misplaced colon)",
    }
}

fn typed<T: DeserializeOwned>(
    value: serde_json::Value,
    place: &Place<'_>,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        // The documents hold secrets (Secret kinds): never echo a value.
        place.error(
            field,
            airlock_os::without_value(&e.into_inner().to_string()),
        )
    })
}

/// Parses and validates configuration sources: `(name, text)` pairs, usually file names and
/// their contents. Returns every problem at once.
pub fn load(sources: &[(String, String)], options: &LoadOptions) -> Result<Config, ConfigErrors> {
    let mut loader = Loader {
        options,
        config: Config::default(),
        errors: Vec::new(),
        route_refs: Vec::new(),
        secret_refs: Vec::new(),
    };
    for (file, text) in sources {
        for (i, doc) in split_documents(text).iter().enumerate() {
            loader.document(file, i + 1, doc);
        }
    }
    loader.finish()
}

/// What [`load`] has gathered so far. Routes and secret references are checked after every
/// source is read, since they may point into a later file.
struct Loader<'o> {
    options: &'o LoadOptions,
    config: Config,
    errors: Vec<ConfigError>,
    route_refs: Vec<(ConfigError, ObjRef)>,
    secret_refs: Vec<(ConfigError, ObjRef)>,
}

impl Loader<'_> {
    /// One YAML document: parsed, its kind and name found, then added by kind.
    fn document(&mut self, file: &str, document: usize, doc: &Document) {
        let mut place = Place {
            file,
            document,
            object: None,
        };
        let value: Option<serde_json::Value> = match serde_saphyr::from_str(&doc.text) {
            Ok(v) => v,
            Err(e) => {
                self.errors
                    .push(place.error("", yaml_error(&e, doc.first_line)));
                return;
            }
        };
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return;
        };
        let Some(kind) = value
            .get("kind")
            .and_then(|k| k.as_str())
            .map(str::to_owned)
        else {
            self.errors.push(place.error(
                "kind",
                "missing: expected Upstream, VirtualService or Secret",
            ));
            return;
        };
        let name = value
            .pointer("/metadata/name")
            .and_then(|n| n.as_str())
            .unwrap_or("?");
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(|n| n.as_str())
            .unwrap_or(DEFAULT_NAMESPACE);
        place.object = Some(format!("{kind} {namespace}/{name}"));
        self.add(&kind, value, &place);
    }

    /// A document of a known kind, or a warning for any other.
    fn add(&mut self, kind: &str, value: serde_json::Value, place: &Place<'_>) {
        match kind {
            "Upstream" => {
                match typed::<RawUpstream>(value, place).and_then(|raw| upstream(raw, place)) {
                    Ok((up, secret)) => self.add_upstream(up, secret, place),
                    Err(e) => self.errors.push(e),
                }
            }
            "VirtualService" => match typed::<RawVirtualService>(value, place) {
                Ok(raw) => match virtual_service(raw, place) {
                    Ok((vs, refs)) => {
                        self.route_refs.extend(refs);
                        self.config.virtual_services.push(vs);
                    }
                    Err(mut e) => self.errors.append(&mut e),
                },
                Err(e) => self.errors.push(e),
            },
            "Secret" if self.options.stored_in_console => self.errors.push(place.error(
                "kind",
                format!("Secret documents are not stored in the console (keys belong in its vault): name a console account with secretRef {{name: ACCOUNT, namespace: {CONSOLE_NAMESPACE}}}, or keep the Secret in the gateway's --secrets file"),
            )),
            "Secret" => match typed::<RawSecret>(value, place).and_then(|raw| secret(raw, place)) {
                Ok((id, s)) => {
                    self.config.secrets.insert(id, s);
                }
                Err(e) => self.errors.push(e),
            },
            other => self.config.warnings.push(format!(
                "{}: document {}: ignoring kind {other} (the gateway reads Upstream, VirtualService and Secret)",
                place.file, place.document
            )),
        }
    }

    fn add_upstream(&mut self, up: Upstream, secret: Option<ObjRef>, place: &Place<'_>) {
        if let Some(secret) = secret.filter(|s| s.namespace != CONSOLE_NAMESPACE) {
            self.secret_refs
                .push((place.error("spec.awsEc2.secretRef", ""), secret));
        }
        if self.config.upstreams.contains_key(&up.id) {
            self.errors.push(place.error(
                "metadata.name",
                "an Upstream of this name and namespace is already defined",
            ));
        } else {
            self.config.upstreams.insert(up.id.clone(), up);
        }
    }

    /// Checks the references between documents, then returns the configuration or every
    /// problem found.
    fn finish(mut self) -> Result<Config, ConfigErrors> {
        for (mut at, target) in self.route_refs {
            if !self.config.upstreams.contains_key(&target) && !self.options.discover_upstreams {
                at.message = format!(
                    "unknown upstream {target}: no Upstream of that name and namespace is defined"
                );
                self.errors.push(at);
            }
        }
        for (mut at, target) in self.secret_refs {
            if !self.config.secrets.contains_key(&target) && !self.options.stored_in_console {
                at.message = format!("unknown secret {target}: no Secret of that name and namespace in the configuration or secrets file");
                self.errors.push(at);
            }
        }
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

fn meta_ref(meta: &RawMeta) -> ObjRef {
    ObjRef::new(
        meta.namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        meta.name.clone(),
    )
}

fn raw_ref(r: &RawRef, default_namespace: &str) -> ObjRef {
    ObjRef::new(
        r.namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_owned()),
        r.name.clone(),
    )
}

/// One `filters[i]` entry: a tag key, or a tag key and value.
fn tag_filter(f: RawFilter, field: &str, place: &Place<'_>) -> Result<TagFilter, ConfigError> {
    match (f.key, f.kv_pair) {
        (Some(key), None) if !key.is_empty() => Ok(TagFilter::Key(key)),
        (None, Some(kv)) if !kv.key.is_empty() => Ok(TagFilter::KvPair {
            key: kv.key,
            value: kv.value,
        }),
        (Some(_), Some(_)) => {
            Err(place.error(field, "a filter has either `key` or `kvPair`, not both"))
        }
        (None, None) => Err(place.error(
            field,
            "a filter needs `key` (tag present) or `kvPair` (tag key and value)",
        )),
        _ => Err(place.error(field, "the tag key must not be empty")),
    }
}

/// The role, external id and secret reference of an EC2 upstream go together.
fn check_credentials(
    role_arn: Option<&str>,
    external_id: bool,
    secret_ref: Option<&ObjRef>,
    base: &str,
    place: &Place<'_>,
) -> Result<(), ConfigError> {
    if external_id && role_arn.is_none() {
        return Err(place.error(
            format!("{base}.externalId"),
            "only makes sense with roleArn",
        ));
    }
    if let Some(arn) = role_arn {
        if !arn.starts_with("arn:") || !arn.contains(":role/") {
            return Err(place.error(
                format!("{base}.roleArn"),
                format!("{arn:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
            ));
        }
    }
    let Some(r) = secret_ref.filter(|r| r.namespace == CONSOLE_NAMESPACE) else {
        return Ok(());
    };
    if role_arn.is_some() {
        return Err(place.error(
            format!("{base}.roleArn"),
            format!("cannot be combined with console account {:?}: give the account its role in the console instead", r.name),
        ));
    }
    if r.name.is_empty() {
        return Err(place.error(
            format!("{base}.secretRef.name"),
            "must name a console account",
        ));
    }
    Ok(())
}

fn upstream(
    raw: RawUpstream,
    place: &Place<'_>,
) -> Result<(Upstream, Option<ObjRef>), ConfigError> {
    let id = meta_ref(&raw.metadata);
    if id.name.is_empty() {
        return Err(place.error("metadata.name", "must not be empty"));
    }
    let (inner_ec2, inner_lb) = match raw.spec.upstream_spec {
        Some(inner) => (inner.aws_ec2, inner.load_balancer_config),
        None => (None, None),
    };
    let hashing = match (raw.spec.load_balancer_config, inner_lb) {
        (Some(lb), _) => hashing(lb, "spec.loadBalancerConfig", place)?,
        (None, Some(lb)) => hashing(lb, "spec.upstreamSpec.loadBalancerConfig", place)?,
        (None, None) => None,
    };
    let (ec2, base) = match (raw.spec.aws_ec2, inner_ec2) {
        (Some(_), Some(_)) => {
            return Err(place.error(
                "spec",
                "give spec.awsEc2 or spec.upstreamSpec.awsEc2, not both",
            ))
        }
        (Some(e), None) => (e, "spec.awsEc2"),
        (None, Some(e)) => (e, "spec.upstreamSpec.awsEc2"),
        (None, None) => return Err(place.error(
            "spec.awsEc2",
            "missing: the gateway serves EC2 upstreams (spec.awsEc2 or spec.upstreamSpec.awsEc2)",
        )),
    };
    let filters = ec2
        .filters
        .into_iter()
        .enumerate()
        .map(|(i, f)| tag_filter(f, &format!("{base}.filters[{i}]"), place))
        .collect::<Result<Vec<_>, _>>()?;
    let region = match ec2.region {
        Some(r) if !r.is_empty() => r,
        _ => {
            return Err(place.error(
                format!("{base}.region"),
                "missing: the AWS region to list, e.g. us-east-1",
            ))
        }
    };
    let port = match ec2.port {
        None => 80,
        Some(p) => u16::try_from(p).ok().filter(|p| *p != 0).ok_or_else(|| {
            place.error(
                format!("{base}.port"),
                format!("{p} is not a TCP port (1-65535)"),
            )
        })?,
    };
    let secret_ref = ec2.secret_ref.as_ref().map(|r| raw_ref(r, "default"));
    check_credentials(
        ec2.role_arn.as_deref(),
        ec2.external_id.is_some(),
        secret_ref.as_ref(),
        base,
        place,
    )?;
    Ok((
        Upstream {
            id,
            filters,
            region,
            secret_ref: secret_ref.clone(),
            role_arn: ec2.role_arn,
            external_id: ec2.external_id,
            public_ip: ec2.public_ip,
            port,
            port_tag: ec2.port_tag.unwrap_or_else(|| DEFAULT_PORT_TAG.to_owned()),
            discovered: false,
            hashing,
        },
        secret_ref,
    ))
}

fn count(c: &RawCount, field: &str, place: &Place<'_>) -> Result<u64, ConfigError> {
    match c {
        RawCount::Number(n) => Ok(*n),
        RawCount::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| place.error(field, format!("{t:?} is not a whole number"))),
    }
}

fn hashing(lb: RawLbConfig, base: &str, place: &Place<'_>) -> Result<Option<Hashing>, ConfigError> {
    match (lb.ring_hash, lb.maglev) {
        (Some(_), Some(_)) => Err(place.error(base, "give ringHash or maglev, not both")),
        (None, Some(_)) => Ok(Some(Hashing::Maglev)),
        (Some(ring), None) => {
            let conf = ring.ring_hash_config;
            let field = format!("{base}.ringHash.ringHashConfig");
            let min = match conf.as_ref().and_then(|c| c.minimum_ring_size.as_ref()) {
                Some(c) => count(c, &format!("{field}.minimumRingSize"), place)?,
                None => DEFAULT_RING_SIZE as u64,
            };
            let max = match conf.as_ref().and_then(|c| c.maximum_ring_size.as_ref()) {
                Some(c) => count(c, &format!("{field}.maximumRingSize"), place)?,
                None => MAX_RING_SIZE as u64,
            };
            if min == 0 || min > max {
                return Err(place.error(
                    format!("{field}.minimumRingSize"),
                    format!("{min} must be at least 1 and at most maximumRingSize ({max})"),
                ));
            }
            let ring_size = usize::try_from(min.min(max))
                .unwrap_or(MAX_RING_SIZE)
                .min(MAX_RING_SIZE);
            Ok(Some(Hashing::RingHash { ring_size }))
        }
        (None, None) => Ok(None),
    }
}

fn hash_policies(
    raw: Option<RawLbHash>,
    base: &str,
    place: &Place<'_>,
) -> Result<Vec<HashPolicy>, ConfigError> {
    let mut out = Vec::new();
    for (i, p) in raw
        .map(|h| h.hash_policies)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let field = format!("{base}.options.lbHash.hashPolicies[{i}]");
        let key = match (p.header, p.source_ip.unwrap_or(false), p.cookie.is_some()) {
            (Some(h), false, false) => {
                let h = h.trim().to_ascii_lowercase();
                if h.is_empty()
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                {
                    return Err(place.error(format!("{field}.header"), "not an HTTP header name"));
                }
                HashKey::Header(h)
            }
            (None, true, false) => HashKey::SourceIp,
            (None, false, true) => {
                return Err(place.error(
                    format!("{field}.cookie"),
                    "cookie hash policies are not supported: hash on a header or sourceIp",
                ))
            }
            (None, false, false) => {
                return Err(place.error(field, "a hash policy needs `header` (or `sourceIp: true`)"))
            }
            _ => {
                return Err(place.error(
                    field,
                    "a hash policy has one of `header`, `cookie` or `sourceIp`",
                ))
            }
        };
        out.push(HashPolicy {
            key,
            terminal: p.terminal,
        });
    }
    Ok(out)
}

type RouteRefs = Vec<(ConfigError, ObjRef)>;

/// A route's matchers: `matchers`, Gloo's older single `matcher`, or every path.
fn matchers_of(matchers: Option<Vec<RawMatcher>>, matcher: Option<RawMatcher>) -> Vec<RawMatcher> {
    match (matchers, matcher) {
        (Some(m), _) if !m.is_empty() => m,
        (_, Some(m)) => vec![m],
        _ => vec![RawMatcher {
            exact: None,
            prefix: Some("/".to_owned()),
            regex: None,
        }],
    }
}

/// One route matcher at `field` of the route at `base`: an exact path, a prefix or a regex
/// (which a prefix rewrite cannot go with, as in Gloo/Envoy).
fn path_match(
    m: RawMatcher,
    field: &str,
    base: &str,
    rewrites: bool,
    place: &Place<'_>,
) -> Result<PathMatch, ConfigError> {
    let matcher = match (m.exact, m.prefix, m.regex) {
        (Some(e), None, None) => PathMatch::Exact(e),
        (None, Some(p), None) => PathMatch::Prefix(p),
        (None, None, Some(_)) if rewrites => {
            return Err(place.error(
                format!("{base}.options.prefixRewrite"),
                "cannot be used with a regex matcher (as in Gloo/Envoy)",
            ))
        }
        (None, None, Some(re)) => match regex::Regex::new(&format!("^(?:{re})$")) {
            Ok(r) => PathMatch::Regex(r),
            Err(e) => {
                return Err(place.error(
                    format!("{field}.regex"),
                    format!("not a valid regular expression: {e}"),
                ))
            }
        },
        (None, None, None) => PathMatch::Prefix("/".to_owned()),
        _ => return Err(place.error(field, "a matcher has one of `exact`, `prefix` or `regex`")),
    };
    if let PathMatch::Exact(p) | PathMatch::Prefix(p) = &matcher {
        if !p.starts_with('/') {
            return Err(place.error(field, format!("path {p:?} must start with /")));
        }
    }
    Ok(matcher)
}

fn virtual_service(
    raw: RawVirtualService,
    place: &Place<'_>,
) -> Result<(VirtualService, RouteRefs), Vec<ConfigError>> {
    let id = meta_ref(&raw.metadata);
    let mut errors = Vec::new();
    let mut routes = Vec::new();
    let mut refs = Vec::new();
    let domains = if raw.spec.virtual_host.domains.is_empty() {
        vec!["*".to_owned()]
    } else {
        raw.spec.virtual_host.domains
    };
    for (i, r) in raw.spec.virtual_host.routes.into_iter().enumerate() {
        let base = format!("spec.virtualHost.routes[{i}]");
        let Some(u) = r
            .route_action
            .and_then(|a| a.single)
            .and_then(|s| s.upstream)
        else {
            errors.push(place.error(
                format!("{base}.routeAction.single.upstream"),
                "missing: the gateway routes to one upstream by name and namespace",
            ));
            continue;
        };
        let upstream = raw_ref(&u, &id.namespace);
        let (rewrite, lb_hash) = match r.options {
            Some(o) => (o.prefix_rewrite, o.lb_hash),
            None => (None, None),
        };
        let hashes = match hash_policies(lb_hash, &base, place) {
            Ok(h) => h,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let rewrite = rewrite.or_else(|| {
            r.route_plugins
                .and_then(|p| p.prefix_rewrite)
                .and_then(|p| p.prefix_rewrite)
        });
        let mut ok = true;
        for (j, m) in matchers_of(r.matchers, r.matcher).into_iter().enumerate() {
            let field = format!("{base}.matchers[{j}]");
            match path_match(m, &field, &base, rewrite.is_some(), place) {
                Ok(matcher) => routes.push(Route {
                    matcher,
                    upstream: upstream.clone(),
                    prefix_rewrite: rewrite.clone(),
                    hash_policies: hashes.clone(),
                }),
                Err(e) => {
                    errors.push(e);
                    ok = false;
                }
            }
        }
        if ok {
            refs.push((
                place.error(format!("{base}.routeAction.single.upstream"), ""),
                upstream,
            ));
        }
    }
    if errors.is_empty() {
        Ok((
            VirtualService {
                id,
                domains,
                routes,
            },
            refs,
        ))
    } else {
        Err(errors)
    }
}

fn secret(raw: RawSecret, place: &Place<'_>) -> Result<(ObjRef, AwsSecret), ConfigError> {
    // Secrets default to the `default` namespace, as glooctl creates them.
    let id = ObjRef::new(
        raw.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        raw.metadata.name.clone(),
    );
    if let Some(aws) = raw.aws {
        return Ok((
            id,
            AwsSecret {
                access_key_id: aws.access_key,
                secret_access_key: SecretString::from(aws.secret_key),
                session_token: aws.session_token.map(SecretString::from),
            },
        ));
    }
    // Kubernetes shape: base64 `data` or plain `stringData`.
    let mut fields: BTreeMap<String, String> = raw.string_data.unwrap_or_default();
    for (k, v) in raw.data.unwrap_or_default() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| place.error(format!("data.{k}"), "not valid base64 text"))?;
        fields.insert(k, decoded);
    }
    let get = |k: &str| fields.get(k).map(|v| v.trim().to_owned());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id_), Some(secret)) => Ok((
            id,
            AwsSecret {
                access_key_id: id_,
                secret_access_key: SecretString::from(secret),
                session_token: get("aws_session_token").map(SecretString::from),
            },
        )),
        _ => Err(place.error("aws", "missing: a Secret needs aws.accessKey and aws.secretKey (or data.aws_access_key_id and data.aws_secret_access_key)")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load_one(text: &str) -> Result<Config, ConfigErrors> {
        load(
            &[("gw.yaml".to_owned(), text.to_owned())],
            &LoadOptions::default(),
        )
    }

    const UPSTREAM_OLD_SHAPE: &str = r#"
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  annotations:
  name: ec2-demo-upstream
  namespace: gloo-system
spec:
  upstreamSpec:
    awsEc2:
      filters:
      - key: gloo-id
      - kvPair:
          key: gloo-tag
          value: group1
      - kvPair:
          key: version
          value: v1.2.3
      region: us-east-1
      secretRef:
        name: gloo-tag-group1
        namespace: default
---
apiVersion: gloo.solo.io/v1
kind: Secret
metadata:
  name: gloo-tag-group1
  namespace: default
aws:
  accessKey: AKIAEXAMPLE
  secretKey: not-a-real-secret
"#;

    const ROUTE: &str = r#"
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: default
  namespace: gloo-system
spec:
  virtualHost:
    domains:
    - '*'
    routes:
    - matchers:
      - exact: /echoapp
      routeAction:
        single:
          upstream:
            name: ec2-demo-upstream
            namespace: gloo-system
      options:
        prefixRewrite: /
"#;

    #[test]
    fn reads_the_gloo_tutorial_upstream_in_the_old_shape() {
        let c = load_one(UPSTREAM_OLD_SHAPE).unwrap();
        let up = &c.upstreams[&ObjRef::new("gloo-system", "ec2-demo-upstream")];
        assert_eq!(up.region, "us-east-1");
        assert_eq!(up.port, 80, "port defaults to 80");
        assert!(!up.public_ip, "private address by default");
        assert_eq!(up.port_tag, DEFAULT_PORT_TAG);
        assert_eq!(
            up.secret_ref,
            Some(ObjRef::new("default", "gloo-tag-group1"))
        );
        assert_eq!(
            up.filters,
            vec![
                TagFilter::Key("gloo-id".into()),
                TagFilter::KvPair {
                    key: "gloo-tag".into(),
                    value: "group1".into()
                },
                TagFilter::KvPair {
                    key: "version".into(),
                    value: "v1.2.3".into()
                },
            ]
        );
        assert_eq!(c.secrets.len(), 1);
    }

    #[test]
    fn reads_the_new_shape_with_role_port_and_public_ip() {
        let c = load_one(
            r#"
kind: Upstream
metadata: {name: web}
spec:
  awsEc2:
    filters: [{key: Team}]
    region: eu-west-1
    roleArn: arn:aws:iam::123456789012:role/describe
    externalId: xyz
    publicIp: true
    port: 8080
    portTag: web-port
"#,
        )
        .unwrap();
        let up = &c.upstreams[&ObjRef::new("gloo-system", "web")];
        assert_eq!(up.port, 8080);
        assert!(up.public_ip);
        assert_eq!(
            up.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/describe")
        );
        assert_eq!(up.external_id.as_deref(), Some("xyz"));
        assert_eq!(up.port_tag, "web-port");
        assert_eq!(up.secret_ref, None);
    }

    #[test]
    fn reads_the_route_glooctl_makes() {
        let text = format!("{UPSTREAM_OLD_SHAPE}\n---\n{ROUTE}");
        let c = load_one(&text).unwrap();
        assert_eq!(c.virtual_services.len(), 1);
        let vs = &c.virtual_services[0];
        assert_eq!(vs.domains, vec!["*"]);
        assert_eq!(
            vs.routes,
            vec![Route {
                matcher: PathMatch::Exact("/echoapp".into()),
                upstream: ObjRef::new("gloo-system", "ec2-demo-upstream"),
                prefix_rewrite: Some("/".into()),
                hash_policies: vec![],
            }]
        );
    }

    #[test]
    fn unknown_upstream_in_a_route_names_document_and_field() {
        let err = load_one(ROUTE).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 1, "{text}");
        assert!(text.contains("document 1"), "{text}");
        assert!(
            text.contains("VirtualService gloo-system/default"),
            "{text}"
        );
        assert!(
            text.contains("spec.virtualHost.routes[0].routeAction.single.upstream"),
            "{text}"
        );
        assert!(
            text.contains("unknown upstream gloo-system/ec2-demo-upstream"),
            "{text}"
        );
        // With discovery on, a route may name an upstream that tags will define.
        let opts = LoadOptions {
            discover_upstreams: true,
            ..LoadOptions::default()
        };
        assert!(load(&[("gw.yaml".into(), ROUTE.into())], &opts).is_ok());
    }

    #[test]
    fn a_filter_without_key_or_kv_pair_is_rejected() {
        let err = load_one(
            "kind: Upstream\nmetadata: {name: a}\nspec:\n  awsEc2:\n    region: us-east-1\n    filters:\n    - key: x\n    - {}\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("gw.yaml: document 1 (Upstream gloo-system/a): spec.awsEc2.filters[1]: a filter needs `key`"), "{text}");
    }

    #[test]
    fn bad_yaml_names_the_document() {
        let text = format!("{UPSTREAM_OLD_SHAPE}---\nkind: Upstream\nmetadata: [unclosed\n");
        let err = load_one(&text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("document 3"), "{msg}");
        assert!(msg.contains("not valid YAML"), "{msg}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = load_one("kind: Upstream\nmetadata: {name: a}\nspec:\n  awsEc2:\n    region: us-east-1\n    port: eighty\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("spec.awsEc2.port"), "{msg}");
        let err = load_one("kind: Upstream\nmetadata: {name: a}\nspec:\n  awsEc2:\n    region: us-east-1\n    port: 70000\n").unwrap_err();
        assert!(err.to_string().contains("70000 is not a TCP port"), "{err}");
    }

    #[test]
    fn missing_region_secret_and_spec_are_errors_listed_together() {
        let err = load_one(
            "kind: Upstream\nmetadata: {name: a}\nspec:\n  awsEc2:\n    filters: []\n---\nkind: Upstream\nmetadata: {name: b}\nspec: {}\n---\nkind: Upstream\nmetadata: {name: c}\nspec:\n  awsEc2:\n    region: us-east-1\n    secretRef: {name: nope}\n",
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert_eq!(err.0[0].field, "spec.awsEc2.region");
        assert_eq!(err.0[1].field, "spec.awsEc2");
        assert!(
            err.0[2].message.contains("unknown secret default/nope"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_upstreams_and_both_shapes_are_rejected() {
        let one = "kind: Upstream\nmetadata: {name: a}\nspec:\n  awsEc2: {region: us-east-1}\n";
        let err = load_one(&format!("{one}---\n{one}")).unwrap_err();
        assert!(err.to_string().contains("already defined"), "{err}");
        let both = "kind: Upstream\nmetadata: {name: a}\nspec:\n  awsEc2: {region: us-east-1}\n  upstreamSpec:\n    awsEc2: {region: us-east-1}\n";
        assert!(load_one(both).unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn route_shapes_regex_prefix_and_old_matcher() {
        let text = r#"
kind: Upstream
metadata: {name: u}
spec: {awsEc2: {region: us-east-1}}
---
kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
    - matcher: {prefix: /old}
      routeAction: {single: {upstream: {name: u}}}
      routePlugins: {prefixRewrite: {prefixRewrite: /new}}
    - matchers: [{regex: "/items/[0-9]+"}]
      routeAction: {single: {upstream: {name: u}}}
    - routeAction: {single: {upstream: {name: u}}}
"#;
        let c = load_one(text).unwrap();
        let routes = &c.virtual_services[0].routes;
        assert_eq!(routes[0].matcher, PathMatch::Prefix("/old".into()));
        assert_eq!(routes[0].prefix_rewrite.as_deref(), Some("/new"));
        assert!(
            matches!(&routes[1].matcher, PathMatch::Regex(r) if r.is_match("/items/42") && !r.is_match("/items/42/x"))
        );
        assert_eq!(routes[2].matcher, PathMatch::Prefix("/".into()));
        let bad = text.replace("\"/items/[0-9]+\"", "\"/items/[\"");
        let err = load_one(&bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("spec.virtualHost.routes[1].matchers[0].regex"),
            "{err}"
        );
    }

    #[test]
    fn kubernetes_secrets_and_other_kinds() {
        let c = load_one(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: k, namespace: default}\ndata:\n  aws_access_key_id: QUtJQQ==\n  aws_secret_access_key: c2VjcmV0\n---\nkind: Gateway\nmetadata: {name: g}\n",
        )
        .unwrap();
        let s = &c.secrets[&ObjRef::new("default", "k")];
        assert_eq!(s.access_key_id, "AKIA");
        assert_eq!(c.warnings.len(), 1);
        let err = load_one("kind: Secret\nmetadata: {name: k}\n").unwrap_err();
        assert!(err.to_string().contains("a Secret needs"), "{err}");
    }

    #[test]
    fn missing_kind_is_an_error() {
        let err = load_one("metadata: {name: a}\n").unwrap_err();
        assert_eq!(err.0[0].field, "kind");
    }

    #[test]
    fn consistent_hashing_as_gloo_writes_it() {
        let text = r#"
kind: Upstream
metadata: {name: ring}
spec:
  awsEc2: {region: us-east-1}
  loadBalancerConfig:
    ringHash:
      ringHashConfig: {minimumRingSize: "2048", maximumRingSize: "8388608"}
---
kind: Upstream
metadata: {name: mag}
spec:
  upstreamSpec:
    awsEc2: {region: us-east-1}
    loadBalancerConfig: {maglev: {}}
---
kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
    - matchers: [{prefix: /}]
      routeAction: {single: {upstream: {name: ring}}}
      options:
        lbHash:
          hashPolicies:
          - header: X-User
            terminal: true
          - sourceIp: true
"#;
        let c = load_one(text).unwrap();
        assert_eq!(
            c.upstreams[&ObjRef::new("gloo-system", "ring")].hashing,
            Some(Hashing::RingHash { ring_size: 2048 })
        );
        assert_eq!(
            c.upstreams[&ObjRef::new("gloo-system", "mag")].hashing,
            Some(Hashing::Maglev)
        );
        assert_eq!(
            c.virtual_services[0].routes[0].hash_policies,
            vec![
                HashPolicy {
                    key: HashKey::Header("x-user".into()),
                    terminal: true
                },
                HashPolicy {
                    key: HashKey::SourceIp,
                    terminal: false
                }
            ]
        );
        let bad = text.replace("- sourceIp: true", "- cookie: {name: session}");
        let err = load_one(&bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("spec.virtualHost.routes[0].options.lbHash.hashPolicies[1].cookie"),
            "{err}"
        );
        let bad = text.replace("\"2048\"", "\"lots\"");
        let err = load_one(&bad).unwrap_err();
        assert!(
            err.to_string().contains(
                "spec.loadBalancerConfig.ringHash.ringHashConfig.minimumRingSize: \"lots\""
            ),
            "{err}"
        );
    }

    #[test]
    fn console_accounts_and_documents_stored_in_a_console() {
        let up = "kind: Upstream\nmetadata: {name: a}\nspec:\n  awsEc2:\n    region: us-east-1\n    secretRef: {name: prod, namespace: airlock-console}\n";
        let c = load_one(up).unwrap();
        let a = &c.upstreams[&ObjRef::new("gloo-system", "a")];
        assert_eq!(a.console_account(), Some("prod"), "no Secret needed");
        let with_role = up.replace(
            "    secretRef",
            "    roleArn: arn:aws:iam::1:role/r\n    secretRef",
        );
        assert!(load_one(&with_role)
            .unwrap_err()
            .to_string()
            .contains("spec.awsEc2.roleArn: cannot be combined with console account"));
        let console = LoadOptions {
            stored_in_console: true,
            ..LoadOptions::default()
        };
        let elsewhere = "kind: Upstream\nmetadata: {name: b}\nspec:\n  awsEc2:\n    region: us-east-1\n    secretRef: {name: local}\n";
        assert!(
            load(&[("c".into(), elsewhere.into())], &console).is_ok(),
            "a Secret of the gateway's own --secrets file"
        );
        let secret =
            "kind: Secret\nmetadata: {name: k}\naws: {accessKey: AKIA, secretKey: do-not-store}\n";
        let err = load(&[("c".into(), secret.into())], &console).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("kind: Secret documents are not stored in the console"),
            "{text}"
        );
        assert!(!text.contains("do-not-store"));
    }

    #[test]
    fn a_yaml_error_in_a_secrets_file_never_echoes_the_secret_next_to_it() {
        let secret = "wJalrXUtnFEMI-K7MDENG-SECRET";
        let head = "kind: Upstream\nmetadata: {name: a}\nspec: {awsEc2: {region: r}}\n---\nkind: Secret\nmetadata: {name: k}\naws:\n";
        // (the broken line, the line the error is on, what kind of mistake it is)
        let cases = [
            (format!("  secretKey: \"{secret}\n"), 8, "syntax error"),
            (format!("  secretKey: {secret}: x\n"), 8, "syntax error"),
            (format!("\tsecretKey: {secret}\n"), 8, "syntax error"),
            (format!("  secretKey: [{secret}\n"), 8, "syntax error"),
            (format!("  secretKey: \"\\q{secret}\"\n"), 8, "syntax error"),
            (
                format!("  secretKey: *{secret}\n"),
                8,
                "an alias names no anchor",
            ),
            (
                format!("  secretKey: a\n  secretKey: {secret}\n"),
                9,
                "a key is given twice",
            ),
            (format!("  secretKey: a\n {secret}\n"), 9, "syntax error"),
            (format!("  {secret}\n  secretKey: a\n"), 9, "syntax error"),
        ];
        for (broken, line, kind) in cases {
            let err = load_one(&format!("{head}{broken}")).unwrap_err();
            let text = err.to_string();
            assert!(!text.contains(secret), "{broken:?} echoed:\n{text}");
            assert!(!text.contains("MDENG"), "{broken:?} echoed part:\n{text}");
            assert!(
                text.contains("gw.yaml: document 2: not valid YAML at line "),
                "{text}"
            );
            assert!(
                text.contains(&format!("line {line}, column")),
                "{broken:?}: {text}"
            );
            assert!(text.contains(kind), "{broken:?}: {text}");
        }
    }

    #[test]
    fn line_numbers_count_from_the_top_of_the_file_across_end_markers() {
        let err = load_one("kind: Secret\nmetadata: {name: a}\n...\n---\n\nkind: [\n").unwrap_err();
        assert!(err.to_string().contains("at line 6, column"), "{err}");
    }
}
