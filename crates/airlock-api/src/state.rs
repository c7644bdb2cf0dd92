//! The states the API reports, as types rather than strings.
