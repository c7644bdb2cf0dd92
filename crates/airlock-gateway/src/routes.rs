//! Choosing a route for a request the way Gloo (Envoy) does: the virtual service by `Host`
//! (exact domain, then the longest `*.suffix`, then `*`), then its first route whose matcher
//! accepts the path, then the path rewrite. Pure functions over the [`Config`](crate::config::Config).
//! Every request looks a route up, so the table is prepared once (domains lower-cased) and a
//! lookup allocates nothing.

use crate::config::{PathMatch, Route, VirtualService};
use http::uri::{InvalidUri, PathAndQuery};
use http::Uri;

/// The virtual services of a configuration, ready for lookups.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Their domains lower-cased, as host names compare.
    services: Vec<VirtualService>,
}

impl RouteTable {
    /// A table over these virtual services (file order is kept for ties).
    pub fn new(mut services: Vec<VirtualService>) -> Self {
        for d in services.iter_mut().flat_map(|vs| vs.domains.iter_mut()) {
            d.make_ascii_lowercase();
        }
        RouteTable { services }
    }

    /// The route for a host (with or without `:port`) and a path (without the query string).
    pub fn select(&self, host: &str, path: &str) -> Option<&Route> {
        let vs = self.virtual_service(host)?;
        vs.routes.iter().find(|r| path_matches(&r.matcher, path))
    }

    fn virtual_service(&self, host: &str) -> Option<&VirtualService> {
        let bare = strip_port(host);
        let exact = self.services.iter().find(|vs| {
            vs.domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host) || d.eq_ignore_ascii_case(bare))
        });
        if exact.is_some() {
            return exact;
        }
        let mut best: Option<(&VirtualService, usize)> = None;
        for vs in &self.services {
            for d in &vs.domains {
                if let Some(suffix) = d.strip_prefix('*') {
                    if suffix.is_empty() {
                        continue;
                    }
                    if ends_with_ignore_case(bare, suffix)
                        && bare.len() > suffix.len()
                        && best.is_none_or(|(_, len)| suffix.len() > len)
                    {
                        best = Some((vs, suffix.len()));
                    }
                }
            }
        }
        if let Some((vs, _)) = best {
            return Some(vs);
        }
        self.services
            .iter()
            .find(|vs| vs.domains.iter().any(|d| d == "*"))
    }
}

/// `host` ends with `lower_suffix` (lower-case), whatever the case of `host`.
fn ends_with_ignore_case(host: &str, lower_suffix: &str) -> bool {
    host.len()
        .checked_sub(lower_suffix.len())
        .and_then(|start| host.as_bytes().get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case(lower_suffix.as_bytes()))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| h)
            .trim_start_matches('[');
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// True when the matcher accepts the path (case-sensitive, as Gloo's default).
pub fn path_matches(matcher: &PathMatch, path: &str) -> bool {
    match matcher {
        PathMatch::Exact(p) => path == p,
        PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        PathMatch::Regex(re) => re.is_match(path),
    }
}

/// The path and query sent upstream: the matched part of the path replaced by the route's
/// `prefixRewrite` (the whole path for an exact matcher), the query string kept.
pub fn rewrite(route: &Route, path: &str, query: Option<&str>) -> String {
    let new_path = match (&route.prefix_rewrite, &route.matcher) {
        (Some(to), PathMatch::Exact(_)) => to.clone(),
        (Some(to), PathMatch::Prefix(p)) => format!("{to}{}", &path[p.len().min(path.len())..]),
        _ => path.to_owned(),
    };
    match query {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    }
}

/// True when the route changes the path an endpoint gets (a regex matcher never does).
pub fn rewrites(route: &Route) -> bool {
    route.prefix_rewrite.is_some() && !matches!(route.matcher, PathMatch::Regex(_))
}

