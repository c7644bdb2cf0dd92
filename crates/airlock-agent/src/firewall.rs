//! `--lock-imds`: once the payload is stored, only the agent's own user may reach the metadata
//! service, so a compromised web application (SSRF) or another local user cannot read the
//! user data and its credentials. The rule is iptables' owner match on the OUTPUT chain.

use std::net::Ipv4Addr;

use crate::AgentError;

/// The iptables arguments (without the `-C`/`-A` command) of the rule that rejects traffic to
/// the metadata service from every user but `uid`.
pub fn lock_rule(imds_ip: Ipv4Addr, uid: u32) -> Vec<String> {
    [
        "OUTPUT",
        "-d",
        &format!("{imds_ip}/32"),
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
        "airlock: metadata service for the agent only",
        "-j",
        "REJECT",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The IPv4 address of the metadata endpoint URL, refusing anything else (a host name, IPv6,
/// a loopback test endpoint).
pub fn imds_ipv4(endpoint: &str) -> Result<Ipv4Addr, AgentError> {
    let host = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    let ip: Ipv4Addr = host.parse().map_err(|_| {
        AgentError::Usage(format!(
            "--lock-imds needs an IPv4 metadata endpoint, not {endpoint}"
        ))
    })?;
    if ip.is_loopback() {
        return Err(AgentError::Usage(
            "--lock-imds would firewall a loopback address; it is for the real metadata service"
                .to_owned(),
        ));
    }
    Ok(ip)
}

/// The agent's user id (the owner of `/proc/self`).
pub fn current_uid() -> Result<u32, AgentError> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| AgentError::file("/proc/self", e))
}

/// Installs the rule unless `iptables -C` finds it already there.
pub fn lock(imds_ip: Ipv4Addr) -> Result<(), AgentError> {
    let rule = lock_rule(imds_ip, current_uid()?);
    let run = |command: &str| {
        std::process::Command::new("iptables")
            .arg("-w")
            .arg(command)
            .args(&rule)
            .output()
            .map_err(|e| AgentError::Other(format!("cannot run iptables: {e}")))
    };
    if run("-C")?.status.success() {
        tracing::info!(%imds_ip, "metadata service already locked to the agent's user");
        return Ok(());
    }
    let out = run("-A")?;
    if !out.status.success() {
        return Err(AgentError::Other(format!(
            "iptables refused the rule: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    tracing::info!(%imds_ip, "metadata service locked to the agent's user");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_owner_match_rule_without_running_it() {
        let ip = imds_ipv4("http://169.254.169.254").unwrap();
        assert_eq!(
            lock_rule(ip, 0).join(" "),
            "OUTPUT -d 169.254.169.254/32 -p tcp -m owner ! --uid-owner 0 -m comment --comment \
             airlock: metadata service for the agent only -j REJECT"
        );
        assert!(imds_ipv4("http://127.0.0.1:9000").is_err());
        assert!(imds_ipv4("http://[fd00:ec2::254]").is_err());
        assert_eq!(
            imds_ipv4("http://169.254.169.254:80/").unwrap(),
            Ipv4Addr::new(169, 254, 169, 254)
        );
    }
}
