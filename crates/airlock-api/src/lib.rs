//! The console's HTTP API as types.
//!
//! The console serves these bodies and every client (the CLI, the agent's refresh, the gateway's
//! console follower) reads them, so a field exists in one place and a rename cannot drift
//! between the two sides. Nothing here does I/O.

pub mod state;
