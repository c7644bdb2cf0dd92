//! Which endpoints an account may send its signed calls to. A console user who may add accounts
//! could otherwise point one at a server of their own (every call carries a signature of the
//! account's key and STS answers carry credentials) or at an internal address the console can
//! reach and they cannot. AWS's own endpoints are always allowed; anything else only when the
//! operator names its host with `airlock serve --allow-endpoint`.

use std::str::FromStr;

/// One `--allow-endpoint HOST[:PORT]`: any scheme, any path, that host (and port, if given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedEndpoint {
    host: String,
    port: Option<u16>,
}

impl FromStr for AllowedEndpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || format!("{text:?} is not HOST or HOST:PORT (for example 127.0.0.1:5000)");
        if text.contains("://") || text.contains('/') || text.is_empty() {
            return Err(wrong());
        }
        // A scheme of no default port, so an explicit :80 or :443 is kept.
        let url = url::Url::parse(&format!("allowance://{text}")).map_err(|_| wrong())?;
        let host = url.host_str().ok_or_else(wrong)?.to_ascii_lowercase();
        Ok(AllowedEndpoint {
            host,
            port: url.port(),
        })
    }
}

impl std::fmt::Display for AllowedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Host suffixes of AWS's own endpoints (commercial, China, dual-stack).
const AWS_SUFFIXES: [&str; 3] = [".amazonaws.com", ".amazonaws.com.cn", ".api.aws"];

/// `Ok` if the console may call `endpoint`; `Err` says why not, for the `endpoint_url` field.
pub fn check(endpoint: &str, allowed: &[AllowedEndpoint]) -> Result<(), String> {
    let url = url::Url::parse(endpoint)
        .map_err(|_| format!("{endpoint:?} is not an http or https URL"))?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(format!(
            "{endpoint:?} is not an http or https URL without user information"
        ));
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let aws = url.scheme() == "https"
        && matches!(url.host(), Some(url::Host::Domain(_)))
        && AWS_SUFFIXES.iter().any(|suffix| host.ends_with(suffix));
    let port = url.port_or_known_default();
    let named = allowed
        .iter()
        .any(|a| a.host == host && a.port.is_none_or(|p| Some(p) == port));
    if aws || named {
        Ok(())
    } else {
        Err(format!(
            "{host} is not an AWS endpoint (https://…amazonaws.com): the console's operator must allow it with airlock serve --allow-endpoint {host}"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn allow(list: &[&str]) -> Vec<AllowedEndpoint> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn aws_endpoints_are_always_allowed() {
        for url in [
            "https://ec2.us-east-1.amazonaws.com",
            "https://ec2.cn-north-1.amazonaws.com.cn/",
            "https://ec2.us-east-1.api.aws",
            "https://EC2.eu-west-1.AmazonAWS.com",
        ] {
            assert!(check(url, &[]).is_ok(), "{url}");
        }
    }

    #[test]
    fn user_with_create_account_cannot_point_an_account_at_their_own_server() {
        for url in [
            "https://evil.example",
            "http://ec2.us-east-1.amazonaws.com",
            "https://amazonaws.com.evil.example",
            "https://ec2.us-east-1.amazonaws.com@evil.example",
            "https://evil.example/ec2.us-east-1.amazonaws.com",
            "https://user:pw@ec2.us-east-1.amazonaws.com",
        ] {
            assert!(check(url, &[]).is_err(), "{url}");
        }
    }

    #[test]
    fn user_with_create_account_cannot_reach_internal_addresses() {
        for url in [
            "http://127.0.0.1:5000",
            "http://169.254.169.254/",
            "http://[::1]:80",
            "http://localhost",
        ] {
            let err = check(url, &[]).unwrap_err();
            assert!(err.contains("--allow-endpoint"), "{err}");
        }
    }

    #[test]
    fn operators_allow_hosts_and_ports_by_name() {
        let allowed = allow(&["127.0.0.1", "localhost:5000"]);
        assert!(check("http://127.0.0.1:5000", &allowed).is_ok());
        assert!(check("http://127.0.0.1:6000/x", &allowed).is_ok());
        assert!(check("http://localhost:5000", &allowed).is_ok());
        assert!(check("http://localhost:5001", &allowed).is_err());
        assert!(check("http://127.0.0.2:5000", &allowed).is_err());
    }

    #[test]
    fn allowances_are_host_and_port_only() {
        for bad in ["http://127.0.0.1", "127.0.0.1/x", "", "a b"] {
            assert!(bad.parse::<AllowedEndpoint>().is_err(), "{bad}");
        }
        assert_eq!(
            "LocalHost:80"
                .parse::<AllowedEndpoint>()
                .unwrap()
                .to_string(),
            "localhost:80"
        );
    }
}
