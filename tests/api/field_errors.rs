//! A malformed request is answered in the client's terms: every 400 `invalid_request` names the
//! body member or parameter as the client wrote it, with an `errors[]` entry for it. The cases
//! are read off the published spec, so an operation added later is covered without a new row.

use serde_json::{Map, Value, json};

use crate::api_keys::create_key;
use crate::helpers::{PASSWORD, TestApp, assert_problem, spawn_app};

/// What a refused request must say: the field and its `errors[]` code, and the sentence.
struct Expected {
    field: String,
    code: &'static str,
    message: String,
}

/// The credentials each security scheme of the spec is answered with.
struct Credentials {
    access_token: String,
    api_key: String,
}

impl Credentials {
    async fn of(app: &TestApp) -> Self {
        let session = app.signed_up("fields@example.com", PASSWORD).await;
        // One key with every scope, so no operation answers 403 before reading its input.
        let api_key = create_key(app, "fields-all", &["admin", "introspect"]);
        Self {
            access_token: session["access_token"].as_str().unwrap().to_owned(),
            api_key,
        }
    }

    fn for_operation(&self, operation: &Value) -> Option<&str> {
        let schemes = operation["security"].as_array()?;
        let scheme = schemes.first()?.as_object()?.keys().next()?;
        match scheme.as_str() {
            "BearerAuth" => Some(&self.access_token),
            "ApiKeyAuth" => Some(&self.api_key),
            other => panic!("unknown security scheme {other}"),
        }
    }
}

fn spec() -> Value {
    serde_json::from_str(&codeward::http::spec_json()).unwrap()
}

/// `#/components/schemas/X` resolved; an inline schema as it is.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &spec["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A value the schema accepts (a body that is valid except where a case changes it).
fn fitting(schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("boolean") => json!(true),
        Some("integer") => json!(1),
        _ => json!("123456"),
    }
}

/// A value of another JSON type than the schema's, and what the answer must say of it.
fn misfit(schema: &Value) -> (Value, &'static str) {
    match schema["type"].as_str() {
        Some("boolean") => (json!("yes"), "must be true or false"),
        Some("integer") => (json!("x"), "must be an integer"),
        _ => (json!(5), "must be a string"),
    }
}

/// Every case of one operation's body: each required member left out and each member of the
/// wrong JSON type, with the body otherwise fitting.
fn body_cases(spec: &Value, operation: &Value) -> Vec<(Value, Expected)> {
    let Some((media_type, content)) = operation["requestBody"]["content"]
        .as_object()
        .and_then(|content| content.iter().next())
    else {
        return Vec::new();
    };
    let schema = resolve(spec, &content["schema"]);
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let full: Map<String, Value> = properties
        .iter()
        .filter(|(name, _)| required.contains(&name.as_str()))
        .map(|(name, property)| (name.clone(), fitting(resolve(spec, property))))
        .collect();
    let form = media_type.starts_with("application/x-www-form-urlencoded");
    let mut cases = Vec::new();
    for name in &required {
        let mut body = full.clone();
        body.remove(*name);
        cases.push((
            Value::Object(body),
            Expected {
                field: (*name).to_owned(),
                code: "required",
                message: format!("{name} is required."),
            },
        ));
    }
    // A form carries text only: a wrong JSON type cannot be sent in one.
    if !form {
        for (name, property) in &properties {
            let (value, must) = misfit(resolve(spec, property));
            let mut body = full.clone();
            body.insert(name.clone(), value);
            cases.push((
                Value::Object(body),
                Expected {
                    field: name.clone(),
                    code: "invalid_type",
                    message: format!("{name} {must}."),
                },
            ));
        }
    }
    cases
}