/// The origin-form URI an endpoint gets: the path and query as received (shared, not copied)
/// unless the route rewrites the path, then [`rewrite`]'s.
pub fn upstream_uri(route: &Route, uri: &Uri) -> Result<Uri, InvalidUri> {
    match uri.path_and_query() {
        Some(pq) if !rewrites(route) && !pq.path().is_empty() => Ok(Uri::from(pq.clone())),
        _ => Ok(Uri::from(PathAndQuery::try_from(rewrite(
            route,
            uri.path(),
            uri.query(),
        ))?)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::ObjRef;

    fn route(m: PathMatch, to: &str, rewrite: Option<&str>) -> Route {
        Route {
            matcher: m,
            upstream: ObjRef::new("gloo-system", to),
            prefix_rewrite: rewrite.map(str::to_owned),
            hash_policies: vec![],
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            VirtualService {
                id: ObjRef::new("gloo-system", "any"),
                domains: vec!["*".into()],
                routes: vec![
                    route(PathMatch::Exact("/echoapp".into()), "echo", Some("/")),
                    route(PathMatch::Prefix("/api".into()), "api", Some("/v1")),
                    route(
                        PathMatch::Regex(regex::Regex::new("^(?:/items/[0-9]+)$").unwrap()),
                        "items",
                        None,
                    ),
                ],
            },
            VirtualService {
                id: ObjRef::new("gloo-system", "shop"),
                domains: vec!["shop.example.com".into(), "*.example.com".into()],
                routes: vec![route(PathMatch::Prefix("/".into()), "shop", None)],
            },
        ])
    }

    #[test]
    fn exact_match_with_prefix_rewrite_as_glooctl_makes_it() {
        let t = table();
        let r = t.select("gw:8080", "/echoapp").unwrap();
        assert_eq!(r.upstream.name, "echo");
        assert_eq!(rewrite(r, "/echoapp", None), "/");
        assert_eq!(rewrite(r, "/echoapp", Some("a=1")), "/?a=1");
        let uri: Uri = "/echoapp?a=1".parse().unwrap();
        assert_eq!(upstream_uri(r, &uri).unwrap(), "/?a=1");
        // Exact means exact: a longer path falls through to no route.
        assert!(t.select("gw", "/echoapp/x").is_none());
        assert!(t.select("gw", "/Echoapp").is_none(), "case-sensitive");
    }

    #[test]
    fn prefix_rewrite_replaces_only_the_matched_prefix() {
        let t = table();
        let r = t.select("gw", "/api/users").unwrap();
        assert_eq!(rewrite(r, "/api/users", None), "/v1/users");
        assert_eq!(
            rewrite(r, "/apix", None),
            "/v1x",
            "Envoy rewrites literally"
        );
    }

    #[test]
    fn regex_matches_the_whole_path() {
        let t = table();
        assert_eq!(t.select("gw", "/items/12").unwrap().upstream.name, "items");
        // Not rewritten: the path and query go as received, absolute-form or not.
        let r = t.select("gw", "/items/12").unwrap();
        let uri: Uri = "http://gw:8080/items/12?x=%41".parse().unwrap();
        assert_eq!(upstream_uri(r, &uri).unwrap(), "/items/12?x=%41");
        assert!(t.select("gw", "/items/12/x").is_none());
    }

    #[test]
    fn hosts_choose_virtual_services() {
        let t = table();
        assert_eq!(
            t.select("shop.example.com", "/x").unwrap().upstream.name,
            "shop"
        );
        assert_eq!(
            t.select("SHOP.example.com:443", "/x")
                .unwrap()
                .upstream
                .name,
            "shop"
        );
        assert_eq!(
            t.select("a.example.com", "/x").unwrap().upstream.name,
            "shop"
        );
        assert_eq!(
            t.select("A.Example.COM", "/x").unwrap().upstream.name,
            "shop"
        );
        assert!(
            t.select("other.org", "/x").is_none(),
            "the * host has no / route"
        );
        assert_eq!(t.select("other.org", "/api").unwrap().upstream.name, "api");
    }
}
