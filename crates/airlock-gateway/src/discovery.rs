//! Finding each upstream's instances. The upstreams are grouped by (credentials, role, external
//! id, region, endpoint) and each group is listed with **one** paginated `DescribeInstances` per
//! refresh, `instance-state-name=running` and (when every upstream of the group requires some
//! tag) a `tag-key` filter pushed to the server; tag filters are then applied here, exactly and
//! case-sensitively. Planning and membership are pure functions; the [`Discovery`] trait is the
//! only door to EC2, so they are tested without it.

use crate::balance::Endpoint;
use crate::config::{ObjRef, Upstream, DEFAULT_NAMESPACE, DEFAULT_PORT_TAG, UPSTREAM_TAG};
use crate::filter::TagFilter;
use airlock_cloud::{AccessKey, Cloud, CloudError, Filter, Instance, Target};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

/// Who lists a group's instances: the credentials and where they apply. Holds the secret, so
/// it prints only its [`label`](GroupKey::label).
#[derive(Clone)]
pub struct GroupKey {
    /// AWS region.
    pub region: String,
    /// Access key id (public half).
    pub access_key_id: String,
    /// Secret half.
    pub secret_access_key: SecretString,
    /// Session token.
    pub session_token: Option<SecretString>,
    /// Role to assume.
    pub role_arn: Option<String>,
    /// External id for the role.
    pub external_id: Option<String>,
    /// EC2 endpoint override (tests: moto).
    pub endpoint_url: Option<String>,
    /// A console account to list through (`secretRef` in namespace `airlock-console`); the key
    /// fields are then empty, as the key stays in the console.
    pub console_account: Option<String>,
}

impl GroupKey {
    fn identity(
        &self,
    ) -> (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    ) {
        (
            self.console_account.clone().unwrap_or_default(),
            self.region.clone(),
            self.access_key_id.clone(),
            self.secret_access_key.expose_secret().to_owned(),
            self.session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
                .unwrap_or_default(),
            self.role_arn.clone().unwrap_or_default(),
            self.external_id.clone().unwrap_or_default(),
            self.endpoint_url.clone().unwrap_or_default(),
        )
    }

    /// A printable name without secrets: `region/access-key-id[/role]`.
    pub fn label(&self) -> String {
        if let Some(account) = &self.console_account {
            return format!("{}/console:{account}", self.region);
        }
        match &self.role_arn {
            Some(role) => format!("{}/{}/{role}", self.region, self.access_key_id),
            None => format!("{}/{}", self.region, self.access_key_id),
        }
    }

    /// The `airlock_cloud` target for this group.
    pub fn target(&self) -> Target {
        Target {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            credentials: AccessKey {
                access_key_id: self.access_key_id.clone(),
                secret_access_key: self.secret_access_key.clone(),
                session_token: self.session_token.clone(),
            },
            role_arn: self.role_arn.clone(),
            external_id: self.external_id.clone(),
        }
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl std::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupKey({})", self.label())
    }
}

/// Lists the running instances a group's credentials see. One call per group per refresh.
#[async_trait]
pub trait Discovery: Send + Sync {
    /// `DescribeInstances` with these server-side filters, every page.
    async fn list(&self, group: &GroupKey, filters: &[Filter])
        -> Result<Vec<Instance>, CloudError>;
}

/// The production [`Discovery`]: EC2 clients from an `airlock_cloud::Cloud`.
pub struct CloudDiscovery {
    cloud: Arc<dyn Cloud>,
}

impl CloudDiscovery {
    /// Discovery through this cloud (normally `airlock_aws::AwsCloud`).
    pub fn new(cloud: Arc<dyn Cloud>) -> Self {
        CloudDiscovery { cloud }
    }
}

#[async_trait]
impl Discovery for CloudDiscovery {
    async fn list(
        &self,
        group: &GroupKey,
        filters: &[Filter],
    ) -> Result<Vec<Instance>, CloudError> {
        let ec2 = self.cloud.ec2(&group.target()).await?;
        ec2.describe_instances(filters, &[]).await
    }
}

