//! Reading the audit log over the API: pages that follow a cursor, a verification that reads
//! the whole chain a page at a time, and the head an operator anchors elsewhere. The log can be
//! made to grow by anyone who can reach the console (refusals are recorded), so no request
//! holds more than one page of it in memory. Each request is authorized as
//! `airlock:ReadAuditLog` before any of its parameters is looked at.

use super::chain::{Anchor, AuditKey, Head, Verification, Verifier};
use crate::auth::Caller;
use crate::authz::{authorize_one, console_arn};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use airlock_api::audit::AuditPage;
use airlock_store::{AuditFilter, Store};
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Records in a page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most records a client may ask for in one page.
pub const MAX_LIMIT: u32 = 1000;
/// Records read at a time while verifying.
const VERIFY_PAGE: u32 = 1000;

/// Where the next page starts: after the record with this `seq`. Clients get it encoded and
/// give it back as they got it, so its form can change without breaking them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(i64);

const CURSOR_PREFIX: &str = "after:";

impl Cursor {
    /// The text a client gives back.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", self.0))
    }

    /// A cursor this console gave; anything else is a 400 naming `cursor`.
    pub fn parse(text: &str) -> ApiResult<Cursor> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|s| s.strip_prefix(CURSOR_PREFIX)?.parse::<i64>().ok())
            .filter(|seq| *seq >= 0)
            .map(Cursor)
            .ok_or_else(|| {
                ApiError::field(
                    "cursor",
                    "not a cursor this console gave: pass next_cursor from the previous page as it is",
                )
            })
    }
}

/// A page request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Records at most.
    pub limit: u32,
    /// Records after this one.
    pub after: Cursor,
    /// Only this user's records.
    pub user: Option<String>,
    /// Only records at or after this time, as the store keeps times.
    pub since: Option<String>,
}

/// Reads the query of `GET /v1/audit`; every bad value is a 400 naming its parameter.
pub fn page_request(pairs: Vec<(String, String)>) -> ApiResult<PageRequest> {
    let mut request = PageRequest {
        limit: DEFAULT_LIMIT,
        after: Cursor(0),
        user: None,
        since: None,
    };
    for (name, value) in pairs {
        match name.as_str() {
            "limit" => request.limit = limit(&value)?,
            "cursor" => request.after = Cursor::parse(&value)?,
            "user" => request.user = Some(value),
            "since" => request.since = Some(since(&value)?),
            other => return Err(unknown(other, "limit, cursor, user or since")),
        }
    }
    Ok(request)
}

fn limit(text: &str) -> ApiResult<u32> {
    text.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::field(
                "limit",
                format!("{text:?} is not a number of records from 1 to {MAX_LIMIT}"),
            )
        })
}

fn since(text: &str) -> ApiResult<String> {
    let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| {
        ApiError::field(
            "since",
            format!("{text:?} is not an RFC 3339 time (2026-01-31T12:00:00Z)"),
        )
    })?;
    Ok(at
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn unknown(name: &str, known: &str) -> ApiError {
    ApiError::field(name, format!("unknown query parameter: use {known}"))
}

/// The query's pairs, read only once the caller may read the log.
fn pairs(uri: &Uri) -> ApiResult<Vec<(String, String)>> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| ApiError::field("query", e.to_string()))?;
    Ok(pairs)
}

/// The one decision every read of the log needs, as it has always been made.
async fn may_read(state: &AppState, caller: &Caller) -> ApiResult<()> {
    authorize_one(
        state,
        caller,
        "airlock:ReadAuditLog",
        &console_arn("audit", "*"),
    )
    .await
}

