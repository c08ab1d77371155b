//! Request bodies whose refusals name the member as the client wrote it.
//!
//! poem-openapi's `Json` and `Form` say what failed in the terms of its own types
//! (`failed to parse "string_password" … (occurred while parsing "VerifySignupRequest")`).
//! `JsonBody` and `FormBody` read the same bodies the same way, and when one does not fit its
//! schema they walk the schema the spec publishes to say which member is missing or of the
//! wrong type (`password is required.`), with an `errors[]` entry for each. The walk runs only
//! for a refused body; an accepted one costs what `Json` costs.

use poem::http::StatusCode;
use poem::{FromRequest, IntoResponse, Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::http::problem::{FieldError, Problem, ProblemCode, ProblemJson};

/// A JSON request body (`application/json`, or any `application/*+json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonBody<T>(pub T);

/// An `application/x-www-form-urlencoded` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormBody<T>(pub T);

/// `application/<subtype>` or `application/<anything>+<subtype>`, as poem-openapi decides.
fn media_type_is(content_type: &str, subtype: mime::Name<'_>) -> bool {
    content_type.parse::<mime::Mime>().is_ok_and(|mime| {
        mime.type_() == mime::APPLICATION
            && (mime.subtype() == subtype || mime.suffix() == Some(subtype))
    })
}

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        if data.is_empty() {
            return Err(refused(
                "The request body is empty; send a JSON object.".to_owned(),
                Vec::new(),
            ));
        }
        // serde_json describes where the syntax breaks ("trailing comma at line 1 column 35"),
        // never the text around it, so its message is safe to return.
        let value: Value = serde_json::from_slice(&data).map_err(|error| {
            refused(
                format!("The request body is not valid JSON: {error}."),
                Vec::new(),
            )
        })?;
        match T::parse_from_json(Some(value)) {
            Ok(parsed) => Ok(Self(parsed)),
            // Parsed again rather than cloned up front: only a refused body pays for it.
            Err(_) => {
                let value = serde_json::from_slice(&data).unwrap_or(Value::Null);
                Err(mismatch::<T>(&value))
            }
        }
    }
}

impl<T: DeserializeOwned + Type> ParsePayload for FormBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        match serde_urlencoded::from_bytes(&data) {
            Ok(parsed) => Ok(Self(parsed)),
            Err(_) => {
                // Every form value is text: the schema's strings are all a form can miss.
                let pairs: Vec<(String, String)> =
                    serde_urlencoded::from_bytes(&data).unwrap_or_default();
                let object: Map<String, Value> = pairs
                    .into_iter()
                    .map(|(name, value)| (name, Value::String(value)))
                    .collect();
                Err(mismatch::<T>(&Value::Object(object)))
            }
        }
    }
}

/// Makes a payload of `$subtype` an operation's request body, as poem-openapi does for its
/// own: the spec entry, then a 415 for another media type, then the payload's own parse.
macro_rules! request_body {
    ($payload:ident, $content_type:literal, $subtype:expr, $media_type:literal, $($bounds:tt)+) => {
        impl<T> std::ops::Deref for $payload<T> {
            type Target = T;

            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T: Type> Payload for $payload<T> {
            const CONTENT_TYPE: &'static str = $content_type;

            fn check_content_type(content_type: &str) -> bool {
                media_type_is(content_type, $subtype)
            }

            fn schema_ref() -> MetaSchemaRef {
                T::schema_ref()
            }

            fn register(registry: &mut Registry) {
                T::register(registry);
            }
        }

        impl<'a, T: $($bounds)+> ApiExtractor<'a> for $payload<T> {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <Self as Payload>::register(registry);
            }

            fn request_meta() -> Option<MetaRequest> {
                Some(request_meta::<Self>())
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                _options: ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                check_media_type::<Self>(request, $media_type)?;
                <Self as ParsePayload>::from_request(request, body).await
            }
        }
    };
}

request_body!(
    JsonBody,
    "application/json; charset=utf-8",
    mime::JSON,
    "application/json",
    ParseFromJSON
);
request_body!(
    FormBody,
    "application/x-www-form-urlencoded",
    mime::WWW_FORM_URLENCODED,
    "application/x-www-form-urlencoded",
    DeserializeOwned + Type
);

fn request_meta<P: Payload + ParsePayload>() -> MetaRequest {
    MetaRequest {
        description: None,
        content: vec![MetaMediaType {
            content_type: P::CONTENT_TYPE,
            schema: P::schema_ref(),
        }],
        required: P::IS_REQUIRED,
    }
}

/// 415 unless the body is declared as the media type the operation takes.
fn check_media_type<P: Payload>(request: &Request, expected: &str) -> poem::Result<()> {
    if request.content_type().is_some_and(P::check_content_type) {
        return Ok(());
    }
    let problem = Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ProblemCode::UnsupportedMediaType,
        format!("Send the request body as {expected}, and say so in Content-Type."),
    );
    Err(poem::Error::from_response(
        ProblemJson(problem).into_response(),
    ))
}