/// One listing to make in a refresh, and the upstreams it feeds.
#[derive(Clone, Debug)]
pub struct Group {
    /// Credentials and region.
    pub key: GroupKey,
    /// Upstreams written in the configuration that this listing feeds.
    pub upstreams: Vec<ObjRef>,
    /// True when `--discover-upstreams` reads this listing for `airlock:upstream` tags.
    pub discover: bool,
    /// Server-side filters.
    pub filters: Vec<Filter>,
}

/// Resolves an upstream's credentials; `None` when it has none.
pub type Resolve<'a> = dyn Fn(&Upstream) -> Option<GroupKey> + 'a;

/// Plans the listings of a refresh: one per distinct credentials group.
/// `discover` is the group `--discover-upstreams` lists with, if on.
/// Upstreams without resolvable credentials are returned separately.
pub fn plan(
    upstreams: &BTreeMap<ObjRef, Upstream>,
    resolve: &Resolve<'_>,
    discover: Option<GroupKey>,
) -> (Vec<Group>, Vec<ObjRef>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut missing = Vec::new();
    // The key each upstream contributes to a `tag-key` filter; `None` when it requires no tag.
    let mut keys: Vec<Vec<Option<String>>> = Vec::new();
    let mut push = |key: GroupKey, id: Option<&Upstream>, groups: &mut Vec<Group>| {
        let pos = match groups.iter().position(|g| g.key == key) {
            Some(p) => p,
            None => {
                groups.push(Group {
                    key,
                    upstreams: vec![],
                    discover: false,
                    filters: vec![],
                });
                keys.push(vec![]);
                groups.len() - 1
            }
        };
        let (Some(group), Some(group_keys)) = (groups.get_mut(pos), keys.get_mut(pos)) else {
            return;
        };
        match id {
            Some(up) => {
                group.upstreams.push(up.id.clone());
                group_keys.push(up.filters.first().map(|f| f.key().to_owned()));
            }
            None => {
                group.discover = true;
                group_keys.push(Some(UPSTREAM_TAG.to_owned()));
            }
        }
    };
    for up in upstreams.values() {
        match resolve(up) {
            Some(key) => push(key, Some(up), &mut groups),
            None => missing.push(up.id.clone()),
        }
    }
    if let Some(key) = discover {
        push(key, None, &mut groups);
    }
    for (g, ks) in groups.iter_mut().zip(keys) {
        g.filters
            .push(Filter::new("instance-state-name", "running"));
        if ks.iter().all(Option::is_some) {
            let values: BTreeSet<String> = ks.into_iter().flatten().collect();
            g.filters.push(Filter {
                name: "tag-key".into(),
                values: values.into_iter().collect(),
            });
        }
    }
    (groups, missing)
}

/// An instance chosen for an upstream, before live health state is attached.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// Instance id.
    pub instance_id: String,
    /// Address and port.
    pub addr: SocketAddr,
    /// Instance state.
    pub state: String,
    /// The filters that matched.
    pub matched: Vec<TagFilter>,
}

/// The instances of `instances` that belong to `up`, ordered by instance id, plus a warning
/// per instance skipped for a bad port tag or a missing address.
pub fn members(up: &Upstream, instances: &[Instance]) -> (Vec<Member>, Vec<String>) {
    use airlock_gateway_config::membership::{membership, Exclusion, Membership};
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for inst in instances {
        match membership(up, inst) {
            Membership::Member(addr) => out.push(Member {
                instance_id: inst.instance_id.clone(),
                addr,
                state: inst.state.clone(),
                matched: up.filters.clone(),
            }),
            // Not running or not tagged for it: simply not this upstream's.
            Membership::Excluded(Exclusion::NotRunning(_) | Exclusion::Unmatched(_)) => {}
            Membership::Excluded(why) => warnings.push(format!(
                "upstream {}: instance {} skipped: {why}",
                up.id, inst.instance_id
            )),
        }
    }
    out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id).then(a.addr.cmp(&b.addr)));
    (out, warnings)
}

