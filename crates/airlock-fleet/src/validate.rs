//! Checks on request fields made before anything reaches EC2, with EC2's own limits, so a bad
//! request fails naming its field and nothing is half-done.

use airlock_cloud::{SecurityGroupRule, Tag};
use std::net::{IpAddr, Ipv4Addr};

/// A request field that EC2 would refuse, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The JSON path of the field, e.g. `rules[0].cidr`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The result of a check.
pub type Checked<T = ()> = Result<T, FieldError>;

/// EC2 allows at most 50 user tags per resource.
pub const MAX_TAGS: usize = 50;
/// Tag keys are at most 128 Unicode characters.
pub const MAX_TAG_KEY: usize = 128;
/// Tag values are at most 256 Unicode characters.
pub const MAX_TAG_VALUE: usize = 256;

/// Validates tags as EC2 would: count (with `reserved` more added by the caller), key and value
/// lengths, the `aws:` prefix, and keys given twice (or twice in different cases).
pub fn tags(field: &str, tags: &[Tag], reserved: usize) -> Checked {
    if tags.len() + reserved > MAX_TAGS {
        return Err(FieldError::new(
            field,
            format!(
                "{} tags given; EC2 allows {MAX_TAGS} per resource and {reserved} are added for you, so at most {}",
                tags.len(),
                MAX_TAGS - reserved
            ),
        ));
    }
    // IAM reads tag keys without regard to case, EC2 keeps both: `owner` and `Owner` would be
    // one condition key with two values, and a policy could be decided on either.
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for (i, tag) in tags.iter().enumerate() {
        let at = format!("{field}[{i}].key");
        let keylen = tag.key.chars().count();
        if keylen == 0 {
            return Err(FieldError::new(at, "tag key is empty"));
        }
        if keylen > MAX_TAG_KEY {
            return Err(FieldError::new(
                at,
                format!("tag key is {keylen} characters; EC2 allows at most {MAX_TAG_KEY}"),
            ));
        }
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(FieldError::new(
                at,
                format!(
                    "tag key {:?} uses the prefix aws:, which AWS reserves",
                    tag.key
                ),
            ));
        }
        let valuelen = tag.value.chars().count();
        if valuelen > MAX_TAG_VALUE {
            return Err(FieldError::new(
                format!("{field}[{i}].value"),
                format!("tag value is {valuelen} characters; EC2 allows at most {MAX_TAG_VALUE}"),
            ));
        }
        match seen.insert(tag.key.to_lowercase(), tag.key.as_str()) {
            Some(earlier) if earlier == tag.key => {
                return Err(FieldError::new(
                    at,
                    format!("tag key {:?} is given twice", tag.key),
                ))
            }
            Some(earlier) => {
                return Err(FieldError::new(
                    at,
                    format!(
                        "tag keys {earlier:?} and {:?} differ only in case; policies read them as one key, so give one of them",
                        tag.key
                    ),
                ))
            }
            None => {}
        }
    }
    Ok(())
}

/// Validates an EC2 id with a given prefix, such as `vol-` or `sg-`.
pub fn ec2_id(field: &str, value: &str, prefix: &str) -> Checked {
    let rest = value.strip_prefix(prefix);
    let ok = rest.is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "{value:?} is not a valid id: expected {prefix} followed by letters and digits"
            ),
        ))
    }
}

/// Validates an AWS region name such as `us-east-1`.
pub fn region(field: &str, value: &str) -> Checked {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && value.contains('-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{value:?} is not an AWS region name (for example us-east-1)"),
        ))
    }
}

/// Validates an availability zone name: a region followed by a letter, e.g. `us-east-1a`.
pub fn availability_zone(field: &str, value: &str) -> Checked {
    let ok = value
        .strip_suffix(|c: char| c.is_ascii_lowercase())
        .is_some_and(|r| region(field, r).is_ok() && r.ends_with(|c: char| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{value:?} is not an availability zone name (for example us-east-1a)"),
        ))
    }
}

