//! Request times: the basic ISO 8601 form SigV4 signs (`20260115T120000Z`), the HTTP `date`
//! header that may stand in for `x-amz-date`, and whether a request is within its window.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::{Claim, SigV4Error, MAX_CLOCK_SKEW};

/// Reads `yyyymmddThhmmssZ`, and nothing looser.
pub(crate) fn parse_basic(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 16
        && bytes.get(8) == Some(&b'T')
        && bytes.get(15) == Some(&b'Z')
        && bytes
            .iter()
            .enumerate()
            .all(|(at, byte)| at == 8 || at == 15 || byte.is_ascii_digit());
    if !shaped {
        return None;
    }
    let number = |from: usize, to: usize| text.get(from..to)?.parse::<u32>().ok();
    NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(4, 6)?,
        number(6, 8)?,
    )?
    .and_hms_opt(number(9, 11)?, number(11, 13)?, number(13, 15)?)
    .map(|time| time.and_utc())
}

/// The `date` header: an HTTP date (`Thu, 15 Jan 2026 12:00:00 GMT`, as botocore writes it) or
/// the basic form.
pub(crate) fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    parse_basic(text).or_else(|| {
        DateTime::parse_from_rfc2822(text)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    })
}

/// `yyyymmddThhmmssZ`, the time in the string to sign.
pub(crate) fn format_basic(time: DateTime<Utc>) -> String {
    time.format("%Y%m%dT%H%M%SZ").to_string()
}

/// `yyyymmdd`, the day in the credential scope.
pub(crate) fn format_date(time: DateTime<Utc>) -> String {
    time.format("%Y%m%d").to_string()
}

/// The header form must be signed within the skew of `now`, either way. A presigned request is
/// good from the skew before its `X-Amz-Date` until its `X-Amz-Expires` after it.
pub(crate) fn check(claim: &Claim, now: DateTime<Utc>) -> Result<(), SigV4Error> {
    let skew = max_skew();
    let skewed = || SigV4Error::Skewed {
        signed: claim.timestamp,
        now,
    };
    if claim.timestamp - now > skew {
        return Err(skewed());
    }
    let Some(expires) = claim.expires else {
        return if now - claim.timestamp > skew {
            Err(skewed())
        } else {
            Ok(())
        };
    };
    let expired = TimeDelta::from_std(expires)
        .ok()
        .and_then(|expires| claim.timestamp.checked_add_signed(expires))
        .ok_or(SigV4Error::ExpiresTooLong(expires.as_secs()))?;
    if now > expired {
        return Err(SigV4Error::Expired { expired, now });
    }
    Ok(())
}

#[expect(
    clippy::expect_used,
    reason = "five minutes is well within TimeDelta's range"
)]
fn max_skew() -> TimeDelta {
    TimeDelta::from_std(MAX_CLOCK_SKEW).expect("five minutes fits a TimeDelta")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basic_form_is_read_strictly() {
        let time = parse_basic("20150830T123600Z").unwrap();
        assert_eq!(format_basic(time), "20150830T123600Z");
        assert_eq!(format_date(time), "20150830");
        for bad in [
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20150830T1236000",
            "20151330T123600Z",
            "+0150830T123600Z",
            "20150830t123600Z",
            "",
        ] {
            assert_eq!(parse_basic(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_date_header_may_be_an_http_date() {
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            parse_basic("20150830T123600Z")
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn max_skew_is_five_minutes() {
        assert_eq!(max_skew(), TimeDelta::minutes(5));
    }
}
