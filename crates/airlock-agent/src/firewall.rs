//! The metadata-service lock (`airlock agent lock-imds`, `--lock-imds`): the user data holds
//! credentials, so only the agent's own user may reach the metadata service. A compromised web
//! application (SSRF), another local user, or a container or VM whose traffic the host routes
//! cannot read it. The packaged unit installs the lock before the agent reads the user data.
//!
//! The rules, for IPv4 (`iptables`, 169.254.169.254) and IPv6 (`ip6tables`, fd00:ec2::254):
//! on OUTPUT, an owner match rejects every user but the agent's; on FORWARD, everything routed
//! to the metadata address is rejected. Each rule is looked for (`-C`) before it is added, so
//! installing is idempotent. A host without `ip6tables`, or without IPv6, gets a warning: there
//! is no IPv6 path to lock.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::AgentError;

/// EC2's metadata service over IPv4.
pub const IMDS_IPV4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// EC2's metadata service over IPv6 (Nitro instances).
pub const IMDS_IPV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// The comment on the OUTPUT rule. It is part of the rule, so `-C` finds rules an earlier
/// version installed only while it stays the same.
const OUTPUT_COMMENT: &str = "airlock: metadata service for the agent only";
const FORWARD_COMMENT: &str = "airlock: no metadata service for routed traffic";

/// Which IP version, and so which tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `iptables`.
    V4,
    /// `ip6tables`.
    V6,
}

impl Family {
    /// The command that manages this family's rules.
    pub fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// Where a new rule goes in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// At the end (`-A`).
    Last,
    /// At the top (`-I CHAIN 1`): container runtimes put ACCEPT rules for their networks in
    /// FORWARD, and a rule appended after them would never be reached.
    First,
}

/// One firewall rule of the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// IPv4 or IPv6.
    pub family: Family,
    /// `OUTPUT` or `FORWARD`.
    pub chain: &'static str,
    /// Where it is added.
    pub placement: Placement,
    /// The match and target, as `iptables` takes them after the chain.
    pub spec: Vec<String>,
}

impl Rule {
    /// Arguments that ask whether the rule is there (exit status 0 when it is).
    pub fn check_args(&self) -> Vec<String> {
        let mut args = vec!["-w".to_owned(), "-C".to_owned(), self.chain.to_owned()];
        args.extend(self.spec.iter().cloned());
        args
    }

    /// Arguments that add the rule.
    pub fn add_args(&self) -> Vec<String> {
        let mut args = vec!["-w".to_owned()];
        match self.placement {
            Placement::Last => args.extend(["-A".to_owned(), self.chain.to_owned()]),
            Placement::First => {
                args.extend(["-I".to_owned(), self.chain.to_owned(), "1".to_owned()]);
            }
        }
        args.extend(self.spec.iter().cloned());
        args
    }
}

/// The metadata addresses to lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataAddresses {
    /// The IPv4 address.
    pub v4: Ipv4Addr,
    /// The IPv6 address.
    pub v6: Ipv6Addr,
}

/// The addresses to lock for a metadata endpoint URL: its own address, and EC2's address of
/// the other family. Refuses a host name (the rules need an address) and loopback (the lock is
/// for the real metadata service, not a test server on this machine).
pub fn metadata_addresses(endpoint: &str) -> Result<MetadataAddresses, AgentError> {
    let host = reqwest::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            AgentError::Usage(format!(
                "locking the metadata service needs an IP address in the metadata endpoint, not \
                 {endpoint}"
            ))
        })?;
    if ip.to_canonical().is_loopback() {
        return Err(AgentError::Usage(
            "locking the metadata service would firewall a loopback address; it is for the \
             real metadata service"
                .to_owned(),
        ));
    }
    Ok(match ip.to_canonical() {
        IpAddr::V4(v4) => MetadataAddresses { v4, v6: IMDS_IPV6 },
        IpAddr::V6(v6) => MetadataAddresses { v4: IMDS_IPV4, v6 },
    })
}

