//! The gateway's configuration language, apart from the gateway so that the console can
//! validate the documents it stores with the very parser the gateway runs: [`config`] (Gloo YAML
//! → validated configuration, every problem naming the file, document, object and field) and
//! [`filter`] (tag matching, case-sensitive as EC2's own `tag:` filters) and [`membership`]
//! (whether an instance backs an upstream, and why not). Pure: no file or network I/O.

#![warn(missing_docs)]

pub mod config;
pub mod filter;
pub mod membership;
