//! Generated artefacts that are committed must match what the code generates.

const REGENERATE_SPEC: &str = "cargo run -q -- openapi > openapi.yaml";

#[test]
fn committed_openapi_yaml_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .unwrap_or_default();

    let generated = codeward::http::spec_yaml();

    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi.yaml is out of date; regenerate it with `{REGENERATE_SPEC}` and commit it"
    );
}

#[test]
fn readme_configuration_table_matches_the_cli() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
            .expect("docs/operations.md");
    let start = "<!-- config-table:start -->\n";
    let end = "<!-- config-table:end -->";
    let table = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table)
        .expect("docs/operations.md has the config-table markers");

    let generated = codeward::config::markdown_table();

    assert!(
        table == generated,
        "docs/operations.md's configuration table is out of date; print the new one with \
         `cargo run -q -- config-table` and paste it between the markers\n{generated}"
    );
}

#[test]
fn every_setting_has_a_codeward_variable_and_a_description() {
    let table = codeward::config::markdown_table();
    let rows: Vec<&str> = table.lines().skip(2).collect();

    assert!(
        rows.len() >= 20,
        "expected every setting, got {}",
        rows.len()
    );
    for row in rows {
        assert!(row.starts_with("| `CODEWARD_"), "{row}");
        assert!(
            !row.ends_with("|  |"),
            "setting without a description: {row}"
        );
    }
}

#[test]
fn the_spec_declares_every_problem_code_of_the_contract() {
    let spec: serde_json::Value = serde_json::from_str(&codeward::http::spec_json()).unwrap();
    let declared: Vec<&str> = spec["components"]["schemas"]["ProblemCode"]["enum"]
        .as_array()
        .expect("ProblemCode is an enum schema")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();

    // The codes docs/api.md lists, plus the ones codeward adds where the contract is silent.
    let contract = [
        "invalid_request",
        "invalid_code",
        "unauthorized",
        "invalid_credentials",
        "invalid_token",
        "wrong_password",
        "forbidden",
        "reauthentication_required",
        "email_taken",
        "not_found",
        "payload_too_large",
        "unsupported_media_type",
        "validation_failed",
        "rate_limited",
        "overloaded",
        "method_not_allowed",
        "not_ready",
        "internal_error",
    ];
    for code in contract {
        assert!(declared.contains(&code), "{code} missing from {declared:?}");
    }
    assert_eq!(
        declared.len(),
        contract.len(),
        "undocumented extra codes: {declared:?}"
    );
}

#[test]
fn every_operation_has_an_operation_id_a_tag_and_a_summary() {
    let spec: serde_json::Value = serde_json::from_str(&codeward::http::spec_json()).unwrap();
    let paths = spec["paths"].as_object().expect("paths");

    assert!(!paths.is_empty());
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(operation["operationId"].is_string(), "{at}: operationId");
            assert!(operation["summary"].is_string(), "{at}: summary");
            assert!(operation["description"].is_string(), "{at}: description");
            assert!(
                operation["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{at}: tag"
            );
        }
    }
}

/// Every operation of the spec as (`METHOD /path`, operation object).
fn operations(spec: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let paths = spec["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .expect("path item")
                .iter()
                .map(move |(method, operation)| {
                    (
                        format!("{} {path}", method.to_uppercase()),
                        operation.clone(),
                    )
                })
        })
        .collect()
}

fn spec() -> serde_json::Value {
    serde_json::from_str(&codeward::http::spec_json()).expect("the spec is JSON")
}

/// The operations that take an API key instead of an access token.
const API_KEY: [&str; 9] = [
    "introspect_token",
    "list_users",
    "get_user",
    "disable_user",
    "enable_user",
    "delete_user",
    "list_user_sessions",
    "revoke_user_sessions",
    "list_user_activity",
];

/// The operations anyone may call; every other one needs an access token or an API key.
const PUBLIC: [&str; 14] = [
    "signup",
    "resend_signup_code",
    "verify_signup",
    "login",
    "request_login_code",
    "verify_login_code",
    "refresh_token",
    "forgot_password",
    "check_reset_code",
    "reset_password",
    "healthz",
    "readyz",
    "metrics",
    "get_jwks",
];