/// Validates a private IPv4 address.
pub fn ipv4(field: &str, value: &str) -> Checked<Ipv4Addr> {
    value.parse::<Ipv4Addr>().map_err(|_| {
        FieldError::new(
            field,
            format!("{value:?} is not an IPv4 address (for example 10.0.1.25)"),
        )
    })
}

/// Validates a free-text field EC2 limits to 255 characters.
pub fn description(field: &str, value: &str) -> Checked {
    let n = value.chars().count();
    if n > 255 {
        return Err(FieldError::new(
            field,
            format!("{n} characters; EC2 allows at most 255"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, "control characters are not allowed"));
    }
    Ok(())
}

/// Validates a free-text field when it is given.
pub fn optional_description(field: &str, value: Option<&str>) -> Checked {
    value.map_or(Ok(()), |d| description(field, d))
}

/// Validates a key pair name: 1 to 255 ASCII characters.
pub fn key_name(field: &str, value: &str) -> Checked {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{value:?} is not a key pair name: use 1 to 255 printable ASCII characters"),
        ))
    }
}

/// Validates a public key to import: one line of OpenSSH format (`ssh-rsa`, `ssh-ed25519` or
/// `ecdsa-sha2-nistp…`), never a private key.
pub fn public_key(field: &str, value: &str) -> Checked {
    if value.contains("PRIVATE KEY") {
        return Err(FieldError::new(
            field,
            "this is a private key; import the public half (the .pub file) instead",
        ));
    }
    let value = value.trim();
    let mut parts = value.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let known = matches!(kind, "ssh-rsa" | "ssh-ed25519") || kind.starts_with("ecdsa-sha2-nistp");
    let base64 = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    if known && base64 && !value.contains('\n') {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "not an OpenSSH public key: expected one line like \"ssh-ed25519 AAAA… comment\"",
        ))
    }
}

/// Validates a security group name: 1 to 255 characters EC2 accepts in a VPC, not starting
/// with `sg-`.
pub fn group_name(field: &str, value: &str) -> Checked {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c);
    if value.is_empty() || value.len() > 255 || !value.chars().all(allowed) {
        return Err(FieldError::new(
            field,
            format!("{value:?} is not a security group name: use 1 to 255 letters, digits, spaces and ._-:/()#,@[]+=&;{{}}!$*"),
        ));
    }
    if value.starts_with("sg-") {
        return Err(FieldError::new(
            field,
            "security group names may not start with sg- (EC2 reserves it for ids)",
        ));
    }
    Ok(())
}

/// Validates an image name: 3 to 128 of letters, digits and `()[] ./-'@_`.
pub fn image_name(field: &str, value: &str) -> Checked {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
    let n = value.chars().count();
    if (3..=128).contains(&n) && value.chars().all(allowed) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{value:?} is not an image name: use 3 to 128 letters, digits and ()[] ./-'@_"),
        ))
    }
}

/// Validates a device name to attach a volume at, in the forms EC2 documents for Linux
/// (`/dev/sdf`, `/dev/sdf1`, `/dev/xvdf`, `/dev/xvdba`) and Windows (`xvdf`).
pub fn device(field: &str, value: &str) -> Checked {
    let letter = |c: char| c.is_ascii_lowercase();
    let ok = if let Some(rest) = value.strip_prefix("/dev/sd") {
        let mut chars = rest.chars();
        match (chars.next(), chars.as_str()) {
            (Some(c), "") => ('b'..='z').contains(&c),
            (Some(c), digits) => {
                ('b'..='z').contains(&c)
                    && digits.parse::<u8>().is_ok_and(|n| (1..=15).contains(&n))
                    && !digits.starts_with('0')
            }
            _ => false,
        }
    } else if let Some(rest) = value
        .strip_prefix("/dev/xvd")
        .or_else(|| value.strip_prefix("xvd"))
    {
        let chars: Vec<char> = rest.chars().collect();
        match chars.as_slice() {
            [c] => ('b'..='z').contains(c),
            [a, b] => ('a'..='d').contains(a) && letter(*b) && value.starts_with('/'),
            _ => false,
        }
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{value:?} is not a device name EC2 attaches volumes at: use /dev/sdf to /dev/sdp (recommended), /dev/sd[b-z], /dev/sd[b-z][1-15], /dev/xvd[b-z], /dev/xvd[a-d][a-z], or xvd[f-z] on Windows"),
        ))
    }
}

