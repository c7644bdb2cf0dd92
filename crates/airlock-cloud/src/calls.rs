//! What became of a call to AWS, and the metrics every call records: one classification shared
//! by the governed EC2 client and the forwarded Query API, so a dashboard counts both alike.

use crate::CloudError;
use std::time::Duration;

/// AWS error codes that mean "too many requests", across EC2, STS and IAM.
const THROTTLING_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "EC2ThrottledException",
];

/// AWS error codes that mean AWS itself failed.
const SERVER_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "Unavailable",
];

/// Whether an AWS error code asks the caller to slow down.
pub fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// How a call to AWS ended, as the `outcome` label of `airlock_aws_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// AWS answered with success.
    Ok,
    /// AWS asked to slow down.
    Throttled,
    /// AWS refused the request as made (bad parameters, not authorized, not found).
    ClientError,
    /// AWS failed on its side.
    ServerError,
    /// No answer: the endpoint could not be reached or did not answer in time.
    Unreachable,
}

impl Outcome {
    /// The outcome of a call that returned `result`.
    pub fn of<T>(result: &Result<T, CloudError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::of_error(e),
        }
    }

    /// The outcome of a call that failed with `error`.
    pub fn of_error(error: &CloudError) -> Outcome {
        match error.code.as_deref() {
            Some(code) if is_throttling_code(code) => Outcome::Throttled,
            Some(code) if SERVER_CODES.contains(&code) => Outcome::ServerError,
            Some(_) => Outcome::ClientError,
            None if error.retryable => Outcome::Unreachable,
            None => Outcome::ClientError,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::Unreachable => "unreachable",
        }
    }
}

/// Records one call: its count by outcome, its latency, and a throttle when it was one.
pub fn record(service: &'static str, action: &str, outcome: Outcome, took: Duration) {
    let action = action.to_owned();
    metrics::counter!(
        "airlock_aws_calls_total",
        "service" => service,
        "action" => action.clone(),
        "outcome" => outcome.as_str()
    )
    .increment(1);
    metrics::histogram!(
        "airlock_aws_call_duration_seconds",
        "service" => service,
        "action" => action.clone()
    )
    .record(took.as_secs_f64());
    if outcome == Outcome::Throttled {
        metrics::counter!("airlock_aws_throttles_total", "service" => service, "action" => action)
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coded(code: &str) -> CloudError {
        CloudError {
            code: Some(code.into()),
            message: String::new(),
            request_id: None,
            retryable: false,
        }
    }

    #[test]
    fn errors_are_classified_by_code() {
        assert_eq!(
            Outcome::of_error(&coded("RequestLimitExceeded")),
            Outcome::Throttled
        );
        assert_eq!(Outcome::of_error(&coded("Throttling")), Outcome::Throttled);
        assert_eq!(
            Outcome::of_error(&coded("InternalError")),
            Outcome::ServerError
        );
        assert_eq!(
            Outcome::of_error(&coded("InvalidInstanceID.NotFound")),
            Outcome::ClientError
        );
        let unreachable = CloudError {
            retryable: true,
            ..CloudError::local("cannot connect")
        };
        assert_eq!(Outcome::of_error(&unreachable), Outcome::Unreachable);
        assert_eq!(
            Outcome::of_error(&CloudError::local("bad region")),
            Outcome::ClientError
        );
        assert_eq!(Outcome::of::<()>(&Ok(())), Outcome::Ok);
    }
}
