//! Where a resource lives and the ARN AWS gives it: one definition for the console's
//! authorization, its audit records and the fleet operations.

/// ARN of an EC2 resource. Images and snapshots are owned by no account in their ARN, as AWS
/// writes them (`arn:aws:ec2:us-east-1::snapshot/snap-…`).
pub fn arn(region: &str, account: &str, kind: &str, id: &str) -> String {
    let account = if matches!(kind, "image" | "snapshot") {
        ""
    } else {
        account
    };
    format!("arn:aws:ec2:{region}:{account}:{kind}/{id}")
}

/// The account and region a request runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The region, e.g. `us-east-1`.
    pub region: String,
    /// The 12-digit account id.
    pub account_id: String,
}

impl Scope {
    /// The ARN of a resource in this scope.
    pub fn arn(&self, kind: &str, id: &str) -> String {
        arn(&self.region, &self.account_id, kind, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_follow_aws_forms() {
        assert_eq!(
            arn("us-east-1", "123456789012", "snapshot", "snap-1"),
            "arn:aws:ec2:us-east-1::snapshot/snap-1"
        );
        assert_eq!(
            arn("us-east-1", "123456789012", "image", "ami-1"),
            "arn:aws:ec2:us-east-1::image/ami-1"
        );
        assert_eq!(
            arn("us-east-1", "123456789012", "elastic-ip", "eipalloc-1"),
            "arn:aws:ec2:us-east-1:123456789012:elastic-ip/eipalloc-1"
        );
    }
}
