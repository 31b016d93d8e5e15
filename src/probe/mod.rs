//! Probing, in one place: dialling a backend as the aggregator's proxy would ([`dial`]), and
//! the background [`Prober`] that runs those dials outside the reconcile pass and keeps their
//! latest findings. The pass builds its targets in `reconcile::probe` and asks
//! [`Prober::latest`], the one door.

mod dial;
mod http;
mod insecure;
mod prober;

use std::fmt;

pub use prober::Prober;

/// A TLS handshake with the server, made as the aggregator's proxy would make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// The certificate verified against the bundle.
    Trusted,
    /// The server presented a certificate the bundle does not verify.
    Untrusted(String),
    /// No answer, or not checked; availability is the aggregator's call.
    Inconclusive,
}

/// Why dialling an external server failed; displays as status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// No TCP connection (refused, unreachable, timed out).
    Dial(String),
    /// The server's certificate does not verify against the trusted CA.
    Untrusted(String),
    /// The TLS handshake failed for another reason.
    Handshake(String),
    /// `GET /apis/<group>/<version>` got no answer, or not one that serves the API.
    Discovery(String),
    /// The host resolves to a restricted address and no grant lists it exactly: not dialled,
    /// and nothing may be registered for it.
    Restricted(String),
    /// The first probe has not finished yet.
    Pending(String),
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dial(why)
            | Self::Untrusted(why)
            | Self::Handshake(why)
            | Self::Discovery(why)
            | Self::Restricted(why)
            | Self::Pending(why) => f.write_str(why),
        }
    }
}

/// What dialling an external server found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendProbe {
    /// `host:port`.
    pub target: String,
    /// The name its certificate must carry, `<name>.<namespace>.svc`.
    pub server_name: String,
    pub outcome: Result<(), ProbeFailure>,
}

impl BackendProbe {
    /// The handshake as the Available verdict reads it.
    pub fn handshake(&self) -> Handshake {
        match &self.outcome {
            Ok(()) => Handshake::Trusted,
            Err(ProbeFailure::Untrusted(why)) => Handshake::Untrusted(why.clone()),
            Err(_) => Handshake::Inconclusive,
        }
    }
}

/// What to dial and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The name the certificate must carry.
    pub server_name: String,
    /// The trusted CAs (PEM); none: a TCP connection is enough.
    pub bundle: Option<Vec<u8>>,
    pub kind: Kind,
    /// The path a [`Kind::Discovery`] probe asks for.
    pub path: Option<String>,
    /// Refuse to dial a name that resolves only to a restricted address (loopback, link-local,
    /// the kubernetes Service); off when a grant lists the host exactly.
    pub screen: Option<Screen>,
}

/// Addresses a screened name may not resolve to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Screen {
    /// kube-apiserver's own addresses.
    pub apiserver_addresses: Vec<String>,
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// TCP, then a verified handshake when there is a bundle; every failure is reported.
    Reach,
    /// A verified handshake whose only conclusive failure is an untrusted certificate.
    Verify,
    /// As Reach, then `GET` of the target's path: the aggregator's availability check.
    Discovery,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Reach(Result<(), ProbeFailure>),
    Verify(Handshake),
}

impl Finding {
    pub fn ok(&self) -> bool {
        matches!(self, Self::Reach(Ok(())) | Self::Verify(Handshake::Trusted))
    }
}
