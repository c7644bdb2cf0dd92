//! Whether an instance backs an upstream, and if not, why: the one rule the gateway routes by
//! and the console explains its gateway page with, so the two can never disagree.

use crate::config::Upstream;
use airlock_cloud::Instance;
use std::net::{IpAddr, SocketAddr};

/// What an upstream makes of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// It backs the upstream at this address and port.
    Member(SocketAddr),
    /// It does not, for this reason.
    Excluded(Exclusion),
}

/// Why an instance does not back an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// Only running instances are routed to.
    NotRunning(String),
    /// Its tags do not satisfy this filter of the upstream.
    Unmatched(crate::filter::TagFilter),
    /// Its port tag does not hold a port.
    BadPortTag {
        /// The port tag's key.
        tag: String,
        /// What it holds.
        value: String,
    },
    /// It has no address of the kind the upstream routes to.
    NoAddress {
        /// True when the upstream routes to public addresses.
        public: bool,
    },
}

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exclusion::NotRunning(state) => {
                write!(f, "it is {state}; only running instances are routed to")
            }
            Exclusion::Unmatched(filter) => write!(f, "its tags do not match {filter}"),
            Exclusion::BadPortTag { tag, value } => {
                write!(f, "tag {tag}={value:?} is not a port (1-65535)")
            }
            Exclusion::NoAddress { public } => write!(
                f,
                "it has no {} address",
                if *public { "public" } else { "private" }
            ),
        }
    }
}

/// Whether `instance` backs `up`: running, every tag filter matched, a port (the port tag's
/// value, else the upstream's) and the kind of address the upstream routes to.
pub fn membership(up: &Upstream, instance: &Instance) -> Membership {
    if instance.state != "running" {
        return Membership::Excluded(Exclusion::NotRunning(instance.state.clone()));
    }
    if let Some(filter) = up.filters.iter().find(|f| !f.matches(&instance.tags)) {
        return Membership::Excluded(Exclusion::Unmatched(filter.clone()));
    }
    let port = match instance.tag(&up.port_tag) {
        None => up.port,
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => {
                return Membership::Excluded(Exclusion::BadPortTag {
                    tag: up.port_tag.clone(),
                    value: v.to_owned(),
                })
            }
        },
    };
    let ip = if up.public_ip {
        &instance.public_ip
    } else {
        &instance.private_ip
    };
    match ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) {
        Some(ip) => Membership::Member(SocketAddr::new(ip, port)),
        None => Membership::Excluded(Exclusion::NoAddress {
            public: up.public_ip,
        }),
    }
}