/// `GET /v1/audit?limit=N&cursor=C&user=U&since=T`: a page of records in order, and the cursor
/// of the next page while there are more.
#[utoipa::path(
    get,
    path = "/v1/audit",
    summary = "A page of audit records in order, and the cursor of the next (airlock:ReadAuditLog, decided before any parameter is read)",
    params(crate::openapi::AuditQuery),
    responses(
        (status = 200, description = "A page", body = airlock_api::audit::AuditPage),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn page(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<Json<AuditPage>> {
    may_read(&state, &caller).await?;
    let request = page_request(pairs(&uri)?)?;
    let filter = AuditFilter {
        user: request.user.as_deref(),
        since: request.since.as_deref(),
    };
    // One record more than asked tells whether another page follows.
    let mut records = state
        .store
        .audit_page(request.after.0, request.limit + 1, filter)
        .await?;
    let more = records.len() > request.limit as usize;
    records.truncate(request.limit as usize);
    let next_cursor = records
        .last()
        .filter(|_| more)
        .map(|last| Cursor(last.seq).encode());
    Ok(Json(AuditPage {
        records,
        next_cursor,
    }))
}

/// `GET /v1/audit/verify[?anchor=SEQ:HASH]`: checks the whole chain, and the anchor if given.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    summary = "Check the audit log's chain, read a page at a time, and optionally an anchor (airlock:ReadAuditLog)",
    params(crate::openapi::Anchor),
    responses(
        (status = 200, description = "The result", body = airlock_api::audit::Verification),
        (status = 400, description = "Error", body = airlock_api::ErrorBody),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
) -> ApiResult<Json<Verification>> {
    may_read(&state, &caller).await?;
    let mut anchor = None;
    for (name, value) in pairs(&uri)? {
        match name.as_str() {
            "anchor" => {
                anchor = Some(
                    value
                        .parse::<Anchor>()
                        .map_err(|e| ApiError::field("anchor", e))?,
                )
            }
            other => return Err(unknown(other, "anchor")),
        }
    }
    Ok(Json(
        verify_log(&state.store, state.audit.key(), anchor).await?,
    ))
}

/// Checks the log a page at a time: what is held is one page and the previous hash, however
/// long the log is. Records appended meanwhile are checked too.
pub async fn verify_log(
    store: &Store,
    key: &AuditKey,
    anchor: Option<Anchor>,
) -> ApiResult<Verification> {
    verify_in_pages(store, key, anchor, VERIFY_PAGE).await
}

async fn verify_in_pages(
    store: &Store,
    key: &AuditKey,
    anchor: Option<Anchor>,
    page: u32,
) -> ApiResult<Verification> {
    let mut verifier = Verifier::new(key, anchor);
    let mut after = 0;
    loop {
        let rows = store
            .audit_page(after, page, AuditFilter::default())
            .await?;
        for row in &rows {
            verifier.feed(row);
        }
        match rows.last() {
            Some(last) if rows.len() == page as usize => after = last.seq,
            _ => return Ok(verifier.finish()),
        }
    }
}

/// `GET /v1/audit/head`: the newest record's position, time and hash.
#[utoipa::path(
    get,
    path = "/v1/audit/head",
    summary = "The newest audit record's seq, time and hash, to write down elsewhere as an anchor (airlock:ReadAuditLog)",
    responses(
        (status = 200, description = "The head", body = airlock_api::audit::Head),
        (status = 401, description = "Error", body = airlock_api::ErrorBody),
        (status = 403, description = "Error", body = airlock_api::ErrorBody),
        (status = 404, description = "Error", body = airlock_api::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn head(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Head>> {
    may_read(&state, &caller).await?;
    let newest = state
        .store
        .last_audit()
        .await?
        .ok_or_else(|| ApiError::NotFound("the audit log is empty".into()))?;
    Ok(Json(Head::of(&newest)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::{append, Chain, Entry};

    fn query(pairs: &[(&str, &str)]) -> ApiResult<PageRequest> {
        page_request(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn field_of(result: ApiResult<PageRequest>) -> Option<String> {
        match result {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn a_cursor_gives_back_its_position() {
        for seq in [0, 1, 99, i64::MAX] {
            assert_eq!(Cursor::parse(&Cursor(seq).encode()).unwrap(), Cursor(seq));
        }
        let request = query(&[("cursor", &Cursor(41).encode()), ("limit", "7")]).unwrap();
        assert_eq!((request.after, request.limit), (Cursor(41), 7));
    }

    #[test]
    fn the_defaults_are_the_first_page_of_a_hundred() {
        let request = query(&[]).unwrap();
        assert_eq!((request.after, request.limit), (Cursor(0), DEFAULT_LIMIT));
    }

    #[test]
    fn a_client_asking_for_a_huge_page_is_refused_naming_limit() {
        for bad in ["1000000", "1001", "0", "-1", "ten", ""] {
            assert_eq!(
                field_of(query(&[("limit", bad)])).as_deref(),
                Some("limit"),
                "{bad}"
            );
        }
        assert_eq!(query(&[("limit", "1000")]).unwrap().limit, MAX_LIMIT);
    }

    #[test]
    fn a_client_forging_a_cursor_is_refused_naming_cursor() {
        let forged = [
            "garbage!",
            "12",
            &URL_SAFE_NO_PAD.encode("after:-5"),
            &URL_SAFE_NO_PAD.encode("after:1 OR 1=1"),
            &URL_SAFE_NO_PAD.encode("before:5"),
        ];
        for bad in forged {
            assert_eq!(
                field_of(query(&[("cursor", bad)])).as_deref(),
                Some("cursor"),
                "{bad}"
            );
        }
    }

    #[test]
    fn since_is_normalised_and_unknown_parameters_are_named() {
        let request = query(&[("since", "2026-01-31T13:00:00+01:00")]).unwrap();
        assert_eq!(request.since.as_deref(), Some("2026-01-31T12:00:00.000Z"));
        assert_eq!(
            field_of(query(&[("since", "yesterday")])).as_deref(),
            Some("since")
        );
        assert_eq!(
            field_of(query(&[("offset", "5")])).as_deref(),
            Some("offset")
        );
    }

    #[tokio::test]
    async fn verification_reads_page_after_page_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let store = Store::open(&url).await.unwrap();
        let log = Chain::new(AuditKey::generate(0));
        for n in 0..10 {
            let entry = Entry {
                user: format!("user{n}"),
                ..Default::default()
            };
            append(&store, &log, entry).await.unwrap();
        }
        for page in [1, 3, 10, 11] {
            let v = verify_in_pages(&store, log.key(), None, page)
                .await
                .unwrap();
            assert!(v.intact, "{v:?}");
            assert_eq!((v.records, v.checked), (10, 10), "pages of {page}");
            assert_eq!(v.head.map(|h| h.seq), Some(10));
        }
        // A copy of the log with record 7, in the third page, edited: found there.
        let other = dir.path().join("b.db");
        let copy = Store::open(&format!("sqlite://{}", other.display()))
            .await
            .unwrap();
        for mut row in store
            .audit_page(0, 100, AuditFilter::default())
            .await
            .unwrap()
        {
            if row.seq == 7 {
                row.user_name = "mallory".into();
            }
            copy.insert_audit(&row).await.unwrap();
        }
        let v = verify_in_pages(&copy, log.key(), None, 3).await.unwrap();
        assert_eq!((v.first_broken, v.checked, v.records), (Some(7), 6, 10));
    }
}
