//! The API's OpenAPI document, generated: each handler carries its `#[utoipa::path]` and the
//! router is built from those same handlers (`utoipa_axum::routes!`), so a route cannot be
//! served without being documented. What no handler says is here: the document's title, the
//! security schemes, the query parameters several routes share, and its serialization.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, RefOr, Schema};

const DESCRIPTION: &str = "External console for Amazon EC2. Authenticate with POST /v1/login \
     and send the token as Authorization: Bearer TOKEN. No response ever contains a secret access \
     key, password or token other than the login token itself, and the temporary credentials \
     POST /v1/refresh issues to the instance that proved it holds the refresh secret.";

const SESSION: &str = "A browser session from the web console (POST /web/session). \
     State-changing requests must also send the session's CSRF token in the X-CSRF-Token header.";

/// The document before any route: its title and the two ways a caller authenticates.
pub(crate) fn base() -> OpenApi {
    let session = ApiKeyValue::with_description(crate::web::session::SESSION_COOKIE, SESSION);
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Airlock console API")
                .version("1")
                .description(Some(DESCRIPTION)),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
                )
                .security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(session)))
                .build(),
        ))
        .build()
}

/// The document as served: JSON, without operation ids (handlers of different modules share
/// names such as `list`, and an operation id must be unique).
pub(crate) fn serialize(mut document: OpenApi) -> String {
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            operation.operation_id = None;
        }
    }
    #[expect(
        clippy::expect_used,
        reason = "the document is strings, numbers and maps with string keys: it always serializes"
    )]
    document.to_json().expect("the OpenAPI document serializes")
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// A reference to `T`'s schema, with `T` and every schema it refers to added to `schemas`.
pub(crate) fn schema_ref<T: utoipa::ToSchema>(
    schemas: &mut Vec<(String, RefOr<Schema>)>,
) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// The selection of a listing (`GET /v1/instances`, `GET /v1/{family}`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; the handlers read it as `RawQuery`"
)]
pub(crate) struct Listing {
    /// Only this account (default: every account)
    account: Option<String>,
    /// Only this deployment's resources (tagged airlock:deployment=ID), in its account
    deployment: Option<String>,
    /// KEY=VALUE, repeatable
    #[param(style = Form, explode)]
    tag: Option<Vec<String>>,
    /// EC2 filter NAME=VALUE[,VALUE], repeatable
    #[param(style = Form, explode)]
    filter: Option<Vec<String>>,
}

/// `GET /v1/instances?status=true`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; the handler reads it as `RawQuery`"
)]
pub(crate) struct WithStatus {
    /// Add each instance's status checks (DescribeInstanceStatus) as status
    #[param(default = false)]
    status: Option<bool>,
}

/// How often a watch looks at EC2.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; the handlers read it as `RawQuery`"
)]
pub(crate) struct Interval {
    /// Seconds between looks at EC2 (used by /v1/instances/watch)
    #[param(minimum = 0.2, maximum = 300, default = 2)]
    interval: Option<f64>,
}

/// `GET /v1/audit`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; the handler reads it from the URI"
)]
pub(crate) struct AuditQuery {
    /// Records in the page, 1 to 1000 (default 100); anything else is a 400 naming limit
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
    /// next_cursor of the previous page, as it was given (opaque); a malformed one is a 400
    /// naming cursor
    cursor: Option<String>,
    /// Only this user's records
    user: Option<String>,
    /// Only records from this time on (RFC 3339)
    #[param(format = DateTime)]
    since: Option<String>,
}

