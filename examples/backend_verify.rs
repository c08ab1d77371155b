//! A backend verifying one of codeward's access tokens with `jsonwebtoken` and `reqwest`, as
//! docs/backend.md shows: the key named by the token's `kid` comes from the server's JWK Set,
//! and the signature, algorithm, `typ`, `iss`, `aud` and `exp` are checked.
//!
//! Reads the token from stdin (so it never shows in `ps` or a shell history) and prints the user
//! id, session id and `amr`, never the token; a refused token is an error and exit code 1.
//! `.ci/clients` builds it and has tests/clients/backend_pyjwt.py run it on each algorithm's
//! token and on a changed one:
//!
//! ```sh
//! CODEWARD_BASE_URL=http://127.0.0.1:8080 CODEWARD_EXPECTED_ISSUER=http://127.0.0.1:8080 \
//!   CODEWARD_EXPECTED_ALGORITHM=EdDSA cargo run -q --example backend_verify < token.txt
//! ```
//!
//! A real backend keeps the `JwkSet` for 5 minutes and fetches it again when `find` returns
//! `None` (rate-limited); this one-shot example fetches it once.

use std::io::Read;
use std::str::FromStr;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    amr: Vec<String>,
    email_verified: bool,
}

type Error = Box<dyn std::error::Error>;

async fn verify(
    token: &str,
    base_url: &str,
    issuer: &str,
    algorithm: Algorithm,
) -> Result<Claims, Error> {
    let jwks: JwkSet = reqwest::get(format!("{base_url}/.well-known/jwks.json"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let header = decode_header(token)?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err("not an access token (typ)".into());
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks
        .find(&kid)
        .ok_or("unknown kid: fetch the key set again")?;
    // The algorithm you expect, never the one the token's header names.
    let mut validation = Validation::new(algorithm);
    validation.set_audience(&["codeward"]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    Ok(decode::<Claims>(token, &DecodingKey::from_jwk(jwk)?, &validation)?.claims)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let base_url = std::env::var("CODEWARD_BASE_URL")?;
    let issuer = std::env::var("CODEWARD_EXPECTED_ISSUER")?;
    let algorithm = Algorithm::from_str(&std::env::var("CODEWARD_EXPECTED_ALGORITHM")?)?;
    let mut token = String::new();
    std::io::stdin().read_to_string(&mut token)?;
    let claims = verify(token.trim(), &base_url, &issuer, algorithm).await?;
    println!(
        "verified: sub {} sid {} amr {:?} email_verified {}",
        claims.sub, claims.sid, claims.amr, claims.email_verified
    );
    Ok(())
}
