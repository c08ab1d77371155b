//! What each path and query parameter accepts, in a person's words, read off the published
//! spec: the 400 for a malformed parameter says it (`limit must be an integer from 1 to
//! 100.`) instead of poem-openapi's internal description.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

/// A parameter as the client knows it, and what it must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub rule: String,
}

/// The name poem-openapi reports a refused parameter by → the parameter, for every operation.
/// A query parameter is reported by its own name; a path parameter by its position
/// (`param0`). Parameters reported alike are alike in every operation (a test holds that), so
/// the reported name alone says which.
static PARAMETERS: LazyLock<HashMap<String, Parameter>> =
    LazyLock::new(|| parameters(&crate::http::spec_json()));

/// The parameter poem-openapi reports as `reported`, and the sentence for its refusal.
pub fn refused(reported: &str) -> (String, String) {
    match PARAMETERS.get(reported) {
        Some(parameter) => (
            parameter.name.clone(),
            format!("{} {}.", parameter.name, parameter.rule),
        ),
        None => (reported.to_owned(), format!("{reported} is malformed.")),
    }
}

/// Every parameter of `spec` (an OpenAPI document as JSON), by the name poem-openapi reports.
pub fn parameters(spec: &str) -> HashMap<String, Parameter> {
    let spec: Value = serde_json::from_str(spec).unwrap_or(Value::Null);
    let mut found = HashMap::new();
    let paths = spec["paths"].as_object().into_iter().flatten();
    for (_, operations) in paths {
        for (_, operation) in operations.as_object().into_iter().flatten() {
            let mut in_path = 0;
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let Some(name) = parameter["name"].as_str() else {
                    continue;
                };
                let reported = if parameter["in"] == "path" {
                    in_path += 1;
                    format!("param{}", in_path - 1)
                } else {
                    name.to_owned()
                };
                let parameter = Parameter {
                    name: name.to_owned(),
                    rule: rule(&parameter["schema"]),
                };
                found.insert(reported, parameter);
            }
        }
    }
    found
}

/// "must be a UUID", "must be an integer from 1 to 100", … for one parameter's schema.
pub fn rule(schema: &Value) -> String {
    let bound = |key: &str| schema[key].as_f64().map(|n| n.to_string());
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("string"), Some("uuid")) => "must be a UUID".to_owned(),
        (Some("integer"), _) => match (bound("minimum"), bound("maximum")) {
            (Some(min), Some(max)) => format!("must be an integer from {min} to {max}"),
            (Some(min), None) => format!("must be an integer of at least {min}"),
            (None, Some(max)) => format!("must be an integer of at most {max}"),
            (None, None) => "must be an integer".to_owned(),
        },
        (Some("boolean"), _) => "must be true or false".to_owned(),
        (Some("number"), _) => "must be a number".to_owned(),
        _ => "is malformed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_reported_alike_are_alike_in_every_operation() {
        let spec: Value = serde_json::from_str(&crate::http::spec_json()).unwrap();
        let mut seen: HashMap<String, (Value, Value)> = HashMap::new();
        for operations in spec["paths"].as_object().unwrap().values() {
            for operation in operations.as_object().unwrap().values() {
                let mut in_path = 0;
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let reported = if parameter["in"] == "path" {
                        in_path += 1;
                        format!("param{}", in_path - 1)
                    } else {
                        parameter["name"].as_str().unwrap().to_owned()
                    };
                    let this = (parameter["name"].clone(), parameter["schema"].clone());
                    if let Some(earlier) = seen.insert(reported.clone(), this.clone()) {
                        assert_eq!(earlier, this, "{reported} means two parameters");
                    }
                }
            }
        }
        assert!(
            seen.contains_key("param0") && seen.contains_key("limit"),
            "{seen:?}"
        );
        assert_eq!(
            refused("param0"),
            ("id".to_owned(), "id must be a UUID.".to_owned())
        );
        assert_eq!(
            refused("limit"),
            (
                "limit".to_owned(),
                "limit must be an integer from 1 to 100.".to_owned()
            )
        );
    }

    #[test]
    fn each_schema_kind_is_said_in_words() {
        let cases = [
            (
                serde_json::json!({"type": "string", "format": "uuid"}),
                "must be a UUID",
            ),
            (
                serde_json::json!({"type": "integer", "minimum": 1}),
                "must be an integer of at least 1",
            ),
            (serde_json::json!({"type": "integer"}), "must be an integer"),
            (
                serde_json::json!({"type": "boolean"}),
                "must be true or false",
            ),
            (serde_json::json!({"type": "string"}), "is malformed"),
        ];
        for (schema, expected) in cases {
            assert_eq!(rule(&schema), expected, "{schema}");
        }
    }
}