#[test]
fn authenticated_operations_declare_their_one_scheme_and_a_401_challenge() {
    let spec = spec();

    for (at, operation) in operations(&spec) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        let security = operation["security"].as_array();
        if PUBLIC.contains(&id) {
            assert!(security.is_none(), "{at}: public, yet declares security");
            continue;
        }
        let scheme = if API_KEY.contains(&id) {
            "ApiKeyAuth"
        } else {
            "BearerAuth"
        };
        let schemes: Vec<&str> = security
            .into_iter()
            .flatten()
            .filter_map(|requirement| requirement.as_object())
            .flat_map(|requirement| requirement.keys().map(String::as_str))
            .collect();
        assert_eq!(schemes, [scheme], "{at}: its security");
        if scheme == "ApiKeyAuth" {
            assert!(
                operation["responses"]["403"].is_object(),
                "{at}: no 403 for a key without the scope"
            );
        }
        let unauthorized = &operation["responses"]["401"];
        assert!(unauthorized.is_object(), "{at}: no 401");
        assert!(
            unauthorized["headers"]["WWW-AUTHENTICATE"]["required"] == true,
            "{at}: 401 without its WWW-Authenticate challenge"
        );
    }
}

#[test]
fn both_security_schemes_are_declared_bearer_and_described() {
    let spec = spec();
    let schemes = &spec["components"]["securitySchemes"];

    for (name, says) in [
        ("BearerAuth", "access token"),
        ("ApiKeyAuth", "codeward api-key create"),
    ] {
        let scheme = &schemes[name];
        assert_eq!(scheme["type"], "http", "{name}");
        assert_eq!(scheme["scheme"], "bearer", "{name}");
        let description = scheme["description"].as_str().unwrap_or_default();
        assert!(description.contains(says), "{name}: {description}");
    }
    assert!(
        schemes["ApiKeyAuth"]["description"]
            .as_str()
            .unwrap()
            .contains("cwk_")
    );
    assert_eq!(schemes.as_object().map(|s| s.len()), Some(2), "{schemes}");
}

#[test]
fn every_error_response_is_a_problem_and_limits_say_when_to_retry() {
    let spec = spec();

    for (at, operation) in operations(&spec) {
        let responses = operation["responses"].as_object().expect("responses");
        let id = operation["operationId"].as_str().unwrap_or_default();
        // Probes and the key set answer every request alike (a 405 aside, which poem answers).
        if !["healthz", "readyz", "get_jwks"].contains(&id) {
            assert!(
                responses.keys().any(|status| status.starts_with('4')),
                "{at}: declares no client error"
            );
        }
        for (status, response) in responses {
            assert!(response["description"].is_string(), "{at} {status}");
            if status.as_str() >= "400" {
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{at} {status}: not a problem+json Problem"
                );
            }
            if status == "429" || (status == "503" && id != "readyz") {
                assert!(
                    response["headers"]["RETRY-AFTER"]["required"] == true,
                    "{at} {status}: no Retry-After"
                );
            }
        }
    }
}

#[test]
fn operations_with_a_body_declare_what_the_framework_refuses_and_show_an_example() {
    let spec = spec();

    for (at, operation) in operations(&spec) {
        let Some(body) = operation.get("requestBody") else {
            continue;
        };
        for status in ["400", "413", "415", "500"] {
            assert!(
                operation["responses"][status].is_object(),
                "{at}: takes a body but does not declare {status}"
            );
        }
        let id = operation["operationId"].as_str().unwrap_or_default();
        // JSON everywhere, but RFC 7662 introspection takes a form.
        let media = if id == "introspect_token" {
            "application/x-www-form-urlencoded"
        } else {
            "application/json; charset=utf-8"
        };
        let content = body["content"].as_object().expect("content");
        assert_eq!(content.keys().collect::<Vec<_>>(), [media], "{at}");
        let schema = &body["content"][media]["schema"]["$ref"];
        let name = schema
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .unwrap_or_else(|| panic!("{at}: the body schema is not a named schema"));
        assert!(
            spec["components"]["schemas"][name]["example"].is_object(),
            "{at}: {name} has no example"
        );
    }
}

