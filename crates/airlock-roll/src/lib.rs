//! Rolling replacement as pure rules, apart from EC2 and the store so each is tested alone.
//!
//! A node goes `waiting → launch → stop-old → move-identity → health → terminate-old → done`.
//! A failure before the old instance is terminated sends it to `roll-back` (its identity moved
//! back to the old instance, which is started again, and the replacement terminated), and the
//! roll stops there. Every step is idempotent, decided from what EC2 shows now ([`Move`]), so a
//! console that resumes a roll after a crash repeats at most the step it was in and never moves
//! anything twice.

use airlock_api::rolls::NodeStep;
use std::fmt;
use std::str::FromStr;

/// When a replacement counts as healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// EC2's instance and system status checks pass.
    StatusChecks,
    /// Its agent refreshed through the console (it booted, read its user data, reached us).
    Agent,
    /// `GET http://PRIVATE_IP:PORT/PATH` answers 2xx.
    Http {
        /// The port.
        port: u16,
        /// The path, starting with `/`.
        path: String,
    },
}

/// A health signal that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a health signal: use status-checks, agent or http:PORT/PATH (e.g. http:8080/healthz)")]
pub struct BadHealth(pub String);

impl FromStr for Health {
    type Err = BadHealth;

    fn from_str(text: &str) -> Result<Self, BadHealth> {
        let bad = || BadHealth(text.to_owned());
        match text {
            "status-checks" => Ok(Health::StatusChecks),
            "agent" => Ok(Health::Agent),
            _ => {
                let rest = text.strip_prefix("http:").ok_or_else(bad)?;
                let (port, path) = match rest.find('/') {
                    Some(i) => rest.split_at(i),
                    None => (rest, "/"),
                };
                let port: u16 = port.parse().map_err(|_| bad())?;
                let printable = path.bytes().all(|b| b.is_ascii_graphic());
                if port == 0 || path.len() > 256 || !printable {
                    return Err(bad());
                }
                Ok(Health::Http {
                    port,
                    path: path.to_owned(),
                })
            }
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::StatusChecks => f.write_str("status-checks"),
            Health::Agent => f.write_str("agent"),
            Health::Http { port, path } => write!(f, "http:{port}{path}"),
        }
    }
}

/// The step after `step` when it succeeded.
pub fn after(step: NodeStep) -> NodeStep {
    match step {
        NodeStep::Waiting => NodeStep::Launch,
        NodeStep::Launch => NodeStep::StopOld,
        NodeStep::StopOld => NodeStep::MoveIdentity,
        NodeStep::MoveIdentity => NodeStep::Health,
        NodeStep::Health => NodeStep::TerminateOld,
        NodeStep::TerminateOld | NodeStep::Done => NodeStep::Done,
        NodeStep::RollBack | NodeStep::RolledBack => NodeStep::RolledBack,
    }
}

/// Where a node goes when `step` failed: back, while the old instance still exists; a failed
/// termination (the replacement already serves) or roll-back is retried as it is.
pub fn after_failure(step: NodeStep) -> NodeStep {
    match step {
        NodeStep::Launch | NodeStep::StopOld | NodeStep::MoveIdentity | NodeStep::Health => {
            NodeStep::RollBack
        }
        other => other,
    }
}

/// Whether the node needs nothing more.
pub fn settled(step: NodeStep) -> bool {
    matches!(step, NodeStep::Done | NodeStep::RolledBack)
}

/// Whether the node is out of service (its old instance stopped or being replaced).
pub fn in_flight(step: NodeStep) -> bool {
    !matches!(
        step,
        NodeStep::Waiting | NodeStep::Done | NodeStep::RolledBack
    )
}

/// What moving one piece of identity (an interface, a volume) to `to` takes, from where EC2
/// shows it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Already there.
    Nothing,
    /// Free: attach it.
    Attach,
    /// On another instance: detach it, wait until it is free, attach it.
    DetachThenAttach,
    /// Being attached or detached: look again.
    Wait,
}

/// Where a piece of identity is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whereabouts<'a> {
    /// Attached (or attaching) to this instance.
    On(&'a str),
    /// Free.
    Free,
    /// Changing.
    Busy,
}

/// The move that brings a piece from `now` to instance `to`.
pub fn move_to(now: Whereabouts<'_>, to: &str) -> Move {
    match now {
        Whereabouts::On(instance) if instance == to => Move::Nothing,
        Whereabouts::On(_) => Move::DetachThenAttach,
        Whereabouts::Free => Move::Attach,
        Whereabouts::Busy => Move::Wait,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn health_signals_read_as_written() {
        assert_eq!("agent".parse(), Ok(Health::Agent));
        assert_eq!("status-checks".parse(), Ok(Health::StatusChecks));
        assert_eq!(
            "http:8080/healthz".parse(),
            Ok(Health::Http {
                port: 8080,
                path: "/healthz".into()
            })
        );
        assert_eq!("http:80".parse::<Health>().unwrap().to_string(), "http:80/");
        for bad in [
            "",
            "http",
            "http:",
            "http:0/x",
            "http:99999/",
            "tcp:80",
            "http:80/a b",
        ] {
            let err = bad.parse::<Health>().unwrap_err();
            assert!(err.to_string().contains("http:PORT/PATH"), "{bad}");
        }
    }

    #[test]
    fn a_node_goes_forward_and_fails_back_only_while_its_old_instance_lives() {
        let mut step = NodeStep::Waiting;
        let mut seen = vec![step];
        while !settled(step) {
            step = after(step);
            seen.push(step);
        }
        assert_eq!(
            seen,
            [
                NodeStep::Waiting,
                NodeStep::Launch,
                NodeStep::StopOld,
                NodeStep::MoveIdentity,
                NodeStep::Health,
                NodeStep::TerminateOld,
                NodeStep::Done
            ]
        );
        for step in [
            NodeStep::Launch,
            NodeStep::StopOld,
            NodeStep::MoveIdentity,
            NodeStep::Health,
        ] {
            assert_eq!(after_failure(step), NodeStep::RollBack);
            assert!(in_flight(step));
        }
        assert_eq!(
            after_failure(NodeStep::TerminateOld),
            NodeStep::TerminateOld
        );
        assert_eq!(after(NodeStep::RollBack), NodeStep::RolledBack);
        assert!(!in_flight(NodeStep::Waiting) && !in_flight(NodeStep::Done));
    }

    #[test]
    fn a_piece_of_identity_is_moved_only_when_it_is_not_already_there() {
        assert_eq!(move_to(Whereabouts::On("i-new"), "i-new"), Move::Nothing);
        assert_eq!(
            move_to(Whereabouts::On("i-old"), "i-new"),
            Move::DetachThenAttach
        );
        assert_eq!(move_to(Whereabouts::Free, "i-new"), Move::Attach);
        assert_eq!(move_to(Whereabouts::Busy, "i-new"), Move::Wait);
    }
}