/// The upstreams `--discover-upstreams` makes from `airlock:upstream=<name>` tags, except names
/// the configuration already defines.
pub fn discovered_upstreams(
    instances: &[Instance],
    region: &str,
    port: u16,
    defined: &BTreeMap<ObjRef, Upstream>,
) -> Vec<Upstream> {
    let names: BTreeSet<&str> = instances
        .iter()
        .filter_map(|i| i.tag(UPSTREAM_TAG))
        .filter(|n| !n.is_empty())
        .collect();
    names
        .into_iter()
        .map(|name| Upstream {
            id: ObjRef::new(DEFAULT_NAMESPACE, name),
            filters: vec![TagFilter::KvPair {
                key: UPSTREAM_TAG.into(),
                value: name.into(),
            }],
            region: region.to_owned(),
            secret_ref: None,
            role_arn: None,
            external_id: None,
            public_ip: false,
            port,
            port_tag: DEFAULT_PORT_TAG.into(),
            discovered: true,
            hashing: None,
        })
        .filter(|u| !defined.contains_key(&u.id))
        .collect()
}

/// Attaches shared health state to members, reusing the state of addresses already known.
pub fn endpoints(
    members: Vec<Member>,
    health: &mut BTreeMap<SocketAddr, Arc<crate::balance::Health>>,
) -> Vec<Endpoint> {
    members
        .into_iter()
        .map(|m| Endpoint {
            health: health.entry(m.addr).or_default().clone(),
            instance_id: m.instance_id,
            addr: m.addr,
            state: m.state,
            matched_filters: m.matched,
        })
        .collect()
}

