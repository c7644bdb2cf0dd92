//! The PROXY protocol (v1 text, v2 binary), for a listener behind a TCP load balancer: the
//! console checks that a refresh comes from the instance's own address, and behind a balancer
//! every connection comes from the balancer. The header is believed only from the networks the
//! operator names, and required from them; anyone else is served with the address they connect
//! from, so nobody can claim another's address by sending a header of their own.

use ipnet::IpNet;
use ppp::{v1, v2, HeaderResult};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature; a v1 header starts with `PROXY `.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header the specification allows, CRLF included.
const V1_MAX: usize = 107;
/// The longest v2 header accepted: addresses and a few TLVs, never the 64 KiB the length allows.
const V2_MAX: usize = 16 + 512;

/// Which peers are load balancers whose PROXY headers are believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    trusted: Vec<IpNet>,
}

/// Why a connection from a trusted peer was dropped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection failed while the header was read.
    #[error("cannot read the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// The peer is a trusted balancer but sent something else first.
    #[error("a trusted peer did not start with a PROXY protocol header")]
    Missing,
    /// The header is malformed, too long or of a kind that carries no TCP address.
    #[error("unusable PROXY header: {0}")]
    Invalid(String),
}

impl ProxyProtocol {
    /// Believes headers from peers in `trusted`. An empty list trusts nobody.
    pub fn new(trusted: Vec<IpNet>) -> ProxyProtocol {
        ProxyProtocol { trusted }
    }

    /// Whether a connection from `peer` must start with a header.
    pub fn trusts(&self, peer: SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: from the header if `peer` is trusted (reading exactly the header,
    /// nothing of the request after it), else `peer` itself.
    pub async fn client_address<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        peer: SocketAddr,
    ) -> Result<SocketAddr, ProxyHeaderError> {
        if !self.trusts(peer) {
            return Ok(peer);
        }
        let header = read_header(stream).await?;
        Ok(source_of(&header)?.unwrap_or(peer))
    }
}

/// Reads one header, byte-exact: 12 bytes tell the version, then v2 gives its length and v1
/// ends at CRLF (both shorter than any request that could follow).
async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ProxyHeaderError> {
    let mut header = vec![0u8; 12];
    stream.read_exact(&mut header).await?;
    if header.as_slice() == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        stream.read_exact(&mut fixed).await?;
        header.extend_from_slice(&fixed);
        let length = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        if 16 + length > V2_MAX {
            return Err(ProxyHeaderError::Invalid(format!(
                "a v2 header of {length} address bytes is longer than {V2_MAX} bytes"
            )));
        }
        let start = header.len();
        header.resize(start + length, 0);
        if let Some(addresses) = header.get_mut(start..) {
            stream.read_exact(addresses).await?;
        }
        return Ok(header);
    }
    if !header.starts_with(b"PROXY ") {
        return Err(ProxyHeaderError::Missing);
    }
    while !header.ends_with(b"\r\n") {
        if header.len() >= V1_MAX {
            return Err(ProxyHeaderError::Invalid(format!(
                "a v1 header has no CRLF within {V1_MAX} bytes"
            )));
        }
        header.push(stream.read_u8().await?);
    }
    Ok(header)
}