/// The lock's rules: for each family, OUTPUT lets only `uid` through, FORWARD lets nothing
/// through.
pub fn rules(addresses: MetadataAddresses, uid: u32) -> Vec<Rule> {
    let families = [
        (Family::V4, format!("{}/32", addresses.v4)),
        (Family::V6, format!("{}/128", addresses.v6)),
    ];
    families
        .into_iter()
        .flat_map(|(family, destination)| {
            [
                Rule {
                    family,
                    chain: "OUTPUT",
                    placement: Placement::Last,
                    spec: strings(&[
                        "-d",
                        &destination,
                        "-p",
                        "tcp",
                        "-m",
                        "owner",
                        "!",
                        "--uid-owner",
                        &uid.to_string(),
                        "-m",
                        "comment",
                        "--comment",
                        OUTPUT_COMMENT,
                        "-j",
                        "REJECT",
                    ]),
                },
                Rule {
                    family,
                    chain: "FORWARD",
                    placement: Placement::First,
                    spec: strings(&[
                        "-d",
                        &destination,
                        "-m",
                        "comment",
                        "--comment",
                        FORWARD_COMMENT,
                        "-j",
                        "REJECT",
                    ]),
                },
            ]
        })
        .collect()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// What happened to one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// It was there already.
    Present,
    /// It was added.
    Added,
    /// It was not installed, for a reason that is not a failure.
    Skipped(NoIpv6),
}

/// Why an IPv6 rule cannot be installed, when that is no failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoIpv6 {
    /// The kernel has no IPv6 (booted with `ipv6.disable=1`, or built without it).
    Disabled,
    /// `ip6tables` is not installed.
    NoTool,
}

/// Whether IPv6 rules are skipped: with no IPv6 in the kernel, or no `ip6tables`, there is
/// nothing to lock and nothing to lock it with. IPv4 has no such excuse.
pub fn ipv6_excuse(family: Family, ipv6_in_kernel: bool, tool_found: bool) -> Option<NoIpv6> {
    match (family, ipv6_in_kernel, tool_found) {
        (Family::V4, _, _) => None,
        (Family::V6, false, _) => Some(NoIpv6::Disabled),
        (Family::V6, true, false) => Some(NoIpv6::NoTool),
        (Family::V6, true, true) => None,
    }
}

/// The agent's user id (the owner of `/proc/self`).
pub fn current_uid() -> Result<u32, AgentError> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| AgentError::file("/proc/self", e))
}

/// Installs the lock for the metadata endpoint `endpoint`, for the user running this process.
pub fn lock(endpoint: &str) -> Result<(), AgentError> {
    let addresses = metadata_addresses(endpoint)?;
    let uid = current_uid()?;
    // Without IPv6 in the kernel there is no /proc/net/if_inet6.
    let ipv6_in_kernel = Path::new("/proc/net/if_inet6").exists();
    let mut skipped = None;
    for rule in rules(addresses, uid) {
        let (tool, chain) = (rule.family.tool(), rule.chain);
        match install(&rule, ipv6_in_kernel)? {
            Installed::Present => tracing::info!(tool, chain, "metadata lock already in place"),
            Installed::Added => tracing::info!(tool, chain, "metadata lock added"),
            Installed::Skipped(why) => skipped = Some(why),
        }
    }
    match skipped {
        Some(NoIpv6::Disabled) => {
            tracing::warn!(address = %addresses.v6, "IPv6 is disabled in the kernel: the IPv6 metadata address is unreachable and gets no rule")
        }
        Some(NoIpv6::NoTool) => {
            tracing::warn!(address = %addresses.v6, "ip6tables is not installed: the IPv6 metadata address is NOT locked (install ip6tables and run `airlock agent lock-imds` again)")
        }
        None => {}
    }
    tracing::info!(v4 = %addresses.v4, v6 = %addresses.v6, uid, "metadata service locked to the agent's user");
    Ok(())
}

