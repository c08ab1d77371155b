//! Strict JSON strings for request bodies. poem-openapi's `String` also accepts numbers and
//! booleans (`123456` becomes `"123456"`, losing any leading zero); codeward's contract says a
//! mistyped field is a 400, so request strings accept JSON strings only.
//!
//! The length and pattern limits these types declare are documentation for clients and
//! generators: the handlers enforce them while parsing into domain types, answering 422
//! `validation_failed` (or 400 `invalid_code` for a code) as the contract says, never the
//! framework's bare 400.

use std::borrow::Cow;
use std::fmt;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

macro_rules! strict_string {
    ($name:ident, $format:expr, $describe:expr) => {
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                match $format {
                    Some(format) => format!("string_{format}").into(),
                    None => "string".into(),
                }
            }

            fn schema_ref() -> MetaSchemaRef {
                let mut schema = MetaSchema::new("string");
                schema.format = $format;
                let describe: fn(&mut MetaSchema) = $describe;
                describe(&mut schema);
                MetaSchemaRef::Inline(Box::new(schema))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(text)) => Ok(Self(text)),
                    // Say what was wrong without echoing the value (it may be a password).
                    Some(Value::Null) | None => {
                        Err(ParseError::custom("expected a string, found null"))
                    }
                    Some(_) => Err(ParseError::custom("expected a string")),
                }
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }
    };
}

strict_string!(Text, None::<&'static str>, |_| {});
// An optional field: `null` means the same as leaving it out.
strict_string!(OptionalText, None::<&'static str>, |schema| {
    schema.nullable = true;
});
// An address: at most 254 octets once normalized (EmailAddress::parse). As sent it may be a
// little longer (white space around it, characters IDNA mapping drops); the schema says the
// common case.
strict_string!(EmailText, None::<&'static str>, |schema| {
    schema.max_length = Some(254);
});
// A password being tried (login, current password): at most 1024 characters.
strict_string!(SecretText, Some("password"), |schema| {
    schema.max_length = Some(1024);
});
// A password being chosen: 8 to 1024 characters (and not easily guessed, which no schema says).
strict_string!(NewSecretText, Some("password"), |schema| {
    schema.min_length = Some(8);
    schema.max_length = Some(1024);
});
// A code: six digits. Anything else is answered like a wrong code.
strict_string!(CodeText, None::<&'static str>, |schema| {
    schema.pattern = Some("^[0-9]{6}$".to_owned());
});

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Debug for OptionalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Debug for EmailText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Debug for NewSecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

// Codes are secrets too: never in a log line.
impl fmt::Debug for CodeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}