/// Validates the device index a network interface attaches at (0 is the primary interface).
pub fn device_index(field: &str, value: i32) -> Checked {
    if (1..=31).contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{value} is not a device index for a secondary interface: use 1 to 31 (0 is the instance's primary interface)"),
        ))
    }
}

/// A parsed CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub address: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Whether this block is every address (`0.0.0.0/0` or `::/0`).
    pub fn is_world(&self) -> bool {
        self.prefix == 0
    }
}

/// Parses a CIDR block (`10.0.0.0/16`, `2001:db8::/32`); host bits must be zero, as EC2 asks.
pub fn cidr(field: &str, value: &str) -> Checked<Cidr> {
    let bad = |why: String| FieldError::new(field, format!("{value:?} is not a CIDR block: {why}"));
    let (addr, prefix) = value
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/PREFIX, for example 10.0.0.0/16".into()))?;
    let address: IpAddr = addr
        .parse()
        .map_err(|_| bad(format!("{addr:?} is not an IPv4 or IPv6 address")))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| bad(format!("the prefix length must be 0 to {max}")))?;
    let (bits, width) = match address {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32u32),
        IpAddr::V6(a) => (u128::from(a), 128u32),
    };
    let host_bits = width - u32::from(prefix);
    let host_mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    if bits & host_mask != 0 {
        let network = bits & !host_mask;
        let network = match address {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(network).unwrap_or(0))),
            IpAddr::V6(_) => IpAddr::V6(network.into()),
        };
        return Err(bad(format!(
            "the address has host bits set; did you mean {network}/{prefix}?"
        )));
    }
    Ok(Cidr { address, prefix })
}

/// Ports that must not be open to the whole internet without saying so: SSH and RDP.
pub const ADMIN_PORTS: [(u16, &str); 2] = [(22, "SSH"), (3389, "RDP")];

/// Validates one security group rule: a known protocol, a port range that fits it, exactly one
/// source, and no SSH/RDP open to the world unless `allow_world`. Returns the rule with its
/// protocol in EC2's canonical form (`tcp`, `udp`, `icmp`, `icmpv6`, `-1`, or a number).
pub fn rule(
    field: &str,
    rule: &SecurityGroupRule,
    allow_world: bool,
) -> Checked<SecurityGroupRule> {
    let mut out = rule.clone();
    out.protocol = protocol(field, &rule.protocol)?;
    rule_ports(field, &mut out, &rule.protocol)?;
    let world = match (&rule.cidr, &rule.group_id) {
        (Some(c), None) => cidr(&format!("{field}.cidr"), c)?.is_world(),
        (None, Some(g)) => {
            ec2_id(&format!("{field}.group_id"), g, "sg-")?;
            false
        }
        _ => {
            return Err(FieldError::new(
                format!("{field}.cidr"),
                "give exactly one of cidr and group_id",
            ))
        }
    };
    if let Some(d) = &rule.description {
        description(&format!("{field}.description"), d)?;
    }
    if world && !allow_world {
        closed_to_world(field, &out)?;
    }
    Ok(out)
}

/// A rule's protocol in EC2's canonical form.
fn protocol(field: &str, given: &str) -> Checked<String> {
    let protocol = given.trim().to_ascii_lowercase();
    Ok(match protocol.as_str() {
        "tcp" | "6" => "tcp".to_owned(),
        "udp" | "17" => "udp".to_owned(),
        "icmp" | "1" => "icmp".to_owned(),
        "icmpv6" | "58" => "icmpv6".to_owned(),
        "-1" | "all" => "-1".to_owned(),
        n if n.parse::<u8>().is_ok() => n.to_owned(),
        _ => {
            return Err(FieldError::new(
                format!("{field}.protocol"),
                format!(
                    "{given:?} is not a protocol: use tcp, udp, icmp, icmpv6, all, or a protocol number 0-255"
                ),
            ))
        }
    })
}