/// `GET /v1/audit/verify`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; the handler reads it from the URI"
)]
pub(crate) struct Anchor {
    /// SEQ:HASH as GET /v1/audit/head gave it: the record must still be there with that hash
    /// (finds the newest records removed); a malformed one is a 400 naming anchor
    #[param(pattern = "^[0-9]+:[0-9a-fA-F]{64}$")]
    anchor: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every route the hand-written document of earlier versions had, with its methods: a
    /// route removed from the API (or from its document) fails here.
    const ROUTES: &[(&str, &[&str])] = &[
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/v1/cluster", &["get"]),
        ("/openapi.json", &["get"]),
        ("/v1/login", &["post"]),
        ("/v1/logout", &["post"]),
        ("/v1/whoami", &["get"]),
        ("/v1/accounts", &["get", "post"]),
        ("/v1/accounts/{name}", &["delete"]),
        ("/v1/accounts/{name}/verify", &["post"]),
        ("/v1/deployments", &["get", "post"]),
        ("/v1/deployments/{id}", &["get"]),
        ("/v1/deployments/{id}/scale", &["post"]),
        ("/v1/instances", &["get"]),
        ("/v1/instances/watch", &["get"]),
        ("/v1/instances/{action}", &["post"]),
        ("/v1/addresses", &["get"]),
        ("/v1/addresses/{verb}", &["post"]),
        ("/v1/network-interfaces", &["get"]),
        ("/v1/network-interfaces/{verb}", &["post"]),
        ("/v1/security-groups", &["get"]),
        ("/v1/security-groups/{verb}", &["post"]),
        ("/v1/key-pairs", &["get"]),
        ("/v1/key-pairs/{verb}", &["post"]),
        ("/v1/volumes", &["get"]),
        ("/v1/volumes/{verb}", &["post"]),
        ("/v1/snapshots", &["get"]),
        ("/v1/snapshots/{verb}", &["post"]),
        ("/v1/images", &["get"]),
        ("/v1/images/{verb}", &["post"]),
        ("/v1/tags", &["post"]),
        ("/v1/tags/remove", &["post"]),
        ("/v1/users", &["get", "post"]),
        ("/v1/users/{name}", &["delete"]),
        ("/v1/users/{name}/policies", &["post"]),
        ("/v1/users/{name}/policies/{policy}", &["delete"]),
        ("/v1/users/{name}/mfa", &["post"]),
        ("/v1/policies", &["get"]),
        ("/v1/policies/simulate", &["post"]),
        ("/v1/policies/{name}", &["get", "put", "delete"]),
        ("/v1/audit", &["get"]),
        ("/v1/audit/verify", &["get"]),
        ("/v1/audit/head", &["get"]),
        ("/v1/events", &["get"]),
        ("/v1/gateway/configs", &["get"]),
        ("/v1/gateway/configs/{name}", &["get", "put", "delete"]),
        ("/v1/gateway/discover", &["post"]),
        ("/v1/authorize/check", &["post"]),
        ("/v1/policies/validate", &["post"]),
        ("/v1/deployments/{id}/policy", &["get"]),
        ("/v1/deployments/{id}/revoke", &["post"]),
        ("/v1/accounts/{name}/rotate-key", &["post"]),
        ("/v1/refresh", &["post"]),
    ];

    fn document() -> Value {
        serde_json::from_str(crate::openapi()).unwrap()
    }

    #[test]
    fn every_route_of_earlier_versions_is_documented() {
        let doc = document();
        for (path, methods) in ROUTES {
            for method in *methods {
                assert!(
                    doc["paths"][path][method].is_object(),
                    "{method} {path} is missing from the document"
                );
            }
        }
    }

    #[test]
    fn the_pages_and_the_browser_session_are_not_documented() {
        let doc = document();
        for path in ["/", "/assets/{name}", "/web/session"] {
            assert!(doc["paths"].get(path).is_none(), "{path} is documented");
        }
    }

    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(r)) => found.push(r.clone()),
                        _ => references(value, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_names_a_schema_of_the_document() {
        let doc = document();
        let mut found = Vec::new();
        references(&doc, &mut found);
        assert!(found.len() > 100, "{}", found.len());
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} is not in the document"
            );
        }
    }

    #[test]
    fn operations_are_authenticated_and_fail_with_the_error_body() {
        let doc = document();
        let public = [
            "/healthz",
            "/readyz",
            "/openapi.json",
            "/v1/login",
            "/v1/refresh",
        ];
        let error = "#/components/schemas/Error";
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let security = &op["security"][0]["bearer"];
                assert_eq!(
                    security.is_array(),
                    !public.contains(&path.as_str()),
                    "{method} {path}"
                );
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        let schema = &response["content"]["application/json"]["schema"]["$ref"];
                        assert_eq!(schema, error, "{method} {path} {status}");
                    }
                }
            }
        }
        let scheme = &doc["components"]["securitySchemes"];
        assert_eq!(scheme["bearer"]["scheme"], "bearer");
        assert_eq!(scheme["session"]["name"], "airlock_session");
    }

    #[test]
    fn each_fleet_family_takes_one_of_its_verbs_bodies() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for family in airlock_fleet::FleetFamily::ALL {
            let path = format!("/v1/{family}/{{verb}}");
            let body = &doc["paths"][&path]["post"]["requestBody"]["content"]["application/json"];
            let parts = body["schema"]["allOf"].as_array().unwrap();
            assert_eq!(parts[0]["required"][0], "account", "{path}");
            let name = parts[1]["$ref"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            let verbs = schemas[name]["oneOf"].as_array().unwrap();
            assert!(verbs.len() >= 2, "{path}: {verbs:?}");
            let items = &doc["paths"][&format!("/v1/{family}")]["get"]["responses"]["200"];
            assert!(items.to_string().contains("FleetList"), "{family}");
        }
    }
}
