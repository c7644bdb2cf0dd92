//! Who asks: the console user and the global condition keys AWS would set for them.

use airlock_policy::Context;
use chrono::{DateTime, Utc};
use std::net::IpAddr;

/// The caller of a console request, as the policy language sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The console user name (`aws:username`, `aws:userid`).
    pub user: String,
    /// Whether the login passed a second factor (`aws:MultiFactorAuthPresent`).
    pub mfa: bool,
    /// Where the request came from (`aws:SourceIp`).
    pub source_ip: Option<IpAddr>,
    /// When it is decided (`aws:CurrentTime`, `aws:EpochTime`).
    pub now: DateTime<Utc>,
}

impl Principal {
    /// A principal deciding now.
    pub fn new(user: impl Into<String>, mfa: bool, source_ip: Option<IpAddr>) -> Principal {
        Principal {
            user: user.into(),
            mfa,
            source_ip,
            now: Utc::now(),
        }
    }

    /// Adds the global keys to a request context.
    pub fn add_global_keys(&self, context: &mut Context) {
        context.insert("aws:username", self.user.as_str());
        context.insert("aws:userid", self.user.as_str());
        context.insert(
            "aws:CurrentTime",
            self.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        context.insert("aws:EpochTime", self.now.timestamp().to_string());
        context.insert(
            "aws:MultiFactorAuthPresent",
            if self.mfa { "true" } else { "false" },
        );
        if let Some(ip) = self.source_ip {
            context.insert("aws:SourceIp", ip.to_string());
        }
    }

    /// The keys a policy variable (`${aws:username}`) may name, for proving session policies.
    pub fn variables(&self) -> Context {
        let mut context = Context::new();
        context.insert("aws:username", self.user.as_str());
        context.insert("aws:userid", self.user.as_str());
        context
    }

    /// Whether `key` is one only the console sets: a client may not claim it.
    pub fn is_global_key(key: &str) -> bool {
        matches!(
            key.to_ascii_lowercase().as_str(),
            "aws:username"
                | "aws:userid"
                | "aws:currenttime"
                | "aws:epochtime"
                | "aws:multifactorauthpresent"
                | "aws:sourceip"
        )
    }
}