/// Installs one rule unless it is there.
fn install(rule: &Rule, ipv6_in_kernel: bool) -> Result<Installed, AgentError> {
    let tool = rule.family.tool();
    let run = |args: Vec<String>| std::process::Command::new(tool).args(args).output();
    let checked = match run(rule.check_args()) {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match ipv6_excuse(rule.family, ipv6_in_kernel, false) {
                Some(why) => Ok(Installed::Skipped(why)),
                None => Err(AgentError::Other(format!("cannot run {tool}: {e}"))),
            };
        }
        Err(e) => return Err(AgentError::Other(format!("cannot run {tool}: {e}"))),
    };
    if checked.status.success() {
        return Ok(Installed::Present);
    }
    if let Some(why) = ipv6_excuse(rule.family, ipv6_in_kernel, true) {
        return Ok(Installed::Skipped(why));
    }
    let added =
        run(rule.add_args()).map_err(|e| AgentError::Other(format!("cannot run {tool}: {e}")))?;
    if !added.status.success() {
        return Err(AgentError::Other(format!(
            "{tool} refused the {} rule: {}",
            rule.chain,
            String::from_utf8_lossy(&added.stderr).trim()
        )));
    }
    Ok(Installed::Added)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ec2() -> MetadataAddresses {
        metadata_addresses("http://169.254.169.254").unwrap()
    }

    #[test]
    fn another_local_user_is_rejected_by_an_owner_match_on_output() {
        let all = rules(ec2(), 998);
        let output: Vec<String> = all
            .iter()
            .filter(|r| r.chain == "OUTPUT")
            .map(|r| format!("{} {}", r.family.tool(), r.add_args().join(" ")))
            .collect();
        assert_eq!(
            output,
            [
                "iptables -w -A OUTPUT -d 169.254.169.254/32 -p tcp -m owner ! --uid-owner 998 \
                 -m comment --comment airlock: metadata service for the agent only -j REJECT",
                "ip6tables -w -A OUTPUT -d fd00:ec2::254/128 -p tcp -m owner ! --uid-owner 998 \
                 -m comment --comment airlock: metadata service for the agent only -j REJECT",
            ]
        );
    }

    #[test]
    fn a_container_or_vm_routed_through_the_host_is_rejected_ahead_of_the_runtimes_rules() {
        let forward: Vec<String> = rules(ec2(), 0)
            .iter()
            .filter(|r| r.chain == "FORWARD")
            .map(|r| format!("{} {}", r.family.tool(), r.add_args().join(" ")))
            .collect();
        assert_eq!(
            forward,
            [
                "iptables -w -I FORWARD 1 -d 169.254.169.254/32 -m comment --comment \
                 airlock: no metadata service for routed traffic -j REJECT",
                "ip6tables -w -I FORWARD 1 -d fd00:ec2::254/128 -m comment --comment \
                 airlock: no metadata service for routed traffic -j REJECT",
            ]
        );
    }

    #[test]
    fn each_rule_is_looked_for_with_the_spec_it_is_added_with() {
        for rule in rules(ec2(), 5) {
            let check = rule.check_args();
            let add = rule.add_args();
            assert_eq!(&check[..3], ["-w", "-C", rule.chain]);
            assert_eq!(check[3..], add[add.len() - rule.spec.len()..]);
        }
    }

    #[test]
    fn the_lock_covers_both_metadata_addresses_whichever_the_endpoint_names() {
        assert_eq!(
            ec2(),
            MetadataAddresses {
                v4: IMDS_IPV4,
                v6: IMDS_IPV6
            }
        );
        assert_eq!(
            metadata_addresses("http://[fd00:ec2::254]/").unwrap(),
            ec2()
        );
        assert_eq!(
            metadata_addresses("http://169.254.169.254:80/").unwrap(),
            ec2()
        );
        assert_eq!(
            metadata_addresses("http://10.1.2.3").unwrap().v4,
            Ipv4Addr::new(10, 1, 2, 3)
        );
        for refused in [
            "http://127.0.0.1:9000",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://metadata.internal/",
            "not a url",
        ] {
            assert!(
                matches!(metadata_addresses(refused), Err(AgentError::Usage(_))),
                "{refused}"
            );
        }
    }

    #[test]
    fn missing_ipv6_is_an_excuse_only_for_ipv6_rules() {
        assert_eq!(ipv6_excuse(Family::V6, false, true), Some(NoIpv6::Disabled));
        assert_eq!(ipv6_excuse(Family::V6, true, false), Some(NoIpv6::NoTool));
        assert_eq!(ipv6_excuse(Family::V6, true, true), None);
        assert_eq!(ipv6_excuse(Family::V4, false, false), None);
    }
}