/// The source address a complete header carries; `None` for a balancer's own connection (v2
/// LOCAL, v1 UNKNOWN), which is served with the balancer's address.
pub fn source_of(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let invalid = |e: &dyn std::fmt::Display| ProxyHeaderError::Invalid(e.to_string());
    match HeaderResult::parse(header) {
        HeaderResult::V1(parsed) => match parsed.map_err(|e| invalid(&e))?.addresses {
            v1::Addresses::Unknown => Ok(None),
            v1::Addresses::Tcp4(a) => Ok(Some((a.source_address, a.source_port).into())),
            v1::Addresses::Tcp6(a) => Ok(Some((a.source_address, a.source_port).into())),
        },
        HeaderResult::V2(parsed) => {
            let parsed = parsed.map_err(|e| invalid(&e))?;
            if parsed.command == v2::Command::Local {
                return Ok(None);
            }
            match parsed.addresses {
                v2::Addresses::IPv4(a) => Ok(Some((a.source_address, a.source_port).into())),
                v2::Addresses::IPv6(a) => Ok(Some((a.source_address, a.source_port).into())),
                v2::Addresses::Unspecified | v2::Addresses::Unix(_) => Err(invalid(
                    &"a v2 PROXY header without a TCP address (UNIX or unspecified)",
                )),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn trusting(net: &str) -> ProxyProtocol {
        ProxyProtocol::new(vec![net.parse().unwrap()])
    }

    fn v2_tcp4(source: [u8; 4], port: u16) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0, 12]);
        h.extend_from_slice(&source);
        h.extend_from_slice(&[10, 0, 0, 1]);
        h.extend_from_slice(&port.to_be_bytes());
        h.extend_from_slice(&443u16.to_be_bytes());
        h
    }

    async fn client(
        p: &ProxyProtocol,
        peer: &str,
        bytes: &[u8],
    ) -> (Result<SocketAddr, ProxyHeaderError>, Vec<u8>) {
        let mut stream = bytes;
        let got = p.client_address(&mut stream, peer.parse().unwrap()).await;
        (got, stream.to_vec())
    }

    #[tokio::test]
    async fn v1_from_a_trusted_balancer_gives_the_client_and_leaves_the_request() {
        let p = trusting("10.0.0.0/8");
        let (got, rest) = client(
            &p,
            "10.1.2.3:5000",
            b"PROXY TCP4 127.0.0.9 10.0.0.1 40000 443\r\nGET / HTTP/1.1\r\n",
        )
        .await;
        assert_eq!(got.unwrap(), "127.0.0.9:40000".parse().unwrap());
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn v2_from_a_trusted_balancer_gives_the_client_and_leaves_the_request() {
        let p = trusting("10.0.0.0/8");
        let mut bytes = v2_tcp4([127, 0, 0, 7], 1234);
        bytes.extend_from_slice(b"GET /");
        let (got, rest) = client(&p, "10.1.2.3:5000", &bytes).await;
        assert_eq!(got.unwrap(), "127.0.0.7:1234".parse().unwrap());
        assert_eq!(rest, b"GET /");
    }

    #[tokio::test]
    async fn attacker_outside_the_trusted_networks_cannot_claim_an_instance_address() {
        let p = trusting("10.0.0.0/8");
        let bytes = b"PROXY TCP4 127.0.0.9 10.0.0.1 40000 443\r\nGET /";
        let (got, rest) = client(&p, "192.0.2.50:5000", bytes).await;
        assert_eq!(got.unwrap(), "192.0.2.50:5000".parse().unwrap());
        // Nothing was consumed: the header reaches HTTP, which refuses it.
        assert_eq!(rest, bytes);
    }

    #[tokio::test]
    async fn a_trusted_peer_without_a_header_is_dropped() {
        let p = trusting("10.0.0.0/8");
        let (got, _) = client(&p, "10.1.2.3:5000", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(matches!(got, Err(ProxyHeaderError::Missing)), "{got:?}");
    }

    #[tokio::test]
    async fn oversized_and_malformed_headers_are_refused() {
        let p = trusting("10.0.0.0/8");
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        let (got, _) = client(&p, "10.1.2.3:5000", long.as_bytes()).await;
        assert!(matches!(got, Err(ProxyHeaderError::Invalid(_))), "{got:?}");
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let (got, _) = client(&p, "10.1.2.3:5000", &huge).await;
        assert!(matches!(got, Err(ProxyHeaderError::Invalid(_))), "{got:?}");
        let (got, _) = client(&p, "10.1.2.3:5000", b"PROXY TCP4 nonsense here 1 2\r\n").await;
        assert!(matches!(got, Err(ProxyHeaderError::Invalid(_))), "{got:?}");
    }

    #[tokio::test]
    async fn a_balancers_own_health_check_keeps_its_address() {
        let p = trusting("10.0.0.0/8");
        let (got, _) = client(&p, "10.1.2.3:5000", b"PROXY UNKNOWN\r\n").await;
        assert_eq!(got.unwrap(), "10.1.2.3:5000".parse().unwrap());
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        let (got, _) = client(&p, "10.1.2.3:5000", &local).await;
        assert_eq!(got.unwrap(), "10.1.2.3:5000".parse().unwrap());
    }

    #[test]
    fn an_ipv4_mapped_balancer_address_is_trusted_as_ipv4() {
        let p = trusting("10.0.0.0/8");
        assert!(p.trusts("[::ffff:10.0.0.5]:1".parse().unwrap()));
        assert!(!p.trusts("[::ffff:11.0.0.5]:1".parse().unwrap()));
    }
}
