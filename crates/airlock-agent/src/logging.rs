//! Structured logs on standard error for the agent and the fleet helper (`AIRLOCK_LOG` sets
//! the filter). Nothing secret is ever passed to a log macro: only key ids, paths and counts.

use crate::args::LogFormat;

/// Installs the subscriber (once; later calls do nothing).
pub fn init(format: LogFormat) {
    airlock_os::init_logging(format == LogFormat::Json, airlock_os::DEFAULT_LOG_FILTER);
}