/// Every case of one operation's parameters: each given a value its schema refuses, the
/// others fitting. Returns (path with query, expected).
fn parameter_cases(path: &str, operation: &Value) -> Vec<(String, Expected)> {
    let parameters: Vec<&Value> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let fitting_path = |bad: Option<(&str, &str)>| {
        let mut path = path.to_owned();
        let mut query = Vec::new();
        for parameter in &parameters {
            let name = parameter["name"].as_str().unwrap();
            let value = match bad {
                Some((bad_name, bad_value)) if bad_name == name => bad_value.to_owned(),
                _ if parameter["in"] == "path" => uuid::Uuid::new_v4().to_string(),
                _ => continue,
            };
            if parameter["in"] == "path" {
                path = path.replace(&format!("{{{name}}}"), &value);
            } else {
                query.push(format!("{name}={value}"));
            }
        }
        if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        }
    };
    let mut cases = Vec::new();
    for parameter in &parameters {
        let name = parameter["name"].as_str().unwrap();
        let schema = &parameter["schema"];
        let (bad_values, message): (Vec<String>, String) =
            match (schema["type"].as_str(), schema["format"].as_str()) {
                (Some("string"), Some("uuid")) => (
                    vec!["not-a-uuid".into(), "12345".into()],
                    format!("{name} must be a UUID."),
                ),
                (Some("integer"), _) => {
                    // The spec writes bounds as numbers (`1.0`).
                    let bound = |key: &str| schema[key].as_f64().expect("a bounded integer") as i64;
                    let (min, max) = (bound("minimum"), bound("maximum"));
                    (
                        vec![(min - 1).to_string(), (max + 1).to_string(), "x".into()],
                        format!("{name} must be an integer from {min} to {max}."),
                    )
                }
                // Free text: nothing the framework refuses (the operation judges it).
                (Some("string"), None) => continue,
                other => panic!("parameter {name} of a kind this test does not know: {other:?}"),
            };
        for bad in bad_values {
            cases.push((
                fitting_path(Some((name, &bad))),
                Expected {
                    field: name.to_owned(),
                    code: "invalid_value",
                    message: message.clone(),
                },
            ));
        }
    }
    cases
}

/// `path` with every `{parameter}` replaced by a fresh UUID (the only kind of path parameter).
fn with_ids(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::new_v4().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&Value, bool)>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match body {
        Some((body, true)) => {
            let pairs: Vec<(String, String)> = body
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            request = request.form(&pairs);
        }
        Some((body, false)) => request = request.json(body),
        None => {}
    }
    request.send().await.unwrap()
}

async fn assert_names(response: reqwest::Response, expected: &Expected, case: &str) {
    let problem = assert_problem(response, 400, "invalid_request").await;
    let errors = problem["errors"].as_array().unwrap_or_else(|| {
        panic!("{case}: no errors[] in {problem}");
    });
    let entry = errors
        .iter()
        .find(|entry| entry["field"] == expected.field.as_str())
        .unwrap_or_else(|| {
            panic!(
                "{case}: no errors[] entry for {}: {problem}",
                expected.field
            )
        });
    assert_eq!(entry["code"], expected.code, "{case}: {problem}");
    assert_eq!(
        entry["message"],
        expected.message.as_str(),
        "{case}: {problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(&expected.message), "{case}: {problem}");
    for internal in [
        "string_",
        "param0",
        "occurred while",
        "failed to parse",
        "Request\"",
    ] {
        assert!(!detail.contains(internal), "{case}: {problem}");
    }
}

#[tokio::test]
async fn every_malformed_member_and_parameter_of_every_operation_is_named_as_the_client_wrote_it() {
    let app = spawn_app().await;
    let credentials = Credentials::of(&app).await;
    let spec = spec();
    let mut checked = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            let token = credentials.for_operation(operation);
            let form = operation["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| c.keys().any(|k| k.contains("form-urlencoded")));
            let fitting_path = with_ids(path);
            for (body, expected) in body_cases(&spec, operation) {
                let case = format!("{id}: {body}");
                let response = send(&app, method, &fitting_path, token, Some((&body, form))).await;
                assert_names(response, &expected, &case).await;
                checked += 1;
            }
            for (target, expected) in parameter_cases(path, operation) {
                let case = format!("{id}: {target}");
                let response = send(&app, method, &target, token, None).await;
                assert_names(response, &expected, &case).await;
                checked += 1;
            }
        }
    }
    // Every body operation and parameter counted: a spec the walk misread would check little.
    assert!(checked >= 70, "only {checked} cases were checked");
}

#[tokio::test]
async fn a_body_that_is_no_json_object_says_so_without_naming_a_member() {
    let app = spawn_app().await;
    let cases = [
        ("", "The request body is empty; send a JSON object."),
        ("[]", "The request body must be a JSON object."),
        ("\"text\"", "The request body must be a JSON object."),
        (
            r#"{"email":"a@example.com",}"#,
            "The request body is not valid JSON: trailing comma at line 1 column 26.",
        ),
    ];
    for (body, detail) in cases {
        let response = app
            .client
            .post(app.url("/v1/signup"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();

        let problem = assert_problem(response, 400, "invalid_request").await;
        assert_eq!(problem["detail"], detail, "{body:?}");
        assert!(problem.get("errors").is_none(), "{body:?}: {problem}");
    }
}