#[test]
fn every_schema_is_named_described_and_objects_have_examples() {
    let spec = spec();

    // Bodies are named schemas (or arrays of them), never inline objects that generators
    // would call `InlineResponse200`.
    for (at, operation) in operations(&spec) {
        let bodies = operation["responses"]
            .as_object()
            .expect("responses")
            .values()
            .chain(operation.get("requestBody"))
            .filter_map(|r| r["content"].as_object())
            .flat_map(|content| content.values())
            .map(|media| &media["schema"]);
        for schema in bodies {
            let named = schema["$ref"].is_string()
                || schema["items"]["$ref"].is_string()
                || schema["type"] == "string";
            assert!(named, "{at}: an inline schema {schema}");
        }
    }
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    for (name, schema) in schemas {
        assert!(schema["description"].is_string(), "{name}: no description");
        if schema["type"] == "object" {
            assert!(schema["example"].is_object(), "{name}: no example");
            for (field, property) in schema["properties"].as_object().expect("properties") {
                // A reference is described by the schema it names; a description beside it
                // would make poem-openapi wrap it in `allOf`, which generators copy or refuse.
                assert!(
                    property["description"].is_string() || property["$ref"].is_string(),
                    "{name}.{field}: no description"
                );
                assert!(property.get("allOf").is_none(), "{name}.{field}: allOf");
            }
        }
    }
}

#[tokio::test]
async fn a_405_lists_the_methods_the_spec_declares_for_the_path() {
    let app = crate::helpers::spawn_app().await;

    let cases = [
        (
            "/v1/sessions",
            "DELETE, GET, HEAD",
            "two operations on one path",
        ),
        ("/v1/signup", "POST", "a POST-only operation"),
        (
            "/v1/sessions/0195f3a2-6c1e-7d40-9b8a-3f2e1d0c4b5a",
            "DELETE",
            "a path template",
        ),
    ];
    for (path, allowed, why) in cases {
        let response = app
            .client
            .request(reqwest::Method::PATCH, format!("{}{path}", app.address))
            .send()
            .await
            .expect("request");

        assert_eq!(response.status(), 405, "{why}");
        let mut methods: Vec<&str> = response.headers()["allow"]
            .to_str()
            .expect("ASCII")
            .split(", ")
            .collect();
        methods.sort_unstable();
        assert_eq!(methods.join(", "), allowed, "{why}");
    }
}

/// One status per operation: a duplicated key (two `403`s, say) is invalid YAML for every tool
/// that reads the spec, though the JSON form silently keeps the last one.
#[test]
fn the_spec_declares_each_status_of_an_operation_once() {
    let duplicated = "a:\n  b: 1\n  b: 2\n";
    assert!(
        serde_yaml::from_str::<serde_yaml::Value>(duplicated).is_err(),
        "the check itself sees duplicated keys"
    );
    serde_yaml::from_str::<serde_yaml::Value>(&codeward::http::spec_yaml())
        .expect("openapi.yaml has no duplicated key");
}

/// The order a user meets the tags in; Swagger UI lists them in the document's order.
const TAG_ORDER: [&str; 7] = [
    "Signup", "Session", "Password", "Account", "Backend", "Admin", "Ops",
];

fn tag_names(tags: &serde_json::Value) -> Vec<String> {
    tags.as_array()
        .expect("a tags array")
        .iter()
        .map(|tag| tag["name"].as_str().expect("a tag name").to_owned())
        .collect()
}

#[test]
fn the_spec_lists_its_tags_in_the_order_a_user_meets_them() {
    let yaml: serde_json::Value =
        serde_yaml::from_str(&codeward::http::spec_yaml()).expect("the spec is YAML");

    assert_eq!(tag_names(&spec()["tags"]), TAG_ORDER, "openapi.json");
    assert_eq!(tag_names(&yaml["tags"]), TAG_ORDER, "openapi.yaml");
}

#[tokio::test]
async fn swagger_ui_shows_the_tags_in_the_order_a_user_meets_them() {
    let app = crate::helpers::spawn_app().await;

    let page = app.get("/docs").await.text().await.unwrap();

    // The page embeds the document it shows; each tag is declared there once, in order.
    let positions: Vec<usize> = TAG_ORDER
        .iter()
        .map(|tag| {
            page.find(&format!("\"name\": \"{tag}\""))
                .unwrap_or_else(|| panic!("Swagger UI's document has no tag {tag}"))
        })
        .collect();
    assert!(
        positions.is_sorted(),
        "Swagger UI's document lists the tags out of order: {positions:?}"
    );
}