/// The 400 for a body that is well-formed but does not fit `T`'s schema.
fn mismatch<T: Type>(value: &Value) -> poem::Error {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let mut walk = Walk {
        registry: &registry,
        found: Vec::new(),
    };
    walk.value(value, &T::schema_ref(), "");
    let found = walk.found;
    if found.is_empty() {
        // The schema accepts what the parser did not: a gap between the two, described
        // without poem-openapi's internal type names.
        return refused(
            "The request body does not match the operation's request schema.".to_owned(),
            found,
        );
    }
    let detail = found
        .iter()
        .map(|error| error.message.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    // The body as a whole (not an object) is said in the detail; `errors[]` names members.
    let members = found.into_iter().filter(|e| !e.field.is_empty()).collect();
    refused(detail, members)
}

fn refused(detail: String, errors: Vec<FieldError>) -> poem::Error {
    poem::Error::from_response(
        ProblemJson(Problem::invalid_request(detail, errors)).into_response(),
    )
}

/// Walks a JSON value along a schema, noting each member that is missing or of the wrong type.
struct Walk<'r> {
    registry: &'r Registry,
    found: Vec<FieldError>,
}

fn resolve<'a>(registry: &'a Registry, schema: &'a MetaSchemaRef) -> Option<&'a MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(schema) => Some(schema),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

impl Walk<'_> {
    fn value(&mut self, value: &Value, schema: &MetaSchemaRef, path: &str) {
        let registry = self.registry;
        let Some(schema) = resolve(registry, schema) else {
            return;
        };
        if !fits(value, schema.ty) {
            self.note(path, "invalid_type", must_be(schema));
            return;
        }
        if !schema.enum_items.is_empty() && !schema.enum_items.contains(value) {
            self.note(path, "invalid_value", must_be(schema));
            return;
        }
        match value {
            Value::Object(members) => {
                for (name, property) in &schema.properties {
                    let at = join(path, name);
                    match members.get(*name) {
                        Some(Value::Null) | None => {
                            let nullable = resolve(registry, property).is_some_and(|p| p.nullable);
                            if schema.required.contains(name) && !nullable {
                                self.note(&at, "required", "is required".to_owned());
                            }
                        }
                        Some(member) => self.value(member, property, &at),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item) = schema.items.as_deref() {
                    for (index, element) in items.iter().enumerate() {
                        self.value(element, item, &format!("{path}[{index}]"));
                    }
                }
            }
            _ => {}
        }
    }

    fn note(&mut self, path: &str, code: &str, what: String) {
        let message = if path.is_empty() {
            format!("The request body {what}.")
        } else {
            format!("{path} {what}.")
        };
        self.found.push(FieldError {
            field: path.to_owned(),
            code: code.to_owned(),
            message,
        });
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Whether `value` is of the JSON type a schema's `type` names.
fn fits(value: &Value, ty: &str) -> bool {
    match ty {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    }
}

/// "must be a string", "must be one of …": what the schema wants, in a person's words.
fn must_be(schema: &MetaSchema) -> String {
    if !schema.enum_items.is_empty() {
        let names: Vec<String> = schema
            .enum_items
            .iter()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })
            .collect();
        return format!("must be one of {}", names.join(", "));
    }
    let kind = match schema.ty {
        "string" => "a string",
        "boolean" => "true or false",
        "integer" => "an integer",
        "number" => "a number",
        "array" => "an array",
        _ => "a JSON object",
    };
    format!("must be {kind}")
}

#[cfg(test)]
mod tests {
    use poem_openapi::Object;

    use super::*;

    #[derive(Object)]
    struct Inner {
        name: String,
    }

    #[derive(Object)]
    struct Outer {
        email: String,
        count: u32,
        flag: Option<bool>,
        inner: Option<Inner>,
        tags: Option<Vec<String>>,
    }

    fn walk(value: Value) -> Vec<(String, String, String)> {
        let mut registry = Registry::new();
        Outer::register(&mut registry);
        let mut walk = Walk {
            registry: &registry,
            found: Vec::new(),
        };
        walk.value(&value, &Outer::schema_ref(), "");
        walk.found
            .into_iter()
            .map(|e| (e.field, e.code, e.message))
            .collect()
    }

    fn row(field: &str, code: &str, message: &str) -> (String, String, String) {
        (field.to_owned(), code.to_owned(), message.to_owned())
    }

    #[test]
    fn each_refused_member_is_named_as_the_client_wrote_it() {
        let cases = [
            (
                "missing and null required members",
                serde_json::json!({"count": null}),
                vec![
                    row("email", "required", "email is required."),
                    row("count", "required", "count is required."),
                ],
            ),
            (
                "wrong JSON types",
                serde_json::json!({"email": 5, "count": "x", "flag": "yes"}),
                vec![
                    row("email", "invalid_type", "email must be a string."),
                    row("count", "invalid_type", "count must be an integer."),
                    row("flag", "invalid_type", "flag must be true or false."),
                ],
            ),
            (
                "nested members and array items",
                serde_json::json!({"email": "a", "count": 1, "inner": {}, "tags": ["a", 1]}),
                vec![
                    row("inner.name", "required", "inner.name is required."),
                    row("tags[1]", "invalid_type", "tags[1] must be a string."),
                ],
            ),
            (
                "not an object",
                serde_json::json!([]),
                vec![row(
                    "",
                    "invalid_type",
                    "The request body must be a JSON object.",
                )],
            ),
            (
                "a fitting body",
                serde_json::json!({"email": "a", "count": 1, "flag": null}),
                vec![],
            ),
        ];
        for (why, body, expected) in cases {
            assert_eq!(walk(body), expected, "{why}");
        }
    }
}