/// Checks the ports of a rule whose protocol is canonical: a port range for TCP and UDP, ICMP
/// type and code (all, when left out), none for other protocols (named as `given`).
fn rule_ports(field: &str, rule: &mut SecurityGroupRule, given: &str) -> Checked {
    match rule.protocol.as_str() {
        "tcp" | "udp" => port_range(field, rule),
        "icmp" | "icmpv6" => {
            for (name, value) in [("from_port", rule.from_port), ("to_port", rule.to_port)] {
                if let Some(v) = value {
                    if !(-1..=255).contains(&v) {
                        return Err(FieldError::new(
                            format!("{field}.{name}"),
                            format!("{v} is not an ICMP type or code: use -1 (all) to 255"),
                        ));
                    }
                }
            }
            rule.from_port = Some(rule.from_port.unwrap_or(-1));
            rule.to_port = Some(rule.to_port.unwrap_or(-1));
            Ok(())
        }
        _ if rule.from_port.is_some() || rule.to_port.is_some() => Err(FieldError::new(
            format!("{field}.from_port"),
            format!("protocol {given} has no ports; leave from_port and to_port out"),
        )),
        _ => Ok(()),
    }
}

/// Checks a TCP or UDP rule's port range.
fn port_range(field: &str, rule: &SecurityGroupRule) -> Checked {
    let (Some(from), Some(to)) = (rule.from_port, rule.to_port) else {
        return Err(FieldError::new(
            format!("{field}.from_port"),
            format!(
                "{} rules need a port range (from_port and to_port)",
                rule.protocol
            ),
        ));
    };
    for (name, port) in [("from_port", from), ("to_port", to)] {
        if !(0..=65535).contains(&port) {
            return Err(FieldError::new(
                format!("{field}.{name}"),
                format!("{port} is not a port: use 0 to 65535"),
            ));
        }
    }
    if from > to {
        return Err(FieldError::new(
            format!("{field}.to_port"),
            format!("the port range {from}-{to} ends before it starts"),
        ));
    }
    Ok(())
}