/// True when AWS asked us to slow down.
pub fn is_throttle(e: &CloudError) -> bool {
    matches!(
        e.code.as_deref(),
        Some(
            "RequestLimitExceeded"
                | "Throttling"
                | "ThrottlingException"
                | "TooManyRequestsException"
        )
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use airlock_cloud::Tag;

    fn key(region: &str, id: &str) -> GroupKey {
        GroupKey {
            region: region.into(),
            access_key_id: id.into(),
            secret_access_key: SecretString::from("s"),
            session_token: None,
            role_arn: None,
            external_id: None,
            endpoint_url: None,
            console_account: None,
        }
    }

    fn up(name: &str, filters: Vec<TagFilter>, region: &str) -> Upstream {
        Upstream {
            id: ObjRef::new("gloo-system", name),
            filters,
            region: region.into(),
            secret_ref: None,
            role_arn: None,
            external_id: None,
            public_ip: false,
            port: 80,
            port_tag: DEFAULT_PORT_TAG.into(),
            discovered: false,
            hashing: None,
        }
    }

    fn inst(id: &str, ip: &str, state: &str, tags: &[(&str, &str)]) -> Instance {
        Instance {
            instance_id: id.into(),
            image_id: None,
            instance_type: None,
            state: state.into(),
            private_ip: Some(ip.into()),
            public_ip: Some("127.0.1.1".into()),
            subnet_id: None,
            vpc_id: None,
            launch_time: None,
            tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
            availability_zone: None,
            root_device_name: None,
        }
    }

    #[test]
    fn one_listing_per_credentials_and_region_never_per_upstream() {
        let mut ups = BTreeMap::new();
        for (n, r) in [("a", "us-east-1"), ("b", "us-east-1"), ("c", "eu-west-1")] {
            let u = up(n, vec![TagFilter::Key(format!("k-{n}"))], r);
            ups.insert(u.id.clone(), u);
        }
        let (groups, missing) = plan(&ups, &|u: &Upstream| Some(key(&u.region, "AKIA1")), None);
        assert!(missing.is_empty());
        assert_eq!(groups.len(), 2);
        let east = groups.iter().find(|g| g.key.region == "us-east-1").unwrap();
        assert_eq!(east.upstreams.len(), 2);
        assert_eq!(
            east.filters[0],
            Filter::new("instance-state-name", "running")
        );
        assert_eq!(
            east.filters[1],
            Filter {
                name: "tag-key".into(),
                values: vec!["k-a".into(), "k-b".into()]
            }
        );
    }

    #[test]
    fn no_tag_key_filter_when_an_upstream_requires_no_tag() {
        let mut ups = BTreeMap::new();
        let a = up("a", vec![TagFilter::Key("x".into())], "r");
        let b = up("b", vec![], "r");
        ups.insert(a.id.clone(), a);
        ups.insert(b.id.clone(), b);
        let (groups, _) = plan(
            &ups,
            &|_: &Upstream| Some(key("r", "AKIA1")),
            Some(key("r", "AKIA1")),
        );
        assert_eq!(groups.len(), 1, "the discovery listing is shared too");
        assert!(groups[0].discover);
        assert_eq!(groups[0].filters.len(), 1);
        let (groups, missing) = plan(
            &ups,
            &|u: &Upstream| (u.id.name == "a").then(|| key("r", "K")),
            None,
        );
        assert_eq!(groups.len(), 1);
        assert_eq!(missing, vec![ObjRef::new("gloo-system", "b")]);
    }

    #[test]
    fn members_match_all_filters_ordered_by_instance_id_with_port_tags() {
        let u = up(
            "a",
            vec![
                TagFilter::Key("gloo-id".into()),
                TagFilter::KvPair {
                    key: "gloo-tag".into(),
                    value: "group1".into(),
                },
            ],
            "r",
        );
        let instances = vec![
            inst(
                "i-3",
                "127.0.0.3",
                "running",
                &[
                    ("gloo-id", "1"),
                    ("gloo-tag", "group1"),
                    ("airlock:port", "8081"),
                ],
            ),
            inst(
                "i-1",
                "127.0.0.1",
                "running",
                &[("gloo-id", "1"), ("gloo-tag", "group1")],
            ),
            inst(
                "i-2",
                "127.0.0.2",
                "running",
                &[("gloo-id", "1"), ("gloo-tag", "Group1")],
            ),
            inst("i-4", "127.0.0.4", "running", &[("gloo-tag", "group1")]),
            inst(
                "i-5",
                "127.0.0.5",
                "stopping",
                &[("gloo-id", "1"), ("gloo-tag", "group1")],
            ),
            inst(
                "i-6",
                "127.0.0.6",
                "running",
                &[
                    ("gloo-id", "1"),
                    ("gloo-tag", "group1"),
                    ("airlock:port", "http"),
                ],
            ),
        ];
        let (m, warnings) = members(&u, &instances);
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.instance_id.as_str(), m.addr.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("i-1", "127.0.0.1:80".to_owned()),
                ("i-3", "127.0.0.3:8081".to_owned())
            ]
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("i-6") && warnings[0].contains("not a port"),
            "{warnings:?}"
        );
        let mut public = u.clone();
        public.public_ip = true;
        assert_eq!(
            members(&public, &instances).0[0].addr.ip().to_string(),
            "127.0.1.1"
        );
    }

    #[test]
    fn discovered_upstreams_come_from_the_upstream_tag() {
        let instances = vec![
            inst(
                "i-1",
                "127.0.0.1",
                "running",
                &[("airlock:upstream", "web")],
            ),
            inst(
                "i-2",
                "127.0.0.2",
                "running",
                &[("airlock:upstream", "api")],
            ),
            inst(
                "i-3",
                "127.0.0.3",
                "running",
                &[("airlock:upstream", "web")],
            ),
        ];
        let mut defined = BTreeMap::new();
        let api = up("api", vec![], "r");
        defined.insert(api.id.clone(), api);
        let found = discovered_upstreams(&instances, "r", 8080, &defined);
        assert_eq!(found.len(), 1, "a YAML upstream wins over a discovered one");
        assert_eq!(found[0].id.name, "web");
        assert_eq!(members(&found[0], &instances).0.len(), 2);
    }

    #[test]
    fn health_state_is_shared_by_address() {
        let mut health = BTreeMap::new();
        let m = Member {
            instance_id: "i-1".into(),
            addr: "127.0.0.1:80".parse().unwrap(),
            state: "running".into(),
            matched: vec![],
        };
        let a = endpoints(vec![m.clone()], &mut health);
        let b = endpoints(vec![m], &mut health);
        assert!(Arc::ptr_eq(&a[0].health, &b[0].health));
    }

    #[test]
    fn labels_never_show_the_secret() {
        let mut k = key("us-east-1", "AKIA1");
        k.secret_access_key = SecretString::from("very-secret-value");
        let shown = format!("{k:?} {}", k.label());
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert_eq!(k.label(), "us-east-1/AKIA1");
    }
}
