//! Refuses a JSON body in which one object gives the same member name twice.
//!
//! RFC 8259 leaves such a body's meaning to the reader: serde_json (behind poem-openapi) keeps
//! the last value, while a WAF or a proxy in front may check the first. Refusing it makes what
//! they read what codeward reads.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use poem::{Endpoint, Error, IntoResponse, Middleware, Request, Response, Result};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::http::problem::{FieldError, Problem, ProblemJson};

/// Refuses with 400 a JSON body (by the same content types poem-openapi reads as JSON) in
/// which an object, at any depth, names a member twice. Runs after the body limit, on the
/// bytes it read; a body that is not JSON at all is left to the operation's parser.
pub struct UniqueJsonMembers;

impl<E: Endpoint> Middleware<E> for UniqueJsonMembers {
    type Output = UniqueJsonMembersEndpoint<E>;

    fn transform(&self, next: E) -> Self::Output {
        UniqueJsonMembersEndpoint { next }
    }
}

pub struct UniqueJsonMembersEndpoint<E> {
    next: E,
}

impl<E: Endpoint> Endpoint for UniqueJsonMembersEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        if request.content_type().is_some_and(is_json) {
            let body = request.take_body().into_bytes().await?;
            if let Some(name) = repeated_member(&body) {
                return Err(refusal(&name));
            }
            request.set_body(body);
        }
        self.next
            .call(request)
            .await
            .map(IntoResponse::into_response)
    }
}

/// poem-openapi's own test for a JSON payload: `application/json` or `application/*+json`.
fn is_json(content_type: &str) -> bool {
    content_type.parse::<mime::Mime>().is_ok_and(|mime| {
        mime.type_() == mime::APPLICATION
            && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
    })
}

/// The 400, naming the member (in `detail` and `errors[]`) when it is short and plain, since
/// both go back to the client as they are.
fn refusal(name: &str) -> Error {
    Error::from_response(ProblemJson(refusal_problem(name)).into_response())
}

fn refusal_problem(name: &str) -> Problem {
    let plain = name.len() <= 64 && name.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    if plain {
        let message = format!("{name} is given twice in one object.");
        let field = FieldError {
            field: name.to_owned(),
            code: "repeated".to_owned(),
            message: message.clone(),
        };
        Problem::invalid_request(message, vec![field])
    } else {
        Problem::invalid_request(
            "The request body gives a member twice in one object.".to_owned(),
            Vec::new(),
        )
    }
}

/// The first member name an object of `body` gives twice, at any depth (names compared after
/// unescaping, as a parser sees them); `None` if there is none, or if `body` is not JSON.
/// Walks the body once without building it.
fn repeated_member(body: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // An error is either the repeat, recorded in `found`, or a body that is not JSON.
    let _ = Walk { found: &found }.deserialize(&mut deserializer);
    found.into_inner()
}

/// Visits one JSON value and everything inside it; records the first repeated name.
#[derive(Clone, Copy)]
struct Walk<'a> {
    found: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        let mut names = HashSet::new();
        while let Some(name) = members.next_key_seed(MemberName)? {
            if names.contains(&name) {
                *self.found.borrow_mut() = Some(name.into_owned());
                return Err(de::Error::custom("repeated member"));
            }
            names.insert(name);
            members.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A member name, borrowed from the body unless it had escapes to undo.
struct MemberName;

impl<'de> DeserializeSeed<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name))
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_given_twice_in_one_object_is_found_at_any_depth() {
        let cases = [
            (r#"{"a":1,"a":2}"#, Some("a")),
            (r#"{"a":1,"\u0061":2}"#, Some("a")),
            (r#"{"a":{"b":[1,{"c":null,"c":true}]}}"#, Some("c")),
            (r#"[{"x":"y"},{"k":{},"k":[]}]"#, Some("k")),
            (r#"{"a":1,"b":{"a":2},"c":[{"a":3}]}"#, None),
            (r#"{"a":1,"A":2}"#, None),
            (r#""just a string""#, None),
            (r#"{"a":1,"b""#, None),
            // Cut short after the repeat: refused as a repeat (a 400 either way).
            (r#"{"a":1,"a""#, Some("a")),
            ("not json", None),
            ("", None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                repeated_member(body.as_bytes()).as_deref(),
                expected,
                "{body}"
            );
        }
    }

    #[test]
    fn only_json_content_types_are_walked() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "text/json",
            "json",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }

    fn detail(name: &str) -> String {
        refusal_problem(name).detail.unwrap_or_default()
    }

    #[test]
    fn the_refusal_names_a_plain_member_only() {
        assert!(
            detail("email").contains("email is given twice"),
            "{}",
            detail("email")
        );
        assert!(!detail(&"x".repeat(65)).contains("xxx"));
        assert!(!detail("a b").contains("a b"));
    }
}