/// Refuses a rule open to the whole internet that lets SSH or RDP through.
fn closed_to_world(field: &str, rule: &SecurityGroupRule) -> Checked {
    for (port, name) in ADMIN_PORTS {
        if opens_port(rule, port) {
            return Err(FieldError::new(
                format!("{field}.cidr"),
                format!(
                    "this rule opens {name} (port {port}) to the whole internet ({}); narrow the CIDR, or pass allow_world (--allow-world) if you mean it",
                    rule.cidr.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a (canonical) rule lets traffic to `port` through.
fn opens_port(rule: &SecurityGroupRule, port: u16) -> bool {
    match rule.protocol.as_str() {
        "-1" => true,
        "tcp" => {
            let port = i32::from(port);
            rule.from_port.is_some_and(|f| f <= port) && rule.to_port.is_some_and(|t| port <= t)
        }
        _ => false,
    }
}

/// EBS limits per volume type: size in GiB, and IOPS where they can be provisioned.
struct VolumeLimits {
    size: (i32, i32),
    iops: Option<(i32, i32)>,
    iops_per_gib: i32,
    iops_required: bool,
}

fn volume_limits(volume_type: &str) -> Option<VolumeLimits> {
    let limits = |size, iops, iops_per_gib, iops_required| VolumeLimits {
        size,
        iops,
        iops_per_gib,
        iops_required,
    };
    Some(match volume_type {
        "gp3" => limits((1, 16384), Some((3000, 16000)), 500, false),
        "gp2" => limits((1, 16384), None, 0, false),
        "io1" => limits((4, 16384), Some((100, 64000)), 50, true),
        "io2" => limits((4, 65536), Some((100, 256000)), 1000, true),
        "st1" | "sc1" => limits((125, 16384), None, 0, false),
        "standard" => limits((1, 1024), None, 0, false),
        _ => return None,
    })
}

/// Validates a volume's type, size and IOPS against EBS's limits for that type. `size_gib` may
/// be absent only when the volume is restored from a snapshot.
pub fn volume(
    volume_type: &str,
    size_gib: Option<i32>,
    iops: Option<i32>,
    from_snapshot: bool,
) -> Checked {
    let limits = volume_limits(volume_type).ok_or_else(|| {
        FieldError::new(
            "volume_type",
            format!("{volume_type:?} is not a volume type: use gp3, gp2, io1, io2, st1, sc1 or standard"),
        )
    })?;
    match size_gib {
        Some(size) if size < limits.size.0 || size > limits.size.1 => {
            return Err(FieldError::new(
                "size_gib",
                format!(
                    "{size} GiB is outside what {volume_type} volumes allow: {} to {} GiB",
                    limits.size.0, limits.size.1
                ),
            ))
        }
        None if !from_snapshot => {
            return Err(FieldError::new(
                "size_gib",
                "give a size in GiB (it may be left out only when restoring a snapshot)",
            ))
        }
        _ => {}
    }
    match (iops, limits.iops) {
        (Some(_), None) => Err(FieldError::new(
            "iops",
            format!("{volume_type} volumes do not take provisioned IOPS; use gp3, io1 or io2"),
        )),
        (None, Some(_)) if limits.iops_required => Err(FieldError::new(
            "iops",
            format!("{volume_type} volumes need provisioned IOPS"),
        )),
        (Some(n), Some((lo, hi))) => {
            if n < lo || n > hi {
                return Err(FieldError::new(
                    "iops",
                    format!("{n} IOPS is outside what {volume_type} allows: {lo} to {hi}"),
                ));
            }
            if let Some(size) = size_gib {
                let max = size.saturating_mul(limits.iops_per_gib);
                if n > max && n > lo {
                    return Err(FieldError::new(
                        "iops",
                        format!(
                            "{n} IOPS is more than {volume_type} allows for {size} GiB ({} IOPS per GiB, so at most {max})",
                            limits.iops_per_gib
                        ),
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tcp(from: i32, to: i32, cidr: &str) -> SecurityGroupRule {
        SecurityGroupRule {
            protocol: "tcp".into(),
            from_port: Some(from),
            to_port: Some(to),
            cidr: Some(cidr.into()),
            group_id: None,
            description: None,
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(cidr("c", "10.0.0.0/16").unwrap().prefix, 16);
        assert!(cidr("c", "0.0.0.0/0").unwrap().is_world());
        assert!(cidr("c", "::/0").unwrap().is_world());
        assert!(cidr("c", "2001:db8::/32").is_ok());
        let e = cidr("rules[0].cidr", "10.0.0.1/16").unwrap_err();
        assert_eq!(e.field, "rules[0].cidr");
        assert!(e.message.contains("10.0.0.0/16"), "{e}");
        assert!(cidr("c", "10.0.0.0/33").is_err());
        assert!(cidr("c", "10.0.0.0").is_err());
        assert!(cidr("c", "300.0.0.0/8").is_err());
        assert!(cidr("c", "10.0.0.7/32").is_ok());
    }

    #[test]
    fn world_open_admin_ports_need_allow_world() {
        let e = rule("rules[0]", &tcp(22, 22, "0.0.0.0/0"), false).unwrap_err();
        assert_eq!(e.field, "rules[0].cidr");
        assert!(e.message.contains("SSH"), "{e}");
        assert!(rule("r", &tcp(3000, 3500, "::/0"), false)
            .unwrap_err()
            .message
            .contains("RDP"));
        assert!(rule("r", &tcp(22, 22, "0.0.0.0/0"), true).is_ok());
        assert!(rule("r", &tcp(22, 22, "203.0.113.0/24"), false).is_ok());
        assert!(rule("r", &tcp(443, 443, "0.0.0.0/0"), false).is_ok());
        let all = SecurityGroupRule {
            protocol: "all".into(),
            from_port: None,
            to_port: None,
            ..tcp(0, 0, "0.0.0.0/0")
        };
        assert!(rule("r", &all, false).is_err());
        assert_eq!(rule("r", &all, true).unwrap().protocol, "-1");
    }

    #[test]
    fn rule_shapes() {
        assert_eq!(
            rule("r", &tcp(10, 5, "10.0.0.0/8"), false)
                .unwrap_err()
                .field,
            "r.to_port"
        );
        assert_eq!(
            rule("r", &tcp(1, 70000, "10.0.0.0/8"), false)
                .unwrap_err()
                .field,
            "r.to_port"
        );
        let mut both = tcp(80, 80, "10.0.0.0/8");
        both.group_id = Some("sg-1".into());
        assert!(rule("r", &both, false).is_err());
        let mut group = tcp(80, 80, "x");
        group.cidr = None;
        group.group_id = Some("sg-0abc".into());
        assert!(rule("r", &group, false).is_ok());
        let mut bad = tcp(80, 80, "10.0.0.0/8");
        bad.protocol = "tcpp".into();
        assert_eq!(rule("r", &bad, false).unwrap_err().field, "r.protocol");
        let mut icmp = tcp(8, 0, "10.0.0.0/8");
        icmp.protocol = "icmp".into();
        assert!(rule("r", &icmp, false).is_ok());
    }

    #[test]
    fn volumes() {
        assert!(volume("gp3", Some(8), None, false).is_ok());
        assert_eq!(
            volume("gp3", Some(0), None, false).unwrap_err().field,
            "size_gib"
        );
        assert!(volume("gp3", Some(16385), None, false).is_err());
        assert!(volume("st1", Some(100), None, false).is_err());
        assert!(volume("st1", Some(125), None, false).is_ok());
        assert!(volume("standard", Some(1025), None, false).is_err());
        assert_eq!(
            volume("gp4", Some(8), None, false).unwrap_err().field,
            "volume_type"
        );
        assert_eq!(
            volume("io1", Some(8), None, false).unwrap_err().field,
            "iops"
        );
        assert!(volume("io1", Some(8), Some(400), false).is_ok());
        assert!(volume("io1", Some(8), Some(401), false).is_err());
        assert!(volume("gp2", Some(8), Some(3000), false).is_err());
        assert!(volume("gp3", None, None, true).is_ok());
        assert!(volume("gp3", None, None, false).is_err());
    }

    #[test]
    fn devices() {
        for ok in [
            "/dev/sdf",
            "/dev/sdp",
            "/dev/sdf1",
            "/dev/xvdf",
            "/dev/xvdba",
            "xvdg",
        ] {
            assert!(device("device", ok).is_ok(), "{ok}");
        }
        for bad in [
            "/dev/sda",
            "/dev/sdf0",
            "/dev/sdf16",
            "sdf",
            "/dev/nvme1n1",
            "/dev/xvdza",
            "",
        ] {
            assert!(device("device", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_keys() {
        assert!(availability_zone("az", "us-east-1a").is_ok());
        assert!(availability_zone("az", "us-east-1").is_err());
        assert!(group_name("n", "web servers").is_ok());
        assert!(group_name("n", "sg-web").is_err());
        assert!(image_name("n", "web-2026.11.23").is_ok());
        assert!(image_name("n", "ab").is_err());
        assert!(public_key("k", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDx me@host").is_ok());
        assert!(public_key("k", "-----BEGIN OPENSSH PRIVATE KEY-----").is_err());
        assert!(public_key("k", "hello").is_err());
        assert!(device_index("i", 0).is_err());
        assert!(device_index("i", 1).is_ok());
        assert!(ipv4("ip", "127.0.1.9").is_ok());
        assert!(ipv4("ip", "127.0.1").is_err());
    }

    #[test]
    fn tag_limits() {
        let many: Vec<Tag> = (0..49).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert!(tags("tags", &many, 1).is_ok());
        assert!(tags("tags", &many, 2).is_err());
        assert_eq!(
            tags("tags", &[Tag::new("k".repeat(129), "v")], 0)
                .unwrap_err()
                .field,
            "tags[0].key"
        );
        assert!(tags("tags", &[Tag::new("AWS:x", "v")], 0).is_err());
        assert!(tags("tags", &[Tag::new("é".repeat(128), "v")], 0).is_ok());
    }
}
